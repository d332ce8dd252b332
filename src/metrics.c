/* metrics: per-worker counters (written by their worker only) and the
 * Prometheus text rendering the admin thread builds from their sums.
 * Must not write any worker state from the admin thread. */
#include "ferry/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/accesslog.h"
#include "ferry/admin.h"
#include "ferry/config.h"
#include "ferry/exchange.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"
#include "ferry/worker.h"
#include "ferry/wctx.h"

/* Upper bounds in milliseconds; the last bucket is +Inf. */
static const uint64_t lat_bounds_ms[METRICS_LAT_NBUCKETS - 1] = {1,   5,   10,   25,   50,   100,
                                                                 250, 500, 1000, 2500, 10000};

static uint32_t fnv(uint32_t h, const char *s) {
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

void metrics_route_label(const struct cfg_route *r, char *out, size_t outlen) {
  if (!r) {
    snprintf(out, outlen, "none");
    return;
  }
  const char *host = r->host ? r->host : (r->path_kind == PATH_ANY ? "*" : "");
  const char *wild = r->host && r->host_wildcard ? "*" : "";
  switch (r->path_kind) {
  case PATH_ANY:
    snprintf(out, outlen, "%s%s", wild, host);
    break;
  case PATH_EXACT:
    snprintf(out, outlen, "%s%s=%s", wild, host, r->path);
    break;
  case PATH_PREFIX:
    snprintf(out, outlen, "%s%s%s", wild, host, r->path);
    break;
  case PATH_REGEX:
    snprintf(out, outlen, "%s%s~%s", wild, host, r->path);
    break;
  }
}

static void copy_label(char *dst, size_t n, const char *src) {
  snprintf(dst, n, "%s", src);
}

static struct metrics_req_slot *req_slot(struct metrics_worker *m, const char *route,
                                         const char *upstream, const char *cls) {
  uint32_t h = fnv(fnv(fnv(2166136261u, route), upstream), cls);
  for (uint32_t i = 0; i < METRICS_REQ_SLOTS; i++) {
    struct metrics_req_slot *s = &m->req[(h + i) & (METRICS_REQ_SLOTS - 1)];
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == 0) {
      s->hash = h;
      copy_label(s->route, sizeof(s->route), route);
      copy_label(s->upstream, sizeof(s->upstream), upstream);
      copy_label(s->cls, sizeof(s->cls), cls);
      atomic_store_explicit(&s->state, 1, memory_order_release);
      return s;
    }
    if (s->hash == h && strcmp(s->route, route) == 0 && strcmp(s->upstream, upstream) == 0 &&
        strcmp(s->cls, cls) == 0)
      return s;
  }
  return NULL;
}

void metrics_exchange_done(struct metrics_worker *m, const struct exchange *ex, uint64_t now_ms) {
  const char *up = ex->up && ex->up->cfg ? ex->up->cfg->name : "";
  int c = ex->status >= 100 && ex->status < 600 ? ex->status / 100 : 0;
  /* the upstream too: a route split over upstreams alternates them */
  size_t mi = (((uintptr_t)ex->route >> 4) ^ ((uintptr_t)up >> 4) ^ (uintptr_t)c) & 15u;
  struct metrics_req_slot *s = NULL;
  /* Keyed by the worker's configuration generation, not a pointer: route
   * and upstream pointers are unique among live generations, and a
   * generation number is never reused after a reload frees the old one. */
  uint64_t gen = mc_get(&m->config_gen);
  if (m->memo[mi].slot && m->memo[mi].gen == gen && m->memo[mi].route == ex->route &&
      m->memo[mi].up == up && m->memo[mi].cls == c) {
    s = m->memo[mi].slot;
  } else {
    char route[METRICS_LABEL_MAX];
    metrics_route_label(ex->route, route, sizeof(route));
    char cls[8] = "none";
    if (c) {
      cls[0] = (char)('0' + c);
      memcpy(cls + 1, "xx", 3);
    }
    s = req_slot(m, route, up, cls);
    if (s) {
      m->memo[mi].gen = gen;
      m->memo[mi].route = ex->route;
      m->memo[mi].up = up;
      m->memo[mi].cls = c;
      m->memo[mi].slot = s;
    } else {
      s = req_slot(m, "other", "", "");
    }
  }
  if (s) {
    uint64_t ms = now_ms >= ex->t_start_ms ? now_ms - ex->t_start_ms : 0;
    unsigned b = 0;
    while (b < METRICS_LAT_NBUCKETS - 1 && ms > lat_bounds_ms[b])
      b++;
    mc_add(&s->count, 1);
    mc_add(&s->lat_bucket[b], 1);
    mc_add(&s->lat_sum_ms, ms);
    if (ex->refused == 429)
      mc_add(&s->rate_limited, 1);
    else if (ex->refused == 503)
      mc_add(&s->circuit_open, 1);
  }
  /* Retries are rare: the per-reason counts are tested as one word, so a
   * request without any pays a single compare. */
  uint32_t retried;
  _Static_assert(sizeof ex->nretries == sizeof retried, "one byte per retry reason");
  memcpy(&retried, ex->nretries, sizeof retried);
  if (!s || !(retried || ex->budget_exhausted))
    return;
  for (unsigned r = 0; r < RETRY_REASON_N; r++)
    if (ex->nretries[r])
      mc_add(&s->retries[r], ex->nretries[r]);
  if (ex->budget_exhausted)
    mc_add(&s->budget_exhausted, 1);
}

