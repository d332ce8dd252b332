"""Route traffic control (SPEC §8, issue 16): weighted split across
upstreams, allow/deny on the client address (direct, PROXY protocol,
X-Forwarded-For from a trusted proxy), max_requests (circuit breaking)
and rate_limit, plus their `ferry -t` checks."""
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Client, eq, check


def who(r):
    return r.body.decode().rsplit(" ", 1)[-1]


def split_config(w1, w2, workers=1):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
access_log: {{path: "-"}}
upstreams:
  v1: {{servers: [{{address: 127.0.0.1:{{port:a}}}}, {{address: 127.0.0.1:{{port:b}}}}]}}
  v2: {{servers: [{{address: 127.0.0.1:{{port:c}}}}]}}
routes:
  - path_prefix: /
    upstreams:
      - {{name: v1, weight: {w1}}}
      - {{name: v2, weight: {w2}}}
"""


def test_split_90_10_is_exact_and_each_upstream_still_balances():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, ScriptedUpstream("c") as c, \
            Ferry(split_config(90, 10), ports={"a": a.port, "b": b.port, "c": c.port}) as f:
        seq = ""
        with Client(f.port) as cl:
            for i in range(40):
                r = cl.request(target=f"/r{i}")
                eq(r.status, 200, f"request {i}")
                seq += who(r)
        for k in range(4):  # every 10 requests: 9 to v1, 1 to v2, in order
            block = seq[10 * k:10 * k + 10]
            eq(block.count("c"), 1, f"v2 (canary) requests in block {k} of {seq}")
        eq(seq.count("c"), 4, f"canary share of {seq}")
        eq(seq.count("a"), 18, f"v1 server a in {seq}")
        eq(seq.count("b"), 18, f"v1 server b in {seq}")


def test_split_50_50_alternates_across_two_workers():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, ScriptedUpstream("c") as c, \
            Ferry(split_config(50, 50, workers=2), ports={"a": a.port, "b": b.port, "c": c.port}) as f:
        # a new connection each: both workers take part; the order is
        # shared by the process
        seq = "".join(who(ft.request(f.port, target=f"/n{i}")) for i in range(20))
        eq(seq.count("c"), 10, f"half to v2 across workers: {seq}")


def test_split_checks():
    base = """
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  orders-v1: {servers: [{address: "127.0.0.1:9"}]}
  orders-v2: {servers: [{address: "127.0.0.1:9"}]}
routes:
"""
    rc, out, _ = ft.ferry_check(base + """  - upstreams: [{name: orders-v1, weight: 90}, {name: orders-v3, weight: 10}]
""")
    eq(rc, 1, "unknown upstream in a split: " + out)
    check('unknown upstream "orders-v3" (did you mean "orders-v1"?)' in out
          or 'unknown upstream "orders-v3" (did you mean "orders-v2"?)' in out, out)
    check(":7:" in out, "file:line of the error: " + out)
    rc, out, _ = ft.ferry_check(base + """  - upstreams: [{name: orders-v1, weight: 0}]
""")
    eq(rc, 1, out)
    check("weight" in out and "1" in out and "1000" in out, out)
    rc, out, _ = ft.ferry_check(base + """  - upstreams: [{name: orders-v1, weight: 1001}]
""")
    eq(rc, 1, out)
    rc, out, _ = ft.ferry_check(base + """  - upstream: orders-v1
    upstreams: [{name: orders-v2, weight: 1}]
""")
    eq(rc, 1, out)
    check("upstreams conflicts with upstream" in out, out)
    rc, out, _ = ft.ferry_check(base + """  - upstreams: [{name: orders-v1, weight: 3}, {name: orders-v2}]
    allow: [10.0.0.0/8, "fd00::/8"]
    deny: [10.1.0.0/16]
    rate_limit: {requests: 100, per: 1s, burst: 20, key: "header:X-User"}
""")
    eq(rc, 0, "a valid route with every new key: " + out)
    rc, out, _ = ft.ferry_check(base + """  - upstream: orders-v1
    allow: [10.1.2.3/8]
    rate_limit: {requests: 10, key: cookie:x}
""")
    eq(rc, 1, out)
    check("10.0.0.0/8" in out, "the range a bad prefix means: " + out)
    check("expected client_ip, header:NAME or route" in out, out)
    rc, out, _ = ft.ferry_check(base + """  - respond: {status: 200}
    deny: [10.0.0.0/8]
""")
    eq(rc, 1, out)
    check("deny only applies to routes with upstream" in out, out)


def acl_config(extra_listener="", allow="", deny=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
{extra_listener}
access_log: {{path: "-"}}
upstreams:
  api: {{servers: [{{address: 127.0.0.1:{{port:a}}}}]}}
routes:
  - path_prefix: /
    upstream: api
{allow}{deny}
"""


