"""listeners[].trusted_proxies (SPEC §2, §3; issue 15): from a peer inside
the list, X-Forwarded-Proto and X-Forwarded-Host reach the upstream as sent,
and the client address in the access log and for hash balancing is the
right-most X-Forwarded-For entry that is not a trusted proxy; from any other
peer they are replaced and the client is the peer. X-Forwarded-For always
gets the peer appended."""
import json
import signal

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Upstream, eq, check

# The test client is 127.0.0.1: trusted on one listener, not on the other.
LISTENERS = """
listeners:
  - address: 127.0.0.1:{port:trusted}
    trusted_proxies: [10.0.0.0/8, 127.0.0.0/8, "fd00::/8"]
  - address: 127.0.0.1:{port:plain}
    trusted_proxies: [10.0.0.0/8]
workers: 1
access_log: {path: "-", format: json}
"""

FORWARDED = (("Host", "app.test"), ("X-Forwarded-Proto", "https"),
             ("X-Forwarded-Host", "shop.example"),
             ("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 10.1.1.1"))


def log_entry(f, rid):
    line = f.wait_access_log(f'"request_id":"{rid}"')
    return json.loads(line)


def test_trusted_peer_keeps_forwarding_headers_and_names_the_client():
    with Upstream(name="up") as up, Ferry(LISTENERS + """
upstreams:
  up: {servers: [{address: 127.0.0.1:{port:up}}]}
routes:
  - upstream: up
""", ports={"up": up.port}) as f:
        r = ft.request(f.ports["trusted"], headers=FORWARDED + (("X-Request-Id", "via-trusted"),))
        eq(r.status, 200, "status via the trusted listener")
        m = up.wait_requests(1)[0]
        eq(m.header_all("X-Forwarded-Proto"), ["https"], "X-Forwarded-Proto from a trusted peer")
        eq(m.header_all("X-Forwarded-Host"), ["shop.example"], "X-Forwarded-Host from a trusted peer")
        eq(m.header("X-Forwarded-For"), "198.51.100.1, 203.0.113.7, 10.1.1.1, 127.0.0.1",
           "X-Forwarded-For gets the peer appended")
        eq(log_entry(f, "via-trusted")["client"], "203.0.113.7",
           "access log client: the right-most untrusted X-Forwarded-For entry")

        r = ft.request(f.ports["plain"], headers=FORWARDED + (("X-Request-Id", "via-plain"),))
        eq(r.status, 200, "status via the untrusted listener")
        m = up.wait_requests(2)[1]
        eq(m.header_all("X-Forwarded-Proto"), ["http"], "X-Forwarded-Proto from an untrusted peer")
        eq(m.header_all("X-Forwarded-Host"), ["app.test"],
           "X-Forwarded-Host from an untrusted peer is its Host")
        eq(m.header("X-Forwarded-For"), "198.51.100.1, 203.0.113.7, 10.1.1.1, 127.0.0.1",
           "X-Forwarded-For gets the peer appended")
        eq(log_entry(f, "via-plain")["client"], "127.0.0.1", "access log client: the peer")

        # A trusted peer that sends no forwarding headers gets ferry's own.
        r = ft.request(f.ports["trusted"], headers=(("Host", "app.test"), ("X-Request-Id", "bare")))
        eq(r.status, 200, "status")
        m = up.wait_requests(3)[2]
        eq(m.header_all("X-Forwarded-Proto"), ["http"], "X-Forwarded-Proto without one sent")
        eq(m.header_all("X-Forwarded-Host"), ["app.test"], "X-Forwarded-Host without one sent")
        eq(log_entry(f, "bare")["client"], "127.0.0.1", "no X-Forwarded-For: the peer")


def test_hash_by_client_ip_uses_the_forwarded_client():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, Ferry(LISTENERS + """
upstreams:
  api:
    servers: [{address: 127.0.0.1:{port:a}}, {address: 127.0.0.1:{port:b}}]
    balance: hash
    hash_key: client_ip
routes:
  - upstream: api
""", ports={"a": a.port, "b": b.port}) as f:
        def server(port, client):
            r = ft.request(port, headers=(("Host", "x.test"),
                                          ("X-Forwarded-For", f"{client}, 10.0.0.1")))
            eq(r.status, 200, "status")
            return r.body.decode().rsplit(" ", 1)[-1]

        clients = [f"203.0.113.{i}" for i in range(1, 21)]
        per = {c: {server(f.ports["trusted"], c) for _ in range(3)} for c in clients}
        check(all(len(s) == 1 for s in per.values()), f"a client moved between servers: {per}")
        eq(set().union(*per.values()), {"a", "b"},
           "20 forwarded clients spread over both servers")
        seen = {server(f.ports["plain"], c) for c in clients}
        eq(len(seen), 1, "an untrusted peer's X-Forwarded-For is ignored: one peer, one server")


def test_reload_changes_the_trusted_list_of_a_running_listener():
    with Upstream(name="up") as up, Ferry(LISTENERS + """
upstreams:
  up: {servers: [{address: 127.0.0.1:{port:up}}]}
routes:
  - upstream: up
""", ports={"up": up.port}) as f:
        eq(ft.request(f.ports["plain"], headers=FORWARDED).status, 200, "status before the reload")
        eq(up.wait_requests(1)[0].header("X-Forwarded-Proto"), "http", "untrusted before")
        with open(f.config_path) as fh:
            text = fh.read()
        with open(f.config_path, "w") as fh:
            fh.write(text.replace("trusted_proxies: [10.0.0.0/8]\n",
                                  "trusted_proxies: [10.0.0.0/8, 127.0.0.1]\n"))
        f.signal(signal.SIGHUP)
        f.wait_stderr(r"configuration generation 2 published")
        # the worker opens the listener with the new list, then closes the old one
        f.wait_stderr(r"reload: no longer listening on 127\.0\.0\.1:" + str(f.ports["plain"]))
        eq(ft.request(f.ports["plain"], headers=FORWARDED).status, 200, "status after the reload")
        eq(up.wait_requests(2)[1].header("X-Forwarded-Proto"), "https", "trusted after the reload")


def test_bad_range_is_a_config_error_with_position_and_fix():
    rc, out, path = ft.ferry_check("""listeners:
  - address: 127.0.0.1:18080
    trusted_proxies: [10.0.0.0/8, 10.1.2.3/8, proxy.internal]
""")
    eq(rc, 1, "ferry -t exit code (configuration errors)")
    check(f"{path}:3:35: listeners[0].trusted_proxies[1]: invalid address range: \"10.1.2.3/8\" "
          f"has bits set after the prefix: write 10.0.0.0/8" in out, out)
    check(f"{path}:3:47: listeners[0].trusted_proxies[2]: invalid address range: "
          f"\"proxy.internal\" is not an IPv4 or IPv6 address" in out, out)


if __name__ == "__main__":
    ft.main(globals())
