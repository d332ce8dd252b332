"""The pid file and binary upgrades (issue 17, SPEC §1).

pid_file: written once ferry listens, removed at a clean exit.
SIGUSR2: ferry starts the executable it was started from with the same
command line, hands it its listening sockets, and drains once the new
process says it is ready; the pid file then holds the new pid. A new
process that cannot start (here: a broken configuration file) leaves the
old one serving, with the reason in its log."""
import os
import re
import shutil
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


class LoadLoop:
    """Requests on a new connection each, one after another, from a thread,
    until stopped or `limit` requests or `seconds` have passed (bounded
    either way). Counts successes and keeps every failure."""

    def __init__(self, port, limit=5000, seconds=60, keepalive=False):
        self.port, self.limit, self.seconds = port, limit, seconds
        self.keepalive = keepalive  # reuse a connection until told to close
        self.told_to_close = 0
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.cv = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        end = time.monotonic() + self.seconds
        conn = None
        for i in range(self.limit):
            if self.stop.is_set() or time.monotonic() > end:
                break
            try:
                if not self.keepalive:
                    r = ft.request(self.port, target=f"/load/{i}")
                else:
                    conn = conn or ft.Client(self.port)
                    r = conn.request(target=f"/load/{i}")
                    if r.header("connection", "").lower() == "close":
                        self.told_to_close += 1
                        conn.close()
                        conn = None
                good = r.status == 200
                err = None if good else f"request {i}: status {r.status}"
            except Exception as e:  # refused, reset, closed early: all failures
                good, err = False, f"request {i}: {e!r}"
                if conn:
                    conn.close()
                    conn = None
            with self.cv:
                if good:
                    self.ok += 1
                else:
                    self.failures.append(err)
                self.cv.notify_all()
        if conn:
            conn.close()
        with self.cv:
            self.stop.set()
            self.cv.notify_all()

    def wait_ok(self, n, timeout=ft.IO_TIMEOUT):
        with self.cv:
            check(self.cv.wait_for(lambda: self.ok >= n or self.stop.is_set(), timeout),
                  f"the load loop made {self.ok} requests, not {n}")
            check(self.ok >= n, f"the load loop ended after {self.ok} requests: {self.failures[:5]}")

    def finish(self):
        self.stop.set()
        self.thread.join(ft.IO_TIMEOUT + 5)
        return self.ok, self.failures


def wait_output_closed(f, timeout=30):
    """Every process writing to f's stderr (the old ferry and the new one it
    started) has exited: the reader saw EOF."""
    with f._stderr_cv:
        check(f._stderr_cv.wait_for(lambda: None in f.stderr_lines, timeout),
              f"a ferry process is still running; stderr: {f.stderr_text()}")


def stop_new(f, pid):
    os.kill(pid, signal.SIGTERM)
    wait_output_closed(f)
    text = f.stderr_text()
    for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(bad not in text, f"sanitizer report:\n{text}")


def served_by(f, old_pid):
    line = f.wait_stderr(rf"upgrade: the new process \(pid \d+\) serves; this one \(pid {old_pid}\)",
                         ft.START_TIMEOUT)
    return int(re.search(r"pid (\d+)\) serves", line).group(1))


def test_sigusr2_under_load_no_request_fails_and_pid_file_follows():
    with Upstream() as up:
        f = Ferry(config(up.address))
        new_pid = 0
        try:
            path = os.path.join(f.tmp, "ferry.pid")
            old_pid = f.proc.pid
            eq(read_pid(path), old_pid, "pid_file before the upgrade")
            # 4 clients at once: two open a connection per request, two keep theirs
            # until a response says Connection: close
            loops = [LoadLoop(f.port, keepalive=k) for k in (False, False, True, True)]
            for l in loops:
                l.wait_ok(50)
            f.signal(signal.SIGUSR2)
            new_pid = served_by(f, old_pid)
            check(new_pid != old_pid, "a new process")
            eq(f.proc.wait(30), 0, "the old process drains and exits 0")
            for l in loops:
                l.wait_ok(l.ok + 50)  # served by the new process alone
            eq(read_pid(path), new_pid, "pid_file rewritten with the new pid")
            r = ft.admin_request(f.ports["admin"], target="/readyz")
            eq(r.status, 200, "/readyz of the new process (on the handed-over admin socket)")
            # 2 workers x 1 listener + the admin socket handed over (wait_stderr reads the
            # lines so far; stderr_text() would wait for the new process to exit too)
            f.wait_stderr(r"SIGUSR2: started .* with 3 listening sockets")

            # the new process upgrades in turn, still under load
            os.kill(new_pid, signal.SIGUSR2)
            third = served_by(f, new_pid)
            new_pid = third
            for l in loops:
                l.wait_ok(l.ok + 50)
            eq(read_pid(path), third, "pid_file rewritten by the second upgrade")
            results = [l.finish() for l in loops]
            for l in loops[2:]:
                check(l.told_to_close >= 2, "each keep-alive client was told to close by both old "
                                            f"processes (got {l.told_to_close})")
            failures = [e for _, fl in results for e in fl]
            eq(failures, [], f"failed requests during two upgrades "
                             f"({sum(ok for ok, _ in results)} succeeded)")
            stop_new(f, third)
            new_pid = 0
            check(not os.path.exists(path), "the last process removes pid_file at its clean exit")
        finally:
            if new_pid:
                os.kill(new_pid, signal.SIGKILL)
            f.kill()


