/* Unit tests for src/router.c: host/path/method/header matching in file
 * order, path normalisation, target rewriting and port stripping. Configs
 * are built by hand; nothing here depends on the config parser. */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ferry/router.h"
#include "leak_check.h"

#define MAXR 300

/* Per-test fixture: routes are appended with add_route(), then compiled. */
static struct cfg_route routes[MAXR];
static struct config cfg;
static struct router *rt;
static regex_t regexes[8];
static size_t nregex;
static char hostbuf[MAXR][64];

static void setup(void) {
  memset(routes, 0, sizeof routes);
  memset(&cfg, 0, sizeof cfg);
  cfg.routes = routes;
  rt = NULL;
  nregex = 0;
}

static void teardown(void) {
  router_free(rt);
  for (size_t i = 0; i < nregex; i++)
    regfree(&regexes[i]);
  abort_on_leaks();
}

TestSuite(router, .init = setup, .fini = teardown);

/* host: NULL = any, "*.x" = wildcard, else exact. kind/path as in config.h.
 * Returns the route so tests can add methods, headers or a rewrite. */
static struct cfg_route *add_route(const char *host, enum cfg_path_kind kind, const char *path) {
  cr_assert_lt(cfg.nroutes, MAXR);
  struct cfg_route *r = &routes[cfg.nroutes];
  r->index = cfg.nroutes++;
  if (host && host[0] == '*') {
    r->host = (char *)host + 1;
    r->host_wildcard = true;
  } else {
    r->host = (char *)host;
  }
  r->path_kind = kind;
  r->path = (char *)path;
  if (kind == PATH_REGEX) {
    cr_assert_lt(nregex, 8);
    cr_assert_eq(regcomp(&regexes[nregex], path, REG_EXTENDED | REG_NOSUB), 0);
    r->regex = &regexes[nregex++];
  }
  return r;
}

static void compile(void) {
  rt = router_new(&cfg);
  cr_assert_not_null(rt);
}

/* Index of the route matching (host, path, method, headers), or -1. */
static long match_full(const char *host, const char *path, int method,
                       const struct hdr_list *headers) {
  struct route_query q = {slice_cstr(host), slice_cstr(path), method, headers};
  const struct cfg_route *m = router_match(rt, &q);
  return m ? (long)m->index : -1;
}

static long match(const char *host, const char *path) {
  return match_full(host, path, HTTP_GET, NULL);
}

/* ---- hosts ----------------------------------------------------------- */

Test(router, exact_host_matches_case_insensitively) {
  add_route("api.example.com", PATH_ANY, NULL);
  compile();
  cr_assert_eq(match("api.example.com", "/"), 0);
  cr_assert_eq(match("API.Example.COM", "/"), 0);
  cr_assert_eq(match("api.example.org", "/"), -1);
  cr_assert_eq(match("api.example.co", "/"), -1);
}

Test(router, host_with_trailing_dot_matches_exact_host) {
  add_route("api.example.com", PATH_ANY, NULL);
  compile();
  cr_assert_eq(match("api.example.com.", "/"), 0);
}

Test(router, wildcard_host_matches_subdomains) {
  add_route("*.example.com", PATH_ANY, NULL);
  compile();
  cr_assert_eq(match("a.example.com", "/"), 0);
  cr_assert_eq(match("a.b.example.com", "/"), 0);
  cr_assert_eq(match("A.EXAMPLE.com", "/"), 0);
}

Test(router, wildcard_host_does_not_match_apex) {
  add_route("*.example.com", PATH_ANY, NULL);
  compile();
  cr_assert_eq(match("example.com", "/"), -1);
  cr_assert_eq(match(".example.com", "/"), -1);
  cr_assert_eq(match("badexample.com", "/"), -1);
  cr_assert_eq(match("a.example.com.evil", "/"), -1);
}

Test(router, wildcard_covers_host_that_also_has_exact_routes) {
  add_route("*.example.com", PATH_PREFIX, "/w");
  add_route("api.example.com", PATH_PREFIX, "/e");
  compile();
  cr_assert_eq(match("api.example.com", "/w"), 0);
  cr_assert_eq(match("api.example.com", "/e"), 1);
  cr_assert_eq(match("web.example.com", "/e"), -1);
}

Test(router, hostless_route_matches_any_host) {
  add_route(NULL, PATH_ANY, NULL);
  compile();
  cr_assert_eq(match("anything.test", "/"), 0);
  cr_assert_eq(match("", "/"), 0);
}

Test(router, hostless_request_matches_only_hostless_routes) {
  add_route("api.example.com", PATH_ANY, NULL);
  add_route("*.example.com", PATH_ANY, NULL);
  add_route(NULL, PATH_PREFIX, "/only");
  compile();
  cr_assert_eq(match(NULL, "/only/x"), 2);
  cr_assert_eq(match(NULL, "/other"), -1);
}

