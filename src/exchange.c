/* exchange: one request from route to last byte, and the only module
 * that knows two sides exist.
 *
 * Owns: the request's arena (copied head bytes), the serialised upstream
 * head, the route decision, server choice and retries, the attachment to
 * one upstream client (as its holder: it implements the upclient
 * callbacks), flow control between the two streams, and the record the
 * access log, metrics and inspector read (its own fields). It is owned by
 * its session, which frees it from the loop's check phase after
 * session_exchange_done, or when the session closes. It must not free the
 * session or the upstream connection: it asks session_close / connpool_*.
 *
 * Flow: exchange_start (head parsed) -> request_check (src/request.c:
 * what is refused and with which status) -> route -> direct reply, or the
 * route's traffic control (src/policy.c: allow/deny, rate limit, split,
 * max_requests; src/authreq.c: auth_request, which calls exchange_forward
 * once the auth service said yes) and pick a server, build the upstream
 * head (src/mirror.c copies it, and the body, when the route mirrors) and
 * get a connection -> connected: head
 * and body flow upstream (session_unblock lets the parser go on) -> the
 * upclient parses the response and hands it here piece by piece -> the
 * response ends: exchange_finish logs, releases the connection to its
 * pool and tells the session. Whether a failed attempt is retried is
 * src/retry.c's decision; after a 101, src/extunnel.c drives the tunnel;
 * src/exreply.c sends the answers ferry makes itself. */
#include "ferry/exchange.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/accesslog.h"
#include "ferry/authreq.h"
#include "ferry/connpool.h"
#include "ferry/err.h"
#include "ferry/forwarded.h"
#include "ferry/upclient.h"
#include "ferry/log.h"
#include "ferry/mirror.h"
#include "ferry/reply.h"
#include "ferry/request.h"
#include "ferry/router.h"
#include "ferry/session.h"
#include "ferry/policy.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

static void exchange_finish(struct exchange *ex);

void exchange_init(struct exchange *ex, struct session *s, struct worker *w) {
  memset(ex, 0, offsetof(struct exchange, req_store));
  ex->s = s;
  ex->w = w;
  ex->state = EX_HEAD;
  ex->peer_ip = session_client_ip(s);
  ex->peer_port = s->client_port;
  memcpy(ex->peer_addr, s->client_addr, 16);
  ex->peer_v6 = s->client_v6;
  ex->peer_known = s->client_known;
  ex->listener = session_listener(s) ? session_listener(s)->address : "";
  ex->tls = session_tls(s);
  ex->tls_info = session_tls_info(s);
  ex->resp_minor = 1;
  arena_init(&ex->arena, &w->bufs, w->cfg->limits.max_request_header_bytes * 2 + 16384);
  ex->t_start_ms = w->loop.time; /* uv_now(), read without a call into libuv */
  ex->major = 1;                 /* the llhttp path sets what it parsed */
  ex->req_hdrs = (struct hdr_list){.v = ex->req_store, .cap = EX_MAX_HEADERS};
  ex->resp_hdrs = (struct hdr_list){.v = ex->resp_store, .cap = EX_MAX_HEADERS};
}

void exchange_reset(struct exchange *ex) {
  authreq_cancel(ex);
  mirror_detach(ex);
  if (ex->up_held) {
    upstream_leave(ex->up);
    ex->up_held = false;
  }
  if (ex->srv_counted) {
    upstream_attempt_end(ex->srv);
    ex->srv_counted = false;
  }
  if (ex->insp.on)
    inspect_release(ex);
  arena_reset(&ex->arena);
  if (ex->req_pin) {
    iobuf_unref(ex->req_pin);
    ex->req_pin = NULL;
  }
  if (ex->resp_pin) {
    iobuf_unref(ex->resp_pin);
    ex->resp_pin = NULL;
  }
  if (ex->uhead_buf) {
    iobuf_unref(ex->uhead_buf);
    ex->uhead_buf = NULL;
  }
}

/* The attempt on ex->srv ended: count it once (the first result holds),
 * by how it ended, in ferry_upstream_requests_total. */
static inline void exchange_attempt_end(struct exchange *ex, enum metrics_result r) {
  if (!ex->attempt_open)
    return;
  ex->attempt_open = false;
  metrics_upstream_result(&ex->w->metrics, ex->srv, r);
}

void exchange_log(struct exchange *ex) {
  if (ex->logged)
    return;
  ex->logged = true;
  exchange_attempt_end(ex, METRICS_RESULT_ABORTED);
  ex->w->requests_total++;
  if (ex->insp.on)
    inspect_capture(ex);
  uint64_t now = uv_now(&ex->w->loop); /* the loop's cached time: one read serves both */
  metrics_exchange_done(&ex->w->metrics, ex, now);
  accesslog_write(ex->w->log, ex, now);
}