static struct metrics_srv_slot *srv_slot(struct metrics_worker *m, const char *upstream,
                                         const char *server) {
  uint32_t h = fnv(fnv(2166136261u, upstream), server);
  for (uint32_t i = 0; i < METRICS_SRV_SLOTS; i++) {
    struct metrics_srv_slot *s = &m->srv[(h + i) & (METRICS_SRV_SLOTS - 1)];
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == 0) {
      s->hash = h;
      copy_label(s->upstream, sizeof(s->upstream), upstream);
      copy_label(s->server, sizeof(s->server), server);
      atomic_store_explicit(&s->state, 1, memory_order_release);
      return s;
    }
    if (s->hash == h && strcmp(s->upstream, upstream) == 0 && strcmp(s->server, server) == 0)
      return s;
  }
  return NULL;
}

static const char *const result_names[METRICS_RESULT_N] = {
#define METRICS_RESULT_NAME(id, name) name,
    METRICS_RESULTS(METRICS_RESULT_NAME)
#undef METRICS_RESULT_NAME
};

const char *metrics_result_name(enum metrics_result r) {
  return (unsigned)r < METRICS_RESULT_N ? result_names[r] : "unknown";
}

/* `inline` asks LTO to inline it where it is called (the header's declaration keeps
 * this an external definition): once per request, and the sub-request
 * caller (src/subreq.c) had made it an out-of-line call. */
inline void metrics_upstream_result(struct metrics_worker *m, const struct server_rt *srv,
                                    enum metrics_result r) {
  if (!srv || (unsigned)r >= METRICS_RESULT_N)
    return;
  /* Keyed as the request memo is (see metrics_exchange_done), plus the
   * address epoch: a slot reused for another address has another name. */
  uint64_t gen = mc_get(&m->config_gen);
  size_t mi = ((uintptr_t)srv >> 4) & 15u;
  struct metrics_srv_slot *s;
  if (m->srv_memo[mi].slot && m->srv_memo[mi].gen == gen && m->srv_memo[mi].srv == srv &&
      m->srv_memo[mi].epoch == srv->epoch) {
    s = m->srv_memo[mi].slot;
  } else {
    s = srv_slot(m, srv->up && srv->up->cfg ? srv->up->cfg->name : "", srv->name);
    if (!s)
      return; /* the table is full: not counted */
    m->srv_memo[mi].gen = gen;
    m->srv_memo[mi].srv = srv;
    m->srv_memo[mi].epoch = srv->epoch;
    m->srv_memo[mi].slot = s;
  }
  mc_add(&s->results[r], 1);
}

void metrics_sample_servers(struct worker *w) {
  struct metrics_worker *m = &w->metrics;
  for (uint32_t i = 0; i < METRICS_SRV_SLOTS; i++)
    if (atomic_load_explicit(&m->srv[i].state, memory_order_relaxed))
      mc_set(&m->srv[i].present, 0);
  uint64_t now = upstream_now_ms();
  for (size_t i = 0; i < w->nups; i++) {
    struct upstream_rt *u = &w->ups[i];
    /* Catch up with DNS changes even without traffic: new servers show,
     * vanished ones close their idle connections. */
    upstream_rt_sync(u);
    for (size_t j = 0; j < u->nservers; j++) {
      struct server_rt *sv = &u->servers[j];
      if (sv->gone || !sv->slot)
        continue;
      struct upstream_server_stats st;
      upslot_stats(sv->slot, now, &st);
      struct metrics_srv_slot *s = srv_slot(m, u->cfg->name, sv->name);
      if (!s || !st.present)
        continue;
      mc_set(&s->present, 1);
      mc_set(&s->idle, sv->pool.nidle);
      mc_set(&s->busy, sv->pool.active);
      mc_set(&s->healthy, st.down || st.ejected ? 0 : 1);
    }
  }
}

/* ---- rendering (admin thread) ---------------------------------------------- */

