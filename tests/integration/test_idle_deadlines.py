"""Client deadlines kept in per-worker lists, one per timer kind, behind
one timer (src/session.c): many idle connections each close client_idle
after their own last response, kinds with different durations fire in
their own order, and a reload that shortens client_idle applies to new
deadlines while the ones already set keep theirs. Every wait is on an
event (a response, a close) bounded by the I/O timeout; the only sleep
staggers two groups of connections."""
import re
import os
import selectors
import signal
import socket
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

# Lower slack: ferry takes the deadline from its loop time, read at the
# start of the loop turn that sent the response, and the client notes the
# response a little after it was sent.
SLACK = 0.05


def config(client_idle, client_header="5s", upstream_response="5s"):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: off}}
timeouts:
  client_header: {client_header}
  client_idle: {client_idle}
  upstream_response: {upstream_response}
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{{port:up}}
routes:
  - path: /up
    upstream: up
  - path_prefix: /
    respond: {{status: 200, body: "ok\\n"}}
"""


def open_idle(port, n):
    """n connections that each served one request; returns [(client, time
    the response was read)]."""
    out = []
    for _ in range(n):
        c = Client(port)
        eq(c.request(target="/r").status, 200, "request before going idle")
        out.append((c, time.monotonic()))
    return out


def wait_closed(clients, timeout=ft.IO_TIMEOUT):
    """Waits until ferry closes every client; returns {client: close time}."""
    sel = selectors.DefaultSelector()
    for c in clients:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, c)
    closed = {}
    deadline = time.monotonic() + timeout
    while len(closed) < len(clients):
        left = deadline - time.monotonic()
        check(left > 0, f"{len(clients) - len(closed)} of {len(clients)} connections still open")
        for key, _ in sel.select(timeout=left):
            c = key.data
            try:
                d = c.sock.recv(65536)
            except ConnectionResetError:
                d = b""
            check(d == b"", f"expected a close, got bytes: {d[:100]!r}")
            closed[c] = time.monotonic()
            sel.unregister(c.sock)
    sel.close()
    return closed


def still_open(c):
    """True when ferry has not closed c (nothing readable, no EOF)."""
    c.sock.setblocking(False)
    try:
        d = c.sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        c.sock.setblocking(True)
        c.sock.settimeout(ft.IO_TIMEOUT)
    check(d == b"", f"unexpected bytes on an idle connection: {d!r}")
    return False


def test_many_idle_connections_each_close_client_idle_after_their_response():
    idle = 0.4
    with Ferry(config("400ms"), ports={"up": ft.free_port()}) as f:
        first = open_idle(f.port, 100)
        time.sleep(0.2)  # a second wave, 200 ms later, in the same list
        second = open_idle(f.port, 100)
        everyone = first + second
        try:
            closed = wait_closed([c for c, _ in everyone])
            for i, (c, t) in enumerate(everyone):
                held = closed[c] - t
                check(held >= idle - SLACK, f"connection {i} closed after {held:.3f}s, before client_idle")
                check(held < idle + 1.0, f"connection {i} closed only after {held:.3f}s")
            check(max(closed[c] for c, _ in first) < min(closed[c] for c, _ in second),
                  "the first wave closed before the second")
        finally:
            for c, _ in everyone:
                c.close()


def test_timer_kinds_with_different_durations_fire_each_at_its_own():
    held = []

    def handler(c):  # reads the request, never answers
        c.upstream.record(c.read_request())
        held.append(c)
        c.sock.settimeout(ft.IO_TIMEOUT)
        try:
            while c.sock.recv(65536):
                pass
        except OSError:
            pass

    with Upstream(handler) as up, \
            Ferry(config("900ms", client_header="300ms", upstream_response="600ms"),
                  ports={"up": up.port}) as f:
        with Client(f.port) as idle, Client(f.port) as slow_head, Client(f.port) as waiting:
            t0 = time.monotonic()
            eq(idle.request(target="/r").status, 200, "idle: first request")
            t_idle = time.monotonic()
            slow_head.send(b"GET /r HTTP/1.1\r\nHost: t\r\n")  # the head never ends
            t_head = time.monotonic()
            waiting.send(b"GET /up HTTP/1.1\r\nHost: t\r\n\r\n")
            t_wait = time.monotonic()

            eq(slow_head.response().status, 408, "client_header expired")
            got_408 = time.monotonic()
            eq(waiting.response().status, 504, "upstream_response expired")
            got_504 = time.monotonic()
            check(idle.is_closed(), "client_idle expired")
            got_close = time.monotonic()

            check(got_408 - t_head >= 0.3 - SLACK, f"408 after {got_408 - t_head:.3f}s")
            check(got_504 - t_wait >= 0.6 - SLACK, f"504 after {got_504 - t_wait:.3f}s")
            check(got_close - t_idle >= 0.9 - SLACK, f"idle close after {got_close - t_idle:.3f}s")
            check(got_408 < got_504 < got_close, "each kind fired at its own duration")
            check(got_close - t0 < 0.9 + 1.0, f"all done after {got_close - t0:.3f}s")
        eq(len(up.requests), 1, "one request went upstream")


def write_config(f, text):
    text = re.sub(r"\{port:([A-Za-z0-9_]+)\}", lambda m: str(f.ports.setdefault(m.group(1), ft.free_port())), text)
    with open(f.config_path + ".tmp", "w") as out:
        out.write(text)
    os.replace(f.config_path + ".tmp", f.config_path)


def config_generation(f):
    r = ft.admin_request(f.ports["admin"], target="/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith("ferry_config_generation "):
            return float(line.rsplit(" ", 1)[1])
    raise ft.TestFailure("ferry_config_generation not in /metrics")


def test_reload_shortening_client_idle_applies_to_new_deadlines_only():
    with Ferry(config("3s"), ports={"up": ft.free_port()}) as f:
        old = open_idle(f.port, 5)  # idle until 3 s after their response
        write_config(f, config("300ms"))
        f.signal(signal.SIGHUP)
        deadline = time.monotonic() + ft.IO_TIMEOUT
        while config_generation(f) < 2:
            check(time.monotonic() < deadline, "the reload never applied")
            time.sleep(0.02)
        new = open_idle(f.port, 5)  # due before every old one: placed ahead of them
        try:
            closed = wait_closed([c for c, _ in new])
            for i, (c, t) in enumerate(new):
                held = closed[c] - t
                check(0.3 - SLACK <= held < 0.3 + 1.0, f"new connection {i} closed after {held:.3f}s")
            for i, (c, t) in enumerate(old):
                check(still_open(c), f"old connection {i} kept its 3 s deadline")
            # A request on an old connection works, and its next idle
            # deadline takes the new duration.
            c, _ = old[0]
            eq(c.request(target="/r").status, 200, "an old connection still serves")
            t = time.monotonic()
            check(c.is_closed(), "closed after the new client_idle")
            check(time.monotonic() - t < 0.3 + 1.0, "the next deadline used the new client_idle")
        finally:
            for c, _ in old + new:
                c.close()


if __name__ == "__main__":
    ft.main(globals())