/* --- routing ------------------------------------------------------------ */

/* listeners[].redirect_https: 308 to the same host and target over https. */
static void exchange_redirect_https(struct exchange *ex, struct slice host, struct slice target) {
  struct slice loc;
  if (request_https_location(host, target, session_listener(ex->s)->redirect_https, &ex->arena,
                             &loc) != 0) {
    exchange_reply(ex, 400, "bad request: a Host header is needed to redirect to https\n", true);
    return;
  }
  exchange_reply_full(ex, 308, SLICE_LIT("text/plain; charset=utf-8"),
                      SLICE_LIT("redirecting to https\n"), loc, false);
}

void exchange_start(struct exchange *ex) {
  struct session *s = ex->s;
  struct worker *w = ex->w;

  /* Request id: keep a sane one from the client, else make one. */
  const struct hdr *rid = http_head_find_tok(&ex->req_hdrs, HDR_X_REQUEST_ID);
  if (rid && http_head_request_id_sane(rid->value)) {
    ex->rid = rid->value;
  } else {
    wctx_request_id(w, ex->request_id);
    ex->rid = slice_cstr(ex->request_id);
  }
  /* Behind a trusted proxy the client is the one it names. */
  ex->peer_trusted =
      forwarded_trusted(session_listener(s), s->client_addr, s->client_v6, s->client_known);
  ex->client_ip = forwarded_client(&ex->req_hdrs, session_listener(s), ex->peer_trusted,
                                   ex->peer_ip, &ex->arena);

  /* The pure checks (src/request.c) decide what is refused and how. */
  struct request_head rh = {.method = ex->method,
                            .major = ex->major,
                            .minor = ex->minor,
                            .target = ex->url,
                            .headers = &ex->req_hdrs,
                            .chunked = ex->req_chunked,
                            .has_length = ex->req_has_length,
                            .target_clean = ex->target_clean};
  size_t scratch_n = request_scratch_size(ex->url.n);
  char *scratch = arena_alloc(&ex->arena, scratch_n);
  struct request_verdict v;
  enum request_error rerr =
      scratch ? request_check(&rh, scratch, scratch_n, &v) : REQUEST_E_TOO_LONG;
  if (rerr != REQUEST_OK) {
    exchange_reply(ex, request_status(rerr), request_message(rerr), true);
    return;
  }
  ex->minor = v.minor;
  ex->host = v.host;
  ex->norm = v.norm;
  struct slice host = v.host, target = v.path, norm = v.norm;

  if (session_listener(s)->redirect_https) {
    exchange_redirect_https(ex, host, target);
    return;
  }
  struct route_query q = {router_host_strip_port(host), norm, ex->method, &ex->req_hdrs};
  const struct cfg_route *r = router_match(w->router, &q);
  ex->route = r;
  ex->route_gen = w->gen;
  if (w->insp && inspect_wanted(w->cfg, r))
    inspect_begin(ex, r);
  if (!r) {
    exchange_reply(ex, 404, "no route\n", false);
    return;
  }
  switch (r->action) {
  case ACTION_RESPOND:
    exchange_reply_full(
        ex, r->respond_status,
        slice_cstr(r->respond_content_type ? r->respond_content_type : "text/plain"),
        slice_cstr(r->respond_body ? r->respond_body : ""), (struct slice){NULL, 0}, false);
    return;
  case ACTION_REDIRECT: {
    struct slice loc;
    if (request_redirect_location(r, target, &ex->arena, &loc) != 0) {
      exchange_reply(ex, 414, NULL, true);
      return;
    }
    exchange_reply_full(ex, r->redirect_status, SLICE_LIT("text/plain; charset=utf-8"),
                        SLICE_LIT("redirecting\n"), loc, false);
    return;
  }
  case ACTION_UPSTREAM:
    break;
  }
  uint64_t max_body = w->cfg->limits.max_request_body_bytes;
  if (max_body && ex->req_has_length && ex->req_length > max_body) {
    exchange_reply(ex, 413, NULL, true);
    return;
  }
  int refused = policy_admit(ex);
  if (refused) {
    ex->refused = refused;
    exchange_reply(ex, refused, policy_message(refused), false);
    return;
  }
  (void)s;
  if (r->auth.upstream && authreq_begin(ex, target))
    return;
  exchange_forward(ex, target, norm, host);
}

/* The next server for ex by the pool's balancer, never one it already
 * tried; holds its in-flight count. False (nothing changes) when none is
 * usable. */
