"""Large bodies (issue 18): spliced socket to socket on plain TCP with a
Content-Length or close-delimited response, read/write otherwise; either
way byte-exact, bounded in memory, and never complete-looking when cut."""
import hashlib
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
admin:
  address: 127.0.0.1:{port:admin}
  inspect_body_bytes: 64k
access_log: {path: off}
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
routes:
  - path_prefix: /inspected
    upstream: up
    inspect: true
  - upstream: up
"""

MiB = 1024 * 1024
BLOCK = hashlib.sha256(b"large").digest() * 2048  # 64 KiB


def body_blocks(total):
    sent = 0
    while sent < total:
        n = min(len(BLOCK), total - sent)
        yield BLOCK[:n]
        sent += n


def md5_of(total):
    h = hashlib.md5()
    for b in body_blocks(total):
        h.update(b)
    return h.hexdigest()


def size_of(target):
    """/anything/N -> N bytes."""
    return int(target.rsplit("/", 1)[1])


def body_upstream(c):
    """GET /.../N: N bytes. /chunked/N: chunked. /close/N: HTTP/1.0-style,
    delimited by the close. /short/N: declares N, sends N/4, closes.
    POST: answers the md5 and length of what arrived."""
    while True:
        m = c.read_request()
        if m is None:
            return
        c.upstream.record(m)
        if m.method == "POST":
            c.respond(200, f"{len(m.body)} {hashlib.md5(m.body).hexdigest()}")
            continue
        n = size_of(m.target)
        if "/chunked/" in m.target:
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for b in body_blocks(n):
                c.send(f"{len(b):x}\r\n".encode() + b + b"\r\n")
            c.send(b"0\r\n\r\n")
            continue
        if "/close/" in m.target:
            c.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            for b in body_blocks(n):
                c.send(b)
            return
        c.send(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
        if "/short/" in m.target:
            sent = 0
            for b in body_blocks(n // 4):
                c.send(b)
                sent += len(b)
            c.sock.shutdown(socket.SHUT_RDWR)
            return
        for b in body_blocks(n):
            c.send(b)


class Reader:
    """A raw client that hashes a response body as it arrives."""

    def __init__(self, port, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(ft.IO_TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def get(self, target, version="HTTP/1.1"):
        self.sock.sendall(f"GET {target} {version}\r\nHost: t\r\n\r\n".encode())

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ft.Closed("closed before the response head")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        return int(lines[0].split()[1]), hdrs

    def body(self, n=None, pace=None):
        """Reads n bytes (None: to the close). Returns (bytes read, md5,
        whether the connection closed)."""
        h = hashlib.md5()
        got = 0
        closed = False
        while n is None or got < n:
            if self.buf:
                d, self.buf = self.buf, b""
            else:
                d = self.sock.recv(256 * 1024 if n is None else min(256 * 1024, n - got))
            if not d:
                closed = True
                break
            if n is not None and got + len(d) > n:
                d, self.buf = d[: n - got], d[n - got:]
            h.update(d)
            got += len(d)
            if pace:
                time.sleep(pace)  # a slow reader, not a synchronisation
        return got, h.hexdigest(), closed

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ft.Closed("closed inside chunked framing")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def chunked_body(self):
        """Reads a chunked body: (bytes, md5, False)."""
        h = hashlib.md5()
        got = 0
        while True:
            n = int(self._line().split(b";")[0], 16)
            if n == 0:
                while self._line():
                    pass  # trailers
                return got, h.hexdigest(), False
            left = n
            while left:
                if not self.buf:
                    self.buf = self.sock.recv(256 * 1024)
                    if not self.buf:
                        raise ft.Closed("closed inside a chunk")
                d, self.buf = self.buf[:left], self.buf[left:]
                h.update(d)
                left -= len(d)
                got += len(d)
            self._line()

    def close(self):
        self.sock.close()


def metric(f, name):
    r = ft.admin_request(f.ports["admin"], target="/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise ft.TestFailure(f"{name} not in /metrics")


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def download(f, target, version="HTTP/1.1"):
    r = Reader(f.port)
    r.get(target, version)
    status, hdrs = r.head()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        got = r.chunked_body()
    else:
        got = r.body(int(hdrs["content-length"]) if "content-length" in hdrs else None)
    r.close()
    return status, hdrs, got


def test_content_length_download_is_spliced_and_exact():
    size = 64 * MiB + 3
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        status, hdrs, (got, md5, _) = download(f, f"/d/{size}")
        eq(status, 200, "status")
        eq((got, md5), (size, md5_of(size)), "body length and md5")
        spliced = metric(f, "ferry_bytes_spliced_total")
        check(spliced > size // 2, f"most of the body was spliced: {spliced} of {size}")
        # the upstream connection went back to the pool and is reused
        status, _, (got, md5, _) = download(f, f"/d/{MiB}")
        eq((status, got, md5), (200, MiB, md5_of(MiB)), "second download")
        eq(up.accepted, 1, "upstream connections (the first one was pooled)")


def test_close_delimited_download_is_spliced_and_exact():
    size = 32 * MiB + 1
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        # to an HTTP/1.0 client the body runs to the close as it came: spliced
        status, hdrs, (got, md5, closed) = download(f, f"/close/{size}", "HTTP/1.0")
        eq(status, 200, "status")
        check("content-length" not in hdrs and "transfer-encoding" not in hdrs and closed,
              f"delimited by the close: {hdrs}")
        eq((got, md5), (size, md5_of(size)), "body length and md5")
        spliced = metric(f, "ferry_bytes_spliced_total")
        check(spliced > size // 2, f"the body was spliced: {spliced} of {size}")
        # to an HTTP/1.1 client it is re-framed chunked: copied, still exact
        hdrs = fallback(f, f"/close/{size}", size, False)
        eq(hdrs.get("transfer-encoding"), "chunked", "re-framed for HTTP/1.1")


def test_large_upload_arrives_exact():
    size = 8 * MiB + 7  # the scripted upstream gathers it in memory
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        r = Reader(f.port)
        r.sock.sendall(f"POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode())
        for b in body_blocks(size):
            r.sock.sendall(b)
        status, hdrs = r.head()
        n = int(hdrs["content-length"])
        while len(r.buf) < n:
            r.buf += r.sock.recv(65536)
        r.close()
        eq(status, 200, "status")
        eq(r.buf.decode(), f"{size} {md5_of(size)}", "upstream got the exact body (length, md5)")
        eq(up.requests[0].header("content-length"), str(size), "Content-Length forwarded")


def test_upstream_cutting_the_body_short_never_looks_complete():
    size = 16 * MiB
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        r = Reader(f.port)
        r.get(f"/short/{size}")
        status, hdrs = r.head()
        eq((status, hdrs["content-length"]), (200, str(size)), "the head as declared")
        got, _, closed = r.body(size)
        r.close()
        check(closed and got < size, f"the client saw the cut: {got} of {size} bytes, closed={closed}")
        # the cut connection was not pooled: the next request opens a new one
        status, _, (got, md5, _) = download(f, f"/d/{MiB}")
        eq((status, got, md5), (200, MiB, md5_of(MiB)), "next download")
        eq(up.accepted, 2, "upstream connections (the cut one was not reused)")


def test_client_closing_mid_body_closes_the_upstream_connection():
    size = 256 * MiB
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        r = Reader(f.port)
        r.get(f"/d/{size}")
        r.head()
        got, _, _ = r.body(4 * MiB)
        eq(got, 4 * MiB, "first bytes arrived")
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        r.close()  # a reset, mid-body
        # ferry gives up the upstream connection: the upstream's send fails
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not up.errors:
            time.sleep(0.05)
        check(up.errors, "the upstream connection was closed under the sender")
        status, _, (got, md5, _) = download(f, f"/d/{MiB}")
        eq((status, got, md5), (200, MiB, md5_of(MiB)), "next download")
        eq(up.accepted, 2, "upstream connections (the abandoned one was not reused)")


def test_slow_reader_keeps_memory_bounded_and_body_exact():
    size = 96 * MiB
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        pid = f.proc.pid
        download(f, f"/d/{MiB}")  # warm-up
        hwm_before = vm_kib(pid, "VmHWM")
        r = Reader(f.port, rcvbuf=64 * 1024)
        r.get(f"/d/{size}")
        r.head()
        got, md5, _ = r.body(size, pace=0.0005)
        r.close()
        eq((got, md5), (size, md5_of(size)), "body length and md5")
        grown = vm_kib(pid, "VmHWM") - hwm_before
        print(f"slow reader: peak RSS +{grown} KiB over {size >> 20} MiB")
        check(grown < 8192, f"peak RSS grew {grown} KiB for one slow reader (bound: 8 MiB)")


def fallback(f, target, size, spliced_expected):
    before = metric(f, "ferry_bytes_spliced_total")
    status, hdrs, (got, md5, _) = download(f, target)
    eq(status, 200, "status")
    eq((got, md5), (size, md5_of(size)), f"{target}: body length and md5")
    spliced = metric(f, "ferry_bytes_spliced_total") - before
    if spliced_expected:
        check(spliced > 0, f"{target}: spliced")
    else:
        eq(spliced, 0, f"{target}: bytes spliced")
    return hdrs


def test_chunked_and_inspected_bodies_take_the_copy_path_exactly():
    size = 24 * MiB + 5
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        fallback(f, f"/chunked/{size}", size, False)
        fallback(f, f"/inspected/{size}", size, False)
        lst = ft.admin_request(f.ports["admin"], target="/inspect/requests").body.decode()
        check(f"/inspected/{size}" in lst, "the inspected body's exchange was captured")
        fallback(f, f"/d/{size}", size, True)


def test_splice_off_copies_every_body_exactly():
    size = 24 * MiB + 5
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}, env={"FERRY_SPLICE": "0"}) as f:
        fallback(f, f"/d/{size}", size, False)
        fallback(f, f"/close/{size}", size, False)


def test_many_concurrent_downloads_all_exact():
    size = 4 * MiB + 11
    n = 16
    with Upstream(body_upstream) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        results = [None] * n

        def one(i):
            try:
                results[i] = download(f, f"/d/{size}")[2][:2]
            except OSError as e:
                results[i] = repr(e)

        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        want = (size, md5_of(size))
        eq([r == want for r in results], [True] * n, f"every download exact: {results}")


ft.main(globals())
