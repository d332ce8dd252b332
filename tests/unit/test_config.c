/* Unit tests for src/config.c: proxy.yaml -> struct config, and the exact
 * diagnostics for bad files. Most tests load from memory with the name
 * "proxy.yaml"; positions in expected messages are 1-based line:column. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"

#ifndef FERRY_TEST_DATA
#define FERRY_TEST_DATA "tests/unit/data"
#endif

/* Every test below starts from this listener (lines 1-2). */
#define LISTEN "listeners:\n  - address: 127.0.0.1:8080\n"
/* An upstream "api" on lines 3-6. */
#define UPSTREAM_API "upstreams:\n  api:\n    servers:\n      - address: 127.0.0.1:9001\n"

/* All messages, one per line, for assertion output. Leaks on failure only. */
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

static struct config *load_ok(const char *yaml) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  int rc = config_load_string("proxy.yaml", yaml, strlen(yaml), &cfg, &d);
  cr_assert_eq(rc, 0, "load failed:\n%s", joined(&d));
  cr_assert_not_null(cfg);
  cr_assert_eq(d.nerrors, 0);
  config_diag_free(&d);
  return cfg;
}

static void expect_errors(const char *yaml, size_t len, const char *const *want, size_t n) {
  struct config *cfg = (struct config *)1;
  struct config_diag d = {0};
  int rc = config_load_string("proxy.yaml", yaml, len, &cfg, &d);
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
    expect_errors((yaml), strlen(yaml), want_, sizeof want_ / sizeof want_[0]);                    \
  } while (0)

static uint16_t port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static const char *ip_of(const struct sockaddr_storage *ss, char *buf, size_t size) {
  if (ss->ss_family == AF_INET6)
    return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)size);
  return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)size);
}

#define M(m) (1ull << (m))

/* Under ASan, LeakSanitizer's report at worker exit does not fail a
 * Criterion test (nor does anything in a .fini hook), so each test body is
 * followed by an explicit leak check inside the test: CONFIG_TEST(name)
 * declares Test(config, name) that runs the body, then the check. */
#include "leak_check.h"

#define CONFIG_TEST(name)                                                                          \
  static void name##_body(void);                                                                   \
  Test(config, name) {                                                                             \
    name##_body();                                                                                 \
    check_leaks();                                                                                 \
  }                                                                                                \
  static void name##_body(void)

/* ---- unknown, duplicate and mistyped keys ------------------------------ */

CONFIG_TEST(unknown_key_suggests_the_closest_valid_key) {
  EXPECT_ERRORS(LISTEN "upstreams:\n"
                       "  api:\n"
                       "    sever:\n"
                       "      - address: 127.0.0.1:9001\n",
                "proxy.yaml:5:5: upstreams.api: unknown key \"sever\" (did you mean \"servers\"?)",
                "proxy.yaml:5:5: upstreams.api: missing required key \"servers\"");
}

CONFIG_TEST(unknown_top_level_key_suggests_without_key_path) {
  EXPECT_ERRORS(LISTEN "wrokers: 4\n",
                "proxy.yaml:3:1: unknown key \"wrokers\" (did you mean \"workers\"?)");
}

CONFIG_TEST(unknown_key_without_close_match_lists_valid_keys) {
  EXPECT_ERRORS(LISTEN "    color: red\n", "proxy.yaml:3:5: listeners[0]: unknown key \"color\" "
                                           "(expected address, proxy_protocol, trusted_proxies, "
                                           "redirect_https or tls)");
}

CONFIG_TEST(duplicate_key_is_an_error) {
  EXPECT_ERRORS(LISTEN "workers: 2\nworkers: 4\n",
                "proxy.yaml:4:1: duplicate key \"workers\" (first defined at line 3)");
}

CONFIG_TEST(duplicate_upstream_name_is_an_error) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "  api:\n    servers: [{address: 127.0.0.1:9002}]\n",
                "proxy.yaml:7:3: upstreams: duplicate upstream \"api\" (first defined at line 4)");
}

CONFIG_TEST(wrong_type_list_where_mapping_expected) {
  EXPECT_ERRORS(LISTEN "limits:\n  - max_connections: 5\n",
                "proxy.yaml:4:3: limits: expected a mapping, found a list");
}

CONFIG_TEST(wrong_type_string_for_integer) {
  EXPECT_ERRORS(LISTEN "limits:\n  max_connections: lots\n",
                "proxy.yaml:4:20: limits.max_connections: expected an integer, found \"lots\"");
}

CONFIG_TEST(quoted_number_is_a_string_not_an_integer) {
  EXPECT_ERRORS(LISTEN "limits:\n  max_connections: \"100\"\n",
                "proxy.yaml:4:20: limits.max_connections: expected an integer, found quoted "
                "string \"100\"");
}

CONFIG_TEST(wrong_type_mapping_for_bool) {
  EXPECT_ERRORS(LISTEN "    proxy_protocol: {on: 1}\n",
                "proxy.yaml:3:21: listeners[0].proxy_protocol: expected true or false, found a "
                "mapping");
}

CONFIG_TEST(integer_out_of_range) {
  EXPECT_ERRORS(LISTEN "limits:\n  max_connections: 0\n",
                "proxy.yaml:4:20: limits.max_connections: 0 is out of range (expected "
                "1..10000000)");
}

/* ---- listeners and workers -------------------------------------------- */

CONFIG_TEST(listener_port_out_of_range) {
  EXPECT_ERRORS("listeners:\n  - address: 0.0.0.0:70000\n",
                "proxy.yaml:2:14: listeners[0].address: invalid address \"0.0.0.0:70000\": port "
                "70000 is out of range (expected 1..65535)");
}

CONFIG_TEST(listener_host_must_be_numeric_or_localhost) {
  EXPECT_ERRORS("listeners:\n  - address: example.com:80\n",
                "proxy.yaml:2:14: listeners[0].address: invalid address \"example.com:80\": host "
                "\"example.com\" is not a numeric IP address or localhost");
}

CONFIG_TEST(listener_without_address_is_an_error) {
  EXPECT_ERRORS("listeners:\n  - proxy_protocol: true\n",
                "proxy.yaml:2:5: listeners[0]: missing required key \"address\"");
}

CONFIG_TEST(duplicate_listener_address_is_an_error) {
  EXPECT_ERRORS(LISTEN "  - address: 127.0.0.1:8080\n",
                "proxy.yaml:3:14: listeners[1].address: duplicate listener \"127.0.0.1:8080\" "
                "(also at line 2)");
}

CONFIG_TEST(missing_listeners_is_an_error) {
  EXPECT_ERRORS("workers: 2\n", "proxy.yaml:1:1: at least one listener is required");
}

CONFIG_TEST(empty_document_is_an_error) {
  EXPECT_ERRORS("", "proxy.yaml:1:1: at least one listener is required");
  EXPECT_ERRORS("# only a comment\n", "proxy.yaml:1:1: at least one listener is required");
  EXPECT_ERRORS("---\n", "proxy.yaml:2:1: at least one listener is required");
}

CONFIG_TEST(empty_listener_list_is_an_error) {
  EXPECT_ERRORS("listeners: []\n", "proxy.yaml:1:12: listeners: at least one listener is required");
}

CONFIG_TEST(workers_auto_or_number) {
  struct config *cfg = load_ok(LISTEN "workers: auto\n");
  cr_assert_eq(cfg->workers, 0);
  config_free(cfg);
  cfg = load_ok(LISTEN "workers: 8\n");
  cr_assert_eq(cfg->workers, 8);
  config_free(cfg);
}