static bool exchange_next_server(struct exchange *ex) {
  uint64_t key = 0;
  bool has_key = upstream_hash_key(ex->up->cfg, slice_cstr(ex->client_ip), &ex->req_hdrs, &key);
  size_t nex = ex->ntried < EX_MAX_TRIED ? ex->ntried : EX_MAX_TRIED;
  struct server_rt *srv = upstream_pick(ex->up, has_key, key, ex->tried, nex);
  if (!srv)
    return false;
  if (ex->srv_counted)
    upstream_attempt_end(ex->srv);
  upstream_attempt_begin(srv);
  ex->srv_counted = true;
  ex->srv = srv;
  if (ex->ntried < EX_MAX_TRIED)
    ex->tried[ex->ntried] = srv;
  ex->ntried++;
  return true;
}

static int exchange_connect(struct exchange *ex, bool fresh_only);

/* The route's `retry`, else the upstream's `retries` (src/retry.c decides
 * and keeps the budget): move the request to a server not tried yet. A
 * status retry only picks it: the answer is dropped first (up_read_done).
 * body_may_flow: the client's body could start flowing to the new
 * connection. True when a new attempt started. */
static bool exchange_retry(struct exchange *ex, enum retry_reason why, int status,
                           bool body_may_flow) {
  if (!ex->up || !retry_begin(ex, why, status, body_may_flow))
    return false;
  struct server_rt *prev = ex->srv;
  if (!exchange_next_server(ex)) {
    retry_cancel(ex);
    return false;
  }
  retry_count(ex, why, status);
  log_debug("upstream %s: retrying on server %s after server %s failed (%s)", ex->up->cfg->name,
            ex->srv->name, prev ? prev->name : "-", retry_reason_name(why));
  if (why != RETRY_STATUS)
    exchange_connect(ex, false);
  return true;
}

/* Connecting failed for want of a local resource (fds, memory, ports):
 * ferry's own shortage, so the server is not blamed (no ejection, no
 * retry elsewhere that would fail the same way); the client gets 503. */
static void exchange_local_failure(struct exchange *ex, int err) {
  struct worker *w = ex->w;
  exchange_attempt_end(ex, METRICS_RESULT_LOCAL);
  mc_add(&w->metrics.local_errors, 1);
  uint64_t skipped;
  if (log_rate_due(&w->local_log, uv_now(&w->loop), 5000, &skipped))
    log_error("upstream %s server %s: cannot open a connection: %s (%" PRIu64
              " more since the last report); this is ferry's own limit, not the server's: "
              "raise the open-file limit (ulimit -n, LimitNOFILE) or lower "
              "limits.max_connections",
              ex->up->cfg->name, ex->srv->name, uv_strerror(err), skipped);
  ex->error_note = "local resource shortage";
  exchange_reply(ex, ferry_err_http_status(err),
                 "service unavailable: ferry is out of local resources\n", !ex->req_done);
}

static const struct upclient_cbs exchange_upclient_cbs;

/* A status-retried answer was read as far as this read brought it: its
 * connection is pooled only if it ended cleanly (else closed, never
 * waited for), the answer forgotten, and the server exchange_retry picked
 * is asked. */
static void exchange_next_attempt(struct exchange *ex) {
  struct upclient *uc = ex->uc;
  uint32_t failed = ex->ntried - 2; /* the answer's server: the one before the new one */
  ex->uc = NULL;
  ex->discarding = false;
  connpool_release(uc, ex->req_done && !ex->w->stopping && failed < EX_MAX_TRIED &&
                           upstream_server_present(ex->tried[failed]));
  ex->status = 0;
  ex->resp_hdrs.n = 0;
  ex->reason = (struct slice){NULL, 0};
  if (ex->resp_pin) {
    iobuf_unref(ex->resp_pin);
    ex->resp_pin = NULL;
  }
  exchange_connect(ex, false);
}

/* The upstream client reports into the exchange: the response head goes
 * to its arena and header list. */
static void exchange_attach(struct exchange *ex, struct upclient *uc, bool reused) {
  ex->uc = uc;
  ex->uc_reused = reused;
  struct upclient_sink sink = {&ex->arena, &ex->resp_pin, &ex->resp_hdrs, &ex->reason};
  upclient_begin(uc, &exchange_upclient_cbs, ex, &sink, ex->method == HTTP_HEAD);
}

/* Connecting failed (err): ferry's own shortage, or the server's fault
 * (ejection, a retry elsewhere, else the error's status). tls_why: why the
 * TLS handshake failed (in ex's arena), NULL when it was not TLS. */
