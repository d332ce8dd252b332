"""mirror (SPEC §8, issue 16): a copy of `percent` of a route's requests,
head and body, goes to the mirror upstream; its answer is discarded, and
a slow, stuck or dead mirror never delays or fails the client's request:
a copy that cannot keep up is dropped and counted. Plus the `ferry -t`
checks."""
import json
import re
import signal
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Upstream, Client, eq, check


def config(mirror, percent, timeout="20s"):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
access_log: {{path: "-", format: json}}
admin: {{address: "127.0.0.1:{{port:admin}}", inspect_all: true}}
upstreams:
  app: {{servers: [{{address: 127.0.0.1:{{port:app}}}}]}}
  shadow: {{servers: [{{address: "127.0.0.1:{mirror}"}}]}}
routes:
  - path_prefix: /
    upstream: app
    timeout: {timeout}
    mirror: {{upstream: shadow, percent: {percent}}}
"""


def counter(f, result):
    m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
    g = re.search(r'ferry_mirror_requests_total\{route="/",result="' + result + r'"\} (\d+)', m)
    return int(g.group(1)) if g else 0


def wait_counter(f, result, want):
    deadline = time.monotonic() + ft.IO_TIMEOUT
    while True:  # the copies end on their own, after the client's answers
        got = counter(f, result)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_percent_copies_head_and_body_of_exactly_that_share():
    with ScriptedUpstream("app") as app, ScriptedUpstream("shadow") as shadow, \
            Ferry(config(shadow.port, 25), ports={"app": app.port}) as f:
        shadow.mode = "5xx"  # its answers are discarded
        with Client(f.port) as c:
            for i in range(20):
                r = c.request("POST", f"/orders/{i}", headers=(("Host", "shop.test"),),
                              body=f"order {i}")
                eq(r.status, 200, f"request {i}")
                eq(r.body, b"ok from app", "the client gets the app's answer, not the mirror's")
            r = c.request("POST", "/chunked", headers=(("Host", "shop.test"),
                                                       ("Transfer-Encoding", "chunked")),
                          body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            eq(r.status, 200, "chunked request")
        copies = shadow.wait_requests(5)
        eq(wait_counter(f, "sent", 5), 5, "sent copies counted (a 5xx from the mirror is its answer)")
        eq(len(shadow.requests), 5, "25% of 20 requests mirrored, exactly (the 21st is not)")
        eq(app.count(), 21, "every request reached the app")
        by_target = {m.target: m for m in app.requests}
        for m in copies:
            a = by_target[m.target]
            eq(m.start, a.start, "the mirror gets the request line the app got")
            eq(m.body, a.body, "and the same body")
            eq(m.header("Host"), "shop.test", "the original Host")
            eq(m.header("X-Request-Id"), a.header("X-Request-Id"), "the same request id")
        eq(sorted(int(m.target.rsplit("/", 1)[1]) for m in copies), [3, 7, 11, 15, 19],
           "every 4th request, spread evenly")
        inspected = json.loads(ft.admin_request(f.ports["admin"], target="/inspect/requests?limit=30").body)["requests"]
        marks = {e["target"]: e["mirror"] for e in inspected}
        eq(marks["/orders/3"], "sent", "the inspector shows a mirrored request")
        eq(marks["/orders/4"], None, "and one that was not")


def test_chunked_body_is_copied_chunked():
    with ScriptedUpstream("app") as app, ScriptedUpstream("shadow") as shadow, \
            Ferry(config(shadow.port, 100), ports={"app": app.port}) as f:
        r = ft.request(f.port, "POST", "/up", headers=(("Host", "t"), ("Transfer-Encoding", "chunked")),
                       body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        eq(r.status, 200, "chunked request answered")
        (m,) = shadow.wait_requests(1)
        eq(m.body, b"hello world", "the mirror gets the whole chunked body")
        eq(m.header("Transfer-Encoding"), "chunked", "re-chunked as for the app")


def test_a_stuck_mirror_never_holds_the_client_and_is_dropped():
    stuck = threading.Event()

    def never_reads(c):  # accepts, then neither reads nor answers
        stuck.wait(30)

    with ScriptedUpstream("app") as app, Upstream(never_reads, name="stuck") as shadow, \
            Ferry(config(shadow.port, 100), ports={"app": app.port}) as f:
        try:
            # A big body first: the copy cannot drain into a mirror that does
            # not read, so it is dropped at its memory bound, not buffered.
            big = b"b" * (16 * 1024 * 1024)
            # (A request held by the mirror would wait for the route's 20 s
            # timeout: the client's read times out first and fails the test.)
            r = ft.request(f.port, "POST", "/big", headers=(("Host", "t"),), body=big)
            eq(r.status, 200, "the big request completes")
            eq(len(app.requests[0].body), len(big), "the app got all of it")
            eq(wait_counter(f, "dropped", 1), 1, "the big copy was dropped")
            # Then many small ones: 64 copies hang in flight, the rest are dropped.
            worst = 0.0
            with Client(f.port) as c:
                for i in range(100):
                    t1 = time.monotonic()
                    r = c.request("POST", f"/s{i}", headers=(("Host", "t"),), body="small")
                    worst = max(worst, time.monotonic() - t1)
                    eq(r.status, 200, f"request {i}")
            print(f"  100 requests with a stuck mirror: worst latency {worst * 1000:.1f} ms")
            # far below the 20 s a copy could hang (slack for a loaded machine)
            check(worst < 3.0, f"no request waited on the mirror (worst {worst:.3f}s)")
            eq(app.count(), 101, "every request reached the app")
            eq(counter(f, "dropped"), 1 + 100 - 64, "copies beyond 64 in flight are dropped")
            eq(counter(f, "sent"), 0, "the stuck mirror answered nothing")
            line = f.wait_access_log(r'"target":"/s99"')
            check('"mirror":"dropped"' in line, line)
            # A reload while 64 copies hang on the old configuration: they
            # keep it alive until they end (at the stop below), and the new
            # one serves at once.
            with open(f.config_path) as cf:
                text = cf.read()
            with open(f.config_path, "w") as cf:
                cf.write(text.replace("percent: 100", "percent: 0"))
            f.signal(signal.SIGHUP)
            f.wait_stderr(r"configuration generation 2 published")
            eq(ft.request(f.port, "POST", "/after", headers=(("Host", "t"),), body="z").status, 200,
               "served on the new configuration")
            eq(counter(f, "dropped"), 37, "percent 0: the request after the reload is not sampled")
        finally:
            stuck.set()


def test_a_dead_mirror_does_not_affect_the_client():
    port = ft.free_port()
    with ScriptedUpstream("app") as app, Ferry(config(port, 100), ports={"app": app.port}) as f:
        with Client(f.port) as c:
            for i in range(5):
                r = c.request("POST", f"/d{i}", headers=(("Host", "t"),), body="x" * 100)
                eq(r.status, 200, f"request {i} with the mirror down")
                eq(r.body, b"ok from app", "the app's answer")
        eq(app.count(), 5, "every request reached the app")
        eq(wait_counter(f, "failed", 5), 5, "every copy counted as failed")


def test_mirror_checks():
    base = """
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  app: {servers: [{address: "127.0.0.1:9"}]}
  shadow: {servers: [{address: "127.0.0.1:9"}]}
routes:
  - upstream: app
"""
    rc, out, _ = ft.ferry_check(base + "    mirror: {upstream: shadwo, percent: 10}\n")
    eq(rc, 1, out)
    check('routes[0].mirror.upstream: unknown upstream "shadwo" (did you mean "shadow"?)' in out, out)
    check(":8:24:" in out, "file:line:col of the error: " + out)
    rc, out, _ = ft.ferry_check(base + "    mirror: {upstream: shadow, percent: 101}\n")
    eq(rc, 1, out)
    check("mirror.percent: 101 is out of range (expected 0..100)" in out, out)
    rc, out, _ = ft.ferry_check(base + "    mirror: {percent: 10}\n")
    eq(rc, 1, out)
    check('missing required key "upstream"' in out, out)
    rc, out, _ = ft.ferry_check(base.replace("  - upstream: app\n", "  - respond: {status: 200}\n")
                                + "    mirror: {upstream: shadow}\n")
    eq(rc, 1, out)
    check("mirror only applies to routes with upstream" in out, out)
    rc, out, _ = ft.ferry_check(base + "    mirror: {upstream: shadow, percent: 0}\n")
    eq(rc, 0, "percent 0 is valid (mirroring paused): " + out)


ft.main(globals())
