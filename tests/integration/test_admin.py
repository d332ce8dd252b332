"""Admin listener: /healthz, /readyz, /metrics, 404 (issue 6, SPEC §5)."""
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "-"}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /api
    upstream: api
  - path: /ping
    respond: {{status: 200, body: "pong\\n"}}
{extra}"""


def admin_get(f, path):
    return ft.admin_request(f.ports["admin"], target=path)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels)): value}; checks
    every line is a comment, blank or a well-formed sample and that every
    sample's family has a TYPE line."""
    types = {}
    samples = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            check(typ in ("counter", "gauge", "histogram", "summary", "untyped"), f"bad TYPE line {line!r}")
            types[name] = typ
            continue
        if line.startswith("#"):
            check(line.startswith("# HELP "), f"unexpected comment {line!r}")
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"malformed sample line {line!r}")
        name, labels = m.group(1), frozenset(LABEL.findall(m.group(3) or ""))
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        check(name in types or family in types, f"sample {name} has no # TYPE line")
        samples[(name, labels)] = float(m.group(4))
    return samples


def metric(samples, name, **labels):
    want = frozenset(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(f):
    r = admin_get(f, "/metrics")
    eq(r.status, 200, "/metrics status")
    check(r.header("content-type", "").startswith("text/plain; version=0.0.4"), f"content type {r.header('content-type')}")
    return r.body.decode(), parse_metrics(r.body.decode())


def test_healthz_readyz_and_unknown_paths():
    with Upstream(name="api") as up, Ferry(config(up.address)) as f:
        r = admin_get(f, "/healthz")
        eq((r.status, r.body), (200, b"ok\n"), "/healthz")
        r = admin_get(f, "/readyz")
        eq(r.status, 200, "/readyz while accepting")
        for path in ("/", "/nope", "/healthz/x", "/metricsx"):
            eq(admin_get(f, path).status, 404, f"status of admin {path}")
        # the admin port does not proxy, and the proxy port does not serve admin paths
        eq(ft.request(f.port, target="/healthz").status, 404, "/healthz on the proxy listener")


def test_metrics_counters_rise_with_traffic():
    with Upstream(name="api") as up, Ferry(config(up.address)) as f:
        _, before = scrape(f)
        n = 7
        with Client(f.port) as c:
            for i in range(n):
                eq(c.request(target=f"/api/x{i}").status, 200, "proxied status")
            eq(c.request(target="/ping").status, 200, "respond status")
            eq(c.request(target="/nothing-here").status, 404, "no route status")
            # the gauge of open client connections is sampled by each worker
            deadline = time.monotonic() + 10
            while True:
                _, s = scrape(f)
                if metric(s, "ferry_client_connections") >= 1 and \
                        metric(s, "ferry_upstream_connections_idle", upstream="api") >= 1:
                    break
                check(time.monotonic() < deadline, "connection gauges never showed the open connections")
                time.sleep(0.05)
        text, after = scrape(f)
        eq(metric(after, "ferry_requests_total", route="/api", upstream="api", **{"class": "2xx"})
           - metric(before, "ferry_requests_total", route="/api", upstream="api", **{"class": "2xx"}),
           n, "ferry_requests_total for route /api")
        eq(metric(after, "ferry_requests_total", route="=/ping", **{"class": "2xx"}), 1, "respond route counted")
        eq(metric(after, "ferry_requests_total", route="none", **{"class": "4xx"}), 1, "no-route 404 counted")
        eq(metric(after, "ferry_request_duration_seconds_count") - metric(before, "ferry_request_duration_seconds_count"),
           n + 2, "histogram count")
        eq(metric(after, "ferry_request_duration_seconds_bucket", le="+Inf"),
           metric(after, "ferry_request_duration_seconds_count"), "+Inf bucket equals count")
        check(metric(after, "ferry_bytes_received_total") > metric(before, "ferry_bytes_received_total"), "bytes in rose")
        check(metric(after, "ferry_bytes_sent_total") > metric(before, "ferry_bytes_sent_total"), "bytes out rose")
        eq(metric(after, "ferry_upstream_server_healthy", upstream="api", server=up.address), 1, "server health")
        eq(metric(after, "ferry_workers"), 2, "workers")
        for name in ("ferry_reloads_total", "ferry_retries_total", "ferry_access_log_dropped_total",
                     "ferry_upstream_connections_busy", "ferry_client_connections_total"):
            check(f"# TYPE {name} " in text, f"{name} is exposed")
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
            eq(p.returncode, 0, f"promtool check metrics: {p.stdout.decode()} {p.stderr.decode()}")


def test_admin_port_in_use_fails_start_with_exit_2():
    with Upstream(name="api") as up:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            port = s.getsockname()[1]
            f = Ferry(config(up.address), ports={"admin": port}, wait=False)
            rc = f.proc.wait(30)
            eq(rc, 2, "exit code when the admin port is taken")
            f.wait_stderr(r"admin address 127\.0\.0\.1:%d.*change admin\.address" % port, 5)
        finally:
            s.close()



def _stall(c, release):
    c.upstream.record(c.read_request())
    release.wait(ft.IO_TIMEOUT)


def _reset(c):
    c.read_request()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST before any response byte


def _junk(c):
    c.read_request()
    c.send(b"NOT HTTP AT ALL\r\n\r\n")


def _fail(c):
    while (m := c.read_request()) is not None:
        c.respond(503, "down")


def test_metrics_per_server_results_and_per_route_histograms():
    release = threading.Event()
    with Upstream(name="ok") as ok, Upstream(_fail, name="err") as err, \
            Upstream(lambda c: _stall(c, release), name="stall") as stall, \
            Upstream(lambda c: _stall(c, release), name="left") as left, \
            Upstream(_reset, name="reset") as reset, Upstream(_junk, name="junk") as junk:
        ups = {"ok": ok.address, "err": err.address, "stall": stall.address,
               "reset": reset.address, "junk": junk.address, "left": left.address, "gone": "127.0.0.1:{port:closed}"}
        cfg = f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "-"}}
