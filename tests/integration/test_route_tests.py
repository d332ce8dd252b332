"""`ferry test-routes` (issue 19, SPEC §1 and §9): PASS/FAIL per case with
what was expected and what ferry would do, exit 0 only when every case
passes, and errors in the tests file named by line and column."""
import os
import subprocess
import tempfile

import ferrytest as ft
from ferrytest import eq, check

CONFIG = """\
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  api: {servers: [{address: 127.0.0.1:9001}]}
  canary: {servers: [{address: 127.0.0.1:9002}]}
routes:
  - path_prefix: /users
    headers: {X-Canary: "1"}
    upstream: canary
  - path_prefix: /users
    rewrite_prefix: /v2/users
    upstream: api
    request_headers: {set: {X-Env: prod}}
  - path_prefix: /old
    redirect: {location: "https://example.com/new", status: 301}
"""


def files(tests_text):
    d = tempfile.mkdtemp(prefix="ferry-route-tests-")
    cfg, tests = os.path.join(d, "proxy.yaml"), os.path.join(d, "proxy.tests.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    with open(tests, "w") as f:
        f.write(tests_text)
    return cfg, tests


def run(cfg, tests):
    p = subprocess.run([ft.FERRY_BIN, "test-routes", "-c", cfg, tests], capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_a_passing_file_exits_0():
    cfg, tests = files("""
- name: users go to the v2 API
  request: {method: GET, url: "http://api.example.com/users/7"}
  expect:
    upstream: api
    route_line: 9
    request_line: "GET /v2/users/7 HTTP/1.1"
    headers: {X-Env: prod, Host: api.example.com}
- name: canary
  request: {url: "http://api.example.com/users/7", headers: {X-Canary: 1}}
  expect: {upstream: canary}
- name: redirect
  request: {url: "http://a.test/old"}
  expect: {status: 301}
- name: nothing else
  request: {url: "http://a.test/"}
  expect: {status: 404}
""")
    rc, out, err = run(cfg, tests)
    eq(rc, 0, f"exit code (stdout {out!r}, stderr {err!r})")
    eq(out.splitlines(), ["PASS  users go to the v2 API", "PASS  canary", "PASS  redirect",
                          "PASS  nothing else", f"4 passed, 0 failed ({tests} against {cfg})"], "report")


def test_each_kind_of_failure_is_shown_with_what_ferry_would_do():
    cfg, tests = files("""
- name: all wrong
  request: {method: GET, url: "http://api.example.com/users/7", headers: {X-Canary: "0"}}
  expect:
    upstream: canary
    route_line: 6
    request_line: "GET /users/7 HTTP/1.1"
    headers: {X-Env: staging, X-Missing: "1"}
- name: status for a forwarded request
  request: {url: "http://a.test/users"}
  expect: {status: 200}
- name: fine
  request: {url: "http://a.test/old"}
  expect: {status: 301}
""")
    rc, out, err = run(cfg, tests)
    eq(rc, 1, f"exit code (stdout {out!r}, stderr {err!r})")
    want = [
        f"FAIL  all wrong  ({tests}:2)",
        "      upstream:      expected canary, got upstream api, routes[1] (line 9)",
        "      route_line:    expected 6, got line 9 (routes[1])",
        '      request_line:  expected "GET /users/7 HTTP/1.1", got "GET /v2/users/7 HTTP/1.1"',
        '      header X-Env:  expected "staging", got "prod"',
        '      header X-Missing:  expected "1", got none sent upstream',
        '      routes[0] (line 6) did not match: header: X-Canary is "0", this route wants "1"',
        f"      see: ferry explain -c {cfg} GET 'http://api.example.com/users/7' -H 'X-Canary: 0'",
        f"FAIL  status for a forwarded request  ({tests}:9)",
        "      status:        expected 200, got a request forwarded to upstream api, routes[1] (line 9)",
    ]
    lines = out.splitlines()
    for w in want:
        check(w in lines, f"line {w!r} in the report:\n{out}")
    check("PASS  fine" in lines, out)
    eq(lines[-1], f"1 passed, 2 failed ({tests} against {cfg})", "summary")


def test_errors_in_the_tests_file_name_line_and_column():
    cfg, tests = files("""
- name: typo
  request: {url: "http://a.test/", methd: GET}
  expect: {upstreams: api}
- name: no url
  request: {method: GET}
  expect: {status: 404}
- name: bad status
  request: {url: "http://a.test/"}
  expect: {status: abc}
""")
    rc, out, err = run(cfg, tests)
    eq(rc, 1, "exit code")
    eq(out, "", "no case runs when the file has errors")
    for w in [f'{tests}:3:36: request: unknown key "methd" (expected method, url, headers or from)',
              f'{tests}:4:12: expect: unknown key "upstreams"',
              f"{tests}:6:12: request: url is required",
              f'{tests}:10:20: expect.status: "abc" is not a status code (100 to 599)',
              f"{tests}: 4 errors: fix the file and run again"]:
        check(w in err, f"{w!r} in:\n{err}")
    cfg, tests = files("name: not a list\n")
    rc, out, err = run(cfg, tests)
    eq(rc, 1, "exit code for a mapping")
    check(f"{tests}:1:1: expected a list of test cases" in err, err)
    cfg, tests = files("- name: [unclosed\n")
    rc, out, err = run(cfg, tests)
    eq(rc, 1, "exit code for malformed YAML")
    check(err.startswith(f"{tests}:"), err)


def test_usage_and_missing_files_exit_1():
    cfg, tests = files("[]")
    rc, out, err = run(cfg, os.path.join(os.path.dirname(tests), "nope.yaml"))
    eq(rc, 1, "missing tests file")
    check("nope.yaml: cannot read the tests file: No such file or directory" in err, err)
    p = subprocess.run([ft.FERRY_BIN, "test-routes"], capture_output=True, timeout=30)
    eq(p.returncode, 1, "no tests file given")
    check("expected a tests file" in p.stderr.decode(), p.stderr.decode())
    rc, out, err = run(cfg, tests)
    eq(rc, 1, "an empty list")
    check("no test cases in the file" in err, err)


ft.main(globals())
