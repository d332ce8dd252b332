"""listeners[].tls (SPEC §2, §7; issue 14): TLS 1.2 and 1.3, ALPN
http/1.1, SNI choosing among certificates by their SAN names (wildcards as
in RFC 6125, the first as default), min_version, X-Forwarded-Proto https;
`ferry -t` checks of the files; bad input closing only its connection;
SIGHUP re-reading certificates. Certificates are made at test time."""
import os
import signal
import socket
import ssl
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, check, eq
from tlsutil import CA, TLSClient, client_context


def config(ca, certs, extra_tls="", tail=""):
    items = "".join(f"        - cert: {c}\n          key: {k}\n" for c, k in certs)
    return f"""
listeners:
  - address: 127.0.0.1:{{port:https}}
    tls:
      certificates:
{items}{extra_tls}
  - address: 127.0.0.1:{{port:http}}
workers: 1
timeouts: {{client_header: 1s}}
upstreams:
  up: {{servers: [{{address: 127.0.0.1:{{port:up}}}}]}}
routes:
  - upstream: up
{tail}"""


def closed_after_alert(c):
    """The peer closes, having sent at most a TLS alert record."""
    c.sock.settimeout(ft.IO_TIMEOUT)
    got = b""
    while True:
        try:
            d = c.sock.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        got += d
    check(got == b"" or got[:1] == b"\x15", f"only an alert before closing, got {got[:100]!r}")
    return True


def get(c, host="a.test"):
    r = c.request(headers=(("Host", host),))
    eq(r.status, 200, "status over TLS")
    return r


def test_sni_picks_the_certificate_and_the_first_is_the_default():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    wild = ca.issue("wild", dns=["*.wild.test"])
    with Upstream() as up, Ferry(config(ca, [a, wild]), ports={"up": up.port}) as f:
        ctx = client_context(ca)
        with TLSClient(f.ports["https"], ctx, "a.test") as c:
            eq(c.peer_names(), ["a.test"], "certificate for SNI a.test")
            get(c)
            eq(c.sock.selected_alpn_protocol(), "http/1.1", "ALPN")
            eq(up.wait_requests(1)[0].header("X-Forwarded-Proto"), "https",
               "X-Forwarded-Proto on a TLS listener")
        with TLSClient(f.ports["https"], ctx, "x.wild.test") as c:
            eq(c.peer_names(), ["*.wild.test"], "wildcard certificate for x.wild.test")
            get(c, "x.wild.test")
        # a wildcard covers one label only: a.b.wild.test gets the default
        nover = client_context(None)
        for name in ("a.b.wild.test", "wild.test", "other.test", None):
            with TLSClient(f.ports["https"], nover, name) as c:
                der = c.sock.getpeercert(binary_form=True)
                pem = ssl.DER_cert_to_PEM_cert(der)
                eq(pem.strip(), open(a[0]).read().strip(), f"default certificate for SNI {name}")
                get(c)
        # the plain listener beside it still speaks plain HTTP
        eq(ft.request(f.ports["http"]).status, 200, "plain listener")
        eq(up.wait_requests(2)[-1].header("X-Forwarded-Proto"), "http", "plain: http")


