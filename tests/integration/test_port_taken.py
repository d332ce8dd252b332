"""A port another process already listens on (SPEC §1, issue 15): ferry
exits 2 and names the address, even when that process set SO_REUSEPORT
(which ferry's own workers set to share each port); a second ferry on the
same port does the same; a reload that adds a taken listener fails and the
old configuration keeps serving."""
import re
import signal
import socket

import ferrytest as ft
from ferrytest import Ferry, eq, check


def config(port, workers=2, extra=""):
    return f"""
listeners:
  - address: 127.0.0.1:{port}
{extra}workers: {workers}
routes:
  - respond: {{status: 200, body: "pong\\n"}}
"""


def reuseport_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def expect_taken(f, port):
    rc = f.proc.wait(ft.START_TIMEOUT)
    eq(rc, 2, "exit code for a taken port")
    f.stop(expect_rc=2)
    err = f.stderr_text()
    check(f"cannot listen on 127.0.0.1:{port}: address already in use (another process listens "
          f"on this port" in err, f"no message naming the address in:\n{err}")
    check("listening on" not in err, f"started anyway:\n{err}")


def test_port_held_by_another_process_with_so_reuseport():
    s = reuseport_listener()
    port = s.getsockname()[1]
    try:
        f = Ferry(config(port), wait=False)
        expect_taken(f, port)
        # nothing of ferry's is left on the port: the other process gets the connection
        c = socket.create_connection(("127.0.0.1", port), timeout=ft.IO_TIMEOUT)
        conn, _ = s.accept()
        conn.close()
        c.close()
    finally:
        s.close()


def test_second_ferry_on_the_same_port_exits_2_and_the_first_keeps_serving():
    with Ferry(config("{port:http}")) as first:
        port = first.port
        second = Ferry(config(port), wait=False)
        expect_taken(second, port)
        for i in range(8):  # both of the first one's workers share the port
            r = ft.request(port)
            eq(r.status, 200, f"request {i} to the first ferry")
            eq(r.body, b"pong\n", f"request {i} to the first ferry")


def test_reload_adding_a_taken_listener_keeps_the_old_configuration():
    s = reuseport_listener()
    taken = s.getsockname()[1]
    try:
        with Ferry(config("{port:http}", workers=1)) as f:
            with open(f.config_path) as fh:
                text = fh.read()
            with open(f.config_path, "w") as fh:
                fh.write(text.replace("workers: 1",
                                      f"  - address: 127.0.0.1:{taken}\nworkers: 1"))
            f.signal(signal.SIGHUP)
            f.wait_stderr(rf"reload failed: cannot listen on 127\.0\.0\.1:{taken}: address already "
                          rf"in use .*; still serving configuration generation 1")
            eq(ft.request(f.port).status, 200, "the old listener after the failed reload")
            check(f"listening on 127.0.0.1:{taken}" not in f.stderr_text(), f.stderr_text())
    finally:
        s.close()


if __name__ == "__main__":
    ft.main(globals())
