"""Admin listener Host guard against DNS rebinding: a page whose own name
was made to resolve to 127.0.0.1 sends that name as Host, and the admin
refuses it; IP literals, localhost, names in admin.allowed_hosts and
requests without Host (HTTP/1.0 tools) are served."""
import json
import os
import re
import signal
import socket
import subprocess
import threading

import ferrytest as ft
from ferrytest import Ferry, eq, check


def config(admin_extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
admin:
  address: 127.0.0.1:{{port:admin}}
{admin_extra}
routes:
  - path_prefix: /
    respond: {{status: 200, body: "pong\\n"}}
"""


def get(f, host, target="/healthz", version="HTTP/1.1", method="GET", extra=()):
    headers = [("Host", host)] if host is not None else []
    return ft.request(f.ports["admin"], method=method, target=target, headers=[*headers, *extra],
                      version=version)


def refusal(host):
    return (f'admin: Host "{host}" is not allowed (a guard against DNS rebinding); use the IP '
            f'address or localhost, or list the name in admin.allowed_hosts\n')


def test_foreign_name_is_refused_with_403_and_what_to_do():
    with Ferry(config()) as f:
        for target in ("/healthz", "/metrics", "/inspect/requests", "/nope"):
            r = get(f, "evil.example", target)
            eq(r.status, 403, f"status of {target} with Host evil.example")
            eq(r.body.decode(), refusal("evil.example"), f"body of {target}")
        r = get(f, f"evil.example:{f.ports['admin']}")
        eq(r.status, 403, "a port does not help")
        eq(r.body.decode(), refusal(f"evil.example:{f.ports['admin']}"), "the value is quoted as sent")
        eq(get(f, "127.0.0.1.evil.example").status, 403, "a name that starts like an IP")


def test_ip_literals_localhost_and_no_host_are_served():
    with Ferry(config()) as f:
        port = f.ports["admin"]
        for host in (f"127.0.0.1:{port}", "127.0.0.1", "localhost", f"LOCALHOST:{port}", f"[::1]:{port}"):
            r = get(f, host)
            eq(r.status, 200, f"status with Host {host}")
            eq(r.body, b"ok\n", f"body with Host {host}")
        r = get(f, None, version="HTTP/1.0")
        eq(r.status, 200, "HTTP/1.0 without Host")


def stream_started(sock):
    """Reads the stream's response head and its opening block (a comment,
    then the retry field); returns what came after them."""
    buf = b""
    while not re.search(rb"\r\n\r\n:[^\n]*\n(?:[^\n]+\n)*\n", buf):
        try:
            d = sock.recv(65536)
        except socket.timeout:
            raise ft.TestFailure(f"the event stream did not start: {buf[:300]!r}")
        check(d, "the event stream ended before it started")
        buf += d
    check(buf.startswith(b"HTTP/1.1 200"), f"the stream answers 200: {buf[:60]!r}")
    return buf[re.search(rb"\r\n\r\n:[^\n]*\n(?:[^\n]+\n)*\n", buf).end():]


def next_event(sock, buf):
    """Reads the next Server-Sent Event's data line; returns (data, rest)."""
    while True:
        m = re.search(rb"(?m)^data: (.*)\n\n", buf)
        if m:
            return json.loads(m.group(1)), buf[m.end():]
        d = sock.recv(65536)
        check(d, "the event stream ended")
        buf += d


def test_inspector_listing_and_replay_are_refused_for_a_foreign_host():
    with Ferry(config("  replay: true\n  inspect_all: true")) as f:
        port = f.ports["admin"]
        with socket.create_connection(("127.0.0.1", port), timeout=ft.IO_TIMEOUT) as st:
            st.sendall(f"GET /inspect/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            rest = stream_started(st)  # subscribed: what is captured from now on is sent
            ft.request(f.port, target="/captured", headers=[("Host", "shop.test")])
            ex, rest = next_event(st, rest)
            eq(ex["target"], "/captured", "the exchange was captured")
            r = get(f, "evil.example", target="/inspect/requests")
            eq(r.status, 403, "listing from a foreign Host")
            check(b"/captured" not in r.body, "nothing captured leaks")
            r = get(f, "evil.example", target=f"/inspect/requests/{ex['id']}/replay", method="POST",
                    extra=[("X-Ferry-Replay", "1"), ("Content-Length", "0")])
            eq(r.status, 403, "replay from a foreign Host")
            eq(r.body.decode(), refusal("evil.example"), "refused by the Host guard")
            ft.request(f.port, target="/after", headers=[("Host", "shop.test")])
            ex2, rest = next_event(st, rest)
            eq(ex2["target"], "/after", "no replay was sent before the next request")


def test_listed_names_are_served():
    with Ferry(config("  allowed_hosts: [ferry.internal, Admin.Example]")) as f:
        eq(get(f, "ferry.internal").status, 200, "listed name")
        eq(get(f, f"FERRY.INTERNAL:{f.ports['admin']}").status, 200, "listed name, other case, with port")
        eq(get(f, "admin.example").status, 200, "second listed name")
        eq(get(f, "localhost").status, 200, "localhost still served")
        eq(get(f, "evil.example").status, 403, "unlisted name")


def test_star_serves_any_host():
    with Ferry(config('  allowed_hosts: ["*"]')) as f:
        for host in ("evil.example", "evil.example:1", "x"):
            eq(get(f, host).status, 200, f"status with Host {host}")


def test_allowed_hosts_change_only_on_restart():
    with Ferry(config()) as f:
        eq(get(f, "ferry.internal").status, 403, "not listed at start")
        with open(f.config_path) as fh:
            text = fh.read()
        with open(f.config_path + ".tmp", "w") as out:
            out.write(text.replace("admin:\n", "admin:\n  allowed_hosts: [ferry.internal]\n"))
        os.replace(f.config_path + ".tmp", f.config_path)
        f.signal(signal.SIGHUP)
        f.wait_stderr(r"reload: `admin` changed: the admin listener changes only on restart")
        f.wait_stderr(r"configuration generation 2 published")
        eq(get(f, "ferry.internal").status, 403, "a reload does not change the admin's list")


def test_bad_allowed_hosts_item_stops_the_start():
    p = subprocess.run([ft.FERRY_BIN, "-t", "-c", "/dev/stdin"], capture_output=True, timeout=ft.IO_TIMEOUT,
                       input=b"listeners:\n  - address: 127.0.0.1:18080\nadmin:\n  allowed_hosts: [\"a.b:9901\"]\n")
    check(p.returncode != 0, f"ferry -t accepts a host with a port: {p.stdout!r} {p.stderr!r}")
    out = (p.stdout + p.stderr).decode()
    check('admin.allowed_hosts[0]: invalid host "a.b:9901" (expected a host name without port' in out,
          f"message names the key and the fix: {out!r}")


def test_terminal_view_sends_an_accepted_host_for_a_port_only_address():
    # "--admin :PORT" connects to loopback; the Host it sends must be one the
    # guard accepts, not ":PORT".
    with Ferry(config()) as f:
        p = subprocess.Popen([ft.FERRY_BIN, "inspect", "--admin", f":{f.ports['admin']}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = []
            t = threading.Thread(target=lambda: line.append(p.stdout.readline().decode()), daemon=True)
            t.start()
            t.join(ft.IO_TIMEOUT)
            check(line and line[0].startswith("following "), f"the stream is followed: {line}")
        finally:
            p.terminate()
            p.wait(timeout=10)
            err = p.stderr.read().decode()
            p.stdout.close()
            p.stderr.close()
        check("403" not in err, f"no refusal: {err!r}")


ft.main(globals())
