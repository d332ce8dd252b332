/* upstream: process-wide pools of server slots (shared, atomics) and each
 * worker's view of them; feeds the balancers and keeps passive health.
 * Owns the slot arrays (struct upstreams) and the per-worker server_rt
 * arrays; connections belong to connpool, active checks and DNS refresh to
 * health.c. */
#include "ferry/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/connpool.h"
#include "ferry/health.h"
#include "ferry/log.h"
#include "ferry/resolve.h"

#define EJECT_CAP_MS (300u * 1000u) /* doubling stops at 5 minutes (or eject_for) */

uint64_t upstream_now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static void fmt_ms(uint64_t ms, char *out, size_t len) {
  if (ms % 1000 == 0)
    snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
  else
    snprintf(out, len, "%llums", (unsigned long long)ms);
}

/* --- process-wide pools ----------------------------------------------- */

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  char x[64], y[64];
  resolve_name(a, x, sizeof(x));
  resolve_name(b, y, sizeof(y));
  return strcmp(x, y) == 0;
}

struct upslot *uppool_add(struct uppool *p, const struct cfg_server *cs,
                          const struct sockaddr_storage *addr) {
  size_t n = atomic_load(&p->nslots);
  for (size_t i = 0; i < n; i++) {
    struct upslot *s = &p->slots[i];
    if (s->cfg == cs && same_addr(&s->addr, addr)) {
      if (atomic_load(&s->state) == UPSLOT_GONE) {
        atomic_store(&s->state, UPSLOT_ACTIVE);
        atomic_fetch_add(&p->gen, 1);
      }
      return s;
    }
  }
  if (n == p->cap) {
    /* Full: reuse a slot of cs that left DNS long ago and is idle. */
    uint64_t now = upstream_now_ms();
    uint64_t guard = 4 * p->cfg->resolve_interval_ms;
    if (guard < UPSTREAM_SLOT_REUSE_MS)
      guard = UPSTREAM_SLOT_REUSE_MS;
    for (size_t i = 0; i < n; i++) {
      struct upslot *s = &p->slots[i];
      if (s->cfg != cs || atomic_load(&s->state) != UPSLOT_GONE || now - s->gone_since_ms < guard ||
          atomic_load(&s->inflight) != 0)
        continue;
      uv_mutex_lock(&p->mu);
      s->addr = *addr;
      resolve_name(addr, s->name, sizeof(s->name));
      s->last_eject_ms = s->last_eject_until = 0;
      atomic_store(&s->down, false);
      atomic_store(&s->eject_until_ms, 0);
      atomic_store(&s->consecutive_5xx, 0);
      atomic_fetch_add(&s->epoch, 1);
      uv_mutex_unlock(&p->mu);
      atomic_store(&s->state, UPSLOT_ACTIVE);
      atomic_fetch_add(&p->gen, 1);
      return s;
    }
    return NULL;
  }
  struct upslot *s = &p->slots[n];
  s->addr = *addr;
  resolve_name(addr, s->name, sizeof(s->name));
  s->cfg = cs;
  s->weight = cs->weight ? cs->weight : 1;
  atomic_store(&s->state, UPSLOT_ACTIVE);
  atomic_store(&p->nslots, n + 1);
  atomic_fetch_add(&p->gen, 1);
  return s;
}

void uppool_remove(struct uppool *p, struct upslot *s) {
  int expect = UPSLOT_ACTIVE;
  s->gone_since_ms = upstream_now_ms();
  if (atomic_compare_exchange_strong(&s->state, &expect, UPSLOT_GONE))
    atomic_fetch_add(&p->gen, 1);
}

bool upslot_usable(struct uppool *p, struct upslot *s, uint64_t now_ms) {
  if (atomic_load_explicit(&s->state, memory_order_acquire) != UPSLOT_ACTIVE ||
      atomic_load_explicit(&s->down, memory_order_relaxed))
    return false;
  uint64_t until = atomic_load_explicit(&s->eject_until_ms, memory_order_relaxed);
  if (until == 0)
    return true;
  if (now_ms < until)
    return false;
  /* The ejection ran out: the thread that clears it logs it. */
  if (atomic_compare_exchange_strong(&s->eject_until_ms, &until, 0))
    log_info("upstream %s server %s back after ejection", p->cfg->name, s->name);
  return true;
}