void metrics_escape_label(const char *in, char *out, size_t outlen) {
  size_t o = 0;
  for (; *in && o + 3 < outlen; in++) {
    if (*in == '\\' || *in == '"') {
      out[o++] = '\\';
      out[o++] = *in;
    } else if (*in == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else {
      out[o++] = *in;
    }
  }
  out[o] = 0;
}

static uint64_t sum(const struct metrics_source *src, size_t off) {
  uint64_t t = 0;
  for (unsigned i = 0; i < src->nworkers; i++)
    t += mc_get((const mcount *)(const void *)((const char *)&src->workers[i].metrics + off));
  return t;
}

#define SUM(field) sum(src, offsetof(struct metrics_worker, field))

static void counter(struct admin_reply *rep, const char *name, const char *help, uint64_t v) {
  admin_reply_printf(rep, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name,
                     name, v);
}

static void gauge(struct admin_reply *rep, const char *name, const char *help, uint64_t v) {
  admin_reply_printf(rep, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help, name, name,
                     v);
}

/* Rows merged from every worker's slots (admin thread): an index from
 * label hash to row, open addressing, sized for every slot of every
 * worker, so merging is linear in the slots. */
struct row_index {
  uint32_t *idx; /* row + 1; 0 empty */
  size_t mask;
};

static bool row_index_init(struct row_index *ix, size_t rows) {
  size_t n = 16;
  while (n < rows * 2)
    n *= 2;
  ix->idx = calloc(n, sizeof(*ix->idx));
  ix->mask = n - 1;
  return ix->idx != NULL;
}

/* The row for hash h that same() accepts, or a new one (*n grows). */
static size_t row_index_get(struct row_index *ix, uint32_t h, size_t *n,
                            bool (*same)(const void *rows, size_t k, const void *key),
                            const void *rows, const void *key) {
  for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
    if (ix->idx[i] == 0) {
      ix->idx[i] = (uint32_t)(*n + 1);
      return (*n)++;
    }
    if (same(rows, ix->idx[i] - 1, key))
      return ix->idx[i] - 1;
  }
}

struct req_row {
  const struct metrics_req_slot *s;
  uint64_t count;
};

struct hist_row {
  const struct metrics_req_slot *s; /* route and upstream labels */
  uint64_t bucket[METRICS_LAT_NBUCKETS], sum_ms, count;
};

static bool req_same(const void *rows, size_t k, const void *key) {
  const struct metrics_req_slot *a = ((const struct req_row *)rows)[k].s, *b = key;
  return a->hash == b->hash && strcmp(a->route, b->route) == 0 &&
         strcmp(a->upstream, b->upstream) == 0 && strcmp(a->cls, b->cls) == 0;
}

static bool hist_same(const void *rows, size_t k, const void *key) {
  const struct metrics_req_slot *a = ((const struct hist_row *)rows)[k].s, *b = key;
  return strcmp(a->route, b->route) == 0 && strcmp(a->upstream, b->upstream) == 0;
}

