/* snapshot: reference-counted configuration snapshots, their assembly
 * (config -> router -> upstream pools, the same for start and reload) and
 * the reaper that frees them on the main thread. Owns the config, router
 * and (unless shared) upstream pools it was given; touches no worker state,
 * no listener and no log: failures are returned as text. */
#include "ferry/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"
#include "ferry/router.h"
#include "ferry/traffic.h"
#include "ferry/upstream.h"

struct snapshot *snapshot_new(struct config *cfg, struct router *router, struct upstreams *ups,
                              struct snapshot *owner, struct snapshot_reaper *reaper,
                              uint64_t gen) {
  struct snapshot *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  atomic_init(&s->refs, 1);
  s->gen = gen;
  s->cfg = cfg;
  s->owns_cfg = true;
  s->router = router;
  s->ups = ups;
  s->reaper = reaper;
  if (owner) {
    s->ups_owner = owner->ups_owner ? owner->ups_owner : owner;
    snapshot_ref(s->ups_owner);
  }
  return s;
}

struct snapshot *snapshot_build(struct config *cfg, struct snapshot *prev,
                                struct snapshot_reaper *reaper, uint64_t gen, char *err,
                                size_t errlen) {
  struct router *router = router_new(cfg);
  if (!router) {
    snprintf(err, errlen, "out of memory compiling routes");
    return NULL;
  }
  struct snapshot *owner = NULL;
  struct upstreams *ups;
  if (prev && snapshot_upstreams_equal(prev->cfg, cfg)) {
    owner = prev;
    ups = prev->ups;
  } else {
    /* server names resolve now; the monitor thread (health checks, DNS
     * refresh) starts */
    ups = upstreams_new(cfg, err, errlen);
    if (!ups) {
      router_free(router);
      return NULL;
    }
    if (prev)
      upstreams_inherit(ups, prev->ups); /* health and ejections of kept addresses */
  }
  struct traffic *traffic = traffic_new(cfg);
  struct snapshot *s = traffic ? snapshot_new(cfg, router, ups, owner, reaper, gen) : NULL;
  if (!s) {
    traffic_free(traffic);
    if (!owner)
      upstreams_free(ups);
    router_free(router);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  s->traffic = traffic;
  return s;
}

void snapshot_ref(struct snapshot *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void snapshot_free(struct snapshot *s) {
  router_free(s->router);
  traffic_free(s->traffic);
  if (s->ups_owner)
    snapshot_unref(s->ups_owner);
  else
    upstreams_free(s->ups);
  if (s->owns_cfg)
    config_free(s->cfg);
  free(s);
}

void snapshot_unref(struct snapshot *s) {
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  struct snapshot_reaper *r = s->reaper;
  if (!r || !r->wake) {
    snapshot_free(s);
    return;
  }
  struct snapshot *head = atomic_load_explicit(&r->head, memory_order_relaxed);
  do
    s->reap_next = head;
  while (!atomic_compare_exchange_weak_explicit(&r->head, &head, s, memory_order_release,
                                                memory_order_relaxed));
  uv_async_send(r->wake);
}

void snapshot_reap(struct snapshot_reaper *r) {
  for (;;) {
    struct snapshot *s = atomic_exchange_explicit(&r->head, NULL, memory_order_acquire);
    if (!s)
      return;
    while (s) {
      struct snapshot *next = s->reap_next;
      snapshot_free(s); /* may push its ups_owner: the outer loop takes it */
      s = next;
    }
  }
}

static bool str_eq(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool server_eq(const struct cfg_server *a, const struct cfg_server *b) {
  return str_eq(a->address, b->address) && a->weight == b->weight && a->resolve == b->resolve;
}

static bool upstream_eq(const struct cfg_upstream *a, const struct cfg_upstream *b) {
  if (!str_eq(a->name, b->name) || a->nservers != b->nservers || a->balance != b->balance ||
      !str_eq(a->hash_key, b->hash_key) || a->keepalive_max_idle != b->keepalive_max_idle ||
      a->keepalive_idle_timeout_ms != b->keepalive_idle_timeout_ms ||
      a->passive.consecutive_failures != b->passive.consecutive_failures ||
      a->passive.eject_for_ms != b->passive.eject_for_ms ||
      a->resolve_interval_ms != b->resolve_interval_ms || a->retries != b->retries ||
      a->max_requests != b->max_requests || a->tls ||
      b->tls) /* TLS upstreams: new contexts (re-read files) on every reload */
    return false;
  const struct cfg_health_check *ha = &a->health_check, *hb = &b->health_check;
  if (ha->enabled != hb->enabled ||
      (ha->enabled &&
       (!str_eq(ha->path, hb->path) || ha->interval_ms != hb->interval_ms ||
        ha->timeout_ms != hb->timeout_ms || ha->unhealthy_threshold != hb->unhealthy_threshold ||
        ha->healthy_threshold != hb->healthy_threshold)))
    return false;
  for (size_t i = 0; i < a->nservers; i++)
    if (!server_eq(&a->servers[i], &b->servers[i]))
      return false;
  return true;
}

bool snapshot_upstreams_equal(const struct config *a, const struct config *b) {
  if (a->nupstreams != b->nupstreams)
    return false;
  for (size_t i = 0; i < a->nupstreams; i++)
    if (!upstream_eq(&a->upstreams[i], &b->upstreams[i]))
      return false;
  return true;
}
