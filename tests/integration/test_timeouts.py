"""Timeouts and stuck peers (SPEC §2 timeouts, §4): slow heads, idle
keep-alive, slow readers, silent or stalled upstreams, stalled request
bodies, and the keep-alive race on pooled connections. Short timeouts
(300ms) keep the tests quick; every wait is on an event (a response, a
close, an access log line) bounded by the I/O timeout."""
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "-"}
timeouts:
  client_header: 300ms
  client_idle: 300ms
  upstream_connect: 300ms
  upstream_response: 300ms
  upstream_idle: 300ms
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
    keepalive: {max_idle: 4, idle_timeout: 30s}
routes:
  - upstream: up
"""


def hold(c):
    """Keeps an upstream connection open without answering until ferry
    closes it; returns True when ferry closed it."""
    c.sock.settimeout(ft.IO_TIMEOUT)
    try:
        while c.sock.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout):
        return False
    return True


def test_slowloris_head_gets_408_and_close_when_client_header_expires():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
            stop = threading.Event()

            def trickle():  # one byte every 50ms: progress that must not reset the timer
                for b in b"X-Trickle: " + b"a" * 400:
                    if stop.wait(0.05):
                        return
                    try:
                        c.sock.send(bytes([b]))
                    except OSError:
                        return

            t = threading.Thread(target=trickle, daemon=True)
            t.start()
            try:
                r = c.response()
                eq(r.status, 408, "status")
                check(c.is_closed(), "closed after the 408")
            finally:
                stop.set()
                t.join()
        eq(up.accepted, 0, "nothing went upstream")


def test_silent_connection_is_closed_after_client_header():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            check(c.is_closed(), "a connection that never sends a byte is closed")


def test_idle_keepalive_connection_is_closed_after_client_idle():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            eq(c.request(target="/a").status, 200, "first request")
            check(c.is_closed(), "closed once idle for client_idle")
        eq(len(up.requests), 1, "upstream requests")


def test_client_that_stops_reading_pauses_the_upstream_and_is_closed_after_client_idle():
    total = 256 * 1024 * 1024
    state = {"sent": 0, "ended": threading.Event()}

    def handler(c):
        c.upstream.record(c.read_request())
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        chunk = b"z" * 65536
        try:
            while state["sent"] < total:
                state["sent"] += c.sock.send(chunk)
        except OSError:
            pass
        state["ended"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            eq(ft.read_message(c, is_request=False, head_only=True).status, 200, "head arrives")
            # stop reading: ferry must give up on this client
            f.wait_access_log(r'"GET /big HTTP/1\.1" 200 .*error="client stopped reading the response"')
            check(state["ended"].wait(ft.IO_TIMEOUT), "the upstream connection was closed too")
            check(state["sent"] < total // 4,
                  f"the upstream was paused: it could send {state['sent']} of {total} bytes")


def test_upstream_connect_timeout_is_504():
    # A listener whose accept queue is full: the kernel drops further SYNs,
    # so connecting hangs.
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        with Ferry(CONFIG, ports={"up": port}) as f:
            r = ft.request(f.port, target="/c")
            eq(r.status, 504, "status")
            f.wait_access_log(r'"GET /c HTTP/1\.1" 504 .*error="upstream connect timeout"')
    finally:
        for s in fillers:
            s.close()
        lsock.close()


def test_upstream_response_timeout_is_504():
    state = {"closed": threading.Event()}

    def handler(c):
        c.upstream.record(c.read_request())
        if hold(c):
            state["closed"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request(target="/r")
            eq(r.status, 504, "status")
        f.wait_access_log(r'"GET /r HTTP/1\.1" 504 .*error="upstream response timeout"')
        check(state["closed"].wait(ft.IO_TIMEOUT), "the upstream connection was closed")


def test_stalled_upstream_body_closes_both_sides_after_upstream_idle():
    state = {"closed": threading.Event()}

    def handler(c):
        c.upstream.record(c.read_request())
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        if hold(c):
            state["closed"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
            r = ft.read_message(c, is_request=False, head_only=True)
            eq(r.status, 200, "head relayed")
            check(c.is_closed(), "the client connection is cut")
            eq(c.buf, b"0123456789", "the client got the bytes that came, no more")
        check(state["closed"].wait(ft.IO_TIMEOUT), "the upstream connection was closed")
        f.wait_access_log(r'"GET /stall HTTP/1\.1" 200 10 .*error="upstream idle timeout"')


def test_stalled_request_body_gets_408_and_the_upstream_request_is_cut():
    state = {"closed": threading.Event()}

    def handler(c):
        m = ft.read_message(c, is_request=True, head_only=True)
        c.upstream.record(m)
        if hold(c):
            state["closed"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            r = c.response()
            eq(r.status, 408, "status")
            check(c.is_closed(), "closed")
        check(state["closed"].wait(ft.IO_TIMEOUT), "the upstream saw its request cut")
        f.wait_access_log(r'"POST /upload HTTP/1\.1" 408 .*error="client request body timeout"')


def test_idle_tunnel_is_closed_after_client_idle():
    state = {"closed": threading.Event()}

    def handler(c):
        c.upstream.record(ft.read_message(c, is_request=True))
        c.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        if hold(c):
            state["closed"].set()

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
            eq(ft.read_message(c, is_request=False, head_only=True).status, 101, "status")
            check(c.is_closed(), "the quiet tunnel is closed")
        check(state["closed"].wait(ft.IO_TIMEOUT), "the upstream side is closed too")
        f.wait_access_log(r'"GET /ws HTTP/1\.1" 101 .*error="tunnel idle timeout"')


def race_upstream(state):
    """First connection: answers one request, then reads the next one and
    closes without answering (the server timed the connection out just as
    ferry reused it), with a reset when state["rst"]. Later connections
    serve normally."""
    def handler(c):
        if c.index == 1:
            m = c.read_request()
            c.upstream.record(m)
            c.respond(200, "first")
            m = c.read_request()
            if m is not None:
                c.upstream.record(m)
            if state.get("rst"):
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
            return
        c.upstream.serve_keepalive(c)
    return handler


def test_keepalive_race_is_retried_once_on_a_new_connection():
    with Upstream(race_upstream({})) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            eq(c.request(target="/1").body, b"first", "first response")
        with Client(f.port) as c:
            r = c.request(target="/2")
            eq(r.status, 200, "no 502: the request was retried")
            eq(r.body, b"ok from up", "answered by the new connection")
        eq([m.target for m in up.requests], ["/1", "/2", "/2"], "the request was sent again once")
        eq(up.accepted, 2, "upstream connections")


def test_keepalive_race_with_a_reset_is_retried_too():
    with Upstream(race_upstream({"rst": True})) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            eq(c.request(target="/1").body, b"first", "first response")
        with Client(f.port) as c:
            eq(c.request(target="/2").status, 200, "no 502 after a reset either")
        eq([m.target for m in up.requests], ["/1", "/2", "/2"], "the request was sent again once")


def test_keepalive_race_is_not_retried_once_body_bytes_were_sent():
    with Upstream(race_upstream({})) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            eq(c.request(target="/1").body, b"first", "first response")
        with Client(f.port) as c:
            r = c.request(method="POST", target="/pay", body=b"hello")
            eq(r.status, 502, "a request whose body went upstream is never replayed")
        eq([m.target for m in up.requests], ["/1", "/pay"], "sent once")
        eq(up.accepted, 1, "no second connection")


if __name__ == "__main__":
    ft.main(globals())
