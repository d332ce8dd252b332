"""`ferry explain` (issue 19, SPEC §1 and §9): the route, why each earlier
route did not match, and the request exactly as ferry forwards it --
checked against what a running ferry really sends the upstream."""
import json
import os
import re
import subprocess
import tempfile

import ferrytest as ft
from ferrytest import Ferry, Upstream, eq, check

ROUTES = """
routes:
  - host: admin.example.com
    upstream: api
  - path: /healthz
    respond: {status: 204}
  - path_prefix: /old
    redirect: {location: "https://example.com/new", status: 301}
  - path_prefix: /users
    methods: [POST]
    upstream: api
  - path_prefix: /users
    headers: {X-Canary: "1"}
    upstream: api
  - host: api.example.com
    path_prefix: /users
    rewrite_prefix: /v2/users
    upstream: api
    request_headers:
      set: {X-Env: prod}
      add: {X-Via-Route: users}
      remove: [X-Debug]
"""


def config(up_address):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
access_log: {{path: off}}
upstreams:
  api:
    servers:
      - address: {up_address}
{ROUTES}"""


def write_config(text):
    d = tempfile.mkdtemp(prefix="ferry-explain-")
    path = os.path.join(d, "routes.yaml")
    with open(path, "w") as f:
        f.write(text.replace("{port:http}", "8080"))
    return path


def explain(path, *args):
    p = subprocess.run([ft.FERRY_BIN, "explain", "-c", path, *args], capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def explain_json(path, *args, want_rc=0):
    rc, out, err = explain(path, "--json", *args)
    eq(rc, want_rc, f"exit code of ferry explain {args} (stderr {err!r})")
    return json.loads(out)


def test_explain_tells_exactly_what_ferry_forwards():
    with Upstream(name="api") as up:
        f = Ferry(config(up.address))
        try:
            sent = [("Host", "api.example.com"), ("X-Request-Id", "explain-1"),
                    ("X-Debug", "yes"), ("X-Forwarded-For", "192.0.2.7"),
                    ("Connection", "keep-alive, X-Hop"), ("X-Hop", "h"), ("Accept", "*/*")]
            r = ft.request(f.port, "GET", "/users/%37?q=1", headers=sent)
            eq(r.status, 200, "proxied")
            got = up.wait_requests(1)[0]
        finally:
            f.stop()
        args = ["GET", "http://api.example.com/users/%37?q=1", "--from", "127.0.0.1"]
        for n, v in sent[1:]:
            args += ["-H", f"{n}: {v}"]
        j = explain_json(f.config_path, *args)
        eq(j["matched"], True, "matched")
        eq(j["route"], {"index": 5, "line": j["route"]["line"]}, "route")
        eq(j["action"], "upstream", "action")
        eq(j["upstream"], "api", "upstream")
        eq(j["request_line"], got.start, "request line as the upstream received it")
        # traceparent: a new trace each time (the client sent none); same shape
        def no_tp(hs):
            return [tuple(h) for h in hs if h[0] != "traceparent"]
        eq(no_tp(j["headers"]), no_tp(got.headers), "headers as the upstream received them")
        tps = [h[1] for h in j["headers"] if h[0] == "traceparent"]
        eq(len(tps), 1, "explain shows the traceparent ferry adds")
        check(re.match(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$", tps[0]), tps[0])
        eq([h[0] for h in j["headers"]], [h[0] for h in got.headers], "header order")
        check(("X-Env", "prod") in got.headers and ("X-Via-Route", "users") in got.headers,
              f"route headers added: {got.headers}")
        eq(got.header("X-Debug"), None, "X-Debug removed")


def test_each_earlier_route_says_which_condition_failed():
    path = write_config(config("127.0.0.1:9"))
    j = explain_json(path, "GET", "http://api.example.com/users/1", "-H", "X-Canary: 0")
    eq(j["route"]["index"], 5, "matched route")
    reasons = [s["reason"] for s in j["skipped"]]
    eq([s["index"] for s in j["skipped"]], [0, 1, 2, 3, 4], "every earlier route listed")
    eq(reasons[0], "host: api.example.com is not admin.example.com", "host reason")
    eq(reasons[1], "path: /users/1 is not /healthz (path)", "path reason")
    eq(reasons[2], "path: /users/1 is not /old or below it (path_prefix /old)", "prefix reason")
    eq(reasons[3], "method: GET is not one of POST (methods)", "method reason")
    eq(reasons[4], 'header: X-Canary is "0", this route wants "1"', "header reason")
    with open(path) as fh:
        lines = fh.read().split("\n")
    for s in j["skipped"]:
        check(lines[s["line"] - 1].lstrip().startswith("- "), f"line {s['line']} starts route {s['index']}")
    j = explain_json(path, "GET", "http://x.test/users/1", want_rc=3)
    eq(j["skipped"][4]["reason"], "header: X-Canary is missing (this route wants X-Canary: 1)", "missing header")


def test_redirect_and_respond_routes():
    path = write_config(config("127.0.0.1:9"))
    j = explain_json(path, "GET", "http://x.test/old/a?b=1")
    eq((j["action"], j["status"], j["location"]), ("redirect", 301, "https://example.com/new?b=1"), "redirect")
    eq((j["upstream"], j["request_line"], j["headers"]), (None, None, []), "nothing forwarded")
    j = explain_json(path, "HEAD", "http://x.test/healthz")
    eq((j["action"], j["status"]), ("respond", 204), "respond")


def test_no_match_exits_3_and_lists_every_route():
    path = write_config(config("127.0.0.1:9"))
    j = explain_json(path, "GET", "http://x.test/nothing", want_rc=3)
    eq(j["matched"], False, "matched")
    eq(j["status"], 404, "ferry's answer")
    eq(len(j["skipped"]), 6, "every route skipped")
    rc, out, _ = explain(path, "GET", "http://x.test/nothing")
    eq(rc, 3, "text mode exit code")
    check('no route matches: ferry answers 404 "no route"' in out, out)
    check(f"routes[0] ({path} line" in out, f"the file is named: {out}")
    j = explain_json(path, "GET", "/nothing", want_rc=3)
    eq((j["status"], j["error"]), (400, "bad request: HTTP/1.1 requests must carry a Host header"),
       "refused before routing")


def test_usage_errors_exit_1():
    path = write_config(config("127.0.0.1:9"))
    for args, words in [((), "expected METHOD and URL"),
                        (("GET",), "expected METHOD and URL"),
                        (("get", "http://x/"), 'unknown method "get"'),
                        (("GET", "http://x/", "-H", "NoColon"), 'expected "Name: value"'),
                        (("GET", "http://x/", "--bogus"), 'unknown option "--bogus"'),
                        (("GET", "http://x/", "extra"), 'unexpected argument "extra"')]:
        rc, out, err = explain(path, *args)
        eq(rc, 1, f"exit code for {args}")
        check(words in err, f"message for {args}: {err!r}")
    p = subprocess.run([ft.FERRY_BIN, "explain", "-c", "/nonexistent/proxy.yaml", "GET", "http://x/"],
                       capture_output=True, timeout=30)
    eq(p.returncode, 1, "missing configuration")
    check("/nonexistent/proxy.yaml" in p.stderr.decode(), p.stderr.decode())


ft.main(globals())