def test_allow_and_deny_on_the_peer_address():
    with ScriptedUpstream("a") as a, \
            Ferry(acl_config(allow="    allow: [127.0.0.0/8]\n"), ports={"a": a.port}) as f:
        eq(ft.request(f.port).status, 200, "loopback is in allow")
    with ScriptedUpstream("a") as a, \
            Ferry(acl_config(allow="    allow: [10.0.0.0/8, \"::1\"]\n"), ports={"a": a.port}) as f:
        r = ft.request(f.port)
        eq(r.status, 403, "127.0.0.1 is not in allow")
        eq(a.count(), 0, "a refused request never reaches the upstream")
        f.wait_access_log(r'" 403 ')
    with ScriptedUpstream("a") as a, \
            Ferry(acl_config(allow="    allow: [127.0.0.0/8]\n", deny="    deny: [127.0.0.1]\n"),
                  ports={"a": a.port}) as f:
        eq(ft.request(f.port).status, 403, "deny is checked first")


def test_allow_deny_with_proxy_protocol_and_trusted_proxies():
    cfg = acl_config(extra_listener="    proxy_protocol: true\n",
                     deny="    deny: [203.0.113.0/24, \"2001:db8::/32\"]\n")
    with ScriptedUpstream("a") as a, Ferry(cfg, ports={"a": a.port}) as f:
        for prefix, want in ((b"PROXY TCP4 203.0.113.7 127.0.0.1 5000 80\r\n", 403),
                             (b"PROXY TCP4 198.51.100.7 127.0.0.1 5000 80\r\n", 200),
                             (b"PROXY TCP6 2001:db8::7 ::1 5000 80\r\n", 403)):
            with Client(f.port) as c:
                c.send(prefix)
                eq(c.request().status, want, f"client carried by {prefix!r}")
    cfg = acl_config(extra_listener="    trusted_proxies: [127.0.0.0/8]\n",
                     allow="    allow: [198.51.100.0/24]\n")
    with ScriptedUpstream("a") as a, Ferry(cfg, ports={"a": a.port}) as f:
        ok = ft.request(f.port, headers=(("Host", "t"), ("X-Forwarded-For", "198.51.100.9")))
        eq(ok.status, 200, "the client a trusted proxy names is allowed")
        no = ft.request(f.port, headers=(("Host", "t"), ("X-Forwarded-For", "192.0.2.9")))
        eq(no.status, 403, "the client a trusted proxy names is not in allow")
        eq(ft.request(f.port).status, 403, "the proxy itself is not in allow")


def test_max_requests_refuses_at_once_while_requests_are_held():
    cfg = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 2
access_log: {path: "-"}
admin: {address: "127.0.0.1:{port:admin}"}
upstreams:
  api:
    servers: [{address: "127.0.0.1:{port:a}"}]
    max_requests: 2
routes:
  - upstream: api
"""
    with ScriptedUpstream("a") as a, Ferry(cfg, ports={"a": a.port}) as f:
        a.mode = "stall"
        held = []
        for i in range(2):
            t = threading.Thread(target=lambda i=i: held.append(ft.request(f.port, target=f"/h{i}")),
                                 daemon=True)
            t.start()
        a.wait_requests(2)
        t0 = time.monotonic()
        r = ft.request(f.port, target="/over")
        eq(r.status, 503, "a third request while 2 are in flight")
        check(time.monotonic() - t0 < 2, "refused at once, not queued")
        eq(a.count(), 2, "the refused request never reached the server")
        m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
        check('ferry_circuit_open_total{upstream="api"} 1' in m, m[-2000:])
        a.release()
        a.mode = "ok"
        deadline = time.monotonic() + ft.IO_TIMEOUT
        while True:  # the held requests end (closed by the server): places come back
            r = ft.request(f.port, target="/after")
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        eq(r.status, 200, "places given back when the held requests ended")


def rl_config(key="client_ip", workers=1, requests=5, per="10s", burst=5):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
    trusted_proxies: [127.0.0.0/8]
workers: {workers}
access_log: {{path: "-"}}
admin: {{address: "127.0.0.1:{{port:admin}}"}}
upstreams:
  api: {{servers: [{{address: 127.0.0.1:{{port:a}}}}]}}
routes:
  - path_prefix: /
    upstream: api
    rate_limit: {{requests: {requests}, per: {per}, burst: {burst}, key: "{key}"}}
"""


def test_rate_limit_across_two_workers_gives_429_with_retry_after():
    with ScriptedUpstream("a") as a, Ferry(rl_config(workers=2), ports={"a": a.port}) as f:
        got = [ft.request(f.port, target=f"/n{i}") for i in range(8)]  # new connection each
        codes = [r.status for r in got]
        eq(codes.count(200), 5, f"burst of 5 then refused, over both workers: {codes}")
        eq(codes.count(429), 3, f"refused: {codes}")
        r = got[-1]
        eq(r.header("Retry-After"), "2", "one token per 2 s")
        eq(a.count(), 5, "refused requests never reach the upstream")
        m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
        check('ferry_rate_limited_total{route="/"} 3' in m, m[-2000:])


