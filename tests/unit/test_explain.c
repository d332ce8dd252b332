/* Unit tests for src/explain.c (and router_route_check): the route a
 * request takes, the first failing condition of every earlier route, the
 * rewritten request line and forwarded headers, redirect and respond
 * routes, requests refused before routing, and agreement with
 * router_match over a grid of requests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/explain.h"
#include "leak_check.h"

static const char yaml[] = "listeners: [{address: 127.0.0.1:8080}]\n"
                           "upstreams:\n"
                           "  users: {servers: [{address: 127.0.0.1:9001}]}\n"
                           "  canary: {servers: [{address: 127.0.0.1:9002}]}\n"
                           "  web: {servers: [{address: 127.0.0.1:9003}]}\n"
                           "routes:\n"
                           "  - host: admin.example.com\n" /* 0 */
                           "    upstream: web\n"
                           "  - path: /healthz\n" /* 1 */
                           "    respond: {status: 204}\n"
                           "  - host: \"*.example.org\"\n" /* 2 */
                           "    upstream: web\n"
                           "  - path_prefix: /old\n" /* 3 */
                           "    redirect: {location: \"https://example.com/new\", status: 301}\n"
                           "  - path_prefix: /users\n" /* 4 */
                           "    methods: [POST]\n"
                           "    upstream: users\n"
                           "  - path_prefix: /users\n" /* 5 */
                           "    headers: {X-Canary: \"1\"}\n"
                           "    upstream: canary\n"
                           "  - path_prefix: /users\n" /* 6 */
                           "    rewrite_prefix: /v2/users\n"
                           "    set_host: users.internal\n"
                           "    upstream: users\n"
                           "    request_headers:\n"
                           "      set: {X-Env: prod}\n"
                           "      add: {X-Via-Route: users}\n"
                           "      remove: [X-Debug]\n"
                           "  - path_regex: \"^/v[0-9]+/\"\n" /* 7 */
                           "    upstream: web\n";

static struct config *cfg;
static struct router *router;
static struct explain_result res;

static void setup(void) {
  struct config_diag d = {0};
  int rc = config_load_string("proxy.yaml", yaml, strlen(yaml), &cfg, &d);
  for (size_t i = 0; i < d.n; i++)
    fprintf(stderr, "%s\n", d.msgs[i]);
  config_diag_free(&d);
  cr_assert_eq(rc, 0);
  router = router_new(cfg);
  cr_assert_not_null(router);
  memset(&res, 0, sizeof res);
}

static void teardown(void) {
  explain_result_free(&res);
  router_free(router);
  config_free(cfg);
  abort_on_leaks();
}

TestSuite(explain, .init = setup, .fini = teardown);

static void run(const char *method, const char *url, const struct explain_header *h, size_t nh) {
  struct explain_query q = {method, url, h, nh, "10.1.2.3", "rid-test"};
  char err[256];
  explain_result_free(&res);
  cr_assert_eq(explain_run(cfg, router, &q, &res, err, sizeof err), 0, "%s", err);
}

static const char *fwd(const char *name) {
  for (size_t i = 0; i < res.nheaders; i++)
    if (strcasecmp(res.headers[i].name, name) == 0)
      return res.headers[i].value;
  return NULL;
}

static void assert_skip(size_t i, size_t index, enum router_skip why, const char *reason) {
  cr_assert_gt(res.nskipped, i);
  cr_assert_eq(res.skipped[i].index, index);
  cr_assert_eq(res.skipped[i].line, cfg->routes[index].line);
  cr_assert_eq(res.skipped[i].why, why, "skip %zu: %s", i, res.skipped[i].reason);
  cr_assert_str_eq(res.skipped[i].reason, reason);
}