static void render_requests(struct admin_reply *rep, const struct metrics_source *src) {
  size_t cap = (size_t)src->nworkers * METRICS_REQ_SLOTS, n = 0, nh = 0;
  struct req_row *rows = calloc(cap ? cap : 1, sizeof(*rows));
  struct hist_row *hist = calloc(cap ? cap : 1, sizeof(*hist));
  struct row_index ix = {0}, hix = {0};
  admin_reply_printf(rep, "# HELP ferry_requests_total Requests finished, by route, upstream and "
                          "status class.\n# TYPE ferry_requests_total counter\n");
  if (!rows || !hist || !row_index_init(&ix, cap) || !row_index_init(&hix, cap)) {
    free(rows);
    free(hist);
    free(ix.idx);
    free(hix.idx);
    return;
  }
  for (unsigned w = 0; w < src->nworkers; w++) {
    const struct metrics_worker *m = &src->workers[w].metrics;
    for (uint32_t i = 0; i < METRICS_REQ_SLOTS; i++) {
      const struct metrics_req_slot *s = &m->req[i];
      if (atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&s->state, memory_order_acquire) == 0)
        continue;
      size_t k = row_index_get(&ix, s->hash, &n, req_same, rows, s);
      if (!rows[k].s)
        rows[k].s = s;
      uint64_t c = mc_get(&s->count);
      rows[k].count += c;
      size_t h = row_index_get(&hix, fnv(fnv(2166136261u, s->route), s->upstream), &nh, hist_same,
                               hist, s);
      if (!hist[h].s)
        hist[h].s = s;
      for (unsigned b = 0; b < METRICS_LAT_NBUCKETS; b++)
        hist[h].bucket[b] += mc_get(&s->lat_bucket[b]);
      hist[h].sum_ms += mc_get(&s->lat_sum_ms);
      hist[h].count += c;
    }
  }
  for (size_t k = 0; k < n; k++) {
    char route[2 * METRICS_LABEL_MAX], up[160];
    metrics_escape_label(rows[k].s->route, route, sizeof(route));
    metrics_escape_label(rows[k].s->upstream, up, sizeof(up));
    admin_reply_printf(
        rep, "ferry_requests_total{route=\"%s\",upstream=\"%s\",class=\"%s\"} %" PRIu64 "\n", route,
        up, rows[k].s->cls, rows[k].count);
  }
  admin_reply_printf(rep, "# HELP ferry_request_duration_seconds Time from the first request "
                          "byte to the last response byte, by route and upstream.\n"
                          "# TYPE ferry_request_duration_seconds histogram\n");
  for (size_t k = 0; k < nh; k++) {
    char route[2 * METRICS_LABEL_MAX], up[160];
    metrics_escape_label(hist[k].s->route, route, sizeof(route));
    metrics_escape_label(hist[k].s->upstream, up, sizeof(up));
    uint64_t cum = 0;
    for (unsigned b = 0; b < METRICS_LAT_NBUCKETS; b++) {
      cum += hist[k].bucket[b];
      char le[24];
      if (b < METRICS_LAT_NBUCKETS - 1)
        snprintf(le, sizeof(le), "%g", (double)lat_bounds_ms[b] / 1000.0);
      else
        snprintf(le, sizeof(le), "+Inf");
      admin_reply_printf(rep,
                         "ferry_request_duration_seconds_bucket{route=\"%s\",upstream=\"%s\","
                         "le=\"%s\"} %" PRIu64 "\n",
                         route, up, le, cum);
    }
    admin_reply_printf(rep,
                       "ferry_request_duration_seconds_sum{route=\"%s\",upstream=\"%s\"} %.3f\n"
                       "ferry_request_duration_seconds_count{route=\"%s\",upstream=\"%s\"} "
                       "%" PRIu64 "\n",
                       route, up, (double)hist[k].sum_ms / 1000.0, route, up, hist[k].count);
  }
  free(rows);
  free(hist);
  free(ix.idx);
  free(hix.idx);
}

struct srv_row {
  const struct metrics_srv_slot *s;
  uint64_t idle, busy, healthy, present;
  uint64_t results[METRICS_RESULT_N];
};

static bool srv_same(const void *rows, size_t k, const void *key) {
  const struct metrics_srv_slot *a = ((const struct srv_row *)rows)[k].s, *b = key;
  return a->hash == b->hash && strcmp(a->upstream, b->upstream) == 0 &&
         strcmp(a->server, b->server) == 0;
}

static void render_servers(struct admin_reply *rep, const struct metrics_source *src) {
  size_t cap = (size_t)src->nworkers * METRICS_SRV_SLOTS, n = 0;
  struct srv_row *rows = calloc(cap ? cap : 1, sizeof(*rows));
  struct row_index ix = {0};
  if (!rows || !row_index_init(&ix, cap)) {
    free(rows);
    return;
  }
  for (unsigned w = 0; w < src->nworkers; w++) {
    const struct metrics_worker *m = &src->workers[w].metrics;
    for (uint32_t i = 0; i < METRICS_SRV_SLOTS; i++) {
      const struct metrics_srv_slot *s = &m->srv[i];
      if (atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&s->state, memory_order_acquire) == 0)
        continue;
      size_t k = row_index_get(&ix, s->hash, &n, srv_same, rows, s);
      if (!rows[k].s) {
        rows[k].s = s;
        rows[k].healthy = 1;
      }
      /* Counters of every server ever seen; gauges of the servers in a
       * worker's current configuration. */
      for (unsigned r = 0; r < METRICS_RESULT_N; r++)
        rows[k].results[r] += mc_get(&s->results[r]);
      if (!mc_get(&s->present))
        continue;
      rows[k].present = 1;
      rows[k].idle += mc_get(&s->idle);
      rows[k].busy += mc_get(&s->busy);
      if (!mc_get(&s->healthy))
        rows[k].healthy = 0; /* unhealthy as soon as one worker sees it so */
    }
  }
  static const char *const names[3] = {"ferry_upstream_connections_idle",
                                       "ferry_upstream_connections_busy",
                                       "ferry_upstream_server_healthy"};
  static const char *const helps[3] = {
      "Idle pooled keep-alive connections per upstream server.",
      "Upstream connections attached to a request per upstream server.",
      "1 when the upstream server takes requests, 0 when health checks marked it down or it "
      "is ejected."};
  for (int kind = 0; kind < 3; kind++) {
    admin_reply_printf(rep, "# HELP %s %s\n# TYPE %s gauge\n", names[kind], helps[kind],
                       names[kind]);
    for (size_t k = 0; k < n; k++) {
      if (!rows[k].present)
        continue;
      char up[160], sv[160];
      metrics_escape_label(rows[k].s->upstream, up, sizeof(up));
      metrics_escape_label(rows[k].s->server, sv, sizeof(sv));
      uint64_t v = kind == 0 ? rows[k].idle : kind == 1 ? rows[k].busy : rows[k].healthy;
      admin_reply_printf(rep, "%s{upstream=\"%s\",server=\"%s\"} %" PRIu64 "\n", names[kind], up,
                         sv, v);
    }
  }
  admin_reply_printf(rep, "# HELP ferry_upstream_requests_total Attempts sent to each upstream "
                          "server, by how they ended.\n"
                          "# TYPE ferry_upstream_requests_total counter\n");
  for (size_t k = 0; k < n; k++) {
    char up[160], sv[160];
    metrics_escape_label(rows[k].s->upstream, up, sizeof(up));
    metrics_escape_label(rows[k].s->server, sv, sizeof(sv));
    for (unsigned r = 0; r < METRICS_RESULT_N; r++)
      admin_reply_printf(
          rep,
          "ferry_upstream_requests_total{upstream=\"%s\",server=\"%s\",result=\"%s\"} "
          "%" PRIu64 "\n",
          up, sv, result_names[r], rows[k].results[r]);
  }
  free(rows);
  free(ix.idx);
}

