"""auth_request (SPEC §8, issue 16): before forwarding, ferry asks an auth
upstream with GET path and the client's headers; 2xx passes with
pass_headers copied, 401/403 go back as the auth service sent them,
anything else (another status, the service down or slow) is 500 and the
request never reaches the app. Plus the `ferry -t` checks."""
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Upstream, Client, eq, check


class AuthService(Upstream):
    """Answers every request with .answer = (status, headers, body); records
    what it received. With .gate set (a threading.Event), it waits for it
    before answering."""

    def __init__(self):
        self.answer = (200, [("X-User", "alice")], b"")
        self.gate = None
        super().__init__(self._serve, name="auth")

    def _serve(self, c):
        while True:
            m = c.read_request()
            if m is None:
                return
            self.record(m)
            if self.gate is not None:
                self.gate.wait(ft.IO_TIMEOUT)
            status, headers, body = self.answer
            c.respond(status, body, headers=headers, reason={401: "Unauthorized", 403: "Forbidden",
                                                             302: "Found"}.get(status))


def config(auth_port=None, timeout=""):
    auth = f"127.0.0.1:{auth_port}" if auth_port else "127.0.0.1:{port:authdown}"
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
access_log: {{path: "-", format: json}}
admin: {{address: "127.0.0.1:{{port:admin}}"}}
upstreams:
  app: {{servers: [{{address: 127.0.0.1:{{port:app}}}}]}}
  auth: {{servers: [{{address: "{auth}"}}]}}
routes:
  - path_prefix: /api
    upstream: app
{timeout}    auth_request: {{upstream: auth, path: /check, pass_headers: [X-User, X-Groups]}}
  - path_prefix: /
    upstream: app