CONFIG_TEST(workers_out_of_range_or_wrong_type) {
  EXPECT_ERRORS(LISTEN "workers: 0\n",
                "proxy.yaml:3:10: workers: 0 is out of range (expected \"auto\" or 1..256)");
  EXPECT_ERRORS(LISTEN "workers: 257\n",
                "proxy.yaml:3:10: workers: 257 is out of range (expected \"auto\" or 1..256)");
  EXPECT_ERRORS(LISTEN "workers: many\n",
                "proxy.yaml:3:10: workers: expected \"auto\" or an integer 1..256, found \"many\"");
}

/* ---- durations and sizes ----------------------------------------------- */

CONFIG_TEST(bad_duration) {
  EXPECT_ERRORS(LISTEN "timeouts:\n  client_header: 10x\n",
                "proxy.yaml:4:18: timeouts.client_header: invalid duration \"10x\" (expected e.g. "
                "250ms, 10s, 2m, 1h or a number of seconds)");
}

CONFIG_TEST(zero_timeout_is_an_error_but_zero_drain_is_not) {
  EXPECT_ERRORS(LISTEN "timeouts:\n  client_idle: 0s\n",
                "proxy.yaml:4:16: timeouts.client_idle: must be greater than 0, found \"0s\"");
  struct config *cfg = load_ok(LISTEN "timeouts:\n  drain: 0\n");
  cr_assert_eq(cfg->timeouts.drain_ms, 0);
  cr_assert_eq(cfg->timeouts.drain_grace_ms, 0, "drain_grace defaults to 0");
  config_free(cfg);
}

CONFIG_TEST(pid_file_is_off_by_default_and_a_path_when_set) {
  struct config *cfg = load_ok(LISTEN);
  cr_assert_null(cfg->pid_file);
  config_free(cfg);
  cfg = load_ok(LISTEN "pid_file: /run/ferry/ferry.pid\n");
  cr_assert_str_eq(cfg->pid_file, "/run/ferry/ferry.pid");
  config_free(cfg);
  EXPECT_ERRORS(LISTEN "pid_file: [a, b]\n",
                "proxy.yaml:3:11: pid_file: expected a file path such as /run/ferry.pid, found a "
                "list");
}

CONFIG_TEST(drain_grace_is_a_duration_that_may_be_zero) {
  struct config *cfg = load_ok(LISTEN "timeouts:\n  drain_grace: 0s\n");
  cr_assert_eq(cfg->timeouts.drain_grace_ms, 0);
  config_free(cfg);
  cfg = load_ok(LISTEN "timeouts:\n  drain_grace: 1500ms\n");
  cr_assert_eq(cfg->timeouts.drain_grace_ms, 1500);
  config_free(cfg);
  EXPECT_ERRORS(LISTEN "timeouts:\n  drain_grace: later\n",
                "proxy.yaml:4:16: timeouts.drain_grace: invalid duration \"later\" (expected e.g. "
                "250ms, 10s, 2m, 1h or a number of seconds)");
}

CONFIG_TEST(bad_size) {
  EXPECT_ERRORS(LISTEN "limits:\n  max_request_header_bytes: 16q\n",
                "proxy.yaml:4:29: limits.max_request_header_bytes: invalid size \"16q\" (expected "
                "e.g. 512, 16k, 1m, 2g)");
}

CONFIG_TEST(size_out_of_range) {
  EXPECT_ERRORS(LISTEN "limits:\n  max_request_header_bytes: 512\n",
                "proxy.yaml:4:29: limits.max_request_header_bytes: \"512\" is out of range "
                "(expected 1k..16m)");
}

CONFIG_TEST(parse_duration_units) {
  uint64_t v;
  cr_assert_eq(config_parse_duration_ms("250ms", &v), 0);
  cr_assert_eq(v, 250);
  cr_assert_eq(config_parse_duration_ms("10s", &v), 0);
  cr_assert_eq(v, 10000);
  cr_assert_eq(config_parse_duration_ms("2m", &v), 0);
  cr_assert_eq(v, 120000);
  cr_assert_eq(config_parse_duration_ms("1h", &v), 0);
  cr_assert_eq(v, 3600000);
  cr_assert_eq(config_parse_duration_ms("7", &v), 0);
  cr_assert_eq(v, 7000);
  cr_assert_eq(config_parse_duration_ms("0", &v), 0);
  cr_assert_eq(v, 0);
  const char *bad[] = {"",
                       "s",
                       "10x",
                       "1.5s",
                       "-1s",
                       " 1s",
                       "1s ",
                       "10 s",
                       "1d",
                       "99999999999999999999",
                       "18446744073709551615h"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(config_parse_duration_ms(bad[i], &v), -1, "accepted \"%s\"", bad[i]);
  cr_assert_eq(config_parse_duration_ms(NULL, &v), -1);
}

CONFIG_TEST(parse_size_units) {
  uint64_t v;
  cr_assert_eq(config_parse_size("512", &v), 0);
  cr_assert_eq(v, 512);
  cr_assert_eq(config_parse_size("16k", &v), 0);
  cr_assert_eq(v, 16384);
  cr_assert_eq(config_parse_size("16K", &v), 0);
  cr_assert_eq(v, 16384);
  cr_assert_eq(config_parse_size("1m", &v), 0);
  cr_assert_eq(v, 1048576);
  cr_assert_eq(config_parse_size("2G", &v), 0);
  cr_assert_eq(v, 2147483648ull);
  const char *bad[] = {
      "", "k", "16kb", "1.5m", "-1", "16 k", "16t", "99999999999999999999", "17179869184g"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(config_parse_size(bad[i], &v), -1, "accepted \"%s\"", bad[i]);
}

CONFIG_TEST(parse_listen_address_forms) {
  struct sockaddr_storage ss;
  char err[128], ip[64];
  cr_assert_eq(config_parse_listen_address("0.0.0.0:8080", &ss, err, sizeof err), 0);
  cr_assert_eq(ss.ss_family, AF_INET);
  cr_assert_eq(port_of(&ss), 8080);
  cr_assert_eq(config_parse_listen_address(":8080", &ss, err, sizeof err), 0);
  cr_assert_eq(ss.ss_family, AF_INET);
  cr_assert_str_eq(ip_of(&ss, ip, sizeof ip), "0.0.0.0");
  cr_assert_eq(port_of(&ss), 8080);
  cr_assert_eq(config_parse_listen_address("localhost:8080", &ss, err, sizeof err), 0);
  cr_assert_str_eq(ip_of(&ss, ip, sizeof ip), "127.0.0.1");
  cr_assert_eq(config_parse_listen_address("[::1]:8080", &ss, err, sizeof err), 0);
  cr_assert_eq(ss.ss_family, AF_INET6);
  cr_assert_str_eq(ip_of(&ss, ip, sizeof ip), "::1");
  cr_assert_eq(port_of(&ss), 8080);
  cr_assert_eq(config_parse_listen_address("[::]:443", &ss, err, sizeof err), 0);
  cr_assert_eq(port_of(&ss), 443);
}

CONFIG_TEST(parse_listen_address_errors) {
  struct sockaddr_storage ss;
  char err[128];
  static const struct {
    const char *in, *err;
  } cases[] = {
      {"8080", "expected HOST:PORT"},
      {"127.0.0.1:", "missing port number after \":\""},
      {"127.0.0.1:http", "port \"http\" is not a number"},
      {"127.0.0.1:0", "port 0 is out of range (expected 1..65535)"},
      {"127.0.0.1:65536", "port 65536 is out of range (expected 1..65535)"},
      {"::1:8080", "an IPv6 address must be written in brackets, e.g. [::1]:8080"},
      {"[::1:8080", "missing \"]\" after the IPv6 address"},
      {"[::1]8080", "expected \":PORT\" after \"]\""},
      {"[1.2.3.4]:80", "\"1.2.3.4\" is not an IPv6 address"},
      {"example.com:80", "host \"example.com\" is not a numeric IP address or localhost"},
      {"1.2.3:80", "host \"1.2.3\" is not a numeric IP address or localhost"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cr_assert_eq(config_parse_listen_address(cases[i].in, &ss, err, sizeof err), -1, "%s",
                 cases[i].in);
    cr_assert_str_eq(err, cases[i].err, "for %s", cases[i].in);
  }
}

/* ---- routes ------------------------------------------------------------ */

CONFIG_TEST(route_with_no_action) {
  EXPECT_ERRORS(
      LISTEN "routes:\n  - path: /ping\n",
      "proxy.yaml:4:5: routes[0]: no action (expected exactly one of upstream, upstreams, redirect "
      "or respond)");
}

CONFIG_TEST(route_with_two_actions) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - path: /x\n"
                                    "    upstream: api\n"
                                    "    respond: {status: 204}\n",
                "proxy.yaml:10:5: routes[0]: respond conflicts with upstream (a route has exactly "
                "one of upstream, upstreams, redirect or respond)");
}

CONFIG_TEST(route_naming_unknown_upstream_suggests) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - path: /a\n"
                                    "    upstream: api\n"
                                    "  - path: /b\n"
                                    "    upstream: apii\n",
                "proxy.yaml:11:15: routes[1].upstream: unknown upstream \"apii\" (did you mean "
                "\"api\"?)");
}

