"""The pid file and binary upgrades (issue 17, SPEC §1).

pid_file: written once ferry listens, removed at a clean exit.
SIGUSR2: ferry starts the executable it was started from with the same
command line, hands it its listening sockets, and drains once the new
process says it is ready; the pid file then holds the new pid. A new
process that cannot start (here: a broken configuration file) leaves the
old one serving, with the reason in its log."""
import os
import signal
import threading
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, eq, check


def config(up, workers=2, extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
pid_file: {{tmp}}/ferry.pid
admin:
  address: 127.0.0.1:{{port:admin}}
access_log: {{path: off}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /
    upstream: api
{extra}"""


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except FileNotFoundError:
        return 0


def test_pid_file_written_while_serving_and_removed_at_exit():
    with Upstream() as up:
        f = Ferry(config(up.address))
        try:
            path = os.path.join(f.tmp, "ferry.pid")
            eq(read_pid(path), f.proc.pid, "pid in pid_file once ferry listens")
            eq(ft.request(f.port).status, 200, "serving")
            f.stop()
            check(not os.path.exists(path), "pid_file removed at a clean exit")
        finally:
            f.kill()


def test_unwritable_pid_file_stops_the_start_with_exit_2():
    with Upstream() as up:
        text = config(up.address).replace("{tmp}/ferry.pid", "{tmp}/no-such-dir/ferry.pid")
        f = Ferry(text, wait=False)
        try:
            eq(f.proc.wait(30), 2, "exit code")
            check("cannot write pid_file" in f.stderr_text() and "no-such-dir" in f.stderr_text(),
                  f"the error names the pid file: {f.stderr_text()}")
        finally:
            f.kill()


ft.main(globals())
