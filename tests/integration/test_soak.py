"""Soak: many keep-alive clients at once, well-formed requests mixed with
malformed ones, aborted uploads and slow readers. Every well-formed request
must be answered correctly, ferry must stay up without sanitizer reports, and
its fd count must come back to the idle value.

Defaults follow the issue: 200 connections x 200 requests. Scale with
FERRY_SOAK_CONNS and FERRY_SOAK_REQS (e.g. for a quick local run)."""
import os
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Client, eq, check

CONNS = int(os.environ.get("FERRY_SOAK_CONNS", "200"))
REQS = int(os.environ.get("FERRY_SOAK_REQS", "200"))

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 2
access_log: {path: off}
limits:
  max_request_body_bytes: 1m
timeouts:
  client_header: 5s
  client_idle: 5s
upstreams:
  echo:
    servers:
      - address: %s
    keepalive: {max_idle: 64, idle_timeout: 500ms}
routes:
  - upstream: echo
"""


def fd_count(pid):
    """ferry's open fds, less libuv's per-loop reserve: each event loop
    opens one /dev/null (for EMFILE handling) when its first TCP handle is
    made, which for a worker is its first connection, not a leak."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if int(fd) > 2 and os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null":
                continue
        except OSError:
            continue  # closed meanwhile
        n += 1
    return n


class Worker:
    """One client: REQS slots on keep-alive connections; some slots are
    malformed requests, aborted uploads or slow reads (each ends its
    connection, and the next slot opens a new one)."""

    def __init__(self, port, wid):
        self.port, self.wid = port, wid
        self.ok = 0
        self.errors = []
        self.c = None

    def conn(self):
        if self.c is None:
            self.c = Client(self.port)
        return self.c

    def drop(self):
        if self.c is not None:
            self.c.close()
            self.c = None

    def run(self):
        try:
            for i in range(REQS):
                kind = (self.wid + i) % 40
                if kind == 13:
                    self.malformed(i)
                elif kind == 27:
                    self.aborted_upload(i)
                elif kind == 35:
                    self.slow_read(i)
                elif i % 3 == 0:
                    self.post(i)
                else:
                    self.get(i)
        except Exception as e:  # reported by the test
            self.errors.append(f"worker {self.wid}: {e!r}")
        finally:
            self.drop()

    def get(self, i):
        target = f"/w{self.wid}/r{i}?q={i}"
        r = self.conn().request(target=target, headers=[("Host", "soak.test"), ("X-Slot", str(i))])
        eq(r.status, 200, f"GET {target}")
        check(f"GET {target} HTTP/1.1".encode() in r.body, f"echo of {target}: {r.body[:200]!r}")
        check(b"X-Slot: %d" % i in r.body, "header forwarded")
        self.ok += 1

    def post(self, i):
        body = b"p" * (i * 37 % 5000)
        target = f"/w{self.wid}/post{i}"
        if i % 2:
            data = (f"POST {target} HTTP/1.1\r\nHost: soak.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                    f"{len(body):x}\r\n").encode() + body + b"\r\n0\r\n\r\n" if body else \
                (f"POST {target} HTTP/1.1\r\nHost: soak.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode()
            c = self.conn()
            c.send(data)
            r = c.response()
        else:
            r = self.conn().request(method="POST", target=target, headers=[("Host", "soak.test")], body=body)
        eq(r.status, 200, f"POST {target}")
        check(b"body: %d bytes" % len(body) in r.body, f"body length echoed for {target}: {r.body[-60:]!r}")
        self.ok += 1

    def malformed(self, i):
        bad = [b"GET / HTTP/1.1\r\nHost: soak.test\r\nX: a\r\n b\r\n\r\n",
               b"POST / HTTP/1.1\r\nHost: soak.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost : soak.test\r\n\r\n",
               b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"][i % 4]
        c = self.conn()
        c.send(bad)
        r = c.response()
        eq(r.status, 400, f"malformed request {bad[:30]!r}")
        check(c.is_closed(), "closed after 400")
        self.drop()

    def aborted_upload(self, i):
        c = self.conn()
        c.send(b"POST /upload HTTP/1.1\r\nHost: soak.test\r\nContent-Length: 100000\r\n\r\n" + b"u" * 3000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.drop()  # RST mid-body

    def slow_read(self, i):
        c = self.conn()
        pad = "s" * 8000
        target = f"/w{self.wid}/slow{i}"
        c.send(f"GET {target} HTTP/1.1\r\nHost: soak.test\r\nX-Pad: {pad}\r\n\r\n".encode())
        # read the response a little at a time
        while b"\r\n\r\n" not in c.buf:
            d = c.sock.recv(512)
            check(d, "closed during a slow read")
            c.buf += d
            c.received += d
            time.sleep(0.001)
        r = c.response()
        eq(r.status, 200, f"slow GET {target}")
        check(pad.encode() in r.body, "whole body")
        self.ok += 1


def test_soak_many_keepalive_clients_with_bad_ones_mixed_in():
    echo, addr = ft.echo_server("soak")
    try:
        with Ferry(CONFIG % addr) as f:
            pid = f.proc.pid
            idle_fds = fd_count(pid)
            workers = [Worker(f.port, w) for w in range(CONNS)]
            threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(600)
                check(not t.is_alive(), "a soak client hung")
            elapsed = time.monotonic() - t0
            errors = [e for w in workers for e in w.errors]
            check(not errors, f"{len(errors)} clients failed; first: {errors[:3]}")
            expected = sum(1 for w in range(CONNS) for i in range(REQS) if (w + i) % 40 not in (13, 27))
            eq(sum(w.ok for w in workers), expected, "well-formed requests answered correctly")
            # Every client is gone; pooled connections expire after 500ms.
            deadline = time.monotonic() + ft.IO_TIMEOUT
            while fd_count(pid) != idle_fds and time.monotonic() < deadline:
                time.sleep(0.05)
            eq(fd_count(pid), idle_fds, "ferry's open fds back to the idle count")
            print(f"soak: {CONNS} clients x {REQS} slots, {expected} answered in {elapsed:.1f}s")
            check(f.proc.poll() is None, "ferry still running")
    finally:
        echo.terminate()
        echo.wait(10)


if __name__ == "__main__":
    ft.main(globals())
