/* worker: one event-loop thread and everything it owns.
 *
 * A worker has its own uv loop, listening sockets (SO_REUSEPORT), upstream
 * pools, free lists and counters. Nothing in it is touched by another
 * thread except through stop_async. The configuration snapshot and router
 * are shared read-only. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/inspect.h"
#include "ferry/metrics.h"
#include "ferry/router.h"
#include "ferry/session.h"

struct session;
struct upstream_rt;
struct upstreams;
struct accesslog;
struct exchange;
struct admin;
struct inspector;

struct snapshot;

struct worker_listener {
  uv_tcp_t tcp;
  struct worker *w;
  const struct cfg_listener *cfg; /* == &own: valid as long as the worker */
  struct cfg_listener own;        /* a copy (address strdup'ed): survives reloads */
  struct worker_listener *next;   /* all listeners ever opened; freed at exit */
  bool open;                      /* false once closed (removed by a reload, or stop) */
};

/* One configuration generation as this worker uses it. An exchange holds
 * a reference on the generation current when it began, which keeps that
 * generation and every newer one alive (a reload may land between the
 * start of a request and its routing). Generations retire oldest first
 * once no exchange holds them: their snapshot reference is dropped and,
 * unless the next generation took them over, their upstream views (with
 * any idle connections) are closed. Worker thread only. */
struct worker_gen {
  struct snapshot *snap;
  struct upstream_rt *ups; /* one per snap->cfg->upstreams[] */
  size_t nups;
  bool owns_ups; /* false once a newer generation shares ups */
  unsigned refs;
  struct worker_gen *newer;
};

struct worker {
  uv_loop_t loop;
  unsigned id;
  const struct config *cfg;
  const struct router *router;
  struct accesslog *log;
  struct admin *admin;    /* NULL when admin is off; for admin_post() only */
  struct inspector *insp; /* NULL unless some exchange may be captured; inspector_post() only */
  struct inspect_batch insp_batch; /* captures of this loop turn (src/inspect.c) */

  struct bufpool bufs;
  /* cfg, router, ups, nups mirror the current generation (gen). */
  struct upstream_rt *ups; /* one per cfg->upstreams[] */
  size_t nups;
  struct worker_gen *gen, *oldest_gen;
  _Atomic(struct snapshot *) pending; /* set by worker_reload */
  uv_async_t reload_async;

  struct worker_listener *listeners;
  size_t nlisteners;
  uv_async_t stop_async;
  uv_timer_t drain_timer;
  _Atomic bool stop_now; /* set by worker_stop(now) before the async send */
  uv_thread_t thread;
  int start_error; /* negative uv error when a listener failed */
  char start_error_msg[256];

  struct exchange *free_ex; /* recycled exchanges */
  unsigned nfree_ex;

  /* Live client connections: each is in exactly one list, the one for its
   * timer kind (src/session.c), in deadline order. session_timer fires for
   * the earliest head (or earlier: it re-arms lazily), at timer_fire
   * (UINT64_MAX when not armed). */
  struct session_link timers[ST_KINDS];
  uint64_t timer_ms[ST_KINDS]; /* each kind's duration in cfg (session_timers_configure) */
  uv_timer_t session_timer;
  uint64_t timer_fire;
  uint64_t nsessions;
  struct session_rx *free_rx; /* recycled session_rx (parser.data links them) */
  unsigned nfree_rx;
  bool stopping;

  _Atomic uint64_t *proc_conns; /* open client connections, all workers (max_connections) */

  uint64_t reqid_seed;
  uint64_t reqid_counter;

  /* The Date value (IMF-fixdate) for every response of this worker: made
   * at most once per wall-clock second, when the loop's cached time
   * passes date_next (worker_http_date). */
  char date[32];
  uint64_t date_next; /* loop ms when the next second begins; 0: not made yet */

  /* counters (this worker only) */
  uint64_t requests_total;
  uint64_t upstream_connects;
  uv_timer_t metrics_timer;      /* samples pool gauges into metrics */
  struct metrics_worker metrics; /* written by this worker only; read by admin */
};

/* The Date header value for a response sent now ("Sun, 06 Nov 1994
 * 08:49:37 GMT"): the worker's cached text, formatted again only once the
 * loop's time has entered the next wall-clock second. Valid until the
 * next call. */
struct slice worker_http_date(struct worker *w);

/* Initialise w for snapshot snap (a reference is taken): loop, free lists,
 * and this worker's view of the snapshot's upstream pools. Returns 0 or a
 * negative uv error. */
int worker_init(struct worker *w, unsigned id, struct snapshot *snap, struct accesslog *log);
/* Thread-safe: switch to snap (a reference is taken) for new requests;
 * requests in flight finish on theirs. Listeners are opened and closed to
 * match snap's configuration. A newer call before the worker got to it
 * replaces it. */
void worker_reload(struct worker *w, struct snapshot *snap);
/* Bind and listen on every listener (SO_REUSEPORT). Returns 0, or a
 * negative uv error with start_error_msg filled. */
int worker_listen(struct worker *w);
/* Run the loop until worker_stop; then close every handle and free. */
void worker_run(struct worker *w);
/* Thread-safe: ask the worker to stop. Gracefully (now == false): stop
 * accepting, close idle connections, let requests in flight finish up to
 * timeouts.drain. At once (now == true): close everything. */
void worker_stop(struct worker *w, bool now);
/* Release what worker_init allocated; the loop must have stopped. */
void worker_destroy(struct worker *w);

/* An exchange from the free list (uninitialised) or malloc; NULL on OOM.
 * It holds a reference on the current generation (ex->gen) until
 * worker_exchange_put. */
struct exchange *worker_exchange_get(struct worker *w);
void worker_exchange_put(struct worker *w, struct exchange *ex);

/* A client connection was accepted / closed on this worker. Opened returns
 * false when the process is now over limits.max_connections (the
 * connection is then answered 503 and closed). */
bool worker_conn_opened(struct worker *w);
void worker_conn_closed(struct worker *w);

/* A fresh request id (20 hex digits) written to out (>= 21 bytes). */
void worker_request_id(struct worker *w, char *out);

#endif
