"""Shared harness for ferry's black-box integration tests (standard library only).

A test file defines functions named test_*, each taking no argument, and ends
with `ferrytest.main(globals())`. The runner runs them in file order, prints
one line per test and closes with "N passed, N failed"; the exit code is 0
only when every test passed.

Pieces:
  Ferry(config)         start the built ferry (FERRY_BIN) on a config text in
                        which {port:NAME} placeholders become free loopback
                        ports; waits for its "listening on" line (an event,
                        not a sleep); .stop() drains it with SIGTERM and
                        asserts a clean exit (so ASan leak reports fail).
  Upstream(handler)     a scripted upstream: a thread per accepted
                        connection runs handler(conn); counts accepted
                        connections and records what each one received.
  Client / request()    raw sockets: send exact bytes, read one response
                        with its framing (Content-Length, chunked, close).
Every blocking call has a timeout, so a hang fails the test instead of CI.
"""

import os
import re
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

FERRY_BIN = os.environ.get("FERRY_BIN", "build/ferry")
ECHO_BIN = os.environ.get("FERRY_ECHO_BIN", "build/ferry-echo")
IO_TIMEOUT = float(os.environ.get("FERRY_TEST_IO_TIMEOUT", "10"))
START_TIMEOUT = 20.0  # generous: the sanitizer build starts slowly


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what="value"):
    if got != want:
        raise TestFailure(f"{what}: expected {want!r}, got {got!r}")


def free_port():
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# ferry process


class Ferry:
    """One ferry process on a config text.

    `config` may contain {port:NAME} placeholders: each NAME gets one free
    port, readable afterwards as ferry.ports[NAME]; {tmp} is a private
    temporary directory. Extra `ports` (a dict NAME->port) pre-seeds names,
    e.g. with an Upstream's port."""

    def __init__(self, config, ports=None, args=(), env=None, wait=True, preexec=None):
        self.tmp = tempfile.mkdtemp(prefix="ferry-test-")
        self.ports = dict(ports or {})

        def sub_port(m):
            name = m.group(1)
            if name not in self.ports:
                self.ports[name] = free_port()
            return str(self.ports[name])

        text = re.sub(r"\{port:([A-Za-z0-9_]+)\}", sub_port, config)
        text = text.replace("{tmp}", self.tmp)
        self.config_path = os.path.join(self.tmp, "proxy.yaml")
        with open(self.config_path, "w") as f:
            f.write(text)
        self.stderr_lines = []
        self._stderr_cv = threading.Condition()
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [FERRY_BIN, "-c", self.config_path, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=e,
            preexec_fn=preexec,  # e.g. resource limits for the child only
        )
        self.stdout_lines = []
        self._stdout_cv = threading.Condition()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines, self._stderr_cv), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines, self._stdout_cv), daemon=True).start()
        if wait:
            self.wait_stderr(r"listening on", START_TIMEOUT)

    @property
    def port(self):
        """The port of the first {port:NAME} listener named 'http' (or 'listen')."""
        for k in ("http", "listen"):
            if k in self.ports:
                return self.ports[k]
        raise KeyError("no {port:http} in this config")

    def _pump(self, stream, lines, cv):
        for raw in iter(stream.readline, b""):
            with cv:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                cv.notify_all()
        with cv:
            lines.append(None)  # EOF marker
            cv.notify_all()

    def _wait(self, lines, cv, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with cv:
            i = 0
            while True:
                while i < len(lines):
                    line = lines[i]
                    i += 1
                    if line is None:
                        raise TestFailure(f"ferry exited (rc={self.proc.poll()}) before printing /{pattern}/; "
                                          f"stderr: {self.stderr_text()}")
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"timed out waiting for /{pattern}/; stderr: {self.stderr_text()}")
                cv.wait(left)

    def wait_stderr(self, pattern, timeout=IO_TIMEOUT):
        return self._wait(self.stderr_lines, self._stderr_cv, pattern, timeout)

    def wait_access_log(self, pattern, timeout=IO_TIMEOUT):
        """Waits for an access log line (access_log.path "-") matching pattern."""
        return self._wait(self.stdout_lines, self._stdout_cv, pattern, timeout)

    def access_log(self):
        with self._stdout_cv:
            if self.proc.poll() is not None:  # all of it, as for stderr_text
                self._stdout_cv.wait_for(lambda: None in self.stdout_lines, IO_TIMEOUT)
            return [l for l in self.stdout_lines if l is not None]

    def stderr_text(self):
        """What ferry printed on stderr so far; once it has exited, all of it
        (the reader thread may still be behind the exit: wait for its EOF)."""
        with self._stderr_cv:
            if self.proc.poll() is not None:
                self._stderr_cv.wait_for(lambda: None in self.stderr_lines, IO_TIMEOUT)
            return "\n".join(l for l in self.stderr_lines if l is not None)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=_signal.SIGTERM, expect_rc=0, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure(f"ferry did not exit within {timeout}s of {sig!r}; stderr: {self.stderr_text()}")
        # let the pump threads see EOF so stderr is complete
        with self._stderr_cv:
            end = time.monotonic() + 5
            while (not self.stderr_lines or self.stderr_lines[-1] is not None) and time.monotonic() < end:
                self._stderr_cv.wait(0.5)
        if expect_rc is not None and rc != expect_rc:
            raise TestFailure(f"ferry exited with {rc}, expected {expect_rc}; stderr:\n{self.stderr_text()}")
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if bad in self.stderr_text():
                raise TestFailure(f"sanitizer report in ferry's stderr:\n{self.stderr_text()}")
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.stop()
        else:
            self.kill()
        return False


