/* metrics: per-worker counters and their Prometheus text rendering.
 *
 * Each worker owns one struct metrics_worker and is the only thread that
 * writes it (single writer: a relaxed load + relaxed store, no locked
 * instruction on the request path). The admin thread reads every worker's
 * counters with relaxed loads and sums them when /metrics is scraped.
 *
 * Requests are counted per (route, upstream, status class) in a fixed
 * open-addressing table per worker: a slot's labels are written once by
 * the worker and then published with a release store of its state, so the
 * admin thread never sees a half-written label. Labels survive reloads
 * (they are text, not pointers into a configuration). When the table is
 * full, further combinations count under route="other".
 *
 * Each request slot also holds the request-duration histogram of its
 * (route, upstream, class); /metrics sums the classes into one histogram
 * per (route, upstream), so a request costs a few adds and no lookup.
 *
 * Per server (upstream, server) a worker counts every attempt by how it
 * ended (enum metrics_result), through a memo keyed like the request one.
 * Pooled-connection gauges (idle/busy per server) and health are sampled
 * by the worker from its own upstream state every METRICS_SAMPLE_MS. */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define METRICS_LAT_NBUCKETS 12
#define METRICS_REQ_SLOTS 512u
#define METRICS_SRV_SLOTS 256u
#define METRICS_LABEL_MAX 96
#define METRICS_SAMPLE_MS 250
#define METRICS_RETRY_REASONS 4 /* RETRY_REASON_N (src/retry.h), checked in metrics.c */

typedef _Atomic uint64_t mcount;

/* Single-writer add: only the owning worker calls it. */
static inline void mc_add(mcount *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}
static inline void mc_set(mcount *c, uint64_t v) {
  atomic_store_explicit(c, v, memory_order_relaxed);
}
static inline uint64_t mc_get(const mcount *c) {
  return atomic_load_explicit((mcount *)(uintptr_t)c, memory_order_relaxed);
}

struct metrics_req_slot {
  _Atomic uint32_t state; /* 0 empty, 1 published */
  uint32_t hash;
  char route[METRICS_LABEL_MAX];
  char upstream[64];
  char cls[8]; /* "2xx", or "none" when no response was sent */
  mcount count;
  mcount lat_bucket[METRICS_LAT_NBUCKETS]; /* not cumulative; rendered cumulative */
  mcount lat_sum_ms;
  /* traffic control refusals (SPEC §8), counted by route / upstream */
  mcount rate_limited; /* 429 by rate_limit */
  mcount circuit_open; /* 503 at the upstream's max_requests */
  /* retries by reason (enum retry_reason), and requests whose retry the
   * route's budget refused, counted by route */
  mcount retries[METRICS_RETRY_REASONS];
  mcount budget_exhausted;
};

/* How one attempt on an upstream server ended (label `result` of
 * ferry_upstream_requests_total). */
#define METRICS_RESULTS(X)                                                                         \
  X(OK, "ok")                           /* a response head that is not 5xx */                      \
  X(5XX, "5xx")                         /* a 5xx response head */                                  \
  X(CONNECT_FAILURE, "connect_failure") /* refused, unreachable, connect timed out */              \
  X(RESET, "reset")                     /* closed or reset before a response head */               \
  X(TIMEOUT, "timeout")                 /* no response head within the timeout */                  \
  X(INVALID, "invalid")                 /* a response head that is not valid HTTP */               \
  X(LOCAL, "local")                     /* ferry's own shortage (fds, memory, ports) */            \
  X(ABORTED, "aborted") /* ferry gave up first: the client went away, or its request failed */

enum metrics_result {
#define METRICS_RESULT_ENUM(id, name) METRICS_RESULT_##id,
  METRICS_RESULTS(METRICS_RESULT_ENUM)
#undef METRICS_RESULT_ENUM
      METRICS_RESULT_N
};

/* auth_request and mirror outcomes per route (labels of
 * ferry_auth_requests_total and ferry_mirror_requests_total). */
enum metrics_auth { METRICS_AUTH_ALLOWED, METRICS_AUTH_DENIED, METRICS_AUTH_ERROR, METRICS_AUTH_N };
enum metrics_mirror {
  METRICS_MIRROR_SENT,    /* the whole copy went out and the mirror answered */
  METRICS_MIRROR_DROPPED, /* not sent, or cut, so the client is never held */
  METRICS_MIRROR_FAILED,  /* the mirror failed: connect, reset, timeout, invalid */
  METRICS_MIRROR_N
};
#define METRICS_ROUTE_SLOTS 64u

struct metrics_route_slot {
  _Atomic uint32_t state; /* 0 empty, 1 published */
  uint32_t hash;
  char route[METRICS_LABEL_MAX];
  mcount auth[METRICS_AUTH_N];
  mcount mirror[METRICS_MIRROR_N];
};

struct metrics_srv_slot {
  _Atomic uint32_t state; /* 0 empty, 1 published */
  uint32_t hash;
  char upstream[64];
  char server[64];
  mcount present; /* 1 when in the worker's current configuration */
  mcount idle, busy;
  mcount healthy;                   /* 1 healthy, 0 not */
  mcount results[METRICS_RESULT_N]; /* attempts, by how they ended */
};

