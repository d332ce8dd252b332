"""retries: a request moves to another server on connect failure or a
reset before any response byte (unless body bytes were sent); every
attempt is in the access log's upstream field. With health checks and
retries, no request fails while one server is healthy."""
import json
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Client, eq, check


def config(extra="", workers=1, fmt="combined"):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
access_log: {{path: "-", format: {fmt}}}
upstreams:
  api:
    servers:
      - address: 127.0.0.1:{{port:a}}
      - address: 127.0.0.1:{{port:b}}
{extra}
routes:
  - upstream: api
"""


NO_PASSIVE = "    passive: {consecutive_failures: 0}\n"


def who(r):
    return r.body.decode().rsplit(" ", 1)[-1]


def test_connect_refused_moves_to_another_server_and_logs_both():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(NO_PASSIVE + "    retries: 1\n"), ports={"a": a.port, "b": b.port}) as f:
        addr_a = a.address
        a.down()
        with Client(f.port) as c:
            for i in range(20):
                r = c.request(target=f"/r{i}")
                eq(r.status, 200, f"request {i}")
                eq(who(r), "b", f"request {i}")
        both = f'upstream="{addr_a}, {b.address}"'
        f.wait_access_log(r"GET /r19 ")
        eq(sum(both in l for l in f.access_log()), 10, f"requests logged with both servers ({both})")


def test_json_access_log_lists_every_attempt():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(NO_PASSIVE, fmt="json"), ports={"a": a.port, "b": b.port}) as f:
        addr_a = a.address
        a.down()
        eq(ft.request(f.port, target="/j").status, 200)
        line = f.wait_access_log(r'"target":"/j"')
        eq(json.loads(line)["upstream"], f"{addr_a}, {b.address}", "upstream field")


def test_reset_before_response_retries_get_but_not_a_request_whose_body_was_sent():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(NO_PASSIVE + "    retries: 1\n"), ports={"a": a.port, "b": b.port}) as f:
        a.mode = "reset"
        with Client(f.port) as c:
            for i in range(4):
                r = c.request(target=f"/g{i}")
                eq((r.status, who(r)), (200, "b"), f"GET {i}")
        check(a.count() >= 2, "GETs that a reset")
        posts = []
        for i in range(4):  # round robin: some land on a first
            r = ft.request(f.port, "POST", f"/p{i}", body=b"payload")
            posts.append((r.status, r.body))
        a_posts = [m for m in a.requests if m.method == "POST"]
        check(a_posts, f"no POST reached a: {posts}")
        eq(sum(s == 502 for s, _ in posts), len(a_posts), f"POSTs a reset are not retried: {posts}")
        eq(sum(s == 200 for s, _ in posts), 4 - len(a_posts), "POSTs b answered")
        eq([m.method for m in b.requests].count("POST"), 4 - len(a_posts), "POSTs never resent to b")


def test_retries_zero_reports_the_failure():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(NO_PASSIVE + "    retries: 0\n"), ports={"a": a.port, "b": b.port}) as f:
        a.down()
        statuses = [ft.request(f.port, target=f"/z{i}").status for i in range(4)]
        eq(sorted(statuses), [200, 200, 502, 502], "without retries a's turns fail")


def test_no_request_fails_while_a_server_goes_down_and_comes_back():
    extra = """    health_check: {path: /healthz, interval: 100ms, timeout: 500ms,
                   unhealthy_threshold: 2, healthy_threshold: 2}
    retries: 1
"""
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(extra, workers=2), ports={"a": a.port, "b": b.port}) as f:
        port, addr = a.port, a.address
        failures = []
        stop = threading.Event()
        counts = {"n": 0}

        def load(k):
            end = time.monotonic() + 60
            n = 0
            while not stop.is_set() and n < 20000 and time.monotonic() < end:
                with Client(f.port) as c:  # a fresh connection now and then: both workers
                    for _ in range(5):
                        target = f"/l{k}-{n}"
                        n += 1
                        counts["n"] += 1
                        try:
                            r = c.request(target=target)
                        except Exception as e:  # a timeout or a closed connection fails too
                            failures.append((target, repr(e)))
                            return
                        if r.status != 200:
                            failures.append((target, r.status, r.body))

        threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
        for t in threads:
            t.start()
        a.wait_requests(5)
        a.down()
        f.wait_stderr(rf"upstream api server {addr} down: 2 failed checks \(connect refused\)")
        b_before = b.count()
        b.wait_requests(b_before + 20)
        with ScriptedUpstream("a", port=port) as a2:
            f.wait_stderr(rf"upstream api server {addr} up: 2 passed checks")
            a2.wait_requests(10)  # traffic is back on a
            stop.set()
            for t in threads:
                t.join(ft.IO_TIMEOUT)
        eq(failures, [], f"failed requests out of {counts['n']}; access log: {f.access_log()[-20:]}")


ft.main(globals())
