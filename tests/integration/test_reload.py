"""Hot reload on SIGHUP (issue 6): no failed request while the routes
change ten times, new routes take effect, a bad file keeps the old
configuration, listeners follow the file."""
import re
import signal
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(stable, version, extra_upstream=None, listen2=False):
    ups = ""
    routes = ""
    if extra_upstream:
        ups = f"""  extra:
    servers:
      - address: {extra_upstream}
"""
        routes = """  - path_prefix: /extra
    upstream: extra
"""
    listeners = "  - address: 127.0.0.1:{port:http}\n"
    if listen2:
        listeners += "  - address: 127.0.0.1:{port:http2}\n"
    return f"""
listeners:
{listeners}workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: off}}
upstreams:
  stable:
    servers:
      - address: {stable}
{ups}routes:
  - path: /version
    respond: {{status: 200, body: "version {version}\\n"}}
  - path: /only-in-{version}
    respond: {{status: 200, body: "new route {version}\\n"}}
{routes}  - path_prefix: /
    upstream: stable
"""


def write_config(f, text):
    text = re.sub(r"\{port:([A-Za-z0-9_]+)\}", lambda m: str(f.ports.setdefault(m.group(1), ft.free_port())), text)
    with open(f.config_path + ".tmp", "w") as out:
        out.write(text)
    import os
    os.replace(f.config_path + ".tmp", f.config_path)


