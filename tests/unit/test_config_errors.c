/* Unit tests for src/config.c: one test per diagnostic that
 * tests/unit/test_config.c does not already pin down, each asserting the
 * exact message (file:line:col, key path, what was found, what was
 * expected), plus the "can never match" warnings that loading adds
 * (router_check_shadowed). Positions are 1-based line:column. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/config.h"

/* Every test below starts from this listener (lines 1-2). */
#define LISTEN "listeners:\n  - address: 127.0.0.1:8080\n"
/* An upstream "api" on lines 3-6. */
#define UPSTREAM_API "upstreams:\n  api:\n    servers:\n      - address: 127.0.0.1:9001\n"

static char *joined(const struct config_diag *d) {
  size_t len = 1;
  for (size_t i = 0; i < d->n; i++)
    len += strlen(d->msgs[i]) + 1;
  char *s = calloc(1, len);
  for (size_t i = 0; i < d->n; i++) {
    strcat(s, d->msgs[i]);
    strcat(s, "\n");
  }
  return s;
}

/* Loads yaml expecting failure with exactly the n messages want[], all
 * errors. */
static void expect_errors(const char *yaml, const char *const *want, size_t n) {
  struct config *cfg = (struct config *)1;
  struct config_diag d = {0};
  int rc = config_load_string("proxy.yaml", yaml, strlen(yaml), &cfg, &d);
  cr_assert_eq(rc, -1, "expected the load to fail");
  cr_assert_null(cfg);
  cr_assert_eq(d.n, n, "expected %zu messages, got %zu:\n%s", n, d.n, joined(&d));
  cr_assert_eq(d.nerrors, n);
  for (size_t i = 0; i < n; i++)
    cr_assert_str_eq(d.msgs[i], want[i]);
  config_diag_free(&d);
}

#define EXPECT_ERRORS(yaml, ...)                                                                   \
  do {                                                                                             \
    static const char *const want_[] = {__VA_ARGS__};                                              \
    expect_errors((yaml), want_, sizeof want_ / sizeof want_[0]);                                  \
  } while (0)

/* Loads yaml expecting success with exactly the n warnings want[]. */
static void expect_warnings(const char *yaml, const char *const *want, size_t n) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  int rc = config_load_string("proxy.yaml", yaml, strlen(yaml), &cfg, &d);
  cr_assert_eq(rc, 0, "load failed:\n%s", joined(&d));
  cr_assert_not_null(cfg);
  cr_assert_eq(d.nerrors, 0);
  cr_assert_eq(d.n, n, "expected %zu messages, got %zu:\n%s", n, d.n, joined(&d));
  cr_assert_eq(d.nwarnings, n);
  for (size_t i = 0; i < n; i++)
    cr_assert_str_eq(d.msgs[i], want[i]);
  config_diag_free(&d);
  config_free(cfg);
}

#define EXPECT_WARNINGS(yaml, ...)                                                                 \
  do {                                                                                             \
    static const char *const want_[] = {__VA_ARGS__};                                              \
    expect_warnings((yaml), want_, sizeof want_ / sizeof want_[0]);                                \
  } while (0)

/* See tests/unit/test_config.c: an explicit leak check inside each test. */
#include "leak_check.h"

#define CONFIG_TEST(name)                                                                          \
  static void name##_body(void);                                                                   \
  Test(config_errors, name) {                                                                      \
    name##_body();                                                                                 \
    check_leaks();                                                                                 \
  }                                                                                                \
  static void name##_body(void)

/* ---- types ------------------------------------------------------------- */

CONFIG_TEST(key_that_is_not_a_scalar) {
  EXPECT_ERRORS(LISTEN "limits: {[a]: 1}\n",
                "proxy.yaml:3:10: limits: expected a key, found a list");
}

CONFIG_TEST(scalar_where_a_list_is_expected) {
  EXPECT_ERRORS("listeners: 127.0.0.1:8080\n",
                "proxy.yaml:1:12: listeners: expected a list, found \"127.0.0.1:8080\"");
}

CONFIG_TEST(mapping_where_routes_list_is_expected) {
  EXPECT_ERRORS(LISTEN "routes: {path: /x}\n",
                "proxy.yaml:3:9: routes: expected a list, found a mapping");
}

CONFIG_TEST(list_where_a_string_is_expected) {
  EXPECT_ERRORS(LISTEN "routes:\n  - host: [a.test]\n    respond: {}\n",
                "proxy.yaml:4:11: routes[0].host: expected a string, found a list");
}

