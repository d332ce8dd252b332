"""Every route condition, action and rewrite of SPEC §2, end to end (issue 3).

Each test starts ferry on a config made for it, sends raw requests and checks
both what the client got and what the scripted upstream received."""
import ferrytest as ft
from ferrytest import Ferry, Upstream, eq, check


def cfg(upstreams, routes):
    """A config text: one listener, the named upstreams (name -> Upstream),
    then the routes block as written."""
    ups = "".join(f"  {n}:\n    servers:\n      - address: {u.address}\n" for n, u in upstreams.items())
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
access_log: {{path: off}}
upstreams:
{ups}routes:
{routes}"""


def get(f, target, host="example.test", method="GET", headers=()):
    return ft.request(f.port, method=method, target=target, headers=[("Host", host), *headers])


def expect_upstream(f, target, want, host="example.test", method="GET", headers=()):
    r = get(f, target, host, method, headers)
    eq(r.status, 200, f"status for {method} {host}{target}")
    eq(r.body, f"ok from {want}".encode(), f"upstream for {method} {host}{target}")


def expect_404(f, target, host="example.test", method="GET", headers=()):
    r = get(f, target, host, method, headers)
    eq(r.status, 404, f"status for {method} {host}{target}")
    eq(r.body, b"no route\n", f"body for {method} {host}{target}")


# ---------------------------------------------------------------- conditions


def test_host_exact_and_wildcard_not_apex():
    with Upstream(name="exact") as a, Upstream(name="wild") as b:
        routes = """  - host: api.example.test
    upstream: exact
  - host: "*.example.test"
    upstream: wild
"""
        with Ferry(cfg({"exact": a, "wild": b}, routes)) as f:
            expect_upstream(f, "/", "exact", host="api.example.test")
            expect_upstream(f, "/", "exact", host="API.Example.TEST:8080")
            expect_upstream(f, "/", "wild", host="www.example.test")
            expect_upstream(f, "/", "wild", host="a.b.example.test")
            expect_404(f, "/", host="example.test")  # the apex is not a subdomain
            expect_404(f, "/", host="badexample.test")
            expect_404(f, "/", host="other.test")


def test_path_exact_prefix_and_regex():
    with Upstream(name="exact") as e, Upstream(name="prefix") as p, Upstream(name="plain") as s, \
            Upstream(name="regex") as x:
        routes = """  - path: /ping
    upstream: exact
  - path_prefix: /users
    upstream: prefix
  - path_prefix: /static/
    upstream: plain
  - path_regex: "^/v[0-9]+/items$"
    upstream: regex
"""
        with Ferry(cfg({"exact": e, "prefix": p, "plain": s, "regex": x}, routes)) as f:
            expect_upstream(f, "/ping", "exact")
            expect_upstream(f, "/ping?x=1", "exact")
            expect_404(f, "/ping/")
            expect_404(f, "/pingx")
            for t in ("/users", "/users/", "/users/7", "/users?x=1", "/users/7/avatar"):
                expect_upstream(f, t, "prefix")
            expect_404(f, "/usersX")  # segment boundary
            expect_404(f, "/user")
            expect_upstream(f, "/static/", "plain")
            expect_upstream(f, "/static/app.js", "plain")
            expect_404(f, "/static")  # a prefix ending in "/" is a plain string prefix
            expect_upstream(f, "/v2/items", "regex")
            expect_upstream(f, "/v10/items?page=2", "regex")
            expect_404(f, "/v2/items/1")
            expect_404(f, "/vx/items")


def test_methods_and_headers_conditions():
    with Upstream(name="write") as w, Upstream(name="canary") as c, Upstream(name="main") as m:
        routes = """  - path_prefix: /api
    methods: [POST, PUT]
    upstream: write
  - path_prefix: /api
    headers: {X-Canary: "1"}
    upstream: canary
  - path_prefix: /api
    upstream: main
"""
        with Ferry(cfg({"write": w, "canary": c, "main": m}, routes)) as f:
            r = ft.request(f.port, method="POST", target="/api/x", headers=[("Host", "h")], body="{}")
            eq(r.body, b"ok from write", "POST goes to the methods route")
            r = ft.request(f.port, method="PUT", target="/api/x", headers=[("Host", "h")], body="{}")
            eq(r.body, b"ok from write", "PUT goes to the methods route")
            expect_upstream(f, "/api/x", "main")
            expect_upstream(f, "/api/x", "main", method="DELETE")
            expect_upstream(f, "/api/x", "canary", headers=[("X-Canary", "1")])
            expect_upstream(f, "/api/x", "canary", headers=[("x-canary", "1")])  # name: any case
            expect_upstream(f, "/api/x", "main", headers=[("X-Canary", "2")])  # value: exact
            expect_upstream(f, "/api/x", "main", headers=[("X-Canary-Not", "1")])


def test_first_match_in_file_order():
    with Upstream(name="first") as a, Upstream(name="second") as b:
        routes = """  - host: api.example.test
    path_prefix: /v1
    upstream: first
  - path_prefix: /v1
    upstream: second
