/* subreq: one request ferry sends on its own behalf (see subreq.h).
 *
 * Owns the sub-request's memory, timer, response head and kept body, and
 * its hold on one upstream connection (it implements the upclient
 * callbacks while it holds it). Must not know exchanges or sessions; the
 * holder hears one `done` and frees it. The memory is freed in the timer's
 * close callback, so a holder may call subreq_free from inside `done`
 * (itself called from an upclient callback) without anything being freed
 * under the caller. */
#include "ferry/subreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/connpool.h"
#include "ferry/err.h"
#include "ferry/log.h"
#include "ferry/upclient.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

static const char *const result_names[] = {
#define SUBREQ_RESULT_NAME(id, name) name,
    SUBREQ_RESULTS(SUBREQ_RESULT_NAME)
#undef SUBREQ_RESULT_NAME
};

const char *subreq_result_name(enum subreq_result r) {
  return (unsigned)r < SUBREQ_RESULT_N ? result_names[r] : "?";
}

static enum metrics_result metrics_of(enum subreq_result r, int status) {
  switch (r) {
  case SUBREQ_OK:
  case SUBREQ_TOO_LARGE:
    return status >= 500 ? METRICS_RESULT_5XX : METRICS_RESULT_OK;
  case SUBREQ_CONNECT_FAILED:
    return METRICS_RESULT_CONNECT_FAILURE;
  case SUBREQ_TIMEOUT:
    return METRICS_RESULT_TIMEOUT;
  case SUBREQ_RESET:
    return METRICS_RESULT_RESET;
  case SUBREQ_INVALID:
    return METRICS_RESULT_INVALID;
  case SUBREQ_LOCAL:
    return METRICS_RESULT_LOCAL;
  default:
    return METRICS_RESULT_ABORTED;
  }
}

static void on_timeout(uv_timer_t *t);

static void timer_arm(struct subreq *sr, uint64_t ms) {
  /* a deferred result keeps its next-turn timer (request_sent or a read
   * must not push it back by a whole deadline) */
  uv_timer_start(&sr->timer, on_timeout, sr->deferred ? 0 : ms, 0);
}

/* End sr with r from the next loop turn: for failures found where the
 * holder must not hear of them yet (inside subreq_start). */
static void defer(struct subreq *sr, enum subreq_result r) {
  sr->deferred = (int8_t)(r + 1);
  timer_arm(sr, 0);
}

/* Give back what the sub-request holds of the upstream: the connection
 * (to the pool after a clean response, else closed), the server's
 * in-flight count and the upstream's max_requests place. */
static void let_go(struct subreq *sr, enum subreq_result r) {
  struct upclient *uc = sr->uc;
  sr->uc = NULL;
  uv_timer_stop(&sr->timer);
  if (uc) {
    if (r == SUBREQ_OK && sr->body_end && !sr->too_large)
      connpool_release(uc, !sr->w->stopping && upstream_server_present(sr->srv));
    else
      connpool_close(uc);
  }
  if (sr->srv) {
    metrics_upstream_result(&sr->w->metrics, sr->srv, metrics_of(r, sr->status));
    upstream_attempt_end(sr->srv);
    sr->srv = NULL;
  }
  if (sr->up_held) {
    upstream_leave(sr->up);
    sr->up_held = false;
  }
}

/* The one way a running sub-request ends: let go, then tell the holder
 * (the last thing done with sr in this call). */
static void finish(struct subreq *sr, enum subreq_result r) {
  if (sr->finished)
    return;
  sr->finished = true;
  if (r == SUBREQ_OK && sr->too_large)
    r = SUBREQ_TOO_LARGE;
  let_go(sr, r);
  sr->p.done(sr->p.owner, sr, r);
}

static void on_timeout(uv_timer_t *t) {
  struct subreq *sr = t->data;
  if (sr->deferred) {
    finish(sr, (enum subreq_result)(sr->deferred - 1));
    return;
  }
  if (sr->srv && !sr->connected)
    upstream_report_failure(sr->srv, true, "connect timed out");
  finish(sr, SUBREQ_TIMEOUT);
}

/* --- sending ------------------------------------------------------------- */

