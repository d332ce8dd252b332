"""Access log off the event loop (issue 6): a file, SIGUSR1 reopens it,
a reload switches the format, and a log nobody drains drops lines
(counted) instead of stalling requests."""
import codecs
import json
import os
import re
import signal
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, log_path, fmt="combined"):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "{log_path}", format: {fmt}}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /
    upstream: api
"""


def wait_file_line(path, pattern, timeout=ft.IO_TIMEOUT):
    """Waits until a line of the file matches (the writer thread is asynchronous)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            with open(path) as fh:
                for line in fh:
                    if rx.search(line):
                        return line
        check(time.monotonic() < deadline, f"no line matching /{pattern}/ in {path}")
        time.sleep(0.02)


def metric(f, name):
    body = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise ft.TestFailure(f"{name} missing")


def test_sigusr1_reopens_the_access_log_after_rotation():
    with Upstream() as up:
        f = Ferry(config(up.address, "{tmp}/access.log"))
        with f:
            path = os.path.join(f.tmp, "access.log")
            eq(ft.request(f.port, target="/before").status, 200, "status")
            wait_file_line(path, r'"GET /before HTTP/1\.1" 200')
            os.rename(path, path + ".1")
            eq(ft.request(f.port, target="/between").status, 200, "status")
            wait_file_line(path + ".1", r'"GET /between HTTP/1\.1" 200')  # still the open file
            f.signal(signal.SIGUSR1)
            f.wait_stderr(r"access log .*access\.log$")
            eq(ft.request(f.port, target="/after").status, 200, "status")
            wait_file_line(path, r'"GET /after HTTP/1\.1" 200')
            with open(path + ".1") as fh:
                check("/after" not in fh.read(), "the rotated file gets no new lines")


def test_reload_switches_the_access_log_format():
    with Upstream() as up:
        f = Ferry(config(up.address, "{tmp}/access.log"))
        with f:
            path = os.path.join(f.tmp, "access.log")
            eq(ft.request(f.port, target="/plain").status, 200, "status")
            wait_file_line(path, r'"GET /plain HTTP/1\.1" 200')
            with open(f.config_path, "w") as fh:
                fh.write(config(up.address, path, "json").replace("{port:http}", str(f.port))
                         .replace("{port:admin}", str(f.ports["admin"])))
            f.signal(signal.SIGHUP)
            f.wait_stderr(r"configuration generation 2 published")
            line = None
            for _ in range(100):  # each worker switches when it sees the new generation
                ft.request(f.port, target="/json")
                try:
                    line = wait_file_line(path, r'^\{.*"/json"', timeout=0.2)
                    break
                except ft.TestFailure:
                    pass
            check(line is not None, "a JSON line after the reload")
            rec = json.loads(line)
            eq((rec["method"], rec["target"], rec["status"]), ("GET", "/json", 200), "JSON fields")


def test_a_stuck_log_drops_lines_and_never_stalls_requests():
    with Upstream() as up:
        tmp = ft.tempfile.mkdtemp(prefix="ferry-fifo-")
        fifo = os.path.join(tmp, "log.fifo")
        os.mkfifo(fifo)
        # hold the read end open (so ferry's open succeeds) but do not read yet
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            f = Ferry(config(up.address, fifo))
            with f:
                deadline = time.monotonic() + 60
                n = 0
                with Client(f.port) as c:
                    while time.monotonic() < deadline and n < 50000:
                        eq(c.request(target="/" + "x" * 200).status, 200, f"request {n}")
                        n += 1
                        if n % 500 == 0 and metric(f, "ferry_access_log_dropped_total") > 0:
                            break
                check(metric(f, "ferry_access_log_dropped_total") > 0,
                      f"lines were dropped after {n} requests into a log nobody reads")
                # drain the pipe so the writer can finish at exit
                stop = threading.Event()

                def drain():
                    while not stop.is_set():
                        try:
                            if not os.read(rfd, 65536):
                                time.sleep(0.01)
                        except BlockingIOError:
                            time.sleep(0.01)
                t = threading.Thread(target=drain, daemon=True)
                t.start()
                f.stop()
                stop.set()
                t.join(10)
        finally:
            os.close(rfd)



def _latin1_fallback(err):
    """Each byte that is not part of well-formed UTF-8, read as Latin-1:
    what ferry writes as \\u00XX."""
    return err.object[err.start:err.start + 1].decode("latin-1"), err.start + 1


codecs.register_error("ferrytest-latin1", _latin1_fallback)