"""


def metrics(f):
    return ft.admin_request(f.ports["admin"], target="/metrics").body.decode()


def test_auth_pass_copies_pass_headers_and_replaces_the_clients():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port), ports={"app": app.port}) as f:
        auth.answer = (200, [("X-User", "alice"), ("X-Internal", "secret")], b"ok")
        r = ft.request(f.port, "POST", "/api/orders?id=7",
                       headers=(("Host", "shop.test"), ("Authorization", "Bearer t0k"),
                                ("X-User", "mallory"), ("X-Groups", "admin"),
                                ("X-Forwarded-Uri", "/spoofed")),
                       body="hello body")
        eq(r.status, 200, "allowed request answered by the app")
        eq(r.body, b"ok from app", "the app's answer")
        (a,) = auth.requests
        eq(a.start, "GET /check HTTP/1.1", "the check's request line")
        eq(a.header("Authorization"), "Bearer t0k", "the client's credentials go to the auth service")
        eq(a.header("Host"), "shop.test", "the client's Host")
        eq(a.header("X-Forwarded-Method"), "POST", "the original method")
        eq(a.header_all("X-Forwarded-Uri"), ["/api/orders?id=7"], "the original target, not the client's")
        eq(a.header("Content-Length"), None, "no body framing on the check")
        eq(a.header("Transfer-Encoding"), None, "no body framing on the check")
        eq(a.body, b"", "no body on the check")
        (m,) = app.requests
        eq(m.start, "POST /api/orders?id=7 HTTP/1.1", "the request goes on as it came")
        eq(m.header_all("X-User"), ["alice"], "pass_headers from the auth answer replace the client's")
        eq(m.header_all("X-Groups"), [], "a pass_header the answer lacks is removed, not kept from the client")
        eq(m.header("X-Internal"), None, "headers not in pass_headers are not copied")
        eq(m.body, b"hello body", "the client's body, held until the check passed")
        line = f.wait_access_log(r'"target":"/api/orders')
        check('"auth":"allowed"' in line, "access log shows the auth result: " + line)
        check('ferry_auth_requests_total{route="/api",result="allowed"} 1' in metrics(f), metrics(f)[-1500:])
        with Client(f.port) as c:
            for i in range(3):
                eq(c.request("GET", f"/api/again{i}", headers=(("Host", "t"),)).status, 200, "again")
        eq(auth.accepted, 1, "the checks reuse one pooled keep-alive connection to the auth service")
        ft.request(f.port, "GET", "http://shop.test/api/abs?q=1", headers=(("Host", "shop.test"),))
        eq(auth.requests[-1].header("X-Forwarded-Uri"), "/api/abs?q=1", "origin form of an absolute target")


def test_client_body_waits_for_the_decision():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port), ports={"app": app.port}) as f:
        auth.gate = threading.Event()
        with Client(f.port) as c:
            c.send(b"PUT /api/doc HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
            auth.wait_requests(1)
            c.send(b"56789")
            time.sleep(0.2)  # give a wrong implementation the time to forward early
            eq(app.count(), 0, "nothing reaches the app before the auth service answered")
            auth.gate.set()
            r = c.response()
        eq(r.status, 200, "allowed after the wait")
        eq(app.requests[0].body, b"0123456789", "the whole body, after the decision")


def test_401_is_returned_as_the_auth_service_sent_it():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port), ports={"app": app.port}) as f:
        auth.answer = (401, [("WWW-Authenticate", 'Bearer realm="shop"'), ("X-Reason", "expired")],
                       b"token expired\n")
        with Client(f.port) as c:
            r = c.request("GET", "/api/me", headers=(("Host", "t"),))
            eq(r.status, 401, "the auth service's status")
            eq(r.header("WWW-Authenticate"), 'Bearer realm="shop"', "its challenge")
            eq(r.header("X-Reason"), "expired", "its other headers")
            eq(r.body, b"token expired\n", "its body")
            check(r.header("X-Request-Id"), "ferry's request id is on the answer")
            r2 = c.request("GET", "/other", headers=(("Host", "t"),))
            eq(r2.status, 200, "the connection stays usable after a denial")
        eq([m.target for m in app.requests], ["/other"], "the denied request never reached the app")
        line = f.wait_access_log(r'"target":"/api/me"')
        check('"status":401' in line and '"auth":"denied"' in line, line)


def test_403_with_a_request_body_closes_after_the_answer():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port), ports={"app": app.port}) as f:
        auth.answer = (403, [("Content-Type", "application/json")], b'{"error":"forbidden"}')
        with Client(f.port) as c:
            r = c.request("POST", "/api/admin", headers=(("Host", "t"),), body="x" * 1000)
            eq(r.status, 403, "the auth service's 403")
            eq(r.header("Content-Type"), "application/json", "its content type")
            eq(r.body, b'{"error":"forbidden"}', "its body")
            eq(r.header("Connection"), "close", "the unread body ends the connection")
        eq(app.count(), 0, "nothing reached the app")
        check('ferry_auth_requests_total{route="/api",result="denied"} 1' in metrics(f), metrics(f)[-1500:])


def test_auth_down_is_500_and_never_lets_the_request_through():
    with ScriptedUpstream("app") as app, Ferry(config(None), ports={"app": app.port}) as f:
        for i in range(3):
            r = ft.request(f.port, "GET", f"/api/x{i}", headers=(("Host", "t"),))
            eq(r.status, 500, f"request {i} with the auth service down")
        eq(app.count(), 0, "the app never received a request")
        eq(ft.request(f.port, "GET", "/open").status, 200, "routes without auth_request still work")
        check('ferry_auth_requests_total{route="/api",result="error"} 3' in metrics(f), metrics(f)[-1500:])
        f.wait_stderr(r"auth_request to upstream auth .*connect_failed; answering 500")  # says why


def test_auth_that_does_not_answer_in_time_is_500():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port, timeout="    timeout: 300ms\n"), ports={"app": app.port}) as f:
        auth.gate = threading.Event()
        t0 = time.monotonic()
        r = ft.request(f.port, "GET", "/api/slow", headers=(("Host", "t"),))
        took = time.monotonic() - t0
        auth.gate.set()
        eq(r.status, 500, "a slow auth service")
        check(0.25 < took < 3, f"the route's timeout bounds the check: {took:.2f}s")
        eq(app.count(), 0, "nothing reached the app")


def test_other_auth_statuses_are_500():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port), ports={"app": app.port}) as f:
        for status in (302, 404, 500, 503):
            auth.answer = (status, [("Location", "https://login.example/")], b"no")
            r = ft.request(f.port, "GET", "/api/x", headers=(("Host", "t"),))
            eq(r.status, 500, f"auth service answering {status}")
            eq(r.header("Location"), None, "nothing of that answer is relayed")
        auth.answer = (401, [], b"x" * (64 * 1024 + 1))
        eq(ft.request(f.port, "GET", "/api/big").status, 500, "a 401 body over 64 KiB")
        eq(app.count(), 0, "nothing reached the app")


def test_auth_request_checks():
    base = """
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  app: {servers: [{address: "127.0.0.1:9"}]}
  auth: {servers: [{address: "127.0.0.1:9"}]}
routes:
  - upstream: app
"""
    rc, out, _ = ft.ferry_check(base + "    auth_request: {upstream: auht, path: /check}\n")
    eq(rc, 1, out)
    check('routes[0].auth_request.upstream: unknown upstream "auht" (did you mean "auth"?)' in out, out)
    check(":8:30:" in out, "file:line:col of the error: " + out)
    rc, out, _ = ft.ferry_check(base + "    auth_request: {upstream: auth, path: check}\n")
    eq(rc, 1, out)
    check('auth_request.path: must start with "/"' in out, out)
    rc, out, _ = ft.ferry_check(base + "    auth_request: {upstream: auth}\n")
    eq(rc, 1, out)
    check('missing required key "path"' in out, out)
    rc, out, _ = ft.ferry_check(base + "    auth_request: {upstream: auth, path: /c, pass_headers: [Host]}\n")
    eq(rc, 1, out)
    check('cannot pass "Host"' in out, out)
    rc, out, _ = ft.ferry_check(base + "    auth_request: {upstream: auth, path: /c, pass_header: [X-User]}\n")
    eq(rc, 1, out)
    check('unknown key "pass_header" (did you mean "pass_headers"?)' in out, out)
    rc, out, _ = ft.ferry_check(base + "    auth_request: {upstream: auth, path: \"/check?v=1\", pass_headers: [X-User]}\n")
    eq(rc, 0, "a valid auth_request: " + out)




def test_a_reload_during_the_check_forwards_to_the_routes_own_upstream():
    """The route was matched in the configuration of its time; a reload
    that lands while the auth service thinks must not send the request to
    whatever upstream now sits at the same place in the new list."""
    import os
    import signal
    old = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
admin: {address: "127.0.0.1:{port:admin}"}
upstreams:
  auth: {servers: [{address: "127.0.0.1:{port:auth}"}]}
  app: {servers: [{address: "127.0.0.1:{port:app}"}]}
  shadow: {servers: [{address: "127.0.0.1:{port:shadow}"}]}
routes:
  - path_prefix: /api
    upstream: app
    auth_request: {upstream: auth, path: /check}
    mirror: {upstream: shadow, percent: 100}
"""
    new = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
