/* worker: one event-loop thread: its listeners, its loop's life (start,
 * reload, drain, stop) and the configuration generations it serves.
 *
 * The per-worker context every request-path module is handed (struct
 * worker: loop, buffer pools, free lists, deadlines, counters) is defined
 * in wctx.h, below the request path; this module sits on top of it and
 * of sessions, exchanges and pools. Nothing in it is touched by another
 * thread except through the async handles (worker_stop, worker_reload). */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stdbool.h>
#include <uv.h>

#include "ferry/config.h"
#include "ferry/wctx.h"

struct snapshot;
struct accesslog;

struct worker_listener {
  uv_poll_t poll; /* readiness of fd; the worker accepts itself (src/worker.c) */
  int fd;         /* the listening socket; closed with the listener */
  struct worker *w;
  const struct cfg_listener *cfg; /* == &own: valid as long as the worker */
  struct cfg_listener own;        /* a copy (address, trusted_proxies too): survives reloads */
  struct worker_listener *next;   /* all listeners ever opened; freed at exit */
  bool open;                      /* false once closed (removed by a reload, or stop) */
  bool tls;                       /* a TLS listener (fixed when opened) */
  struct listener_counters ctr;   /* own.counters points here */
};

/* Initialise w for snapshot snap (a reference is taken): loop, free lists,
 * and this worker's view of the snapshot's upstream pools. Returns 0 or a
 * negative uv error. */
int worker_init(struct worker *w, unsigned id, struct snapshot *snap, struct accesslog *log);
/* Thread-safe: switch to snap (a reference is taken) for new requests;
 * requests in flight finish on theirs. Listeners are opened and closed to
 * match snap's configuration. A newer call before the worker got to it
 * replaces it. */
void worker_reload(struct worker *w, struct snapshot *snap);
/* Bind and listen on every listener (SO_REUSEPORT) that has no socket
 * yet (see worker_adopt). Returns 0, or a negative uv error with
 * start_error_msg filled. */
int worker_listen(struct worker *w);
/* Before worker_run: serve lc on fd, a listening socket inherited from the
 * process this one upgrades (the worker owns fd from now on; a worker may
 * adopt several for one listener). Returns 0, or a negative uv error with
 * start_error_msg filled. */
int worker_adopt(struct worker *w, const struct cfg_listener *lc, int fd);
/* The listening sockets of w's open listeners, for a binary upgrade to
 * hand over: up to max into fds; returns how many. Main thread, only while
 * the worker does not change its listeners (no reload pending, no stop). */
size_t worker_listen_fds(const struct worker *w, int *fds, size_t max);
/* Run the loop until worker_stop; then close every handle and free. */
void worker_run(struct worker *w);
/* Thread-safe: ask the worker to stop. Gracefully (now == false): close
 * idle connections, keep accepting for timeouts.drain_grace (answering
 * with Connection: close), then stop accepting and let requests in flight
 * finish up to timeouts.drain. At once (now == true): close everything. */
void worker_stop(struct worker *w, bool now);
/* Thread-safe: a graceful stop without the grace, for a binary upgrade
 * (another process serves the same listening sockets from now on). */
void worker_handover(struct worker *w);
/* Release what worker_init allocated; the loop must have stopped.
 * Returns what uv_loop_close said: 0, or UV_EBUSY when a handle was
 * left open (a bug, also logged; tests assert 0). */
int worker_destroy(struct worker *w);

#endif
