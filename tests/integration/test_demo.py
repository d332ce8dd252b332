"""`make run`'s demo runner (scripts/run-demo.sh): Ctrl-C reaches ferry
once, so it drains (a request still arriving is answered by a live
upstream) instead of taking a second stop signal and exiting at once.
Uses the demo's fixed ports (8080, 9901, 19001-19003)."""
import os
import pty
import select
import signal
import socket
import time

import ferrytest as ft
from ferrytest import eq, check

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PORTS = (8080, 9901, 19001, 19002, 19003)


class Terminal:
    """The runner on a pseudo-terminal, as `make run` has it."""

    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(ROOT)
            os.execvp(argv[0], argv)
        self.out = b""

    def read_until(self, needle, timeout=ft.IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.out:
            left = deadline - time.monotonic()
            check(left > 0, f"no {needle!r} from the demo; output:\n{self.text()}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    d = os.read(self.fd, 65536)
                except OSError:  # EIO: every process on the terminal has gone
                    d = b""
                check(d != b"", f"the demo ended before {needle!r}; output:\n{self.text()}")
                self.out += d

    def wait_exit(self, timeout=ft.IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.drain()
                return status
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                self.drain()
        os.kill(self.pid, signal.SIGKILL)
        raise ft.TestFailure(f"the demo did not exit; output:\n{self.text()}")

    def drain(self):
        while select.select([self.fd], [], [], 0)[0]:
            try:
                d = os.read(self.fd, 65536)
            except OSError:
                return
            if not d:
                return
            self.out += d

    def text(self):
        return self.out.decode("utf-8", "replace")


def busy_upstream_connections():
    """Upstream connections attached to a request now (sampled every 250 ms)."""
    body = ft.admin_request(9901, target="/metrics").body.decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith("ferry_upstream_connections_busy{"))


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_ctrl_c_drains_ferry_once_and_stops_the_upstreams_after_it():
    # Another checkout's test suite may be running this demo right now:
    # wait (bounded) for it to end.
    deadline = time.monotonic() + 60
    while busy := [p for p in PORTS if not port_free(p)]:
        check(time.monotonic() < deadline, f"the demo's ports {busy} stay in use (a demo running?)")
        time.sleep(0.2)
    build = os.path.dirname(os.path.abspath(ft.FERRY_BIN))
    t = Terminal([os.path.join(ROOT, "scripts", "run-demo.sh"), build])
    try:
        t.read_until("info ferry: listening on 127.0.0.1:8080")
        for name in ("api-1", "api-2", "web"):
            t.read_until(f"ferry-echo {name} listening")
        eq(ft.request(8080, target="/api/users").status, 200, "a request through the demo")
        with ft.Client(8080) as c:
            # A request in flight: its head went upstream, its body has not.
            c.send(b"POST /api/in-flight HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n")
            deadline = time.monotonic() + ft.IO_TIMEOUT
            while not busy_upstream_connections():
                check(time.monotonic() < deadline, "the request never reached an upstream")
                time.sleep(0.05)
            os.write(t.fd, b"\x03")  # Ctrl-C
            t.read_until("SIGINT: draining")
            c.send(b"hello")
            m = c.response()
            eq(m.status, 200, "the request in flight during the drain is answered by its upstream")
        status = t.wait_exit()
        out = t.text()
        check("stopped" in out, f"ferry drained and stopped; output:\n{out}")
        eq(out.count("draining"), 1, f"one stop signal; output:\n{out}")
        check("second stop signal" not in out, f"no second stop signal; output:\n{out}")
        check(os.WIFEXITED(status), f"the runner exited (status {status})")
        for p in PORTS:
            check(port_free(p), f"port {p} is free again: every process of the demo has exited")
    finally:
        try:
            os.kill(t.pid, signal.SIGKILL)
            os.waitpid(t.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(t.fd)


ft.main(globals())