static void exchange_connect_failed(struct exchange *ex, int err, const char *tls_why) {
  if (ferry_err_is_local(err)) {
    exchange_local_failure(ex, err);
    return;
  }
  exchange_attempt_end(ex, METRICS_RESULT_CONNECT_FAILURE);
  if (!tls_why)
    log_warn("upstream %s server %s: connect failed: %s", ex->up->cfg->name, ex->srv->name,
             uv_strerror(err));
  upstream_report_failure(ex->srv, true,
                          tls_why                  ? "TLS handshake failed"
                          : err == UV_ECONNREFUSED ? "connect refused"
                                                   : uv_strerror(err));
  if (exchange_retry(ex, RETRY_CONNECT_FAILURE, 0, false))
    return;
  ex->error_note = tls_why ? tls_why : "upstream connect failed";
  exchange_reply(ex, ferry_err_http_status(err), NULL, !ex->req_done);
}

static int exchange_connect(struct exchange *ex, bool fresh_only) {
  struct worker *w = ex->w;
  ex->state = EX_CONNECTING;
  ex->attempt_open = true;
  INSPECT_MARK(ex, t_connect);
  struct upclient *uc = fresh_only ? NULL : connpool_checkout(&ex->srv->pool);
  if (uc) {
    exchange_attach(ex, uc, true);
    exchange_upstream_connected(ex, 0);
    return 0;
  }
  int err = 0;
  uc = connpool_connect(&ex->srv->pool, &w->loop, (const struct sockaddr *)&ex->srv->slot->addr,
                        &err);
  if (!uc) {
    exchange_connect_failed(ex, err, NULL);
    return -1;
  }
  w->upstream_connects++;
  exchange_attach(ex, uc, false);
  session_timer(ex->s, ST_CONNECT);
  return 0;
}

void exchange_forward(struct exchange *ex, struct slice target, struct slice norm,
                      struct slice host) {
  const struct cfg_route *r = ex->route;
  struct worker *w = ex->w;
  ex->up = &ex->route_gen->ups[policy_upstream(ex)];
  if (!upstream_enter(ex->up)) {
    ex->error_note = "circuit open: upstream max_requests in flight";
    ex->refused = 503;
    exchange_reply(ex, 503, policy_message(-503), !ex->req_done);
    return;
  }
  ex->up_held = true;
  ex->t_fwd_ms = w->loop.time; /* uv_now(), without the call */
  retry_request(ex);
  if (!exchange_next_server(ex)) {
    upstream_count_no_server(ex->up);
    ex->retry_after = upstream_retry_after(ex->up);
    ex->error_note = "no healthy upstream server";
    exchange_reply(ex, ferry_err_http_status(FERRY_E_NO_SERVER),
                   "service unavailable: no server of this upstream is up\n", false);
    return;
  }

  struct slice send_target;
  if (request_upstream_target(r, target, norm, &ex->arena, &send_target) != 0) {
    exchange_reply(ex, 414, NULL, true);
    return;
  }
  struct request_head rh = {.method = ex->method,
                            .minor = ex->minor,
                            .headers = &ex->req_hdrs,
                            .chunked = ex->req_chunked,
                            .has_length = ex->req_has_length};
  struct fwd_request fr;
  request_fwd_init(&fr, r, &rh, send_target, host, slice_cstr(ex->srv->name),
                   slice_cstr(ex->peer_ip), ex->rid, ex->req_length, ex->upgrade_req,
                   ex->peer_trusted);
  policy_trace(ex);
  fr.traceparent = slice_make(ex->traceparent, 55);
  if (ex->auth_ops) /* the route's request_headers with auth_request's pass_headers */
    fr.ops = ex->auth_ops;
  const struct tls_conn *tc = ex->tls;
  if (tc) {
    fr.proto = SLICE_LIT("https");
    fr.client_cert = tls_conn_xfcc(tc, &ex->arena);
  }
  /* One pass into a standard block; a second only for a larger head. */
  struct iobuf *hb = iobuf_get(&w->bufs, IOBUF_SIZE);
  size_t need = hb ? http_head_build_request(hb->data, hb->cap, &fr) : 0;
  if (hb && need > hb->cap) {
    iobuf_unref(hb);
    hb = iobuf_get(&w->bufs, need);
    if (hb)
      http_head_build_request(hb->data, need, &fr);
  }
  ex->uhead_buf = hb;
  if (!ex->uhead_buf) {
    exchange_reply(ex, 503, "service unavailable: out of memory\n", true);
    return;
  }
  ex->uhead_buf->len = (uint32_t)need;
  mirror_begin(ex);
  exchange_connect(ex, false);
}

/* --- request side ------------------------------------------------------- */

/* The client's stream, where the response goes. */
static inline struct stream *client_stream(const struct exchange *ex) {
  return &ex->s->st;
}

/* Body bytes (p, n) of block b as one chunk (bodies are re-chunked). */
static int add_chunk(struct stream *st, const char *p, size_t n, struct iobuf *b) {
  char hdr[24];
  int k = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
  return stream_add_copy(st, hdr, (size_t)k) != 0 || stream_add(st, p, n, b) != 0 ||
                 stream_add_copy(st, "\r\n", 2) != 0
             ? -1
             : 0;
}