admin: {address: "127.0.0.1:{port:admin}"}
upstreams:
  other: {servers: [{address: "127.0.0.1:{port:other}"}]}
routes:
  - path_prefix: /
    upstream: other
"""
    with AuthService() as auth, ScriptedUpstream("app") as app, ScriptedUpstream("other") as other, \
            ScriptedUpstream("shadow") as shadow, \
            Ferry(old, ports={"auth": auth.port, "app": app.port, "other": other.port,
                              "shadow": shadow.port}) as f:
        auth.gate = threading.Event()
        shadow.mode = "stall"  # the copy outlives the request (and its configuration)
        with Client(f.port) as c:
            c.send(b"GET /api/doc HTTP/1.1\r\nHost: t\r\n\r\n")
            auth.wait_requests(1)
            text = new
            for k, v in f.ports.items():
                text = text.replace("{port:%s}" % k, str(v))
            with open(f.config_path + ".tmp", "w") as out:
                out.write(text)
            os.replace(f.config_path + ".tmp", f.config_path)
            f.signal(signal.SIGHUP)
            f.wait_stderr(r"configuration generation 2 published")
            # the worker serves the new generation once a new request sees it
            deadline = time.monotonic() + ft.IO_TIMEOUT
            while ft.request(f.port, target="/probe").body != b"ok from other":
                check(time.monotonic() < deadline, "the worker took the new configuration")
            auth.gate.set()
            try:
                r = c.response()
            except ft.Closed:
                print(f.stderr_text()[-2000:])
                raise
        eq(r.status, 200, "allowed after the reload")
        eq(r.body, b"ok from app", "the request went to the route's upstream of its configuration")
        shadow.wait_requests(1)
        eq(shadow.requests[0].target, "/api/doc", "the copy went to the route's mirror upstream")
        # the request's connection is closed, so generation 1 has no exchange
        # left; the copy still uses its upstream until the shadow lets go
        eq(ft.request(f.port, target="/probe").body, b"ok from other", "served after the close")
        shadow.release()
        failed = 'ferry_mirror_requests_total{route="/api",result="failed"} 1'
        while failed not in metrics(f):
            check(time.monotonic() < deadline + ft.IO_TIMEOUT, "the copy ended: " + metrics(f)[-800:])
        eq(ft.request(f.port, target="/probe").body, b"ok from other", "served after the copy ended")
        eq([m.target for m in other.requests], ["/probe"] * len(other.requests),
           "nothing of the checked request reached the new configuration's upstream")


def test_trailers_of_a_chunked_answer_are_not_taken_as_its_headers():
    with AuthService() as auth, ScriptedUpstream("app") as app, \
            Ferry(config(auth.port), ports={"app": app.port}) as f:
        auth.answer = (200, [("X-User", "alice"), ("Transfer-Encoding", "chunked")],
                       b"2\r\nok\r\n0\r\nX-User: mallory\r\nX-Groups: admin\r\n\r\n")
        eq(ft.request(f.port, "GET", "/api/a").status, 200, "allowed")
        eq(app.requests[0].header_all("X-User"), ["alice"], "pass_headers come from the answer's head")
        eq(app.requests[0].header_all("X-Groups"), [], "a trailer field is not a pass_header")
        auth.answer = (401, [("WWW-Authenticate", "Bearer"), ("Transfer-Encoding", "chunked")],
                       b"5\r\nhello\r\n0\r\nX-Trailer: t\r\nConnection: close\r\n\r\n")
        with Client(f.port) as c:
            r = c.request("GET", "/api/b", headers=(("Host", "t"),))
            eq(r.status, 401, "denied")
            eq(r.body, b"hello", "the denial's body")
            eq(r.header("X-Trailer"), None, "the answer's trailer is not relayed as a header")
            eq(r.header_all("Connection"), [], "one connection decision, ferry's own")
            eq(c.request("GET", "/open", headers=(("Host", "t"),)).status, 200, "the connection stays open")


ft.main(globals())