def test_access_log_and_metrics_show_tls():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    cfg = config(ca, [a]).replace("workers: 1", """workers: 1
access_log: {path: "-", format: json}
admin: {address: 127.0.0.1:{port:admin}}""")
    with Upstream() as up, Ferry(cfg, ports={"up": up.port}) as f:
        with TLSClient(f.ports["https"], client_context(ca), "a.test") as c:
            c.request(headers=(("Host", "a.test"), ("X-Request-Id", "tls-log-1")))
        with ft.Client(f.ports["https"]) as c:
            c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            closed_after_alert(c)
        import json
        e = json.loads(f.wait_access_log('"request_id":"tls-log-1"'))
        eq(e.get("tls_version"), "TLSv1.3", "access log tls_version")
        check(e.get("tls_cipher", "").startswith("TLS_"), f"access log tls_cipher: {e}")
        eq(e.get("sni"), "a.test", "access log sni")
        ft.request(f.ports["http"], headers=(("Host", "a.test"), ("X-Request-Id", "plain-log-1")))
        e = json.loads(f.wait_access_log('"request_id":"plain-log-1"'))
        check("tls_version" not in e, f"no TLS fields on a plain listener: {e}")
        m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
        lab = f'listener="127.0.0.1:{f.ports["https"]}"'
        check(f'ferry_tls_handshakes_total{{{lab},result="ok"}} 1\n' in m, f"handshakes ok: {m}")
        check(f'ferry_tls_handshakes_total{{{lab},result="failed"}} 1\n' in m, "handshakes failed")
        check(f'127.0.0.1:{f.ports["http"]}' not in m.split("ferry_tls_handshakes_total", 1)[1]
              .split("# HELP", 1)[0], "no TLS counters for the plain listener")
    # combined: the same three fields after ms=, on the TLS listener only
    with Upstream() as up, Ferry(cfg.replace("format: json", "format: combined"),
                                 ports={"up": up.port}) as f:
        with TLSClient(f.ports["https"], client_context(ca), "a.test") as c:
            c.request(headers=(("Host", "a.test"), ("X-Request-Id", "tls-log-2")))
        with TLSClient(f.ports["https"], client_context(None), None) as c:
            c.request(headers=(("Host", "a.test"), ("X-Request-Id", "tls-log-3")))
        ft.request(f.ports["http"], headers=(("Host", "a.test"), ("X-Request-Id", "plain-log-2")))
        import re
        line = f.wait_access_log("rid=tls-log-2 ")
        check(re.search(r" ms=\d+ tls_version=TLSv1\.3 tls_cipher=TLS_\S+ sni=a\.test$", line),
              f"combined TLS fields: {line!r}")
        line = f.wait_access_log("rid=tls-log-3 ")
        check(re.search(r" tls_version=TLSv1\.3 tls_cipher=TLS_\S+ sni=-$", line),
              f"combined without SNI: {line!r}")
        line = f.wait_access_log("rid=plain-log-2 ")
        check("tls_version=" not in line, f"no TLS fields on a plain listener: {line!r}")


def not_after(cert):
    """The certificate's notAfter as Unix seconds, from openssl x509."""
    import subprocess
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert],
                         capture_output=True, text=True, check=True).stdout.strip()
    return int(ssl.cert_time_to_seconds(out.split("=", 1)[1]))


def expiry_rows(f):
    """ferry_tls_certificate_expiry_timestamp_seconds rows: {(listener, name): value}."""
    import re
    m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
    check("# TYPE ferry_tls_certificate_expiry_timestamp_seconds gauge\n" in m, "gauge declared")
    return {(l, n): int(v) for l, n, v in re.findall(
        r'^ferry_tls_certificate_expiry_timestamp_seconds\{listener="([^"]*)",name="([^"]*)"\} '
        r'(\d+)$', m, re.M)}