struct metrics_route_slot *metrics_route_slot(struct metrics_worker *m, const struct cfg_route *r) {
  uint64_t gen = mc_get(&m->config_gen);
  size_t mi = ((uintptr_t)r >> 4) & 3u;
  if (m->route_memo[mi].slot && m->route_memo[mi].gen == gen && m->route_memo[mi].route == r)
    return m->route_memo[mi].slot;
  char label[METRICS_LABEL_MAX];
  metrics_route_label(r, label, sizeof label);
  uint32_t h = fnv(2166136261u, label);
  for (uint32_t i = 0; i < METRICS_ROUTE_SLOTS; i++) {
    struct metrics_route_slot *s = &m->routes[(h + i) & (METRICS_ROUTE_SLOTS - 1)];
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == 0) {
      s->hash = h;
      copy_label(s->route, sizeof s->route, label);
      atomic_store_explicit(&s->state, 1, memory_order_release);
    } else if (s->hash != h || strcmp(s->route, label) != 0) {
      continue;
    }
    m->route_memo[mi].gen = gen;
    m->route_memo[mi].route = r;
    m->route_memo[mi].slot = s;
    return s;
  }
  return NULL;
}

/* ferry_auth_requests_total{route,result} (mirror false) or
 * ferry_mirror_requests_total{route,result}: every worker's route slots
 * summed by route. */
static void render_route_counts(struct admin_reply *rep, const struct metrics_source *src,
                                bool mirror) {
  static const char *const auth_names[METRICS_AUTH_N] = {"allowed", "denied", "error"};
  static const char *const mirror_names[METRICS_MIRROR_N] = {"sent", "dropped", "failed"};
  const char *name = mirror ? "ferry_mirror_requests_total" : "ferry_auth_requests_total";
  const char *const *results = mirror ? mirror_names : auth_names;
  unsigned nres = mirror ? METRICS_MIRROR_N : METRICS_AUTH_N;
  struct {
    const char *label;
    uint64_t n[4]; /* room for the longer list of results */
  } rows[METRICS_ROUTE_SLOTS];
  size_t n = 0;
  for (unsigned w = 0; w < src->nworkers; w++) {
    const struct metrics_worker *m = &src->workers[w].metrics;
    for (uint32_t i = 0; i < METRICS_ROUTE_SLOTS; i++) {
      const struct metrics_route_slot *s = &m->routes[i];
      if (atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&s->state, memory_order_acquire) == 0)
        continue;
      uint64_t v[4], any = 0;
      for (unsigned r = 0; r < nres; r++)
        any |= v[r] = mc_get(mirror ? &s->mirror[r] : &s->auth[r]);
      if (!any)
        continue;
      size_t k = 0;
      while (k < n && strcmp(rows[k].label, s->route) != 0)
        k++;
      if (k == n) {
        if (n == METRICS_ROUTE_SLOTS)
          continue;
        rows[n].label = s->route;
        memset(rows[n++].n, 0, sizeof rows[0].n);
      }
      for (unsigned r = 0; r < nres; r++)
        rows[k].n[r] += v[r];
    }
  }
  admin_reply_printf(rep, "# HELP %s %s\n# TYPE %s counter\n", name,
                     mirror ? "Requests a route's mirror sampled, by what became of the copy."
                            : "Requests a route's auth_request checked, by the decision.",
                     name);
  for (size_t k = 0; k < n; k++) {
    char esc[2 * METRICS_LABEL_MAX];
    metrics_escape_label(rows[k].label, esc, sizeof esc);
    for (unsigned r = 0; r < nres; r++)
      admin_reply_printf(rep, "%s{route=\"%s\",result=\"%s\"} %" PRIu64 "\n", name, esc, results[r],
                         rows[k].n[r]);
  }
}

