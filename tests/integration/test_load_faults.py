"""Bounds under load and faults (issue 15's first three defects): one
client that pipelines and never reads cannot grow ferry's memory; ferry's
own lack of file descriptors is never blamed on healthy upstreams; and
limits.max_connections bounds the descriptors client connections hold."""

import os
import resource
import select
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Client, Ferry, Upstream, check, eq


# this test process holds over a thousand sockets at once
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 8192), _hard))


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise ft.TestFailure(f"no {field} in /proc/{pid}/status")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric(f, name):
    body = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise ft.TestFailure(f"{name} not in /metrics")


BODY = b"x" * 8192


def sized_upstream(c):
    """Keep-alive upstream answering each request with an 8 KiB body."""
    while True:
        m = c.read_request()
        if m is None:
            return
        c.upstream.record(m)
        c.respond(200, BODY)


def wait_closed_by_peer(sock, timeout):
    """True once the peer closed or reset the connection (POLLRDHUP/HUP/ERR
    are raised even while unread data sits in our receive buffer)."""
    p = select.poll()
    p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return bool(p.poll(timeout * 1000))


def test_pipelining_client_that_never_reads_holds_bounded_memory():
    n = 50000
    config = """
listeners: [{address: "127.0.0.1:{port:http}"}]
timeouts: {client_idle: 2s}
access_log: {path: "off"}
upstreams: {app: {servers: [{address: "127.0.0.1:{port:up}"}]}}
routes: [{path_prefix: /, upstream: app}]
"""
    with Upstream(sized_upstream) as up, Ferry(config, ports={"up": up.port}) as f:
        pid = f.proc.pid
        eq(ft.request(f.port, target="/warm").status, 200, "warm-up request")
        hwm_before = vm_kib(pid, "VmHWM")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little room in the kernel for answers
        s.connect(("127.0.0.1", f.port))
        req = b"GET /p HTTP/1.1\r\nHost: t\r\n\r\n"
        sent = [0]

        def sender():
            try:
                for _ in range(n):
                    s.sendall(req)
                    sent[0] += 1
            except OSError:
                pass  # ferry closed the connection: expected once it gave up on us

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        # The client never reads: ferry must hold it, and close it once
        # client_idle passes without progress.
        check(wait_closed_by_peer(s, 20), "ferry closed the connection of a client that never reads")
        t.join(10)
        s.close()
        grown = vm_kib(pid, "VmHWM") - hwm_before
        served = len(up.requests) - 1
        print(f"pipelining without reading: {sent[0]} requests sent, {served} reached the upstream, "
              f"peak RSS +{grown} KiB")
        check(grown < 4096, f"peak RSS grew {grown} KiB for {sent[0]} pipelined requests (bound: 4 MiB)")
        check(served < n // 10, f"ferry stopped starting requests: {served} of {sent[0]} reached the upstream")
        # the process is fine afterwards
        eq(ft.request(f.port, target="/after").status, 200, "next client served")


def test_pipelining_client_that_reads_slowly_gets_every_answer():
    n = 300
    config = """
listeners: [{address: "127.0.0.1:{port:http}"}]
access_log: {path: "off"}
upstreams: {app: {servers: [{address: "127.0.0.1:{port:up}"}]}}
routes: [{path_prefix: /, upstream: app}]
"""
    with Upstream(sized_upstream) as up, Ferry(config, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"".join(f"GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for i in range(n)))
            for i in range(n):
                r = c.response()
                eq(r.status, 200, f"response {i}")
                eq(len(r.body), len(BODY), f"body {i}")
        eq([m.target for m in up.requests], [f"/{i}" for i in range(n)], "answered in order, each once")


def fd_limit(n):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def test_fd_shortage_is_not_blamed_on_healthy_upstreams():
    config = """
listeners: [{address: "127.0.0.1:{port:http}"}]
admin: {address: "127.0.0.1:{port:admin}"}
workers: 1
access_log: {path: "off"}
upstreams:
  app:
    servers: [{address: "127.0.0.1:{port:up1}"}, {address: "127.0.0.1:{port:up2}"}]
    keepalive: {max_idle: 0}
    passive: {consecutive_failures: 1}
    health_check: {path: /healthz, interval: 200ms, timeout: 1s, unhealthy_threshold: 1}
routes: [{path_prefix: /, upstream: app}]
"""
    with Upstream(name="a") as a, Upstream(name="b") as b, \
            Ferry(config, ports={"up1": a.port, "up2": b.port}, preexec=fd_limit(64)) as f:
        f.wait_stderr(r"open-file limit is 64")
        base_fds = open_fds(f.proc.pid)
        idle = []
        try:
            # fill the descriptor table with idle clients, each holding a request so
            # ferry needs an upstream socket for it
            for _ in range(70):
                c = socket.create_connection(("127.0.0.1", f.port), timeout=5)
                idle.append(c)
            statuses = []
            for c in idle[:8]:
                c.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            for c in idle[:8]:
                try:
                    m = ft.read_message(_Reader(c), is_request=False)
                    statuses.append(m.status if m else None)
                except (OSError, ft.Closed):
                    statuses.append(None)
            check(503 in statuses, f"fd shortage answered 503: {statuses}")
            check(all(s in (503, 200, None) for s in statuses), f"never 502: {statuses}")
            f.wait_stderr(r"ferry's own limit")
        finally:
            for c in idle:
                c.close()
        # ferry frees its descriptors once it has read those closes: wait for
        # that (its fd table, a deadline) before asking the admin listener,
        # which shares the process's limit
        deadline = time.monotonic() + ft.IO_TIMEOUT
        while open_fds(f.proc.pid) > base_fds + 4:
            check(time.monotonic() < deadline, f"ferry still holds {open_fds(f.proc.pid)} fds")
            time.sleep(0.01)
        check(metric(f, "ferry_local_resource_errors_total") >= 1, "local errors counted")
        # both servers are still healthy: no ejection, no failed check
        for i in range(10):
            eq(ft.request(f.port, target=f"/ok{i}").status, 200, f"request {i} after the shortage")
        eq(metric(f, 'ferry_upstream_server_healthy{upstream="app",server="127.0.0.1:%d"}' % a.port), 1.0, "server a up")
        eq(metric(f, 'ferry_upstream_server_healthy{upstream="app",server="127.0.0.1:%d"}' % b.port), 1.0, "server b up")
        check("ejected" not in f.stderr_text(), "no server was ejected")
        check(metric(f, "ferry_accept_errors_total") >= 1, "accept failures counted")
        f.wait_stderr(r"cannot accept a connection: too many open files")


class _Reader:
    """read_message's reader protocol over a plain socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.received = b""

    def _fill(self):
        d = self.sock.recv(65536)
        self.buf += d
        self.received += d
        return d


def test_connections_over_max_connections_are_answered_and_closed_at_once():
    config = """
listeners: [{address: "127.0.0.1:{port:http}"}]
admin: {address: "127.0.0.1:{port:admin}"}
limits: {max_connections: 100}
workers: 1
access_log: {path: "off"}
routes: [{path: /, respond: {status: 200, body: "hi"}}]
"""
    with Ferry(config) as f:
        pid = f.proc.pid
        base = open_fds(pid)
        held, refused = [], 0
        try:
            for _ in range(1000):
                c = socket.create_connection(("127.0.0.1", f.port), timeout=5)
                held.append(c)
            # the first 100 stay open and idle; every other one was answered
            for c in held[100:]:
                data = b""
                while True:
                    d = c.recv(4096)
                    if not d:
                        break
                    data += d
                check(data.startswith(b"HTTP/1.1 503 "), f"surplus connection answered 503: {data[:60]!r}")
                check(b"max_connections" in data, "the body names the limit")
                refused += 1
            check(open_fds(pid) <= base + 110, f"ferry holds {open_fds(pid) - base} fds for 100 allowed connections")
        finally:
            for c in held:
                c.close()
        eq(refused, 900, "connections refused")
        eq(metric(f, "ferry_client_connections_rejected_total"), 900.0, "rejections counted")


ft.main(globals())