CONFIG_TEST(route_naming_upstream_when_none_defined) {
  EXPECT_ERRORS(LISTEN "routes:\n  - upstream: web\n",
                "proxy.yaml:4:15: routes[0].upstream: unknown upstream \"web\" (no upstreams are "
                "defined)");
}

CONFIG_TEST(upstream_may_be_defined_after_routes) {
  struct config *cfg = load_ok(LISTEN "routes:\n  - upstream: api\n" UPSTREAM_API);
  cr_assert_eq(cfg->nroutes, 1);
  cr_assert_str_eq(cfg->routes[0].upstream, "api");
  cr_assert_eq(cfg->routes[0].upstream_index, 0);
  config_free(cfg);
}

CONFIG_TEST(invalid_regex_shows_regerror_text) {
  EXPECT_ERRORS(LISTEN "routes:\n"
                       "  - path_regex: \"^/v(1|2\"\n"
                       "    respond: {}\n",
                "proxy.yaml:4:17: routes[0].path_regex: invalid regular expression \"^/v(1|2\": "
                "Unmatched ( or \\(");
}

CONFIG_TEST(regex_is_compiled_extended_nosub) {
  struct config *cfg = load_ok(LISTEN "routes:\n"
                                      "  - path_regex: ^/v[0-9]+/\n"
                                      "    respond: {}\n");
  struct cfg_route *r = &cfg->routes[0];
  cr_assert_eq(r->path_kind, PATH_REGEX);
  cr_assert_str_eq(r->path, "^/v[0-9]+/");
  cr_assert_not_null(r->regex);
  cr_assert_eq(regexec(r->regex, "/v12/users", 0, NULL, 0), 0);
  cr_assert_neq(regexec(r->regex, "/api/v1/", 0, NULL, 0), 0);
  config_free(cfg);
}

CONFIG_TEST(only_one_path_condition_per_route) {
  EXPECT_ERRORS(LISTEN "routes:\n"
                       "  - path: /a\n"
                       "    path_prefix: /b\n"
                       "    respond: {}\n",
                "proxy.yaml:5:5: routes[0]: path_prefix conflicts with path (use only one of path, "
                "path_prefix, path_regex)");
}

CONFIG_TEST(paths_must_start_with_slash) {
  EXPECT_ERRORS(LISTEN "routes:\n"
                       "  - path_prefix: users\n"
                       "    respond: {}\n",
                "proxy.yaml:4:18: routes[0].path_prefix: must start with \"/\", found \"users\"");
}

CONFIG_TEST(rewrite_prefix_needs_path_prefix) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - path: /x\n"
                                    "    upstream: api\n"
                                    "    rewrite_prefix: /y\n",
                "proxy.yaml:10:5: routes[0]: rewrite_prefix is only allowed with path_prefix");
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - path_prefix: /x\n"
                                    "    upstream: api\n"
                                    "    rewrite_prefix: y\n",
                "proxy.yaml:10:21: routes[0].rewrite_prefix: must start with \"/\", found \"y\"");
}

CONFIG_TEST(rewrite_and_request_headers_only_for_upstream_routes) {
  EXPECT_ERRORS(LISTEN "routes:\n"
                       "  - path_prefix: /x\n"
                       "    respond: {}\n"
                       "    rewrite_prefix: /y\n",
                "proxy.yaml:6:5: routes[0]: rewrite_prefix only applies to routes with upstream");
}

CONFIG_TEST(route_host_is_lowercased_and_wildcard_split) {
  struct config *cfg = load_ok(LISTEN "routes:\n"
                                      "  - host: API.Example.COM\n"
                                      "    respond: {}\n"
                                      "  - host: \"*.Example.com\"\n"
                                      "    respond: {}\n");
  cr_assert_str_eq(cfg->routes[0].host, "api.example.com");
  cr_assert_not(cfg->routes[0].host_wildcard);
  cr_assert_str_eq(cfg->routes[1].host, ".example.com");
  cr_assert(cfg->routes[1].host_wildcard);
  config_free(cfg);
}

CONFIG_TEST(route_host_with_port_path_or_space_is_an_error) {
  static const char *const hosts[] = {"api.example.com:8080", "api.example.com/x", "\"a b\"",
                                      "\"*\"", "a.*.com"};
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
    char yaml[256], want[512];
    const char *h = hosts[i];
    snprintf(yaml, sizeof yaml, LISTEN "routes:\n  - host: %s\n    respond: {}\n", h);
    char shown[64];
    if (h[0] == '"')
      snprintf(shown, sizeof shown, "%s", h);
    else
      snprintf(shown, sizeof shown, "\"%s\"", h);
    snprintf(want, sizeof want,
             "proxy.yaml:4:11: routes[0].host: invalid host %s (expected a host name without port "
             "or path, e.g. api.example.com or *.example.com)",
             shown);
    const char *w[] = {want};
    expect_errors(yaml, strlen(yaml), w, 1);
  }
}

CONFIG_TEST(methods_map_to_llhttp_bits) {
  struct config *cfg = load_ok(LISTEN "routes:\n"
                                      "  - methods: [GET, POST, M-SEARCH]\n"
                                      "    respond: {}\n"
                                      "  - respond: {}\n");
  cr_assert_eq(cfg->routes[0].methods, M(HTTP_GET) | M(HTTP_POST) | M(HTTP_MSEARCH));
  cr_assert_eq(cfg->routes[1].methods, 0);
  config_free(cfg);
}

CONFIG_TEST(unknown_method_is_an_error) {
  EXPECT_ERRORS(
      LISTEN "routes:\n"
             "  - methods: [GET, get, FROBNICATE]\n"
             "    respond: {}\n",
      "proxy.yaml:4:20: routes[0].methods[1]: unknown method \"get\" (did you mean "
      "\"GET\"?)",
      "proxy.yaml:4:25: routes[0].methods[2]: unknown method \"FROBNICATE\" (expected an HTTP "
      "method such as GET, HEAD, POST, PUT, DELETE, PATCH or OPTIONS)");
}