Test(router, first_match_in_file_order_wins) {
  add_route(NULL, PATH_PREFIX, "/users");
  add_route("api.example.com", PATH_PREFIX, "/users");
  add_route("api.example.com", PATH_PREFIX, "/");
  add_route(NULL, PATH_PREFIX, "/");
  compile();
  cr_assert_eq(match("api.example.com", "/users/7"), 0);
  cr_assert_eq(match("api.example.com", "/other"), 2);
  cr_assert_eq(match("else.example.com", "/other"), 3);
}

Test(router, exact_wildcard_and_hostless_candidates_merge_in_file_order) {
  add_route("a.example.com", PATH_EXACT, "/1");
  add_route(NULL, PATH_EXACT, "/2");
  add_route("*.example.com", PATH_EXACT, "/2");
  add_route("a.example.com", PATH_EXACT, "/2");
  add_route("*.example.com", PATH_PREFIX, "/");
  add_route(NULL, PATH_PREFIX, "/");
  compile();
  cr_assert_eq(match("a.example.com", "/1"), 0);
  cr_assert_eq(match("a.example.com", "/2"), 1);
  cr_assert_eq(match("a.example.com", "/3"), 4);
  cr_assert_eq(match("b.example.com", "/2"), 1);
  cr_assert_eq(match("b.example.com", "/3"), 4);
  cr_assert_eq(match("other.test", "/3"), 5);
}

Test(router, unknown_host_falls_back_to_wildcard_then_hostless) {
  add_route("known.test", PATH_ANY, NULL);
  add_route("*.wild.test", PATH_ANY, NULL);
  add_route(NULL, PATH_ANY, NULL);
  compile();
  cr_assert_eq(match("x.wild.test", "/"), 1);
  cr_assert_eq(match("unknown.test", "/"), 2);
}

Test(router, duplicate_exact_host_routes_keep_file_order) {
  add_route("h.test", PATH_EXACT, "/a");
  add_route("H.TEST", PATH_EXACT, "/b");
  add_route("h.test", PATH_PREFIX, "/");
  compile();
  cr_assert_eq(match("h.test", "/a"), 0);
  cr_assert_eq(match("h.test", "/b"), 1);
  cr_assert_eq(match("h.test", "/c"), 2);
}

Test(router, many_exact_hosts_each_find_their_route) {
  for (int i = 0; i < 250; i++) {
    snprintf(hostbuf[i], sizeof hostbuf[i], "svc%d.internal", i);
    add_route(hostbuf[i], PATH_ANY, NULL);
  }
  compile();
  char h[64];
  for (int i = 0; i < 250; i++) {
    snprintf(h, sizeof h, "SVC%d.internal", i);
    cr_assert_eq(match(h, "/"), i);
  }
  cr_assert_eq(match("svc250.internal", "/"), -1);
}

Test(router, empty_config_matches_nothing) {
  compile();
  cr_assert_eq(match("a.test", "/"), -1);
  cr_assert_eq(match(NULL, "/"), -1);
}

/* ---- paths ----------------------------------------------------------- */

Test(router, exact_path_matches_only_equal_path) {
  add_route(NULL, PATH_EXACT, "/ping");
  compile();
  cr_assert_eq(match("h", "/ping"), 0);
  cr_assert_eq(match("h", "/ping/"), -1);
  cr_assert_eq(match("h", "/pin"), -1);
  cr_assert_eq(match("h", "/PING"), -1);
}

Test(router, prefix_matches_segment_boundary_only) {
  add_route(NULL, PATH_PREFIX, "/users");
  compile();
  cr_assert_eq(match("h", "/users"), 0);
  cr_assert_eq(match("h", "/users/"), 0);
  cr_assert_eq(match("h", "/users/7"), 0);
  cr_assert_eq(match("h", "/usersX"), -1);
  cr_assert_eq(match("h", "/user"), -1);
  cr_assert_eq(match("h", "/Users"), -1);
}

Test(router, prefix_ending_in_slash_is_plain_string_prefix) {
  add_route(NULL, PATH_PREFIX, "/static/");
  compile();
  cr_assert_eq(match("h", "/static/"), 0);
  cr_assert_eq(match("h", "/static/app.js"), 0);
  cr_assert_eq(match("h", "/static"), -1);
  cr_assert_eq(match("h", "/staticX"), -1);
}

Test(router, root_prefix_matches_every_path) {
  add_route(NULL, PATH_PREFIX, "/");
  compile();
  cr_assert_eq(match("h", "/"), 0);
  cr_assert_eq(match("h", "/anything/at/all"), 0);
}

Test(router, regex_route_matches_normalised_path) {
  add_route(NULL, PATH_REGEX, "^/v[0-9]+/");
  compile();
  cr_assert_eq(match("h", "/v2/users"), 0);
  cr_assert_eq(match("h", "/v/users"), -1);
  cr_assert_eq(match("h", "/api/v2/"), -1);
}

Test(router, regex_sees_only_the_path_slice) {
  add_route(NULL, PATH_REGEX, "^/a$");
  compile();
  const char buf[] = "/abc";
  struct route_query q = {SLICE_LIT("h"), slice_make(buf, 2), HTTP_GET, NULL};
  cr_assert_not_null(router_match(rt, &q));
  q.path = slice_make(buf, 3);
  cr_assert_null(router_match(rt, &q));
}