def test_certificate_expiry_gauge_follows_reloads():
    ca = CA()
    a = ca.issue("a", dns=["a.test"], days=30)
    b = ca.issue("b", dns=["b.test"], days=20)
    nocn = ca.issue("nocn", dns=["san-only.test", "second.test"], days=25, cn="")
    cfg = config(ca, [a, b]).replace("workers: 1", "workers: 1\nadmin: {address: 127.0.0.1:{port:admin}}")
    with Upstream() as up, Ferry(cfg, ports={"up": up.port}) as f:
        lis = f"127.0.0.1:{f.ports['https']}"
        rows = expiry_rows(f)
        eq(rows, {(lis, "a"): not_after(a[0]), (lis, "b"): not_after(b[0])},
           "one row per certificate of the TLS listener, valued at its notAfter")
        check(not_after(a[0]) != not_after(b[0]), "the two certificates expire apart")
        # SIGHUP with the first certificate swapped for one without a CN
        # (named by its first SAN): the old row goes
        text = open(f.config_path).read()
        with open(f.config_path, "w") as fh:
            fh.write(text.replace(a[0], nocn[0]).replace(a[1], nocn[1]))
        f.signal(signal.SIGHUP)
        f.wait_stderr(r"configuration generation 2 published")
        eq(expiry_rows(f), {(lis, "san-only.test"): not_after(nocn[0]), (lis, "b"): not_after(b[0])},
           "after the reload: the new certificate's row, the old one gone")
        # a bad reload keeps the rows of the configuration still serving
        with open(f.config_path, "w") as fh:
            fh.write(text.replace(a[1], b[1]))
        f.signal(signal.SIGHUP)
        f.wait_stderr(r"does not match the certificate")
        eq(expiry_rows(f), {(lis, "san-only.test"): not_after(nocn[0]), (lis, "b"): not_after(b[0])},
           "after a failed reload: unchanged")


def test_tls12_and_13_and_min_version():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    with Upstream() as up, Ferry(config(ca, [a]), ports={"up": up.port}) as f:
        for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            ctx = client_context(ca, min_version=v, max_version=v)
            with TLSClient(f.ports["https"], ctx, "a.test") as c:
                eq(c.sock.version(), name, "negotiated version")
                get(c)
                get(c)  # keep-alive
    with Upstream() as up, Ferry(config(ca, [a], '      min_version: "1.3"\n'),
                                 ports={"up": up.port}) as f:
        ctx = client_context(ca, max_version=ssl.TLSVersion.TLSv1_2)
        try:
            TLSClient(f.ports["https"], ctx, "a.test")
            raise ft.TestFailure("a TLS 1.2 client was accepted with min_version 1.3")
        except ssl.SSLError:
            pass
        with TLSClient(f.ports["https"], client_context(ca), "a.test") as c:
            eq(c.sock.version(), "TLSv1.3", "1.3 with min_version 1.3")
            get(c)


def test_large_bodies_both_ways():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    body = bytes(range(256)) * 4096  # 1 MiB, several records and read blocks

    def handler(c):
        while True:
            m = c.read_request()
            if m is None:
                return
            up.record(m)
            c.respond(200, body=m.body + body)

    with Upstream(handler) as up, Ferry(config(ca, [a]), ports={"up": up.port}) as f:
        with TLSClient(f.ports["https"], client_context(ca), "a.test") as c:
            r = c.request("POST", "/up", headers=(("Host", "a.test"),), body=body)
            eq(r.status, 200, "status")
            check(r.body == body + body, f"body of {len(r.body)} bytes came back intact")
            get(c)


def test_bad_input_closes_only_that_connection():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    with Upstream() as up, Ferry(config(ca, [a]), ports={"up": up.port},
                                 args=("-v",)) as f:
        keep = TLSClient(f.ports["https"], client_context(ca), "a.test")
        get(keep)
        # plain HTTP on the TLS port
        with ft.Client(f.ports["https"]) as c:
            c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            check(closed_after_alert(c), "plain HTTP on a TLS port is closed")
        # garbage, then a truncated ClientHello
        with ft.Client(f.ports["https"]) as c:
            c.send(b"\x16\x03\x01\x00\x05garbagegarbage")
            check(closed_after_alert(c), "a garbage handshake is closed")
        with ft.Client(f.ports["https"]) as c:
            c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            t0 = time.monotonic()
            check(closed_after_alert(c), "a stalled handshake is closed")
            check(time.monotonic() - t0 < 5, "closed at client_header (1s)")
        # a ClientHello on the plain port: answered as a bad request, closed
        raw = socket.create_connection(("127.0.0.1", f.ports["http"]))
        try:
            client_context(ca).wrap_socket(raw, server_hostname="a.test")
            raise ft.TestFailure("a TLS handshake succeeded on the plain port")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
        finally:
            raw.close()
        f.wait_stderr(r"tls: handshake failed")
        # a renegotiation attempt (TLS 1.2) is refused and ends that connection
        import subprocess
        p = subprocess.run(["openssl", "s_client", "-tls1_2", "-connect",
                            f"127.0.0.1:{f.ports['https']}", "-servername", "a.test"],
                           input=b"R\n", capture_output=True, timeout=20)
        out = (p.stdout + p.stderr).decode(errors="replace")
        check("RENEGOTIATING" in out and "no renegotiation" in out,
              f"renegotiation refused: {out[-600:]}")
        f.wait_stderr(r"tls: read failed")
        get(keep)  # the established connection is unaffected
        keep.close()