static int add_body(struct subreq *sr, const char *p, size_t n, struct iobuf *b) {
  struct stream *st = &sr->uc->st;
  if (!sr->p.chunked)
    return stream_add(st, p, n, b);
  char hdr[24];
  int k = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
  return stream_add_copy(st, hdr, (size_t)k) != 0 || stream_add(st, p, n, b) != 0 ||
                 stream_add_copy(st, "\r\n", 2) != 0
             ? -1
             : 0;
}

/* The request is all queued: the last chunk, then the response deadline. */
static void request_sent(struct subreq *sr) {
  if (sr->p.chunked)
    stream_add_copy(&sr->uc->st, "0\r\n\r\n", 5);
  stream_flush(&sr->uc->st);
  const struct config *cfg = sr->w->cfg;
  timer_arm(sr, sr->p.response_ms ? sr->p.response_ms : cfg->timeouts.upstream_response_ms);
}

static void connect_fresh(struct subreq *sr);

static void up_connected(void *owner, int status) {
  struct subreq *sr = owner;
  if (status < 0) {
    log_warn("upstream %s server %s: connect failed: %s", sr->up->cfg->name, sr->srv->name,
             uv_strerror(status));
    upstream_report_failure(sr->srv, true,
                            status == UV_ECONNREFUSED ? "connect refused" : uv_strerror(status));
    finish(sr, SUBREQ_CONNECT_FAILED);
    return;
  }
  sr->connected = true;
  uv_timer_stop(&sr->timer);
  struct stream *st = &sr->uc->st;
  int r = stream_add(st, sr->p.head->data, sr->p.head->len, sr->p.head);
  for (unsigned i = 0; i < sr->npending; i++) {
    if (r == 0)
      r = add_body(sr, sr->pending[i].p, sr->pending[i].n, sr->pending[i].b);
    iobuf_unref(sr->pending[i].b);
  }
  sr->body_sent = sr->npending > 0;
  sr->npending = 0;
  sr->pending_cost = 0;
  if (r != 0) {
    defer(sr, SUBREQ_LOCAL);
    return;
  }
  if (sr->body_end)
    request_sent(sr);
  else
    stream_flush(st);
}

/* --- the response -------------------------------------------------------- */

static int up_head(void *owner, const struct upclient_head *h) {
  struct subreq *sr = owner;
  if (h->status < 100 || h->status > 599 || h->status == 101)
    return -1;
  if (h->status < 200) { /* interim: the final head follows */
    sr->skip_1xx = true;
    sr->hdrs.n = 0;
    sr->reason = (struct slice){NULL, 0};
    return 1;
  }
  if (http_head_check_transfer_encoding(&sr->hdrs) != 0)
    return -1;
  sr->status = h->status;
  sr->nhead = sr->hdrs.n;
  http_head_mark_hop(&sr->hdrs);
  upstream_report_status(sr->srv, h->status);
  sr->keep_body = sr->p.head_cb && sr->p.head_cb(sr->p.owner, sr);
  timer_arm(sr, sr->w->cfg->timeouts.upstream_idle_ms); /* the body must keep coming */
  return 0;
}

static int up_body(void *owner, const char *p, size_t n, struct iobuf *b) {
  (void)b;
  struct subreq *sr = owner;
  if (!sr->keep_body || sr->too_large)
    return 0;
  size_t have = sr->body ? sr->body->len : 0;
  if (have + n > sr->p.keep_max) {
    sr->too_large = true; /* read on to the end, keep nothing more */
    return 0;
  }
  if (!sr->body || have + n > sr->body->cap) {
    size_t cap = have + n <= IOBUF_SIZE ? IOBUF_SIZE : sr->p.keep_max;
    struct iobuf *nb = iobuf_get(&sr->w->bufs, cap);
    if (!nb)
      return -1;
    if (sr->body) {
      memcpy(nb->data, sr->body->data, have);
      iobuf_unref(sr->body);
    }
    nb->len = (uint32_t)have;
    sr->body = nb;
  }
  memcpy(sr->body->data + have, p, n);
  sr->body->len += (uint32_t)n;
  return 0;
}

static int up_done(void *owner) {
  struct subreq *sr = owner;
  if (sr->skip_1xx) {
    sr->skip_1xx = false;
    return 0;
  }
  sr->resp_done = true;
  sr->hdrs.n = sr->nhead; /* a chunked body's trailer fields are not head fields */
  return 1;
}

