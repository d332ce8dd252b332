"""Admin listener: /healthz, /readyz, /metrics, 404 (issue 6, SPEC §5)."""
import re
import shutil
import subprocess
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, Client, eq, check


def config(up, extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: 2
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: "-"}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /api
    upstream: api
  - path: /ping
    respond: {{status: 200, body: "pong\\n"}}
{extra}"""


def admin_get(f, path):
    return ft.admin_request(f.ports["admin"], target=path)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels)): value}; checks
    every line is a comment, blank or a well-formed sample and that every
    sample's family has a TYPE line."""
    types = {}
    samples = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            check(typ in ("counter", "gauge", "histogram", "summary", "untyped"), f"bad TYPE line {line!r}")
            types[name] = typ
            continue
        if line.startswith("#"):
            check(line.startswith("# HELP "), f"unexpected comment {line!r}")
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"malformed sample line {line!r}")
        name, labels = m.group(1), frozenset(LABEL.findall(m.group(3) or ""))
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        check(name in types or family in types, f"sample {name} has no # TYPE line")
        samples[(name, labels)] = float(m.group(4))
    return samples


def metric(samples, name, **labels):
    want = frozenset(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(f):
    r = admin_get(f, "/metrics")
    eq(r.status, 200, "/metrics status")
    check(r.header("content-type", "").startswith("text/plain; version=0.0.4"), f"content type {r.header('content-type')}")
    return r.body.decode(), parse_metrics(r.body.decode())


def test_healthz_readyz_and_unknown_paths():
    with Upstream(name="api") as up, Ferry(config(up.address)) as f:
        r = admin_get(f, "/healthz")
        eq((r.status, r.body), (200, b"ok\n"), "/healthz")
        r = admin_get(f, "/readyz")
        eq(r.status, 200, "/readyz while accepting")
        for path in ("/", "/nope", "/healthz/x", "/metricsx"):
            eq(admin_get(f, path).status, 404, f"status of admin {path}")
        # the admin port does not proxy, and the proxy port does not serve admin paths
        eq(ft.request(f.port, target="/healthz").status, 404, "/healthz on the proxy listener")


def test_metrics_counters_rise_with_traffic():
    with Upstream(name="api") as up, Ferry(config(up.address)) as f:
        _, before = scrape(f)
        n = 7
        with Client(f.port) as c:
            for i in range(n):
                eq(c.request(target=f"/api/x{i}").status, 200, "proxied status")
            eq(c.request(target="/ping").status, 200, "respond status")
            eq(c.request(target="/nothing-here").status, 404, "no route status")
            # the gauge of open client connections is sampled by each worker
            deadline = time.monotonic() + 10
            while True:
                _, s = scrape(f)
                if metric(s, "ferry_client_connections") >= 1 and \
                        metric(s, "ferry_upstream_connections_idle", upstream="api") >= 1:
                    break
                check(time.monotonic() < deadline, "connection gauges never showed the open connections")
                time.sleep(0.05)
        text, after = scrape(f)
        eq(metric(after, "ferry_requests_total", route="/api", upstream="api", **{"class": "2xx"})
           - metric(before, "ferry_requests_total", route="/api", upstream="api", **{"class": "2xx"}),
           n, "ferry_requests_total for route /api")
        eq(metric(after, "ferry_requests_total", route="=/ping", **{"class": "2xx"}), 1, "respond route counted")
        eq(metric(after, "ferry_requests_total", route="none", **{"class": "4xx"}), 1, "no-route 404 counted")
        eq(metric(after, "ferry_request_duration_seconds_count") - metric(before, "ferry_request_duration_seconds_count"),
           n + 2, "histogram count")
        eq(metric(after, "ferry_request_duration_seconds_bucket", le="+Inf"),
           metric(after, "ferry_request_duration_seconds_count"), "+Inf bucket equals count")
        check(metric(after, "ferry_bytes_received_total") > metric(before, "ferry_bytes_received_total"), "bytes in rose")
        check(metric(after, "ferry_bytes_sent_total") > metric(before, "ferry_bytes_sent_total"), "bytes out rose")
        eq(metric(after, "ferry_upstream_server_healthy", upstream="api", server=up.address), 1, "server health")
        eq(metric(after, "ferry_workers"), 2, "workers")
        for name in ("ferry_reloads_total", "ferry_retries_total", "ferry_access_log_dropped_total",
                     "ferry_upstream_connections_busy", "ferry_client_connections_total"):
            check(f"# TYPE {name} " in text, f"{name} is exposed")
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
            eq(p.returncode, 0, f"promtool check metrics: {p.stdout.decode()} {p.stderr.decode()}")


def test_admin_port_in_use_fails_start_with_exit_2():
    with Upstream(name="api") as up:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            port = s.getsockname()[1]
            f = Ferry(config(up.address), ports={"admin": port}, wait=False)
            rc = f.proc.wait(30)
            eq(rc, 2, "exit code when the admin port is taken")
            f.wait_stderr(r"admin address 127\.0\.0\.1:%d.*change admin\.address" % port, 5)
        finally:
            s.close()


ft.main(globals())
