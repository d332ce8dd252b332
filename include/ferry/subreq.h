/* subreq: one request ferry sends on its own behalf (auth_request's
 * check, a mirror's copy) to a server of an upstream, over a connection
 * from that server's pool.
 *
 * Owns: the sub-request's memory and timer, its hold on the upstream
 * connection while it runs (lent by connpool; the upclient reports here),
 * the response head (in its own arena and header list) and the response
 * body bytes its holder asked to keep, up to a bound. It sends a head the
 * holder built (an iobuf it references) and, when asked, body bytes the
 * holder hands over, never letting them pin more than SUBREQ_QUEUE_MAX
 * bytes of memory: past that subreq_body refuses and the holder drops the
 * copy. It reports once, through `done`. Must not know exchanges or
 * sessions: what a result means is the holder's business. Every live
 * sub-request is on its worker's list (w->subreqs) and holds a reference
 * on the configuration generation its upstream belongs to. Worker thread
 * only. */
#ifndef FERRY_SUBREQ_H
#define FERRY_SUBREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/http_head.h"
#include "ferry/slice.h"

#define SUBREQ_MAX_HEADERS 64
/* Memory a sub-request's request body may pin at once (queued writes and
 * pieces held while connecting); past it subreq_body refuses. */
#define SUBREQ_QUEUE_MAX (128u * 1024u)
/* Body pieces held while the connection is still being opened. */
#define SUBREQ_PENDING 8

struct worker;
struct worker_gen;
struct upstream_rt;
struct server_rt;
struct upclient;
struct subreq;

#define SUBREQ_RESULTS(X)                                                                          \
  X(OK, "ok")                         /* a complete response: status, headers, kept body */        \
  X(NO_SERVER, "no_server")           /* no usable server, or the upstream's max_requests */       \
  X(CONNECT_FAILED, "connect_failed") /* refused, unreachable, TLS handshake failed */             \
  X(TIMEOUT, "timeout")               /* connect, response or response body timed out */           \
  X(RESET, "reset")                   /* closed or reset before the response ended */              \
  X(INVALID, "invalid")               /* a response that is not valid HTTP */                      \
  X(TOO_LARGE, "too_large")           /* a body the holder keeps, over its keep_max */             \
  X(LOCAL, "local")                   /* ferry's own shortage (fds, memory) */                     \
  X(STOPPED, "stopped")               /* the worker is stopping */

enum subreq_result {
#define SUBREQ_RESULT_ENUM(id, name) SUBREQ_##id,
  SUBREQ_RESULTS(SUBREQ_RESULT_ENUM)
#undef SUBREQ_RESULT_ENUM
      SUBREQ_RESULT_N
};

/* What to send, where, and who hears the result. */
struct subreq_params {
  struct upstream_rt *up; /* a view of generation gen */
  struct worker_gen *gen; /* the generation up belongs to; NULL: the worker's current one */
  struct iobuf *head;     /* the whole request head; referenced, not copied */
  bool head_request;      /* the method is HEAD: no response body */
  bool body;              /* a body follows: subreq_body ... subreq_body_end */
  bool chunked;           /* ... sent chunked (the head says so) */
  bool mirror;            /* counted in w->nmirrors; ended by subreq_worker_stop */
  uint64_t response_ms;   /* request sent -> response head; 0: timeouts.upstream_response */
  size_t keep_max;        /* body bytes kept at most when head_cb asks for them */
  struct slice client_ip; /* for the upstream's hash balancing */
  const struct hdr_list *hdrs;
  /* The final response head arrived (sr->status, sr->hdrs): true to keep
   * its body (sr->body), false to discard it. May be NULL (discard). */
  bool (*head_cb)(void *owner, struct subreq *sr);
  /* The sub-request ended: the holder reads what it needs, then calls
   * subreq_free (there or later). Never called from subreq_start,
   * subreq_body, subreq_body_end or subreq_free. */
  void (*done)(void *owner, struct subreq *sr, enum subreq_result r);
  void *owner;
  const void *tag; /* the holder's, kept as it is (a mirror: its route) */
};

struct subreq {
  struct worker *w;
  struct worker_gen *gen; /* held while the sub-request lives */
  struct subreq *next, *prev;
  struct subreq_params p;
  struct upstream_rt *up;
  struct server_rt *srv;
  struct upclient *uc;
  uv_timer_t timer;
  /* request body pieces held while connecting */
  struct {
    const char *p;
    size_t n;
    struct iobuf *b;
  } pending[SUBREQ_PENDING];
  unsigned npending;
  size_t pending_cost;
  /* response */
  int status;
  struct slice reason;
  struct hdr_list hdrs;
  uint32_t nhead; /* fields of the final head in hdrs (trailers follow, then go) */
  struct arena arena;
  struct iobuf *pin;
  struct iobuf *body; /* kept body bytes: body->len of them */
  bool keep_body, too_large, skip_1xx, resp_done;
  /* progress */
  bool connected, body_end, body_sent, reused, retried, finished, up_held;
  int8_t deferred; /* a result + 1 for the timer to report (defer()), 0 none */
  struct hdr store[SUBREQ_MAX_HEADERS];
};

/* Pick a server of p->up and send p->head over a pooled or new
 * connection. NULL with *why when nothing could be started (no server,
 * max_requests, a connect that failed at once); p->done is then never
 * called. */
struct subreq *subreq_start(struct worker *w, const struct subreq_params *p,
                            enum subreq_result *why);
/* Request body bytes (p, n) of block b (referenced, not copied), framing
 * removed. 0, or -1 when they would pin more than SUBREQ_QUEUE_MAX (or
 * the connection failed): nothing was queued, the holder drops the copy
 * (subreq_free). */
int subreq_body(struct subreq *sr, const char *p, size_t n, struct iobuf *b);
/* The whole body was handed over: the response deadline starts. */
void subreq_body_end(struct subreq *sr);
/* Send what was queued (after a batch of subreq_body). */
void subreq_flush(struct subreq *sr);
/* A new holder for the reports (owner only; NULL allowed when done does
 * not read it). */
static inline void subreq_set_owner(struct subreq *sr, void *owner) {
  sr->p.owner = owner;
}
/* End sr: no callback follows; a connection still busy with it is
 * closed, the memory goes back once its timer handle closed. */
void subreq_free(struct subreq *sr);
/* The name of a result ("timeout"). */
const char *subreq_result_name(enum subreq_result r);

/* The worker is stopping: every mirror copy ends now (STOPPED). */
void subreq_worker_stop(struct worker *w);
/* The loop is over: every sub-request left ends (STOPPED). */
void subreq_close_all(struct worker *w);

#endif