CONFIG_TEST(redirect_defaults_and_status_check) {
  struct config *cfg = load_ok(LISTEN "routes:\n"
                                      "  - redirect: {location: /new}\n");
  cr_assert_eq(cfg->routes[0].action, ACTION_REDIRECT);
  cr_assert_str_eq(cfg->routes[0].redirect_location, "/new");
  cr_assert_eq(cfg->routes[0].redirect_status, 302);
  config_free(cfg);
  EXPECT_ERRORS(LISTEN "routes:\n  - redirect: {location: /new, status: 200}\n",
                "proxy.yaml:4:40: routes[0].redirect.status: 200 is not a redirect status "
                "(expected 301, 302, 303, 307 or 308)");
  EXPECT_ERRORS(LISTEN "routes:\n  - redirect: {status: 301}\n",
                "proxy.yaml:4:15: routes[0].redirect: missing required key \"location\"");
}

CONFIG_TEST(respond_defaults_and_status_range) {
  struct config *cfg = load_ok(LISTEN "routes:\n  - respond: {}\n  - respond:\n");
  for (size_t i = 0; i < 2; i++) {
    struct cfg_route *r = &cfg->routes[i];
    cr_assert_eq(r->action, ACTION_RESPOND);
    cr_assert_eq(r->respond_status, 200);
    cr_assert_str_eq(r->respond_body, "");
    cr_assert_str_eq(r->respond_content_type, "text/plain");
  }
  config_free(cfg);
  EXPECT_ERRORS(LISTEN "routes:\n  - respond: {status: 600}\n",
                "proxy.yaml:4:23: routes[0].respond.status: 600 is out of range (expected "
                "100..599)");
}

CONFIG_TEST(header_values_must_not_contain_line_breaks) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - upstream: api\n"
                                    "    request_headers:\n"
                                    "      set: {X-A: \"1\\r\\nX-B: 2\"}\n",
                "proxy.yaml:10:18: routes[0].request_headers.set.X-A: header value must not "
                "contain control characters, found \"1\\r\\nX-B: 2\"");
}

CONFIG_TEST(framing_and_hop_by_hop_headers_cannot_be_changed) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "routes:\n"
                                    "  - upstream: api\n"
                                    "    request_headers:\n"
                                    "      set: {Content-Length: \"5\", Host: x}\n"
                                    "      remove: [Transfer-Encoding]\n",
                "proxy.yaml:10:13: routes[0].request_headers.set: cannot change "
                "\"Content-Length\": ferry manages framing and hop-by-hop headers",
                "proxy.yaml:10:34: routes[0].request_headers.set: cannot change \"Host\" here "
                "(use set_host)",
                "proxy.yaml:11:16: routes[0].request_headers.remove[0]: cannot remove "
                "\"Transfer-Encoding\": ferry needs it to frame the message");
}

CONFIG_TEST(header_names_are_duplicates_regardless_of_case) {
  EXPECT_ERRORS(LISTEN "routes:\n"
                       "  - headers: {X-Canary: \"1\", x-canary: \"2\"}\n"
                       "    respond: {}\n",
                "proxy.yaml:4:30: routes[0].headers: duplicate header \"x-canary\" (first defined "
                "at line 4)");
}

/* ---- upstreams --------------------------------------------------------- */

CONFIG_TEST(empty_server_list) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  api:\n    servers: []\n",
                "proxy.yaml:5:14: upstreams.api.servers: at least one server is required");
}

CONFIG_TEST(upstream_without_servers_key) {
  EXPECT_ERRORS(LISTEN "upstreams:\n  api:\n    retries: 2\n",
                "proxy.yaml:5:5: upstreams.api: missing required key \"servers\"");
}

CONFIG_TEST(hash_balance_requires_hash_key) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    balance: hash\n",
                "proxy.yaml:7:14: upstreams.api: balance: hash requires hash_key (client_ip, "
                "header:NAME or cookie:NAME)");
}

CONFIG_TEST(hash_key_without_hash_balance_is_an_error) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    hash_key: client_ip\n",
                "proxy.yaml:7:5: upstreams.api: hash_key is only allowed with balance: hash "
                "(balance is round_robin)");
}

CONFIG_TEST(hash_key_forms) {
  struct config *cfg = load_ok(LISTEN UPSTREAM_API "    balance: hash\n"
                                                   "    hash_key: header:X-User\n");
  cr_assert_eq(cfg->upstreams[0].balance, BALANCE_HASH);
  cr_assert_str_eq(cfg->upstreams[0].hash_key, "header:X-User");
  config_free(cfg);
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    balance: hash\n    hash_key: \"cookie:\"\n",
                "proxy.yaml:8:15: upstreams.api.hash_key: invalid hash_key \"cookie:\" (expected "
                "client_ip, header:NAME or cookie:NAME)");
}

CONFIG_TEST(unknown_balance_suggests) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    balance: round_robbin\n",
                "proxy.yaml:7:14: upstreams.api.balance: unknown value \"round_robbin\" (did you "
                "mean \"round_robin\"?)");
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    balance: fastest\n",
                "proxy.yaml:7:14: upstreams.api.balance: unknown value \"fastest\" (expected "
                "round_robin, least_conn, random2 or hash)");
}

CONFIG_TEST(server_weight_range) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "        weight: 0\n",
                "proxy.yaml:7:17: upstreams.api.servers[0].weight: 0 is out of range (expected "
                "1..1000)");
}

CONFIG_TEST(server_names_are_left_for_the_upstream_resolver) {
  /* Names are resolved by the upstream runtime at start and every
   * resolve_interval (with a hosts-file override for tests), not at load;
   * numeric addresses are parsed here. */
  struct config *cfg = load_ok(LISTEN "upstreams:\n"
                                      "  api:\n"
                                      "    servers:\n"
                                      "      - address: localhost:9001\n"
                                      "      - address: \"[::1]:9002\"\n"
                                      "      - address: no-such-host.invalid:9003\n");
  struct cfg_upstream *up = &cfg->upstreams[0];
  char ip[64];
  cr_assert_eq(up->nservers, 3);
  cr_assert_str_eq(up->servers[0].address, "localhost:9001");
  cr_assert_str_eq(up->servers[0].host, "localhost");
  cr_assert_eq(up->servers[0].port, 9001);
  cr_assert(up->servers[0].resolve);
  cr_assert_not(up->servers[1].resolve);
  cr_assert_str_eq(up->servers[1].host, "::1");
  cr_assert_eq(up->servers[1].addr.ss_family, AF_INET6);
  cr_assert_str_eq(ip_of(&up->servers[1].addr, ip, sizeof ip), "::1");
  cr_assert_eq(port_of(&up->servers[1].addr), 9002);
  cr_assert(up->servers[2].resolve);
  cr_assert_str_eq(up->servers[2].host, "no-such-host.invalid");
  config_free(cfg);
}

CONFIG_TEST(passive_and_resolve_interval_defaults) {
  struct config *cfg = load_ok(LISTEN UPSTREAM_API);
  struct cfg_upstream *up = &cfg->upstreams[0];
  cr_assert_eq(up->passive.consecutive_failures, 5);
  cr_assert_eq(up->passive.eject_for_ms, 30000);
  cr_assert_eq(up->resolve_interval_ms, 30000);
  config_free(cfg);
}