def metric_value(f, name):
    r = ft.admin_request(f.ports["admin"], target="/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise ft.TestFailure(f"{name} not in /metrics")


def metric_line(f, prefix):
    r = ft.admin_request(f.ports["admin"], target="/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise ft.TestFailure(f"{prefix} not in /metrics")


def wait_generation(f, gen, timeout=ft.IO_TIMEOUT):
    """Waits until every worker serves new requests with generation gen."""
    deadline = time.monotonic() + timeout
    while True:
        got = metric_value(f, "ferry_config_generation")
        if got >= gen:
            return
        check(time.monotonic() < deadline, f"workers never reached configuration generation {gen} (at {got})")
        time.sleep(0.02)


class Load:
    """Clients requesting /stable continuously: one over a kept-alive
    connection, one with a new connection per request. Bounded in time."""

    def __init__(self, port, limit_s=120):
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + limit_s
        self.threads = [threading.Thread(target=self.keepalive, daemon=True),
                        threading.Thread(target=self.fresh, daemon=True)]
        for t in self.threads:
            t.start()

    def record(self, r, how):
        with self.lock:
            if r.status == 200 and r.body == b"ok from stable":
                self.ok += 1
            else:
                self.failures.append((how, r.status, r.body[:100]))

    def keepalive(self):
        c = Client(self.port)
        try:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                try:
                    r = c.request(target="/stable")
                except Exception as e:  # noqa: BLE001 - every error is a failure here
                    with self.lock:
                        self.failures.append(("keep-alive", repr(e)))
                    return
                self.record(r, "keep-alive")
        finally:
            c.close()

    def fresh(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                r = ft.request(self.port, target="/stable", headers=[("Host", "t"), ("Connection", "close")])
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.failures.append(("new connection", repr(e)))
                return
            self.record(r, "new connection")

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return self.ok, self.failures


def test_ten_reloads_under_load_fail_no_request_and_apply_new_routes():
    with Upstream(name="stable") as stable, Upstream(name="extra") as extra:
        with Ferry(config(stable.address, 0)) as f:
            load = Load(f.port)
            try:
                for i in range(1, 11):
                    # every other reload also changes the upstreams (pools rebuilt)
                    write_config(f, config(stable.address, i, extra.address if i % 2 else None))
                    f.signal(signal.SIGHUP)
                    f.wait_stderr(rf"configuration generation {i + 1} published")
                    wait_generation(f, i + 1)
                    r = ft.request(f.port, target="/version")
                    eq(r.body, f"version {i}\n".encode(), f"route after reload {i}")
                    eq(ft.request(f.port, target=f"/only-in-{i}").status, 200, f"new route after reload {i}")
                    eq(ft.request(f.port, target=f"/only-in-{i - 1}").body, b"ok from stable",
                       f"route removed by reload {i} falls through")
                    want_extra = b"ok from extra" if i % 2 else b"ok from stable"
                    eq(ft.request(f.port, target="/extra").body, want_extra, f"/extra after reload {i}")
                    with load.lock:
                        check(not load.failures, f"failed requests during reload {i}: {load.failures[:5]}")
            finally:
                ok, failures = load.finish()
            eq(failures, [], "failed requests")
            check(ok > 20, f"the load kept going through the reloads ({ok} requests)")
            eq(metric_line(f, 'ferry_reloads_total{result="success"}'), 10, "successful reloads")
            eq(metric_value(f, "ferry_reload_last_success"), 1, "last reload result")


def test_bad_file_is_reported_and_the_old_configuration_keeps_serving():
    with Upstream(name="stable") as stable:
        with Ferry(config(stable.address, 0)) as f:
            with Client(f.port) as c:
                eq(c.request(target="/version").body, b"version 0\n", "before")
                with open(f.config_path, "w") as out:
                    out.write("listeners:\n  - address: 127.0.0.1:1\nroutes:\n  - path: /x\n    upstream: nope\n")
                f.signal(signal.SIGHUP)
                f.wait_stderr(r"reload: .*proxy\.yaml:\d+:\d+: .*nope")
                f.wait_stderr(r"reload failed: .*proxy\.yaml has \d+ errors?; still serving configuration generation 1")
                eq(c.request(target="/version").body, b"version 0\n", "same connection after a failed reload")
            eq(ft.request(f.port, target="/version").body, b"version 0\n", "new connection after a failed reload")
            eq(metric_line(f, 'ferry_reloads_total{result="failure"}'), 1, "failed reloads")
            eq(metric_value(f, "ferry_reload_last_success"), 0, "last reload result")
            eq(metric_value(f, "ferry_config_generation"), 1, "generation unchanged")


def test_reload_adds_and_removes_listeners():
    with Upstream(name="stable") as stable:
        with Ferry(config(stable.address, 0)) as f:
            write_config(f, config(stable.address, 1, listen2=True))
            f.signal(signal.SIGHUP)
            wait_generation(f, 2)
            f.wait_stderr(r"reload: listening on 127\.0\.0\.1:%d" % f.ports["http2"])
            eq(ft.request(f.ports["http2"], target="/version").body, b"version 1\n", "new listener serves")
            write_config(f, config(stable.address, 2))
            f.signal(signal.SIGHUP)
            wait_generation(f, 3)
            f.wait_stderr(r"reload: no longer listening on 127\.0\.0\.1:%d" % f.ports["http2"])
            refused = False
            deadline = time.monotonic() + ft.IO_TIMEOUT
            while not refused and time.monotonic() < deadline:  # each worker closes its own socket
                try:
                    socket.create_connection(("127.0.0.1", f.ports["http2"]), timeout=2).close()
                except ConnectionRefusedError:
                    refused = True
            check(refused, "the removed listener no longer accepts")
            eq(ft.request(f.port, target="/version").body, b"version 2\n", "the kept listener serves")


def test_reloads_keep_idle_upstream_connections_of_kept_servers():
    with Upstream(name="stable") as stable, Upstream(name="extra") as extra:
        with Ferry(config(stable.address, 0)) as f:
            with Client(f.port) as c:  # one client connection: one worker, one pooled connection
                for i in range(3):
                    eq(c.request(target=f"/warm{i}").status, 200, "warm-up")
                eq(stable.accepted, 1, "upstream connections after warm-up")
                # 1: only routes change (pools shared); 2: an upstream is added (pools rebuilt)
                for gen, extra_up in ((2, None), (3, extra.address)):
                    write_config(f, config(stable.address, gen, extra_up))
                    f.signal(signal.SIGHUP)
                    f.wait_stderr(rf"generation {gen} published .*pools {'kept' if gen == 2 else 'rebuilt'}")
                    wait_generation(f, gen)
                    eq(c.request(target=f"/after{gen}").body, b"ok from stable", f"after reload to {gen}")
                    eq(stable.accepted, 1, f"the pooled connection survived reload to generation {gen}")


def test_in_flight_request_finishes_on_its_snapshot():
    release = threading.Event()
    arrived = threading.Event()

    def slow(c):
        m = c.read_request()
        if m is None:
            return
        arrived.set()
        check(release.wait(ft.IO_TIMEOUT), "never released")
        c.respond(200, "slow done")

    with Upstream(handler=slow, name="slow") as up, Upstream(name="other") as other:
        with Ferry(config(up.address, 0)) as f:
            c = Client(f.port)
            c.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
            check(arrived.wait(ft.IO_TIMEOUT), "request reached the upstream")
            # the new file points "stable" elsewhere: pools are rebuilt
            write_config(f, config(other.address, 1))
            f.signal(signal.SIGHUP)
            wait_generation(f, 2)
            eq(ft.request(f.port, target="/x").body, b"ok from other", "new requests use the new pools")
            release.set()
            r = c.response()
            eq((r.status, r.body), (200, b"slow done"), "the request in flight finished on its snapshot")
            c.close()


ft.main(globals())
