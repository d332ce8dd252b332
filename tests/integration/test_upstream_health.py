"""Active health checks (once per process, own connections), passive
ejection (5xx in a row, doubling, at most half a pool), 503 + Retry-After
when no server is up."""
import re
import time

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Client, eq, check


def config(extra="", workers=1, servers=("a", "b"), balance="round_robin"):
    srv = "".join(f"      - address: 127.0.0.1:{{port:{s}}}\n" for s in servers)
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
access_log: {{path: "-"}}
upstreams:
  api:
    servers:
{srv}    balance: {balance}
{extra}
routes:
  - upstream: api
"""


CHECKS = """    health_check: {path: /healthz, interval: 100ms, timeout: 500ms,
                   unhealthy_threshold: 2, healthy_threshold: 2}
    passive: {consecutive_failures: 0}
"""


def who(r):
    return r.body.decode().rsplit(" ", 1)[-1]


def spread(port, n=20):
    with Client(port) as c:
        return "".join(who(c.request(target=f"/s{i}")) for i in range(n))


def test_failing_checks_mark_down_and_passing_checks_bring_back():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(CHECKS), ports={"a": a.port, "b": b.port}) as f:
        eq(spread(f.port, 10), "ab" * 5, "both up")
        a.health_mode = "5xx"
        f.wait_stderr(rf"upstream api server {a.address} down: 2 failed checks \(status 503\)")
        eq(spread(f.port), "b" * 20, "traffic after the down line")
        a.health_mode = "ok"
        f.wait_stderr(rf"upstream api server {a.address} up: 2 passed checks")
        eq(spread(f.port, 10).count("a"), 5, "traffic comes back")
        eq(len(re.findall(r"server \S+ down", f.stderr_text())), 1, "down logged once")


def test_refused_and_stalled_checks_mark_down():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(CHECKS), ports={"a": a.port, "b": b.port}) as f:
        port = a.port
        a.down()
        f.wait_stderr(rf"upstream api server 127.0.0.1:{port} down: 2 failed checks \(connect refused\)")
        eq(spread(f.port), "b" * 20, "traffic while a refuses connections")
        with ScriptedUpstream("a", port=port) as a2:
            f.wait_stderr(rf"upstream api server 127.0.0.1:{port} up: 2 passed checks")
            check("a" in spread(f.port, 10), "a takes traffic again")
            a2.health_mode = "stall"
            f.wait_stderr(rf"upstream api server 127.0.0.1:{port} down: 2 failed checks \(timed out\)")
            eq(spread(f.port), "b" * 20, "traffic while a stalls")
            a2.release()


def test_checks_run_once_per_process_on_their_own_connections():
    # Four workers; a check that never answers: one probe per server in the
    # whole process, so exactly one check connection is open when the first
    # times out (per-worker checks would have opened four).
    extra = """    health_check: {path: /healthz, interval: 50ms, timeout: 500ms,
                   unhealthy_threshold: 1, healthy_threshold: 1}
    passive: {consecutive_failures: 0}
"""
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(extra, workers=4), ports={"a": a.port, "b": b.port}) as f:
        for i in range(8):
            eq(ft.request(f.port, target=f"/c{i}").status, 200)
        a.health_mode = "stall"
        a.wait_checks(len(a.checks) + 1)
        stalled_at = len(a.checks)
        f.wait_stderr(rf"upstream api server {a.address} down: 1 failed check \(timed out\)")
        check(len(a.checks) <= stalled_at + 1,
              f"checks sent while one was stalled: {len(a.checks) - stalled_at + 1}")
        a.release()
        # no connection carried both a check and a proxied request
        for up in (a, b):
            for c in up.conns:
                kinds = {("check" if b"/healthz" in line else "client")
                         for line in c.received.split(b"\r\n") if line.startswith(b"GET ")}
                check(len(kinds) <= 1, f"{up.name} connection {c.index} mixed {kinds}")
        hc = a.checks[0]
        eq(hc.header("connection"), "close", "check Connection header")
        eq(hc.header("user-agent"), "ferry-health-check", "check User-Agent")


def test_no_server_up_answers_503_with_retry_after():
    extra = """    health_check: {path: /healthz, interval: 100ms, timeout: 500ms,
                   unhealthy_threshold: 1, healthy_threshold: 1}
"""
    with ScriptedUpstream("a") as a, Ferry(config(extra, servers=("a",)), ports={"a": a.port}) as f:
        eq(ft.request(f.port).status, 200)
        a.health_mode = "5xx"
        f.wait_stderr(rf"upstream api server {a.address} down: 1 failed check \(status 503\)")
        r = ft.request(f.port)
        eq(r.status, 503, "status with no server up")
        eq(r.header("retry-after"), "1", "Retry-After (one check interval, rounded up)")
        check(b"no server" in r.body, f"body: {r.body!r}")
        f.wait_access_log(r'" 503 .*error="no healthy upstream server"')
        a.health_mode = "ok"
        f.wait_stderr(rf"upstream api server {a.address} up: 1 passed check")
        eq(ft.request(f.port).status, 200, "back")


PASSIVE = """    passive: {consecutive_failures: 3, eject_for: 30s}
"""


def test_consecutive_5xx_eject_once_and_never_more_than_half_the_pool():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(PASSIVE), ports={"a": a.port, "b": b.port}) as f:
        a.mode = "5xx"
        with Client(f.port) as c:
            for i in range(6):  # a gets 3 of them: 3 in a row
                c.request(target=f"/p{i}")
        f.wait_stderr(rf"upstream api server {a.address} ejected for 30s: 3 consecutive 5xx responses")
        eq(spread(f.port), "b" * 20, "traffic after ejection")
        # b fails too, but ejecting it would leave no server: it stays.
        b.mode = "5xx"
        with Client(f.port) as c:
            for i in range(10):
                eq(c.request(target=f"/q{i}").status, 500, f"request {i} still reaches b")
        eq(b.count(), 33, "requests b got (3 before the ejection, 20, 10)")
        eq(len(re.findall("ejected for", f.stderr_text())), 1, "only one of two ejected")


def test_repeat_ejection_doubles():
    extra = """    passive: {consecutive_failures: 2, eject_for: 200ms}
"""
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(extra), ports={"a": a.port, "b": b.port}) as f:
        a.mode = "5xx"
        with Client(f.port) as c:
            for want in ("200ms", "400ms", "800ms"):
                n = 0
                end = time.monotonic() + ft.IO_TIMEOUT
                # keep traffic flowing until the next ejection is logged
                while not re.search(rf"{a.address} ejected for {want}", f.stderr_text()):
                    c.request(target=f"/d{n}")
                    n += 1
                    check(n < 100000 and time.monotonic() < end,
                          f"no ejection for {want}: {f.stderr_text()}")
        check(f.stderr_text().count(f"{a.address} back after ejection") >= 2, "ejections end")


def test_connection_failure_ejects_at_once():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("    passive: {eject_for: 30s}\n    retries: 1\n"),
                  ports={"a": a.port, "b": b.port}) as f:
        addr = a.address
        a.down()
        with Client(f.port) as c:
            for i in range(10):
                eq(c.request(target=f"/e{i}").status, 200, f"request {i} (retried on b)")
        f.wait_stderr(rf"upstream api server {addr} ejected for 30s: connect failed \(connect refused\)")
        f.wait_access_log(r"GET /e9 ")
        eq(len(re.findall(rf"{addr}, ", "\n".join(f.access_log()))), 1, "requests that tried a first")


ft.main(globals())
