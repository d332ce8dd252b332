"""upstreams.NAME.tls (SPEC §2, §7; issue 14): ferry speaks TLS to servers,
verifying them by default against `ca` (or the system store) and
`server_name` (or the server's host); a failed verification is a 502 with
the reason in the error log and no request sent; pooled TLS connections
are reused. Certificates are made at test time."""
import re
import ssl

import ferrytest as ft
from ferrytest import Ferry, Upstream, check, eq
from test_inspect import open_stream
from tlsutil import CA


class TLSUpstream(Upstream):
    """An upstream that speaks HTTPS with cert, counting handshakes."""

    def __init__(self, cert, client_ca=None, **kw):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert[0], cert[1])
        if client_ca:
            self.ctx.load_verify_locations(client_ca)
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.handshakes = 0
        self.peer_subjects = []
        super().__init__(handler=self.serve_tls, **kw)

    def serve_tls(self, c):
        c.sock = self.ctx.wrap_socket(c.sock, server_side=True)
        with self._cv:
            self.handshakes += 1
            pc = c.sock.getpeercert()
            if pc:
                self.peer_subjects.append(pc.get("subject"))
        self.serve_keepalive(c)


def config(tls):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
upstreams:
  up:
    servers: [{{address: 127.0.0.1:{{port:up}}}}]
    retries: 0
    tls:
{tls}
routes:
  - upstream: up
"""


def test_verified_upstream_and_pooled_reuse():
    ca = CA()
    srv = ca.issue("srv", dns=["api.internal"])
    with TLSUpstream(srv) as up, Ferry(config(
            f"      ca: {ca.pem}\n      server_name: api.internal\n"),
            ports={"up": up.port}) as f:
        with ft.Client(f.port) as c:
            for i in range(3):
                r = c.request(target=f"/r{i}")
                eq(r.status, 200, f"request {i} over upstream TLS")
                eq(r.body, b"ok from up", "body from the TLS upstream")
        up.wait_requests(3)
        eq(up.handshakes, 1, "one TLS connection reused for three requests")
        eq(up.requests[0].target, "/r0", "request reached the server")


def test_wrong_ca_and_wrong_name_are_502_with_the_reason_logged():
    ca = CA()
    other = CA("other-ca")
    srv = ca.issue("srv", dns=["api.internal"])
    for tls, what in ((f"      ca: {other.pem}\n      server_name: api.internal\n", "wrong CA"),
                      (f"      ca: {ca.pem}\n      server_name: wrong.internal\n", "wrong name"),
                      (f"      server_name: api.internal\n", "system store")):
        with TLSUpstream(srv) as up, Ferry(config(tls), ports={"up": up.port}) as f:
            r = ft.request(f.port)
            eq(r.status, 502, f"{what}: status")
            f.wait_stderr(r"upstream 127\.0\.0\.1:\d+: TLS handshake failed: certificate verify "
                          r"failed")
            eq(len(up.requests), 0, f"{what}: no request reached the server")
    # verify: false accepts it
    with TLSUpstream(srv) as up, Ferry(config("      verify: false\n"),
                                       ports={"up": up.port}) as f:
        eq(ft.request(f.port).status, 200, "verify: false")


def test_verify_failure_reason_in_the_inspector_and_access_log():
    import json
    ca = CA()
    other = CA("other-ca")
    srv = ca.issue("srv", dns=["api.internal"])
    cfg = config(f"      ca: {other.pem}\n      server_name: api.internal\n").replace(
        "workers: 1", "workers: 1\nadmin: {address: 127.0.0.1:{port:admin}, inspect_all: true}\n"
        "access_log: {path: \"-\", format: json}")
    with TLSUpstream(srv) as up, Ferry(cfg, ports={"up": up.port}) as f, \
            open_stream(f) as events:
        eq(ft.request(f.port, headers=(("Host", "x.test"), ("X-Request-Id", "tlsfail-1"))).status,
           502, "wrong CA: 502")
        e = json.loads(f.wait_access_log('"request_id":"tlsfail-1"'))
        check(e.get("error", "").startswith("upstream TLS handshake failed: certificate verify "
                                            "failed: "), f"access log error: {e}")
        rec = events.event()
        eq(rec["request_id"], "tlsfail-1", "the captured exchange")
        eq(rec["error"], e["error"], "the inspector record says why")
        eq(rec["status"], 502, "record status")


def test_client_certificate_to_the_upstream():
    ca = CA()
    srv = ca.issue("srv", dns=["api.internal"])
    cli = ca.issue("ferry-client", cn="ferry client")
    with TLSUpstream(srv, client_ca=ca.pem) as up, Ferry(config(
            f"      ca: {ca.pem}\n      server_name: api.internal\n"
            f"      cert: {cli[0]}\n      key: {cli[1]}\n"), ports={"up": up.port}) as f:
        eq(ft.request(f.port).status, 200, "mTLS to the upstream")
        check(any(("commonName", "ferry client") in rdn for rdn in up.peer_subjects[0]),
              f"the server saw ferry's certificate: {up.peer_subjects}")


def test_health_checks_speak_tls_and_verify():
    ca = CA()
    other = CA("other-ca")
    good = ca.issue("good", dns=["api.internal"])
    bad = other.issue("bad", dns=["api.internal"])  # not signed by the configured CA
    cfg = f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 1
upstreams:
  up:
    servers: [{{address: 127.0.0.1:{{port:good}}}}, {{address: 127.0.0.1:{{port:bad}}}}]
    retries: 0
    health_check: {{path: /healthz, interval: 100ms, timeout: 1s,
                   unhealthy_threshold: 2, healthy_threshold: 2}}
    passive: {{consecutive_failures: 0}}
    tls:
      ca: {ca.pem}
      server_name: api.internal
routes:
  - upstream: up
"""
    with TLSUpstream(good, name="good") as g, TLSUpstream(bad, name="bad") as b, \
            Ferry(cfg, ports={"good": g.port, "bad": b.port}) as f:
        f.wait_stderr(rf"upstream up server 127\.0\.0\.1:{b.port} down: 2 failed checks \(TLS "
                      r"handshake failed: certificate verify failed: unable to get local issuer "
                      r"certificate\)")
        g.wait_requests(3)  # checks keep passing over verified TLS
        checks = [m for m in g.requests if m.target == "/healthz"]
        check(len(checks) >= 3, f"health checks reached the good server: {g.requests}")
        eq(checks[0].header("User-Agent"), "ferry-health-check", "a health check")
        check(g.handshakes >= len(checks), "each check on a TLS connection of its own")
        eq(len(b.requests), 0, "no request, check or other, reached the unverified server")
        for i in range(6):
            eq(ft.request(f.port, target=f"/r{i}").status, 200, f"request {i}: the good server")
        check(not re.search(rf"server 127\.0\.0\.1:{g.port} down", f.stderr_text()),
              "the good server stays up")


def test_ferry_t_checks_upstream_tls_files():
    rc, out, _ = ft.ferry_check(config("      ca: /nonexistent/ca.pem\n").replace(
        "{port:http}", "18080").replace("{port:up}", "1"))
    check(rc != 0 and "upstreams.up.tls.ca: cannot read /nonexistent/ca.pem" in out,
          f"unreadable ca: {out}")


if __name__ == "__main__":
    ft.main(globals())