void upslot_stats(const struct upslot *s, uint64_t now_ms, struct upstream_server_stats *out) {
  out->name = s->name;
  out->present = atomic_load_explicit(&s->state, memory_order_acquire) == UPSLOT_ACTIVE;
  out->down = atomic_load_explicit(&s->down, memory_order_relaxed);
  out->ejected = atomic_load_explicit(&s->eject_until_ms, memory_order_relaxed) > now_ms;
  out->inflight = atomic_load_explicit(&s->inflight, memory_order_relaxed);
  out->attempts = atomic_load_explicit(&s->attempts, memory_order_relaxed);
  out->failures = atomic_load_explicit(&s->failures, memory_order_relaxed);
}

uint64_t uppool_retries(const struct uppool *p) {
  return atomic_load_explicit(&p->retries, memory_order_relaxed);
}

struct upstreams *upstreams_new(const struct config *cfg, char *err, size_t errlen) {
  struct upstreams *u = calloc(1, sizeof(*u));
  if (!u) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  u->cfg = cfg;
  const char *hf = getenv("FERRY_HOSTS_FILE");
  if (hf && *hf && !(u->hosts_file = strdup(hf)))
    goto oom;
  u->pools = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*u->pools));
  if (!u->pools)
    goto oom;
  for (size_t i = 0; i < cfg->nupstreams; i++) {
    const struct cfg_upstream *uc = &cfg->upstreams[i];
    struct uppool *p = &u->pools[i];
    p->cfg = uc;
    for (size_t j = 0; j < uc->nservers; j++)
      p->cap += uc->servers[j].resolve ? UPSTREAM_NAME_SLOTS : 1;
    p->slots = calloc(p->cap ? p->cap : 1, sizeof(*p->slots));
    if (!p->slots)
      goto oom;
    uv_mutex_init(&p->mu);
    u->npools++;
    char why[256] = "", firstwhy[300] = "";
    for (size_t j = 0; j < uc->nservers; j++) {
      const struct cfg_server *cs = &uc->servers[j];
      if (!cs->resolve) {
        uppool_add(p, cs, &cs->addr);
        continue;
      }
      struct sockaddr_storage addrs[UPSTREAM_MAX_ADDRS];
      int n = resolve_now(u->hosts_file, cs->host, cs->port, addrs, UPSTREAM_MAX_ADDRS, why,
                          sizeof(why));
      if (n < 0) {
        log_warn("upstream %s server %s: cannot resolve %s: %s; retrying every %llums", uc->name,
                 cs->address, cs->host, why, (unsigned long long)uc->resolve_interval_ms);
        if (!firstwhy[0])
          snprintf(firstwhy, sizeof(firstwhy), "%s: %s", cs->host, why);
        continue;
      }
      for (int k = 0; k < n; k++)
        uppool_add(p, cs, &addrs[k]);
    }
    if (atomic_load(&p->nslots) == 0) {
      snprintf(err, errlen,
               "upstream %s: no server address could be resolved (%s); check the names in "
               "upstreams.%s.servers or use IP addresses",
               uc->name, firstwhy, uc->name);
      upstreams_free(u);
      return NULL;
    }
  }
  u->health = health_start(u, err, errlen);
  if (!u->health) {
    upstreams_free(u);
    return NULL;
  }
  return u;
oom:
  snprintf(err, errlen, "out of memory");
  upstreams_free(u);
  return NULL;
}

void upstreams_free(struct upstreams *u) {
  if (!u)
    return;
  if (u->health)
    health_stop(u->health);
  for (size_t i = 0; i < u->npools; i++) {
    free(u->pools[i].slots);
    uv_mutex_destroy(&u->pools[i].mu);
  }
  free(u->pools);
  free(u->hosts_file);
  free(u);
}