Test(router, dot_segments_cannot_escape_prefix_route) {
  add_route(NULL, PATH_PREFIX, "/public");
  add_route(NULL, PATH_PREFIX, "/admin");
  compile();
  const char *targets[] = {"/public/../admin", "/public/%2e%2e/admin", "/public/%2E./admin?x",
                           "/public/./../admin/"};
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    char out[64];
    size_t n;
    cr_assert_eq(router_normalize_path(slice_cstr(targets[i]), out, sizeof out, &n), 0);
    struct route_query q = {SLICE_LIT("h"), slice_make(out, n), HTTP_GET, NULL};
    const struct cfg_route *m = router_match(rt, &q);
    cr_assert_not_null(m);
    cr_assert_eq(m->index, 1, "%s", targets[i]);
  }
}

/* ---- methods and headers --------------------------------------------- */

Test(router, methods_bitmask_restricts_route) {
  struct cfg_route *r = add_route(NULL, PATH_PREFIX, "/w");
  r->methods = (1ull << HTTP_POST) | (1ull << HTTP_PUT);
  add_route(NULL, PATH_PREFIX, "/");
  compile();
  cr_assert_eq(match_full("h", "/w", HTTP_POST, NULL), 0);
  cr_assert_eq(match_full("h", "/w", HTTP_PUT, NULL), 0);
  cr_assert_eq(match_full("h", "/w", HTTP_GET, NULL), 1);
  cr_assert_eq(match_full("h", "/w", HTTP_DELETE, NULL), 1);
}

Test(router, out_of_range_method_never_matches_method_list) {
  struct cfg_route *r = add_route(NULL, PATH_ANY, NULL);
  r->methods = ~0ull;
  compile();
  cr_assert_eq(match_full("h", "/", 64, NULL), -1);
  cr_assert_eq(match_full("h", "/", -1, NULL), -1);
}

Test(router, header_conditions_require_exact_value) {
  static struct cfg_kv conds[] = {{"X-Canary", "1"}, {"X-Team", "blue"}};
  struct cfg_route *r = add_route(NULL, PATH_ANY, NULL);
  r->headers = conds;
  r->nheaders = 2;
  add_route(NULL, PATH_ANY, NULL);
  compile();

  struct hdr v[4];
  struct hdr_list l = {.v = v, .cap = 4};
  http_head_push(&l, SLICE_LIT("x-canary"), SLICE_LIT(" 1 "));
  cr_assert_eq(match_full("h", "/", HTTP_GET, &l), 1); /* X-Team missing */
  http_head_push(&l, SLICE_LIT("X-TEAM"), SLICE_LIT("Blue"));
  cr_assert_eq(match_full("h", "/", HTTP_GET, &l), 1); /* value is case-sensitive */
  l.n = 1;
  http_head_push(&l, SLICE_LIT("X-Team"), SLICE_LIT("blue"));
  cr_assert_eq(match_full("h", "/", HTTP_GET, &l), 0);
  cr_assert_eq(match_full("h", "/", HTTP_GET, NULL), 1);
}

Test(router, no_route_returns_null) {
  add_route("a.test", PATH_EXACT, "/x");
  compile();
  cr_assert_eq(match("a.test", "/y"), -1);
  cr_assert_eq(match("b.test", "/x"), -1);
}

/* ---- compiled form: trie and host sets against a linear reference ----- */

Test(router, routes_at_different_depths_keep_file_order) {
  add_route(NULL, PATH_PREFIX, "/a/b/c");
  add_route(NULL, PATH_PREFIX, "/a");
  add_route(NULL, PATH_PREFIX, "/a/b");
  add_route(NULL, PATH_EXACT, "/a/b");
  add_route(NULL, PATH_PREFIX, "/a/b/");
  compile();
  cr_assert_eq(match("h", "/a/b/c/d"), 0);
  cr_assert_eq(match("h", "/a/b/cd"), 1);
  cr_assert_eq(match("h", "/a/b"), 1);
  cr_assert_eq(match("h", "/a"), 1);
  cr_assert_eq(match("h", "/ab"), -1);
}

Test(router, exact_plain_and_segment_routes_on_one_node) {
  add_route(NULL, PATH_PREFIX, "/s/");
  add_route(NULL, PATH_EXACT, "/s");
  add_route(NULL, PATH_PREFIX, "/s");
  add_route(NULL, PATH_EXACT, "/");
  add_route(NULL, PATH_EXACT, "/s/");
  compile();
  cr_assert_eq(match("h", "/s/x"), 0);
  cr_assert_eq(match("h", "/s/"), 0);
  cr_assert_eq(match("h", "/s"), 1);
  cr_assert_eq(match("h", "/"), 3);
  cr_assert_eq(match("h", "//"), -1);
}