/* The last chunk, with the trailer fields of hdrs from index `from`. */
static int add_last_chunk(struct worker *w, struct stream *st, const struct hdr_list *hdrs,
                          uint32_t from) {
  size_t need = http_head_build_last_chunk(NULL, 0, hdrs, from);
  if (need == 5)
    return stream_add_copy(st, "0\r\n\r\n", 5);
  struct iobuf *b = iobuf_get(&w->bufs, need);
  if (!b)
    return -1;
  http_head_build_last_chunk(b->data, need, hdrs, from);
  b->len = (uint32_t)need;
  int r = stream_add(st, b->data, need, b);
  iobuf_unref(b);
  return r;
}

/* The response deadline: the route's `timeout`, else upstream_response. */
static void response_timer(struct exchange *ex) {
  uint64_t ms = retry_response_ms(ex);
  if (ms)
    session_timer_ms(ex->s, ST_RESPONSE, ms);
  else
    session_timer(ex->s, ST_RESPONSE);
}

void exchange_upstream_connected(struct exchange *ex, int status) {
  struct session *s = ex->s;
  if (status < 0) {
    /* A failed TLS handshake (already in the error log) says why in the
     * inspector and the access log too. */
    const char *tls_why = NULL;
    if (ex->uc->tls_on && *tls_conn_error(&ex->uc->tls)) {
      const char *e = tls_conn_error(&ex->uc->tls);
      size_t n = sizeof "upstream TLS handshake failed: " + strlen(e);
      char *p = arena_alloc(&ex->arena, n);
      if (p)
        snprintf(p, n, "upstream TLS handshake failed: %s", e);
      tls_why = p ? p : "upstream TLS handshake failed";
    }
    connpool_close(ex->uc);
    ex->uc = NULL;
    exchange_connect_failed(ex, status, tls_why);
    return;
  }
  session_timer(s, ST_NONE);
  ex->state = EX_FORWARDING;
  INSPECT_MARK(ex, t_connected);
  struct stream *up = &ex->uc->st;
  if (stream_add(up, ex->uhead_buf->data, ex->uhead_buf->len, ex->uhead_buf) != 0) {
    exchange_upstream_error(ex, UV_ENOMEM);
    return;
  }
  if (ex->req_done) {
    /* A retry: the request had no body to resend except a chunked end. */
    if (ex->req_chunked)
      add_last_chunk(ex->w, &ex->uc->st, &ex->req_hdrs, ex->req_trailers);
    stream_flush(up);
    response_timer(ex);
    return;
  }
  exchange_arm_timer(ex);
  session_unblock(s); /* the parser goes on: body bytes, then message end */
  if (!s->in_process && ex->uc)
    stream_flush(&ex->uc->st);
}

void exchange_request_flush(struct exchange *ex) {
  mirror_flush(ex);
  if (ex->uc)
    stream_flush(&ex->uc->st);
}

int exchange_request_body(struct exchange *ex, const char *p, size_t n, struct iobuf *b) {
  ex->req_body_bytes += n;
  if (ex->insp.on)
    inspect_body(ex, 0, p, n);
  uint64_t max_body = ex->w->cfg->limits.max_request_body_bytes;
  if (max_body && ex->req_body_bytes > max_body) {
    ex->body_too_large = true;
    return -1;
  }
  mirror_body(ex, p, n, b);
  if (!ex->uc)
    return 0;
  struct stream *up = &ex->uc->st;
  if (ex->s->timer_kind == ST_BODY)
    session_timer(ex->s, ST_BODY);
  return ex->req_chunked ? add_chunk(up, p, n, b) : stream_add(up, p, n, b);
}

/* The last chunk of a chunked request, with the client's trailers.
 * `inline` asks LTO to inline it into session.c's callers (the header's
 * declaration keeps this an external definition): once per request. */
inline void exchange_request_done(struct exchange *ex) {
  ex->req_done = true;
  mirror_request_done(ex);
  if (ex->uc && ex->req_chunked)
    add_last_chunk(ex->w, &ex->uc->st, &ex->req_hdrs, ex->req_trailers);
  if (!ex->resp_started)
    response_timer(ex);
}

/* --- flow control: the one place ----------------------------------------- */

/* Each side's writer over its high-water mark holds the other side's
 * reader (stream_flow); the stall timers follow. The tunnel relies on
 * the same two calls. */

/* The client's queue passed its high-water mark, or fell back under low. */
void exchange_client_watermark(struct exchange *ex, bool high) {
  if (!ex->uc)
    return;
  stream_flow(&ex->uc->st, high);
  exchange_arm_timer(ex);
}