def test_rate_limit_keys_are_separate():
    with ScriptedUpstream("a") as a, Ferry(rl_config(burst=2, requests=2, per="1m"),
                                           ports={"a": a.port}) as f:
        def get(ip):
            return ft.request(f.port, headers=(("Host", "t"), ("X-Forwarded-For", ip))).status
        eq([get("198.51.100.1") for _ in range(3)], [200, 200, 429], "client 1")
        eq([get("198.51.100.2") for _ in range(3)], [200, 200, 429], "client 2 has its own bucket")
    with ScriptedUpstream("a") as a, Ferry(rl_config(key="header:X-User", burst=1, requests=1,
                                                     per="1m"), ports={"a": a.port}) as f:
        def get(user):
            h = (("Host", "t"),) + ((("X-User", user),) if user else ())
            return ft.request(f.port, headers=h).status
        eq([get("u1"), get("u1"), get("u2")], [200, 429, 200], "per X-User")
        eq([get(None), get(None)], [200, 200], "without the header: not limited")
    with ScriptedUpstream("a") as a, Ferry(rl_config(key="route", burst=1, requests=1, per="1m"),
                                           ports={"a": a.port}) as f:
        def get(ip):
            return ft.request(f.port, headers=(("Host", "t"), ("X-Forwarded-For", ip))).status
        eq([get("198.51.100.1"), get("198.51.100.2")], [200, 429], "one bucket for the route")


TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_kept_reparented_generated_or_replaced():
    cfg = """
listeners:
  - address: 127.0.0.1:{port:http}
access_log: {path: "-", format: json}
upstreams:
  api: {servers: [{address: "127.0.0.1:{port:a}"}]}
routes:
  - upstream: api
"""
    import json
    import re
    with ScriptedUpstream("a") as a, Ferry(cfg, ports={"a": a.port}) as f:
        hexre = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
        ft.request(f.port, target="/kept", headers=(("Host", "t"), ("traceparent", TP),
                                                    ("tracestate", "vendor=a,other=b")))
        m = a.wait_requests(1)[-1]
        eq(len(m.header_all("traceparent")), 1, "one traceparent upstream")
        g = hexre.match(m.header("traceparent"))
        check(g, "traceparent sent: " + m.header("traceparent"))
        eq(g.group(1), "4bf92f3577b34da6a3ce929d0e0e4736", "trace id kept")
        check(g.group(2) != "00f067aa0ba902b7", "a new parent id: ferry's own span")
        eq(g.group(3), "01", "flags kept")
        eq(m.header("tracestate"), "vendor=a,other=b", "tracestate carried unchanged")
        line = f.wait_access_log(r"/kept")
        eq(json.loads(line)["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "trace id in the log")

        ft.request(f.port, target="/none")
        m = a.wait_requests(2)[-1]
        g = hexre.match(m.header("traceparent", ""))
        check(g, "generated when missing: " + str(m.header("traceparent")))
        check(g.group(1) != "0" * 32, "a trace id that is not zero")
        line = f.wait_access_log(r"/none")
        eq(json.loads(line)["trace_id"], g.group(1), "generated trace id in the log")

        bad = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ft.request(f.port, target="/bad", headers=(("Host", "t"), ("traceparent", bad)))
        m = a.wait_requests(3)[-1]
        eq(len(m.header_all("traceparent")), 1, "the malformed one is not forwarded")
        g = hexre.match(m.header("traceparent", ""))
        check(g and g.group(2) != "0" * 16, "malformed replaced: " + str(m.header("traceparent")))


def test_route_timeout_overrides_upstream_response():
    cfg = """
listeners:
  - address: 127.0.0.1:{port:http}
access_log: {path: "-"}
timeouts: {upstream_response: 30s}
upstreams:
  api: {servers: [{address: "127.0.0.1:{port:a}"}]}
routes:
  - path_prefix: /fast
    upstream: api
    timeout: 300ms
"""
    with ScriptedUpstream("a") as a, Ferry(cfg, ports={"a": a.port}) as f:
        a.mode = "stall"
        t0 = time.monotonic()
        r = ft.request(f.port, target="/fast/x")
        took = time.monotonic() - t0
        eq(r.status, 504, "the route's timeout, not upstream_response (30 s)")
        check(0.25 <= took < 5, f"answered after {took:.2f}s")
        a.release()
    rc, out, _ = ft.ferry_check(cfg.replace("{port:http}", "8080").replace("{port:a}", "9")
                                .replace("timeout: 300ms", "timeout: soon"))
    eq(rc, 1, out)
    check("routes[0].timeout" in out, out)


ft.main(globals())