CONFIG_TEST(unknown_top_level_key_without_close_match_lists_keys) {
  EXPECT_ERRORS(LISTEN "colour: red\n",
                "proxy.yaml:3:1: unknown key \"colour\" (expected listeners, workers, admin, "
                "access_log, limits, timeouts, upstreams, routes or pid_file)");
}

CONFIG_TEST(access_log_path_true_is_not_a_path) {
  EXPECT_ERRORS(
      LISTEN "access_log: {path: true}\n",
      "proxy.yaml:3:20: access_log.path: expected \"-\", a file path or off, found \"true\"");
}

/* ---- admin ------------------------------------------------------------- */

CONFIG_TEST(admin_address_that_is_also_a_listener) {
  EXPECT_ERRORS(LISTEN "admin:\n  address: 127.0.0.1:8080\n",
                "proxy.yaml:4:3: admin: address 127.0.0.1:8080 is also a listener (line 2)");
}

CONFIG_TEST(admin_allowed_hosts_items_must_be_host_names_or_star) {
  EXPECT_ERRORS(LISTEN
                "admin:\n  allowed_hosts:\n    - ferry.internal\n    - \"ferry.internal:9901\"\n"
                "    - \"http://x\"\n    - \"\"\n",
                "proxy.yaml:6:7: admin.allowed_hosts[1]: invalid host \"ferry.internal:9901\" "
                "(expected a host name without port, e.g. ferry.internal, or \"*\" to serve any "
                "Host)",
                "proxy.yaml:7:7: admin.allowed_hosts[2]: invalid host \"http://x\" (expected a "
                "host name without port, e.g. ferry.internal, or \"*\" to serve any Host)",
                "proxy.yaml:8:7: admin.allowed_hosts[3]: invalid host \"\" (expected a host name "
                "without port, e.g. ferry.internal, or \"*\" to serve any Host)");
  EXPECT_ERRORS(
      LISTEN "admin: {allowed_hosts: \"*.example\"}\n",
      "proxy.yaml:3:24: admin.allowed_hosts: expected a list, found quoted string \"*.example\"");
  EXPECT_ERRORS(LISTEN "admin: {allowed_hosts: [{a: 1}]}\n",
                "proxy.yaml:3:25: admin.allowed_hosts[0]: expected a string, found a mapping");
}

/* ---- upstreams --------------------------------------------------------- */

CONFIG_TEST(invalid_upstream_name) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  \"my api\":\n    servers: [{address: 127.0.0.1:9001}]\n",
                "proxy.yaml:4:3: upstreams: invalid upstream name \"my api\" (use letters, digits, "
                "\"_\", \"-\" and \".\")");
}

CONFIG_TEST(server_address_without_port) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  api:\n    servers: [{address: 127.0.0.1}]\n",
                "proxy.yaml:5:25: upstreams.api.servers[0].address: invalid address "
                "\"127.0.0.1\": expected HOST:PORT");
}

CONFIG_TEST(server_address_with_invalid_host_name) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  api:\n    servers: [{address: \"bad$host:80\"}]\n",
                "proxy.yaml:5:25: upstreams.api.servers[0].address: invalid address "
                "\"bad$host:80\": \"bad$host\" is not a host name or IP address");
}

CONFIG_TEST(server_address_with_bracketed_ipv4) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  api:\n    servers: [{address: \"[1.2.3.4]:80\"}]\n",
                "proxy.yaml:5:25: upstreams.api.servers[0].address: invalid address "
                "\"[1.2.3.4]:80\": \"1.2.3.4\" is not an IPv6 address");
}

CONFIG_TEST(server_without_address) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  api:\n    servers: [{weight: 2}]\n",
                "proxy.yaml:5:15: upstreams.api.servers[0]: missing required key \"address\"");
}

CONFIG_TEST(health_check_path_must_start_with_slash) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    health_check: {path: healthz}\n",
                "proxy.yaml:7:26: upstreams.api.health_check.path: must start with \"/\", found "
                "\"healthz\"");
}

CONFIG_TEST(retries_out_of_range) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    retries: 101\n",
                "proxy.yaml:7:14: upstreams.api.retries: 101 is out of range (expected 0..100)");
}

/* ---- routes ------------------------------------------------------------ */

CONFIG_TEST(empty_methods_list) {
  EXPECT_ERRORS(LISTEN "routes:\n  - methods: []\n    respond: {}\n",
                "proxy.yaml:4:14: routes[0].methods: at least one method is required (omit "
                "methods to allow any)");
}

CONFIG_TEST(empty_path_regex) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path_regex: \"\"\n    respond: {}\n",
                "proxy.yaml:4:17: routes[0].path_regex: must not be empty");
}

