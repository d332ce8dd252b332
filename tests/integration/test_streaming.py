"""Bodies stream both ways, Content-Length and chunked, with backpressure."""
import hashlib
import socket
import threading

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: off}
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
routes:
  - upstream: up
"""


def body_stream(total, seed=b"x"):
    """Yields deterministic pseudo-random blocks adding up to total bytes."""
    block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
    sent = 0
    while sent < total:
        n = min(len(block), total - sent)
        yield block[:n]
        sent += n


def digest_of(total, seed=b"x"):
    h = hashlib.sha256()
    for b in body_stream(total, seed):
        h.update(b)
    return h.hexdigest()


def counting_upstream(c):
    """Reads one request by its framing, hashing the body as it arrives;
    answers with the body's length and digest."""
    m = ft.read_message(c, is_request=True)
    if m is None:
        return
    c.upstream.record(m)
    text = f"{len(m.body)} {hashlib.sha256(m.body).hexdigest()}"
    c.respond(200, text)


def test_content_length_upload_streams_intact():
    size = 3 * 1024 * 1024 + 17
    with Upstream(counting_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(f"POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode())
            for b in body_stream(size):
                c.send(b)
            r = c.response()
            eq(r.status, 200, "status")
            eq(r.body.decode(), f"{size} {digest_of(size)}", "upstream got the exact body")
        m = up.requests[0]
        eq(m.header("content-length"), str(size), "Content-Length forwarded")


def test_chunked_upload_is_forwarded_chunked():
    size = 1024 * 1024 + 3
    with Upstream(counting_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for b in body_stream(size):
                c.send(f"{len(b):x}\r\n".encode() + b + b"\r\n")
            c.send(b"0\r\n\r\n")
            r = c.response()
            eq(r.body.decode(), f"{size} {digest_of(size)}", "upstream got the exact body")
        m = up.requests[0]
        check(m.chunked, f"forwarded chunked: {m.headers}")
        check(m.header("content-length") is None, "no Content-Length added to a chunked request")


def download_upstream(size, chunked):
    def handler(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            if chunked:
                c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for b in body_stream(size, b"down"):
                    c.send(f"{len(b):x}\r\n".encode() + b + b"\r\n")
                c.send(b"0\r\n\r\n")
            else:
                c.send(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                for b in body_stream(size, b"down"):
                    c.send(b)
    return handler


def test_content_length_download_streams_intact():
    size = 5 * 1024 * 1024 + 1
    with Upstream(download_upstream(size, False)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request(target="/d")
            eq(r.header("content-length"), str(size), "length kept")
            eq(hashlib.sha256(r.body).hexdigest(), digest_of(size, b"down"), "body intact")
            r = c.request(target="/d")  # the connection stays usable
            eq(len(r.body), size, "second download on the same connection")


def test_chunked_download_is_rechunked_for_http11_and_closed_for_http10():
    size = 2 * 1024 * 1024 + 5
    with Upstream(download_upstream(size, True)) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request(target="/d")
            check(r.chunked, "chunked to an HTTP/1.1 client")
            eq(hashlib.sha256(r.body).hexdigest(), digest_of(size, b"down"), "body intact")
        with Client(f.port) as c:
            r = c.request(target="/d", version="HTTP/1.0", headers=[("Host", "t")])
            check(not r.chunked and r.header("content-length") is None, f"close-delimited to 1.0: {r.headers}")
            eq(hashlib.sha256(r.body).hexdigest(), digest_of(size, b"down"), "body intact (1.0)")


def test_slow_client_reader_applies_backpressure_to_upstream():
    """A client that does not read makes ferry stop reading the upstream:
    the upstream's send() blocks long before the whole body is buffered."""
    size = 256 * 1024 * 1024
    progress = {"sent": 0}
    blocked = threading.Event()

    def handler(c):
        m = c.read_request()
        c.upstream.record(m)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        c.send(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        c.sock.settimeout(1.5)
        try:
            for b in body_stream(size):
                c.sock.sendall(b)
                progress["sent"] += len(b)
        except socket.timeout:
            blocked.set()  # ferry stopped reading: backpressure works

    with Upstream(handler) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        c = Client(f.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        check(blocked.wait(60), f"upstream never blocked; sent {progress['sent']} bytes")
        check(progress["sent"] < 32 * 1024 * 1024,
              f"ferry buffered too much before pausing the upstream: {progress['sent']} bytes")
        c.close()


ft.main(globals())
