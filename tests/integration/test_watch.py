"""`ferry --watch` (issue 17, SPEC §1): the configuration is reloaded, as on
SIGHUP, when the file's content changes, including the atomic symlink swap
with which Kubernetes updates a ConfigMap volume; a touch or a swap to the
same content reloads nothing; a bad new file is reported and the running
configuration stays."""
import os
import re
import shutil
import tempfile
import time

import ferrytest as ft
from ferrytest import Ferry, Upstream, eq, check


def config(http, admin, up):
    return f"""
listeners:
  - address: 127.0.0.1:{http}
workers: 2
admin:
  address: 127.0.0.1:{admin}
access_log: {{path: off}}
upstreams:
  api:
    servers:
      - address: {up}
routes:
  - path_prefix: /
    upstream: api
"""


class ConfigMapDir:
    """A directory laid out as the kubelet lays out a ConfigMap volume:
    proxy.yaml -> ..data/proxy.yaml, ..data -> ..TIMESTAMP/ (the real files).
    update() writes a new timestamped directory and swaps ..data atomically."""

    def __init__(self, text):
        self.root = tempfile.mkdtemp(prefix="ferry-cm-")
        self.n = 0
        self.current = None
        self.update(text)
        os.symlink("..data/proxy.yaml", os.path.join(self.root, "proxy.yaml"))

    @property
    def path(self):
        return os.path.join(self.root, "proxy.yaml")

    def update(self, text):
        self.n += 1
        name = f"..2026_12_06_00_00_{self.n:02d}.{os.getpid()}"
        d = os.path.join(self.root, name)
        os.mkdir(d)
        with open(os.path.join(d, "proxy.yaml"), "w") as f:
            f.write(text)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(name, tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))  # the atomic swap
        if self.current:
            shutil.rmtree(os.path.join(self.root, self.current))
        self.current = name

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


def wait_count(f, pattern, n, timeout=ft.IO_TIMEOUT):
    """Waits until ferry's stderr has n lines matching pattern."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    with f._stderr_cv:
        while True:
            got = sum(1 for l in f.stderr_lines if l is not None and rx.search(l))
            if got >= n:
                return got
            left = deadline - time.monotonic()
            check(left > 0, f"expected {n} lines /{pattern}/, got {got}; stderr: {f.stderr_lines[-20:]}")
            f._stderr_cv.wait(left)


def body(port):
    return ft.request(port).body.decode()


def test_watch_reloads_on_a_configmap_symlink_swap_and_only_on_a_change():
    with Upstream(name="A") as a, Upstream(name="B") as b:
        http, admin = ft.free_port(), ft.free_port()
        v1, v2 = config(http, admin, a.address), config(http, admin, b.address)
        cm = ConfigMapDir(v1)
        try:
            with Ferry(v1, ports={"http": http, "admin": admin},
                       args=("--watch", "-v", "-c", cm.path)) as f:
                eq(body(f.port), "ok from A", "before any change")
                unchanged = r"watch: .*proxy\.yaml: content unchanged, not reloading"
                # the same content swapped in: noticed, not reloaded
                cm.update(v1)
                wait_count(f, unchanged, 1)
                # a touch of the real file: noticed, not reloaded
                os.utime(os.path.join(cm.root, cm.current, "proxy.yaml"))
                wait_count(f, unchanged, 2)
                # new content: reloaded as on SIGHUP
                cm.update(v2)
                f.wait_stderr(r"watch: the file changed: reloading .*proxy\.yaml")
                f.wait_stderr(r"reload: configuration generation 2 published")
                eq(body(f.port), "ok from B", "after the swap")
                text = "\n".join(l for l in f.stderr_lines if l)
                eq(text.count("the file changed: reloading"), 1, "one reload for three events")
                # a broken file: reported, the running configuration stays
                cm.update(v2.replace("upstream: api", "upstream: nope"))
                f.wait_stderr(r"reload failed: .*proxy\.yaml has 1 error")
                eq(body(f.port), "ok from B", "still generation 2")
                # fixed again: reloaded
                cm.update(v1)
                f.wait_stderr(r"reload: configuration generation 3 published")
                eq(body(f.port), "ok from A", "after the fix")
        finally:
            cm.close()


def test_watch_reloads_a_plain_file_edited_in_place():
    with Upstream(name="A") as a, Upstream(name="B") as b:
        http, admin = ft.free_port(), ft.free_port()
        v1 = config(http, admin, a.address)
        with Ferry(v1, ports={"http": http, "admin": admin}, args=("--watch",)) as f:
            eq(body(f.port), "ok from A", "before the edit")
            with open(f.config_path, "w") as cf:
                cf.write(config(http, admin, b.address))
            f.wait_stderr(r"reload: configuration generation 2 published")
            eq(body(f.port), "ok from B", "after the edit")


ft.main(globals())