void upstreams_inherit(struct upstreams *nu, struct upstreams *old) {
  for (size_t i = 0; i < nu->npools; i++) {
    struct uppool *p = &nu->pools[i];
    struct uppool *q = NULL;
    for (size_t k = 0; k < old->npools && !q; k++)
      if (strcmp(old->pools[k].cfg->name, p->cfg->name) == 0)
        q = &old->pools[k];
    if (!q)
      continue;
    size_t n = atomic_load(&p->nslots), m = atomic_load(&q->nslots);
    uv_mutex_lock(&q->mu);
    for (size_t j = 0; j < n; j++) {
      struct upslot *s = &p->slots[j];
      for (size_t k = 0; k < m; k++) {
        struct upslot *o = &q->slots[k];
        if (strcmp(s->name, o->name) != 0)
          continue;
        atomic_store(&s->down, atomic_load(&o->down));
        atomic_store(&s->eject_until_ms, atomic_load(&o->eject_until_ms));
        atomic_store(&s->consecutive_5xx, atomic_load(&o->consecutive_5xx));
        s->last_eject_ms = o->last_eject_ms;
        s->last_eject_until = o->last_eject_until;
        break;
      }
    }
    uv_mutex_unlock(&q->mu);
  }
}

/* --- per worker --------------------------------------------------------- */

int upstream_rt_init(struct upstream_rt *u, struct uppool *pool, uint64_t seed) {
  memset(u, 0, sizeof(*u));
  u->cfg = pool->cfg;
  u->pool = pool;
  u->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
  u->servers = calloc(pool->cap ? pool->cap : 1, sizeof(*u->servers));
  u->peers = calloc(pool->cap ? pool->cap : 1, sizeof(*u->peers));
  if (!u->servers || !u->peers) {
    upstream_rt_destroy(u);
    return -1;
  }
  u->gen = atomic_load(&pool->gen) - 1; /* first pick syncs */
  upstream_rt_sync(u);
  return 0;
}

void upstream_rt_destroy(struct upstream_rt *u) {
  free(u->servers);
  free(u->peers);
  balance_ring_free(&u->ring);
  u->servers = NULL;
  u->peers = NULL;
  u->nservers = 0;
}

void upstream_rt_resync(struct upstream_rt *u, uint32_t g) {
  struct uppool *p = u->pool;
  u->gen = g;
  size_t n = atomic_load_explicit(&p->nslots, memory_order_acquire);
  for (size_t i = u->nservers; i < n; i++) {
    struct server_rt *s = &u->servers[i];
    s->slot = &p->slots[i];
    s->cfg = s->slot->cfg;
    s->up = u;
    s->epoch = atomic_load(&s->slot->epoch);
    memcpy(s->name, s->slot->name, sizeof(s->name));
    connpool_init(&s->pool, u->cfg->keepalive_max_idle, u->cfg->keepalive_idle_timeout_ms, s->name);
    s->pool.tls = u->cfg->tls_cli; /* the configuration outlives its pools */
    s->pool.tls_name = s->cfg->host;
  }
  u->nservers = n;
  const char *names[n ? n : 1];
  uint32_t weights[n ? n : 1];
  for (size_t i = 0; i < n; i++) {
    struct server_rt *s = &u->servers[i];
    s->gone = atomic_load_explicit(&s->slot->state, memory_order_acquire) != UPSLOT_ACTIVE;
    uint32_t epoch = atomic_load(&s->slot->epoch);
    if (s->gone || epoch != s->epoch)
      connpool_close_idle(&s->pool);
    if (epoch != s->epoch) { /* the slot now holds another address */
      s->epoch = epoch;
      memcpy(s->name, s->slot->name, sizeof(s->name));
    }
    names[i] = s->gone ? NULL : s->name;
    weights[i] = s->slot->weight;
  }
  if (u->cfg->balance == BALANCE_HASH && balance_ring_build(&u->ring, names, weights, n) != 0)
    log_error("upstream %s: out of memory building the hash ring; using round robin", u->cfg->name);
}