static void up_read_done(void *owner) {
  struct subreq *sr = owner;
  if (sr->resp_done)
    finish(sr, SUBREQ_OK);
  else if (sr->status)
    timer_arm(sr, sr->w->cfg->timeouts.upstream_idle_ms);
}

static void up_error(void *owner, int err) {
  struct subreq *sr = owner;
  struct upclient *uc = sr->uc;
  /* Keep-alive race: a pooled connection the server had just closed.
   * Once more on a fresh one, when nothing but the head went out. */
  if (uc && sr->reused && !sr->retried && !uc->got_bytes && !sr->body_sent &&
      (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE)) {
    sr->retried = true;
    sr->uc = NULL;
    connpool_close(uc);
    connect_fresh(sr);
    return;
  }
  if (uc && !uc->got_bytes)
    upstream_report_failure(sr->srv, false, err == UV_EOF ? "connection closed" : uv_strerror(err));
  finish(sr, err == UV_EPROTO ? SUBREQ_INVALID : SUBREQ_RESET);
}

static void up_written(void *owner) {
  (void)owner;
}

/* The copy's own queue never holds the client: its bound is checked by
 * subreq_body instead. */
static void up_watermark(void *owner, bool high) {
  (void)owner;
  (void)high;
}

static void up_raw(void *owner, ssize_t nread) {
  (void)nread;
  finish(owner, SUBREQ_INVALID);
}

static const struct upclient_cbs subreq_cbs = {
    .connected = up_connected,
    .head = up_head,
    .body = up_body,
    .done = up_done,
    .read_done = up_read_done,
    .error = up_error,
    .written = up_written,
    .watermark = up_watermark,
    .raw = up_raw,
};

static void attach(struct subreq *sr, struct upclient *uc, bool reused) {
  sr->uc = uc;
  sr->reused = reused;
  sr->hdrs.n = 0;
  struct upclient_sink sink = {&sr->arena, &sr->pin, &sr->hdrs, &sr->reason};
  upclient_begin(uc, &subreq_cbs, sr, &sink, sr->p.head_request);
}

/* A new connection to sr->srv; a failure to start it ends sr from the
 * next loop turn's timer (never inside the caller). */
static void connect_fresh(struct subreq *sr) {
  int err = 0;
  struct upclient *uc = connpool_connect(&sr->srv->pool, &sr->w->loop,
                                         (const struct sockaddr *)&sr->srv->slot->addr, &err);
  if (!uc) {
    log_warn("upstream %s server %s: connect failed: %s", sr->up->cfg->name, sr->srv->name,
             uv_strerror(err));
    defer(sr, ferry_err_is_local(err) ? SUBREQ_LOCAL : SUBREQ_CONNECT_FAILED);
    return;
  }
  sr->connected = false; /* body bytes wait until this one is */
  sr->w->upstream_connects++;
  attach(sr, uc, false);
  timer_arm(sr, sr->w->cfg->timeouts.upstream_connect_ms);
}