def read_lines_bytes(path, n, timeout=ft.IO_TIMEOUT):
    """The first n lines of the file as bytes, once there are n."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            with open(path, "rb") as fh:
                lines = fh.read().split(b"\n")
            if len(lines) > n:
                return lines[:n]
        check(time.monotonic() < deadline, f"fewer than {n} lines in {path}")
        time.sleep(0.02)


# Requests whose log lines must each be one valid JSON object: a UTF-8
# User-Agent, bytes that are not UTF-8, and heads ferry rejects at
# different points (its own scan, llhttp, the framing checks, garbage).
UTF8_UA = "Mozilla/5.0 café ☕ 𝄞 \"quoted\" back\\slash"
BAD_UA = b"bad \xff\xfe \xc3 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 \xe2\x82 end"
REQUESTS = [
    ("utf8-ua", b"GET /utf8 HTTP/1.1\r\nHost: x\r\nUser-Agent: " + UTF8_UA.encode() +
     b"\r\nConnection: close\r\n\r\n"),
    ("invalid-bytes", b"GET /invalid HTTP/1.1\r\nHost: x\r\nUser-Agent: " + BAD_UA +
     b"\r\nReferer: http://x/\x80\r\nConnection: close\r\n\r\n"),
    ("raw-utf8-target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("bare-lf", b"GET /bare-lf HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"),
    ("ctl-in-value", b"GET /ctl HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x01b\r\n\r\n"),
    ("cl-and-te", b"POST /both HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n"),
    ("bad-method", b"G\xc3\xa9T /m HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("tls-hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32))),
    ("nul-in-target", b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
]


def test_json_access_log_lines_are_json_for_any_bytes():
    with Upstream() as up:
        f = Ferry(config(up.address, "{tmp}/access.log", "json"))
        with f:
            path = os.path.join(f.tmp, "access.log")
            statuses = {}
            for name, raw in REQUESTS:  # one at a time: lines come in this order
                got = ft.raw_exchange(f.port, raw)
                statuses[name] = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None
                read_lines_bytes(path, len(statuses))
            lines = read_lines_bytes(path, len(REQUESTS))
            recs = {}
            for (name, _), raw in zip(REQUESTS, lines):
                text = raw.decode("utf-8")  # JSON text is UTF-8 (RFC 8259 8.1): strict
                try:
                    recs[name] = json.loads(text)
                except ValueError as e:
                    raise ft.TestFailure(f"{name}: not JSON ({e}): {raw!r}")
                eq(recs[name]["status"], statuses[name], f"{name}: logged status")
            eq(recs["utf8-ua"]["user_agent"], UTF8_UA, "a UTF-8 User-Agent, as sent")
            eq(recs["invalid-bytes"]["user_agent"], BAD_UA.decode("utf-8", "ferrytest-latin1"),
               "bytes that are not UTF-8, one \\u00XX each")
            check("\\u00ff" in lines[1].decode() and "\\u0080" in lines[1].decode(),
                  f"invalid bytes are \\u-escaped: {lines[1]!r}")
            eq(recs["invalid-bytes"]["referer"], "http://x/\x80", "Referer")
            check(recs["raw-utf8-target"]["target"].startswith("/caf"), "raw UTF-8 target")
            for name in ("bare-lf", "ctl-in-value", "cl-and-te", "bad-method", "tls-hello",
                         "nul-in-target"):
                eq(recs[name]["status"], 400, f"{name}: rejected")
            # What arrived before the error, never invented values.
            eq([recs["bare-lf"][k] for k in ("method", "target", "protocol")],
               ["GET", "/bare-lf", "HTTP/1.1"], "bare LF after a good request line")
            eq([recs["ctl-in-value"][k] for k in ("method", "target", "protocol")],
               ["GET", "/ctl", "HTTP/1.1"], "a control character in a header")
            eq([recs["cl-and-te"][k] for k in ("method", "target", "protocol")],
               ["POST", "/both", "HTTP/1.0"], "Content-Length with Transfer-Encoding")
            eq([recs["bad-method"][k] for k in ("method", "protocol")], ["-", "-"],
               "a method llhttp refuses")
            eq([recs["tls-hello"][k] for k in ("method", "target", "protocol")],
               ["-", "-", "-"], "TLS bytes on a plain listener")
            eq([recs["nul-in-target"][k] for k in ("method", "protocol")], ["GET", "-"],
               "NUL in the target: the method was read, the version was not")


def test_rejected_requests_are_logged_with_what_was_received():
    with Upstream() as up:
        f = Ferry(config(up.address, "{tmp}/access.log"))
        with f:
            path = os.path.join(f.tmp, "access.log")
            sent = [b"\x16\x03\x01\x00\xa5\x01\x00\x00",
                    b"GET /bare-lf HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
                    b"PUT /te HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"]
            for i, raw in enumerate(sent):  # one at a time: lines come in this order
                ft.raw_exchange(f.port, raw)
                read_lines_bytes(path, i + 1)
            lines = [l.decode() for l in read_lines_bytes(path, 3)]
            check('] "-" 400 ' in lines[0], f"nothing of a request line: \"-\": {lines[0]}")
            check('] "GET /bare-lf HTTP/1.1" 400 ' in lines[1], f"bare LF: {lines[1]}")
            check('] "PUT /te HTTP/1.1" 400 ' in lines[2], f"CL and TE: {lines[2]}")
            check(not any("DELETE" in l for l in lines), f"no invented method: {lines}")



ft.main(globals())