/* ferry_rate_limited_total{route} (by_upstream false) or
 * ferry_circuit_open_total{upstream}: the request slots' refusal counts
 * summed by the one label over every worker. */
static void render_refusals(struct admin_reply *rep, const struct metrics_source *src,
                            bool by_upstream) {
  enum { ROWS = 256 };
  static const char *const name[2] = {"ferry_rate_limited_total", "ferry_circuit_open_total"};
  static const char *const help[2] = {
      "Requests answered 429 by a route's rate_limit.",
      "Requests answered 503 at once because the upstream's max_requests were in flight."};
  struct {
    const char *label;
    uint64_t n;
  } rows[ROWS];
  size_t n = 0;
  for (unsigned w = 0; w < src->nworkers; w++) {
    const struct metrics_worker *m = &src->workers[w].metrics;
    for (uint32_t i = 0; i < METRICS_REQ_SLOTS; i++) {
      const struct metrics_req_slot *s = &m->req[i];
      if (atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&s->state, memory_order_acquire) == 0)
        continue;
      uint64_t v = mc_get(by_upstream ? &s->circuit_open : &s->rate_limited);
      const char *label = by_upstream ? s->upstream : s->route;
      if (!v)
        continue;
      size_t k = 0;
      while (k < n && strcmp(rows[k].label, label) != 0)
        k++;
      if (k == n) {
        if (n == ROWS)
          continue;
        rows[n].label = label;
        rows[n++].n = 0;
      }
      rows[k].n += v;
    }
  }
  admin_reply_printf(rep, "# HELP %s %s\n# TYPE %s counter\n", name[by_upstream], help[by_upstream],
                     name[by_upstream]);
  for (size_t k = 0; k < n; k++) {
    char esc[2 * METRICS_LABEL_MAX];
    metrics_escape_label(rows[k].label, esc, sizeof esc);
    admin_reply_printf(rep, "%s{%s=\"%s\"} %" PRIu64 "\n", name[by_upstream],
                       by_upstream ? "upstream" : "route", esc, rows[k].n);
  }
}

_Static_assert(METRICS_RETRY_REASONS == RETRY_REASON_N, "one retry counter per reason");

/* ferry_retries_total{route,reason} and
 * ferry_retry_budget_exhausted_total{route}: the request slots' retry
 * counts summed by route over every worker. */
static void render_retries(struct admin_reply *rep, const struct metrics_source *src) {
  enum { ROWS = 256, N = RETRY_REASON_N + 1 };
  struct {
    const char *route;
    uint64_t n[N]; /* by reason, then budget_exhausted */
  } *rows = calloc(ROWS, sizeof *rows);
  size_t n = 0;
  for (unsigned w = 0; rows && w < src->nworkers; w++) {
    const struct metrics_worker *m = &src->workers[w].metrics;
    for (uint32_t i = 0; i < METRICS_REQ_SLOTS; i++) {
      const struct metrics_req_slot *s = &m->req[i];
      if (atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&s->state, memory_order_acquire) == 0)
        continue;
      uint64_t v[N], any = 0;
      for (unsigned r = 0; r < N; r++)
        any |= v[r] = mc_get(r < RETRY_REASON_N ? &s->retries[r] : &s->budget_exhausted);
      if (!any)
        continue;
      size_t k = 0;
      while (k < n && strcmp(rows[k].route, s->route) != 0)
        k++;
      if (k == n) {
        if (n == ROWS)
          continue;
        rows[n++].route = s->route;
      }
      for (unsigned r = 0; r < N; r++)
        rows[k].n[r] += v[r];
    }
  }
  admin_reply_printf(rep, "# HELP ferry_retries_total Attempts sent again after a failed one, by "
                          "route and reason.\n# TYPE ferry_retries_total counter\n");
  for (size_t k = 0; k < n; k++) {
    char esc[2 * METRICS_LABEL_MAX];
    metrics_escape_label(rows[k].route, esc, sizeof esc);
    for (unsigned r = 0; r < RETRY_REASON_N; r++)
      if (rows[k].n[r])
        admin_reply_printf(rep, "ferry_retries_total{route=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                           esc, retry_reason_name((enum retry_reason)r), rows[k].n[r]);
  }
  admin_reply_printf(rep, "# HELP ferry_retry_budget_exhausted_total Requests whose retry the "
                          "route's retry budget refused (the answer stood).\n"
                          "# TYPE ferry_retry_budget_exhausted_total counter\n");
  for (size_t k = 0; k < n; k++) {
    char esc[2 * METRICS_LABEL_MAX];
    metrics_escape_label(rows[k].route, esc, sizeof esc);
    if (rows[k].n[RETRY_REASON_N])
      admin_reply_printf(rep, "ferry_retry_budget_exhausted_total{route=\"%s\"} %" PRIu64 "\n", esc,
                         rows[k].n[RETRY_REASON_N]);
  }
  free(rows);
}