timeouts: {{upstream_response: 1s}}
upstreams:
""" + "".join(f"  {n}: {{servers: [{{address: \"{a}\"}}], retries: 0}}\n" for n, a in ups.items()) + \
            "routes:\n" + "".join(f"  - {{path_prefix: /{n}, upstream: {n}}}\n" for n in ups)
        try:
            with Ferry(cfg) as f:
                want = {"ok": (3, 200), "err": (2, 503), "stall": (1, 504), "reset": (1, 502),
                        "junk": (1, 502), "gone": (2, 502)}
                for name, (n, status) in want.items():
                    for i in range(n):
                        eq(ft.request(f.port, target=f"/{name}/{i}").status, status, f"/{name} status")
                with Client(f.port) as c:  # the client resets while the server thinks
                    c.send(b"GET /left HTTP/1.1\r\nHost: x\r\n\r\n")
                    left.wait_requests(1)
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                want["left"] = (1, None)
                release.set()
                aborted = ("ferry_upstream_requests_total",
                           frozenset({"upstream": "left", "server": left.address, "result": "aborted"}.items()))
                deadline = time.monotonic() + ft.IO_TIMEOUT
                while True:
                    text, s = scrape(f)
                    if s.get(aborted) == 1:
                        break
                    check(time.monotonic() < deadline, f"no aborted attempt counted: {s.get(aborted)}")
                    time.sleep(0.02)
                closed = f"127.0.0.1:{f.ports['closed']}"
                results = {"ok": {"ok": 3}, "err": {"5xx": 2}, "stall": {"timeout": 1},
                           "reset": {"reset": 1}, "junk": {"invalid": 1}, "left": {"aborted": 1},
                           "gone": {"connect_failure": 2}}
                all_results = ("ok", "5xx", "connect_failure", "reset", "timeout", "invalid", "aborted")
                for name, counts in results.items():
                    server = closed if name == "gone" else ups[name]
                    for r in all_results:
                        key = ("ferry_upstream_requests_total",
                               frozenset({"upstream": name, "server": server, "result": r}.items()))
                        check(key in s, f"{key} is exposed")
                        eq(s[key], counts.get(r, 0), f"attempts on {name} with result {r}")
                for name, (n, _) in want.items():
                    lb = {"route": f"/{name}", "upstream": name}
                    eq(metric(s, "ferry_request_duration_seconds_count", **lb), n, f"histogram count /{name}")
                    buckets = sorted(((float(dict(ls)["le"]), v) for (m, ls), v in s.items()
                                      if m == "ferry_request_duration_seconds_bucket"
                                      and frozenset(lb.items()) <= ls), key=lambda x: x[0])
                    check(len(buckets) >= 2 and buckets[-1] == (float("inf"), n),
                          f"/{name}: +Inf bucket equals count: {buckets}")
                    check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
                          f"/{name}: buckets are cumulative: {buckets}")
                # the stalled request took the 1 s upstream_response timeout
                stall_lb = frozenset({"route": "/stall", "upstream": "stall", "le": "0.25"}.items())
                eq(s[("ferry_request_duration_seconds_bucket", stall_lb)], 0, "/stall under 250 ms")
                check(metric(s, "ferry_request_duration_seconds_sum", route="/stall") >= 1.0,
                      "/stall duration sum")
                promtool = shutil.which("promtool")
                if promtool:
                    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                                       capture_output=True, timeout=30)
                    eq(p.returncode, 0, f"promtool check metrics: {p.stdout.decode()} {p.stderr.decode()}")
        finally:
            release.set()


def test_every_metric_the_readme_names_is_exposed():
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
    with open(readme) as fh:
        names = set(re.findall(r"`(ferry_[a-z_]+)", fh.read()))
    check(len(names) > 10, f"metric names found in README.md: {sorted(names)}")
    with Upstream(name="api") as up, Ferry(config(up.address)) as f:
        eq(ft.request(f.port, target="/api/x").status, 200, "a request, so per-route series exist")
        text, _ = scrape(f)
    exposed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    eq(sorted(names - exposed), [], "metrics README.md names that /metrics does not expose")



def test_start_up_line_names_every_admin_path_and_help_names_inspect_options():
    with Upstream(name="api") as up, Ferry(config(up.address)) as f:
        line = f.wait_stderr(r"admin: serving ")
        check(re.search(r"admin: serving /healthz, /readyz, /metrics, /inspect on 127\.0\.0\.1:\d+$",
                        line), f"start-up line: {line}")
    p = subprocess.run([ft.FERRY_BIN, "-h"], capture_output=True, timeout=30)
    eq(p.returncode, 0, "ferry -h exit code")
    text = p.stdout.decode()
    check("ferry inspect [-c FILE] [--admin ADDR] [--route R] [--filter E] [--har F]" in text, f"ferry -h:\n{text}")


ft.main(globals())
