"""The cluster rehearsal (examples/cluster/run.sh) in its short mode: HAProxy
in TCP mode with send-proxy-v2 and /readyz checks in front of three ferries,
wrk through it while they are rolled, upgraded (SIGUSR2, when this ferry
has it), reloaded (SIGHUP) and, under --watch when this ferry has it,
reloaded by a ConfigMap-style symlink swap. Zero socket errors, zero non-2xx and the real client
address upstream in every phase the script holds to that bar (issue 17).

haproxy and wrk come from Debian (scripts/deps.sh --test, run by make test)."""
import os
import re
import shutil
import subprocess

import ferrytest as ft
from ferrytest import check

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "examples", "cluster", "run.sh")


def test_cluster_roll_upgrade_reload_without_a_failed_request():
    for tool in ("haproxy", "wrk"):
        check(shutil.which(tool) is not None,
              f"{tool} is not installed: run scripts/deps.sh --test (make test does)")
    env = dict(os.environ, SHORT="1", FERRY_BIN=ft.FERRY_BIN, FERRY_ECHO_BIN=ft.ECHO_BIN,
               CONNS="16", MAX_SECONDS="100")
    p = subprocess.run(["bash", SCRIPT], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=150)
    out = p.stdout.decode(errors="replace")
    print(out)
    check(p.returncode == 0, f"run.sh exited {p.returncode}")
    check("cluster: PASS" in out, "no PASS line")
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(baseline|roll|upgrade|reload|watch)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s", line)
        if m:
            rows[m.group(1)] = tuple(int(x) for x in m.groups()[1:])
        m = re.match(r"^(upgrade|watch)\s+skipped: ", line)
        if m:
            rows[m.group(1)] = None
    for phase in ("baseline", "roll", "upgrade", "reload", "watch"):
        check(phase in rows, f"phase {phase} missing from the table")
    for phase, row in rows.items():
        if row is None:
            continue
        requests, errors, non2xx, wrong = row
        check(requests > 100, f"{phase}: only {requests} requests went through")
        if phase == "roll" and "not held to the bar" in out:
            continue
        check(errors == 0 and non2xx == 0 and wrong == 0,
              f"{phase}: {errors} socket errors, {non2xx} non-2xx, {wrong} wrong client addresses")
    check("X-Forwarded-For: 127.0.0.9" in out, "the probe's client address line is missing")


ft.main(globals())