"""
        with Ferry(cfg({"first": a, "second": b}, routes)) as f:
            expect_upstream(f, "/v1/x", "first", host="api.example.test")
            expect_upstream(f, "/v1/x", "second", host="web.example.test")


# ------------------------------------------------------------------- actions


def test_upstream_action_forwards_request_unchanged():
    with Upstream(name="api") as a:
        with Ferry(cfg({"api": a}, "  - upstream: api\n")) as f:
            r = ft.request(f.port, method="POST", target="/a/b?c=d&e", headers=[("Host", "example.test")],
                           body="payload")
            eq(r.body, b"ok from api", "response from the upstream")
            m = a.wait_requests(1)[0]
            eq(m.start, "POST /a/b?c=d&e HTTP/1.1", "request line upstream")
            eq(m.body, b"payload", "body upstream")
            eq(m.header("host"), "example.test", "client's Host upstream")


def test_redirect_statuses_and_query():
    routes = "".join(f"""  - path: /r{s}
    redirect: {{location: "https://new.example.test/moved", status: {s}}}
""" for s in (301, 302, 303, 307, 308))
    routes += """  - path: /default
    redirect: {location: /elsewhere}
  - path: /own-query
    redirect: {location: "/target?from=config"}
"""
    with Upstream(name="api") as a:
        with Ferry(cfg({"api": a}, routes)) as f:
            for s in (301, 302, 303, 307, 308):
                r = get(f, f"/r{s}")
                eq(r.status, s, f"redirect status {s}")
                eq(r.header("location"), "https://new.example.test/moved", f"Location for {s}")
                r = get(f, f"/r{s}?a=1&b=2")
                eq(r.header("location"), "https://new.example.test/moved?a=1&b=2", f"query kept for {s}")
            r = get(f, "/default?q=x")
            eq(r.status, 302, "default redirect status")
            eq(r.header("location"), "/elsewhere?q=x", "relative location keeps the query")
            r = get(f, "/own-query?q=x")
            eq(r.header("location"), "/target?from=config", "a location with a query replaces the client's")
            eq(len(a.requests), 0, "redirects never reach an upstream")


def test_respond_status_body_and_content_type():
    routes = """  - path: /health
    respond: {status: 200, body: "ok\\n", content_type: application/health+json}
  - path: /teapot
    respond: {status: 418, body: "short and stout"}
  - path: /empty
    respond: {status: 204}
"""
    with Upstream(name="api") as a:
        with Ferry(cfg({"api": a}, routes)) as f:
            r = get(f, "/health")
            eq((r.status, r.body), (200, b"ok\n"), "respond status and body")
            eq(r.header("content-type"), "application/health+json", "respond content_type")
            eq(r.header("content-length"), "3", "respond Content-Length")
            r = get(f, "/teapot")
            eq((r.status, r.body), (418, b"short and stout"), "custom status")
            eq(r.header("content-type"), "text/plain", "default content_type")
            r = ft.request(f.port, method="HEAD", target="/health", headers=[("Host", "h")])
            eq((r.status, r.body), (200, b""), "HEAD gets the head only")
            r = get(f, "/empty")
            eq((r.status, r.body), (204, b""), "204 without a body")
            eq(len(a.requests), 0, "respond never reaches an upstream")


# ------------------------------------------------------------------ rewrites


def test_rewrite_prefix_replaces_or_strips():
    with Upstream(name="api") as a:
        routes = """  - path_prefix: /users
    rewrite_prefix: /v2/users
    upstream: api
  - path_prefix: /svc/orders
    rewrite_prefix: /
    upstream: api
  - path_prefix: /assets/
    rewrite_prefix: /cdn/
    upstream: api
