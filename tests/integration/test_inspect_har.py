"""HAR 1.2 export of the inspector (issue 19, SPEC §5): /inspect/har and
`ferry inspect --har FILE`, checked field by field against the HAR 1.2
specification, with redaction applied."""
import json
import os
import re
import socket
import subprocess
import tempfile

import ferrytest as ft
from ferrytest import Ferry, Upstream, eq, check


def config(up):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
admin:
  address: 127.0.0.1:{{port:admin}}
  inspect_body_bytes: 64
access_log: {{path: off}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /api
    upstream: api
    rewrite_prefix: /v2
    inspect: true
  - path: /ping
    respond: {{status: 200, body: "pong\\n"}}
    inspect: true
"""


def upstream(c):
    while True:
        try:
            m = c.read_request()
        except ft.Closed:
            return
        if m is None:
            return
        c.respond(302, b"moved", reason="Found", headers=[
            ("Set-Cookie", "sid=s3cret-session; Path=/; HttpOnly"), ("Location", "/api/next"),
            ("Content-Type", "text/plain")])


class Captures:
    """Follows /inspect/stream so a test waits for records to be stored
    (capture reaches the admin thread after the response) instead of
    sleeping."""

    def __init__(self, f):
        port = f.ports["admin"]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=ft.IO_TIMEOUT)
        self.sock.sendall(f"GET /inspect/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.buf = b""
        self.wait_for(b": ferry inspector stream")

    def wait_for(self, needle, count=1):
        while self.buf.count(needle) < count:
            d = self.sock.recv(65536)
            if not d:
                raise ft.Closed("inspector stream closed")
            self.buf += d

    def wait_exchanges(self, n):
        self.wait_for(b"event: exchange", n)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.sock.close()


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_name_values(lst, what):
    check(isinstance(lst, list), f"{what} is a list")
    for x in lst:
        check(isinstance(x, dict) and isinstance(x.get("name"), str) and isinstance(x.get("value"), str),
              f"{what} entries are {{name, value}} strings: {x!r}")


def check_entry(e):
    """Every field HAR 1.2 requires, with its type."""
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["startedDateTime"]),
          f"startedDateTime is ISO 8601: {e['startedDateTime']}")
    check(is_num(e["time"]) and e["time"] >= 0, "time")
    rq, rs, t = e["request"], e["response"], e["timings"]
    for k, typ in [("method", str), ("url", str), ("httpVersion", str), ("headers", list),
                   ("queryString", list), ("cookies", list), ("headersSize", int), ("bodySize", int)]:
        check(isinstance(rq.get(k), typ), f"request.{k} is {typ.__name__}: {rq.get(k)!r}")
    for k, typ in [("status", int), ("statusText", str), ("httpVersion", str), ("headers", list),
                   ("cookies", list), ("content", dict), ("redirectURL", str), ("headersSize", int),
                   ("bodySize", int)]:
        check(isinstance(rs.get(k), typ), f"response.{k} is {typ.__name__}: {rs.get(k)!r}")
    check(is_num(rs["content"]["size"]) and isinstance(rs["content"]["mimeType"], str), "content")
    for lst, what in [(rq["headers"], "request.headers"), (rq["queryString"], "queryString"),
                      (rq["cookies"], "request.cookies"), (rs["headers"], "response.headers"),
                      (rs["cookies"], "response.cookies")]:
        check_name_values(lst, what)
    check(isinstance(e["cache"], dict), "cache")
    for k in ("send", "wait", "receive"):
        check(is_num(t[k]) and t[k] >= 0, f"timings.{k} is a non-negative number: {t}")
    for k in ("blocked", "dns", "connect", "ssl"):
        check(k not in t or (is_num(t[k]) and (t[k] >= 0 or t[k] == -1)), f"timings.{k}: {t}")
    total = sum(v for v in t.values() if v != -1)
    check(abs(total - e["time"]) < 0.01, f"time {e['time']} is the sum of the timings {t}")


def test_har_export_follows_har_1_2_and_redacts():
    with Upstream(upstream) as up, Ferry(config(up.address)) as f, Captures(f) as cap:
        r = ft.request(f.port, target="/api/users?q=a%20b&x=1", headers=[
            ("Host", "shop.test"), ("Cookie", "sid=s3cret-session"), ("Authorization", "Bearer t0ken"),
            ("X-Trace", "t1")])
        eq(r.status, 302, "proxied")
        eq(ft.request(f.port, target="/ping").status, 200, "own reply")
        cap.wait_exchanges(2)
        resp = ft.admin_request(f.ports["admin"], target="/inspect/har?limit=10")
        eq(resp.status, 200, "/inspect/har status")
        eq(resp.header("Content-Type"), "application/json", "content type")
        eq(resp.header("Content-Disposition"), 'attachment; filename="ferry.har"', "download name")
        text = resp.body.decode()
        for secret in ("s3cret", "t0ken"):
            check(secret not in text, f"{secret} is redacted from the archive")
        har = json.loads(text)
        log = har["log"]
        eq(log["version"], "1.2", "log.version")
        eq(log["creator"]["name"], "ferry", "creator.name")
        check(isinstance(log["creator"]["version"], str) and log["creator"]["version"], "creator.version")
        eq(len(log["entries"]), 2, "one entry per exchange")
        for e in log["entries"]:
            check_entry(e)
        a, p = log["entries"]
        check(a["startedDateTime"] <= p["startedDateTime"], "oldest first")

        rq, rs = a["request"], a["response"]
        eq(rq["method"], "GET", "method")
        eq(rq["url"], "http://shop.test/api/users?q=a%20b&x=1", "url as the client asked")
        eq(rq["httpVersion"], "HTTP/1.1", "request httpVersion")
        eq(rq["queryString"], [{"name": "q", "value": "a b"}, {"name": "x", "value": "1"}], "queryString")
        hv = {h["name"]: h["value"] for h in rq["headers"]}
        eq(hv["Cookie"], "[redacted]", "Cookie redacted")
        eq(hv["Authorization"], "[redacted]", "Authorization redacted")
        eq(hv["X-Trace"], "t1", "other headers as sent")
        eq(rq["cookies"], [], "no cookie values from a redacted header")
        check(rq["headersSize"] > 50, "request headersSize")
        eq(rq["bodySize"], 0, "request bodySize")
        eq((rs["status"], rs["statusText"], rs["httpVersion"]), (302, "Found", "HTTP/1.1"), "status line")
        eq(rs["redirectURL"], "/api/next", "redirectURL from Location")
        eq(rs["content"]["mimeType"], "text/plain", "content.mimeType")
        eq(rs["content"]["size"], 5, "content.size")
        eq(rs["content"]["text"], "moved", "captured body")
        eq(rs["bodySize"], 5, "response bodySize")
        check(rs["headersSize"] > 50, "response headersSize")
        eq([h["value"] for h in rs["headers"] if h["name"] == "X-Request-Id"], [r.header("X-Request-Id")],
           "response headers as ferry returned them")
        eq(rs["cookies"], [], "Set-Cookie redacted")
        eq(a["serverIPAddress"], "127.0.0.1", "serverIPAddress")
        fx = a["_ferry"]
        eq((fx["route"]["index"], fx["upstream"], fx["server"]), (0, "api", up.address), "ferry's view")
        eq(fx["request_upstream"]["line"], "GET /v2/users?q=a%20b&x=1 HTTP/1.1", "forwarded request line")
        eq(fx["response_upstream"]["line"], "HTTP/1.1 302 Found", "upstream status line")

        eq(p["request"]["url"], "http://example.test/ping", "own reply entry")
        eq(p["response"]["status"], 200, "own reply status")
        eq(p["_ferry"]["upstream"], "", "answered by ferry")
        eq(p["_ferry"]["request_upstream"], None, "nothing forwarded")

        one = json.loads(ft.admin_request(f.ports["admin"], target="/inspect/har?limit=1").body)
        eq([e["request"]["url"] for e in one["log"]["entries"]], ["http://example.test/ping"], "limit keeps the newest")
        bad = ft.admin_request(f.ports["admin"], target="/inspect/har?limit=x")
        eq(bad.status, 400, "bad limit")


def test_redaction_off_shows_cookies():
    cfg = lambda up: config(up).replace("  inspect_body_bytes: 64\n", "  inspect_body_bytes: 64\n  redact: false\n")
    with Upstream(upstream) as up, Ferry(cfg(up.address)) as f, Captures(f) as cap:
        ft.request(f.port, target="/api/c", headers=[("Host", "shop.test"), ("Cookie", "a=1; b=two")])
        cap.wait_exchanges(1)
        e = json.loads(ft.admin_request(f.ports["admin"], target="/inspect/har").body)["log"]["entries"][0]
        eq(e["request"]["cookies"], [{"name": "a", "value": "1"}, {"name": "b", "value": "two"}], "request cookies")
        eq(e["response"]["cookies"], [{"name": "sid", "value": "s3cret-session"}], "response cookies")


def test_terminal_saves_a_har_file():
    with Upstream(upstream) as up, Ferry(config(up.address)) as f, Captures(f) as cap:
        for i in range(3):
            ft.request(f.port, target=f"/api/{i}", headers=[("Host", "shop.test")])
        cap.wait_exchanges(3)
        out = os.path.join(tempfile.mkdtemp(prefix="ferry-har-"), "x.har")
        p = subprocess.run([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{f.ports['admin']}", "--har", out,
                            "--limit", "2"], capture_output=True, timeout=30)
        eq(p.returncode, 0, f"exit code ({p.stderr!r})")
        eq(p.stderr.decode().strip(), f"ferry inspect: wrote 2 exchanges to {out} (HAR 1.2)", "message")
        with open(out) as fh:
            har = json.load(fh)
        eq([e["request"]["url"] for e in har["log"]["entries"]],
           ["http://shop.test/api/1", "http://shop.test/api/2"], "the newest two, oldest first")
        for e in har["log"]["entries"]:
            check_entry(e)
        p = subprocess.run([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{f.ports['admin']}", "--har",
                            "/nonexistent-dir/x.har"], capture_output=True, timeout=30)
        eq(p.returncode, 1, "unwritable file")
        check(b"cannot write /nonexistent-dir/x.har" in p.stderr, p.stderr)


ft.main(globals())
