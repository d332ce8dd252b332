/* traffic: the routes' traffic-control state shared by all workers
 * (include/ferry/traffic.h): split order, rate-limit buckets, counters.
 *
 * Owns: the smooth weighted round robin period of each split, the GCRA
 * token buckets and their fixed tables, each route's retry budget window
 * (its arithmetic is src/retrybudget.c's), and the counters of refusals.
 * Must not touch: the configuration (read-only), sockets, the event loop,
 * or anything of a worker; nothing here takes a lock or allocates after
 * traffic_new. */
#include "ferry/traffic.h"

#include <stdlib.h>

#include "ferry/config.h"
#include "ferry/http_head.h"

static uint32_t gcd32(uint32_t a, uint32_t b) {
  while (b) {
    uint32_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

uint32_t traffic_swrr_order(const uint32_t *weights, size_t n, uint8_t *out) {
  int64_t cur[256] = {0};
  uint32_t g = 0, total = 0;
  if (n == 0 || n > 255)
    return 0;
  for (size_t i = 0; i < n; i++)
    g = gcd32(g, weights[i]);
  for (size_t i = 0; i < n; i++)
    total += weights[i] / g;
  for (uint32_t k = 0; k < total; k++) {
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
      cur[i] += weights[i] / g;
      if (cur[i] > cur[best])
        best = i;
    }
    cur[best] -= total;
    out[k] = (uint8_t)best;
  }
  return total;
}

bool traffic_gcra(uint64_t *tat, uint64_t now_us, uint64_t interval_us, uint64_t window_us,
                  uint64_t *wait_us) {
  uint64_t next = (*tat > now_us ? *tat : now_us) + interval_us;
  if (next - now_us > window_us) {
    *wait_us = next - now_us - window_us;
    return false;
  }
  *tat = next;
  return true;
}

uint64_t traffic_hash(struct slice s) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < s.n; i++) {
    h ^= (unsigned char)s.p[i];
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

/* The slot for key: its own, a free or full one among its two
 * candidates, or the candidate that refills first. */
static struct traffic_bucket *bucket_for(struct traffic_route *tr, uint64_t key, uint64_t now) {
  if (tr->nbuckets == 1)
    return &tr->buckets[0];
  uint32_t mask = tr->nbuckets - 1;
  struct traffic_bucket *a = &tr->buckets[key & mask];
  struct traffic_bucket *b = &tr->buckets[(key >> 32) & mask];
  uint64_t ka = atomic_load_explicit(&a->key, memory_order_relaxed);
  if (ka == key)
    return a;
  uint64_t kb = atomic_load_explicit(&b->key, memory_order_relaxed);
  if (kb == key)
    return b;
  uint64_t ta = atomic_load_explicit(&a->tat, memory_order_relaxed);
  uint64_t tb = atomic_load_explicit(&b->tat, memory_order_relaxed);
  struct traffic_bucket *victim = ta <= tb ? a : b;
  uint64_t vk = victim == a ? ka : kb, vt = victim == a ? ta : tb;
  if (vk != 0 && vt > now)
    atomic_fetch_add_explicit(&tr->evictions, 1, memory_order_relaxed);
  /* Claiming races only with another key claiming the same slot; the
   * loser shares the winner's bucket for this request. */
  atomic_store_explicit(&victim->key, key, memory_order_relaxed);
  atomic_store_explicit(&victim->tat, 0, memory_order_relaxed);
  return victim;
}

bool traffic_rate_take(struct traffic_route *tr, uint64_t key, uint64_t now_us,
                       uint32_t *retry_after_s) {
  struct traffic_bucket *b = bucket_for(tr, key, now_us);
  uint64_t old = atomic_load_explicit(&b->tat, memory_order_relaxed);
  for (;;) {
    uint64_t tat = old, wait;
    if (!traffic_gcra(&tat, now_us, tr->interval_us, tr->window_us, &wait)) {
      atomic_fetch_add_explicit(&tr->limited, 1, memory_order_relaxed);
      uint64_t s = (wait + 999999) / 1000000;
      *retry_after_s = s < 1 ? 1 : s > 86400 ? 86400 : (uint32_t)s;
      return false;
    }
    if (atomic_compare_exchange_weak_explicit(&b->tat, &old, tat, memory_order_relaxed,
                                              memory_order_relaxed))
      return true;
  }
}

enum traffic_verdict traffic_admit(struct traffic_route *tr, const struct cfg_route *r,
                                   const struct traffic_client *c, const struct hdr_list *hdrs,
                                   uint64_t now_us, uint32_t *retry_after_s) {
  if (r->nallow || r->ndeny) {
    if ((c->ok && cidr_list_match(r->deny, r->ndeny, c->addr, c->v6)) ||
        (r->nallow && (!c->ok || !cidr_list_match(r->allow, r->nallow, c->addr, c->v6)))) {
      atomic_fetch_add_explicit(&tr->forbidden, 1, memory_order_relaxed);
      return TRAFFIC_FORBIDDEN;
    }
  }
  if (tr->nbuckets) {
    uint64_t key = 1;
    if (r->rate_limit.key == RATE_KEY_CLIENT_IP) {
      key = c->ok ? traffic_hash(slice_make((const char *)c->addr, c->v6 ? 16 : 4))
                  : traffic_hash(c->text);
    } else if (r->rate_limit.key == RATE_KEY_HEADER) {
      const struct hdr *h = http_head_find(hdrs, slice_cstr(r->rate_limit.header));
      if (!h)
        return TRAFFIC_PASS; /* no key: not limited */
      key = traffic_hash(h->value);
    }
    if (!traffic_rate_take(tr, key, now_us, retry_after_s))
      return TRAFFIC_LIMITED;
  }
  return TRAFFIC_PASS;
}

struct traffic *traffic_new(const struct config *cfg) {
  struct traffic *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->nroutes = cfg->nroutes;
  if (cfg->nroutes && !(t->routes = calloc(cfg->nroutes, sizeof *t->routes)))
    goto fail;
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct cfg_route *r = &cfg->routes[i];
    struct traffic_route *tr = &t->routes[i];
    if (r->nsplit > 0) {
      uint32_t w[256], sum = 0;
      for (size_t j = 0; j < r->nsplit && j < 255; j++)
        sum += (w[j] = r->split[j].weight);
      if (!(tr->order = malloc(sum)))
        goto fail;
      tr->norder = traffic_swrr_order(w, r->nsplit < 255 ? r->nsplit : 255, tr->order);
    }
    retrybudget_init(&tr->retry_budget, r->retry.enabled ? r->retry.budget_percent : 0);
    const struct cfg_rate_limit *rl = &r->rate_limit;
    if (rl->enabled && rl->requests > 0) {
      tr->interval_us = rl->per_ms * 1000 / rl->requests;
      if (tr->interval_us == 0)
        tr->interval_us = 1;
      tr->window_us = (uint64_t)rl->burst * tr->interval_us;
      tr->nbuckets = rl->key == RATE_KEY_ROUTE ? 1 : TRAFFIC_RL_SLOTS;
      if (!(tr->buckets = calloc(tr->nbuckets, sizeof *tr->buckets)))
        goto fail;
    }
  }
  return t;
fail:
  traffic_free(t);
  return NULL;
}

void traffic_free(struct traffic *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nroutes; i++) {
    free(t->routes[i].order);
    free(t->routes[i].buckets);
  }
  free(t->routes);
  free(t);
}
