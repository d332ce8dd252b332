"""The HTTP rules of SPEC §4 added after the first smuggling defences:
Host syntax, request-target bytes, versions, unknown transfer codings,
chunk terminators, trailer filtering and Date. Every case sends raw bytes
and checks both what the client got and what the upstream received."""
import email.utils
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "-"}
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
routes:
  - path: /own
    respond: {status: 200, body: "own reply"}
  - upstream: up
"""

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


def received_upstream(up):
    """Every byte any upstream connection received so far."""
    return b"".join(c.received for c in up.conns)


def expect_refused(f, up, data, status, what):
    """data (then a smuggled request) gets `status`, Connection: close and
    a close, and the upstream receives not a single byte."""
    before = len(received_upstream(up))
    with Client(f.port) as c:
        c.send(data + SMUGGLED)
        r = c.response()
        eq(r.status, status, what)
        eq(r.header("connection"), "close", f"{what}: Connection: close")
        check(r.header("date"), f"{what}: ferry's own reply carries Date")
        check(c.is_closed(), f"{what}: connection closed")
        eq(c.buf, b"", f"{what}: nothing after the error response")
    eq(len(received_upstream(up)), before, f"{what}: bytes reached the upstream")
    return r


def run_refused(cases):
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for what, data, status in cases:
            expect_refused(f, up, data, status, what)
        eq(ft.request(f.port, target="/after").status, 200, "a normal request afterwards")
        eq([m.target for m in up.requests], ["/after"], "the upstream saw only the normal request")


def test_host_that_is_not_host_and_port_is_400():
    req = lambda host: b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    run_refused([
        ("userinfo", req(b"user@example.com"), 400),
        ("userinfo with password", req(b"u:p@example.com:80"), 400),
        ("a path", req(b"example.com/admin"), 400),
        ("a query", req(b"example.com?x"), 400),
        ("several values", req(b"a.example, b.example"), 400),
        ("a list without space", req(b"a.example,b.example"), 400),
        ("empty in HTTP/1.1", req(b""), 400),
        ("only a port", req(b":8080"), 400),
        ("a bad port", req(b"example.com:80x"), 400),
        ("a space inside", req(b"exa mple.com"), 400),
        ("raw UTF-8", req(b"caf\xc3\xa9.example"), 400),
        ("unclosed IPv6 literal", req(b"[::1"), 400),
        ("absolute-form with userinfo", b"GET http://user@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
        ("absolute-form with a list", b"GET http://a,b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute-form with an empty authority", b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute-form beside a bad Host", b"GET http://a/ HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ])


def test_good_hosts_pass_and_reach_the_upstream_as_sent():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for host in ["example.com", "example.com:8080", "127.0.0.1:1", "[::1]:8080", "xn--bcher-kva.example"]:
            r = ft.request(f.port, target="/ok", headers=(("Host", host),))
            eq(r.status, 200, host)
            eq(up.requests[-1].header("host"), host, f"{host}: Host upstream")
        # HTTP/1.0 without Host, or with an empty one, is still served.
        with Client(f.port) as c:
            c.send(b"GET /old HTTP/1.0\r\nHost:\r\n\r\n")
            eq(c.response().status, 200, "empty Host in HTTP/1.0")
        eq(up.requests[-1].target, "/old")


def test_target_bytes_outside_visible_ascii_are_400_on_both_parsers():
    cases = []
    # GET goes to the one-pass parser first (it declines these bytes);
    # MKCOL and absolute-form targets only llhttp reads.
    for method in (b"GET", b"MKCOL"):
        for what, t in [("raw UTF-8", b"/caf\xc3\xa9"), ("overlong UTF-8", b"/\xc0\xaf"),
                        ("byte 0x80", b"/a\x80"), ("byte 0xff", b"/\xff"), ("HTAB", b"/a\tb"),
                        ("form feed", b"/a\x0cb"), ("DEL", b"/a\x7fb")]:
            cases.append((f"{method.decode()} {what}", method + b" " + t + b" HTTP/1.1\r\nHost: t\r\n\r\n", 400))
    cases.append(("absolute-form raw UTF-8", b"GET http://t/caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400))
    cases.append(("HTTP/1.0 raw UTF-8", b"GET /caf\xc3\xa9 HTTP/1.0\r\n\r\n", 400))
    run_refused(cases)


def test_percent_encoded_targets_still_pass_unchanged():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for method in ("GET", "MKCOL"):
            r = ft.request(f.port, method=method, target="/caf%C3%A9?q=%22x%22")
            eq(r.status, 200, method)
            eq(up.requests[-1].target, "/caf%C3%A9?q=%22x%22", f"{method}: target upstream")


def test_http_1_2_and_up_are_served_as_1_1():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for minor in range(2, 10):
            with Client(f.port) as c:
                c.send(b"GET /v%d HTTP/1.%d\r\nHost: t\r\n\r\n" % (minor, minor))
                r = c.response()
                eq(r.status, 200, f"HTTP/1.{minor}")
                check(r.start.startswith("HTTP/1.1 "), r.start)
                check(r.header("connection") is None, f"HTTP/1.{minor} keeps the connection like 1.1")
                c.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
                eq(c.response().status, 200, f"HTTP/1.{minor}: the connection is reused")
            m = up.requests[-2]
            eq(m.start, f"GET /v{minor} HTTP/1.1", "forwarded as HTTP/1.1")
            eq(m.header("via"), "1.1 ferry", "Via says 1.1")


def test_http_2_and_up_in_a_request_line_is_505():
    run_refused([
        (f"HTTP/{v}", b"GET / HTTP/" + v.encode() + b"\r\nHost: t\r\n\r\n", 505)
        for v in ("2.0", "3.0", "9.9", "0.9")
    ] + [
        ("HTTP/1.10 (two digits)", b"GET / HTTP/1.10\r\nHost: t\r\n\r\n", 400),
        ("HTTP/11", b"GET / HTTP/11\r\nHost: t\r\n\r\n", 400),
    ])


def test_transfer_coding_other_than_chunked_is_501():
    r = None
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for what, te in [("gzip", b"gzip"), ("identity", b"identity"), ("gzip, chunked", b"gzip, chunked")]:
            r = expect_refused(f, up, b"POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + te +
                               b"\r\n\r\n0\r\n\r\n", 501, what)
        check(b"chunked" in r.body, f"the message says what to send: {r.body!r}")
        eq(up.requests, [], "nothing upstream")


def test_obfuscated_transfer_encoding_is_refused_te_te():
    te = lambda v: b"POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + v + b"\r\n\r\n0\r\n\r\n"
    run_refused([
        ("xchunked", te(b"xchunked"), 501),
        ("quoted chunked", te(b'"chunked"'), 501),
        ("identity before chunked", te(b"identity, chunked"), 501),
        ("chunked then identity", te(b"chunked, identity"), 400),
        ("chunked twice in a list", te(b"chunked,chunked"), 400),
        ("a second Transfer-Encoding field", te(b"chunked\r\nTransfer-Encoding: identity"), 400),
        ("vertical tab after chunked", te(b"chunked\x0b"), 400),
        ("Transfer-Encoding folded", te(b"\r\n chunked"), 400),
        ("Transfer-Encoding with CL", te(b"chunked\r\nContent-Length: 3"), 400),
    ])


def test_a_body_ferry_does_not_read_is_never_parsed_as_a_request_0_cl_and_expect():
    # 0.CL and Expect-based desyncs need the front end to answer early and
    # then read the unread body as the next request. ferry answers early
    # only with Connection: close and closes.
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for what, head in [
            ("respond route, Content-Length", b"POST /own HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"),
            ("respond route, GET with Content-Length", b"GET /own HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"),
            ("respond route, Expect: 100-continue",
             b"POST /own HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"),
        ]:
            with Client(f.port) as c:
                c.send(head % len(SMUGGLED))
                r = c.response()
                eq((r.status, r.body), (200, b"own reply"), what)
                eq(r.header("connection"), "close", f"{what}: Connection: close")
                try:
                    c.send(SMUGGLED)  # the body, late
                except OSError:
                    pass
                check(c.is_closed(), f"{what}: closed")
        eq(up.accepted, 0, "nothing reached the upstream")


def test_an_early_upstream_answer_to_expect_closes_and_the_body_is_never_a_request():
    def early(c):
        m = ft.read_message(c, is_request=True, head_only=True)
        c.upstream.record(m)
        c.send(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
        while c._fill():  # what else comes on this connection
            pass

    with Upstream(early) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                   % len(SMUGGLED))
            r = c.response()
            eq(r.status, 417, "the upstream's answer is relayed")
            eq(r.header("connection"), "close", "Connection: close")
            try:
                c.send(SMUGGLED)
            except OSError:
                pass
            check(c.is_closed(), "closed")
        up.wait_requests(1)
        eq([m.target for m in up.requests], ["/x"], "one request upstream")
        check(b"/smuggled" not in received_upstream(up), "the unread body never went upstream as a request")


def test_get_with_content_length_forwards_its_body_0_cl():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
            eq(c.response().status, 200, "GET with a body")
            eq(c.request(target="/b").status, 200, "the next request")
        eq([(m.target, m.body) for m in up.requests], [("/a", SMUGGLED), ("/b", b"")],
           "the body went upstream framed by its Content-Length, not as a request")


CHUNKED_HEAD = b"POST /chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_chunk_terminators_other_than_crlf_are_400_and_close():
    cases = [
        ("two bytes that are not CRLF after data", b"2\r\nabXX0\r\n\r\n"),
        ("bare LF after data", b"2\r\nab\n0\r\n\r\n"),
        ("bare CR after data", b"2\r\nab\r0\r\n\r\n"),
        ("data longer than its size", b"2\r\nabc\r\n0\r\n\r\n"),
        ("bare LF after the size", b"2\nab\r\n0\r\n\r\n"),
        ("bare LF after an extension", b"2;x=y\nab\r\n0\r\n\r\n"),
        ("bare LF after the last chunk", b"2\r\nab\r\n0\n\r\n"),
        ("bare LF ending the trailers", b"2\r\nab\r\n0\r\n\n"),
        ("trailer line ended by LF", b"2\r\nab\r\n0\r\nX-T: 1\n\r\n"),
        ("obs-fold in a trailer", b"2\r\nab\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
        ("control byte in an extension", b"2;a\x01\r\nab\r\n0\r\n\r\n"),
    ]
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for what, body in cases:
            up.requests.clear()
            before = len(received_upstream(up))
            with Client(f.port) as c:
                # The head first: it goes upstream before the body is read.
                c.send(CHUNKED_HEAD)
                deadline = time.monotonic() + ft.IO_TIMEOUT
                while len(received_upstream(up)) - before < len(b"POST /chunks") and time.monotonic() < deadline:
                    time.sleep(0.005)
                c.send(body + SMUGGLED)
                r = c.response()
                eq(r.status, 400, what)
                eq(r.header("connection"), "close", f"{what}: Connection: close")
                check(c.is_closed(), f"{what}: connection closed")
            # The upstream got the head and at most the chunks before the bad
            # bytes, never the terminating chunk nor the smuggled request: its
            # connection is closed mid-body.
            got = received_upstream(up)[before:]
            check(got.startswith(b"POST /chunks HTTP/1.1\r\n"), f"{what}: upstream got {got!r}")
            check(b"\r\n0\r\n\r\n" not in got, f"{what}: a complete body reached the upstream: {got!r}")
            check(b"/smuggled" not in got, f"{what}: the smuggled request reached the upstream")
            eq(up.requests, [], f"{what}: the upstream parsed no complete request")
        eq(ft.request(f.port, target="/after").status, 200, "a normal request afterwards")


def test_well_formed_chunked_bodies_still_pass_in_any_split():
    body = b"3;ext=1\r\nabc\r\n0000A\r\n0123456789\r\n0\r\nX-Sum: 13\r\n\r\n"
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for split in (1, 2, 5, len(body)):
            with Client(f.port) as c:
                c.send(CHUNKED_HEAD)
                for i in range(0, len(body), split):
                    c.send(body[i:i + split])
                eq(c.response().status, 200, f"split {split}")
            m = up.requests[-1]
            eq(m.body, b"abc0123456789", f"split {split}: body upstream")
            eq(m.trailers, [("X-Sum", "13")], f"split {split}: trailers upstream")


def test_chunk_terminators_from_the_upstream_never_reach_the_client_as_a_whole_response():
    # The head may already be relayed, so the honest signal is a cut
    # connection (no 502 can follow a 200 head).
    bodies = [
        ("two bytes that are not CRLF after data", b"2\r\nokXX0\r\n\r\n"),
        ("bare LF after data", b"2\r\nok\n0\r\n\r\n"),
        ("bare LF after the size", b"2\nok\r\n0\r\n\r\n"),
        ("bare LF ending the trailers", b"2\r\nok\r\n0\r\n\n"),
        ("trailer line ended by LF", b"2\r\nok\r\n0\r\nX: 1\n\r\n"),
    ]
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for what, body in bodies:
        for split in (False, True):
            closed = threading.Event()
            head_sent = threading.Event()
            go_on = threading.Event()

            def serve(c):
                c.upstream.record(c.read_request())
                if split:  # the head first, so ferry relays it before the body
                    c.send(head)
                    head_sent.set()
                    go_on.wait(ft.IO_TIMEOUT)
                    c.send(body)
                else:
                    c.send(head + body)
                while c._fill():
                    pass
                closed.set()  # ferry closed the upstream connection

            label = f"{what} ({'after the head' if split else 'with the head'})"
            with Upstream(serve) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
                with Client(f.port) as c:
                    c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
                    if split:
                        check(head_sent.wait(ft.IO_TIMEOUT), label)
                        m = ft.read_message(c, is_request=False, head_only=True)
                        eq(m.status, 200, f"{label}: the head was relayed")
                        go_on.set()
                    check(c.is_closed(), f"{label}: the client connection is cut")
                    check(b"0\r\n\r\n" not in c.received and b"2\r\nok" not in c.received,
                          f"{label}: no body byte and no end reached the client: {c.received!r}")
                check(closed.wait(ft.IO_TIMEOUT), f"{label}: the upstream connection is closed, never reused")


def test_trailers_never_carry_framing_routing_or_credentials_either_way():
    # (llhttp itself refuses Content-Length and Transfer-Encoding in request
    # trailers with 400; they are sent in the response's here.)
    def respond(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: x-hop\r\n\r\n"
                   b"2\r\nok\r\n0\r\nX-Resp-Sum: 1\r\nSet-Cookie: s=evil\r\nAuthorization: Basic x\r\n"
                   b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\nHost: evil\r\nCookie: c=1\r\n"
                   b"X-Hop: 1\r\nKeep-Alive: timeout=1\r\nLocation: /evil\r\n\r\n")

    with Upstream(respond) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: x-hop\r\n\r\n"
                   b"4\r\nbody\r\n0\r\nX-Req-Sum: 7\r\nAuthorization: Basic eA==\r\nCookie: s=1\r\n"
                   b"Proxy-Authorization: y\r\nHost: evil\r\n"
                   b"X-Hop: 1\r\nTE: trailers\r\nConnection: close\r\n\r\n")
            r = c.response()
            eq(r.body, b"ok", "response body")
            eq(r.trailers, [("X-Resp-Sum", "1")], "response trailers")
        m = up.requests[0]
        eq(m.body, b"body", "request body")
        eq(m.trailers, [("X-Req-Sum", "7")], "request trailers")


def parse_date(v):
    check(v and v.endswith(" GMT") and len(v) == 29, f"IMF-fixdate: {v!r}")
    t = email.utils.parsedate_to_datetime(v).timestamp()
    check(abs(t - time.time()) < 5, f"the current time: {v}")


def test_responses_without_date_get_one_and_dated_ones_keep_theirs():
    upstream_date = "Sun, 06 Nov 1994 08:49:37 GMT"

    def respond(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            c.upstream.record(m)
            if m.target == "/dated":
                c.respond(200, "d", headers=(("Date", upstream_date),))
            else:
                c.respond(200, "u")

    with Upstream(respond) as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            r = c.request(target="/undated")
            eq(len(r.header_all("date")), 1, "exactly one Date")
            parse_date(r.header("date"))
            r = c.request(target="/dated")
            eq(r.header_all("date"), [upstream_date], "the upstream's Date is kept, not doubled")
            r = c.request(target="/own")
            eq(r.body, b"own reply")
            parse_date(r.header("date"))
            r = c.request(target="/nothing", headers=(("Host", "u@t"),))
            eq(r.status, 400)
            parse_date(r.header("date"))
        eq(len(up.requests), 2, "two requests went upstream")
        check(all(m.header("date") is None for m in up.requests), "no Date is added to requests")


ft.main(globals())
