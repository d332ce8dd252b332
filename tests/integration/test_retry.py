"""Route retry (SPEC §8, issue 16): an attempt that fails by connect
failure, reset, or a listed status goes to a server not tried yet; status
retries only for idempotent methods without a request body; a retried
answer is dropped (its connection pooled only when read whole); the
route's budget (a share of its requests over 10 s, shared by the workers)
cuts retries off; the route's timeout bounds all attempts together;
`ferry -t` checks every value."""
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, ScriptedUpstream, Client, eq, check


class Answering(Upstream):
    """Answers every request with .status and body "<status> from NAME"
    (keep-alive), after .delay seconds. .partial: send the head and part
    of the body, then wait for the peer to close (counted in .eofs)."""

    def __init__(self, name, status=503):
        self.status = status
        self.delay = 0.0
        self.partial = False
        self.eofs = 0
        super().__init__(self._serve, name=name)

    def _serve(self, c):
        while True:
            m = c.read_request()
            if m is None:
                return
            self.record(m)
            if self.delay:
                time.sleep(self.delay)
            body = f"{self.status} from {self.name}"
            if self.partial:
                c.send(f"HTTP/1.1 {self.status} X\r\nContent-Length: 100\r\n\r\n{body}")
                try:
                    eof = c.sock.recv(1) == b""
                except OSError:
                    eof = True
                with self._cv:
                    self.eofs += eof
                    self._cv.notify_all()
                return
            if m.method == "HEAD":  # the length of the body a GET would get, no body
                c.send(f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(body)}\r\n\r\n")
                continue
            c.respond(self.status, body, reason="Busy" if self.status == 503 else "OK")

    def count(self):
        with self._cv:
            return len(self.requests)

    def wait_eofs(self, n):
        deadline = time.monotonic() + ft.IO_TIMEOUT
        with self._cv:
            while self.eofs < n and time.monotonic() < deadline:
                self._cv.wait(0.1)
            return self.eofs


def config(retry, workers=1, extra_route="", admin=False):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
access_log: {{path: "-"}}
{"admin: {address: 127.0.0.1:{port:admin}}" if admin else ""}
upstreams:
  api:
    servers:
      - address: 127.0.0.1:{{port:a}}
      - address: 127.0.0.1:{{port:b}}
    passive: {{consecutive_failures: 0}}
routes:
  - path_prefix: /r
    upstream: api
    retry: {retry}
{extra_route}"""


def who(r):
    return r.body.decode().rsplit(" ", 1)[-1]


def test_503_is_retried_on_the_other_server_and_dropped():
    with Answering("a", 503) as a, Answering("b", 200) as b, \
            Ferry(config('{attempts: 2, on: ["503"], budget: 100%}'),
                  ports={"a": a.port, "b": b.port}) as f:
        with Client(f.port) as c:
            for i in range(6):
                r = c.request(target=f"/r/{i}")
                eq((r.status, r.body), (200, b"200 from b"), f"request {i}")
            for i in range(2):  # a HEAD's 503 has no body to wait for
                r = c.request("HEAD", target=f"/r/h{i}")
                eq(r.status, 200, f"HEAD {i}")
            for i in range(6, 8):  # one more turn of a, on the same connection
                eq(c.request(target=f"/r/{i}").status, 200, f"request {i}")
        eq(a.count(), 5, "round robin: every other request tried a first")
        eq(b.count(), 10, "b answered all")
        eq(a.accepted, 1, "a's 503 was read whole: its connection went back to the pool")
        f.wait_access_log(r"GET /r/7 ")
        both = [l for l in f.access_log() if f'upstream="{a.address}, {b.address}"' in l]
        eq(len(both), 5, "the retried requests log both servers")


def test_503_read_in_part_closes_that_connection():
    with Answering("a", 503) as a, Answering("b", 200) as b, \
            Ferry(config('{attempts: 2, on: ["503"]}'), ports={"a": a.port, "b": b.port}) as f:
        a.partial = True
        t0 = time.monotonic()
        statuses = [ft.request(f.port, target=f"/r/{i}").status for i in range(2)]
        eq(statuses, [200, 200], "both answered by b")
        check(time.monotonic() - t0 < 3, "the rest of a's body is not waited for")
        eq(a.count(), 1, "one request tried a")
        eq(a.wait_eofs(1), 1, "the connection of the dropped answer was closed, not pooled")


def test_last_answer_stands_and_bodies_or_unsafe_methods_are_not_retried():
    with Answering("a", 503) as a, Answering("b", 503) as b, \
            Ferry(config('{attempts: 5, on: ["503", "502"]}'), ports={"a": a.port, "b": b.port}) as f:
        r = ft.request(f.port, target="/r/get")
        eq(r.status, 503, "every server failed: the last answer")
        eq(a.count() + b.count(), 2, "attempts stop when no server is left untried")
        eq(r.body.decode().split(" from ")[1], "b" if a.requests else "a",
           "the answer is the second server's")
        n = a.count() + b.count()
        r = ft.request(f.port, "POST", "/r/post")
        eq((r.status, a.count() + b.count()), (503, n + 1), "POST: not idempotent, not retried")
        r = ft.request(f.port, "PUT", "/r/put", body=b"x" * 100)
        eq((r.status, a.count() + b.count()), (503, n + 2), "PUT with a body: not retried")
        r = ft.request(f.port, "DELETE", "/r/del")
        eq((r.status, a.count() + b.count()), (503, n + 4), "DELETE without a body: retried")
        a.status = b.status = 500
        r = ft.request(f.port, target="/r/500")
        eq((r.status, a.count() + b.count()), (500, n + 5), "500 is not listed")


def test_connect_failure_and_reset_follow_the_route_not_the_upstream():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("{attempts: 2, on: [connect-failure, reset]}", extra_route="""
  - path_prefix: /s
    upstream: api
    retry: {on: ["503"]}