CONFIG_TEST(passive_and_resolve_interval_values) {
  struct config *cfg = load_ok(LISTEN UPSTREAM_API "    passive: {consecutive_failures: 3, "
                                                   "eject_for: 250ms}\n"
                                                   "    resolve_interval: 2s\n");
  struct cfg_upstream *up = &cfg->upstreams[0];
  cr_assert_eq(up->passive.consecutive_failures, 3);
  cr_assert_eq(up->passive.eject_for_ms, 250);
  cr_assert_eq(up->resolve_interval_ms, 2000);
  config_free(cfg);
  cfg = load_ok(LISTEN UPSTREAM_API "    passive: {consecutive_failures: 0}\n");
  cr_assert_eq(cfg->upstreams[0].passive.consecutive_failures, 0);
  cr_assert_eq(cfg->upstreams[0].passive.eject_for_ms, 30000);
  config_free(cfg);
}

CONFIG_TEST(passive_errors) {
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    passive: {consecutive: 3}\n",
                "proxy.yaml:7:15: upstreams.api.passive: unknown key \"consecutive\" (expected "
                "consecutive_failures or eject_for)");
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    passive: {eject_for: soon}\n",
                "proxy.yaml:7:26: upstreams.api.passive.eject_for: invalid duration \"soon\" "
                "(expected e.g. 250ms, 10s, 2m, 1h or a number of seconds)");
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    passive: {consecutive_failures: 5000}\n",
                "proxy.yaml:7:37: upstreams.api.passive.consecutive_failures: 5000 is out of range "
                "(expected 0..1000)");
  EXPECT_ERRORS(LISTEN UPSTREAM_API "    resolve_interval: 0\n",
                "proxy.yaml:7:23: upstreams.api.resolve_interval: must be greater than 0, found "
                "\"0\"");
}

CONFIG_TEST(keepalive_idle_timeout_defaults_to_upstream_idle) {
  struct config *cfg = load_ok(LISTEN UPSTREAM_API "  web:\n"
                                                   "    servers: [{address: 127.0.0.1:9002}]\n"
                                                   "    keepalive: {idle_timeout: 5s}\n"
                                                   "timeouts:\n"
                                                   "  upstream_idle: 45s\n");
  cr_assert_eq(cfg->nupstreams, 2);
  cr_assert_eq(cfg->upstreams[0].keepalive_idle_timeout_ms, 45000);
  cr_assert_eq(cfg->upstreams[1].keepalive_idle_timeout_ms, 5000);
  config_free(cfg);
}

/* ---- YAML-level problems ------------------------------------------------ */

CONFIG_TEST(yaml_syntax_error_has_position) {
  EXPECT_ERRORS(LISTEN " workers: 2\n",
                "proxy.yaml:3:2: YAML syntax error: did not find expected key (while parsing a "
                "block mapping started at line 1, column 1)");
}

CONFIG_TEST(invalid_utf8_has_position) {
  EXPECT_ERRORS(LISTEN "workers: \xff\n",
                "proxy.yaml:3:10: invalid input: invalid leading UTF-8 octet (byte 0xff)");
}

CONFIG_TEST(scalar_or_list_at_top_level_is_an_error) {
  EXPECT_ERRORS("hello\n", "proxy.yaml:1:1: expected a mapping at the top level, found \"hello\"");
  EXPECT_ERRORS("- a\n", "proxy.yaml:1:1: expected a mapping at the top level, found a list");
}

CONFIG_TEST(aliases_are_rejected) {
  EXPECT_ERRORS("listeners:\n"
                "  - &l {address: 127.0.0.1:8080}\n"
                "  - *l\n",
                "proxy.yaml:3:5: YAML aliases (*l) are not supported; write the value out");
}

CONFIG_TEST(deep_nesting_is_an_error_not_a_crash) {
  char yaml[20010];
  memcpy(yaml, "a: ", 3);
  memset(yaml + 3, '[', 20000);
  yaml[20003] = '\0';
  EXPECT_ERRORS(yaml, "proxy.yaml:1:67: nesting is deeper than 64 levels");
}

CONFIG_TEST(second_document_is_an_error) {
  EXPECT_ERRORS(LISTEN "---\n" LISTEN,
                "proxy.yaml:3:1: only one YAML document is allowed (found a second \"---\")");
}

CONFIG_TEST(nul_byte_in_a_string_is_an_error) {
  static const char yaml[] = LISTEN "access_log:\n  path: \"/tmp/a\\0b\"\n";
  EXPECT_ERRORS(yaml, "proxy.yaml:4:9: access_log.path: must not contain NUL characters");
}

CONFIG_TEST(multiple_errors_are_all_reported_in_file_order) {
  EXPECT_ERRORS(
      "routes:\n"                /* 1 */
      "  - path: nope\n"         /* 2 */
      "timeouts:\n"              /* 3 */
      "  drain: soon\n"          /* 4 */
      "listeners:\n"             /* 5 */
      "  - address: 0.0.0.0:0\n" /* 6 */
      "workers: 0\n"             /* 7 */
      "upstreams:\n"             /* 8 */
      "  api:\n"                 /* 9 */
      "    servers: []\n"        /* 10 */
      "    balanse: hash\n",     /* 11 */
      "proxy.yaml:2:5: routes[0]: no action (expected exactly one of upstream, upstreams, redirect "
      "or respond)",
      "proxy.yaml:2:11: routes[0].path: must start with \"/\", found \"nope\"",
      "proxy.yaml:4:10: timeouts.drain: invalid duration \"soon\" (expected e.g. 250ms, "
      "10s, 2m, 1h or a number of seconds)",
      "proxy.yaml:6:14: listeners[0].address: invalid address \"0.0.0.0:0\": port 0 is "
      "out of range (expected 1..65535)",
      "proxy.yaml:7:10: workers: 0 is out of range (expected \"auto\" or 1..256)",
      "proxy.yaml:10:14: upstreams.api.servers: at least one server is required",
      "proxy.yaml:11:5: upstreams.api: unknown key \"balanse\" (did you mean "
      "\"balance\"?)");
}

CONFIG_TEST(every_prefix_of_a_valid_file_loads_or_fails_cleanly) {
  FILE *f = fopen(FERRY_TEST_DATA "/config/spec_example.yaml", "rb");
  cr_assert_not_null(f);
  char text[8192];
  size_t len = fread(text, 1, sizeof text, f);
  fclose(f);
  for (size_t n = 0; n <= len; n++) {
    struct config *cfg = NULL;
    struct config_diag d = {0};
    int rc = config_load_string("proxy.yaml", text, n, &cfg, &d);
    if (rc == 0) {
      cr_assert_not_null(cfg);
      config_free(cfg);
    } else {
      cr_assert_null(cfg);
      cr_assert_geq(d.n, 1);
      for (size_t i = 0; i < d.n; i++)
        cr_assert_eq(strncmp(d.msgs[i], "proxy.yaml:", 11), 0, "%s", d.msgs[i]);
    }
    cr_assert_eq(d.nerrors, d.n);
    config_diag_free(&d);
  }
}

CONFIG_TEST(odd_inputs_do_not_crash) {
  static const char *const inputs[] = {
      "[",
      "{",
      ":",
      "- - -",
      "\t",
      "? [a]\n: b\n",
      "listeners: {",
      "listeners:\n  - [1, 2]\n",
      "listeners:\n  - 42\n",
      "~: 1\n",
      "listeners: !!str x\n",
      "&a x\n",
      "*a\n",
      "listeners:\n  - address: !!binary aGk=\n",
      "routes: [[[]]]\n",
      "routes: {a: 1}\n",
      "upstreams: [a]\n",
      "upstreams:\n  ? [x]\n  : y\n",
      "\xef\xbb\xbf",
      "\"\\u0000\": 1\n",
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    struct config *cfg = NULL;
    struct config_diag d = {0};
    cr_assert_eq(config_load_string("proxy.yaml", inputs[i], strlen(inputs[i]), &cfg, &d), -1,
                 "input %zu accepted", i);
    cr_assert_geq(d.n, 1);
    config_diag_free(&d);
  }
}

