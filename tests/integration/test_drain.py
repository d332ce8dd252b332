"""Graceful drain on SIGTERM/SIGINT (issue 6): /readyz 503, listeners close,
idle keep-alive connections close, requests in flight finish with
Connection: close, exit 0; timeouts.drain bounds the wait. With
timeouts.drain_grace (issue 17) listeners keep accepting for the grace,
answering with Connection: close, before they close."""
import signal
import socket
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, drain="30s", workers=1, grace="0s"):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "-"}}
timeouts:
  drain: {drain}
  drain_grace: {grace}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /
    upstream: api
"""


class SlowUpstream(Upstream):
    """Answers /slow only when .release is set; everything else at once."""

    def __init__(self):
        self.release = threading.Event()
        self.slow_arrived = threading.Event()
        super().__init__(handler=self.serve, name="slow")

    def serve(self, c):
        while True:
            m = c.read_request()
            if m is None:
                return
            self.record(m)
            if m.target == "/slow":
                self.slow_arrived.set()
                check(self.release.wait(ft.IO_TIMEOUT), "test never released the slow request")
                c.respond(200, "slow done")
            else:
                c.respond(200, "fast")


def connect_refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


def test_sigterm_lets_request_in_flight_finish_with_connection_close():
    with SlowUpstream() as up, Ferry(config(up.address)) as f:
        idle = Client(f.port)
        eq(idle.request(target="/fast").status, 200, "warm-up on the idle connection")
        busy = Client(f.port)
        busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        check(up.slow_arrived.wait(ft.IO_TIMEOUT), "slow request reached the upstream")
        eq(ft.admin_request(f.ports["admin"], target="/readyz").status, 200, "/readyz before SIGTERM")

        f.signal(signal.SIGTERM)
        f.wait_stderr(r"SIGTERM: draining")
        # the idle keep-alive connection is closed ...
        check(idle.is_closed(), "idle keep-alive connection closed on drain")
        idle.close()
        # ... the listener is closed (one worker: it was closed before the idle connection) ...
        check(connect_refused(f.port), "new connections are refused while draining")
        # ... and the admin says not ready while the request is in flight
        r = ft.admin_request(f.ports["admin"], target="/readyz")
        eq(r.status, 503, "/readyz while draining")
        eq(ft.admin_request(f.ports["admin"], target="/healthz").status, 200, "/healthz while draining")
        check(f.proc.poll() is None, "ferry waits for the request in flight")

        up.release.set()
        r = busy.response()
        eq((r.status, r.body), (200, b"slow done"), "the request in flight completed")
        eq(r.header("connection", "").lower(), "close", "Connection header on the last response")
        check(busy.is_closed(), "the connection closes after the last response")
        busy.close()
        eq(f.proc.wait(30), 0, "exit code after drain")
        f.stop()  # asserts a clean exit and no sanitizer report


def test_sigint_drains_too_and_exits_zero_when_idle():
    with Upstream() as up, Ferry(config(up.address, workers=2)) as f:
        with Client(f.port) as c:
            eq(c.request(target="/x").status, 200, "request before SIGINT")
            f.signal(signal.SIGINT)
            f.wait_stderr(r"SIGINT: draining")
            check(c.is_closed(), "idle connection closed")
        eq(f.proc.wait(30), 0, "exit code")
        f.stop()


def test_request_begun_before_sigterm_is_answered():
    with Upstream() as up, Ferry(config(up.address)) as f:
        c = Client(f.port)
        partial = "GET /partial HTTP/1.1\r\nHost: t\r\n"  # head not finished yet
        c.send(partial)
        # wait until ferry has read those bytes (its byte counter says so)
        deadline = time.monotonic() + ft.IO_TIMEOUT
        while True:
            m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
            got = [float(l.split()[1]) for l in m.splitlines() if l.startswith("ferry_bytes_received_total ")]
            if got and got[0] >= len(partial):
                break
            check(time.monotonic() < deadline, "ferry never read the partial head")
            time.sleep(0.01)
        f.signal(signal.SIGTERM)
        f.wait_stderr(r"SIGTERM: draining")
        eq(ft.admin_request(f.ports["admin"], target="/readyz").status, 503, "draining")
        c.send("X-Late: 1\r\n\r\n")
        r = c.response()
        eq(r.status, 200, "the request begun before SIGTERM is answered")
        eq(r.header("connection", "").lower(), "close", "Connection: close during drain")
        check(c.is_closed(), "closed after the response")
        c.close()
        eq(f.proc.wait(30), 0, "exit code")
        f.stop()


def test_drain_timeout_cuts_requests_still_in_flight():
    with SlowUpstream() as up, Ferry(config(up.address, drain="300ms")) as f:
        busy = Client(f.port)
        busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        check(up.slow_arrived.wait(ft.IO_TIMEOUT), "slow request reached the upstream")
        f.signal(signal.SIGTERM)
        f.wait_stderr(r"drain timeout: closing 1 connection")
        check(busy.is_closed(), "the connection in flight is closed at the drain timeout")
        busy.close()
        up.release.set()
        eq(f.proc.wait(30), 0, "exit code after a drain timeout")
        f.stop()


def test_response_begun_before_the_stop_keeps_its_connection_for_the_next_request():
    # The head of a keep-alive response went out before SIGTERM and its body
    # after: the client was promised keep-alive, so it sends its next request;
    # that request is answered (with Connection: close), not cut.
    body_rest = threading.Event()
    head_sent = threading.Event()

    def serve(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            if m.target == "/split":
                c.send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
                head_sent.set()
                check(body_rest.wait(ft.IO_TIMEOUT), "test never released the body")
                c.send("-half")
            else:
                c.respond(200, "next")

    with Upstream(handler=serve) as up, Ferry(config(up.address)) as f:
        c = Client(f.port)
        c.send("GET /split HTTP/1.1\r\nHost: t\r\n\r\n")
        check(head_sent.wait(ft.IO_TIMEOUT), "the upstream sent the head")
        head = ft.read_message(c, is_request=False, head_only=True)
        eq(head.header("connection"), None, "the head promised keep-alive (no Connection: close)")
        f.signal(signal.SIGTERM)
        f.wait_stderr(r"SIGTERM: draining")
        # the worker has acted on the stop once its listener is closed (the
        # log line comes from the main thread, which only asks it to)
        deadline = time.monotonic() + ft.IO_TIMEOUT
        while not connect_refused(f.port):
            check(time.monotonic() < deadline, "the worker never stopped listening")
            time.sleep(0.01)
        body_rest.set()
        eq(ft._read_n(c, 10), b"first-half", "the rest of the body")
        r = c.request(target="/next")
        eq((r.status, r.body), (200, b"next"), "the next request on that connection is served")
        eq(r.header("connection", "").lower(), "close", "and told to close")
        check(c.is_closed(), "closed after it")
        c.close()
        eq(f.proc.wait(30), 0, "exit code")
        f.stop()


def test_drain_grace_keeps_accepting_with_connection_close_then_refuses():
    with SlowUpstream() as up, Ferry(config(up.address, grace="3s")) as f:
        kept = Client(f.port)
        eq(kept.request(target="/fast").status, 200, "warm-up on a keep-alive connection")
        idle = Client(f.port)
        eq(idle.request(target="/fast").status, 200, "warm-up on a second one, left idle")
        # a request in flight keeps ferry alive past the grace, so the refusal can be seen
        busy = Client(f.port)
        busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        check(up.slow_arrived.wait(ft.IO_TIMEOUT), "slow request reached the upstream")

        f.signal(signal.SIGTERM)
        f.wait_stderr(r"drain: still accepting connections for 3000 ms")
        eq(ft.admin_request(f.ports["admin"], target="/readyz").status, 503, "/readyz at once")
        # a keep-alive connection's next request during the grace: answered, told to close
        r = kept.request(target="/next-on-kept")
        eq((r.status, r.header("connection", "").lower()), (200, "close"),
           "the next response on a keep-alive connection during the grace")
        check(kept.is_closed(), "that connection closes after it")
        kept.close()
        # during the grace: new connections are accepted and served, each told to close
        for i in range(3):
            with Client(f.port) as c:
                r = c.request(target=f"/during-grace-{i}")
                eq(r.status, 200, f"request {i} on a connection accepted during the grace")
                eq(r.header("connection", "").lower(), "close", f"Connection header on response {i}")
                check(c.is_closed(), f"connection {i} closes after its response")
            eq(ft.admin_request(f.ports["admin"], target="/readyz").status, 503,
               f"/readyz during the grace ({i})")
        check(not any("drain_grace is over" in l for l in f.stderr_text().splitlines()),
              "the grace was still running while the requests above were served")

        f.wait_stderr(r"drain_grace is over: no longer accepting")
        check(idle.is_closed(), "the idle keep-alive connection is closed when the grace ends")
        idle.close()
        check(connect_refused(f.port), "connections are refused after the grace")
        eq(ft.admin_request(f.ports["admin"], target="/readyz").status, 503, "/readyz after the grace")
        check(f.proc.poll() is None, "ferry still waits for the request in flight")
        up.release.set()
        r = busy.response()
        eq((r.status, r.header("connection", "").lower()), (200, "close"), "the request in flight")
        busy.close()
        eq(f.proc.wait(30), 0, "exit code after the drain")
        f.stop()


ft.main(globals())
