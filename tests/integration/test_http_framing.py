"""HTTP/1.x framing and semantics (SPEC §3-§4, RFC 9112): bodiless responses,
re-framing, pipelining, interim responses, Upgrade tunnels, request targets,
CONNECT and trailers. Each test sends raw bytes and checks what the client got
and what the upstream received."""
import select
import socket
import threading

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "-"}
timeouts:
  client_idle: 2s
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
routes:
  - upstream: up
"""


def serve(respond):
    """An upstream handler: for each request, respond(conn, msg) answers."""
    def handler(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            if respond(c, m) is False:
                return
    return handler


def test_head_response_has_no_body_whatever_the_upstream_declares():
    def respond(c, m):
        if m.target == "/len":
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        elif m.target == "/chunked":
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            c.respond(200, "after")

    with Upstream(serve(respond)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request("HEAD", "/len")
            eq(r.status, 200, "HEAD status")
            eq(r.header("content-length"), "5", "the declared length is passed on")
            r = c.request("HEAD", "/chunked")
            eq(r.status, 200, "HEAD status")
            check(r.header("transfer-encoding") is None, "no chunked framing on a HEAD answer")
            r = c.request("GET", "/next")
            eq(r.body, b"after", "the connection is still in sync after two HEAD responses")
        eq([m.method for m in up.requests], ["HEAD", "HEAD", "GET"], "upstream saw")


def test_204_and_304_carry_no_body_even_when_the_upstream_sends_one():
    def respond(c, m):
        if m.target == "/204":
            # invalid: a body on a 204; it must not reach the client
            c.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
            return False
        if m.target == "/304":
            c.send(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n")
            return True
        c.respond(200, "next")

    with Upstream(serve(respond)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.response()
            eq(r.status, 204, "status")
            check(r.header("content-length") is None and r.header("transfer-encoding") is None,
                  f"no framing headers on 204: {r.headers}")
            r = c.request("GET", "/304")
            eq(r.status, 304, "status")
            eq(r.header("etag"), '"x"', "304 keeps its validators")
            check(r.header("transfer-encoding") is None, "no chunked framing on 304")
            r = c.request("GET", "/n")
            eq(r.body, b"next", "no stray body bytes reached the client")
            eq(c.buf, b"", "nothing after the last response")


def test_no_length_response_is_chunked_to_http11_and_close_delimited_to_http10():
    def handler(c):
        m = c.read_request()
        c.upstream.record(m)
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        c.close()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request("GET", "/a")
            eq(r.header("transfer-encoding"), "chunked", "HTTP/1.1 client gets chunking")
            check(r.chunked, "chunked on the wire")
            eq(r.body, b"until the end", "body")
            eq(c.request("GET", "/b").body, b"until the end", "the client connection stays usable")
        with Client(f.port) as c:
            r = c.request("GET", "/c", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
            check(r.header("transfer-encoding") is None and r.header("content-length") is None,
                  f"HTTP/1.0: close-delimited: {r.headers}")
            eq(r.body, b"until the end", "body")
            check(c.is_closed(), "closed after the body")


def test_pipelined_requests_are_answered_in_order_and_never_pipelined_upstream():
    state = {"early": []}

    def handler(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            body = ("resp " + m.target).encode()
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:3])
            # The response is not complete: the next request must not come yet.
            r, _, _ = select.select([c.sock], [], [], 0.3)
            if r or c.buf:
                state["early"].append(m.target)
            c.send(body[3:])

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /3 HTTP/1.1\r\nHost: t\r\n\r\n")
            for i in (1, 2, 3):
                eq(c.response().body, f"resp /{i}".encode(), f"response {i} in order")
        eq([m.target for m in up.requests], ["/1", "/2", "/3"], "upstream order")
        eq(state["early"], [], "requests sent upstream before the previous response completed")


def test_expect_100_continue_is_forwarded_and_the_100_relayed():
    def handler(c):
        m = ft.read_message(c, is_request=True, head_only=True)
        c.upstream.record(m)
        c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = ft._read_n(c, 5)
        c.send(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            r = c.response()
            eq(r.status, 100, "the upstream's 100 Continue is relayed before the body is sent")
            c.send(b"hello")
            r = c.response()
            eq(r.status, 201, "final status")
            eq(r.body, b"hello", "the body went through after the 100")
        eq(up.requests[0].header("expect"), "100-continue", "Expect forwarded")


def test_other_1xx_are_relayed_to_http11_clients_only():
    def respond(c, m):
        c.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with Upstream(serve(respond)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.response()
            eq(r.status, 103, "103 relayed to an HTTP/1.1 client")
            eq(r.header("link"), "</s.css>; rel=preload", "with its headers")
            eq(c.response().body, b"ok", "then the final response")
        with Client(f.port) as c:
            c.send(b"GET / HTTP/1.0\r\n\r\n")
            r = c.response()
            eq(r.status, 200, "HTTP/1.0 client sees no interim response")
            eq(r.body, b"ok", "body")


WS_UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def tunnel_upstream(state):
    """Answers an Upgrade with 101, then echoes every byte back upper-cased
    until EOF; records the bytes and whether it saw EOF."""
    def handler(c):
        m = ft.read_message(c, is_request=True)
        c.upstream.record(m)
        c.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhello from upstream")
        data = c.buf
        c.buf = b""
        if data:
            c.send(data.upper())
        while True:
            d = c.sock.recv(65536)
            if not d:
                state["eof"].set()
                return
            data += d
            c.send(d.upper())
    return handler


def test_upgrade_with_101_becomes_a_byte_tunnel_both_ways():
    state = {"eof": threading.Event()}
    with Upstream(tunnel_upstream(state)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(WS_UPGRADE)
            r = ft.read_message(c, is_request=False, head_only=True)
            eq(r.status, 101, "status")
            eq(r.header("upgrade"), "websocket", "Upgrade relayed")
            eq(r.header("connection", "").lower(), "upgrade", "Connection: upgrade relayed")
            while len(c.buf) < len(b"hello from upstream"):
                check(c._fill(), "tunnel open")
            eq(c.buf, b"hello from upstream", "bytes the upstream sent right after the 101")
            c.buf = b""
            for word in (b"abc", b"\x00\xff binary \r\n\r\nGET / HTTP/1.1\r\n\r\n"):
                c.send(word)
                while len(c.buf) < len(word):
                    check(c._fill(), "tunnel open")
                eq(c.buf, word.upper(), "echoed through the tunnel")
                c.buf = b""
        check(state["eof"].wait(ft.IO_TIMEOUT), "the client closing closes the upstream side")
        m = up.requests[0]
        eq(m.header("upgrade"), "websocket", "Upgrade forwarded")
        check("upgrade" in m.header("connection", "").lower(), "Connection: upgrade forwarded")
        eq(m.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==", "end-to-end headers forwarded")
        f.wait_access_log(r'"GET /chat HTTP/1.1" 101 ')


def test_tunnel_closes_the_client_when_the_upstream_closes():
    def handler(c):
        c.upstream.record(ft.read_message(c, is_request=True))
        c.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-proto\r\nConnection: upgrade\r\n\r\nbye")
        c.close()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(WS_UPGRADE.replace(b"websocket", b"x-proto"))
            r = ft.read_message(c, is_request=False, head_only=True)
            eq(r.status, 101, "status")
            while c._fill():
                pass
            eq(c.buf, b"bye", "bytes before the upstream's close are delivered, then EOF")


def test_tunnel_applies_backpressure():
    total = 64 * 1024 * 1024
    state = {"sent": 0, "blocked": threading.Event(), "done": threading.Event()}

    def handler(c):
        c.upstream.record(ft.read_message(c, is_request=True))
        c.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        c.sock.setblocking(False)
        chunk = b"x" * 65536
        while state["sent"] < total:
            try:
                state["sent"] += c.sock.send(chunk[:total - state["sent"]])
            except BlockingIOError:
                # The socket stays unwritable while ferry's reader is paused.
                _, w, _ = select.select([], [c.sock], [], 1.0)
                if not w:
                    state["blocked"].set()
                    select.select([], [c.sock], [], ft.IO_TIMEOUT)
        state["done"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.send(WS_UPGRADE)
            eq(ft.read_message(c, is_request=False, head_only=True).status, 101, "status")
            check(state["blocked"].wait(ft.IO_TIMEOUT), "the upstream is held back while the client does not read")
            check(state["sent"] < total // 4,
                  f"ferry stopped reading the upstream: {state['sent']} of {total} bytes accepted")
            got = len(c.buf)
            c.buf = b""
            while got < total:
                d = c.sock.recv(1 << 20)
                check(d, f"tunnel closed after {got} bytes")
                got += len(d)
            eq(got, total, "every byte arrives once the client reads")
            check(state["done"].wait(ft.IO_TIMEOUT), "upstream finished sending")


def test_tunnel_applies_backpressure_from_client_to_upstream():
    total = 64 * 1024 * 1024
    state = {"go": threading.Event(), "got": 0, "done": threading.Event()}

    def handler(c):
        c.upstream.record(ft.read_message(c, is_request=True))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        state["go"].wait(ft.IO_TIMEOUT)  # do not read until the client is held back
        got = len(c.buf)
        while got < total:
            d = c.sock.recv(1 << 20)
            if not d:
                break
            got += len(d)
        state["got"] = got
        state["done"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(WS_UPGRADE)
            eq(ft.read_message(c, is_request=False, head_only=True).status, 101, "status")
            c.sock.setblocking(False)
            sent, chunk = 0, b"y" * 65536
            while sent < total:
                try:
                    sent += c.sock.send(chunk[:total - sent])
                except BlockingIOError:
                    _, w, _ = select.select([], [c.sock], [], 1.0)
                    if not w:
                        break  # held back: ferry stopped reading this client
            check(sent < total // 4, f"ferry stopped reading the client: {sent} of {total} bytes accepted")
            state["go"].set()
            c.sock.setblocking(True)
            c.sock.sendall(chunk[:0] + b"y" * (total - sent))
            check(state["done"].wait(ft.IO_TIMEOUT), "upstream read everything")
            eq(state["got"], total, "every byte arrives once the upstream reads")


def test_upgrade_refused_by_the_upstream_is_a_normal_response_then_close():
    def respond(c, m):
        c.respond(426, "no", headers=[("Connection", "close")])
        return False

    with Upstream(serve(respond)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(WS_UPGRADE)
            r = c.response()
            eq(r.status, 426, "status")
            eq(r.body, b"no", "body")
            check(c.is_closed(), "closed: the client may have sent tunnel bytes already")


def test_absolute_form_target_authority_becomes_host():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET http://b.example:8080/p/q?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n")
            eq(c.response().status, 200, "status")
        m = up.requests[0]
        eq(m.start, "GET /p/q?x=1 HTTP/1.1", "origin-form upstream")
        eq(m.header_all("host"), ["b.example:8080"], "the authority replaced the differing Host")
        eq(ft.request(f.port, target="http://c.example").status, 200, "authority without a path")
        eq(up.requests[1].start, "GET / HTTP/1.1", "empty path becomes /")
        eq(ft.raw_exchange(f.port, b"GET http://u@c.example/ HTTP/1.1\r\nHost: c\r\n\r\n")[:12],
           b"HTTP/1.1 400", "userinfo in the authority is refused")


def test_options_star_is_forwarded_as_is():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        eq(ft.request(f.port, method="OPTIONS", target="*").status, 200, "status")
        eq(up.requests[0].start, "OPTIONS * HTTP/1.1", "request line upstream")
        out = ft.raw_exchange(f.port, b"GET * HTTP/1.1\r\nHost: t\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400"), f"* with another method: {out[:40]!r}")
        eq(len(up.requests), 1, "upstream requests")


def test_connect_is_405_and_closed():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01")
            r = c.response()
            eq(r.status, 405, "status")
            check(c.is_closed(), "connection closed")
        eq(up.accepted, 0, "nothing went upstream")


def test_chunked_trailers_are_forwarded_both_ways():
    def respond(c, m):
        c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Resp-Sum\r\n\r\n"
               b"3\r\nabc\r\n0\r\nX-Resp-Sum: 42\r\nContent-Length: 99\r\n\r\n")

    with Upstream(serve(respond)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTrailer: X-Req-Sum\r\n\r\n"
                   b"4;name=v\r\nbody\r\n0\r\nX-Req-Sum: 7\r\nHost: evil\r\n\r\n")
            r = c.response()
            eq(r.body, b"abc", "response body")
            eq(r.trailers, [("X-Resp-Sum", "42")], "response trailers (framing fields dropped)")
        m = up.requests[0]
        check(m.chunked, "request forwarded chunked")
        eq(m.body, b"body", "request body")
        eq(m.trailers, [("X-Req-Sum", "7")], "request trailers (routing fields dropped)")


def test_invalid_upstream_heads_are_502():
    bad = {
        "/empty-name": b"HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n",
        "/status-20": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        "/te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
        "/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "/101-unasked": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    }

    def respond(c, m):
        c.send(bad[m.target])
        return False

    with Upstream(serve(respond)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for target in bad:
            eq(ft.request(f.port, target=target).status, 502, target)


if __name__ == "__main__":
    ft.main(globals())
