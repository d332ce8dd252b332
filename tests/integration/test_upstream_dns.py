"""Server names: resolved at start (start fails only when a pool would be
empty) and every resolve_interval; new addresses join, vanished ones get no
new requests and their idle connections close. The answers come from a
hosts file the test controls (FERRY_HOSTS_FILE)."""
import os
import socket
import tempfile

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Upstream, Client, eq, check


def hosts_file(text):
    d = tempfile.mkdtemp(prefix="ferry-hosts-")
    path = os.path.join(d, "hosts")
    write_hosts(path, text)
    return path


def write_hosts(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # the resolver never sees a half-written file


def two_hosts_same_port():
    """ScriptedUpstreams on 127.0.0.1:P and 127.0.0.2:P."""
    for _ in range(20):
        b = ScriptedUpstream("b", host="127.0.0.2")
        try:
            a = ScriptedUpstream("a", port=b.port)
            return a, b
        except OSError:
            b.close()
    raise ft.TestFailure("no port free on both 127.0.0.1 and 127.0.0.2")


CONFIG = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: "-"}
upstreams:
  api:
    servers:
      - address: backend.test:{port:p}
    resolve_interval: 100ms
routes:
  - upstream: api
"""


def who(r):
    return r.body.decode().rsplit(" ", 1)[-1]


def test_changed_answers_move_traffic_and_close_idle_connections():
    a, b = two_hosts_same_port()
    hosts = hosts_file("127.0.0.1 backend.test\n")
    with a, b, Ferry(CONFIG, ports={"p": a.port}, env={"FERRY_HOSTS_FILE": hosts}) as f:
        with Client(f.port) as c:
            eq({who(c.request(target=f"/1-{i}")) for i in range(4)}, {"a"}, "before the change")
        # both addresses
        write_hosts(hosts, "127.0.0.1 backend.test\n127.0.0.2 backend.test other\n")
        f.wait_stderr(rf"upstream api server 127.0.0.2:{a.port} added: backend.test resolves to it")
        with Client(f.port) as c:
            eq("".join(who(c.request(target=f"/2-{i}")) for i in range(6)).count("b"), 3, "round robin over both")
        # only the new one
        write_hosts(hosts, "# moved\n127.0.0.2 backend.test\n")
        f.wait_stderr(rf"upstream api server 127.0.0.1:{a.port} removed: backend.test no longer resolves to it")
        # with no request in between, ferry closes the idle pooled
        # connection to the vanished address (its reader sees EOF)
        check(a.conns, "a had a connection")
        a.wait_eofs(len(a.conns))
        a_requests = a.count()
        with Client(f.port) as c:
            eq({who(c.request(target=f"/3-{i}")) for i in range(6)}, {"b"}, "after the change")
        eq(a.count(), a_requests, "no new requests to the vanished address")


def test_start_fails_only_when_a_pool_would_be_empty():
    hosts = hosts_file("127.0.0.1 something-else.test\n")
    f = Ferry(CONFIG, env={"FERRY_HOSTS_FILE": hosts}, wait=False)
    rc = f.proc.wait(ft.START_TIMEOUT)
    eq(rc, 2, "exit code")
    check("upstream api: no server address could be resolved (backend.test: not in hosts file"
          in f.stderr_text(), f.stderr_text())
    check("use IP addresses" in f.stderr_text(), "says what to do")


def test_unresolved_name_joins_when_it_resolves():
    cfg = """
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
upstreams:
  api:
    servers:
      - address: later.test:{port:b}
      - address: 127.0.0.1:{port:a}
    resolve_interval: 100ms
routes:
  - upstream: api
"""
    hosts = hosts_file("")
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(cfg, ports={"a": a.port, "b": b.port}, env={"FERRY_HOSTS_FILE": hosts}) as f:
        f.wait_stderr(r"upstream api server later.test:\d+: cannot resolve later.test: not in hosts file")
        with Client(f.port) as c:
            eq({who(c.request(target=f"/u{i}")) for i in range(4)}, {"a"}, "only the numeric server")
        write_hosts(hosts, "127.0.0.1 later.test\n")
        f.wait_stderr(rf"upstream api server 127.0.0.1:{b.port} added: later.test resolves to it")
        with Client(f.port) as c:
            eq({who(c.request(target=f"/v{i}")) for i in range(4)}, {"a", "b"}, "both")


ft.main(globals())