Test(explain, rewrite_set_host_and_header_operations) {
  struct explain_header h[] = {
      {"X-Debug", "1"}, {"X-Forwarded-For", "192.0.2.9"}, {"Connection", "keep-alive"}};
  run("GET", "http://api.example.com/users/7?x=1", h, 3);
  cr_assert(res.matched);
  cr_assert_eq(res.route, &cfg->routes[6]);
  cr_assert_str_eq(res.action, "upstream");
  cr_assert_eq(res.status, 0);
  cr_assert_str_eq(res.request_line, "GET /v2/users/7?x=1 HTTP/1.1");
  cr_assert_str_eq(fwd("Host"), "users.internal");
  cr_assert_str_eq(fwd("X-Env"), "prod");
  cr_assert_str_eq(fwd("X-Via-Route"), "users");
  cr_assert_null(fwd("X-Debug"), "removed by request_headers.remove");
  cr_assert_null(fwd("Connection"), "hop-by-hop");
  cr_assert_str_eq(fwd("X-Forwarded-For"), "192.0.2.9, 10.1.2.3");
  cr_assert_str_eq(fwd("X-Forwarded-Host"), "api.example.com");
  cr_assert_str_eq(fwd("X-Forwarded-Proto"), "http");
  cr_assert_str_eq(fwd("Via"), "1.1 ferry");
  cr_assert_str_eq(fwd("X-Request-Id"), "rid-test");
  assert_skip(0, 0, ROUTER_SKIP_HOST, "host: api.example.com is not admin.example.com");
  assert_skip(1, 1, ROUTER_SKIP_PATH, "path: /users/7 is not /healthz (path)");
  assert_skip(2, 2, ROUTER_SKIP_HOST,
              "host: api.example.com is not a subdomain of example.org (host *.example.org)");
  assert_skip(3, 3, ROUTER_SKIP_PATH, "path: /users/7 is not /old or below it (path_prefix /old)");
  assert_skip(4, 4, ROUTER_SKIP_METHOD, "method: GET is not one of POST (methods)");
  assert_skip(5, 5, ROUTER_SKIP_HEADER,
              "header: X-Canary is missing (this route wants X-Canary: 1)");
  cr_assert_eq(res.nskipped, 6);
}

Test(explain, header_with_another_value_and_a_match_on_it) {
  struct explain_header h[] = {{"X-Canary", "0"}};
  run("GET", "http://a.test/users", h, 1);
  cr_assert_eq(res.route, &cfg->routes[6]);
  assert_skip(5, 5, ROUTER_SKIP_HEADER, "header: X-Canary is \"0\", this route wants \"1\"");
  struct explain_header h1[] = {{"x-canary", "1"}};
  run("GET", "http://a.test/users/1", h1, 1);
  cr_assert_eq(res.route, &cfg->routes[5]);
  cr_assert_str_eq(res.request_line, "GET /users/1 HTTP/1.1", "no rewrite on this route");
  cr_assert_eq(res.nskipped, 5);
}

Test(explain, the_client_request_id_is_kept_when_sane) {
  struct explain_header h[] = {{"X-Request-Id", "abc-123"}};
  run("POST", "http://a.test/users", h, 1);
  cr_assert_eq(res.route, &cfg->routes[4]);
  cr_assert_str_eq(fwd("X-Request-Id"), "abc-123");
}

Test(explain, origin_form_with_a_host_header) {
  struct explain_header h[] = {{"Host", "x.example.org:8080"}};
  run("GET", "/anything", h, 1);
  cr_assert_eq(res.route, &cfg->routes[2], "wildcard host, port stripped");
  cr_assert_str_eq(fwd("Host"), "x.example.org:8080");
}

Test(explain, redirect_keeps_the_query) {
  run("GET", "http://a.test/old/page?q=1", NULL, 0);
  cr_assert(res.matched);
  cr_assert_str_eq(res.action, "redirect");
  cr_assert_eq(res.status, 301);
  cr_assert_str_eq(res.location, "https://example.com/new?q=1");
  cr_assert_null(res.request_line);
  cr_assert_eq(res.nheaders, 0);
}