/* The upstream's queue (request body, tunnel bytes) did the same. */
static void up_watermark(void *owner, bool high) {
  struct exchange *ex = owner;
  stream_flow(client_stream(ex), high);
}

/* A write to the upstream completed: the request body is moving. */
static void up_written(void *owner) {
  struct exchange *ex = owner;
  if (ex->state == EX_TUNNEL) {
    tunnel_upstream_written(&ex->tun);
    return;
  }
  if (ex->s->timer_kind == ST_BODY)
    session_timer(ex->s, ST_BODY);
}

/* --- response side ------------------------------------------------------ */

static void up_connected(void *owner, int status) {
  exchange_upstream_connected(owner, status);
}

/* The response head fr describes, in a block of its own: one pass into a
 * standard block, a second only for a larger head. NULL on OOM. */
static struct iobuf *response_block(struct worker *w, const struct fwd_response *fr) {
  struct iobuf *b = iobuf_get(&w->bufs, IOBUF_SIZE);
  size_t need = b ? http_head_build_response(b->data, b->cap, fr) : 0;
  if (b && need > b->cap) {
    iobuf_unref(b);
    if ((b = iobuf_get(&w->bufs, need)) != NULL)
      http_head_build_response(b->data, need, fr);
  }
  if (b)
    b->len = (uint32_t)need;
  return b;
}

static int up_head(void *owner, const struct upclient_head *h) {
  struct exchange *ex = owner;
  struct session *s = ex->s;
  int status = h->status;
  if (status < 100 || status > 599)
    return -1; /* not a status RFC 9110 defines: invalid response (502) */
  bool upgrading = status == 101 && ex->upgrade_req && ex->req_done;
  if (status >= 100 && status < 200 && !upgrading) {
    if (status == 101)
      return -1; /* no Upgrade was forwarded, so a 101 is invalid here */
    /* Interim response: relayed to HTTP/1.1 clients (100 Continue answers
     * their Expect), dropped for HTTP/1.0 ones; never has a body. */
    if (ex->minor >= 1) {
      http_head_mark_hop(&ex->resp_hdrs);
      struct fwd_response ir = {.status = status,
                                .reason = ex->reason,
                                .headers = &ex->resp_hdrs,
                                .framing = FRAMING_NONE,
                                .client_minor = 1,
                                .keep_alive = true};
      struct iobuf *ib = response_block(ex->w, &ir);
      if (!ib)
        return -1;
      int ir_r = stream_add(&s->st, ib->data, ib->len, ib);
      iobuf_unref(ib);
      if (ir_r != 0)
        return -1;
    }
    ex->skip_1xx = true;
    ex->resp_hdrs.n = 0;
    ex->reason = (struct slice){NULL, 0};
    return 1; /* llhttp would read a body a 1xx declares */
  }
  if (http_head_check_transfer_encoding(&ex->resp_hdrs) != 0)
    return -1; /* a transfer coding ferry cannot remove: invalid response (502) */
  ex->status = status;
  ex->resp_minor = h->minor;
  ex->resp_trailers = ex->resp_hdrs.n;
  if (ex->srv)
    upstream_report_status(ex->srv, status);
  exchange_attempt_end(ex, status >= 500 ? METRICS_RESULT_5XX : METRICS_RESULT_OK);
  if (status >= 500 && exchange_retry(ex, RETRY_STATUS, status, false)) {
    ex->discarding = true; /* the body is dropped, then the next attempt starts */
    return ex->method == HTTP_HEAD ? 1 : 0;
  }
  http_head_mark_hop(&ex->resp_hdrs);
  enum body_framing f = http_head_response_framing(ex->method == HTTP_HEAD, status, h->chunked,
                                                   h->has_length, ex->minor);
  if (upgrading) {
    f = FRAMING_NONE;
    ex->upgraded = true;
    if (ex->uc)
      upclient_set_raw(ex->uc);
  }
  ex->client_framing = f;
  ex->keep_alive = ex->client_keepalive && f != FRAMING_CLOSE && ex->req_done && !s->peer_eof &&
                   !ex->w->stopping && !ex->upgrade_req;
  struct fwd_response fr = {
      .status = status,
      .reason = ex->reason,
      .headers = &ex->resp_hdrs,
      .framing = f,
      .content_length = h->length,
      .request_id = ex->rid,
      .date = wctx_http_date(ex->w),
      .client_minor = ex->minor,
      .keep_alive = ex->keep_alive,
      .upgrade = upgrading,
      .ops = ex->route ? &ex->route->response_headers : NULL,
  };
  struct iobuf *b = response_block(ex->w, &fr);
  if (!b)
    return -1;
  int r = stream_add(&s->st, b->data, b->len, b);
  if (ex->insp.on)
    inspect_note_response(ex, b, true);
  iobuf_unref(b);
  if (r != 0)
    return -1;
  ex->resp_started = true;
  if (ex->method == HTTP_HEAD)
    ex->client_framing = FRAMING_NONE; /* the length was only announced */
  /* A body larger than one read that nothing in ferry reads (no
   * inspector capture, no TLS, no re-framing) may skip it: splice,
   * src/splice.c. */
  if ((!h->has_length || h->length > IOBUF_BIG) && ex->uc && ex->w->splice.on && !ex->insp.on &&
      !ex->tls && !ex->uc->tls_on && !upgrading &&
      (ex->client_framing == FRAMING_LENGTH || ex->client_framing == FRAMING_CLOSE))
    upclient_splice_to(ex->uc, &s->st, &ex->w->splice);
  /* 1 tells the parser there is no body: llhttp would otherwise read a
   * chunked body after a 204 or 304 that declares one. */
  return ex->client_framing == FRAMING_NONE && !upgrading ? 1 : 0;
}

