"""A shortage on ferry's own host is not the upstream's fault (issue 15):
when ferry has run out of file descriptors, an active health check that
cannot open its socket is not counted against the server, and says why."""
import resource
import socket

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, eq, check

NOFILE = 48  # ferry holds about 22 descriptors before any client connects


def test_health_check_without_descriptors_does_not_mark_the_server_down():
    with ScriptedUpstream("a") as a, Ferry("""
listeners:
  - address: 127.0.0.1:{port:http}
workers: 1
access_log: {path: off}
upstreams:
  api:
    servers: [{address: 127.0.0.1:{port:a}}]
    health_check: {interval: 50ms, timeout: 1s, unhealthy_threshold: 1}
routes:
  - upstream: api
""", ports={"a": a.port}) as f:
        eq(ft.request(f.port).status, 200, "before the shortage")
        resource.prlimit(f.proc.pid, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        # Idle connections until ferry has no descriptor left (each one it
        # accepts holds one until client_header; the rest wait in the backlog).
        clients = [socket.create_connection(("127.0.0.1", f.port)) for _ in range(2 * NOFILE)]
        try:
            f.wait_stderr(r"upstream api server 127\.0\.0\.1:\d+: health check not run: too many "
                          r"open files on this host \(not counted against the server")
            check(" down: " not in f.stderr_text(),
                  f"the server was marked down for ferry's own shortage:\n{f.stderr_text()}")
        finally:
            for c in clients:
                c.close()
        # descriptors are back once a check reaches the server again
        a.wait_checks(len(a.checks) + 1)
        eq(ft.request(f.port).status, 200, "after the shortage: the server was never marked down")


if __name__ == "__main__":
    ft.main(globals())