Test(router, methods_on_an_earlier_trie_route_fall_through_to_a_later_one) {
  struct cfg_route *r = add_route("h.test", PATH_PREFIX, "/api");
  r->methods = 1ull << HTTP_POST;
  add_route(NULL, PATH_REGEX, "^/api/x$");
  add_route("*.test", PATH_PREFIX, "/api/x");
  add_route("h.test", PATH_ANY, NULL);
  compile();
  cr_assert_eq(match_full("h.test", "/api/x", HTTP_POST, NULL), 0);
  cr_assert_eq(match_full("h.test", "/api/x", HTTP_GET, NULL), 1);
  cr_assert_eq(match_full("h.test", "/api/y", HTTP_GET, NULL), 3);
  cr_assert_eq(match_full("o.test", "/api/x/1", HTTP_GET, NULL), 2);
}

Test(router, nested_wildcards_and_trailing_dots) {
  add_route("*.b.example.com", PATH_PREFIX, "/x");
  add_route("*.example.com.", PATH_PREFIX, "/x");
  add_route("*.example.com", PATH_PREFIX, "/y");
  compile();
  cr_assert_eq(match("a.b.example.com", "/x"), 0);
  cr_assert_eq(match("b.example.com", "/x"), 1);
  cr_assert_eq(match("b.example.com.", "/y"), 2);
  cr_assert_eq(match("a..example.com", "/y"), 2);
  cr_assert_eq(match("example.com", "/y"), -1);
}

Test(router, ten_thousand_prefixes_on_one_host) {
  static struct cfg_route many[10000];
  static char paths[10000][24];
  memset(many, 0, sizeof many);
  cfg.routes = many;
  cfg.nroutes = 10000;
  for (int i = 0; i < 10000; i++) {
    snprintf(paths[i], sizeof paths[i], "/svc%d/v%d", i % 1000, i / 1000);
    many[i] = (struct cfg_route){
        .index = (size_t)i, .host = "h.test", .path_kind = PATH_PREFIX, .path = paths[i]};
  }
  compile();
  char p[64];
  for (int i = 0; i < 10000; i += 7) {
    snprintf(p, sizeof p, "/svc%d/v%d/items/%d", i % 1000, i / 1000, i);
    cr_assert_eq(match("h.test", p), i, "%s", p);
  }
  cr_assert_eq(match("h.test", "/svc1000/v0"), -1);
  cr_assert_eq(match("other.test", "/svc1/v0"), -1);
}

Test(router, long_hosts_and_segments_match_exactly) {
  add_route("a-very-long-service-name.eu-west-1.internal.example.com", PATH_PREFIX,
            "/organisations-and-teams/members-and-roles");
  add_route("a-very-long-service-name.eu-west-1.internal.example.com", PATH_PREFIX,
            "/organisations-and-teams/members-and-rolesX");
  add_route("*.eu-west-1.internal.example.com", PATH_PREFIX,
            "/organisations-and-teams/members-and-roles-2");
  add_route("a-very-long-service-name.eu-west-1.internal.example.org", PATH_ANY, NULL);
  compile();
  const char *h = "A-Very-Long-Service-Name.eu-west-1.internal.example.com";
  cr_assert_eq(match(h, "/organisations-and-teams/members-and-roles/7"), 0);
  cr_assert_eq(match(h, "/organisations-and-teams/members-and-rolesX"), 1);
  cr_assert_eq(match(h, "/organisations-and-teams/members-and-roles-2"), 2);
  cr_assert_eq(match(h, "/organisations-and-teams/members-and-roles-3"), -1);
  cr_assert_eq(match("a-very-long-service-name.eu-west-1.internal.example.net", "/"), -1);
  cr_assert_eq(match("a-very-long-service-name.eu-west-1.internal.example.org", "/x"), 3);
}

/* Linear reference: SPEC §2 matching straight from the route list. */
static bool ref_host(const struct cfg_route *r, const char *host) {
  if (!r->host)
    return true;
  if (!host || !*host)
    return false;
  char h[64], rh[64];
  snprintf(h, sizeof h, "%s", host);
  snprintf(rh, sizeof rh, "%s", r->host);
  size_t hn = strlen(h), rn = strlen(rh);
  if (hn > 1 && h[hn - 1] == '.')
    h[--hn] = '\0';
  if (rn > 1 && rh[rn - 1] == '.')
    rh[--rn] = '\0';
  if (!r->host_wildcard)
    return strcasecmp(h, rh) == 0;
  /* rh is ".suffix": something must come before it */
  return hn > rn && strcasecmp(h + hn - rn, rh) == 0;
}

static bool ref_path(const struct cfg_route *r, const char *path) {
  size_t m = r->path ? strlen(r->path) : 0, n = strlen(path);
  switch (r->path_kind) {
  case PATH_ANY:
    return true;
  case PATH_EXACT:
    return strcmp(path, r->path) == 0;
  case PATH_PREFIX:
    if (n < m || memcmp(path, r->path, m) != 0)
      return false;
    return r->path[m - 1] == '/' || n == m || path[m] == '/';
  case PATH_REGEX:
    return regexec(r->regex, path, 0, NULL, 0) == 0;
  }
  return false;
}