"""
        with Ferry(cfg({"api": a}, routes)) as f:
            cases = [
                ("/users", "/v2/users"),
                ("/users/7?x=1", "/v2/users/7?x=1"),
                ("/users/", "/v2/users/"),
                ("/svc/orders", "/"),
                ("/svc/orders/", "/"),
                ("/svc/orders/42?full=1", "/42?full=1"),
                ("/assets/app.js", "/cdn/app.js"),
                ("/users/%7Eann", "/v2/users/~ann"),  # rewritten from the normalised path
            ]
            for i, (sent, want) in enumerate(cases):
                expect_upstream(f, sent, "api")
                eq(a.wait_requests(i + 1)[i].target, want, f"target upstream for {sent}")


def test_set_host():
    with Upstream(name="api") as a:
        routes = """  - path_prefix: /a
    set_host: users.internal:8443
    upstream: api
  - upstream: api
"""
        with Ferry(cfg({"api": a}, routes)) as f:
            expect_upstream(f, "/a", "api", host="public.example.test")
            expect_upstream(f, "/b", "api", host="public.example.test")
            reqs = a.wait_requests(2)
            eq(reqs[0].header_all("host"), ["users.internal:8443"], "set_host replaces Host")
            eq(reqs[0].header("x-forwarded-host"), "public.example.test", "X-Forwarded-Host keeps the client's")
            eq(reqs[1].header_all("host"), ["public.example.test"], "default: the client's Host")


def test_request_headers_set_add_remove():
    with Upstream(name="api") as a:
        routes = """  - upstream: api
    request_headers:
      set: {X-Env: prod}
      add: {X-Via-Route: users}
      remove: [X-Debug, Cookie]
"""
        with Ferry(cfg({"api": a}, routes)) as f:
            expect_upstream(f, "/", "api", headers=[("X-Env", "dev"), ("x-env", "test"), ("X-Via-Route", "client"),
                                                    ("X-Debug", "1"), ("cookie", "a=b"), ("X-Kept", "k")])
            m = a.wait_requests(1)[0]
            eq(m.header_all("x-env"), ["prod"], "set replaces every client value")
            eq(m.header_all("x-via-route"), ["client", "users"], "add appends to the client's value")
            check("x-debug" not in m.names() and "cookie" not in m.names(), f"removed headers: {m.headers}")
            eq(m.header("x-kept"), "k", "other headers kept")


def test_response_headers_set_add_remove():
    def handler(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            c.respond(200, "ok from api", headers=[("Server", "upstream/1.0"), ("X-Frame-Options", "ALLOW"),
                                                    ("X-Frame-Options", "SAMEORIGIN"), ("Vary", "Accept"),
                                                    ("X-Kept", "k")])

    with Upstream(handler, name="api") as a:
        routes = """  - upstream: api
    response_headers:
      set: {X-Frame-Options: DENY}
      add: {Vary: Origin}
      remove: [Server]
"""
        with Ferry(cfg({"api": a}, routes)) as f:
            r = get(f, "/")
            eq(r.body, b"ok from api", "body")
            eq(r.header_all("x-frame-options"), ["DENY"], "set replaces every upstream value")
            eq(r.header_all("vary"), ["Accept", "Origin"], "add appends")
            check("server" not in r.names(), f"Server removed: {r.headers}")
            eq(r.header("x-kept"), "k", "other headers kept")


def test_response_headers_apply_to_respond_and_redirect_routes():
    routes = """  - path: /ping
    respond: {body: pong}
    response_headers:
      set: {Cache-Control: no-store}
  - path: /old
    redirect: {location: /new, status: 301}
    response_headers:
      add: {X-Moved: "yes"}
"""
    with Upstream(name="api") as a:
        with Ferry(cfg({"api": a}, routes)) as f:
            r = get(f, "/ping")
            eq(r.header("cache-control"), "no-store", "response_headers on a respond route")
            r = get(f, "/old")
            eq(r.status, 301, "redirect")
            eq(r.header("x-moved"), "yes", "response_headers on a redirect route")


# ------------------------------------------------------------- normalisation


def test_normalised_path_cannot_dodge_a_route_and_upstream_gets_client_bytes():
    with Upstream(name="admin") as adm, Upstream(name="public") as pub:
        routes = """  - path_prefix: /admin
    upstream: admin
  - path_prefix: /public
    upstream: public