/* A worker's counters for one of its listeners (written by the worker). */
struct listener_counters {
  mcount tls_ok, tls_failed; /* TLS handshakes, for /metrics */
};

struct metrics_worker {
  mcount conns_active; /* gauge */
  mcount conns_total;
  mcount conns_rejected; /* over limits.max_connections */
  mcount bytes_in, bytes_out;
  mcount bytes_spliced; /* of bytes_out, response body bytes spliced (no copy) */
  mcount proxy_protocol_errors;
  mcount accept_errors; /* accept() failed (fds or memory ran out) */
  mcount local_errors;  /* upstream connects that failed for want of a local resource */
  mcount config_gen;    /* configuration generation this worker serves new requests with */
  struct metrics_req_slot req[METRICS_REQ_SLOTS];
  struct metrics_srv_slot srv[METRICS_SRV_SLOTS];
  struct metrics_route_slot routes[METRICS_ROUTE_SLOTS]; /* routes with auth_request or mirror */
  struct {
    uint64_t gen;
    const void *route;
    struct metrics_route_slot *slot;
  } route_memo[4];
  /* Worker-only memo of (generation, route, upstream, status class) ->
   * request slot, so a request costs no label formatting or lookup. */
  struct {
    uint64_t gen; /* config_gen when memoised */
    const void *route, *up;
    int cls;
    struct metrics_req_slot *slot;
  } memo[16];
  /* Worker-only memo of (generation, server, address epoch) -> server slot. */
  struct {
    uint64_t gen;
    const void *srv;
    uint32_t epoch;
    struct metrics_srv_slot *slot;
  } srv_memo[16];
};

/* Process-wide state shown by /metrics besides the per-worker counters.
 * Written by the main thread (reloads), read by the admin thread. */
struct metrics_process {
  mcount reloads_ok, reloads_failed;
  mcount last_reload_ok;               /* 1 success, 0 failure (only meaningful after one) */
  mcount last_reload_time;             /* unix seconds; 0 = never */
  mcount start_time;                   /* unix seconds */
  mcount draining;                     /* 1 once a stop signal arrived */
  mcount upgrades_ok, upgrades_failed; /* SIGUSR2 outcomes in this process */
  /* ferry_tls_certificate_expiry_timestamp_seconds: one row per
   * certificate of each TLS listener in the published configuration,
   * replaced whole on start and on each successful reload (so the old
   * generation's rows go with it). Guarded by certs_mu: main writes, the
   * admin thread reads; neither is on the request path. */
  uv_mutex_t certs_mu;
  bool certs_mu_ok;
  struct metrics_cert *certs;
  size_t ncerts;
};

struct metrics_cert {
  char listener[128];
  char name[128]; /* the subject's CN, else the first subjectAltName DNS name */
  int64_t not_after;
};

struct config;
/* Main thread: set up / release p's lock and rows. */
void metrics_process_init(struct metrics_process *p);
void metrics_process_destroy(struct metrics_process *p);
/* Main thread: the certificate rows become cfg's (its listeners' built
 * TLS contexts). Out of memory keeps the previous rows. */
void metrics_set_certificates(struct metrics_process *p, const struct config *cfg);

struct worker;
struct exchange;
struct server_rt;
struct cfg_route;
struct admin;
struct admin_reply;
struct admin_request;
struct accesslog;

/* A worker finished an exchange: count it. Worker thread. */
void metrics_exchange_done(struct metrics_worker *m, const struct exchange *ex, uint64_t now_ms);

/* An attempt on server srv ended with result r: count it. Worker thread. */
void metrics_upstream_result(struct metrics_worker *m, const struct server_rt *srv,
                             enum metrics_result r);
/* The per-route slot of r's auth_request and mirror counters (its
 * pointer stays valid for the worker's life); NULL when the table is
 * full. Worker thread. */
struct metrics_route_slot *metrics_route_slot(struct metrics_worker *m, const struct cfg_route *r);

/* The label text of a result ("ok", "connect_failure", ...). */
const char *metrics_result_name(enum metrics_result r);

/* The label for a route: its host (if any) followed by its path rule
 * ("/api" prefix, "=/exact", "~^/v[0-9]+/" regex), e.g. "api.example.com/v1",
 * "*.example.com", "=/ping"; "*" for a route matching everything; "none"
 * when no route matched. */
void metrics_route_label(const struct cfg_route *r, char *out, size_t outlen);

/* Copy the worker's upstream pool state into its gauges. Worker thread. */
void metrics_sample_servers(struct worker *w);

/* What the /metrics handler sums over. ud for metrics_admin_handler. */
struct metrics_source {
  struct worker *workers;
  unsigned nworkers;
  struct metrics_process *proc;
  struct accesslog *log;
  struct admin *admin;
};

/* admin handler for /metrics (ud: struct metrics_source *). Admin thread. */
void metrics_admin_handler(void *ud, const struct admin_request *req, struct admin_reply *rep);

/* Escape a label value (\\, \", \n) into out. */
void metrics_escape_label(const char *in, char *out, size_t outlen);

#endif