CONFIG_TEST(path_with_query_or_fragment) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path: /a?b=1\n    respond: {}\n",
                "proxy.yaml:4:11: routes[0].path: must not contain \"?\" or \"#\" (routes match "
                "the path without the query), found \"/a?b=1\"");
}

CONFIG_TEST(path_prefix_with_a_space) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path_prefix: \"/a b\"\n    respond: {}\n",
                "proxy.yaml:4:18: routes[0].path_prefix: must not contain spaces or control "
                "characters, found \"/a b\"");
}

CONFIG_TEST(path_not_in_normal_form_can_never_match) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path_prefix: /%61dmin\n    respond: {}\n",
                "proxy.yaml:4:18: routes[0].path_prefix: \"/%61dmin\" can never match: requests "
                "are matched on the normalised path (escapes of letters, digits and -._~ decoded, "
                "other escapes in upper case, \".\" and \"..\" resolved); write \"/admin\"");
  EXPECT_ERRORS(LISTEN "routes:\n  - path: /a/./b/../c\n    respond: {}\n",
                "proxy.yaml:4:11: routes[0].path: \"/a/./b/../c\" can never match: requests are "
                "matched on the normalised path (escapes of letters, digits and -._~ decoded, "
                "other escapes in upper case, \".\" and \"..\" resolved); write \"/a/c\"");
  EXPECT_ERRORS(LISTEN "routes:\n  - path_prefix: /caf%c3%a9\n    respond: {}\n",
                "proxy.yaml:4:18: routes[0].path_prefix: \"/caf%c3%a9\" can never match: requests "
                "are matched on the normalised path (escapes of letters, digits and -._~ decoded, "
                "other escapes in upper case, \".\" and \"..\" resolved); write \"/caf%C3%A9\"");
}

CONFIG_TEST(path_with_a_bad_escape_or_climbing_above_root) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path_prefix: /x/%zz\n    respond: {}\n",
                "proxy.yaml:4:18: routes[0].path_prefix: invalid path \"/x/%zz\" (a \"%\" must be "
                "followed by two hex digits, and \"..\" must not go above \"/\")");
  EXPECT_ERRORS(LISTEN "routes:\n  - path: /a/../..\n    respond: {}\n",
                "proxy.yaml:4:11: routes[0].path: invalid path \"/a/../..\" (a \"%\" must be "
                "followed by two hex digits, and \"..\" must not go above \"/\")");
}

CONFIG_TEST(normal_form_paths_with_escapes_load) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  const char *yaml = LISTEN "routes:\n  - path_prefix: /caf%C3%A9/\n    respond: {}\n"
                            "  - path: /a%2Fb\n    respond: {}\n";
  cr_assert_eq(config_load_string("proxy.yaml", yaml, strlen(yaml), &cfg, &d), 0, "%s", joined(&d));
  cr_assert_str_eq(cfg->routes[0].path, "/caf%C3%A9/");
  cr_assert_str_eq(cfg->routes[1].path, "/a%2Fb");
  config_diag_free(&d);
  config_free(cfg);
}

CONFIG_TEST(redirect_to_an_empty_location) {
  EXPECT_ERRORS(LISTEN "routes:\n  - redirect: {location: \"\"}\n",
                "proxy.yaml:4:26: routes[0].redirect.location: expected a URL or path without "
                "control characters, found \"\"");
}

CONFIG_TEST(redirect_status_not_an_integer) {
  EXPECT_ERRORS(LISTEN "routes:\n  - redirect: {location: /x, status: moved}\n",
                "proxy.yaml:4:38: routes[0].redirect.status: expected an integer, found \"moved\"");
}

CONFIG_TEST(respond_with_empty_content_type) {
  EXPECT_ERRORS(LISTEN "routes:\n  - respond: {content_type: \"\"}\n",
                "proxy.yaml:4:29: routes[0].respond.content_type: expected a media type, found "
                "\"\"");
}

CONFIG_TEST(respond_body_must_be_a_string) {
  EXPECT_ERRORS(LISTEN "routes:\n  - respond: {body: [a]}\n",
                "proxy.yaml:4:21: routes[0].respond.body: expected a string, found a list");
}

CONFIG_TEST(invalid_set_host) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n  - upstream: api\n    set_host: a.test/x\n",
                "proxy.yaml:9:15: routes[0].set_host: invalid host \"a.test/x\" (expected e.g. "
                "users.internal or users.internal:8080)");
}