CONFIG_TEST(no_diag_and_no_out_pointer_is_a_check_only) {
  const char *good = LISTEN, *bad = "workers: 2\n";
  cr_assert_eq(config_load_string("proxy.yaml", good, strlen(good), NULL, NULL), 0);
  cr_assert_eq(config_load_string("proxy.yaml", bad, strlen(bad), NULL, NULL), -1);
}

CONFIG_TEST(missing_file_is_reported_with_strerror) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  cr_assert_eq(config_load_file("/nonexistent/dir/proxy.yaml", &cfg, &d), -1);
  cr_assert_null(cfg);
  cr_assert_eq(d.n, 1);
  cr_assert_eq(d.nerrors, 1);
  cr_assert_str_eq(d.msgs[0],
                   "/nonexistent/dir/proxy.yaml: cannot read: No such file or directory");
  config_diag_free(&d);
}

/* ---- whole files ------------------------------------------------------- */

CONFIG_TEST(minimal_file_gets_every_default) {
  struct config *cfg = load_ok(LISTEN);
  char ip[64];
  cr_assert_str_eq(cfg->file, "proxy.yaml");
  cr_assert_eq(cfg->nlisteners, 1);
  cr_assert_str_eq(cfg->listeners[0].address, "127.0.0.1:8080");
  cr_assert_eq(cfg->listeners[0].addr.ss_family, AF_INET);
  cr_assert_str_eq(ip_of(&cfg->listeners[0].addr, ip, sizeof ip), "127.0.0.1");
  cr_assert_eq(port_of(&cfg->listeners[0].addr), 8080);
  cr_assert_not(cfg->listeners[0].proxy_protocol);
  cr_assert_eq(cfg->listeners[0].line, 2);
  cr_assert_eq(cfg->workers, 0);
  cr_assert_not(cfg->admin.enabled);
  cr_assert_null(cfg->admin.address);
  cr_assert(cfg->admin.redact);
  cr_assert_eq(cfg->admin.inspect_keep, 500);
  cr_assert_str_eq(cfg->access_log.path, "-");
  cr_assert_eq(cfg->access_log.format, LOG_FORMAT_COMBINED);
  cr_assert_eq(cfg->limits.max_request_header_bytes, 32768);
  cr_assert_eq(cfg->limits.max_request_body_bytes, 0);
  cr_assert_eq(cfg->limits.max_connections, 10000);
  cr_assert_eq(cfg->timeouts.client_header_ms, 10000);
  cr_assert_eq(cfg->timeouts.client_idle_ms, 60000);
  cr_assert_eq(cfg->timeouts.upstream_connect_ms, 3000);
  cr_assert_eq(cfg->timeouts.upstream_response_ms, 30000);
  cr_assert_eq(cfg->timeouts.upstream_idle_ms, 60000);
  cr_assert_eq(cfg->timeouts.drain_ms, 30000);
  cr_assert_eq(cfg->nupstreams, 0);
  cr_assert_null(cfg->upstreams);
  cr_assert_eq(cfg->nroutes, 0);
  cr_assert_null(cfg->routes);
  config_free(cfg);
}

CONFIG_TEST(minimal_upstream_and_route_get_defaults) {
  struct config *cfg = load_ok(LISTEN UPSTREAM_API "routes:\n  - upstream: api\n");
  struct cfg_upstream *up = &cfg->upstreams[0];
  cr_assert_str_eq(up->name, "api");
  cr_assert_eq(up->line, 4);
  cr_assert_eq(up->nservers, 1);
  cr_assert_eq(up->servers[0].weight, 1);
  cr_assert_eq(up->servers[0].line, 6);
  cr_assert_eq(up->balance, BALANCE_ROUND_ROBIN);
  cr_assert_null(up->hash_key);
  cr_assert_eq(up->keepalive_max_idle, 32);
  cr_assert_eq(up->keepalive_idle_timeout_ms, 60000);
  cr_assert_not(up->health_check.enabled);
  cr_assert_eq(up->retries, 1);

  struct cfg_route *r = &cfg->routes[0];
  cr_assert_eq(r->index, 0);
  cr_assert_eq(r->line, 8);
  cr_assert_eq(r->col, 5);
  cr_assert_null(r->host);
  cr_assert_not(r->host_wildcard);
  cr_assert_eq(r->path_kind, PATH_ANY);
  cr_assert_null(r->path);
  cr_assert_null(r->regex);
  cr_assert_eq(r->methods, 0);
  cr_assert_eq(r->nheaders, 0);
  cr_assert_eq(r->action, ACTION_UPSTREAM);
  cr_assert_null(r->rewrite_prefix);
  cr_assert_null(r->set_host);
  cr_assert_eq(r->request_headers.nset + r->request_headers.nadd + r->request_headers.nremove, 0);
  cr_assert_eq(r->response_headers.nset + r->response_headers.nadd + r->response_headers.nremove,
               0);
  cr_assert_not(r->inspect);
  config_free(cfg);
}

CONFIG_TEST(health_check_present_gets_defaults) {
  struct config *cfg = load_ok(LISTEN UPSTREAM_API "    health_check: {}\n");
  struct cfg_health_check *hc = &cfg->upstreams[0].health_check;
  cr_assert(hc->enabled);
  cr_assert_str_eq(hc->path, "/healthz");
  cr_assert_eq(hc->interval_ms, 5000);
  cr_assert_eq(hc->timeout_ms, 1000);
  cr_assert_eq(hc->unhealthy_threshold, 3);
  cr_assert_eq(hc->healthy_threshold, 2);
  config_free(cfg);
}

CONFIG_TEST(admin_present_gets_defaults) {
  struct config *cfg = load_ok(LISTEN "admin: {}\n");
  char ip[64];
  cr_assert(cfg->admin.enabled);
  cr_assert_str_eq(cfg->admin.address, "127.0.0.1:9901");
  cr_assert_str_eq(ip_of(&cfg->admin.addr, ip, sizeof ip), "127.0.0.1");
  cr_assert_eq(port_of(&cfg->admin.addr), 9901);
  cr_assert(cfg->admin.redact);
  cr_assert_eq(cfg->admin.inspect_keep, 500);
  config_free(cfg);
}

CONFIG_TEST(admin_inspector_keys_default) {
  struct config *cfg = load_ok(LISTEN "admin: {}\n");
  cr_assert_not(cfg->admin.inspect_all);
  cr_assert_eq(cfg->admin.inspect_body_bytes, 0);
  cr_assert_eq(cfg->admin.inspect_max_bytes, 16 * 1024 * 1024);
  cr_assert_not(cfg->admin.replay);
  cr_assert_eq(cfg->admin.nredact_headers, 4);
  cr_assert_str_eq(cfg->admin.redact_headers[0], "Authorization");
  cr_assert_str_eq(cfg->admin.redact_headers[1], "Proxy-Authorization");
  cr_assert_str_eq(cfg->admin.redact_headers[2], "Cookie");
  cr_assert_str_eq(cfg->admin.redact_headers[3], "Set-Cookie");
  cr_assert_eq(cfg->admin.nallowed_hosts, 0);
  config_free(cfg);
}