static long ref_match(const char *host, const char *path, int method) {
  for (size_t i = 0; i < cfg.nroutes; i++) {
    const struct cfg_route *r = &routes[i];
    if (ref_host(r, host) && ref_path(r, path) && (!r->methods || (r->methods & (1ull << method))))
      return (long)i;
  }
  return -1;
}

Test(router, random_tables_agree_with_linear_reference) {
  /* Long labels (over the router's in-place sizes) are in the mix too. */
  static const char *const hosts[] = {
      NULL,     NULL,       "a.test",   "A.Test",  "b.test",
      "*.test", "*.a.test", "x.a.test", "a.test.", "*.a-host-name-longer-than-forty-bytes.test"};
  static const char *const paths[] = {"/",
                                      "/a",
                                      "/a/",
                                      "/a/b",
                                      "/a/b/",
                                      "/ab",
                                      "/a/b/c",
                                      "/b",
                                      "/b/a",
                                      "//",
                                      "/a//b",
                                      "/a/segment-longer-than-sixteen",
                                      "/a/segment-longer-than-sixteen/b"};
  static const char *const qhosts[] = {"",
                                       "a.test",
                                       "A.TEST.",
                                       "x.a.test",
                                       "y.a.test",
                                       "b.test",
                                       "c.test",
                                       "test",
                                       "q.x.a.test",
                                       "other",
                                       "x.a-host-name-longer-than-forty-bytes.test",
                                       "a-host-name-longer-than-forty-bytes.test"};
  unsigned seed = 12345;
  for (int round = 0; round < 200; round++) {
    router_free(rt);
    rt = NULL;
    for (size_t i = 0; i < nregex; i++)
      regfree(&regexes[i]);
    nregex = 0;
    memset(routes, 0, sizeof routes);
    cfg.nroutes = 0;
    int n = 1 + (int)(rand_r(&seed) % 25);
    for (int i = 0; i < n; i++) {
      const char *h = hosts[rand_r(&seed) % (sizeof hosts / sizeof hosts[0])];
      unsigned k = rand_r(&seed) % 8;
      const char *p = paths[rand_r(&seed) % (sizeof paths / sizeof paths[0])];
      struct cfg_route *r;
      if (k == 0)
        r = add_route(h, PATH_ANY, NULL);
      else if (k == 1 && nregex < 8)
        r = add_route(h, PATH_REGEX, p[1] ? "^/a/?b" : "^/$");
      else if (k < 4)
        r = add_route(h, PATH_EXACT, p);
      else
        r = add_route(h, PATH_PREFIX, p);
      if (rand_r(&seed) % 5 == 0)
        r->methods = 1ull << HTTP_POST;
    }
    compile();
    for (size_t hi = 0; hi < sizeof qhosts / sizeof qhosts[0]; hi++)
      for (size_t pi = 0; pi < sizeof paths / sizeof paths[0]; pi++)
        for (int m = 0; m < 2; m++) {
          int method = m ? HTTP_POST : HTTP_GET;
          long want = ref_match(qhosts[hi], paths[pi], method);
          cr_assert_eq(match_full(qhosts[hi], paths[pi], method, NULL), want,
                       "round %d: host \"%s\" path \"%s\" method %d", round, qhosts[hi], paths[pi],
                       method);
        }
  }
}

/* ---- routes that can never match ------------------------------------- */

static bool covers(long a, long b) {
  return router_route_covers(&routes[a], &routes[b]);
}

Test(router, covers_by_host) {
  add_route(NULL, PATH_ANY, NULL);              /* 0 */
  add_route("a.example.com", PATH_ANY, NULL);   /* 1 */
  add_route("*.example.com", PATH_ANY, NULL);   /* 2 */
  add_route("*.x.example.com", PATH_ANY, NULL); /* 3 */
  add_route("A.Example.com", PATH_ANY, NULL);   /* 4 */
  add_route("b.x.example.com", PATH_ANY, NULL); /* 5 */
  add_route("*.xexample.com", PATH_ANY, NULL);  /* 6 */
  cr_assert(covers(0, 1) && covers(0, 2) && covers(0, 0));
  cr_assert(!covers(1, 0) && !covers(2, 0));
  cr_assert(covers(1, 4) && covers(4, 1));
  cr_assert(covers(2, 1) && covers(2, 3) && covers(2, 5) && covers(3, 5));
  cr_assert(!covers(1, 2) && !covers(3, 2) && !covers(3, 1) && !covers(2, 6) && !covers(1, 5));
}

Test(router, covers_by_path) {
  add_route(NULL, PATH_PREFIX, "/api");     /* 0 */
  add_route(NULL, PATH_PREFIX, "/api/v1");  /* 1 */
  add_route(NULL, PATH_EXACT, "/api");      /* 2 */
  add_route(NULL, PATH_PREFIX, "/api/");    /* 3 */
  add_route(NULL, PATH_PREFIX, "/apix");    /* 4 */
  add_route(NULL, PATH_PREFIX, "/");        /* 5 */
  add_route(NULL, PATH_REGEX, "^/api");     /* 6 */
  add_route(NULL, PATH_REGEX, "^/api");     /* 7 */
  add_route(NULL, PATH_ANY, NULL);          /* 8 */
  add_route(NULL, PATH_EXACT, "/api/v1/x"); /* 9 */
  cr_assert(covers(0, 1) && covers(0, 2) && covers(0, 3) && covers(0, 9) && covers(1, 9));
  cr_assert(!covers(1, 0) && !covers(0, 4) && !covers(3, 0) && !covers(3, 2));
  cr_assert(covers(3, 1) && covers(2, 2) && !covers(2, 0));
  for (long i = 0; i < 10; i++)
    cr_assert(covers(5, i) && covers(8, i), "route %ld", i);
  cr_assert(covers(6, 7) && !covers(6, 0) && !covers(0, 6) && !covers(0, 8) && !covers(4, 8));
}

