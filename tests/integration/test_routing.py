"""Routing and forwarding headers, end to end (issue: core proxy)."""
import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(api, web, extra_routes=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
access_log: {{path: "-"}}
upstreams:
  api:
    servers:
      - address: {api}
  web:
    servers:
      - address: {web}
routes:
{extra_routes}  - host: api.example.test
    path_prefix: /v1
    upstream: api
  - host: "*.apps.test"
    upstream: web
  - path_prefix: /api
    upstream: api
  - path: /exact
    upstream: web
  - path_prefix: /static/
    upstream: web
"""


def test_routes_by_prefix_host_and_exact_path_in_file_order():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            cases = [
                ("example.test", "/api", "api"),
                ("example.test", "/api/users/7?x=1", "api"),
                ("example.test", "/api?x=1", "api"),
                ("api.example.test", "/v1/things", "api"),
                ("x.apps.test", "/anything", "web"),
                ("a.b.apps.test:8080", "/v1/things", "web"),
                ("example.test", "/exact", "web"),
                ("example.test", "/static/app.js", "web"),
            ]
            for host, path, want in cases:
                r = ft.request(f.port, target=path, headers=[("Host", host)])
                eq(r.status, 200, f"status for {host}{path}")
                eq(r.body, f"ok from {want}".encode(), f"upstream for {host}{path}")


def test_no_route_is_404_with_request_id():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            for host, path in [("example.test", "/apix"), ("apps.test", "/x"), ("example.test", "/exact/more"),
                               ("example.test", "/static")]:
                r = ft.request(f.port, target=path, headers=[("Host", host)])
                eq(r.status, 404, f"status for {host}{path}")
                eq(r.body, b"no route\n", "404 body")
                check(r.header("x-request-id"), "404 carries X-Request-Id")
            eq(len(api.requests) + len(web.requests), 0, "requests that reached an upstream")


def test_forwarding_headers_added_and_hop_by_hop_removed():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            hdrs = [("Host", "example.test"), ("X-Forwarded-For", "203.0.113.9"), ("Connection", "keep-alive, X-Secret"),
                    ("X-Secret", "s"), ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
                    ("Upgrade", "h2c"), ("X-Kept", "yes")]
            r = ft.request(f.port, target="/api/h", headers=hdrs)
            eq(r.status, 200, "status")
            m = api.wait_requests(1)[0]
            eq(m.start, "GET /api/h HTTP/1.1", "request line upstream")
            eq(m.header("x-forwarded-for"), "203.0.113.9, 127.0.0.1", "X-Forwarded-For appended")
            eq(m.header("x-forwarded-proto"), "http", "X-Forwarded-Proto")
            eq(m.header("x-forwarded-host"), "example.test", "X-Forwarded-Host")
            eq(m.header("via"), "1.1 ferry", "Via")
            eq(m.header("host"), "example.test", "Host kept")
            eq(m.header("x-kept"), "yes", "end-to-end header kept")
            for h in ("connection", "x-secret", "keep-alive", "proxy-connection", "te", "upgrade"):
                check(h not in m.names(), f"hop-by-hop {h} must not reach the upstream: {m.headers}")
            rid = m.header("x-request-id")
            check(rid and len(rid) >= 8, f"generated request id upstream: {rid!r}")
            eq(r.header("x-request-id"), rid, "same id on the response")
            f.wait_access_log(f"rid={rid}")


def test_sane_request_id_is_kept_and_insane_one_replaced():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            r = ft.request(f.port, target="/api", headers=[("Host", "h"), ("X-Request-Id", "abc-123_x.y")])
            eq(r.header("x-request-id"), "abc-123_x.y", "sane id kept on the response")
            eq(api.wait_requests(1)[0].header("x-request-id"), "abc-123_x.y", "sane id kept upstream")
            r = ft.request(f.port, target="/api", headers=[("Host", "h"), ("X-Request-Id", "bad id<script>")])
            rid = r.header("x-request-id")
            check(rid and rid != "bad id<script>", f"insane id replaced: {rid!r}")
            eq(api.wait_requests(2)[1].header_all("x-request-id"), [rid], "exactly the new id upstream")


def test_response_hop_by_hop_headers_removed():
    def handler(c):
        m = c.read_request()
        c.upstream.record(m)
        c.send(b"HTTP/1.1 200 OK\r\nConnection: X-Up-Secret\r\nX-Up-Secret: 1\r\nKeep-Alive: timeout=9\r\n"
               b"Upgrade: foo\r\nX-Up: kept\r\nContent-Length: 2\r\n\r\nhi")
    with Upstream(handler, name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            r = ft.request(f.port, target="/api")
            eq(r.body, b"hi", "body")
            eq(r.header("x-up"), "kept", "end-to-end response header")
            for h in ("x-up-secret", "keep-alive", "upgrade"):
                check(h not in r.names(), f"hop-by-hop {h} must not reach the client: {r.headers}")


def test_http10_request_without_host_routes_by_hostless_routes_and_closes():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            data = ft.raw_exchange(f.port, b"GET /static/index.html HTTP/1.0\r\nAccept: text/html\r\n\r\n")
            check(data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200"), f"response: {data[:100]!r}")
            check(data.endswith(b"ok from web"), f"body from web: {data[-40:]!r}")
            m = web.wait_requests(1)[0]
            eq(m.start, "GET /static/index.html HTTP/1.1", "forwarded as HTTP/1.1")
            eq(m.header("via"), "1.0 ferry", "Via for an HTTP/1.0 client")
            check(m.header("host"), "a Host is sent upstream")


def test_http10_keepalive_only_when_asked():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            with Client(f.port) as c:
                r = c.request(target="/api/1", headers=[("Connection", "keep-alive")], version="HTTP/1.0")
                eq(r.status, 200, "first")
                eq(r.header("connection", "").lower(), "keep-alive", "keep-alive confirmed to 1.0 client")
                r = c.request(target="/api/2", headers=[], version="HTTP/1.0")
                eq(r.status, 200, "second on the same connection")
                check(c.is_closed(), "closed after a 1.0 request without keep-alive")


def test_http11_keepalive_and_pipelining_in_order():
    with Upstream(name="api") as api, Upstream(name="web") as web:
        with Ferry(config(api.address, web.address)) as f:
            with Client(f.port) as c:
                c.send(b"GET /api/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /exact HTTP/1.1\r\nHost: a\r\n\r\n"
                       b"GET /api/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                bodies = [c.response().body for _ in range(3)]
                eq(bodies, [b"ok from api", b"ok from web", b"ok from api"], "pipelined responses in order")
                check(c.is_closed(), "closed after Connection: close")


def test_echo_demo_upstream_shows_forwarded_request():
    p, addr = ft.echo_server("api-1")
    try:
        with Upstream(name="web") as web, Ferry(config(addr, web.address)) as f:
            r = ft.request(f.port, target="/api/users", headers=[("Host", "demo.test"), ("User-Agent", "t")])
            eq(r.status, 200, "status")
            eq(r.header("x-echo-server"), "api-1", "echo server name")
            check(b"GET /api/users HTTP/1.1\n" in r.body, f"echoed request line: {r.body!r}")
            check(b"X-Forwarded-For: 127.0.0.1\n" in r.body, f"echoed XFF: {r.body!r}")
    finally:
        p.terminate()
        p.wait(10)


ft.main(globals())
