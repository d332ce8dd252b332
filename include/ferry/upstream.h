/* upstream: upstream pools and servers, at two levels.
 *
 * Process-wide (struct upstreams, one per configuration): for every pool a
 * fixed array of server slots, one per resolved address of a configured
 * server. A slot's address and name are written once, before the slot is
 * published, and never change while the slot is in use (a slot gone from
 * DNS long enough may be reused for a new address of the same server:
 * its epoch changes); its health, ejection, in-flight count and
 * counters are atomics shared by every worker and by the monitor thread
 * (health.c) that runs the active checks and re-resolves names. Slots are
 * keyed by (configured server, address): an address that vanishes from DNS
 * and comes back gets its old slot, and its state, again.
 *
 * Per worker (struct upstream_rt): a view of the same slots with this
 * worker's idle keep-alive connections (owned by connpool), balancer state
 * and hash ring. The view catches up with membership changes (DNS) on the
 * next pick; servers that vanished get no new requests and their idle
 * connections are closed then.
 *
 * Balancing algorithms are in balance.c; this module feeds them. */
#ifndef FERRY_UPSTREAM_H
#define FERRY_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/connpool.h"
#include "ferry/balance.h"
#include "ferry/config.h"
#include "ferry/http_head.h"

#define UPSTREAM_MAX_ADDRS 16u /* addresses of a server name used at once */
/* Slots per server name: room for a complete change of addresses while the
 * old ones wait to be reused. */
#define UPSTREAM_NAME_SLOTS (2u * UPSTREAM_MAX_ADDRS)
/* A slot gone from DNS is reused for a new address only after this long
 * (and 4 resolve intervals) with nothing in flight, so no worker can still
 * be connecting to its old address. */
#define UPSTREAM_SLOT_REUSE_MS (120u * 1000u)

struct upstream_rt;
struct health;

enum upslot_state { UPSLOT_EMPTY = 0, UPSLOT_ACTIVE, UPSLOT_GONE };

struct upslot {
  /* Written once before publication (state leaves EMPTY), then read-only. */
  struct sockaddr_storage addr;
  char name[64]; /* "127.0.0.1:9001", "[::1]:9001" */
  const struct cfg_server *cfg;
  uint32_t weight;

  /* Shared between threads. */
  _Atomic int state;               /* enum upslot_state */
  _Atomic uint32_t epoch;          /* bumped when the slot is reused for another address */
  _Atomic bool down;               /* active health checks failed */
  _Atomic uint64_t eject_until_ms; /* passive ejection end (upstream_now_ms), 0 = none */
  _Atomic uint32_t inflight;       /* requests in flight, all workers */
  _Atomic uint32_t consecutive_5xx;
  _Atomic uint64_t attempts; /* requests sent (or tried) to this server */
  _Atomic uint64_t failures; /* connect failures, resets, timeouts */

  /* Under the pool's mutex (ejection decisions). */
  uint64_t last_eject_ms;    /* length of the last ejection */
  uint64_t last_eject_until; /* when it ended */

  uint64_t gone_since_ms; /* monitor thread only: when it left DNS */
};

struct uppool {
  const struct cfg_upstream *cfg;
  struct upslot *slots;
  size_t cap;
  _Atomic size_t nslots;         /* slots [0, nslots) are published */
  _Atomic uint32_t gen;          /* bumped on every membership change */
  _Atomic uint64_t retries;      /* requests moved to another server */
  _Atomic uint64_t no_server;    /* requests answered 503: no server up */
  _Atomic uint32_t inflight;     /* requests in flight, all workers (max_requests) */
  _Atomic uint64_t circuit_open; /* requests refused at max_requests */
  uv_mutex_t mu;
};

struct upstreams {
  const struct config *cfg;
  struct uppool *pools; /* one per cfg->upstreams[] */
  size_t npools;
  char *hosts_file; /* FERRY_HOSTS_FILE, or NULL: use DNS */
  struct health *health;
};

/* Resolve every server (names via DNS, or the hosts file named by the
 * FERRY_HOSTS_FILE environment variable) and start the monitor thread
 * (active checks, re-resolution). Fails only when a pool has no address
 * at all; names that do not resolve but leave others in the pool are
 * logged. Returns NULL with a message in err. */
struct upstreams *upstreams_new(const struct config *cfg, char *err, size_t errlen);
/* Stop the monitor thread and free. Workers must have stopped. */
void upstreams_free(struct upstreams *u);

/* After a reload that rebuilt the pools: carry health and ejection state
 * over from old to nu for every server address present in both under the
 * same upstream name. Call before any worker uses nu. */
void upstreams_inherit(struct upstreams *nu, struct upstreams *old);

/* Milliseconds on a monotonic clock shared by all threads. */
uint64_t upstream_now_ms(void);

