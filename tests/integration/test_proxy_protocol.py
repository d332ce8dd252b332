"""PROXY protocol v1/v2 on listeners with proxy_protocol: true, and
limits.max_connections (issue 6)."""
import socket
import time
import struct

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
    proxy_protocol: true
  - address: 127.0.0.1:{{port:plain}}
workers: 1
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "-"}}
{extra}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /
    upstream: api
"""


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_tcp4(src, sport, dst="127.0.0.1", dport=80, tlv=b""):
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs) + len(tlv)) + addrs + tlv


def v2_tcp6(src, sport, dst="::1", dport=80):
    addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + \
        struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(addrs)) + addrs


def v2_local():
    return V2_SIG + bytes([0x20, 0x00, 0x00, 0x00])


def get_with_prefix(port, prefix, target="/x", split=False):
    with Client(port) as c:
        req = f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        if split:  # header in pieces, request in the same packet as its tail
            for i in range(0, len(prefix), 5):
                c.send(prefix[i:i + 5])
            c.send(req)
        else:
            c.send(prefix + req)
        return c.response()


def xff_of(up, n):
    return up.wait_requests(n)[n - 1].header("x-forwarded-for")


def test_v1_client_address_used_for_forwarding_and_logs():
    with Upstream() as up, Ferry(config(up.address)) as f:
        r = get_with_prefix(f.port, b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 80\r\n", "/v1")
        eq(r.status, 200, "status")
        eq(xff_of(up, 1), "203.0.113.7", "X-Forwarded-For from a v1 header")
        f.wait_access_log(r'^203\.0\.113\.7 - - .*"GET /v1 HTTP/1\.1" 200')
        r = get_with_prefix(f.port, b"PROXY TCP6 2001:db8::7 ::1 4000 80\r\n", "/v1b", split=True)
        eq(r.status, 200, "status")
        eq(xff_of(up, 2), "2001:db8::7", "X-Forwarded-For from a v1 TCP6 header sent in pieces")
        r = get_with_prefix(f.port, b"PROXY UNKNOWN\r\n", "/v1c")
        eq(xff_of(up, 3), "127.0.0.1", "UNKNOWN keeps the socket address")


def test_v2_client_address_used_for_forwarding_and_logs():
    with Upstream() as up, Ferry(config(up.address)) as f:
        r = get_with_prefix(f.port, v2_tcp4("198.51.100.9", 50000, tlv=b"\x04\x00\x01x"), "/v2")
        eq(r.status, 200, "status")
        eq(xff_of(up, 1), "198.51.100.9", "X-Forwarded-For from a v2 header with a TLV")
        f.wait_access_log(r'^198\.51\.100\.9 - - .*"GET /v2 HTTP/1\.1" 200')
        r = get_with_prefix(f.port, v2_tcp6("2001:db8::5", 80), "/v2b", split=True)
        eq(xff_of(up, 2), "2001:db8::5", "X-Forwarded-For from a v2 TCP6 header in pieces")
        r = get_with_prefix(f.port, v2_local(), "/v2c")
        eq(xff_of(up, 3), "127.0.0.1", "LOCAL keeps the socket address")
        # keep-alive: the header comes once, the next request on the connection needs none
        with Client(f.port) as c:
            c.send(v2_tcp4("192.0.2.44", 1234) + b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
            eq(c.response().status, 200, "first request")
            eq(c.request(target="/b").status, 200, "second request on the connection")
        eq(xff_of(up, 5), "192.0.2.44", "address kept for the connection")


def test_hash_balancing_uses_the_carried_address():
    with Upstream(name="a") as ua, Upstream(name="b") as ub:
        cfg = f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
    proxy_protocol: true
workers: 1
access_log: {{path: off}}
upstreams:
  api:
    servers:
      - address: {ua.address}
      - address: {ub.address}
    balance: hash
    hash_key: client_ip
routes:
  - path_prefix: /
    upstream: api
"""
        with Ferry(cfg) as f:
            seen = {}
            for i in range(24):
                ip = f"198.51.100.{i + 1}"
                bodies = {get_with_prefix(f.port, f"PROXY TCP4 {ip} 127.0.0.1 4000 80\r\n".encode(),
                                          f"/{i}/{k}").body for k in range(3)}
                eq(len(bodies), 1, f"every request from {ip} goes to one server")
                seen[ip] = bodies.pop()
            # all connections come from 127.0.0.1: only the carried addresses can spread them
            eq(set(seen.values()), {b"ok from a", b"ok from b"}, "both servers get clients")


def test_missing_or_malformed_header_closes_the_connection():
    with Upstream() as up, Ferry(config(up.address)) as f:
        bad = [
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",                       # no header at all
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\nGET / HTTP/1.1\r\n\r\n",   # v1 with a field missing
            b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n",
            b"PROXY " + b"x" * 200,                                        # v1 without CRLF
            V2_SIG + bytes([0x31, 0x11, 0, 12]) + b"\0" * 12,             # v2, version 3
            V2_SIG + bytes([0x21, 0x11, 0, 4]) + b"\0" * 4,               # v2, short TCP4 block
        ]
        for data in bad:
            got = ft.raw_exchange(f.port, data)
            eq(got, b"", f"bytes answered to {data[:40]!r}")
        eq(len(up.requests), 0, "nothing reached the upstream")
        r = ft.admin_request(f.ports["admin"], target="/metrics")
        line = [l for l in r.body.decode().splitlines() if l.startswith("ferry_proxy_protocol_errors_total ")]
        eq(line, [f"ferry_proxy_protocol_errors_total {len(bad)}"], "errors counted")
        # the listener without proxy_protocol is not affected
        eq(ft.request(f.ports["plain"], target="/p").status, 200, "plain listener")
        eq(xff_of(up, 1), "127.0.0.1", "plain listener uses the socket address")


def test_over_max_connections_gets_503_and_close():
    with Upstream() as up, Ferry(config(up.address, "limits:\n  max_connections: 2")) as f:
        a, b = Client(f.ports["plain"]), Client(f.ports["plain"])
        eq(a.request(target="/1").status, 200, "first connection")
        eq(b.request(target="/2").status, 200, "second connection")
        with Client(f.ports["plain"]) as c:
            r = c.request(target="/3")
            eq(r.status, 503, "third connection over max_connections")
            eq(r.header("connection", "").lower(), "close", "Connection: close")
            check(b"max_connections" in r.body, f"body names the limit: {r.body!r}")
            check(c.is_closed(), "closed after the 503")
        m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
        check("ferry_client_connections_rejected_total 1" in m.splitlines(), "rejection counted")
        a.close()
        # a slot is free again once ferry has seen that connection close
        # (its gauge says so: an event, awaited with a deadline)
        deadline = time.monotonic() + ft.IO_TIMEOUT
        while "ferry_client_connections 1" not in \
                ft.admin_request(f.ports["admin"], target="/metrics").body.decode().splitlines():
            check(time.monotonic() < deadline, "ferry never saw the first connection close")
            time.sleep(0.01)
        with Client(f.ports["plain"]) as d:
            r = d.request(target="/4")
        eq(r.status, 200, "a new connection after one closed")
        b.close()
        eq(len([q for q in up.requests if q.target == "/3"]), 0, "the rejected request was not forwarded")


ft.main(globals())