def test_sigusr2_to_a_different_worker_count_keeps_every_socket_served():
    # 3 workers hand over 3 sockets to 1 worker (it serves all of them, so none
    # closes with connections in its queue); that one then hands over to 2 (one
    # adopted socket, one new SO_REUSEPORT socket in the same group)
    with Upstream() as up:
        f = Ferry(config(up.address, workers=3))
        pid = 0
        try:
            with open(f.config_path) as cf:
                text = cf.read()
            loops = [LoadLoop(f.port) for _ in range(3)]
            for l in loops:
                l.wait_ok(30)
            with open(f.config_path, "w") as cf:
                cf.write(text.replace("workers: 3", "workers: 1"))
            f.signal(signal.SIGUSR2)
            pid = served_by(f, f.proc.pid)
            eq(f.proc.wait(30), 0, "the first process exits")
            for l in loops:
                l.wait_ok(l.ok + 30)
            with open(f.config_path, "w") as cf:
                cf.write(text.replace("workers: 3", "workers: 2"))
            os.kill(pid, signal.SIGUSR2)
            old, pid = pid, served_by(f, pid)
            check(f.wait_stderr(r"SIGUSR2: started .* with 4 listening sockets"), "3 + admin handed over")
            for l in loops:
                l.wait_ok(l.ok + 30)
            results = [l.finish() for l in loops]
            eq([e for _, fl in results for e in fl], [], "failed requests")
            stop_new(f, pid)
            pid = 0
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
            f.kill()


def test_sigusr2_with_a_broken_config_keeps_the_old_process_serving():
    with Upstream() as up:
        f = Ferry(config(up.address))
        try:
            path = os.path.join(f.tmp, "ferry.pid")
            with open(f.config_path) as cf:
                good = cf.read()
            with open(f.config_path, "w") as cf:
                cf.write(good.replace("upstream: api", "upstream: nope"))
            f.signal(signal.SIGUSR2)
            f.wait_stderr(r"upgrade failed: the new process \(pid \d+\) did not take over: it exited "
                          r"with status 1 before it was ready .*; still serving with this process")
            check(re.search(r"proxy\.yaml:\d+:\d+: .*nope", f.stderr_text()),
                  "the new process's own errors (file:line:col) are in the log")
            eq(ft.request(f.port).status, 200, "the old process still answers")
            eq(ft.admin_request(f.ports["admin"], target="/readyz").status, 200, "/readyz still 200")
            eq(read_pid(path), f.proc.pid, "pid_file still holds the old pid")
            m = ft.admin_request(f.ports["admin"], target="/metrics").body.decode()
            check('ferry_upgrades_total{result="failure"} 1' in m, "the failure is counted")
            check('ferry_upgrades_total{result="success"} 0' in m, "and no success")
            # fixed file: a second SIGUSR2 works
            with open(f.config_path, "w") as cf:
                cf.write(good)
            f.signal(signal.SIGUSR2)
            line = f.wait_stderr(r"upgrade: the new process \(pid \d+\) serves", ft.START_TIMEOUT)
            new_pid = int(re.search(r"pid (\d+)\) serves", line).group(1))
            eq(f.proc.wait(30), 0, "the old process exits after the second, good upgrade")
            eq(ft.request(f.port).status, 200, "the new process answers")
            stop_new(f, new_pid)
        finally:
            f.kill()


def test_sigusr2_starts_the_binary_installed_at_the_same_path():
    with Upstream() as up:
        bindir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        tmpbin = os.path.join(os.path.abspath(os.path.dirname(ft.FERRY_BIN) or "."), "upgrade-test-bin")
        os.makedirs(tmpbin, exist_ok=True)
        exe = os.path.join(tmpbin, "ferry")
        shutil.copy2(ft.FERRY_BIN, exe)
        saved = ft.FERRY_BIN
        ft.FERRY_BIN = exe
        try:
            f = Ferry(config(up.address))
        finally:
            ft.FERRY_BIN = saved
        try:
            # a new "version" installed over it (rename, as package managers do)
            real = os.path.abspath(saved)
            with open(exe + ".new", "w") as w:
                w.write(f"#!/bin/sh\necho 'new binary starting' >&2\nexec {real} \"$@\"\n")
            os.chmod(exe + ".new", 0o755)
            os.rename(exe + ".new", exe)
            f.signal(signal.SIGUSR2)
            line = f.wait_stderr(r"upgrade: the new process \(pid \d+\) serves", ft.START_TIMEOUT)
            new_pid = int(re.search(r"pid (\d+)\) serves", line).group(1))
            check("new binary starting" in f.stderr_text(), "the newly installed executable ran")
            eq(f.proc.wait(30), 0, "old process exit code")
            eq(ft.request(f.port).status, 200, "served by the new binary")
            stop_new(f, new_pid)
        finally:
            f.kill()
            shutil.rmtree(tmpbin, ignore_errors=True)


def test_sigusr2_when_the_binary_is_gone_keeps_serving():
    with Upstream() as up:
        tmpbin = os.path.join(os.path.abspath(os.path.dirname(ft.FERRY_BIN) or "."), "upgrade-test-gone")
        os.makedirs(tmpbin, exist_ok=True)
        exe = os.path.join(tmpbin, "ferry")
        shutil.copy2(ft.FERRY_BIN, exe)
        saved = ft.FERRY_BIN
        ft.FERRY_BIN = exe
        try:
            f = Ferry(config(up.address))
        finally:
            ft.FERRY_BIN = saved
        try:
            os.unlink(exe)
            f.signal(signal.SIGUSR2)
            f.wait_stderr(r"upgrade failed: cannot start .*upgrade-test-gone/ferry: no such file or "
                          r"directory .*; still serving with this process")
            eq(ft.request(f.port).status, 200, "the old process still answers")
            f.stop()
        finally:
            f.kill()
            shutil.rmtree(tmpbin, ignore_errors=True)


ft.main(globals())