Test(explain, respond_route) {
  run("GET", "http://a.test/healthz", NULL, 0);
  cr_assert_str_eq(res.action, "respond");
  cr_assert_eq(res.status, 204);
  cr_assert_eq(res.nskipped, 1);
}

Test(explain, no_match_lists_every_route) {
  run("GET", "http://a.test/nothing", NULL, 0);
  cr_assert_not(res.matched);
  cr_assert_null(res.route);
  cr_assert_eq(res.status, 404);
  cr_assert_eq(res.nskipped, cfg->nroutes);
  assert_skip(7, 7, ROUTER_SKIP_PATH, "path: /nothing does not match path_regex ^/v[0-9]+/");
}

Test(explain, refused_before_routing) {
  run("GET", "/x", NULL, 0);
  cr_assert_not(res.matched);
  cr_assert_eq(res.status, 400);
  cr_assert_str_eq(res.error, "bad request: HTTP/1.1 requests must carry a Host header");
  run("GET", "http://a.test/../etc", NULL, 0);
  cr_assert_eq(res.status, 400);
  cr_assert_str_eq(res.error, "bad request: malformed request path");
}

Test(explain, normalised_path_is_what_routes) {
  run("GET", "http://a.test/%75sers/./7", NULL, 0);
  cr_assert_eq(res.route, &cfg->routes[6]);
  cr_assert_str_eq(res.request_line, "GET /v2/users/7 HTTP/1.1");
}

Test(explain, unknown_method_is_an_error) {
  struct explain_query q = {"get", "http://a.test/", NULL, 0, NULL, NULL};
  char err[256];
  cr_assert_eq(explain_run(cfg, router, &q, &res, err, sizeof err), -1);
  cr_assert_not_null(strstr(err, "unknown method \"get\""), "%s", err);
}

Test(explain, json_shape) {
  run("GET", "http://a.test/users/7", NULL, 0);
  struct inspect_out o = {0};
  explain_render_json(&o, &res);
  cr_assert_not(o.oom);
  cr_assert(strncmp(o.p, "{\"matched\":true,\"route\":{\"index\":6,\"line\":", 42) == 0, "%s", o.p);
  cr_assert_not_null(strstr(o.p, "\"action\":\"upstream\",\"upstream\":\"users\""), "%s", o.p);
  cr_assert_not_null(strstr(o.p, "\"request_line\":\"GET /v2/users/7 HTTP/1.1\""), "%s", o.p);
  cr_assert_not_null(strstr(o.p, "[\"X-Env\",\"prod\"]"), "%s", o.p);
  cr_assert_not_null(strstr(o.p, "\"skipped\":[{\"index\":0,\"line\":"), "%s", o.p);
  free(o.p);
}

/* The explanation's route is router_match's, and every skipped route
 * really fails, over a grid of hosts, paths, methods and headers. */
Test(explain, agrees_with_the_router) {
  const char *hosts[] = {"admin.example.com", "a.example.org", "example.org", "x.test"};
  const char *paths[] = {"/", "/users", "/users/1", "/usersX", "/old", "/v2/x", "/healthz"};
  const char *methods[] = {"GET", "POST"};
  const char *canary[] = {NULL, "1", "0"};
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 7; b++)
      for (size_t c = 0; c < 2; c++)
        for (size_t d = 0; d < 3; d++) {
          char url[128];
          snprintf(url, sizeof url, "http://%s%s", hosts[a], paths[b]);
          struct explain_header h[] = {{"X-Canary", (char *)canary[d]}};
          run(methods[c], url, h, canary[d] ? 1 : 0);
          size_t expect = res.matched ? res.route->index : cfg->nroutes;
          cr_assert_eq(res.nskipped, expect, "%s %s", methods[c], url);
          for (size_t i = 0; i < res.nskipped; i++)
            cr_assert_neq(res.skipped[i].why, ROUTER_SKIP_NONE, "%s %s route %zu", methods[c], url,
                          i);
        }
}