static int up_body(void *owner, const char *p, size_t n, struct iobuf *b) {
  struct exchange *ex = owner;
  struct stream *c = client_stream(ex);
  if (ex->discarding)
    return 0;
  ex->resp_body_bytes += n;
  if (!p) { /* spliced: the bytes already went to the client */
    mc_add(&ex->w->metrics.bytes_spliced, n);
    return 0;
  }
  if (ex->insp.on)
    inspect_body(ex, 1, p, n);
  switch (ex->client_framing) {
  case FRAMING_NONE:
    return 0;
  case FRAMING_CHUNKED:
    return add_chunk(c, p, n, b);
  case FRAMING_LENGTH:
  case FRAMING_CLOSE:
    return stream_add(c, p, n, b);
  }
  return 0;
}

static int up_done(void *owner) {
  struct exchange *ex = owner;
  if (ex->skip_1xx || ex->discarding) {
    ex->skip_1xx = false;
    return ex->discarding ? 1 : 0;
  }
  if (ex->srv_counted) { /* the server is done with it: no longer in flight */
    upstream_attempt_end(ex->srv);
    ex->srv_counted = false;
  }
  /* The last chunk, with the upstream's trailers. */
  if (ex->client_framing == FRAMING_CHUNKED &&
      add_last_chunk(ex->w, client_stream(ex), &ex->resp_hdrs, ex->resp_trailers) != 0)
    return -1;
  ex->resp_done = true;
  return 1;
}

/* Everything one upstream read produced was handed over: send it on. */
static void up_read_done(void *owner) {
  struct exchange *ex = owner;
  struct session *s = ex->s;
  if (ex->discarding) {
    exchange_next_attempt(ex);
    return;
  }
  if (stream_flush(&s->st) != 0) {
    session_close(s);
    return;
  }
  if (s->closing)
    return;
  if (ex->resp_done) {
    if (ex->upgraded)
      exchange_tunnel_begin(ex);
    else
      exchange_finish(ex);
    return;
  }
  exchange_arm_timer(ex);
}

static void up_error(void *owner, int err) {
  exchange_upstream_error(owner, err);
}

static void up_raw(void *owner, ssize_t nread) {
  struct exchange *ex = owner;
  tunnel_upstream_read(&ex->tun, nread);
}