CONFIG_TEST(admin_allowed_hosts_set) {
  struct config *cfg =
      load_ok(LISTEN "admin:\n  allowed_hosts: [ferry.internal, Admin.Example, \"*\"]\n");
  cr_assert_eq(cfg->admin.nallowed_hosts, 3);
  cr_assert_str_eq(cfg->admin.allowed_hosts[0], "ferry.internal");
  cr_assert_str_eq(cfg->admin.allowed_hosts[1], "Admin.Example");
  cr_assert_str_eq(cfg->admin.allowed_hosts[2], "*");
  config_free(cfg);
  cfg = load_ok(LISTEN "admin: {allowed_hosts: []}\n");
  cr_assert_eq(cfg->admin.nallowed_hosts, 0);
  config_free(cfg);
}

CONFIG_TEST(admin_inspector_keys_set) {
  struct config *cfg = load_ok(LISTEN "admin:\n"
                                      "  inspect_all: true\n"
                                      "  inspect_body_bytes: 1k\n"
                                      "  inspect_max_bytes: 1m\n"
                                      "  redact_headers: [X-Api-Key, Cookie]\n"
                                      "  replay: true\n");
  cr_assert(cfg->admin.inspect_all);
  cr_assert_eq(cfg->admin.inspect_body_bytes, 1024);
  cr_assert_eq(cfg->admin.inspect_max_bytes, 1024 * 1024);
  cr_assert(cfg->admin.replay);
  cr_assert_eq(cfg->admin.nredact_headers, 2);
  cr_assert_str_eq(cfg->admin.redact_headers[0], "X-Api-Key");
  cr_assert_str_eq(cfg->admin.redact_headers[1], "Cookie");
  config_free(cfg);
  cfg = load_ok(LISTEN "admin: {redact_headers: []}\n");
  cr_assert_eq(cfg->admin.nredact_headers, 0);
  config_free(cfg);
}

CONFIG_TEST(admin_inspector_keys_errors) {
  EXPECT_ERRORS(LISTEN "admin: {inspect_all: maybe}\n",
                "proxy.yaml:3:22: admin.inspect_all: expected true or false, found \"maybe\"");
  EXPECT_ERRORS(LISTEN "admin: {inspect_body_bytes: 1m}\n",
                "proxy.yaml:3:29: admin.inspect_body_bytes: \"1m\" is out of range (expected "
                "0..64k)");
  EXPECT_ERRORS(LISTEN "admin: {redact_headers: [\"bad name\"]}\n",
                "proxy.yaml:3:26: admin.redact_headers[0]: invalid header name \"bad name\"");
  EXPECT_ERRORS(LISTEN "admin: {replay: 1}\n",
                "proxy.yaml:3:17: admin.replay: expected true or false, found \"1\"");
}

CONFIG_TEST(access_log_off_and_file) {
  struct config *cfg = load_ok(LISTEN "access_log: {path: off}\n");
  cr_assert_null(cfg->access_log.path);
  config_free(cfg);
  cfg = load_ok(LISTEN "access_log: {path: /var/log/ferry.log, format: json}\n");
  cr_assert_str_eq(cfg->access_log.path, "/var/log/ferry.log");
  cr_assert_eq(cfg->access_log.format, LOG_FORMAT_JSON);
  config_free(cfg);
  EXPECT_ERRORS(LISTEN "access_log: {format: xml}\n",
                "proxy.yaml:3:22: access_log.format: unknown value \"xml\" (expected combined or "
                "json)");
}

/* Every key of SPEC §2, each with a value other than its default. */
static const char full_yaml[] =
    "listeners:\n"
    "  - address: 0.0.0.0:8080\n"
    "    proxy_protocol: true\n"
    "  - address: \"[::1]:8443\"\n"
    "workers: 4\n"
    "admin:\n"
    "  address: 127.0.0.1:9902\n"
    "  redact: false\n"
    "  inspect_keep: 50\n"
    "access_log:\n"
    "  path: /var/log/ferry/access.log\n"
    "  format: json\n"
    "limits:\n"
    "  max_request_header_bytes: 16k\n"
    "  max_request_body_bytes: 1m\n"
    "  max_connections: 2000\n"
    "timeouts:\n"
    "  client_header: 5s\n"
    "  client_idle: 2m\n"
    "  upstream_connect: 250ms\n"
    "  upstream_response: 1h\n"
    "  upstream_idle: 90\n"
    "  drain: 15s\n"
    "upstreams:\n"
    "  api:\n"
    "    servers:\n"
    "      - address: 127.0.0.1:9001\n"
    "        weight: 2\n"
    "      - address: 127.0.0.1:9002\n"
    "    balance: hash\n"
    "    hash_key: cookie:session\n"
    "    keepalive:\n"
    "      max_idle: 8\n"
    "      idle_timeout: 30s\n"
    "    health_check:\n"
    "      path: /status\n"
    "      interval: 2s\n"
    "      timeout: 500ms\n"
    "      unhealthy_threshold: 5\n"
    "      healthy_threshold: 1\n"
    "    retries: 0\n"
    "  static:\n"
    "    servers: [{address: \"[::1]:9100\"}]\n"
    "    balance: least_conn\n"
    "routes:\n"
    "  - host: api.example.com\n"
    "    path_prefix: /users\n"
    "    methods: [GET, POST]\n"
    "    headers: {X-Canary: \"1\"}\n"
    "    upstream: api\n"
    "    rewrite_prefix: /v2/users\n"
    "    set_host: users.internal\n"
    "    request_headers:\n"
    "      set: {X-Env: prod}\n"
    "      add: {X-Via-Route: users}\n"
    "      remove: [X-Debug]\n"
    "    response_headers:\n"
    "      set: {X-Frame-Options: DENY}\n"
    "      add: {X-Served-By: ferry}\n"
    "      remove: [Server, X-Powered-By]\n"
    "    inspect: true\n"
    "  - host: \"*.static.example.com\"\n"
    "    path: /exact\n"
    "    upstream: static\n"
    "  - path_regex: ^/v[0-9]+/\n"
    "    upstream: static\n"
    "  - path_prefix: /old\n"
    "    redirect: {location: \"https://example.com/new\", status: 301}\n"
    "  - path: /ping\n"
    "    respond: {status: 201, body: \"pong\\n\", content_type: application/json}\n";