/* --- the holder's side -------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h) {
  free(h->data);
}

struct subreq *subreq_start(struct worker *w, const struct subreq_params *p,
                            enum subreq_result *why) {
  struct upstream_rt *up = p->up;
  if (!upstream_enter(up)) {
    *why = SUBREQ_NO_SERVER;
    return NULL;
  }
  uint64_t key = 0;
  bool has_key = upstream_hash_key(up->cfg, p->client_ip, p->hdrs, &key);
  struct server_rt *srv = upstream_pick(up, has_key, key, NULL, 0);
  struct subreq *sr = srv ? malloc(sizeof *sr) : NULL;
  if (!sr) {
    upstream_leave(up);
    *why = srv ? SUBREQ_LOCAL : SUBREQ_NO_SERVER;
    return NULL;
  }
  memset(sr, 0, offsetof(struct subreq, store));
  sr->w = w;
  sr->p = *p;
  sr->p.hdrs = NULL; /* the holder's: only read here */
  sr->up = up;
  sr->up_held = true;
  sr->srv = srv;
  upstream_attempt_begin(srv);
  sr->hdrs = (struct hdr_list){.v = sr->store, .cap = SUBREQ_MAX_HEADERS};
  arena_init(&sr->arena, &w->bufs, 64 * 1024);
  iobuf_ref(p->head);
  sr->body_end = !p->body;
  uv_timer_init(&w->loop, &sr->timer);
  sr->timer.data = sr;
  if (p->gen) { /* an older generation's upstream: hold that one */
    sr->gen = p->gen;
    sr->gen->refs++;
  } else {
    sr->gen = wctx_gen_hold(w);
  }
  sr->next = w->subreqs;
  if (w->subreqs)
    w->subreqs->prev = sr;
  w->subreqs = sr;
  if (p->mirror)
    w->nmirrors++;

  struct upclient *uc = connpool_checkout(&srv->pool);
  if (uc) {
    attach(sr, uc, true);
    up_connected(sr, 0);
    return sr;
  }
  int err = 0;
  uc = connpool_connect(&srv->pool, &w->loop, (const struct sockaddr *)&srv->slot->addr, &err);
  if (!uc) {
    if (!ferry_err_is_local(err)) {
      log_warn("upstream %s server %s: connect failed: %s", up->cfg->name, srv->name,
               uv_strerror(err));
      upstream_report_failure(srv, true, uv_strerror(err));
    }
    *why = ferry_err_is_local(err) ? SUBREQ_LOCAL : SUBREQ_CONNECT_FAILED;
    sr->finished = true;
    let_go(sr, *why);
    subreq_free(sr);
    return NULL;
  }
  w->upstream_connects++;
  attach(sr, uc, false);
  timer_arm(sr, w->cfg->timeouts.upstream_connect_ms);
  return sr;
}

int subreq_body(struct subreq *sr, const char *p, size_t n, struct iobuf *b) {
  if (sr->finished || sr->body_end || !b)
    return -1;
  if (n == 0)
    return 0;
  if (!sr->connected || !sr->uc) {
    if (sr->npending == SUBREQ_PENDING || sr->pending_cost + b->cap > SUBREQ_QUEUE_MAX)
      return -1;
    iobuf_ref(b);
    sr->pending[sr->npending].p = p;
    sr->pending[sr->npending].n = n;
    sr->pending[sr->npending++].b = b;
    sr->pending_cost += b->cap;
    return 0;
  }
  const struct stream *st = &sr->uc->st;
  size_t pinned = st->queued + (st->batch ? st->batch->cost : 0);
  if (pinned + b->cap > SUBREQ_QUEUE_MAX)
    return -1;
  sr->body_sent = true;
  return add_body(sr, p, n, b);
}

void subreq_body_end(struct subreq *sr) {
  if (sr->finished || sr->body_end)
    return;
  sr->body_end = true;
  if (sr->connected && sr->uc)
    request_sent(sr);
}

void subreq_flush(struct subreq *sr) {
  if (!sr->finished && sr->connected && sr->uc)
    stream_flush(&sr->uc->st);
}

void subreq_free(struct subreq *sr) {
  struct worker *w = sr->w;
  if (!sr->finished) {
    sr->finished = true;
    let_go(sr, SUBREQ_STOPPED);
  }
  for (unsigned i = 0; i < sr->npending; i++)
    iobuf_unref(sr->pending[i].b);
  sr->npending = 0;
  if (sr->prev)
    sr->prev->next = sr->next;
  else
    w->subreqs = sr->next;
  if (sr->next)
    sr->next->prev = sr->prev;
  if (sr->p.mirror)
    w->nmirrors--;
  iobuf_unref(sr->p.head);
  if (sr->body)
    iobuf_unref(sr->body);
  if (sr->pin)
    iobuf_unref(sr->pin);
  arena_reset(&sr->arena);
  struct worker_gen *g = sr->gen;
  uv_close((uv_handle_t *)&sr->timer, on_timer_closed);
  wctx_gen_drop(w, g);
}

/* End every sub-request that `which` selects: finish() tells its holder,
 * who frees it (so the list changes under the walk: start over). */
static void end_all(struct worker *w, bool mirrors_only) {
  for (;;) {
    struct subreq *sr = w->subreqs;
    while (sr && (sr->finished || (mirrors_only && !sr->p.mirror)))
      sr = sr->next;
    if (!sr)
      return;
    finish(sr, SUBREQ_STOPPED);
  }
}

void subreq_worker_stop(struct worker *w) {
  end_all(w, true);
}

void subreq_close_all(struct worker *w) {
  end_all(w, false);
}