/* Membership (monitor thread, or before workers start). Add an address of
 * configured server cs (or bring a vanished one back): returns the slot,
 * or NULL when the pool is full (every slot of cs in use, none gone for
 * UPSTREAM_SLOT_REUSE_MS with nothing in flight). */
struct upslot *uppool_add(struct uppool *p, const struct cfg_server *cs,
                          const struct sockaddr_storage *addr);
/* The address vanished: no new requests; workers close its idle
 * connections. */
void uppool_remove(struct uppool *p, struct upslot *s);

/* A slot that may take new requests now (published, not gone, not down,
 * not ejected; an ejection that has run out ends here, logged once). */
bool upslot_usable(struct uppool *p, struct upslot *s, uint64_t now_ms);

/* Counters for /metrics (read with relaxed atomics; any thread). */
struct upstream_server_stats {
  const char *name;
  bool present, down, ejected;
  uint32_t inflight;
  uint64_t attempts, failures;
};
void upslot_stats(const struct upslot *s, uint64_t now_ms, struct upstream_server_stats *out);
/* Requests moved to another server by `retries`. */
uint64_t uppool_retries(const struct uppool *p);

/* --- per worker --------------------------------------------------------- */

struct server_rt {
  struct upslot *slot;
  const struct cfg_server *cfg;
  struct upstream_rt *up;
  struct connpool pool; /* this worker's connections to the server */
  bool gone;            /* address vanished from DNS */
  uint32_t epoch;       /* slot->epoch when name was copied */
  char name[64];        /* == slot->name, for logs */
};

struct upstream_rt {
  const struct cfg_upstream *cfg;
  struct uppool *pool;
  struct server_rt *servers; /* pool->cap entries; [0, nservers) in use */
  size_t nservers;
  struct balance_peer *peers; /* pool->cap entries */
  struct balance_ring ring;
  uint32_t gen;
  uint64_t rng;
};

int upstream_rt_init(struct upstream_rt *u, struct uppool *pool, uint64_t seed);
void upstream_rt_destroy(struct upstream_rt *u);

/* Catch up with membership changes (called by upstream_pick). */
void upstream_rt_resync(struct upstream_rt *u, uint32_t gen);
static inline void upstream_rt_sync(struct upstream_rt *u) {
  uint32_t g = atomic_load_explicit(&u->pool->gen, memory_order_acquire);
  if (g != u->gen) /* on every pick: the common case stays inline */
    upstream_rt_resync(u, g);
}

/* The balancing key of a request for balance: hash (client_ip,
 * header:NAME, cookie:NAME). False when the request has none: the pick
 * then falls back to round robin. */
bool upstream_hash_key(const struct cfg_upstream *cfg, struct slice client_ip,
                       const struct hdr_list *hdrs, uint64_t *hash);

/* Pick a server with the pool's algorithm among the usable ones, never
 * one of exclude[0..nexclude). NULL when none is usable. */
struct server_rt *upstream_pick(struct upstream_rt *u, bool has_key, uint64_t key_hash,
                                struct server_rt *const *exclude, size_t nexclude);

/* False once s's address vanished from DNS: its connections are not
 * pooled any more. */
bool upstream_server_present(const struct server_rt *s);

/* A request attempt starts/ends on s (in-flight count for least_conn). */
void upstream_attempt_begin(struct server_rt *s);
void upstream_attempt_end(struct server_rt *s);

/* Passive health. A response status (5xx in a row eject), or a connection
 * failure (connect refused/timed out ejects at once; a reset counts as
 * one failure). `why` is for the log. Never ejects more than half a pool. */
void upstream_report_status(struct server_rt *s, int status);
void upstream_report_failure(struct server_rt *s, bool connect_failed, const char *why);
void upstream_count_retry(struct upstream_rt *u);
void upstream_count_no_server(struct upstream_rt *u);

/* `max_requests` (circuit breaking): take one of the upstream's
 * in-flight places, false (counted) when all are taken; a taken place is
 * given back with upstream_leave. Always true without a cap. */
static inline bool upstream_enter(struct upstream_rt *u) {
  uint32_t cap = u->cfg->max_requests;
  if (cap == 0)
    return true;
  if (atomic_fetch_add_explicit(&u->pool->inflight, 1, memory_order_relaxed) < cap)
    return true;
  atomic_fetch_sub_explicit(&u->pool->inflight, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&u->pool->circuit_open, 1, memory_order_relaxed);
  return false;
}
static inline void upstream_leave(struct upstream_rt *u) {
  atomic_fetch_sub_explicit(&u->pool->inflight, 1, memory_order_relaxed);
}

/* Seconds for Retry-After when no server is up: until the earliest
 * ejection ends, or one check interval; at least 1. */
uint32_t upstream_retry_after(struct upstream_rt *u);

#endif
