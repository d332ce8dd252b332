/* snapshot: when may a reload share the running upstream pools, and the
 * reference counting with a reaper. */
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/config.h"
#include "ferry/snapshot.h"
#include "leak_check.h"

static struct config *load(const char *text) {
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  int rc = config_load_string("t.yaml", text, strlen(text), &cfg, &diag);
  for (size_t i = 0; i < diag.n; i++)
    cr_log_info("%s", diag.msgs[i]);
  config_diag_free(&diag);
  cr_assert_eq(rc, 0);
  return cfg;
}

#define BASE                                                                                       \
  "listeners: [{address: 127.0.0.1:8080}]\n"                                                       \
  "upstreams:\n"                                                                                   \
  "  api:\n"                                                                                       \
  "    servers: [{address: 127.0.0.1:9001}, {address: 127.0.0.1:9002, weight: 2}]\n"

Test(snapshot, route_changes_keep_pools_upstream_changes_do_not) {
  struct config *a = load(BASE "routes: [{path_prefix: /a, upstream: api}]\n");
  struct config *same = load(BASE "routes: [{path: /b, respond: {status: 204}}]\n"
                                  "timeouts: {client_idle: 5s}\n");
  cr_assert(snapshot_upstreams_equal(a, same));
  static const char *const changed[] = {
      /* a weight */
      "listeners: [{address: 127.0.0.1:8080}]\nupstreams:\n  api:\n    servers: [{address: "
      "127.0.0.1:9001}, {address: 127.0.0.1:9002, weight: 3}]\n",
      /* a server */
      "listeners: [{address: 127.0.0.1:8080}]\nupstreams:\n  api:\n    servers: [{address: "
      "127.0.0.1:9001}]\n",
      /* the balancer */
      BASE "    balance: least_conn\n",
      /* keep-alive */
      BASE "    keepalive: {max_idle: 4}\n",
      /* a second upstream */
      BASE "  web:\n    servers: [{address: 127.0.0.1:9003}]\n",
      /* health checks */
      BASE "    health_check: {path: /up}\n",
  };
  for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
    struct config *b = load(changed[i]);
    cr_assert_not(snapshot_upstreams_equal(a, b), "case %zu", i);
    config_free(b);
  }
  config_free(a);
  config_free(same);
}

Test(snapshot, last_unref_goes_through_the_reaper) {
  struct snapshot_reaper r = {0};
  /* no wake handle: the last reference frees at once (used at exit) */
  struct snapshot *s = snapshot_new(load(BASE), NULL, NULL, NULL, &r, 1);
  cr_assert_not_null(s);
  snapshot_ref(s);
  snapshot_unref(s);
  cr_assert_eq(atomic_load(&s->refs), 1u);
  snapshot_unref(s); /* freed here; ASan reports a leak otherwise */
  cr_assert_null(atomic_load(&r.head));
}

/* Start and reload assemble snapshots the same way: the first builds its
 * own pools; a reload with the same upstreams shares them (and keeps the
 * snapshot they belong to alive); one with changed upstreams builds new
 * ones. Every snapshot compiles its own router. */
Test(snapshot, build_shares_pools_only_when_upstreams_are_equal) {
  struct snapshot_reaper r = {0};
  char err[256] = "";
  struct snapshot *s1 =
      snapshot_build(load(BASE "routes: [{upstream: api}]\n"), NULL, &r, 1, err, sizeof err);
  cr_assert_not_null(s1, "%s", err);
  cr_assert_not_null(s1->router);
  cr_assert_not_null(s1->ups);
  cr_assert_null(s1->ups_owner);
  cr_assert_eq(s1->gen, 1);

  struct snapshot *s2 = snapshot_build(load(BASE "routes: [{path: /x, upstream: api}]\n"), s1, &r,
                                       2, err, sizeof err);
  cr_assert_not_null(s2, "%s", err);
  cr_assert_eq(s2->ups, s1->ups);
  cr_assert_eq(s2->ups_owner, s1);
  cr_assert_neq(s2->router, s1->router);
  cr_assert_eq(atomic_load(&s1->refs), 2u, "the shared pools' owner is held by s2");

  struct snapshot *s3 =
      snapshot_build(load(BASE "    balance: least_conn\n"), s2, &r, 3, err, sizeof err);
  cr_assert_not_null(s3, "%s", err);
  cr_assert_neq(s3->ups, s1->ups);
  cr_assert_null(s3->ups_owner);

  snapshot_unref(s1); /* s2 still holds it */
  cr_assert_eq(atomic_load(&s1->refs), 1u);
  snapshot_unref(s2); /* frees s2, then s1 */
  snapshot_unref(s3);
  check_leaks();
}

Test(snapshot, build_failure_leaves_the_config_to_the_caller) {
  struct snapshot_reaper r = {0};
  char err[256] = "";
  /* a server name that resolves to nothing: the only server of its pool */
  setenv("FERRY_HOSTS_FILE", FERRY_TEST_DATA "/empty_hosts", 1);
  struct config *cfg = load("listeners: [{address: 127.0.0.1:8080}]\n"
                            "upstreams: {api: {servers: [{address: nosuch.invalid:80}]}}\n");
  struct snapshot *s = snapshot_build(cfg, NULL, &r, 1, err, sizeof err);
  unsetenv("FERRY_HOSTS_FILE");
  cr_assert_null(s);
  cr_assert(strstr(err, "nosuch.invalid") != NULL, "error names the server: %s", err);
  config_free(cfg); /* still the caller's: ASan reports a double free otherwise */
  check_leaks();
}