def test_sighup_swaps_the_certificate_and_keeps_connections():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    b = ca.issue("b", dns=["a.test", "b.test"])
    with Upstream() as up, Ferry(config(ca, [a]), ports={"up": up.port}) as f:
        ctx = client_context(ca)
        keep = TLSClient(f.ports["https"], ctx, "a.test")
        get(keep)
        eq(keep.peer_names(), ["a.test"], "first certificate")
        text = open(f.config_path).read()
        # a bad file keeps the old configuration serving
        with open(f.config_path, "w") as fh:
            fh.write(text.replace(a[1], b[1]))  # key of another certificate
        f.signal(signal.SIGHUP)
        f.wait_stderr(r"does not match the certificate")
        with TLSClient(f.ports["https"], ctx, "a.test") as c:
            eq(c.peer_names(), ["a.test"], "after a bad reload: old certificate")
            get(c)
        with open(f.config_path, "w") as fh:
            fh.write(text.replace(a[0], b[0]).replace(a[1], b[1]))
        f.signal(signal.SIGHUP)
        f.wait_stderr(r"configuration generation 2 published")
        with TLSClient(f.ports["https"], ctx, "a.test") as c:
            eq(c.peer_names(), ["a.test", "b.test"], "after reload: the new certificate")
            get(c)
        get(keep)  # the connection from before keeps its session
        get(keep)
        keep.close()


def test_redirect_https_on_a_plain_listener():
    with Upstream() as up, Ferry("""
listeners:
  - address: 127.0.0.1:{port:http}
    redirect_https: 8443
  - address: 127.0.0.1:{port:std}
    redirect_https: 443
workers: 1
upstreams:
  up: {servers: [{address: 127.0.0.1:{port:up}}]}
routes:
  - upstream: up
""", ports={"up": up.port}) as f:
        with ft.Client(f.ports["http"]) as c:
            r = c.request(target="/a/b?x=1", headers=(("Host", "shop.test:80"),))
            eq(r.status, 308, "redirect status")
            eq(r.header("Location"), "https://shop.test:8443/a/b?x=1", "Location keeps host and target")
            r = c.request(target="/next", headers=(("Host", "shop.test"),))
            eq(r.header("Location"), "https://shop.test:8443/next", "keep-alive: second redirect")
        r = ft.request(f.ports["std"], target="/", headers=(("Host", "shop.test"),))
        eq(r.header("Location"), "https://shop.test/", "port 443 is left out")
        eq(len(up.requests), 0, "nothing reached the upstream")