/* ferry_tls_handshakes_total{listener,result}: each TLS listener address
 * (as worker 0 opened it, in any generation) summed over the workers. */
static void render_tls(struct admin_reply *rep, const struct metrics_source *src) {
  admin_reply_printf(rep, "# HELP ferry_tls_handshakes_total TLS handshakes on listeners, by "
                          "result.\n# TYPE ferry_tls_handshakes_total counter\n");
  if (src->nworkers == 0)
    return;
  const struct worker_listener *first = atomic_load(&src->workers[0].listeners);
  for (const struct worker_listener *l = first; l; l = l->next) {
    if (!l->tls)
      continue;
    bool seen = false; /* a listener closed and reopened: counted once */
    for (const struct worker_listener *e = first; e != l && !seen; e = e->next)
      seen = e->tls && strcmp(e->own.address, l->own.address) == 0;
    if (seen)
      continue;
    uint64_t ok = 0, failed = 0;
    for (unsigned i = 0; i < src->nworkers; i++)
      for (const struct worker_listener *m = atomic_load(&src->workers[i].listeners); m;
           m = m->next)
        if (m->tls && strcmp(m->own.address, l->own.address) == 0) {
          ok += mc_get(&m->ctr.tls_ok);
          failed += mc_get(&m->ctr.tls_failed);
        }
    char lab[256];
    metrics_escape_label(l->own.address, lab, sizeof lab);
    admin_reply_printf(rep,
                       "ferry_tls_handshakes_total{listener=\"%s\",result=\"ok\"} %" PRIu64 "\n"
                       "ferry_tls_handshakes_total{listener=\"%s\",result=\"failed\"} %" PRIu64
                       "\n",
                       lab, ok, lab, failed);
  }
}

void metrics_process_init(struct metrics_process *p) {
  p->certs_mu_ok = uv_mutex_init(&p->certs_mu) == 0;
}

void metrics_process_destroy(struct metrics_process *p) {
  if (p->certs_mu_ok)
    uv_mutex_destroy(&p->certs_mu);
  p->certs_mu_ok = false;
  free(p->certs);
  p->certs = NULL;
  p->ncerts = 0;
}

void metrics_set_certificates(struct metrics_process *p, const struct config *cfg) {
  if (!p->certs_mu_ok)
    return;
  size_t n = 0;
  for (size_t i = 0; i < cfg->nlisteners; i++)
    n += tls_server_count(cfg->listeners[i].tls_srv);
  struct metrics_cert *rows = n ? calloc(n, sizeof *rows) : NULL;
  if (n && !rows)
    return;
  size_t k = 0;
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    const struct tls_server *srv = cfg->listeners[i].tls_srv;
    for (size_t c = 0; c < tls_server_count(srv); c++) {
      struct metrics_cert *m = &rows[k];
      snprintf(m->listener, sizeof m->listener, "%s", cfg->listeners[i].address);
      m->not_after = (int64_t)tls_server_cert(srv, c, m->name, sizeof m->name);
      /* two certificates with one name on a listener (RSA and ECDSA,
       * say) are one series: the one that expires first */
      size_t j = 0;
      while (j < k &&
             (strcmp(rows[j].listener, m->listener) != 0 || strcmp(rows[j].name, m->name) != 0))
        j++;
      if (j == k)
        k++;
      else if (m->not_after < rows[j].not_after)
        rows[j].not_after = m->not_after;
    }
  }
  uv_mutex_lock(&p->certs_mu);
  struct metrics_cert *old = p->certs;
  p->certs = rows;
  p->ncerts = k;
  uv_mutex_unlock(&p->certs_mu);
  free(old);
}

/* ferry_tls_certificate_expiry_timestamp_seconds{listener,name}. */
static void render_cert_expiry(struct admin_reply *rep, struct metrics_process *p) {
  admin_reply_printf(rep, "# HELP ferry_tls_certificate_expiry_timestamp_seconds Unix time each "
                          "TLS listener certificate expires (its notAfter).\n"
                          "# TYPE ferry_tls_certificate_expiry_timestamp_seconds gauge\n");
  if (!p->certs_mu_ok)
    return;
  uv_mutex_lock(&p->certs_mu);
  for (size_t i = 0; i < p->ncerts; i++) {
    char l[2 * sizeof p->certs[i].listener], n[2 * sizeof p->certs[i].name];
    metrics_escape_label(p->certs[i].listener, l, sizeof l);
    metrics_escape_label(p->certs[i].name, n, sizeof n);
    admin_reply_printf(
        rep,
        "ferry_tls_certificate_expiry_timestamp_seconds{listener=\"%s\",name=\"%s\"} "
        "%" PRId64 "\n",
        l, n, p->certs[i].not_after);
  }
  uv_mutex_unlock(&p->certs_mu);
}

