/* wctx: the per-worker context every request-path module is handed.
 *
 * struct worker holds one worker thread's loop, buffer pools, free lists,
 * deadline lists, counters and the configuration generation new requests
 * start on; it is passed explicitly (no globals). This module owns the
 * small services on it that sessions and exchanges need: request ids,
 * the connection count against limits.max_connections, and references on
 * configuration generations. Retiring a generation (closing its pools) is
 * the worker's job: the last release asks it through gen_idle. Must not
 * include session, exchange, pool or worker headers: they sit above it.
 * Worker thread only, except proc_conns (atomic). */
#ifndef FERRY_WCTX_H
#define FERRY_WCTX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/deadline.h"
#include "ferry/inspect.h"
#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/router.h"
#include "ferry/splice.h"

struct upstream_rt;
struct accesslog;
struct exchange;
struct admin;
struct inspector;
struct snapshot;
struct session_rx;
struct worker_listener;

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
  uv_loop_t loop; /* first: a handle's loop pointer is its worker */
  unsigned id;
  const struct config *cfg;
  const struct router *router;
  struct accesslog *log;
  struct admin *admin;    /* NULL when admin is off; for admin_post() only */
  struct inspector *insp; /* NULL unless some exchange may be captured; inspector_post() only */
  struct inspect_batch insp_batch; /* captures of this loop turn (src/inspect.c) */

  struct bufpool bufs;
  struct splice_pipe splice; /* body bytes socket to socket (src/splice.c) */
  /* cfg, router, ups, nups mirror the current generation (gen). */
  struct upstream_rt *ups; /* one per cfg->upstreams[] */
  size_t nups;
  struct worker_gen *gen, *oldest_gen;
  _Atomic(struct snapshot *) pending; /* set by worker_reload */
  uv_async_t reload_async;

  /* atomic: the admin thread walks the list for metrics (nodes are only
   * ever added at the head, and freed at exit) */
  struct worker_listener *_Atomic listeners;
  size_t nlisteners;
  uv_async_t stop_async;
  uv_timer_t drain_timer;
  uv_timer_t grace_timer;     /* timeouts.drain_grace: listeners close when it fires */
  _Atomic bool handover;      /* set by worker_handover before the async send: no grace */
  uv_timer_t accept_timer;    /* resumes accepting after a lack of fds */
  struct log_rate accept_log; /* accept failures */
  struct log_rate local_log;  /* upstream connects failed for want of a local resource */
  _Atomic bool stop_now;      /* set by worker_stop(now) before the async send */
  uv_thread_t thread;
  int start_error; /* negative uv error when a listener failed */
  char start_error_msg[256];

  struct subreq *subreqs; /* live sub-requests: auth checks, mirror copies (src/subreq.c) */
  unsigned nmirrors;      /* mirror copies among them (bounded: src/mirror.c) */

  struct exchange *free_ex; /* recycled exchanges (src/exchange.c) */
  unsigned nfree_ex;

  /* Live client connections: each is in exactly one of these lists, the
   * one for its timer kind (enum session_timer), in deadline order. */
  struct deadlines dl;
  /* Exchanges whose session finishes them from done_check (src/session.c:
   * nothing is freed inside the callbacks of its own work). */
  struct exchange *done_list;
  uv_check_t done_check;
  bool done_armed;
  uint64_t nsessions;
  struct session_rx *free_rx; /* recycled session_rx (parser.data links them) */
  unsigned nfree_rx;
  bool stopping;
  bool drain_idle_closed; /* stopping, and the grace for idle connections is over */
  /* Set by the worker: the oldest generation lost its last reference. */
  void (*gen_idle)(struct worker *w);

  _Atomic uint64_t *proc_conns; /* open client connections, all workers (max_connections) */

  uint64_t reqid_seed;
  uint64_t reqid_counter;
  uint64_t trace_rng; /* span and trace ids (src/trace.c); seeded from reqid_seed */

  /* The Date value (IMF-fixdate) for every response of this worker: made
   * at most once per wall-clock second, when the loop's cached time
   * passes date_next (wctx_http_date). */
  char date[64];      /* 29 used; room for what snprintf could write in theory */
  uint64_t date_next; /* loop ms when the next second begins; 0: not made yet */

  /* counters (this worker only) */
  uint64_t requests_total;
  uint64_t upstream_connects;
  uv_timer_t metrics_timer;      /* samples pool gauges into metrics */
  struct metrics_worker metrics; /* written by this worker only; read by admin */
};

/* A fresh request id (20 hex digits) written to out (>= 21 bytes). */
void wctx_request_id(struct worker *w, char *out);

/* The Date header value for a response sent now ("Sun, 06 Nov 1994
 * 08:49:37 GMT"): the worker's cached text, formatted again only once the
 * loop's time has entered the next wall-clock second. Valid until the
 * next call. */
void wctx_date_refresh(struct worker *w, uint64_t now);
static inline struct slice wctx_http_date(struct worker *w) {
  uint64_t now = w->loop.time; /* uv_now(), without the call */
  if (now >= w->date_next)
    wctx_date_refresh(w, now);
  return slice_make(w->date, 29);
}

/* A client connection was accepted / closed on this worker. Opened returns
 * false when the process is now over limits.max_connections (the
 * connection is then refused; closed must still be called). */
bool wctx_conn_opened(struct worker *w);
void wctx_conn_closed(struct worker *w);

/* The generation new requests start on, with a reference taken. */
struct worker_gen *wctx_gen_hold(struct worker *w);
/* Drop a reference from wctx_gen_hold; the last one on the oldest
 * generation asks the worker to retire it (w->gen_idle). */
void wctx_gen_drop(struct worker *w, struct worker_gen *g);

#endif