bool upstream_hash_key(const struct cfg_upstream *cfg, struct slice client_ip,
                       const struct hdr_list *hdrs, uint64_t *hash) {
  const char *k = cfg->hash_key;
  if (cfg->balance != BALANCE_HASH || !k)
    return false;
  struct slice v = {NULL, 0};
  if (strcmp(k, "client_ip") == 0) {
    v = client_ip;
  } else if (strncmp(k, "header:", 7) == 0) {
    const struct hdr *h = http_head_find(hdrs, slice_cstr(k + 7));
    if (h)
      v = h->value;
  } else if (strncmp(k, "cookie:", 7) == 0) {
    struct slice name = slice_cstr(k + 7);
    for (uint32_t i = 0; i < hdrs->n && !v.n; i++)
      if (slice_ieq(hdrs->v[i].name, SLICE_LIT("cookie")))
        balance_cookie(hdrs->v[i].value, name, &v);
  }
  if (v.n == 0)
    return false;
  *hash = balance_hash(v.p, v.n);
  return true;
}

struct server_rt *upstream_pick(struct upstream_rt *u, bool has_key, uint64_t key_hash,
                                struct server_rt *const *exclude, size_t nexclude) {
  upstream_rt_sync(u);
  uint64_t now = upstream_now_ms();
  size_t n = u->nservers;
  size_t usable = 0;
  for (size_t i = 0; i < n; i++) {
    struct server_rt *s = &u->servers[i];
    struct balance_peer *pe = &u->peers[i];
    pe->weight = s->slot->weight;
    pe->load = atomic_load_explicit(&s->slot->inflight, memory_order_relaxed);
    pe->usable = !s->gone && upslot_usable(u->pool, s->slot, now);
    for (size_t k = 0; k < nexclude && pe->usable; k++)
      if (exclude[k] == s)
        pe->usable = false;
    usable += pe->usable;
  }
  if (usable == 0)
    return NULL;
  int i = -1;
  switch (u->cfg->balance) {
  case BALANCE_ROUND_ROBIN:
    i = balance_round_robin(u->peers, n);
    break;
  case BALANCE_LEAST_CONN:
    i = balance_least_conn(u->peers, n);
    break;
  case BALANCE_RANDOM2:
    i = balance_random2(u->peers, n, &u->rng);
    break;
  case BALANCE_HASH:
    i = has_key ? balance_ring_pick(&u->ring, u->peers, n, key_hash) : -1;
    if (i < 0)
      i = balance_round_robin(u->peers, n);
    break;
  }
  return i < 0 ? NULL : &u->servers[i];
}

bool upstream_server_present(const struct server_rt *s) {
  return atomic_load_explicit(&s->slot->state, memory_order_acquire) == UPSLOT_ACTIVE;
}

void upstream_attempt_begin(struct server_rt *s) {
  atomic_fetch_add_explicit(&s->slot->inflight, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->slot->attempts, 1, memory_order_relaxed);
}

void upstream_attempt_end(struct server_rt *s) {
  atomic_fetch_sub_explicit(&s->slot->inflight, 1, memory_order_relaxed);
}

/* Eject s for its next ejection length unless that would leave less than
 * half the pool. Rare path: takes the pool's mutex. */
