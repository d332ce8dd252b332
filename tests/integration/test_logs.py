"""Access log off the event loop (issue 6): a file, SIGUSR1 reopens it,
a reload switches the format, and a log nobody drains drops lines
(counted) instead of stalling requests."""
import json
import os
import re
import signal
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, log_path, fmt="combined"):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "{log_path}", format: {fmt}}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /
    upstream: api
"""


def wait_file_line(path, pattern, timeout=ft.IO_TIMEOUT):
    """Waits until a line of the file matches (the writer thread is asynchronous)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            with open(path) as fh:
                for line in fh:
                    if rx.search(line):
                        return line
        check(time.monotonic() < deadline, f"no line matching /{pattern}/ in {path}")
        time.sleep(0.02)


def metric(f, name):
    body = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise ft.TestFailure(f"{name} missing")


def test_sigusr1_reopens_the_access_log_after_rotation():
    with Upstream() as up:
        f = Ferry(config(up.address, "{tmp}/access.log"))
        with f:
            path = os.path.join(f.tmp, "access.log")
            eq(ft.request(f.port, target="/before").status, 200, "status")
            wait_file_line(path, r'"GET /before HTTP/1\.1" 200')
            os.rename(path, path + ".1")
            eq(ft.request(f.port, target="/between").status, 200, "status")
            wait_file_line(path + ".1", r'"GET /between HTTP/1\.1" 200')  # still the open file
            f.signal(signal.SIGUSR1)
            f.wait_stderr(r"access log .*access\.log$")
            eq(ft.request(f.port, target="/after").status, 200, "status")
            wait_file_line(path, r'"GET /after HTTP/1\.1" 200')
            with open(path + ".1") as fh:
                check("/after" not in fh.read(), "the rotated file gets no new lines")


def test_reload_switches_the_access_log_format():
    with Upstream() as up:
        f = Ferry(config(up.address, "{tmp}/access.log"))
        with f:
            path = os.path.join(f.tmp, "access.log")
            eq(ft.request(f.port, target="/plain").status, 200, "status")
            wait_file_line(path, r'"GET /plain HTTP/1\.1" 200')
            with open(f.config_path, "w") as fh:
                fh.write(config(up.address, path, "json").replace("{port:http}", str(f.port))
                         .replace("{port:admin}", str(f.ports["admin"])))
            f.signal(signal.SIGHUP)
            f.wait_stderr(r"configuration generation 2 published")
            line = None
            for _ in range(100):  # each worker switches when it sees the new generation
                ft.request(f.port, target="/json")
                try:
                    line = wait_file_line(path, r'^\{.*"/json"', timeout=0.2)
                    break
                except ft.TestFailure:
                    pass
            check(line is not None, "a JSON line after the reload")
            rec = json.loads(line)
            eq((rec["method"], rec["target"], rec["status"]), ("GET", "/json", 200), "JSON fields")


def test_a_stuck_log_drops_lines_and_never_stalls_requests():
    with Upstream() as up:
        tmp = ft.tempfile.mkdtemp(prefix="ferry-fifo-")
        fifo = os.path.join(tmp, "log.fifo")
        os.mkfifo(fifo)
        # hold the read end open (so ferry's open succeeds) but do not read yet
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            f = Ferry(config(up.address, fifo))
            with f:
                deadline = time.monotonic() + 60
                n = 0
                with Client(f.port) as c:
                    while time.monotonic() < deadline and n < 50000:
                        eq(c.request(target="/" + "x" * 200).status, 200, f"request {n}")
                        n += 1
                        if n % 500 == 0 and metric(f, "ferry_access_log_dropped_total") > 0:
                            break
                check(metric(f, "ferry_access_log_dropped_total") > 0,
                      f"lines were dropped after {n} requests into a log nobody reads")
                # drain the pipe so the writer can finish at exit
                stop = threading.Event()

                def drain():
                    while not stop.is_set():
                        try:
                            if not os.read(rfd, 65536):
                                time.sleep(0.01)
                        except BlockingIOError:
                            time.sleep(0.01)
                t = threading.Thread(target=drain, daemon=True)
                t.start()
                f.stop()
                stop.set()
                t.join(10)
        finally:
            os.close(rfd)


ft.main(globals())
