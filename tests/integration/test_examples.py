"""The shipped configurations pass `ferry -t` with neither errors nor
warnings: examples/*.yaml and the demo ./proxy.yaml (issue 3)."""
import glob
import os
import subprocess

import ferrytest as ft
from ferrytest import eq, check

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def check_file(path):
    p = subprocess.run([ft.FERRY_BIN, "-t", "-c", path], capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode()
    eq(p.returncode, 0, f"ferry -t {path} exit code; output:\n{out}")
    eq(out.strip(), f"{path}: ok", f"ferry -t {path} output (no errors, no warnings)")


def test_examples_microservices_yaml():
    check_file(os.path.join(ROOT, "examples", "microservices.yaml"))


def test_examples_edge_yaml():
    check_file(os.path.join(ROOT, "examples", "edge.yaml"))


def test_every_example_yaml():
    files = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
    check(len(files) >= 2, f"examples found: {files}")
    for path in files:
        check_file(path)


def test_demo_proxy_yaml():
    check_file(os.path.join(ROOT, "proxy.yaml"))


ft.main(globals())
