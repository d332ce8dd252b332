"""Upstream keep-alive pooling, and the 502/504 answers for failing upstreams."""
import socket

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "-"}
timeouts:
  upstream_connect: 1s
  upstream_response: 400ms
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
    keepalive: {max_idle: 8, idle_timeout: 30s}
routes:
  - upstream: up
"""


def test_100_sequential_requests_over_4_clients_use_at_most_4_upstream_connections():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        clients = [Client(f.port) for _ in range(4)]
        for i in range(100):
            r = clients[i % 4].request(target=f"/r{i}")
            eq(r.status, 200, f"request {i}")
        for c in clients:
            c.close()
        eq(len(up.requests), 100, "requests seen upstream")
        check(up.accepted <= 4, f"upstream connections used: {up.accepted} (expected at most 4)")


def test_connection_reused_across_client_connections():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for i in range(10):
            eq(ft.request(f.port, target=f"/n{i}").status, 200, f"request {i}")
        eq(up.accepted, 1, "one pooled upstream connection serves sequential clients")


def test_response_cut_short_is_not_pooled():
    calls = {"n": 0}

    def handler(c):
        m = c.read_request()
        if m is None:
            return
        c.upstream.record(m)
        calls["n"] += 1
        if calls["n"] == 1:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")  # then close: cut short
            return
        c.respond(200, "whole")
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            c.respond(200, "whole")

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n")
            r = ft.read_message(c, is_request=False, head_only=True)
            eq(r.status, 200, "head of the cut response is relayed")
            check(c.is_closed(), "the client's connection is closed when its response is cut short")
        eq(ft.request(f.port, target="/2").body, b"whole", "next request")
        eq(up.accepted, 2, "the cut connection was not reused")


def test_refused_upstream_is_502():
    port = ft.free_port()  # nobody listens here
    with Ferry(CONFIG, ports={"up": port}) as f:
        r = ft.request(f.port, target="/x")
        eq(r.status, 502, "status")
        check(r.header("x-request-id"), "502 carries the request id")
        check(r.header("content-type", "").startswith("text/plain"), "plain-text body")
        check(len(r.body) > 0, "short body")
        f.wait_access_log(r'"GET /x HTTP/1.1" 502')


def test_reset_before_response_is_502():
    def handler(c):
        c.read_request()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.sock.close()  # RST

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        eq(ft.request(f.port, target="/x").status, 502, "status")


def test_invalid_response_is_502():
    def handler(c):
        c.read_request()
        c.send(b"HTTP/1.1 abc nonsense\r\n\r\n")

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        r = ft.request(f.port, target="/x")
        eq(r.status, 502, "status")


def test_silent_upstream_is_504_after_upstream_response():
    def handler(c):
        c.upstream.record(c.read_request())
        c.sock.settimeout(30)
        c.sock.recv(1)  # hold the connection until ferry gives up

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request(target="/slow")
            eq(r.status, 504, "status")
            check(r.header("x-request-id"), "504 carries the request id")
        f.wait_access_log(r'"GET /slow HTTP/1.1" 504')


ft.main(globals())