def test_ticket_resumption_across_two_processes_sharing_ticket_keys():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    keys = ca.path("tickets.key")
    with open(keys, "wb") as fh:
        fh.write(os.urandom(160))  # two keys: the first encrypts
    extra = f"      ticket_keys: {keys}\n"
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        with Upstream() as up, Ferry(config(ca, [a], extra), ports={"up": up.port}) as f1, \
                Ferry(config(ca, [a], extra), ports={"up": up.port}) as f2:
            ctx = client_context(ca, min_version=v, max_version=v)
            with TLSClient(f1.ports["https"], ctx, "a.test") as c:
                get(c)
                session = c.sock.session
                check(not c.sock.session_reused, f"{v}: first connection is a full handshake")
            check(session is not None and session.has_ticket, f"{v}: a ticket was issued")
            with TLSClient(f2.ports["https"], ctx, "a.test", session=session) as c:
                get(c)
                check(c.sock.session_reused, f"{v}: the other process resumed the session")
    # a process with other keys cannot resume; it falls back to a full handshake
    other = ca.path("other.key")
    with open(other, "wb") as fh:
        fh.write(os.urandom(80))
    with Upstream() as up, Ferry(config(ca, [a], extra), ports={"up": up.port}) as f1, \
            Ferry(config(ca, [a], f"      ticket_keys: {other}\n"), ports={"up": up.port}) as f2:
        ctx = client_context(ca)
        with TLSClient(f1.ports["https"], ctx, "a.test") as c:
            get(c)
            session = c.sock.session
        with TLSClient(f2.ports["https"], ctx, "a.test", session=session) as c:
            get(c)
            check(not c.sock.session_reused, "other keys: full handshake")
    # a bad key file is an error at its key
    with open(other, "wb") as fh:
        fh.write(os.urandom(81))
    rc, out, _ = ft.ferry_check(config(ca, [a], f"      ticket_keys: {other}\n").replace(
        "{port:https}", "18443").replace("{port:http}", "18080").replace("{port:up}", "1"))
    check(rc != 0 and "ticket_keys" in out and "81 bytes" in out, f"bad ticket key file: {out}")


def test_session_cache_resumes_without_tickets():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    with Upstream() as up, Ferry(config(ca, [a], "      session_tickets: false\n"),
                                 ports={"up": up.port}) as f:
        ctx = client_context(ca, max_version=ssl.TLSVersion.TLSv1_2)
        with TLSClient(f.ports["https"], ctx, "a.test") as c:
            get(c)
            session = c.sock.session
        check(not session.has_ticket, "no ticket with session_tickets: false")
        with TLSClient(f.ports["https"], ctx, "a.test", session=session) as c:
            get(c)
            check(c.sock.session_reused, "resumed from the session cache")


def test_connection_close_ends_with_close_notify_and_the_session_resumes():
    """A response with Connection: close ends with close_notify; without it
    an OpenSSL client sees a truncation and drops the session."""
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    with Upstream() as up, Ferry(config(ca, [a]), ports={"up": up.port}) as f:
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context(ca, min_version=v, max_version=v)
            session = None
            for attempt in ("first", "second"):
                raw = socket.create_connection(("127.0.0.1", f.ports["https"]), timeout=ft.IO_TIMEOUT)
                s = ctx.wrap_socket(raw, server_hostname="a.test", session=session,
                                    suppress_ragged_eofs=False)
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                got = b""
                try:
                    while True:
                        d = s.recv(65536)  # b"" only at close_notify
                        if not d:
                            break
                        got += d
                except ssl.SSLEOFError as e:
                    check(False, f"{v} {attempt}: the connection ended without close_notify: {e}")
                check(got.startswith(b"HTTP/1.1 200"), f"{v} {attempt}: response {got[:40]!r}")
                if attempt == "second":
                    check(s.session_reused, f"{v}: the session of a closed connection resumes")
                session = s.session
                s.close()


def mtls_client(ca, cert=None):
    ctx = client_context(ca)
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx


def test_mtls_require_and_optional_and_the_xfcc_header():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    cli = ca.issue("client", uris=["spiffe://test/client", "https://second.test/"], cn="client one")
    other = CA("other-ca")
    stranger = other.issue("stranger", cn="stranger")
    forged = (("Host", "a.test"), ("X-Forwarded-Client-Cert", "Hash=forged"))
    for mode in ("require", "optional"):
        extra = f"      client_ca: {ca.pem}\n      client_verify: {mode}\n"
        with Upstream() as up, Ferry(config(ca, [a], extra), ports={"up": up.port}) as f:
            with TLSClient(f.ports["https"], mtls_client(ca, cli), "a.test") as c:
                eq(c.request(headers=forged).status, 200, f"{mode}: with a certificate")
            xfcc = up.wait_requests(1)[0].header_all("X-Forwarded-Client-Cert")
            eq(len(xfcc), 1, f"{mode}: one X-Forwarded-Client-Cert, the forged one dropped")
            import hashlib
            der = ssl.PEM_cert_to_DER_cert(open(cli[0]).read())
            want = (f'Hash={hashlib.sha256(der).hexdigest()};Subject="O=Ferry Test,CN=client one";'
                    "URI=spiffe://test/client")
            eq(xfcc[0], want, f"{mode}: X-Forwarded-Client-Cert")
            for who, ctx in (("no certificate", mtls_client(ca)),
                             ("a certificate of another CA", mtls_client(ca, stranger))):
                refused = mode == "require" or who != "no certificate"
                try:
                    with TLSClient(f.ports["https"], ctx, "a.test") as c:
                        r = c.request(headers=forged)
                        eq(r.status, 200, f"{mode}: {who}")
                        check(not refused, f"{mode}: {who} was served")
                except (ssl.SSLError, ft.Closed, ConnectionResetError, BrokenPipeError):
                    check(refused, f"{mode}: {who} was refused")
            if mode == "optional":
                m = up.wait_requests(2)[-1]
                eq(m.header_all("X-Forwarded-Client-Cert"), [],
                   "optional without a certificate: no header, the forged one dropped")
    # on a plain listener the header is stripped too
    with Upstream() as up, Ferry(config(ca, [a]), ports={"up": up.port}) as f:
        eq(ft.request(f.ports["http"], headers=forged).status, 200, "plain")
        eq(up.wait_requests(1)[0].header_all("X-Forwarded-Client-Cert"), [], "stripped on plain")