CONFIG_TEST(full_file_sets_every_key) {
  struct config *cfg = load_ok(full_yaml);
  char ip[64];

  cr_assert_eq(cfg->nlisteners, 2);
  cr_assert_str_eq(cfg->listeners[0].address, "0.0.0.0:8080");
  cr_assert(cfg->listeners[0].proxy_protocol);
  cr_assert_str_eq(ip_of(&cfg->listeners[0].addr, ip, sizeof ip), "0.0.0.0");
  cr_assert_str_eq(cfg->listeners[1].address, "[::1]:8443");
  cr_assert_eq(cfg->listeners[1].addr.ss_family, AF_INET6);
  cr_assert_eq(port_of(&cfg->listeners[1].addr), 8443);
  cr_assert_not(cfg->listeners[1].proxy_protocol);
  cr_assert_eq(cfg->listeners[1].line, 4);
  cr_assert_eq(cfg->workers, 4);

  cr_assert(cfg->admin.enabled);
  cr_assert_str_eq(cfg->admin.address, "127.0.0.1:9902");
  cr_assert_eq(port_of(&cfg->admin.addr), 9902);
  cr_assert_not(cfg->admin.redact);
  cr_assert_eq(cfg->admin.inspect_keep, 50);

  cr_assert_str_eq(cfg->access_log.path, "/var/log/ferry/access.log");
  cr_assert_eq(cfg->access_log.format, LOG_FORMAT_JSON);
  cr_assert_eq(cfg->limits.max_request_header_bytes, 16384);
  cr_assert_eq(cfg->limits.max_request_body_bytes, 1048576);
  cr_assert_eq(cfg->limits.max_connections, 2000);
  cr_assert_eq(cfg->timeouts.client_header_ms, 5000);
  cr_assert_eq(cfg->timeouts.client_idle_ms, 120000);
  cr_assert_eq(cfg->timeouts.upstream_connect_ms, 250);
  cr_assert_eq(cfg->timeouts.upstream_response_ms, 3600000);
  cr_assert_eq(cfg->timeouts.upstream_idle_ms, 90000);
  cr_assert_eq(cfg->timeouts.drain_ms, 15000);

  cr_assert_eq(cfg->nupstreams, 2);
  struct cfg_upstream *api = &cfg->upstreams[0], *st = &cfg->upstreams[1];
  cr_assert_str_eq(api->name, "api");
  cr_assert_eq(api->nservers, 2);
  cr_assert_str_eq(api->servers[0].address, "127.0.0.1:9001");
  cr_assert_str_eq(api->servers[0].host, "127.0.0.1");
  cr_assert_eq(api->servers[0].port, 9001);
  cr_assert_eq(api->servers[0].weight, 2);
  cr_assert_eq(api->servers[0].line, 27);
  cr_assert_str_eq(ip_of(&api->servers[0].addr, ip, sizeof ip), "127.0.0.1");
  cr_assert_eq(port_of(&api->servers[0].addr), 9001);
  cr_assert_eq(api->servers[1].port, 9002);
  cr_assert_eq(api->servers[1].weight, 1);
  cr_assert_eq(api->balance, BALANCE_HASH);
  cr_assert_str_eq(api->hash_key, "cookie:session");
  cr_assert_eq(api->keepalive_max_idle, 8);
  cr_assert_eq(api->keepalive_idle_timeout_ms, 30000);
  cr_assert(api->health_check.enabled);
  cr_assert_str_eq(api->health_check.path, "/status");
  cr_assert_eq(api->health_check.interval_ms, 2000);
  cr_assert_eq(api->health_check.timeout_ms, 500);
  cr_assert_eq(api->health_check.unhealthy_threshold, 5);
  cr_assert_eq(api->health_check.healthy_threshold, 1);
  cr_assert_eq(api->retries, 0);
  cr_assert_str_eq(st->name, "static");
  cr_assert_str_eq(st->servers[0].host, "::1");
  cr_assert_eq(st->balance, BALANCE_LEAST_CONN);
  cr_assert_eq(st->keepalive_idle_timeout_ms, 90000);
  cr_assert_not(st->health_check.enabled);

  cr_assert_eq(cfg->nroutes, 5);
  struct cfg_route *r = &cfg->routes[0];
  cr_assert_eq(r->index, 0);
  cr_assert_eq(r->line, 46);
  cr_assert_str_eq(r->host, "api.example.com");
  cr_assert_not(r->host_wildcard);
  cr_assert_eq(r->path_kind, PATH_PREFIX);
  cr_assert_str_eq(r->path, "/users");
  cr_assert_eq(r->methods, M(HTTP_GET) | M(HTTP_POST));
  cr_assert_eq(r->nheaders, 1);
  cr_assert_str_eq(r->headers[0].name, "X-Canary");
  cr_assert_str_eq(r->headers[0].value, "1");
  cr_assert_eq(r->action, ACTION_UPSTREAM);
  cr_assert_str_eq(r->upstream, "api");
  cr_assert_eq(r->upstream_index, 0);
  cr_assert_str_eq(r->rewrite_prefix, "/v2/users");
  cr_assert_str_eq(r->set_host, "users.internal");
  cr_assert_eq(r->request_headers.nset, 1);
  cr_assert_str_eq(r->request_headers.set[0].name, "X-Env");
  cr_assert_str_eq(r->request_headers.set[0].value, "prod");
  cr_assert_eq(r->request_headers.nadd, 1);
  cr_assert_str_eq(r->request_headers.add[0].name, "X-Via-Route");
  cr_assert_str_eq(r->request_headers.add[0].value, "users");
  cr_assert_eq(r->request_headers.nremove, 1);
  cr_assert_str_eq(r->request_headers.remove[0], "X-Debug");
  cr_assert_eq(r->response_headers.nset, 1);
  cr_assert_str_eq(r->response_headers.set[0].name, "X-Frame-Options");
  cr_assert_str_eq(r->response_headers.set[0].value, "DENY");
  cr_assert_eq(r->response_headers.nadd, 1);
  cr_assert_str_eq(r->response_headers.add[0].name, "X-Served-By");
  cr_assert_str_eq(r->response_headers.add[0].value, "ferry");
  cr_assert_eq(r->response_headers.nremove, 2);
  cr_assert_str_eq(r->response_headers.remove[0], "Server");
  cr_assert_str_eq(r->response_headers.remove[1], "X-Powered-By");
  cr_assert(r->inspect);

  r = &cfg->routes[1];
  cr_assert_str_eq(r->host, ".static.example.com");
  cr_assert(r->host_wildcard);
  cr_assert_eq(r->path_kind, PATH_EXACT);
  cr_assert_str_eq(r->path, "/exact");
  cr_assert_eq(r->upstream_index, 1);

  r = &cfg->routes[2];
  cr_assert_eq(r->path_kind, PATH_REGEX);
  cr_assert_not_null(r->regex);
  cr_assert_eq(r->upstream_index, 1);

  r = &cfg->routes[3];
  cr_assert_eq(r->index, 3);
  cr_assert_eq(r->action, ACTION_REDIRECT);
  cr_assert_str_eq(r->redirect_location, "https://example.com/new");
  cr_assert_eq(r->redirect_status, 301);

  r = &cfg->routes[4];
  cr_assert_eq(r->action, ACTION_RESPOND);
  cr_assert_eq(r->path_kind, PATH_EXACT);
  cr_assert_eq(r->respond_status, 201);
  cr_assert_str_eq(r->respond_body, "pong\n");
  cr_assert_str_eq(r->respond_content_type, "application/json");
  config_free(cfg);
}

CONFIG_TEST(spec_example_file_loads) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  const char *path = FERRY_TEST_DATA "/config/spec_example.yaml";
  int rc = config_load_file(path, &cfg, &d);
  cr_assert_eq(rc, 0, "%s", joined(&d));
  cr_assert_str_eq(cfg->file, path);
  cr_assert_eq(cfg->nlisteners, 1);
  cr_assert_eq(cfg->workers, 0);
  cr_assert(cfg->admin.enabled);
  cr_assert_eq(cfg->nupstreams, 1);
  cr_assert_eq(cfg->upstreams[0].nservers, 2);
  cr_assert_eq(cfg->nroutes, 3);
  cr_assert_eq(cfg->routes[0].methods, M(HTTP_GET) | M(HTTP_POST));
  cr_assert_str_eq(cfg->routes[2].respond_body, "pong\n");
  config_free(cfg);
  config_diag_free(&d);
}

CONFIG_TEST(diagnostics_accumulate_across_loads) {
  struct config_diag d = {0};
  struct config *cfg = NULL;
  const char *bad = "workers: 2\n";
  cr_assert_eq(config_load_string("a.yaml", bad, strlen(bad), &cfg, &d), -1);
  cr_assert_eq(config_load_string("b.yaml", bad, strlen(bad), &cfg, &d), -1);
  cr_assert_eq(d.n, 2);
  cr_assert_eq(d.nerrors, 2);
  cr_assert_str_eq(d.msgs[0], "a.yaml:1:1: at least one listener is required");
  cr_assert_str_eq(d.msgs[1], "b.yaml:1:1: at least one listener is required");
  config_diag_free(&d);
  cr_assert_eq(d.n, 0);
  cr_assert_null(d.msgs);
}
