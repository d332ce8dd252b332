"""Wire fuzzer: mutated requests and upstream responses through a real ferry.

The libFuzzer targets cover ferry's pure pieces; this covers the socket
code they do not (session, exchange, connpool, tunnel, timers): it runs the
built ferry (use the sanitizer build) with a scripted upstream, and for
SECONDS sends mutations of the seed requests in tests/fuzz/corpus/fuzz_request
(split into random writes, sometimes cut short) while the upstream answers
with mutations of the seeds in tests/fuzz/corpus/fuzz_response. It checks
that ferry stays up, answers with parseable HTTP, and exits cleanly with no
sanitizer report.

Usage: FERRY_BIN=build-san/ferry python3 tests/fuzz/wire_fuzz.py SECONDS [SEED]
"""
import os
import random
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import ferrytest as ft  # noqa: E402

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: off}
limits:
  max_request_header_bytes: 8k
  max_request_body_bytes: 64k
timeouts:
  client_header: 200ms
  client_idle: 200ms
  upstream_connect: 200ms
  upstream_response: 200ms
  upstream_idle: 200ms
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
    keepalive: {max_idle: 8, idle_timeout: 1s}
routes:
  - path: /ping
    respond: {status: 200, body: "pong"}
  - path_prefix: /strip
    rewrite_prefix: /
    upstream: up
  - upstream: up
"""


THREADS = int(os.environ.get("WIRE_FUZZ_THREADS", "16"))


def load(dirname):
    d = os.path.join(HERE, "corpus", dirname)
    return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))]


TOKENS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"0\r\n\r\n", b"Transfer-Encoding: chunked\r\n",
          b"Content-Length: 5\r\n", b"Connection: close\r\n", b"Connection: upgrade\r\n",
          b"Upgrade: websocket\r\n", b"Expect: 100-continue\r\n", b"HTTP/1.0", b"HTTP/1.1",
          b"\x00", b"ffffffff", b";ext=1", b"HTTP/1.1 101 Switching Protocols\r\n",
          b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No Content\r\n",
          b"HTTP/1.2", b"HTTP/2.0", b"Host: u@h\r\n", b"Host: a, b\r\n", b"\xc3\xa9", b"\xc0\xaf",
          b"Transfer-Encoding: gzip\r\n", b"XX", b"0\r\n\n", b"Authorization: x\r\n",
          b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"]


def mutate(rng, data, seeds):
    data = bytearray(data)
    for _ in range(rng.randint(0, 6)):
        op = rng.randint(0, 6)
        pos = rng.randint(0, len(data)) if data else 0
        if op == 0 and data:
            data[rng.randrange(len(data))] = rng.randint(0, 255)
        elif op == 1 and data:
            del data[pos:pos + rng.randint(1, 16)]
        elif op == 2:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 3 and data:
            a = rng.randrange(len(data))
            data[pos:pos] = data[a:a + rng.randint(1, 64)]
        elif op == 4:
            data += rng.choice(seeds)  # pipelining
        elif op == 5:
            data[pos:pos] = bytes([rng.randint(0x30, 0x7a)]) * rng.randint(1, 300)
        else:
            data = bytearray(data[:pos])
    return bytes(data)


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    rng = random.Random(seed)
    reqs = load("fuzz_request")
    resps = [r[1:] for r in load("fuzz_response")]
    urng = random.Random(seed + 1)

    def upstream(c):
        c.sock.settimeout(1)
        while True:
            try:
                d = c.sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            try:
                c.sock.sendall(mutate(urng, urng.choice(resps), resps))
            except OSError:
                return
            if urng.random() < 0.3:
                return

    print(f"wire fuzz: seed {seed}, {secs:.0f}s, {THREADS} connections at a time")
    stats = {"execs": 0, "answered": 0}
    failures = []
    lock = threading.Lock()

    def client(f, crng, end):
        while time.monotonic() < end and not failures:
            data = mutate(crng, crng.choice(reqs), reqs)
            try:
                s = socket.create_connection(("127.0.0.1", f.port), timeout=2)
            except OSError as e:
                failures.append(f"ferry stopped accepting: {e}")
                return
            s.settimeout(2)
            got = b""
            try:
                i = 0
                while i < len(data):
                    n = crng.randint(1, max(1, len(data) - i))
                    s.sendall(data[i:i + n])
                    i += n
                if crng.random() < 0.5:
                    s.shutdown(socket.SHUT_WR)
                while len(got) <= 1 << 20:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += d
            except OSError:  # timeouts, resets, shutdown after ferry closed
                pass
            finally:
                s.close()
            with lock:
                stats["execs"] += 1
                stats["answered"] += 1 if got else 0
            if got and not got.startswith(b"HTTP/1.1 "):
                failures.append(f"not an HTTP response to {data[:200]!r}: {got[:200]!r}")

    with ft.Upstream(upstream) as up, ft.Ferry(CONFIG, ports={"up": up.port}) as f:
        end = time.monotonic() + secs
        threads = [threading.Thread(target=client, args=(f, random.Random(seed * 1000 + k), end), daemon=True)
                   for k in range(THREADS)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.5)
            if f.proc.poll() is not None:
                failures.append(f"ferry died (rc={f.proc.returncode})\n{f.stderr_text()[-4000:]}")
                break
        if failures:
            raise SystemExit("wire fuzz failed: " + failures[0] + f"\nferry rc={f.proc.poll()}, stderr:\n" + f.stderr_text()[-6000:])
    print(f"wire fuzz: {stats['execs']} connections, {stats['answered']} answered, ferry exited cleanly")


if __name__ == "__main__":
    main()
