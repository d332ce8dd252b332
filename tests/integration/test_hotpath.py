"""The request path's shortcuts keep HTTP's behaviour: the client socket is
read while a request is in flight (pipelined bytes and an early FIN wait
their turn), and idle upstream connections beyond keepalive.max_idle are
kept just long enough for the next burst, then closed."""
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, ScriptedUpstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "off"}
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
    keepalive: {max_idle: 2, idle_timeout: 30s}
routes:
  - upstream: up
"""


def test_pipelined_requests_followed_by_fin_are_all_answered_in_order():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"".join(f"GET /{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for n in ("a", "b", "c")))
            c.sock.shutdown(socket.SHUT_WR)
            for n in ("a", "b", "c"):
                r = c.response()
                eq(r.status, 200, f"status of /{n}")
                eq(r.body, b"ok from up", f"body of /{n}")
            check(c.is_closed(), "ferry closes once the pipelined requests are answered")
        eq([m.target for m in up.requests], ["/a", "/b", "/c"], "order upstream")


def test_fin_before_the_request_body_is_complete_closes_without_a_response():
    def serve(c):
        try:
            up.serve_keepalive(c)
        except ft.Closed:  # ferry gives up the cut request's connection
            pass

    up = Upstream(serve)
    with up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabcde")
            c.sock.shutdown(socket.SHUT_WR)
            check(c.is_closed(), "a request cut short by the client gets no response")
        eq(ft.request(f.port, target="/after").status, 200, "ferry still serves")


def test_bursts_over_max_idle_reuse_connections_and_the_surplus_closes_after():
    clients, bursts = 8, 4
    lock = threading.Condition()
    seen = {"n": 0, "hold": True}

    def hold_until_burst_complete(c):
        # Answer only once every request of this burst has arrived, so each
        # burst needs `clients` upstream connections at the same time.
        while True:
            m = c.read_request()
            if m is None:
                with c.upstream._cv:
                    c.upstream.eofs += 1
                    c.upstream._cv.notify_all()
                return
            c.upstream.record(m)
            with lock:
                seen["n"] += 1
                if not seen["hold"]:
                    goal = 0
                else:
                    goal = ((seen["n"] - 1) // clients + 1) * clients
                lock.notify_all()
                deadline = time.monotonic() + ft.IO_TIMEOUT
                while seen["n"] < goal:
                    left = deadline - time.monotonic()
                    check(left > 0, f"burst never completed ({seen['n']} of {goal} requests)")
                    lock.wait(left)
            c.respond(200, "ok")

    up = ScriptedUpstream()
    up.handler = hold_until_burst_complete
    with up, Ferry(CONFIG, ports={"up": up.port}) as f:
        cs = [Client(f.port) for _ in range(clients)]
        try:
            for b in range(bursts):
                for i, c in enumerate(cs):
                    c.send(f"GET /b{b}c{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                for i, c in enumerate(cs):
                    eq(c.response().status, 200, f"burst {b} client {i}")
        finally:
            for c in cs:
                c.close()
        eq(up.accepted, clients,
           f"upstream connections for {bursts} bursts of {clients} (max_idle 2): each burst reuses them")
        # Beyond max_idle, idle connections are closed once the burst is over.
        up.wait_eofs(clients - 2)
        with lock:
            seen["hold"] = False
        eq(ft.request(f.port, target="/after").status, 200, "a request after the bursts")
        eq(up.accepted, clients, "served by a connection kept within max_idle")


# Plain response heads that arrive whole are read by the one-pass parser and
# their Content-Length bodies counted by ferry itself; anything else goes to
# llhttp. These check the seams of that split.


def test_length_body_in_pieces_is_relayed_whole_and_the_connection_reused():
    more = threading.Event()

    def serve(c):
        up.record(c.read_request())
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcde")
        check(more.wait(ft.IO_TIMEOUT), "the client saw the first half")
        c.send(b"fghij")
        up.serve_keepalive(c)

    up = Upstream(serve)
    with up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
            while b"abcde" not in c.buf:
                check(c._fill() != b"", "ferry relays the first half before the rest exists")
            more.set()
            r = c.response()
            eq(r.status, 200, "status")
            eq(r.body, b"abcdefghij", "body, from two reads")
            eq(c.request(target="/b").body, b"ok from up", "next request on the same client connection")
        eq(up.accepted, 1, "the upstream connection went back to the pool and served both")


def test_bytes_after_a_length_body_keep_the_connection_out_of_the_pool():
    def serve(c):
        up.record(c.read_request())
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
        check(c.read_request() is None, "ferry closes a connection that sent more than the response")

    up = Upstream(serve)
    with up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for target in ("/1", "/2"):
            r = ft.request(f.port, target=target)
            eq((r.status, r.body), (200, b"ok"), f"response to {target}")
        eq(up.accepted, 2, "each request needed a fresh upstream connection")
        up.wait_requests(2)
    eq(up.errors, [], "upstream handler errors")


def test_a_response_head_longer_than_one_read_is_relayed_the_same():
    big = "v" * 20000  # over one 16 KiB read block: the head is parsed by llhttp

    def serve(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            up.record(m)
            c.respond(200, "ok", headers=(("X-Big", big), ("X-After", "1")))

    up = Upstream(serve)
    with up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            for target in ("/1", "/2"):
                r = c.request(target=target)
                eq(r.status, 200, f"status of {target}")
                eq(r.header("x-big"), big, "the long field, whole")
                eq(r.header("x-after"), "1", "the field after it")
                eq(r.body, b"ok", "body")
        eq(up.accepted, 1, "the connection was reused after a slow-path response")


def test_plain_and_unusual_request_heads_mixed_in_one_pipeline_keep_order_and_framing():
    # Plain body-less heads take the one-pass parser; a body, obs-text, a
    # chunked body and an absolute-form target take llhttp. One write, one
    # connection: each must reach the upstream whole and in order.
    reqs = [
        b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /3 HTTP/1.1\r\nHost: t\r\nX-Caf: caf\xc3\xa9\r\n\r\n",
        b"POST /4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HEAD /5 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        b"GET http://t/6 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"DELETE /7 HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"".join(reqs))
            for n, method in enumerate(["GET", "POST", "GET", "POST", "HEAD", "GET", "DELETE"], 1):
                r = c.response(method)
                eq(r.status, 200, f"status of request {n}")
                eq(r.body, b"" if method == "HEAD" else b"ok from up", f"body of request {n}")
        got = up.wait_requests(7)
        eq([m.target for m in got], ["/1", "/2", "/3", "/4", "/5", "/6", "/7"], "order upstream")
        eq([m.method for m in got], ["GET", "POST", "GET", "POST", "HEAD", "GET", "DELETE"], "methods")
        eq(got[1].body, b"hello", "Content-Length body")
        eq(got[2].header("x-caf"), b"caf\xc3\xa9".decode("latin-1"), "obs-text field passed as sent")
        eq(got[3].body, b"abc", "chunked body")


ft.main(globals())