Test(router, covers_by_methods_and_headers) {
  static struct cfg_kv canary[] = {{"X-Canary", "1"}}, canary_lc[] = {{"x-canary", "1"}},
                       two[] = {{"X-Team", "a"}, {"X-Canary", "1"}}, other[] = {{"X-Canary", "2"}};
  struct cfg_route *r;
  r = add_route(NULL, PATH_ANY, NULL); /* 0: GET, POST */
  r->methods = (1ull << HTTP_GET) | (1ull << HTTP_POST);
  r = add_route(NULL, PATH_ANY, NULL); /* 1: GET */
  r->methods = 1ull << HTTP_GET;
  add_route(NULL, PATH_ANY, NULL);     /* 2: any method */
  r = add_route(NULL, PATH_ANY, NULL); /* 3: X-Canary: 1 */
  r->headers = canary;
  r->nheaders = 1;
  r = add_route(NULL, PATH_ANY, NULL); /* 4: x-canary: 1 and X-Team: a */
  r->headers = two;
  r->nheaders = 2;
  r = add_route(NULL, PATH_ANY, NULL); /* 5: x-canary: 1 */
  r->headers = canary_lc;
  r->nheaders = 1;
  r = add_route(NULL, PATH_ANY, NULL); /* 6: X-Canary: 2 */
  r->headers = other;
  r->nheaders = 1;
  cr_assert(covers(0, 1) && !covers(1, 0) && !covers(0, 2) && covers(2, 0) && covers(2, 1));
  cr_assert(covers(2, 3) && covers(3, 4) && covers(5, 4) && covers(3, 5) && !covers(4, 3));
  cr_assert(!covers(3, 2) && !covers(3, 6) && !covers(6, 3));
}

/* Shadow warnings from router_check_shadowed(): (shadowed, by) pairs. */
static size_t shadowed(long (*pairs)[2], size_t max) {
  struct config_diag d = {0};
  cfg.file = "t.yaml";
  size_t n = router_check_shadowed(&cfg, &d);
  cr_assert_eq(n, d.n);
  cr_assert_eq(d.nwarnings, n);
  for (size_t i = 0; i < d.n && i < max; i++) {
    unsigned b, a;
    cr_assert_eq(sscanf(d.msgs[i],
                        "t.yaml:%*d:%*d: warning: routes[%u] (line %*d) can never match: "
                        "routes[%u]",
                        &b, &a),
                 2, "%s", d.msgs[i]);
    pairs[i][0] = b;
    pairs[i][1] = a;
  }
  config_diag_free(&d);
  return n;
}

Test(router, check_shadowed_names_both_routes_and_lines) {
  struct cfg_route *r;
  r = add_route("api.example.com", PATH_PREFIX, "/users");
  r->line = 8;
  r->col = 5;
  r = add_route("api.example.com", PATH_PREFIX, "/users/admin");
  r->line = 11;
  r->col = 5;
  r = add_route("web.example.com", PATH_PREFIX, "/users/admin");
  r->line = 14;
  r->col = 5;
  struct config_diag d = {0};
  cfg.file = "proxy.yaml";
  cr_assert_eq(router_check_shadowed(&cfg, &d), 1);
  cr_assert_eq(d.n, 1);
  cr_assert_str_eq(d.msgs[0],
                   "proxy.yaml:11:5: warning: routes[1] (line 11) can never match: routes[0] (line "
                   "8) comes first and matches every request it would (same or wider host and "
                   "path, no extra conditions); move routes[1] above routes[0], narrow routes[0], "
                   "or remove routes[1]");
  config_diag_free(&d);
}

