/* snapshot: when may a reload share the running upstream pools, and the
 * reference counting with a reaper. */
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/config.h"
#include "ferry/snapshot.h"

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
