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
#include "ferry/metrics.h"
#include "ferry/router.h"

struct session;
struct upstream_rt;
struct upstreams;
struct accesslog;
struct exchange;
struct admin;
struct inspector;

struct worker_listener {
  uv_tcp_t tcp;
  struct worker *w;
  const struct cfg_listener *cfg;
};

struct worker {
  uv_loop_t loop;
  unsigned id;
  const struct config *cfg;
  const struct router *router;
  struct accesslog *log;
  struct admin *admin; /* NULL when admin is off; for admin_post() only */
  struct inspector *insp; /* NULL unless some exchange may be captured; inspector_post() only */

  struct bufpool bufs;
  struct upstream_rt *ups; /* one per cfg->upstreams[] */
  size_t nups;

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

  struct session *sessions; /* live client connections (intrusive list) */
  uint64_t nsessions;
  bool stopping;

  uint64_t reqid_seed;
  uint64_t reqid_counter;

  /* counters (this worker only) */
  uint64_t requests_total;
  uint64_t upstream_connects;
  uv_timer_t metrics_timer; /* samples pool gauges into metrics */
  struct metrics_worker metrics; /* written by this worker only; read by admin */
};

/* Initialise w for configuration cfg: loop, free lists, and this worker's
 * view of the process-wide upstream pools ups (built from the same cfg).
 * Returns 0 or a negative uv error. */
int worker_init(struct worker *w, unsigned id, const struct config *cfg,
                const struct router *router, struct accesslog *log, struct upstreams *ups);
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

/* An exchange from the free list (uninitialised) or malloc; NULL on OOM. */
struct exchange *worker_exchange_get(struct worker *w);
void worker_exchange_put(struct worker *w, struct exchange *ex);

/* A fresh request id (20 hex digits) written to out (>= 21 bytes). */
void worker_request_id(struct worker *w, char *out);

#endif