"""), ports={"a": a.port, "b": b.port}) as f:
        a.mode = "reset"
        for i in range(4):
            r = ft.request(f.port, target=f"/r/reset{i}")
            eq((r.status, who(r)), (200, "b"), f"reset retried {i}")
        a.down()
        for i in range(4):
            r = ft.request(f.port, target=f"/r/down{i}")
            eq((r.status, who(r)), (200, "b"), f"connect failure retried {i}")
        statuses = sorted(ft.request(f.port, target=f"/s/{i}").status for i in range(4))
        eq(statuses, [200, 200, 502, 502],
           "a route retrying only 503 leaves connect failures alone (the upstream's retries too)")


def test_route_timeout_bounds_all_attempts():
    with Answering("a", 503) as a, ScriptedUpstream("b") as b, \
            Ferry(config('{attempts: 2, on: ["503"]}').replace("    upstream: api\n",
                                                               "    upstream: api\n    timeout: 1500ms\n"),
                  ports={"a": a.port, "b": b.port}) as f:
        a.delay = 1.0
        b.mode = "stall"
        results = []
        for i in range(2):  # one of the two starts on a
            t0 = time.monotonic()
            r = ft.request(f.port, target=f"/r/t{i}")
            results.append((r.status, time.monotonic() - t0))
        b.release()
        for status, took in results:
            eq(status, 504, f"timed out: {results}")
            check(took < 2.3, f"1.5 s for all attempts, not 1 s + 1.5 s: {results}")


def scrape(f):
    r = ft.admin_request(f.ports["admin"], target="/metrics")
    eq(r.status, 200)
    out = {}
    for line in r.body.decode().splitlines():
        if line.startswith("ferry_retr"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_budget_cuts_retries_off_across_two_workers():
    # 20% of the route's requests over 10 s, at least 10: every request
    # here fails and asks for a retry, on either of two workers.
    with Answering("a", 503) as a, Answering("b", 503) as b, \
            Ferry(config('{attempts: 2, on: ["503"], budget: 20%}', workers=2, admin=True),
                  ports={"a": a.port, "b": b.port}) as f:
        t0 = time.monotonic()
        for i in range(30):
            eq(ft.request(f.port, target=f"/r/{i}").status, 503)
        eq(a.count() + b.count(), 30 + 10,
           "30 requests: the floor of 10 retries, shared by the workers")
        for i in range(30, 100):
            eq(ft.request(f.port, target=f"/r/{i}").status, 503)
        took = time.monotonic() - t0
        check(took < 9, f"the requests fit in one window ({took:.1f}s)")
        eq(a.count() + b.count(), 100 + 20, "100 requests: 20% of them retried")
        m = scrape(f)
        eq(m.get('ferry_retries_total{route="/r",reason="status"}'), 20.0, f"retries metric {m}")
        eq(m.get('ferry_retry_budget_exhausted_total{route="/r"}'), 80.0, f"refused by budget {m}")


def test_config_errors():
    base = """
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  api: {servers: [{address: "127.0.0.1:9"}]}
routes:
  - upstream: api
"""
    rc, out, _ = ft.ferry_check(base + '    retry: {attempts: 3, on: [connect-failure, reset, "503", 504], budget: 25%}\n')
    eq(rc, 0, "a valid retry: " + out)
    rc, out, _ = ft.ferry_check(base + "    retry: {}\n")
    eq(rc, 0, "defaults: " + out)
    cases = [
        ("{attempts: 0}", "routes[0].retry.attempts", "1"),
        ("{attempts: 11}", "routes[0].retry.attempts", "10"),
        ("{on: [rest]}", 'unknown retry condition "rest" (did you mean "reset"?)', ":7:"),
        ('{on: ["404"]}', "only 500 to 599", "routes[0].retry.on[0]"),
        ("{on: [sometimes]}", 'expected connect-failure, reset, or a status from "500" to "599"', ":7:"),
        ("{on: []}", "at least one condition", "routes[0].retry.on"),
        ("{budget: 150%}", "from 0% to 100%", "routes[0].retry.budget"),
        ("{budget: lots}", "from 0% to 100%", ":7:"),
        ("{attempt: 2}", 'did you mean "attempts"', "routes[0].retry"),
        ("3", "routes[0].retry", ""),
    ]
    for value, want, want2 in cases:
        rc, out, _ = ft.ferry_check(base + f"    retry: {value}\n")
        eq(rc, 1, f"retry: {value}: {out}")
        check(want in out and want2 in out, f"retry: {value}: expected {want!r} and {want2!r} in {out}")
    rc, out, _ = ft.ferry_check(base + "  - respond: {status: 200}\n    retry: {}\n")
    eq(rc, 1, out)
    check("retry only applies to routes with upstream" in out, out)


ft.main(globals())
