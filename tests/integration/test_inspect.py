"""The inspector (issue 7, SPEC §5): capture of the four header lists,
redaction, the bounded ring, /inspect/requests JSON, /inspect/stream SSE,
replay and the page."""
import json
import os
import socket
import subprocess
import tempfile
import urllib.parse
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, admin_extra="", routes_extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
{admin_extra}
access_log: {{path: off}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
{routes_extra}  - path_prefix: /api
    upstream: api
    inspect: true
  - path_prefix: /plain
    upstream: api
  - path: /ping
    respond: {{status: 200, body: "pong\\n"}}
    inspect: true
"""


def admin_get(f, path, method="GET", headers=()):
    return ft.admin_request(f.ports["admin"], method=method, target=path, headers=headers)


def replay(f, id_, headers=(("X-Ferry-Replay", "1"),), query=""):
    path = f"/inspect/requests/{id_}/replay" + (f"?{query}" if query else "")
    return admin_get(f, path, method="POST", headers=headers)


def admin_json(f, path, want_status=200):
    r = admin_get(f, path)
    eq(r.status, want_status, f"status of {path} ({r.body[:200]!r})")
    eq(r.header("Content-Type"), "application/json", f"content type of {path}")
    return json.loads(r.body)


class Stream:
    """A raw Server-Sent Events client on /inspect/stream."""

    def __init__(self, port, query="", rcvbuf=None, extra=""):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(ft.IO_TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET /inspect/stream{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
        self.buf = b""

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode()

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ft.Closed("stream closed")
        self.buf += d

    def block(self):
        """The next SSE block (lines up to a blank line) as a list of lines."""
        while b"\n\n" not in self.buf:
            self._fill()
        blk, self.buf = self.buf.split(b"\n\n", 1)
        return blk.decode().split("\n")

    def event(self):
        """The next 'exchange' event's data, parsed; comments are skipped."""
        while True:
            lines = self.block()
            fields = dict(l.split(": ", 1) for l in lines if not l.startswith(":") and ": " in l)
            if fields.get("event") == "exchange":
                data = json.loads(fields["data"])
                eq(fields["id"], str(data["id"]), "SSE id field")
                return data

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def open_stream(f, query=""):
    s = Stream(f.ports["admin"], query)
    check(s.head().startswith("HTTP/1.1 200"), "stream answers 200")
    check(s.block()[0].startswith(":"), "stream starts with a comment")
    return s


def hdrs(head):
    return [tuple(h) for h in head["headers"]]


def names(head):
    return [h[0].lower() for h in head["headers"]]


def value(head, name):
    vals = [v for n, v in head["headers"] if n.lower() == name.lower()]
    return vals[0] if len(vals) == 1 else vals


def upstream_with_cookie(c):
    while True:
        try:
            if c.read_request() is None:
                return
        except ft.Closed:
            return
        c.respond(200, b"hello", headers=[("Set-Cookie", "sid=abc"), ("Server", "app/1"),
                                          ("Keep-Alive", "timeout=5")])


def test_captures_the_four_header_lists_of_an_inspected_route():
    with Upstream(upstream_with_cookie) as up, Ferry(config(up.address)) as f, open_stream(f) as st:
        r = ft.request(f.port, target="/api/users?x=1", headers=[
            ("Host", "shop.test"), ("Authorization", "Bearer s3cret"), ("Cookie", "a=1"),
            ("X-Custom", "kept"), ("Connection", "keep-alive"), ("X-Forwarded-For", "10.0.0.1")])
        eq(r.status, 200, "proxied status")
        ex = st.event()
        eq(ex["method"], "GET", "method")
        eq(ex["target"], "/api/users?x=1", "target")
        eq(ex["host"], "shop.test", "host")
        eq(ex["status"], 200, "status")
        eq(ex["upstream"], "api", "upstream")
        eq(ex["server"], up.address, "server")
        eq(ex["attempts"], 1, "attempts")
        eq(ex["route"]["index"], 0, "route index")
        eq(ex["route"]["line"], 14, "route line in proxy.yaml")
        eq(ex["listener"], f"127.0.0.1:{f.port}", "listener")
        check(ex["client"].startswith("127.0.0.1:"), f"client address {ex['client']}")
        eq(ex["request_id"], r.header("X-Request-Id"), "request id matches the response's")
        eq(ex["bytes"]["response_body"], 5, "response body bytes")
        check(ex["bytes"]["request_head"] > 100, "request head bytes counted")
        for k in ("queue", "connect", "ttfb", "total"):
            check(isinstance(ex["timings_ms"][k], float) and ex["timings_ms"][k] >= 0, f"timing {k}")

        cli, fwd = ex["request_client"], ex["request_upstream"]
        eq(cli["line"], "GET /api/users?x=1 HTTP/1.1", "client request line")
        eq(names(cli), ["host", "authorization", "cookie", "x-custom", "connection", "x-forwarded-for"],
           "client headers, in order")
        eq(value(cli, "Authorization"), "[redacted]", "Authorization redacted")
        eq(value(cli, "Cookie"), "[redacted]", "Cookie redacted")
        eq(value(cli, "X-Custom"), "kept", "other headers as sent")
        eq(fwd["line"], "GET /api/users?x=1 HTTP/1.1", "forwarded request line")
        check("connection" not in names(fwd), "Connection is not forwarded")
        eq(value(fwd, "X-Forwarded-For"), "10.0.0.1, 127.0.0.1", "X-Forwarded-For appended")
        eq(value(fwd, "Via"), "1.1 ferry", "Via added")
        eq(value(fwd, "Authorization"), "[redacted]", "redacted in the forwarded list too")

        upr, clr = ex["response_upstream"], ex["response_client"]
        eq(upr["line"], "HTTP/1.1 200 OK", "upstream status line")
        eq(value(upr, "Set-Cookie"), "[redacted]", "Set-Cookie redacted")
        eq(value(upr, "Keep-Alive"), "timeout=5", "upstream's hop-by-hop header as sent")
        check("keep-alive" not in names(clr), "hop-by-hop header not returned")
        eq(value(clr, "X-Request-Id"), ex["request_id"], "request id on the returned response")
        eq(clr["line"], "HTTP/1.1 200 OK", "returned status line")
        eq(ex["redacted"], True, "record marked redacted")

        # The same record through the JSON surfaces.
        lst = admin_json(f, "/inspect/requests")
        eq(lst["count"], 1, "one captured exchange")
        eq(lst["requests"][0], ex, "list entry equals the streamed event")
        eq(admin_json(f, f"/inspect/requests/{ex['id']}"), ex, "/inspect/requests/ID")
        err = admin_json(f, "/inspect/requests/999", 404)
        check("not kept" in err["error"], f"404 message: {err}")


def test_routes_without_inspect_are_not_captured_and_own_replies_are():
    with Upstream() as up, Ferry(config(up.address)) as f, open_stream(f) as st:
        eq(ft.request(f.port, target="/plain/x").status, 200, "plain route")
        eq(ft.request(f.port, target="/nowhere").status, 404, "no route")
        eq(ft.request(f.port, target="/ping").status, 200, "respond route")
        ex = st.event()
        eq(ex["target"], "/ping", "only the inspected route is captured")
        eq(ex["request_upstream"], None, "nothing forwarded")
        eq(ex["response_upstream"], None, "no upstream response")
        eq(ex["upstream"], "", "no upstream")
        eq(ex["attempts"], 0, "no attempt")
        eq(ex["response_client"]["line"], "HTTP/1.1 200 OK", "ferry's own answer")
        eq(admin_json(f, "/inspect/requests")["count"], 1, "only /ping in the list")


def test_inspect_all_captures_every_route_and_404s():
    with Upstream() as up, Ferry(config(up.address, "  inspect_all: true")) as f, open_stream(f) as st:
        ft.request(f.port, target="/plain/x")
        a = st.event()
        ft.request(f.port, target="/nowhere")
        b = st.event()
        eq((a["target"], a["route"]["index"]), ("/plain/x", 1), "plain route captured")
        eq((b["target"], b["status"], b["route"]), ("/nowhere", 404, None), "404 captured")


def test_redaction_off_and_custom_list():
    with Upstream() as up, Ferry(config(up.address, "  redact: false")) as f, open_stream(f) as st:
        ft.request(f.port, target="/api", headers=[("Host", "h"), ("Authorization", "Basic eA==")])
        ex = st.event()
        eq(value(ex["request_client"], "Authorization"), "Basic eA==", "redact: false shows values")
        eq(ex["redacted"], False, "not marked redacted")
    with Upstream() as up, Ferry(config(up.address, "  redact_headers: [X-Api-Key]")) as f, open_stream(f) as st:
        ft.request(f.port, target="/api", headers=[("Host", "h"), ("Authorization", "Basic eA=="),
                                                   ("x-api-key", "k")])
        ex = st.event()
        eq(value(ex["request_client"], "x-api-key"), "[redacted]", "listed header redacted")
        eq(value(ex["request_client"], "Authorization"), "Basic eA==", "the list replaces the default")


def test_ring_keeps_only_the_last_inspect_keep():
    with Upstream() as up, Ferry(config(up.address, "  inspect_keep: 3")) as f, open_stream(f) as st:
        ids = []
        for i in range(5):
            ft.request(f.port, target=f"/api/{i}")
            ids.append(st.event()["id"])
        lst = admin_json(f, "/inspect/requests")
        eq([x["target"] for x in lst["requests"]], ["/api/4", "/api/3", "/api/2"], "newest first, 3 kept")
        eq((lst["kept"], lst["evicted"]), (3, 2), "kept and evicted counts")
        admin_json(f, f"/inspect/requests/{ids[0]}", 404)
        eq(admin_json(f, f"/inspect/requests/{ids[4]}")["target"], "/api/4", "newest by id")


def test_ring_is_bounded_in_bytes():
    # Each record holds a 20 KB header twice (as sent, as forwarded): 128 KB
    # hold three at most.
    with Upstream() as up, Ferry(config(up.address, "  inspect_max_bytes: 128k")) as f, open_stream(f) as st:
        for i in range(6):
            ft.request(f.port, target=f"/api/{i}", headers=[("Host", "h"), ("X-Big", "b" * 20000)])
            st.event()
        lst = admin_json(f, "/inspect/requests")
        check(1 <= lst["kept"] <= 3, f"kept {lst['kept']} records of ~40 KB in 128 KB")
        eq(lst["kept"] + lst["evicted"], 6, "every record counted")
        eq(lst["requests"][0]["target"], "/api/5", "the newest kept")


def test_list_filters_and_limit():
    def handler(c):
        while True:
            try:
                m = c.read_request()
            except ft.Closed:
                return
            if m is None:
                return
            c.respond(503 if "fail" in m.target else 200, b"x")

    with Upstream(handler) as up, Ferry(config(up.address)) as f, open_stream(f) as st:
        for t in ["/api/a", "/api/fail", "/api/b", "/ping"]:
            ft.request(f.port, target=t)
            st.event()
        tg = lambda q: [x["target"] for x in admin_json(f, "/inspect/requests" + q)["requests"]]
        eq(tg(""), ["/ping", "/api/b", "/api/fail", "/api/a"], "newest first")
        eq(tg("?limit=2"), ["/ping", "/api/b"], "limit")
        eq(tg("?status=5xx"), ["/api/fail"], "status class")
        eq(tg("?status=200&path=%2Fapi"), ["/api/b", "/api/a"], "status and path")
        eq(tg("?route=api"), ["/api/b", "/api/fail", "/api/a"], "route by upstream name")
        eq(tg("?route=2"), ["/ping"], "route by index")
        err = admin_json(f, "/inspect/requests?limit=x", 400)
        eq(err["error"], "limit=x: expected a whole number", "bad limit message")


def test_stream_heartbeat_filter_and_resume():
    with Upstream() as up, Ferry(config(up.address)) as f:
        with open_stream(f, "?heartbeat=200&path=/api/keep") as st:
            eq(st.block(), [": heartbeat"], "heartbeat comment")
            ft.request(f.port, target="/api/skip")
            ft.request(f.port, target="/api/keep")
            ex = st.event()
            eq(ex["target"], "/api/keep", "stream filter")
        # A reconnecting EventSource sends Last-Event-ID: what it missed comes
        # first. (Two workers: the two captures may arrive in either order.)
        ids = sorted(x["id"] for x in admin_json(f, "/inspect/requests")["requests"])
        eq(len(ids), 2, "both captured")
        with Stream(f.ports["admin"], extra=f"Last-Event-ID: {ids[0]}\r\n") as s:
            check(s.head().startswith("HTTP/1.1 200"), "stream answers")
            eq(s.event()["id"], ids[1], "the event after Last-Event-ID replayed")


def test_slow_stream_client_is_dropped():
    with Upstream() as up, Ferry(config(up.address)) as f:
        slow = Stream(f.ports["admin"], rcvbuf=4096)  # never reads
        with open_stream(f) as fast, Client(f.port) as c:
            big = "v" * 8000
            sent = 0
            for i in range(2000):  # bounded: about 33 KB of events each
                c.request(target=f"/api/{i}", headers=[("Host", "h"), ("X-A", big), ("X-B", big)])
                try:
                    fast.event()
                except ft.Closed:
                    raise ft.TestFailure(f"the reading client lost its stream after {sent} events; "
                                         f"ferry's log:\n{f.stderr_text()}")
                sent += 1
                if any("dropping slow stream client" in (l or "") for l in f.stderr_lines):
                    break
            # 256 KB queued at most, plus what the kernel buffers
            check(sent > 8, f"dropped only after its queue filled ({sent} events)")
            f.wait_stderr(r"dropping slow stream client", timeout=5)
            # The fast client still gets events.
            c.request(target="/api/after")
            eq(fast.event()["target"], "/api/after", "fast client still served")
        slow.close()


def test_replay_resends_the_captured_head():
    cfg = config("{up}", "  replay: true")
    with Upstream() as up, Ferry(cfg.replace("{up}", up.address)) as f, open_stream(f) as st:
        ft.request(f.port, target="/api/again", headers=[("Host", "shop.test"), ("X-Mark", "1")])
        ex = st.event()
        eq(ex["replayable"], True, "plain GET is replayable")
        r = replay(f, ex['id'])
        eq(r.status, 202, f"replay accepted ({r.body!r})")
        again = st.event()
        eq(again["target"], "/api/again", "replayed target")
        eq(value(again["request_client"], "X-Ferry-Replay-Of"), str(ex["id"]), "marked as a replay")
        eq(value(again["request_client"], "X-Mark"), "1", "headers resent")
        eq(value(again["request_client"], "Host"), "shop.test", "Host resent")
        up.wait_requests(2)
        # Redacted requests and requests with bodies are refused.
        ft.request(f.port, target="/api/secret", headers=[("Host", "h"), ("Cookie", "x=1")])
        sec = st.event()
        eq(sec["replayable"], False, "redacted: not replayable")
        r = replay(f, sec['id'])
        eq(r.status, 409, "replay of a redacted request refused")
        check(b"redacted" in r.body, f"message says why: {r.body!r}")
        ft.request(f.port, method="POST", target="/api/post", headers=[("Host", "h")], body=b"data")
        post = st.event()
        r = replay(f, post['id'])
        eq(r.status, 409, "replay of a request with a body refused")
        eq(admin_get(f, f"/inspect/requests/{ex['id']}/replay").status, 405, "GET replay refused")
        r = replay(f, ex["id"], headers=())
        eq(r.status, 403, "replay without X-Ferry-Replay refused (cross-site POSTs cannot set it)")
        check(b"X-Ferry-Replay: 1" in r.body, f"message says what to send: {r.body!r}")


def test_replay_is_off_by_default():
    with Upstream() as up, Ferry(config(up.address)) as f, open_stream(f) as st:
        ft.request(f.port, target="/api/x")
        ex = st.event()
        eq(ex["replayable"], False, "replay off")
        r = replay(f, ex['id'])
        eq(r.status, 403, "replay refused")
        check(b"admin.replay: true" in r.body, f"message says how to enable it: {r.body!r}")
        eq(len(up.requests), 1, "nothing resent")


def test_body_bytes_are_captured_when_asked():
    with Upstream() as up, Ferry(config(up.address, "  inspect_body_bytes: 4")) as f, open_stream(f) as st:
        ft.request(f.port, method="POST", target="/api/p", headers=[("Host", "h")], body=b"abcdefgh")
        ex = st.event()
        eq(ex["body"], {"request": "abcd", "response": "ok f"}, "first bytes of each body")
        eq(ex["bytes"]["request_body"], 8, "request body bytes")


def test_attempts_count_a_retry_on_another_server():
    dead = ft.free_port()  # nothing listens: connect refused, retried on the next server
    with Upstream() as up:
        cfg = config(up.address).replace(f"      - address: {up.address}\n",
                                         f"      - address: 127.0.0.1:{dead}\n      - address: {up.address}\n")
        with Ferry(cfg) as f, open_stream(f) as st:
            seen = []
            for i in range(2):  # round robin: one of the two starts on the dead server
                eq(ft.request(f.port, target=f"/api/{i}").status, 200, "answered by the live server")
                seen.append(st.event())
            retried = [x for x in seen if x["attempts"] == 2]
            eq(len(retried), 1, f"one exchange retried: {[(x['target'], x['attempts']) for x in seen]}")
            eq(retried[0]["server"], up.address, "the server that answered")
            eq(retried[0]["tries"], [{"server": f"127.0.0.1:{dead}", "result": "connect_failure"},
                                     {"server": up.address, "result": "answered"}], "each attempt")
            eq(retried[0]["answered_by"], 2, "the second attempt answered")
            other = [x for x in seen if x["attempts"] == 1][0]
            eq((other["tries"], other["answered_by"]), ([{"server": up.address, "result": "answered"}], 1),
               "one attempt")


def test_tries_show_a_status_retry_and_the_attempt_that_answered():
    def busy(c):
        while (m := c.read_request()) is not None:
            c.respond(503, "busy", reason="Service Unavailable")
    with Upstream(busy, name="busy") as bad, Upstream() as up:
        cfg = config(up.address).replace(f"      - address: {up.address}\n",
                                         f"      - address: {bad.address}\n      - address: {up.address}\n")
        cfg = cfg.replace("    inspect: true\n", '    inspect: true\n    retry: {on: ["503"]}\n', 1)
        check('retry: {on: ["503"]}' in cfg, "the route retries 503: " + cfg)
        with Ferry(cfg) as f, open_stream(f) as st:
            seen = []
            for i in range(4):  # of two or more on one worker, one starts on the busy server
                eq(ft.request(f.port, target=f"/api/{i}").status, 200, "answered by the other server")
                seen.append(st.event())
            retried = [x for x in seen if x["attempts"] == 2]
            check(retried, f"a retried exchange: {seen}")
            for x in retried:
                eq(x["tries"], [{"server": bad.address, "result": "503"},
                                {"server": up.address, "result": "answered"}], "each attempt")
                eq((x["answered_by"], x["status"]), (2, 200), "the second attempt's answer")
            for x in seen:
                if x["attempts"] == 1:
                    eq(x["tries"], [{"server": up.address, "result": "answered"}], "one attempt")


def test_page_is_self_contained():
    with Upstream() as up, Ferry(config(up.address)) as f:
        r = admin_get(f, "/inspect")
        eq(r.status, 200, "page status")
        check(r.header("Content-Type").startswith("text/html"), "HTML")
        page = r.body.decode()
        check("<title>ferry inspector</title>" in page, "the inspector page")
        for bad in ('src="http', "src='http", 'href="http', "@import", "//cdn"):
            check(bad not in page, f"no external asset ({bad})")


def test_terminal_view_prints_headers():
    with Upstream() as up, Ferry(config(up.address)) as f:
        p = subprocess.Popen([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{f.ports['admin']}", "--route", "api"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines, cv = [], threading.Condition()

        def pump():
            for raw in iter(p.stdout.readline, b""):
                with cv:
                    lines.append(raw.decode())
                    cv.notify_all()
            with cv:
                lines.append(None)
                cv.notify_all()

        def wait_for(pred, what):
            with cv:
                ok = cv.wait_for(lambda: pred("".join(l for l in lines if l)) or None in lines, ft.IO_TIMEOUT)
                out = "".join(l for l in lines if l)
            check(ok and pred(out), f"{what}: terminal output so far: {out!r}")
            return out

        threading.Thread(target=pump, daemon=True).start()
        try:
            wait_for(lambda o: "following" in o, "the stream is followed")
            ft.request(f.port, target="/ping")  # another route: filtered out
            ft.request(f.port, target="/api/term", headers=[("Host", "t.test"), ("X-Seen", "yes")])
            out = wait_for(lambda o: "> X-Forwarded-For:" in o and "< X-Request-Id:" in o, "headers printed")
            check("GET t.test/api/term" in out, f"request printed: {out!r}")
            check("> X-Seen: yes" in out, "client header printed")
            check("+ > X-Forwarded-For: 127.0.0.1" in out, "added header marked")
            check("/ping" not in out, "--route filters")
            check("\x1b[" not in out, "no colour when not a terminal")
        finally:
            p.terminate()
            p.wait(timeout=10)
            p.stdout.close()
            p.stderr.close()


def test_terminal_view_finds_the_admin_address_in_the_configuration():
    with Upstream() as up, Ferry(config(up.address)) as f:
        p = subprocess.Popen([ft.FERRY_BIN, "inspect", "-c", f.config_path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            line = []
            t = threading.Thread(target=lambda: line.append(p.stdout.readline().decode()), daemon=True)
            t.start()
            t.join(ft.IO_TIMEOUT)
            check(line and f"127.0.0.1:{f.ports['admin']}/inspect/stream" in line[0],
                  f"follows the configured admin address: {line}")
        finally:
            p.terminate()
            p.wait(timeout=10)
            p.stdout.close()
            p.stderr.close()


def test_terminal_view_explains_a_wrong_address():
    port = ft.free_port()
    p = subprocess.run([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{port}"], capture_output=True,
                       timeout=ft.IO_TIMEOUT)
    eq(p.returncode, 2, "exit code")
    check(b"cannot connect to the admin listener" in p.stderr and b"--admin" in p.stderr,
          f"message says what to do: {p.stderr!r}")


def test_page_sends_cache_control_once():
    with Upstream() as up, Ferry(config(up.address)) as f:
        port = f.ports["admin"]
        raw = ft.raw_exchange(port, f"GET /inspect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = raw.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
        eq(head[0], "http/1.1 200 ok", "status")
        eq([h for h in head if h.startswith("cache-control:")], ["cache-control: no-store"],
           "one Cache-Control header on /inspect")


def test_route_names_the_configuration_file_it_is_in():
    with Upstream() as up:
        ports = {"http": ft.free_port(), "admin": ft.free_port()}
        d = tempfile.mkdtemp(prefix="ferry-test-")
        path = os.path.join(d, "gateway.yaml")
        with open(path, "w") as fh:
            fh.write(config(up.address).replace("{port:http}", str(ports["http"]))
                     .replace("{port:admin}", str(ports["admin"])))
        # The last -c wins: ferry runs gateway.yaml, not the helper's proxy.yaml.
        with Ferry("", ports=ports, args=("-c", path)) as f, open_stream(f) as st:
            eq(ft.request(f.port, target="/api/x").status, 200, "proxied")
            ex = st.event()
            eq(ex["route"]["file"], path, "the route names the file ferry runs")
            eq(ex["route"]["line"], 14, "and its line there")


def upstream_that_sends_half(c):
    m = c.read_request()
    if m is None:
        return
    # A long body, sent until ferry closes this connection because its
    # client went away (bounded: at most 50 MB of the declared 100 MB).
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
    try:
        for _ in range(5000):
            c.send(b"x" * 10000)
    except OSError:
        pass


def test_a_response_cut_short_by_the_client_is_not_a_plain_200():
    with Upstream(upstream_that_sends_half) as up, Ferry(config(up.address)) as f, open_stream(f) as st:
        with Client(f.port) as c:
            c.send(b"GET /api/big HTTP/1.1\r\nHost: t.test\r\n\r\n")
            while b"\r\n\r\n" not in c.received:
                check(c._fill(), "response head arrives")
        ex = st.event()
        eq(ex["status"], 200, "status sent")
        eq(ex["complete"], False, "the response did not reach the client whole")
        eq(ex["error"], "client closed the connection", "why")
        with Client(f.port) as c:
            c.send(b"GET /ping HTTP/1.1\r\nHost: t.test\r\n\r\n")
            while b"pong" not in c.received:
                check(c._fill(), "pong arrives")
        eq(st.event()["complete"], True, "a whole response is complete")


def test_rewritten_request_line_is_captured_on_both_sides():
    routes = "  - path_prefix: /rw\n    rewrite_prefix: /v2\n    upstream: api\n    inspect: true\n"
    with Upstream() as up, Ferry(config(up.address, routes_extra=routes)) as f, open_stream(f) as st:
        ft.request(f.port, target="/rw/a?b=1")
        ex = st.event()
        eq(ex["request_client"]["line"], "GET /rw/a?b=1 HTTP/1.1", "as sent")
        eq(ex["request_upstream"]["line"], "GET /v2/a?b=1 HTTP/1.1", "as forwarded")
        out = subprocess.run([ft.FERRY_BIN, "inspect", "--help"], capture_output=True).stdout
        check(b"--har" in out, "help mentions --har")


def test_terminal_refuses_a_route_the_configuration_does_not_have():
    with Upstream() as up, Ferry(config(up.address)) as f:
        p = subprocess.run([ft.FERRY_BIN, "inspect", "-c", f.config_path, "--route", "nosuch"],
                           capture_output=True, timeout=ft.IO_TIMEOUT)
        eq(p.returncode, 1, "exit code")
        err = p.stderr.decode()
        check("--route nosuch" in err and "no route with that index and no upstream of that name" in err
              and "routes 0 to 2" in err and "upstreams: api" in err, f"message: {err!r}")
        p = subprocess.run([ft.FERRY_BIN, "inspect", "-c", f.config_path, "--route", "7"],
                           capture_output=True, timeout=ft.IO_TIMEOUT)
        eq(p.returncode, 1, "an index past the last route")


def test_filter_expressions_on_every_surface():
    with Upstream() as up, Ferry(config(up.address, admin_extra="  inspect_all: true")) as f, open_stream(f) as st:
        ft.request(f.port, target="/api/a", headers=[("Host", "x.test"), ("X-Env", "prod")])
        ft.request(f.port, method="POST", target="/api/b", headers=[("Host", "x.test"), ("Content-Length", "0")])
        ft.request(f.port, target="/nowhere")
        for _ in range(3):
            st.event()
        q = lambda e: urllib.parse.quote(e)
        # Two workers: captures finished close together may reach the store in
        # either order, so the filters are checked on the set they select.
        targets = lambda path: sorted(x["target"] for x in admin_json(f, path)["requests"])
        eq(targets("/inspect/requests?filter=" + q("~c 4..")), ["/nowhere"], "~c 4..")
        eq(targets("/inspect/requests?filter=" + q("~m POST | ~h X-Env: prod")), ["/api/a", "/api/b"], "| and ~h")
        eq(targets("/inspect/requests?filter=" + q("~s & !~m POST")), ["/api/a"], "~s & !")
        eq(targets("/inspect/requests?filter=" + q("~u /api (~c 200)")), ["/api/a", "/api/b"], "juxtaposition")
        err = admin_json(f, "/inspect/requests?filter=" + q("~c 5.. &"), 400)
        check(err["error"].startswith("filter=~c 5.. &: at column 9: the expression ends"), f"error: {err}")
        har = json.loads(admin_get(f, "/inspect/har?filter=" + q("~m POST")).body)
        eq([e["request"]["url"] for e in har["log"]["entries"]], ["http://x.test/api/b"], "HAR takes the filter")
        with open_stream(f, "?filter=" + q("~c 404")) as st2:
            ft.request(f.port, target="/api/c", headers=[("Host", "x.test")])
            ft.request(f.port, target="/nowhere/2")
            eq(st2.event()["target"], "/nowhere/2", "the stream takes the filter")


def test_terminal_filter():
    with Upstream() as up, Ferry(config(up.address)) as f:
        p = subprocess.run([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{f.ports['admin']}", "--filter", "~c 5.. &"],
                           capture_output=True, timeout=ft.IO_TIMEOUT)
        eq(p.returncode, 1, "a malformed filter is a usage error")
        check(b"--filter ~c 5.. &: at column 9: the expression ends" in p.stderr, p.stderr)
        out = os.path.join(tempfile.mkdtemp(prefix="ferry-har-"), "f.har")
        with open_stream(f) as st:
            ft.request(f.port, target="/api/one", headers=[("Host", "t.test"), ("X-Seen", "yes")])
            ft.request(f.port, target="/api/two", headers=[("Host", "t.test")])
            st.event()
            st.event()
        p = subprocess.run([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{f.ports['admin']}", "--filter",
                            "~h X-Seen: yes", "--har", out], capture_output=True, timeout=ft.IO_TIMEOUT)
        eq(p.returncode, 0, f"exit code {p.stderr!r}")
        with open(out) as fh:
            eq([e["request"]["url"] for e in json.load(fh)["log"]["entries"]], ["http://t.test/api/one"],
               "--filter with --har")


def test_why_this_route_is_what_explain_says():
    with Upstream() as up, Ferry(config(up.address, admin_extra="  inspect_all: true")) as f, open_stream(f) as st:
        for target in ("/ping", "/nowhere", "/api/x"):
            ft.request(f.port, target=target, headers=[("Host", "why.test"), ("X-A", "1")])
            ex = st.event()
            p = subprocess.run([ft.FERRY_BIN, "explain", "-c", f.config_path, "--json", "GET",
                                "http://why.test" + target, "-H", "X-A: 1"], capture_output=True, timeout=30)
            exp = json.loads(p.stdout)
            eq(ex["skipped"], exp["skipped"], f"why {target}: the capture says what explain says")
            eq(ex["route"] and ex["route"]["index"], exp["route"] and exp["route"]["index"], f"route of {target}")
        eq([s["reason"] for s in ex["skipped"]], [], "the first route matched: nothing skipped")
        ft.request(f.port, target="/ping")
        eq(st.event()["skipped"][1]["reason"], "path: /ping is not /plain or below it (path_prefix /plain)",
           "a skip reason")


def test_edit_and_replay_sends_the_edited_request_and_links_it():
    cfg = config("{up}", "  replay: true")
    with Upstream() as up, Ferry(cfg.replace("{up}", up.address)) as f, open_stream(f) as st:
        ft.request(f.port, target="/api/orig", headers=[("Host", "shop.test"), ("Cookie", "sid=1"),
                                                         ("X-Old", "1")])
        ex = st.event()
        eq((ex["replayable"], ex["editable"]), (False, True), "redacted: not replayable as is, but editable")
        q = urllib.parse.urlencode([("method", "PUT"), ("target", "/api/edited?x=1"), ("headers", "replace"),
                                    ("h", "Host: shop.test"), ("h", "Cookie: sid=2"), ("h", "X-New: a b"),
                                    ("body", "hello+world")], quote_via=urllib.parse.quote)
        r = replay(f, ex["id"], query=q)
        eq(r.status, 202, f"edited replay accepted ({r.body!r})")
        again = st.event()
        eq(again["replay_of"], ex["id"], "the new capture links to the original")
        eq(again["request_client"]["line"], "PUT /api/edited?x=1 HTTP/1.1", "edited request line")
        got = up.wait_requests(2)[1]
        eq(got.start, "PUT /api/edited?x=1 HTTP/1.1", "the upstream got the edited request")
        eq(got.header("X-New"), "a b", "edited header")
        eq(got.header("Cookie"), "sid=2", "the redacted header given again")
        eq(got.header("X-Old"), None, "a header left out of the edited list is not sent")
        eq(got.body, b"hello+world", "edited body")
        eq(got.header("X-Ferry-Replay-Of"), str(ex["id"]), "marked as a replay")
        # What would not be a real request is refused, saying why.
        for query, status, words in [
                ("method=G%20T", 400, "method=G T: expected an HTTP method"),
                ("h=Bad%20Name%3A%201", 400, "expected \"Name: value\""),
                ("h=X%3A%20a%0D%0AEvil%3A%201", 400, "header X: a value may not hold CR, LF or NUL"),
                ("target=nopath", 400, "target=nopath: expected a path starting with /"),
                ("method=POST", 409, "header Cookie has the redacted value")]:
            r = replay(f, ex["id"], query=query)
            eq(r.status, status, f"status for {query}")
            check(words in json.loads(r.body)["error"], f"message for {query}: {r.body!r}")
        ft.request(f.port, method="POST", target="/api/post", headers=[("Host", "h")], body=b"data")
        post = st.event()
        r = replay(f, post["id"], query="method=POST")
        eq(r.status, 409, "a request with a body needs the body given")
        check(b"give the body" in r.body, r.body)


def ws_frame(opcode, payload, masked, fin=True):
    """One WebSocket frame (RFC 6455 5.2); clients mask, servers do not."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if masked else 0
    head += bytes([m | n]) if n < 126 else bytes([m | 126]) + n.to_bytes(2, "big")
    if not masked:
        return head + payload
    key = b"\x12\x34\x56\x78"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def websocket_echo(c):
    """Answers the upgrade, then echoes each client frame's payload as a text
    frame, and closes after a close frame."""
    if c.read_request() is None:
        return
    c.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    while True:
        while len(c.buf) < 6:
            if not c._fill():
                return
        n = c.buf[1] & 0x7f
        hl = 2 + (2 if n == 126 else 0) + 4
        if n == 126:
            n = int.from_bytes(c.buf[2:4], "big")
        while len(c.buf) < hl + n:
            if not c._fill():
                return
        op, key, data = c.buf[0] & 0x0f, c.buf[hl - 4:hl], c.buf[hl:hl + n]
        c.buf = c.buf[hl + n:]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data))
        if op == 8:
            c.send(ws_frame(8, payload, False))
            return
        c.send(ws_frame(1, b"echo: " + payload, False))


def test_websocket_frames_of_an_inspected_upgrade_are_captured():
    with Upstream(websocket_echo) as up, \
            Ferry(config(up.address, admin_extra="  inspect_body_bytes: 16")) as f, open_stream(f) as st:
        with Client(f.port) as c:
            c.send(b"GET /api/chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            r = ft.read_message(c, is_request=False, head_only=True)
            eq(r.status, 101, "upgraded")
            for msg in (b"hello ferry", b"x" * 200):
                c.send(ws_frame(1 if msg.startswith(b"h") else 2, msg, True))
                want = ws_frame(1, b"echo: " + msg, False)
                while len(c.buf) < len(want):
                    check(c._fill(), "echo arrives")
                eq(c.buf[:len(want)], want, "echoed through the tunnel")
                c.buf = c.buf[len(want):]
            c.send(ws_frame(8, b"\x03\xe8", True))
            while len(c.buf) < 4:
                check(c._fill(), "close frame arrives")
        ex = st.event()
        eq(ex["status"], 101, "captured when the tunnel ends")
        frames = [(x["dir"], x["type"], x["size"], x.get("preview")) for x in ex["frames"]]
        eq(frames, [("client", "text", 11, "hello ferry"), ("upstream", "text", 17, "echo:"),
                    ("client", "binary", 200, None), ("upstream", "text", 206, ""),
                    ("client", "close", 2, None), ("upstream", "close", 2, None)],
           "frames each way; text previews share inspect_body_bytes (16 bytes)")
        out = subprocess.run([ft.FERRY_BIN, "inspect", "--help"], capture_output=True).stdout
        check(b"--filter" in out, "help")


if __name__ == "__main__":
    ft.main(globals())