CONFIG_TEST(set_host_only_for_upstream_routes) {
  EXPECT_ERRORS(LISTEN "routes:\n  - respond: {}\n    set_host: a.test\n",
                "proxy.yaml:5:5: routes[0]: set_host only applies to routes with upstream");
}

CONFIG_TEST(request_headers_only_for_upstream_routes) {
  EXPECT_ERRORS(LISTEN "routes:\n  - redirect: {location: /x}\n    request_headers: {}\n",
                "proxy.yaml:5:5: routes[0]: request_headers only applies to routes with upstream");
}

CONFIG_TEST(invalid_header_name_in_a_condition) {
  EXPECT_ERRORS(LISTEN "routes:\n  - headers: {\"X Canary\": \"1\"}\n    respond: {}\n",
                "proxy.yaml:4:15: routes[0].headers: invalid header name \"X Canary\"");
}

CONFIG_TEST(invalid_header_name_in_a_remove_list) {
  EXPECT_ERRORS(LISTEN "routes:\n  - respond: {}\n    response_headers: {remove: [\"a:b\"]}\n",
                "proxy.yaml:5:33: routes[0].response_headers.remove[0]: invalid header name "
                "\"a:b\"");
}

CONFIG_TEST(response_header_cannot_change_framing) {
  EXPECT_ERRORS(LISTEN
                "routes:\n  - respond: {}\n    response_headers: {set: {Connection: close}}\n",
                "proxy.yaml:5:30: routes[0].response_headers.set: cannot change \"Connection\": "
                "ferry manages framing and hop-by-hop headers");
}

CONFIG_TEST(request_headers_cannot_remove_host) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API
                "routes:\n  - upstream: api\n    request_headers: {remove: [host]}\n",
                "proxy.yaml:9:32: routes[0].request_headers.remove[0]: cannot remove \"host\": "
                "ferry needs it to frame the message");
}

CONFIG_TEST(duplicate_response_header_in_add) {
  EXPECT_ERRORS(LISTEN
                "routes:\n  - respond: {}\n    response_headers:\n      add: {Vary: a, Vary: b}\n",
                "proxy.yaml:6:22: routes[0].response_headers.add: duplicate header \"Vary\" (first "
                "defined at line 6)");
}

CONFIG_TEST(regex_and_exact_path_conflict) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path_regex: ^/a\n    path: /a\n    respond: {}\n",
                "proxy.yaml:5:5: routes[0]: path conflicts with path_regex (use only one of path, "
                "path_prefix, path_regex)");
}

CONFIG_TEST(redirect_and_upstream_conflict) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n  - redirect: {location: /x}\n    upstream: api\n",
                "proxy.yaml:9:5: routes[0]: upstream conflicts with redirect (a route has exactly "
                "one of upstream, upstreams, redirect or respond)");
}

CONFIG_TEST(unknown_route_key_suggests) {
  EXPECT_ERRORS(LISTEN "routes:\n  - path_prefx: /a\n    respond: {}\n",
                "proxy.yaml:4:5: routes[0]: unknown key \"path_prefx\" (did you mean "
                "\"path_prefix\"?)");
}

/* ---- YAML ------------------------------------------------------------- */

CONFIG_TEST(yaml_syntax_error_without_context) {
  EXPECT_ERRORS(LISTEN "workers: 2: 3\n",
                "proxy.yaml:3:11: YAML syntax error: mapping values are not allowed in this "
                "context");
}

CONFIG_TEST(invalid_input_without_a_byte) {
  EXPECT_ERRORS("\xef\xbb", "proxy.yaml:1:1: invalid input: incomplete UTF-8 octet sequence");
}

/* ---- files ------------------------------------------------------------- */

CONFIG_TEST(file_larger_than_16m) {
  char path[] = "/tmp/ferry-config-big-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(ftruncate(fd, (16 << 20) + 1), 0);
  close(fd);
  struct config *cfg = (struct config *)1;
  struct config_diag d = {0};
  int rc = config_load_file(path, &cfg, &d);
  unlink(path);
  cr_assert_eq(rc, -1);
  cr_assert_null(cfg);
  cr_assert_eq(d.n, 1, "%s", joined(&d));
  char want[128];
  snprintf(want, sizeof want, "%s: cannot read: file is larger than 16m", path);
  cr_assert_str_eq(d.msgs[0], want);
  config_diag_free(&d);
}

/* ---- warnings: routes that can never match ----------------------------- */

