#!/usr/bin/env python3
"""Hold N idle keep-alive client connections open on a proxy and report its
resident memory per connection.

Opens N connections to 127.0.0.1:PORT (in batches), sends one
`GET PATH HTTP/1.1` on each and reads the whole response, so every
connection has served a request and sits idle in keep-alive. Reads the
proxy's VmRSS (/proc/PID/status) once the first N/10 are held (so the
proxy's pools and free lists have already grown to the batch's needs) and
again with all N held; the marginal cost per connection is the difference
over the 9N/10 in between. Prints
"idle_conns N rss_at_n10_kib rss_at_n_kib kib_per_conn", then closes them.

With --tls the connections speak TLS (default context, no certificate
check): each completes its handshake and one request before it idles, one
connection at a time, and the run is bounded by TLS_DEADLINE s.

usage: idle_conns.py [--tls] PORT PID [N] [PATH]
Every socket call has a timeout; the whole run is bounded by DEADLINE s.
"""

import resource
import selectors
import socket
import ssl
import sys
import time

DEADLINE = 120.0
TLS_DEADLINE = 300.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def response_done(buf):
    """True once buf holds a whole Content-Length response."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    clen = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v)
    return len(body) >= clen


def tls_conn(ctx, port, req, t_end):
    """One TLS connection that has served a request and now idles."""
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
    s.sendall(req)
    buf = b""
    while not response_done(buf):
        if time.monotonic() > t_end:
            raise SystemExit("idle_conns: a TLS response did not arrive in time")
        data = s.recv(65536)
        if not data:
            raise SystemExit("idle_conns: the proxy closed a TLS connection")
        buf += data
    if not buf.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"idle_conns: the proxy answered {buf[:40]!r}")
    return s


def main():
    args = sys.argv[1:]
    use_tls = bool(args) and args[0] == "--tls"
    if use_tls:
        args = args[1:]
    port, pid = int(args[0]), int(args[1])
    n = int(args[2]) if len(args) > 2 else 10000
    path = args[3] if len(args) > 3 else "/"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
    t_end = time.monotonic() + (TLS_DEADLINE if use_tls else DEADLINE)
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    before = None
    first = max(1, n // 10)
    socks = []
    if use_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while len(socks) < n:
            if before is None and len(socks) >= first:
                time.sleep(0.5)
                before = rss_kib(pid)
                first = len(socks)
            if time.monotonic() > t_end:
                raise SystemExit(f"idle_conns: gave up after {TLS_DEADLINE}s with {len(socks)} connections")
            socks.append(tls_conn(ctx, port, req, t_end))
    sel = selectors.DefaultSelector()
    batch = 10  # small: measures idle connections, not requests in flight
    while not use_tls and len(socks) < n:
        if before is None and len(socks) >= first:
            time.sleep(0.5)
            before = rss_kib(pid)
            first = len(socks)
        if time.monotonic() > t_end:
            raise SystemExit(f"idle_conns: gave up after {DEADLINE}s with {len(socks)} connections")
        pending = {}
        for _ in range(min(batch, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setblocking(False)
            s.send(req)
            pending[s] = b""
            sel.register(s, selectors.EVENT_READ)
        while pending:
            if time.monotonic() > t_end:
                raise SystemExit("idle_conns: responses did not arrive in time")
            for key, _ in sel.select(timeout=10):
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    raise SystemExit("idle_conns: the proxy closed a connection")
                buf = pending[s] + data
                head, sep, body = buf.partition(b"\r\n\r\n")
                if sep:
                    clen = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            clen = int(v)
                    if len(body) >= clen:
                        sel.unregister(s)
                        del pending[s]
                        socks.append(s)
                        continue
                pending[s] = buf
    time.sleep(1.0)  # let the proxy finish its post-response work (not a sync point for a test)
    after = rss_kib(pid)
    print(f"idle_conns {n} {before} {after} {(after - before) / (n - first):.3f}")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
