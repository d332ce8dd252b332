"""The shipped configurations pass `ferry -t` with neither errors nor
warnings: examples/*.yaml and the demo ./proxy.yaml (issue 3); every
example configuration has route tests (examples/NAME.tests.yaml, issue 19)
and `ferry test-routes` passes them."""
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


def example_configs():
    return sorted(f for f in glob.glob(os.path.join(ROOT, "examples", "*.yaml"))
                  if not f.endswith(".tests.yaml"))


def test_every_example_yaml():
    files = example_configs()
    check(len(files) >= 2, f"examples found: {files}")
    for path in files:
        check_file(path)


def test_every_example_has_route_tests_that_pass():
    configs = example_configs()
    check(len(configs) >= 2, f"examples found: {configs}")
    for path in configs:
        tests = path[: -len(".yaml")] + ".tests.yaml"
        check(os.path.exists(tests), f"{path} has no route tests file {tests}")
        p = subprocess.run([ft.FERRY_BIN, "test-routes", "-c", path, tests], capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode()
        eq(p.returncode, 0, f"ferry test-routes -c {path} {tests}; output:\n{out}")
        check("FAIL" not in out and " 0 failed" in out, f"every case passes:\n{out}")
        npass = out.count("PASS  ")
        check(npass >= 10, f"{tests}: at least 10 cases ran, {npass} did")


def test_demo_proxy_yaml():
    check_file(os.path.join(ROOT, "proxy.yaml"))


ft.main(globals())