Test(router, check_shadowed_agrees_with_every_pair) {
  static const char *const hosts[] = {NULL, "a.test", "b.test", "*.test", "*.a.test", "x.a.test"};
  static const char *const paths[] = {"/", "/a", "/a/", "/a/b", "/b", "/a/b/"};
  unsigned seed = 777;
  for (int round = 0; round < 300; round++) {
    for (size_t i = 0; i < nregex; i++)
      regfree(&regexes[i]);
    nregex = 0;
    memset(routes, 0, sizeof routes);
    cfg.nroutes = 0;
    int n = 2 + (int)(rand_r(&seed) % 14);
    for (int i = 0; i < n; i++) {
      const char *h = hosts[rand_r(&seed) % (sizeof hosts / sizeof hosts[0])];
      const char *p = paths[rand_r(&seed) % (sizeof paths / sizeof paths[0])];
      unsigned k = rand_r(&seed) % 8;
      struct cfg_route *r = k == 0                 ? add_route(h, PATH_ANY, NULL)
                            : k == 1 && nregex < 8 ? add_route(h, PATH_REGEX, "^/a")
                            : k < 4                ? add_route(h, PATH_EXACT, p)
                                                   : add_route(h, PATH_PREFIX, p);
      if (rand_r(&seed) % 4 == 0)
        r->methods = 1ull << HTTP_GET;
    }
    long want[MAXR][2], got[MAXR][2];
    size_t nwant = 0;
    for (long j = 1; j < n; j++)
      for (long i = 0; i < j; i++)
        if (covers(i, j)) {
          want[nwant][0] = j;
          want[nwant++][1] = i;
          break;
        }
    size_t ngot = shadowed(got, MAXR);
    cr_assert_eq(ngot, nwant, "round %d", round);
    for (size_t i = 0; i < ngot; i++)
      cr_assert(got[i][0] == want[i][0] && got[i][1] == want[i][1],
                "round %d: routes[%ld] by routes[%ld], expected by routes[%ld]", round, got[i][0],
                got[i][1], want[i][1]);
  }
}

/* ---- normalisation --------------------------------------------------- */

static void assert_norm(const char *target, const char *want) {
  char out[256];
  size_t n = 999;
  int rc = router_normalize_path(slice_cstr(target), out, sizeof out, &n);
  cr_assert_eq(rc, 0, "%s", target);
  cr_assert_eq(n, strlen(want), "%s -> %.*s", target, (int)n, out);
  cr_assert(memcmp(out, want, n) == 0, "%s -> %.*s, want %s", target, (int)n, out, want);
}

static void assert_norm_fails(const char *target) {
  char out[256];
  size_t n;
  cr_assert_eq(router_normalize_path(slice_cstr(target), out, sizeof out, &n), -1, "%s", target);
}

Test(router, normalize_decodes_unreserved_escapes_only) {
  assert_norm("/%41%62%7E%2d%5F%30", "/Ab~-_0");
  assert_norm("/a%2Fb", "/a%2Fb");
  assert_norm("/a%2fb%3f%20", "/a%2Fb%3F%20");
  assert_norm("/%00", "/%00");
}

Test(router, normalize_strips_query_and_fragment) {
  assert_norm("/users?x=1", "/users");
  assert_norm("/users#frag", "/users");
  assert_norm("/a/../b?c=/../..", "/b");
}

Test(router, normalize_resolves_dot_segments) {
  assert_norm("/public/../admin", "/admin");
  assert_norm("/a/./b", "/a/b");
  assert_norm("/a/b/..", "/a/");
  assert_norm("/a/b/.", "/a/b/");
  assert_norm("/a/b/../", "/a/");
  assert_norm("/a/..", "/");
  assert_norm("/.", "/");
  assert_norm("/./", "/");
  assert_norm("/a/b/../../c", "/c");
  assert_norm("/a/.../b", "/a/.../b");
  assert_norm("/a/..b/.c", "/a/..b/.c");
}

Test(router, normalize_resolves_encoded_dot_segments) {
  assert_norm("/public/%2e%2e/admin", "/admin");
  assert_norm("/a/%2E/b", "/a/b");
  assert_norm("/a/.%2e", "/");
}

Test(router, normalize_keeps_trailing_slash_and_empty_segments) {
  assert_norm("/", "/");
  assert_norm("/users/", "/users/");
  assert_norm("//a", "//a");
  assert_norm("/a//..", "/a/");
}

Test(router, normalize_rejects_climbing_above_root) {
  assert_norm_fails("/..");
  assert_norm_fails("/../a");
  assert_norm_fails("/a/../..");
  assert_norm_fails("/%2e%2e/etc/passwd");
}

Test(router, normalize_rejects_bad_percent_escapes) {
  assert_norm_fails("/a%");
  assert_norm_fails("/a%4");
  assert_norm_fails("/a%G1");
  assert_norm_fails("/a%1g/b");
}

Test(router, normalize_requires_leading_slash) {
  assert_norm_fails("");
  assert_norm_fails("users");
  assert_norm_fails("*");
  assert_norm_fails("http://h/x");
  assert_norm_fails("?x=1");
}

Test(router, normalize_fails_when_out_too_small) {
  char out[8];
  size_t n;
  cr_assert_eq(router_normalize_path(SLICE_LIT("/1234567"), out, 7, &n), -1);
  cr_assert_eq(router_normalize_path(SLICE_LIT("/1234567"), out, 8, &n), 0);
  cr_assert_eq(n, 8);
  cr_assert_eq(router_normalize_path(SLICE_LIT("/abcd%2F"), out, 7, &n), -1);
  /* Decoding shrinks the path, so the decoded size is what counts. */
  cr_assert_eq(router_normalize_path(SLICE_LIT("/%41%42"), out, 3, &n), 0);
  cr_assert_eq(n, 3);
}