static const struct upclient_cbs exchange_upclient_cbs = {
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

void exchange_arm_timer(struct exchange *ex) {
  struct session *s = ex->s;
  if (ex->state == EX_TUNNEL || ex->state == EX_DONE || ex->state == EX_HEAD)
    return;
  if (ex->resp_started)
    session_timer(s, ex->uc && (ex->uc->st.hold & STREAM_HOLD_FLOW) ? ST_CLIENT_STALL
                                                                    : ST_UPSTREAM_IDLE);
  else if (ex->state == EX_FORWARDING && !ex->req_done)
    session_timer(s, ST_BODY);
  else if (ex->state == EX_FORWARDING && s->timer_kind != ST_RESPONSE)
    response_timer(ex);
}

/* --- the end ---------------------------------------------------------------- */

static void exchange_finish(struct exchange *ex) {
  struct upclient *uc = ex->uc;
  ex->uc = NULL;
  ex->state = EX_DONE;
  if (uc)
    connpool_release(uc, ex->req_done && !ex->w->stopping && upstream_server_present(ex->srv));
  bool keep = ex->keep_alive && ex->req_done;
  exchange_log(ex);
  session_exchange_done(ex->s, keep);
}

void exchange_upstream_error(struct exchange *ex, int error) {
  if (ex->discarding) { /* a status-retried answer broke off: go on without it */
    exchange_next_attempt(ex);
    return;
  }
  struct upclient *uc = ex->uc;
  ex->uc = NULL;
  /* Keep-alive race: a pooled connection the server had already closed.
   * Retry once on a fresh connection when nothing of the request body has
   * been sent (the head alone is safe to resend). */
  bool retry = uc && ex->uc_reused && !uc->got_bytes && !ex->retried && !ex->resp_started &&
               ex->req_body_bytes == 0 &&
               (error == UV_EOF || error == UV_ECONNRESET || error == UV_EPIPE);
  bool no_response_byte = uc && !uc->got_bytes;
  if (uc)
    connpool_close(uc);
  exchange_attempt_end(ex, error == UV_EPROTO ? METRICS_RESULT_INVALID : METRICS_RESULT_RESET);
  if (retry) {
    ex->retried = true;
    retry_count(ex, RETRY_STALE, 0);
    log_debug("upstream %s server %s: pooled connection closed, retrying", ex->up->cfg->name,
              ex->srv->name);
    exchange_connect(ex, true);
    return;
  }
  if (no_response_byte && !ex->resp_started && ex->srv) {
    upstream_report_failure(ex->srv, false,
                            error == UV_EOF ? "connection closed" : uv_strerror(error));
    if (exchange_retry(ex, RETRY_RESET, 0, true))
      return;
  }
  if (!ex->resp_started) {
    log_warn("upstream %s server %s: %s before a response", ex->up ? ex->up->cfg->name : "-",
             ex->srv ? ex->srv->name : "-",
             error == UV_EOF      ? "connection closed"
             : error == UV_EPROTO ? "invalid response"
                                  : uv_strerror(error));
    ex->error_note = error == UV_EPROTO ? "invalid upstream response" : "upstream failed";
    exchange_reply(ex, ferry_err_http_status(error), NULL, !ex->req_done);
    return;
  }
  ex->error_note = "upstream closed mid-response";
  exchange_log(ex);
  session_close(ex->s);
}

void exchange_timeout(struct exchange *ex, int kind) {
  if (kind == ST_TUNNEL) {
    if (ex->state == EX_TUNNEL) {
      ex->tun.ended = true;
      ex->tun.cbs->end(&ex->tun, "tunnel idle timeout", true);
    } else {
      session_close(ex->s);
    }
    return;
  }
  if (ex->uc) {
    connpool_close(ex->uc);
    ex->uc = NULL;
  }
  if (kind == ST_CONNECT)
    exchange_attempt_end(ex, METRICS_RESULT_CONNECT_FAILURE);
  else if (kind == ST_RESPONSE || (kind == ST_BODY && (ex->s->st.hold & STREAM_HOLD_FLOW)))
    exchange_attempt_end(ex, METRICS_RESULT_TIMEOUT);
  switch (kind) {
  case ST_CONNECT:
    log_warn("upstream %s server %s: connect timed out", ex->up->cfg->name, ex->srv->name);
    upstream_report_failure(ex->srv, true, "connect timed out");
    if (exchange_retry(ex, RETRY_CONNECT_FAILURE, 0, false))
      return;
    ex->error_note = "upstream connect timeout";
    break;
  case ST_RESPONSE:
    if (ex->srv && !ex->resp_started)
      upstream_report_failure(ex->srv, false, "response timed out");
    ex->error_note = "upstream response timeout";
    break;
  case ST_BODY:
    if (ex->s->st.hold & STREAM_HOLD_FLOW) {
      ex->error_note = "upstream stopped reading the request body";
      break;
    }
    ex->error_note = "client request body timeout";
    if (!ex->resp_started) {
      exchange_reply(ex, 408, "request timeout: the request body stopped arriving\n", true);
      return;
    }
    break;
  case ST_CLIENT_STALL:
    ex->error_note = "client stopped reading the response";
    break;
  default:
    ex->error_note = "upstream idle timeout";
    break;
  }
  if (!ex->resp_started) {
    exchange_reply(ex,
                   ferry_err_http_status(kind == ST_CONNECT ? FERRY_E_CONNECT_TIMEOUT
                                                            : FERRY_E_RESPONSE_TIMEOUT),
                   NULL, !ex->req_done);
    return;
  }
  exchange_log(ex);
  session_close(ex->s);
}

void exchange_abort(struct exchange *ex) {
  authreq_cancel(ex);
  mirror_detach(ex);
  if (ex->uc) {
    connpool_close(ex->uc);
    ex->uc = NULL;
  }
  if (ex->state != EX_HEAD && ex->state != EX_DONE) {
    if (!ex->error_note)
      ex->error_note = "client closed the connection";
    exchange_log(ex);
  }
  ex->state = EX_DONE;
}