CONFIG_TEST(shadowed_route_is_a_warning_naming_both_routes) {
  EXPECT_WARNINGS(LISTEN UPSTREAM_API "routes:\n"                     /* 7 */
                                      "  - host: \"*.example.com\"\n" /* 8 */
                                      "    path_prefix: /api\n"       /* 9 */
                                      "    upstream: api\n"           /* 10 */
                                      "  - host: a.example.com\n"     /* 11 */
                                      "    path: /api/users\n"        /* 12 */
                                      "    methods: [GET]\n"          /* 13 */
                                      "    respond: {}\n",            /* 14 */
                  "proxy.yaml:11:5: warning: routes[1] (line 11) can never match: routes[0] (line "
                  "8) comes first and matches every request it would (same or wider host and path, "
                  "no extra conditions); move routes[1] above routes[0], narrow routes[0], or "
                  "remove routes[1]");
}

CONFIG_TEST(narrower_or_conditional_earlier_routes_do_not_warn) {
  EXPECT_WARNINGS(LISTEN UPSTREAM_API "routes:\n"
                                      "  - path_prefix: /api\n"
                                      "    headers: {X-Canary: \"1\"}\n"
                                      "    upstream: api\n"
                                      "  - path_prefix: /api/v1\n"
                                      "    methods: [POST]\n"
                                      "    upstream: api\n"
                                      "  - path_prefix: /api\n"
                                      "    upstream: api\n"
                                      "  - host: a.test\n"
                                      "    path_prefix: /apiv2\n"
                                      "    upstream: api\n"
                                      "  - path_regex: ^/api\n"
                                      "    upstream: api\n"
                                      "  - upstream: api\n");
}

CONFIG_TEST(every_shadowed_route_gets_one_warning_from_its_first_cover) {
  EXPECT_WARNINGS(LISTEN "routes:\n"                        /* 3 */
                         "  - respond: {}\n"                /* 4 */
                         "  - path: /a\n    respond: {}\n"  /* 5 */
                         "  - path: /b\n    respond: {}\n", /* 7 */
                  "proxy.yaml:5:5: warning: routes[1] (line 5) can never match: routes[0] (line 4) "
                  "comes first and matches every request it would (same or wider host and path, no "
                  "extra conditions); move routes[1] above routes[0], narrow routes[0], or remove "
                  "routes[1]",
                  "proxy.yaml:7:5: warning: routes[2] (line 7) can never match: routes[0] (line 4) "
                  "comes first and matches every request it would (same or wider host and path, no "
                  "extra conditions); move routes[2] above routes[0], narrow routes[0], or remove "
                  "routes[2]");
}

CONFIG_TEST(no_warnings_when_the_file_has_errors) {
  EXPECT_ERRORS(LISTEN "routes:\n  - respond: {}\n  - path: /a\n    respond: {status: 1}\n",
                "proxy.yaml:6:23: routes[1].respond.status: 1 is out of range (expected 100..599)");
}

/* auth_request and mirror (SPEC §8): unknown upstreams with a
 * suggestion, a path that is not one, a header ferry manages, a percent
 * out of range, missing required keys. */
Test(config_errors, auth_request_and_mirror_values) {
  EXPECT_ERRORS(
      LISTEN UPSTREAM_API "routes:\n"
                          "  - upstream: api\n"
                          "    auth_request: {upstream: apj, path: check, pass_headers: "
                          "[Content-Length, \"a b\"]}\n"
                          "    mirror: {upstream: apu, percent: 101}\n",
      "proxy.yaml:9:30: routes[0].auth_request.upstream: unknown upstream \"apj\" (did "
      "you mean \"api\"?)",
      "proxy.yaml:9:41: routes[0].auth_request.path: must start with \"/\", found "
      "\"check\"",
      "proxy.yaml:9:63: routes[0].auth_request.pass_headers[0]: cannot pass "
      "\"Content-Length\": ferry manages Host, framing and hop-by-hop headers",
      "proxy.yaml:9:79: routes[0].auth_request.pass_headers[1]: invalid header name "
      "\"a b\"",
      "proxy.yaml:10:24: routes[0].mirror.upstream: unknown upstream \"apu\" (did you "
      "mean \"api\"?)",
      "proxy.yaml:10:38: routes[0].mirror.percent: 101 is out of range (expected 0..100)");
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - upstream: api\n"
                                    "    auth_request: {}\n"
                                    "    mirror: {percent: 5}\n",
                "proxy.yaml:9:19: routes[0].auth_request: missing required key \"upstream\" (the "
                "auth service's upstream)",
                "proxy.yaml:9:19: routes[0].auth_request: missing required key \"path\" (e.g. "
                "path: /check)",
                "proxy.yaml:10:13: routes[0].mirror: missing required key \"upstream\" (where "
                "the copies go)");
}