static void eject(struct upstream_rt *u, struct upslot *s, const char *why) {
  struct uppool *p = u->pool;
  const struct cfg_upstream *cfg = p->cfg;
  if (cfg->passive.consecutive_failures == 0)
    return; /* passive health off */
  uint64_t now = upstream_now_ms();
  uv_mutex_lock(&p->mu);
  if (atomic_load(&s->eject_until_ms) > now) {
    uv_mutex_unlock(&p->mu);
    return;
  }
  size_t n = atomic_load(&p->nslots), present = 0, ejected = 0;
  for (size_t i = 0; i < n; i++) {
    struct upslot *o = &p->slots[i];
    if (atomic_load(&o->state) != UPSLOT_ACTIVE)
      continue;
    present++;
    ejected += atomic_load(&o->eject_until_ms) > now;
  }
  if ((ejected + 1) * 2 > present) {
    uv_mutex_unlock(&p->mu);
    log_debug("upstream %s server %s: not ejected (%s): at most half of the pool may be "
              "ejected",
              cfg->name, s->name, why);
    return;
  }
  uint64_t base = cfg->passive.eject_for_ms;
  uint64_t cap = base > EJECT_CAP_MS ? base : EJECT_CAP_MS;
  uint64_t ms = base;
  /* Ejected again soon after the last one ended: double it. */
  if (s->last_eject_ms && now < s->last_eject_until + s->last_eject_ms)
    ms = s->last_eject_ms * 2 > cap ? cap : s->last_eject_ms * 2;
  s->last_eject_ms = ms;
  s->last_eject_until = now + ms;
  atomic_store(&s->eject_until_ms, now + ms);
  atomic_store(&s->consecutive_5xx, 0);
  uv_mutex_unlock(&p->mu);
  char d[32];
  fmt_ms(ms, d, sizeof(d));
  log_warn("upstream %s server %s ejected for %s: %s", cfg->name, s->name, d, why);
}

/* `inline` asks LTO to inline it where it is called (the header's declaration keeps
 * this an external definition): once per request, and the sub-request
 * caller (src/subreq.c) had made it an out-of-line call. */
inline void upstream_report_status(struct server_rt *s, int status) {
  struct upslot *sl = s->slot;
  uint32_t limit = s->up->cfg->passive.consecutive_failures;
  if (status < 500 || status > 599) {
    if (atomic_load_explicit(&sl->consecutive_5xx, memory_order_relaxed) != 0)
      atomic_store_explicit(&sl->consecutive_5xx, 0, memory_order_relaxed);
    return;
  }
  uint32_t n = atomic_fetch_add(&sl->consecutive_5xx, 1) + 1;
  if (limit && n == limit) {
    char why[64];
    snprintf(why, sizeof(why), "%u consecutive 5xx responses", n);
    eject(s->up, sl, why);
  }
}

void upstream_report_failure(struct server_rt *s, bool connect_failed, const char *why) {
  struct upslot *sl = s->slot;
  atomic_fetch_add_explicit(&sl->failures, 1, memory_order_relaxed);
  uint32_t limit = s->up->cfg->passive.consecutive_failures;
  if (connect_failed) {
    char w[128];
    snprintf(w, sizeof(w), "connect failed (%s)", why);
    eject(s->up, sl, w);
    return;
  }
  uint32_t n = atomic_fetch_add(&sl->consecutive_5xx, 1) + 1;
  if (limit && n == limit) {
    char w[128];
    snprintf(w, sizeof(w), "%u consecutive failures, the last: %s", n, why);
    eject(s->up, sl, w);
  }
}

void upstream_count_retry(struct upstream_rt *u) {
  atomic_fetch_add_explicit(&u->pool->retries, 1, memory_order_relaxed);
}

void upstream_count_no_server(struct upstream_rt *u) {
  atomic_fetch_add_explicit(&u->pool->no_server, 1, memory_order_relaxed);
}

uint32_t upstream_retry_after(struct upstream_rt *u) {
  uint64_t now = upstream_now_ms();
  uint64_t best = u->cfg->health_check.enabled ? u->cfg->health_check.interval_ms : 0;
  for (size_t i = 0; i < u->nservers; i++) {
    uint64_t until =
        atomic_load_explicit(&u->servers[i].slot->eject_until_ms, memory_order_relaxed);
    if (until > now && (best == 0 || until - now < best))
      best = until - now;
  }
  uint64_t s = (best + 999) / 1000;
  return s < 1 ? 1 : s > 3600 ? 3600 : (uint32_t)s;
}