Test(router, normalize_reads_only_the_target_slice) {
  const char buf[] = "/ab%41";
  char out[16];
  size_t n;
  cr_assert_eq(router_normalize_path(slice_make(buf, 4), out, sizeof out, &n), -1);
  cr_assert_eq(router_normalize_path(slice_make(buf, 3), out, sizeof out, &n), 0);
  cr_assert_eq(n, 3);
}

/* ---- targets --------------------------------------------------------- */

/* router_target for a PATH_PREFIX route (prefix, rewrite) and a client
 * target; asserts the result. */
static void assert_target(const char *prefix, const char *rewrite, const char *target,
                          const char *want) {
  struct cfg_route r = {
      .path_kind = PATH_PREFIX, .path = (char *)prefix, .rewrite_prefix = (char *)rewrite};
  char norm[256], out[256];
  size_t nn;
  cr_assert_eq(router_normalize_path(slice_cstr(target), norm, sizeof norm, &nn), 0);
  struct slice res;
  cr_assert_eq(router_target(&r, slice_cstr(target), slice_make(norm, nn), out, sizeof out, &res),
               0);
  cr_assert(slice_eq(res, slice_cstr(want)), "%s -> %.*s, want %s", target, (int)res.n, res.p,
            want);
}

Test(router, target_without_rewrite_is_client_target_unchanged) {
  struct cfg_route r = {.path_kind = PATH_PREFIX, .path = "/users"};
  struct slice t = SLICE_LIT("/users/%7e/../x?q=%41");
  struct slice res;
  char out[4];
  cr_assert_eq(router_target(&r, t, SLICE_LIT("/users/x"), out, sizeof out, &res), 0);
  cr_assert_eq(res.p, t.p);
  cr_assert_eq(res.n, t.n);
}

Test(router, target_rewrite_ignored_for_non_prefix_route) {
  struct cfg_route r = {.path_kind = PATH_EXACT, .path = "/a", .rewrite_prefix = "/b"};
  struct slice t = SLICE_LIT("/a?x");
  struct slice res;
  char out[16];
  cr_assert_eq(router_target(&r, t, SLICE_LIT("/a"), out, sizeof out, &res), 0);
  cr_assert_eq(res.p, t.p);
}

Test(router, rewrite_prefix_replaces_matched_prefix) {
  assert_target("/users", "/v2/users", "/users/7", "/v2/users/7");
  assert_target("/users", "/v2/users", "/users", "/v2/users");
  assert_target("/users", "/v2/users", "/users/", "/v2/users/");
  assert_target("/users", "/v2/users/", "/users/7", "/v2/users/7");
}

Test(router, rewrite_prefix_strip_with_slash) {
  assert_target("/users", "/", "/users/7", "/7");
  assert_target("/users", "/", "/users", "/");
  assert_target("/users", "/", "/users/", "/");
  assert_target("/api/", "/", "/api/x/y", "/x/y");
}

Test(router, rewrite_with_slash_ended_prefix_keeps_one_separator) {
  assert_target("/api/", "/v1", "/api/x", "/v1/x");
  assert_target("/api/", "/v1/", "/api/x", "/v1/x");
  assert_target("/api/", "/v1", "/api/", "/v1");
}

Test(router, rewrite_keeps_client_query_unchanged) {
  assert_target("/users", "/v2", "/users/7?a=%41&b=/../", "/v2/7?a=%41&b=/../");
  assert_target("/users", "/", "/users?x=1", "/?x=1");
  assert_target("/users", "/v2", "/users/7?q#frag", "/v2/7?q");
}

Test(router, rewrite_uses_normalised_path) {
  assert_target("/users", "/v2", "/users/a/../%7Eb", "/v2/~b");
}

Test(router, rewrite_fails_when_out_too_small) {
  struct cfg_route r = {.path_kind = PATH_PREFIX, .path = "/users", .rewrite_prefix = "/v2"};
  struct slice res;
  char out[16];
  /* "/v2/7?x" is 7 bytes. */
  cr_assert_eq(router_target(&r, SLICE_LIT("/users/7?x"), SLICE_LIT("/users/7"), out, 6, &res), -1);
  cr_assert_eq(router_target(&r, SLICE_LIT("/users/7?x"), SLICE_LIT("/users/7"), out, 7, &res), 0);
  cr_assert(slice_eq(res, SLICE_LIT("/v2/7?x")));
}

/* ---- ports ----------------------------------------------------------- */

static void assert_strip(const char *in, const char *want) {
  struct slice s = router_host_strip_port(slice_cstr(in));
  cr_assert(slice_eq(s, slice_cstr(want)), "%s -> %.*s", in, (int)s.n, s.p);
}

Test(router, host_strip_port_handles_names_and_ip_literals) {
  assert_strip("example.com:8080", "example.com");
  assert_strip("example.com", "example.com");
  assert_strip("example.com:", "example.com");
  assert_strip("127.0.0.1:80", "127.0.0.1");
  assert_strip("[::1]:80", "[::1]");
  assert_strip("[::1]", "[::1]");
  assert_strip("::1", "::1");
  assert_strip("", "");
}