void metrics_admin_handler(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  const struct metrics_source *src = ud;
  (void)req;
  admin_reply_status(rep, 200, "text/plain; version=0.0.4; charset=utf-8");
  render_requests(rep, src);

  gauge(rep, "ferry_client_connections", "Client connections open now.", SUM(conns_active));
  counter(rep, "ferry_client_connections_total", "Client connections accepted.", SUM(conns_total));
  counter(rep, "ferry_client_connections_rejected_total",
          "Client connections answered 503 because limits.max_connections was reached.",
          SUM(conns_rejected));
  counter(rep, "ferry_proxy_protocol_errors_total",
          "Connections closed for a missing or malformed PROXY protocol header.",
          SUM(proxy_protocol_errors));
  render_tls(rep, src);
  if (src->proc)
    render_cert_expiry(rep, src->proc);
  counter(rep, "ferry_accept_errors_total",
          "Client connections ferry could not accept (out of file descriptors or memory).",
          SUM(accept_errors));
  counter(rep, "ferry_local_resource_errors_total",
          "Upstream connections ferry could not open for want of a local resource (file "
          "descriptors, memory, ephemeral ports); answered 503, not held against the server.",
          SUM(local_errors));
  render_servers(rep, src);
  render_refusals(rep, src, false);
  render_refusals(rep, src, true);
  render_route_counts(rep, src, false);
  render_route_counts(rep, src, true);
  counter(rep, "ferry_bytes_received_total", "Bytes read from clients.", SUM(bytes_in));
  counter(rep, "ferry_bytes_sent_total", "Bytes written to clients.", SUM(bytes_out));
  counter(rep, "ferry_bytes_spliced_total",
          "Of the bytes sent, response body bytes moved socket to socket without a copy (splice).",
          SUM(bytes_spliced));
  render_retries(rep, src);
  if (src->proc) {
    const struct metrics_process *p = src->proc;
    admin_reply_printf(rep,
                       "# HELP ferry_reloads_total Configuration reloads (SIGHUP), by result.\n"
                       "# TYPE ferry_reloads_total counter\n"
                       "ferry_reloads_total{result=\"success\"} %" PRIu64 "\n"
                       "ferry_reloads_total{result=\"failure\"} %" PRIu64 "\n",
                       mc_get(&p->reloads_ok), mc_get(&p->reloads_failed));
    admin_reply_printf(rep,
                       "# HELP ferry_upgrades_total Binary upgrades (SIGUSR2) started by this "
                       "process, by result.\n"
                       "# TYPE ferry_upgrades_total counter\n"
                       "ferry_upgrades_total{result=\"success\"} %" PRIu64 "\n"
                       "ferry_upgrades_total{result=\"failure\"} %" PRIu64 "\n",
                       mc_get(&p->upgrades_ok), mc_get(&p->upgrades_failed));
    gauge(rep, "ferry_reload_last_success",
          "1 when the last reload succeeded, 0 when it failed (1 before any reload).",
          mc_get(&p->last_reload_time) ? mc_get(&p->last_reload_ok) : 1);
    gauge(rep, "ferry_reload_last_timestamp_seconds",
          "Unix time of the last reload attempt (0: none yet).", mc_get(&p->last_reload_time));
    gauge(rep, "ferry_start_timestamp_seconds", "Unix time ferry started.", mc_get(&p->start_time));
    gauge(rep, "ferry_draining", "1 while ferry drains after SIGTERM/SIGINT.",
          mc_get(&p->draining));
  }
  counter(rep, "ferry_access_log_dropped_total",
          "Access log lines dropped because the log writer's queue was full.",
          src->log ? accesslog_dropped(src->log) : 0);
  counter(rep, "ferry_admin_events_dropped_total",
          "Events from workers to the admin thread dropped because its queue was full.",
          admin_events_dropped(src->admin));
  gauge(rep, "ferry_workers", "Worker threads.", src->nworkers);
  uint64_t gen_min = UINT64_MAX;
  for (unsigned i = 0; i < src->nworkers; i++) {
    uint64_t g = mc_get(&src->workers[i].metrics.config_gen);
    if (g < gen_min)
      gen_min = g;
  }
  gauge(rep, "ferry_config_generation",
        "Configuration generation every worker serves new requests with (1 at start, +1 per "
        "successful reload).",
        src->nworkers ? gen_min : 0);
}
