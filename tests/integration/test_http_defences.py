"""Request smuggling and resource defences (SPEC §4): every malformed or
oversized request gets its status, the connection is closed, and the
upstream never sees a second (smuggled) request."""
import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check

CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "-"}
limits:
  max_request_header_bytes: 4k
  max_request_body_bytes: 1k
upstreams:
  up:
    servers:
      - address: 127.0.0.1:{port:up}
routes:
  - upstream: up
"""

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


def expect_rejected(f, up, data, status, what, upstream_max=0):
    """Sends data (followed by a smuggled request), expects `status`, a
    close, and at most upstream_max requests upstream, none of them the
    smuggled one."""
    with Client(f.port) as c:
        c.send(data + SMUGGLED)
        r = c.response()
        eq(r.status, status, what)
        check(r.header("x-request-id"), f"{what}: the error carries the request id")
        eq(r.header("connection"), "close", f"{what}: Connection: close")
        check(c.is_closed(), f"{what}: connection closed")
        eq(c.buf, b"", f"{what}: nothing after the error response")
    seen = [m.target for m in up.requests]
    check("/smuggled" not in seen, f"{what}: the smuggled request reached the upstream: {seen}")
    check(len(seen) <= upstream_max, f"{what}: upstream saw {seen}")


def run_cases(cases):
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for what, data, status in cases:
            up.requests.clear()
            expect_rejected(f, up, data, status, what)
        # ferry is still healthy afterwards
        eq(ft.request(f.port, target="/ok").status, 200, "a normal request afterwards")


def test_content_length_with_transfer_encoding_is_400():
    run_cases([
        ("CL then TE", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE then CL", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n", 400),
    ])


def test_differing_duplicate_content_length_is_400():
    run_cases([
        ("two Content-Length headers", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc", 400),
        ("Content-Length list", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 40\r\n\r\nabc", 400),
        ("signed Content-Length", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400),
    ])


def test_transfer_encoding_not_ending_in_chunked_is_400_and_unknown_codings_501():
    run_cases([
        ("TE gzip", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", 501),
        ("TE identity", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\nabc", 501),
        ("TE gzip, deflate", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, deflate\r\n\r\nabc", 501),
        ("TE chunked, gzip", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        ("TE chunked twice", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("TE x-custom, chunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: x-custom, chunked\r\n\r\n0\r\n\r\n", 501),
    ])


def test_header_syntax_llhttp_tolerates_is_400():
    run_cases([
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400),
        ("obs-fold with tab", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
        ("tab before colon", b"GET / HTTP/1.1\r\nHost\t: t\r\n\r\n", 400),
        ("empty field name", b"GET / HTTP/1.1\r\nHost: t\r\n: x\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400),
        ("CR in value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400),
        ("bare LF in the request line", b"GET / HTTP/1.1\nHost: t\r\n\r\n", 400),
        ("bare LF after a field", b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400),
        ("bare LF ending the head", b"GET / HTTP/1.1\r\nHost: t\r\n\n", 400),
        ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ])


def test_bad_chunk_framing_is_400_and_the_upstream_sees_only_the_cut_request():
    cases = [
        ("non-hex chunk size", b"zz\r\nab\r\n0\r\n\r\n"),
        ("chunk size overflow", b"fffffffffffffffff1\r\nab\r\n0\r\n\r\n"),
        ("negative chunk size", b"-1\r\nab\r\n0\r\n\r\n"),
        ("bare LF after chunk size", b"2\nab\r\n0\r\n\r\n"),
        ("chunk data overrun", b"2\r\nabX0\r\n\r\n"),
        ("chunk extension over 1 KiB", b"2;" + b"e" * 2000 + b"\r\nab\r\n0\r\n\r\n"),
    ]
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        for what, body in cases:
            up.requests.clear()
            with Client(f.port) as c:
                c.send(b"POST /chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body + SMUGGLED)
                r = c.response()
                eq(r.status, 400, what)
                check(c.is_closed(), f"{what}: connection closed")
            # The head may have gone upstream already; its connection is then
            # closed mid-body, so the upstream cannot read a complete request.
            check(not any(m.target == "/smuggled" for m in up.requests), f"{what}: smuggled request upstream")
            check(all(m.target == "/chunks" for m in up.requests), f"{what}: upstream saw {up.requests}")
        eq(ft.request(f.port, target="/ok").status, 200, "a normal request afterwards")


def test_request_line_and_head_over_the_limit_are_414_and_431():
    run_cases([
        ("long target", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        ("long header", b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n", 431),
        ("many small headers", b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(600)) + b"\r\n", 431),
    ])


def test_header_count_over_the_bound_is_431():
    # 200 one-byte headers stay under max_request_header_bytes (4k) but over
    # the 128-field bound.
    head = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"x%d:\r\n" % i for i in range(200)) + b"\r\n"
    check(len(head) < 4096, "the head is under the byte limit")
    run_cases([("200 header fields", head, 431)])


def test_declared_body_over_the_limit_is_413_before_anything_goes_upstream():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
            r = c.response()  # answered without sending the body
            eq(r.status, 413, "status")
            check(c.is_closed(), "closed")
        eq(up.accepted, 0, "no upstream connection was even opened")
        f.wait_access_log(r'"POST /big HTTP/1.1" 413 ')


def test_chunked_body_over_the_limit_is_413_and_the_upstream_request_is_cut():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        with Client(f.port) as c:
            c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                c.send(b"200\r\n" + b"x" * 512 + b"\r\n")
            r = c.response()
            eq(r.status, 413, "status")
            check(c.is_closed(), "closed")
        f.wait_access_log(r'"POST /big HTTP/1.1" 413 ')
        eq(len(up.requests), 0, "the upstream never got a complete request")


def test_body_within_the_limit_passes():
    with Upstream() as up, Ferry(CONFIG, ports={"up": up.port}) as f:
        eq(ft.request(f.port, method="POST", target="/small", body=b"y" * 1024).status, 200, "status")
        eq(up.requests[0].body, b"y" * 1024, "body upstream")


if __name__ == "__main__":
    ft.main(globals())
