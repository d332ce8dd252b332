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

usage: idle_conns.py PORT PID [N] [PATH]
Every socket call has a timeout; the whole run is bounded by DEADLINE s.
"""

import resource
import selectors
import socket
import sys
import time

DEADLINE = 120.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
    t_end = time.monotonic() + DEADLINE
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    before = None
    first = max(1, n // 10)
    socks = []
    sel = selectors.DefaultSelector()
    batch = 10  # small: measures idle connections, not requests in flight
    while len(socks) < n:
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