def test_inspector_shows_the_connections_tls():
    import json
    import subprocess
    import threading
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    cli = ca.issue("client", cn="client one")
    extra = f"      client_ca: {ca.pem}\n      client_verify: optional\n"
    cfg = config(ca, [a], extra).replace(
        "workers: 1", "workers: 1\nadmin: {address: 127.0.0.1:{port:admin}}").replace(
        "  - upstream: up\n", "  - upstream: up\n    inspect: true\n")
    with Upstream() as up, Ferry(cfg, ports={"up": up.port}) as f:
        # `ferry inspect` follows the stream and prints each exchange
        p = subprocess.Popen([ft.FERRY_BIN, "inspect", "--admin", f"127.0.0.1:{f.ports['admin']}"],
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

        def wait_for(text, what):
            with cv:
                ok = cv.wait_for(lambda: text in "".join(l for l in lines if l) or None in lines,
                                 ft.IO_TIMEOUT)
                out = "".join(l for l in lines if l)
            check(ok and text in out, f"{what}: terminal output so far: {out!r}")

        threading.Thread(target=pump, daemon=True).start()
        try:
            wait_for("following", "the stream is followed")
            with TLSClient(f.ports["https"], mtls_client(ca, cli), "a.test") as c:
                get(c, "a.test")
                get(c, "a.test")  # keep-alive: the same connection's details again
                cipher = c.sock.cipher()[0]
            with TLSClient(f.ports["https"], client_context(None, alpn=None), None) as c:
                get(c, "plain.test")  # no SNI, no ALPN, no client certificate
            eq(ft.request(f.ports["http"]).status, 200, "plain listener")
            # the fourth exchange printed by the stream is stored
            wait_for("#4 ", "the four exchanges reached the inspector")
            recs = json.loads(ft.admin_request(
                f.ports["admin"], target="/inspect/requests").body)["requests"]
            eq(len(recs), 4, "four exchanges captured")
            want = {"version": "TLSv1.3", "cipher": cipher, "sni": "a.test", "alpn": "http/1.1",
                    "client_subject": "O=Ferry Test,CN=client one"}
            plain, bare, second, first = recs  # newest first
            eq(first["tls"], want, "TLS details with SNI, ALPN and a client certificate")
            eq(second["tls"], want, "the same on the keep-alive request")
            eq(bare["tls"], {"version": "TLSv1.3", "cipher": bare["tls"]["cipher"], "sni": None,
                             "alpn": None, "client_subject": None}, "no SNI, ALPN or certificate")
            eq(plain["tls"], None, "a plain listener's exchange has no TLS")
            har = json.loads(ft.admin_request(f.ports["admin"], target="/inspect/har").body)
            entries = har["log"]["entries"]
            eq(entries[0]["_ferry"]["tls"], want, "HAR: the same details under _ferry")
            check(entries[0]["request"]["url"].startswith("https://a.test"),
                  f"HAR: an https URL: {entries[0]['request']['url']}")
            eq(entries[-1]["_ferry"]["tls"], None, "HAR: none for the plain listener")
            check(entries[-1]["request"]["url"].startswith("http://"), "HAR: plain is http")
            wait_for(f"  tls TLSv1.3 {cipher}  sni a.test  alpn http/1.1  client certificate "
                     "O=Ferry Test,CN=client one\n", "ferry inspect prints the TLS details")
        finally:
            p.terminate()
            p.wait(timeout=10)
            p.stdout.close()
            p.stderr.close()


def check_error(cfg, pattern, what):
    rc, out, path = ft.ferry_check(cfg)
    check(rc != 0, f"{what}: ferry -t should fail: {out}")
    import re
    check(re.search(pattern, out), f"{what}: expected {pattern!r} in: {out}")
    return out


def test_ferry_t_checks_the_files():
    ca = CA()
    a = ca.issue("a", dns=["a.test"])
    b = ca.issue("b", dns=["b.test"])
    up = "127.0.0.1:1"

    def cfg(certs, extra=""):
        return config(ca, certs, extra).replace("{port:https}", "18443").replace(
            "{port:http}", "18080").replace("{port:up}", "1")

    rc, out, _ = ft.ferry_check(cfg([a]))
    eq(rc, 0, f"good certificates pass: {out}")
    # the key's position: line 6 is "cert:", line 7 "key:" of the first item
    check_error(cfg([(a[0] + ".missing", a[1])]),
                r"proxy.yaml:6:\d+: listeners\[0\].tls.certificates\[0\].cert: cannot read .*missing",
                "unreadable certificate")
    check_error(cfg([(a[0], b[1])]),
                r"proxy.yaml:7:\d+: listeners\[0\].tls.certificates\[0\].key: .*does not match",
                "key not matching the certificate")
    # chain out of order: the CA first, then the leaf
    bad = ca.path("bad-chain.pem")
    with open(bad, "w") as fh:
        fh.write(open(a[0]).read() + open(b[0]).read())
    check_error(cfg([(bad, a[1])]), r"proxy.yaml:6:\d+: .*out of order", "chain out of order")
    expired = ca.issue("old", dns=["a.test"], start="20200101000000Z", end="20200201000000Z")
    check_error(cfg([expired]), r"proxy.yaml:6:\d+: .*expired", "expired certificate")
    soon = ca.issue("soon", dns=["a.test"], days=5)
    rc, out, _ = ft.ferry_check(cfg([soon]))
    eq(rc, 0, f"a certificate expiring in 5 days passes with a warning: {out}")
    check("warning" in out and "expires in" in out, f"expiry warning: {out}")
    check_error(cfg([a], '      ciphers: "NOPE-NOTHING"\n'), r"ciphers: no usable cipher",
                "bad cipher list")
    check_error(cfg([a], '      min_version: "1.1"\n'), r"min_version", "min_version 1.1")
    check_error(cfg([a], '      bogus: 1\n'), r"unknown key \"bogus\"", "unknown key")


if __name__ == "__main__":
    ft.main(globals())