def ferry_check(config_text, extra_args=()):
    """Runs `ferry -t -c FILE`; returns (rc, stdout+stderr text, path)."""
    tmp = tempfile.mkdtemp(prefix="ferry-check-")
    path = os.path.join(tmp, "proxy.yaml")
    with open(path, "w") as f:
        f.write(config_text)
    p = subprocess.run([FERRY_BIN, "-t", "-c", path, *extra_args], capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode(), path


# ---------------------------------------------------------------------------
# scripted upstreams


class UpConn:
    """The upstream's side of one connection, given to a handler."""

    def __init__(self, sock, upstream, index):
        self.sock = sock
        self.sock.settimeout(IO_TIMEOUT)
        self.upstream = upstream
        self.index = index
        self.buf = b""
        self.received = b""  # everything read on this connection

    def _fill(self):
        d = self.sock.recv(65536)
        if d:
            self.buf += d
            self.received += d
        return d

    def read_request(self):
        """Reads one request (head and body, by its framing). Returns a
        Message, or None on EOF before any byte."""
        return read_message(self, is_request=True)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def respond(self, status=200, body=b"ok", headers=(), reason=None):
        if isinstance(body, str):
            body = body.encode()
        reason = reason or {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "X")
        h = f"HTTP/1.1 {status} {reason}\r\n"
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            h += f"{k}: {v}\r\n"
        if "content-length" not in names and "transfer-encoding" not in names:
            h += f"Content-Length: {len(body)}\r\n"
        self.send(h.encode() + b"\r\n" + body)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Upstream:
    """A scripted upstream on 127.0.0.1. handler(conn: UpConn) runs in its
    own thread per accepted connection; the default serves keep-alive
    requests answering 200 with body "ok from NAME". Every request it
    parsed is appended to .requests (Message objects)."""

    def __init__(self, handler=None, name="up", port=0, host="127.0.0.1"):
        self.name = name
        self.handler = handler or self.serve_keepalive
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(512)
        self.port = self.lsock.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self.accepted = 0
        self.requests = []
        self.conns = []
        self.errors = []
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self._cv:
                if self._closed:
                    s.close()
                    return
                self.accepted += 1
                c = UpConn(s, self, self.accepted)
                self.conns.append(c)
                self._cv.notify_all()
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c)
        except (OSError, TestFailure) as e:  # the peer closing is normal here
            with self._cv:
                self.errors.append(repr(e))
        finally:
            c.close()

    def record(self, msg):
        with self._cv:
            self.requests.append(msg)
            self._cv.notify_all()

    def wait_requests(self, n, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"upstream {self.name}: expected {n} requests, got {len(self.requests)}")
                self._cv.wait(left)
            return list(self.requests)

    def serve_keepalive(self, c):
        while True:
            m = c.read_request()
            if m is None:
                return
            self.record(m)
            c.respond(200, f"ok from {self.name}")
            if m.header("connection", "").lower() == "close":
                return

    def close(self):
        with self._cv:
            self._closed = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self._cv:
            for c in self.conns:
                c.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