"""
        with Ferry(cfg({"admin": adm, "public": pub}, routes)) as f:
            sent = ["/public/../admin", "/%61dmin", "/public/%2e%2e/admin/x", "/./admin", "/public/./../%61dmin?q=1"]
            for i, t in enumerate(sent):
                expect_upstream(f, t, "admin")
                eq(adm.wait_requests(i + 1)[i].target, t, "the client's target bytes go upstream unchanged")
            expect_upstream(f, "/public/%2Fadmin", "public")  # an encoded "/" is not a separator
            eq(len(pub.requests), 1, "requests at public")


def test_route_path_with_escapes_matches_any_hex_case():
    with Upstream(name="menu") as m:
        routes = """  - path_prefix: /caf%C3%A9
    upstream: menu
"""
        with Ferry(cfg({"menu": m}, routes)) as f:
            expect_upstream(f, "/caf%c3%a9/menu", "menu")
            expect_upstream(f, "/caf%C3%A9", "menu")
            expect_404(f, "/caf%C3%A9x")
            eq([r.target for r in m.wait_requests(2)], ["/caf%c3%a9/menu", "/caf%C3%A9"],
               "targets upstream are the client's bytes")


def test_absolute_form_target_routes_by_its_authority():
    with Upstream(name="api") as a, Upstream(name="other") as o:
        routes = """  - host: api.example.test
    upstream: api
  - upstream: other
"""
        with Ferry(cfg({"api": a, "other": o}, routes)) as f:
            r = ft.request(f.port, target="http://api.example.test/v1/x?y=1", headers=[("Host", "other.test")])
            eq(r.body, b"ok from api", "the authority of an absolute-form target is the Host")
            m = a.wait_requests(1)[0]
            eq(m.start, "GET /v1/x?y=1 HTTP/1.1", "origin-form upstream")
            eq(m.header("host"), "api.example.test", "Host upstream")


def test_path_climbing_above_root_is_400():
    with Upstream(name="api") as a:
        with Ferry(cfg({"api": a}, "  - upstream: api\n")) as f:
            for t in ("/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x"):
                data = ft.raw_exchange(f.port, f"GET {t} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
                check(data.startswith(b"HTTP/1.1 400 "), f"{t}: expected 400, got {data[:60]!r}")
            eq(len(a.requests), 0, "nothing reached the upstream")


# ------------------------------------------------------------------ ferry -t


def test_check_warns_about_routes_that_can_never_match():
    text = """listeners:
  - address: 127.0.0.1:18080
upstreams:
  api:
    servers:
      - address: 127.0.0.1:9001
routes:
  - path_prefix: /api
    upstream: api
  - host: api.example.test
    path_prefix: /api/v1
    upstream: api
  - path_prefix: /api
    methods: [GET]
    upstream: api
  - path_prefix: /apix
    upstream: api
"""
    rc, out, path = ft.ferry_check(text)
    eq(rc, 0, f"exit code with warnings only; output:\n{out}")
    check(f"{path}: ok" in out, f"ok line: {out}")
    want = [
        f"{path}:10:5: warning: routes[1] (line 10) can never match: routes[0] (line 8) comes first and "
        "matches every request it would (same or wider host and path, no extra conditions); move routes[1] "
        "above routes[0], narrow routes[0], or remove routes[1]",
        f"{path}:13:5: warning: routes[2] (line 13) can never match: routes[0] (line 8) comes first and "
        "matches every request it would (same or wider host and path, no extra conditions); move routes[2] "
        "above routes[0], narrow routes[0], or remove routes[2]",
    ]
    got = [l for l in out.splitlines() if "warning:" in l]
    eq(got, want, "warnings")


def test_check_reports_every_error_and_exits_1():
    text = """listeners:
  - address: 127.0.0.1:18080
upstreams:
  api:
    sever: []
routes:
  - path_prefix: users
    upstream: apii
  - path_regex: "^/v(1|2"
    respond: {status: 99}
"""
    rc, out, path = ft.ferry_check(text)
    eq(rc, 1, f"exit code; output:\n{out}")
    lines = [l for l in out.splitlines() if l.startswith(path + ":")]
    eq(lines, [
        f'{path}:5:5: upstreams.api: unknown key "sever" (did you mean "servers"?)',
        f'{path}:5:5: upstreams.api: missing required key "servers"',
        f'{path}:7:18: routes[0].path_prefix: must start with "/", found "users"',
        f'{path}:8:15: routes[0].upstream: unknown upstream "apii" (did you mean "api"?)',
        f'{path}:9:17: routes[1].path_regex: invalid regular expression "^/v(1|2": Unmatched ( or \\(',
        f"{path}:10:23: routes[1].respond.status: 99 is out of range (expected 100..599)",
        f"{path}: 6 errors",
    ], "errors in file order, then the count")


ft.main(globals())