class ScriptedUpstream(Upstream):
    """An Upstream whose behaviour the test switches while it runs.

    .mode applies to proxied requests, .health_mode to requests for
    health_path (ferry's active checks):
      "ok"     200 "ok from NAME" (keep-alive)
      "5xx"    500 (503 for health checks)
      "stall"  read the request, answer nothing until .release() (or the IO
               timeout), then close
      "reset"  read the request, then reset the connection (RST, no byte)
    Proxied requests go to .requests, health checks to .checks; `down()`
    stops listening (connections are refused) and `Upstream(...)` on the
    same port brings a server back."""

    def __init__(self, name="up", port=0, host="127.0.0.1", health_path="/healthz"):
        self.mode = "ok"
        self.health_mode = "ok"
        self.health_path = health_path
        self.checks = []
        self.arrived = None  # optional threading.Event set on each proxied request
        self.eofs = 0  # connections the peer closed between requests
        self._release = threading.Event()
        super().__init__(self._serve, name=name, port=port, host=host)

    def _serve(self, c):
        import struct
        while True:
            m = c.read_request()
            if m is None:
                with self._cv:
                    self.eofs += 1  # the peer (ferry) closed this connection
                    self._cv.notify_all()
                return
            is_check = m.target == self.health_path
            with self._cv:
                (self.checks if is_check else self.requests).append(m)
                self._cv.notify_all()
            if not is_check and self.arrived is not None:
                self.arrived.set()
            mode = self.health_mode if is_check else self.mode
            if mode == "5xx":
                c.respond(503 if is_check else 500, f"error from {self.name}", reason="Error")
            elif mode == "stall":
                self._release.wait(IO_TIMEOUT)
                return
            elif mode == "reset":
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            else:
                c.respond(200, f"ok from {self.name}")
            if m.header("connection", "").lower() == "close":
                return

    def count(self):
        with self._cv:
            return len(self.requests)

    def wait_checks(self, n, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.checks) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"upstream {self.name}: expected {n} health checks, got {len(self.checks)}")
                self._cv.wait(left)

    def wait_eofs(self, n, timeout=IO_TIMEOUT):
        """Waits until the peer has closed n connections between requests."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self.eofs < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"upstream {self.name}: expected {n} closed connections, got {self.eofs}")
                self._cv.wait(left)

    def release(self):
        self._release.set()

    def down(self):
        """Go down like a server process that exits: stop listening (new
        connections are refused) and close every open connection (a
        shutdown wakes handler threads blocked in recv, so the peer sees
        the close now rather than when their read times out)."""
        self.release()
        with self._cv:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.close()


def echo_server(name="echo"):
    """Starts the demo upstream ferry-echo on a free port; returns (proc, address)."""
    port = free_port()
    p = subprocess.Popen([ECHO_BIN, "-n", name, f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    line = p.stdout.readline().decode()
    check("listening" in line, f"ferry-echo did not start: {line!r}")
    return p, f"127.0.0.1:{port}"


# ---------------------------------------------------------------------------
# messages and clients


class Message:
    def __init__(self, start, headers, body, chunked=False, trailers=None, raw=b""):
        self.start = start  # request line or status line
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.chunked = chunked
        self.trailers = trailers or []
        self.raw = raw

    @property
    def status(self):
        return int(self.start.split(" ", 2)[1])

    @property
    def method(self):
        return self.start.split(" ", 1)[0]

    @property
    def target(self):
        return self.start.split(" ", 2)[1]

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def names(self):
        return [k.lower() for k, _ in self.headers]

    def __repr__(self):
        return f"<Message {self.start!r} {self.headers!r} body={self.body[:80]!r}>"


class Closed(Exception):
    pass


def _read_line(r):
    while b"\r\n" not in r.buf:
        if not r._fill():
            raise Closed("connection closed mid-line")
    line, r.buf = r.buf.split(b"\r\n", 1)
    return line


def _read_n(r, n):
    while len(r.buf) < n:
        if not r._fill():
            raise Closed(f"connection closed with {n - len(r.buf)} body bytes missing")
    d, r.buf = r.buf[:n], r.buf[n:]
    return d


def read_message(r, is_request, head_only=False, request_method="GET"):
    """Reads one HTTP/1.x message from r (an object with .buf and ._fill()).
    Returns None on a clean EOF before any byte."""
    start_len = len(r.received) - len(r.buf)
    while not r.buf:
        if not r._fill():
            return None
    start = _read_line(r).decode("latin-1")
    headers = []
    while True:
        line = _read_line(r)
        if line == b"":
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers.append((k, v.strip(" \t")))
    m = Message(start, headers, b"")
    if head_only:
        return m
    te = m.header("transfer-encoding", "")
    cl = m.header("content-length")
    if not is_request:
        status = m.status
        if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            m.raw = r.received[start_len:len(r.received) - len(r.buf)]
            return m
    if "chunked" in te.lower():
        m.chunked = True
        body = b""
        while True:
            size_line = _read_line(r)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while True:
                    t = _read_line(r)
                    if t == b"":
                        break
                    k, _, v = t.decode("latin-1").partition(":")
                    m.trailers.append((k, v.strip()))
                break
            body += _read_n(r, size)
            eq(_read_line(r), b"", "chunk terminator")
        m.body = body
    elif cl is not None:
        m.body = _read_n(r, int(cl))
    elif not is_request:
        # close-delimited
        while r._fill():
            pass
        m.body, r.buf = r.buf, b""
    m.raw = r.received[start_len:len(r.received) - len(r.buf)]
    return m


class Client:
    """A raw client connection to ferry."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.received = b""

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if d:
            self.buf += d
            self.received += d
        return d

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def response(self, method="GET"):
        m = read_message(self, is_request=False, request_method=method)
        if m is None:
            raise Closed("connection closed before a response")
        return m

    def request(self, method="GET", target="/", headers=(("Host", "example.test"),), body=None, version="HTTP/1.1"):
        h = f"{method} {target} {version}\r\n"
        for k, v in headers:
            h += f"{k}: {v}\r\n"
        data = h.encode()
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
                data += f"Content-Length: {len(body)}\r\n".encode()
            data += b"\r\n" + body
        else:
            data += b"\r\n"
        self.send(data)
        return self.response(method)

    def is_closed(self, timeout=IO_TIMEOUT):
        """True when the peer closes (EOF or reset) within timeout with no
        further bytes; extra bytes are a failure."""
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(IO_TIMEOUT)
        check(d == b"", f"expected the connection to close, got more bytes: {d[:200]!r}")
        return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def request(port, method="GET", target="/", headers=(("Host", "example.test"),), body=None, version="HTTP/1.1"):
    """One request on a new connection; returns the response Message."""
    with Client(port) as c:
        return c.request(method, target, headers, body, version)


def admin_request(port, method="GET", target="/", headers=(), body=None, version="HTTP/1.1"):
    """One request to the admin listener, with the Host a local tool sends
    (127.0.0.1:PORT): the admin refuses other names (DNS-rebinding guard)."""
    return request(port, method, target, [("Host", f"127.0.0.1:{port}"), *headers], body, version)


def raw_exchange(port, data):
    """Sends raw bytes, reads everything until ferry closes; returns bytes."""
    with Client(port) as c:
        c.send(data)
        while c._fill():
            pass
        return c.received


# ---------------------------------------------------------------------------
# runner


def main(ns):
    tests = [(n, f) for n, f in ns.items() if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    if only:
        tests = [(n, f) for n, f in tests if n in only]
    passed = failed = 0
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Exception:  # report and go on to the next test
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.2f}s)")
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.2f}s)")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)
