/* session: one client connection (socket, read block, request parser).
 *
 * Owns: the client socket and timer, the read block, the request parser,
 * the current exchange (one at a time; pipelined requests wait unparsed in
 * the read block). Must not touch upstream sockets directly: it talks to
 * the exchange, which talks to connpool.
 *
 * The parser callbacks only copy head bytes into the exchange's arena or
 * hand body slices to the exchange, and pause at the end of the head and
 * of the message; everything else happens in session_process(), outside
 * llhttp_execute(). */
#include "ferry/session.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/connpool.h"
#include "ferry/exchange.h"
#include "ferry/h1parse.h"
#include "ferry/log.h"
#include "ferry/proxyproto.h"
#include "ferry/tunnel.h"
#include "ferry/worker.h"

enum pause_reason { PR_NONE, PR_HEAD, PR_DONE };

static void session_process(struct session *s);
static void session_update_reading(struct session *s);
static void session_eof(struct session *s);

static struct exchange *cur_ex(llhttp_t *p) {
  struct session *s = p->data;
  return s->ex;
}

static int on_message_begin(llhttp_t *p) {
  struct session *s = p->data;
  if (s->ex) /* cannot happen: the parser pauses at every message end */
    return -1;
  struct exchange *ex = worker_exchange_get(s->w);
  if (!ex)
    return -1;
  exchange_init(ex, s, s->w);
  s->ex = ex;
  s->head_bytes = 0;
  if (s->timer_kind != ST_HEADER)
    session_timer(s, ST_HEADER);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, &ex->url, at, n,
                         ((struct session *)p->data)->in) != 0) {
    if (ex)
      ex->head_overflow = true;
    return -1;
  }
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, &ex->cur_name, at, n,
                         ((struct session *)p->data)->in) != 0) {
    if (ex)
      ex->head_overflow = true;
    return -1;
  }
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, &ex->cur_value, at, n,
                         ((struct session *)p->data)->in) != 0) {
    if (ex)
      ex->head_overflow = true;
    return -1;
  }
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  struct exchange *ex = cur_ex(p);
  if (!ex)
    return -1;
  if (http_head_push(&ex->req_hdrs, ex->cur_name, ex->cur_value) != 0) {
    ex->too_many_headers = true;
    return -1;
  }
  ex->cur_name = (struct slice){NULL, 0};
  ex->cur_value = (struct slice){NULL, 0};
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct session *s = p->data;
  struct exchange *ex = s->ex;
  if (!ex)
    return -1;
  ex->minor = p->http_minor;
  ex->method = p->method;
  ex->client_keepalive = llhttp_should_keep_alive(p) != 0;
  ex->req_chunked = (p->flags & F_CHUNKED) != 0;
  ex->req_has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  ex->req_length = ex->req_has_length ? p->content_length : 0;
  ex->bad_version = p->http_major != 1;
  /* Upgrade needs HTTP/1.1 and "Connection: upgrade" (llhttp's flag);
   * CONNECT also sets it and gets 405. */
  ex->upgrade_req =
      p->upgrade && p->method != HTTP_CONNECT && p->http_major == 1 && p->http_minor >= 1;
  ex->req_trailers = ex->req_hdrs.n; /* fields pushed from now on are trailers */
  s->chunk_ext_bytes = 0;
  http_head_mark_hop(&ex->req_hdrs);
  s->pause_reason = PR_HEAD;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct session *s = p->data;
  if (!s->ex)
    return 0; /* body of a request already answered; connection will close */
  return exchange_request_body(s->ex, at, n, s->in) == 0 ? 0 : -1;
}

/* Chunk extensions are dropped (bodies are re-chunked), but a long one is
 * refused rather than read forever. */
#define MAX_CHUNK_EXT_BYTES 1024u

static int on_chunk_extension(llhttp_t *p, const char *at, size_t n) {
  (void)at;
  struct session *s = p->data;
  if (n > MAX_CHUNK_EXT_BYTES - s->chunk_ext_bytes)
    return -1;
  s->chunk_ext_bytes += (uint32_t)n;
  return 0;
}

static int on_chunk_complete(llhttp_t *p) {
  struct session *s = p->data;
  s->chunk_ext_bytes = 0;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct session *s = p->data;
  if (!s->ex)
    return 0; /* the exchange was answered before its (empty) body ended */
  s->pause_reason = PR_DONE;
  return HPE_PAUSED;
}

static const llhttp_settings_t request_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

/* --- handles and closing ------------------------------------------------ */

static void session_free(struct session *s) {
  if (s->ex) {
    exchange_reset(s->ex);
    worker_exchange_put(s->w, s->ex);
    s->ex = NULL;
  }
  if (s->in)
    iobuf_unref(s->in);
  if (s->batch)
    wreq_put(s->batch);
  free(s);
}

static void on_handle_closed(uv_handle_t *h) {
  struct session *s = h->data;
  if (--s->open_handles == 0)
    session_free(s);
}

void session_close(struct session *s) {
  if (s->closing)
    return;
  s->closing = true;
  if (s->ex)
    exchange_abort(s->ex);
  if (s->reading)
    uv_read_stop((uv_stream_t *)&s->tcp);
  s->reading = false;
  if (s->prev)
    s->prev->next = s->next;
  else
    s->w->sessions = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->next = s->prev = NULL;
  worker_conn_closed(s->w);
  uv_close((uv_handle_t *)&s->timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

void session_close_all(struct worker *w) {
  while (w->sessions)
    session_close(w->sessions);
}

/* --- writes to the client ----------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  struct wreq *wr = container_of(req, struct wreq, req);
  struct session *s = req->data;
  s->queued -= wr->bytes;
  s->writes_pending--;
  if (status >= 0)
    mc_add(&s->w->metrics.bytes_out, wr->bytes);
  wreq_put(wr);
  if (s->closing)
    return;
  if (status < 0) {
    log_debug("client %s: write failed: %s", s->client_ip, uv_strerror(status));
    session_close(s);
    return;
  }
  if (s->timer_kind == ST_CLIENT_STALL)
    session_timer(s, ST_CLIENT_STALL); /* the client is reading: progress */
  if (s->ex && s->queued < BP_LOW)
    exchange_client_drained(s->ex);
  if (s->close_after && !s->ex && s->writes_pending == 0)
    session_close(s);
}

int session_flush(struct session *s) {
  struct wreq *wr = s->batch;
  if (!wr || wr->nbufs == 0 || s->closing)
    return 0;
  s->batch = NULL;
  wr->req.data = s;
  s->queued += wr->bytes;
  s->writes_pending++;
  if (wreq_try_write(wr, (uv_stream_t *)&s->tcp)) {
    on_write(&wr->req, 0); /* all written at once: complete it here */
    return 0;
  }
  int r = uv_write(&wr->req, (uv_stream_t *)&s->tcp, wr->bufs, wr->nbufs, on_write);
  if (r < 0) {
    s->queued -= wr->bytes;
    s->writes_pending--;
    wreq_put(wr);
    return r;
  }
  return 0;
}

static struct wreq *session_batch(struct session *s, unsigned bufs, size_t scratch) {
  if (s->batch && !wreq_has_room(s->batch, bufs, scratch)) {
    if (session_flush(s) < 0)
      return NULL;
  }
  if (!s->batch)
    s->batch = wreq_get(&s->w->bufs);
  return s->batch;
}

int session_add(struct session *s, const char *p, size_t n, struct iobuf *b) {
  if (s->closing)
    return -1;
  struct wreq *wr = session_batch(s, 1, 0);
  if (!wr)
    return -1;
  wreq_add(wr, p, n, b);
  return 0;
}

int session_add_copy(struct session *s, const char *p, size_t n) {
  if (s->closing || n > WREQ_SCRATCH)
    return -1;
  struct wreq *wr = session_batch(s, 1, n);
  if (!wr)
    return -1;
  wreq_add_copy(wr, p, n);
  return 0;
}

/* --- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct session *s = h->data;
  if (s->in && s->parse_off == s->in->len) {
    if (s->in->refs == 1) {
      s->in->len = 0;
    } else {
      iobuf_unref(s->in);
      s->in = NULL;
    }
    s->parse_off = 0;
  }
  if (!s->in)
    s->in = iobuf_get(&s->w->bufs, IOBUF_SIZE);
  if (!s->in || s->in->len == s->in->cap) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(s->in->data + s->in->len, s->in->cap - s->in->len);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct session *s = st->data;
  if (s->tunnel && s->ex) {
    if (nread > 0) {
      mc_add(&s->w->metrics.bytes_in, (uint64_t)nread);
      s->in->len += (uint32_t)nread;
    }
    if (nread != 0)
      tunnel_client_read(s->ex, nread);
    return;
  }
  if (nread > 0) {
    mc_add(&s->w->metrics.bytes_in, (uint64_t)nread);
    s->in->len += (uint32_t)nread;
    session_process(s);
    return;
  }
  if (nread == 0)
    return;
  if (nread != UV_EOF) {
    log_debug("client %s: read failed: %s", s->client_ip, uv_strerror((int)nread));
    session_close(s);
    return;
  }
  /* EOF while the parser is held or bytes wait unparsed: act on it only
   * once those are handled, as if it were read then. */
  if (s->blocked || (s->in && s->parse_off < s->in->len)) {
    s->eof_pending = true;
    session_update_reading(s);
    return;
  }
  session_eof(s);
}

/* EOF. A request still arriving is abandoned; a complete one still gets
 * its response, then the connection closes. */
static void session_eof(struct session *s) {
  s->eof_pending = false;
  s->peer_eof = true;
  if (!s->ex || !s->ex->req_done) {
    session_close(s);
    return;
  }
  session_update_reading(s);
}

/* Reading stays on while the parser is held for an exchange (stopping and
 * restarting it costs epoll_ctl calls on every request); bytes that arrive
 * meanwhile wait in the read block, and reading stops when it is full. */
static void session_update_reading(struct session *s) {
  bool full = s->blocked && s->in && s->in->len == s->in->cap && s->parse_off < s->in->len;
  bool want =
      !s->closing && !s->bp_paused && !s->peer_eof && !s->close_after && !s->eof_pending && !full;
  if (want && !s->reading) {
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
      s->reading = true;
  } else if (!want && s->reading) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = false;
  }
  /* The parser caught up with a held EOF. */
  if (s->eof_pending && !s->closing && !s->blocked && !s->in_process &&
      (!s->in || s->parse_off == s->in->len))
    session_eof(s);
}

void session_set_bp(struct session *s, bool paused) {
  if (s->bp_paused == paused)
    return;
  s->bp_paused = paused;
  session_update_reading(s);
}

/* The exchange a rejected request is answered on: the current one, or a
 * fresh one when the message had not begun (e.g. garbage before a request
 * line). Stops further parsing. NULL after closing the session when no
 * exchange can be had. */
static struct exchange *session_error_exchange(struct session *s) {
  struct exchange *ex = s->ex;
  if (!ex) {
    ex = worker_exchange_get(s->w);
    if (!ex) {
      session_close(s);
      return NULL;
    }
    exchange_init(ex, s, s->w);
    s->ex = ex;
  }
  s->blocked = true;
  return ex;
}

/* Answer a malformed request head with status, then close. */
static void session_reject(struct session *s, int status) {
  struct exchange *ex = session_error_exchange(s);
  if (!ex)
    return;
  if (ex->state != EX_HEAD) {
    session_close(s);
    return;
  }
  exchange_reply(ex, status, NULL, true);
}

/* Answer a request the parser rejected, then close. */
static void session_parse_error(struct session *s, llhttp_errno_t err) {
  const char *reason = llhttp_get_error_reason(&s->parser);
  log_debug("client %s: bad request: %s (%s)", s->client_ip, llhttp_errno_name(err),
            reason ? reason : "");
  struct exchange *ex = session_error_exchange(s);
  if (!ex)
    return;
  if (ex->state != EX_HEAD) {
    /* A bad chunk, a chunk extension over the bound or a body over
     * max_request_body_bytes while the body is being forwarded: the
     * upstream connection is closed mid-request (it never sees another
     * request), and the client gets 400/413 unless its response began. */
    if (ex->resp_started || ex->state == EX_DONE) {
      session_close(s);
      return;
    }
    if (ex->body_too_large)
      ex->error_note = "request body over max_request_body_bytes";
    exchange_reply(ex, ex->body_too_large ? 413 : 400,
                   ex->body_too_large ? NULL : "bad request: malformed chunked body\n", true);
    return;
  }
  if (ex->too_many_headers || ex->head_overflow)
    exchange_reply(ex, ex->url.n > 0 && ex->req_hdrs.n == 0 && ex->cur_name.n == 0 ? 414 : 431,
                   NULL, true);
  else
    exchange_reply(ex, 400, NULL, true);
}

/* A head over max_request_header_bytes: 414 when the request line alone
 * is over it (or no field has started yet), else 431. */
static int head_limit_status(const struct exchange *ex, uint64_t max_head) {
  return ex->url.n >= max_head || (ex->req_hdrs.n == 0 && ex->cur_name.n == 0) ? 414 : 431;
}

/* The PROXY protocol header at the start of a connection on a listener
 * with proxy_protocol: its client address replaces the socket's (for
 * X-Forwarded-For, hashing and logs). True once it is consumed; false
 * while more bytes are needed, or after closing the connection for a
 * missing or malformed header. */
static bool session_proxy_header(struct session *s) {
  if (!s->in || s->parse_off >= s->in->len)
    return false;
  struct proxyproto_info pi;
  int r = proxyproto_parse(s->in->data + s->parse_off, s->in->len - s->parse_off, &pi);
  if (r == PP_AGAIN && s->in->len < s->in->cap)
    return false;
  if (r != PP_OK) {
    mc_add(&s->w->metrics.proxy_protocol_errors, 1);
    log_debug("client %s on %s: %s: connection closed", s->client_ip,
              s->listener ? s->listener->address : "-", proxyproto_strerror(r));
    session_close(s);
    return false;
  }
  s->parse_off += pi.len;
  s->pp_pending = false;
  if (!pi.local) {
    if (pi.src.ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&pi.src;
      uv_ip6_name(a, s->client_ip, sizeof(s->client_ip));
      s->client_port = ntohs(a->sin6_port);
    } else {
      const struct sockaddr_in *a = (const struct sockaddr_in *)&pi.src;
      uv_ip4_name(a, s->client_ip, sizeof(s->client_ip));
      s->client_port = ntohs(a->sin_port);
    }
  }
  return true;
}

/* A whole, plain request head without a body at the start of the unparsed
 * bytes: read by h1parse in one pass (no llhttp, no strict scan: it takes
 * only what both would accept and read the same way) and started exactly
 * as the llhttp callbacks would start it. The message is complete at the
 * end of its head; fast_done stands for llhttp's message-complete pause.
 * False, with nothing consumed, for anything else. */
static bool session_fast_head(struct session *s, const char *p, size_t n, uint64_t max_head) {
  struct exchange *ex = worker_exchange_get(s->w);
  if (!ex)
    return false;
  struct hdr_list l = {ex->req_store, 0, EX_MAX_HEADERS};
  struct h1_head h;
  if (h1_parse_request(p, n, &l, &h) != H1_OK || (h.has_length && h.length > 0) ||
      h.len > max_head) {
    worker_exchange_put(s->w, ex);
    return false;
  }
  exchange_init(ex, s, s->w); /* keeps req_store */
  s->ex = ex;
  if (s->timer_kind != ST_HEADER)
    session_timer(s, ST_HEADER);
  iobuf_ref(s->in);
  ex->req_pin = s->in;
  ex->url = h.target;
  ex->req_hdrs.n = l.n;
  ex->minor = h.minor;
  ex->method = h.method;
  ex->client_keepalive = h1_keep_alive(&h);
  ex->req_has_length = h.has_length;
  ex->req_trailers = l.n;
  s->chunk_ext_bytes = 0;
  http_head_mark_hop(&ex->req_hdrs);
  s->parse_off += h.len;
  s->head_bytes = h.len;
  s->blocked = true;
  s->fast_done = true;
  if (s->over_limit)
    exchange_reply(ex, 503, "service unavailable: too many connections (limits.max_connections)\n",
                   true);
  else
    exchange_start(ex);
  return true;
}

static void session_process(struct session *s) {
  if (s->in_process)
    return;
  if (s->pp_pending && !s->closing) {
    s->in_process = true;
    bool ok = session_proxy_header(s);
    s->in_process = false;
    if (!ok)
      return;
  }
  s->in_process = true;
  uint64_t max_head = s->w->cfg->limits.max_request_header_bytes;
  while (!s->closing && !s->blocked && !s->close_after && s->in &&
         (s->parse_off < s->in->len || s->resume_pending || s->fast_done)) {
    if (s->fast_done) { /* a fast-path request, complete with its head */
      s->fast_done = false;
      if (s->ex) {
        s->blocked = true;
        exchange_request_done(s->ex);
      }
      continue;
    }
    const char *start = s->in->data + s->parse_off;
    size_t avail = s->in->len - s->parse_off;
    if (!s->ex && avail > 0 && session_fast_head(s, start, avail, max_head))
      continue;
    bool in_head = !s->ex || s->ex->state == EX_HEAD;
    if (in_head && avail > 0) {
      /* What llhttp lets through: bare LF, obs-fold, space before ':'. */
      size_t hend = 0;
      int sc = http_head_scan(&s->scan, start, avail, &hend);
      if (sc < 0) {
        log_debug("client %s: bad request: %s", s->client_ip, http_head_scan_strerror(sc));
        session_reject(s, 400);
        continue;
      }
    }
    s->resume_pending = false;
    s->pause_reason = PR_NONE;
    llhttp_errno_t err = llhttp_execute(&s->parser, start, avail);
    size_t used = avail;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
      used = (size_t)(llhttp_get_error_pos(&s->parser) - start);
    s->parse_off += used;
    if (in_head)
      s->head_bytes += used;

    if (err == HPE_OK) {
      if (s->ex && s->ex->state == EX_HEAD && s->head_bytes > max_head) {
        s->blocked = true;
        exchange_reply(s->ex, head_limit_status(s->ex, max_head), NULL, true);
      }
    } else if (err == HPE_PAUSED) {
      llhttp_resume(&s->parser);
      s->resume_pending = true;
      if (s->pause_reason == PR_HEAD) {
        s->blocked = true;
        if (s->head_bytes > max_head)
          exchange_reply(s->ex, head_limit_status(s->ex, max_head), NULL, true);
        else if (s->over_limit)
          exchange_reply(s->ex, 503,
                         "service unavailable: too many connections (limits.max_connections)\n",
                         true);
        else
          exchange_start(s->ex);
      } else if (s->pause_reason == PR_DONE) {
        s->blocked = true;
        exchange_request_done(s->ex);
      }
    } else if (err == HPE_PAUSED_UPGRADE) {
      /* Bytes after an upgrade request are not HTTP; answer the request
       * (the Upgrade header is not forwarded) and close afterwards. */
      s->blocked = true;
      s->close_after = true;
      if (s->ex && !s->ex->req_done)
        exchange_request_done(s->ex);
    } else {
      session_parse_error(s, err);
    }
    if (!s->closing && s->ex && s->ex->uc)
      upconn_flush(s->ex->uc);
  }
  if (!s->closing && s->ex && s->ex->uc)
    upconn_flush(s->ex->uc);
  s->in_process = false;
  if (!s->closing)
    session_update_reading(s);
}

void session_unblock(struct session *s) {
  if (s->closing || s->close_after)
    return;
  s->blocked = false;
  if (!s->in_process)
    session_process(s);
}

void session_exchange_done(struct session *s, bool keep_alive) {
  struct exchange *ex = s->ex;
  http_head_scan_reset(&s->scan); /* the next head starts fresh */
  session_flush(s);
  s->ex = NULL;
  if (ex) {
    exchange_reset(ex);
    worker_exchange_put(s->w, ex);
  }
  s->requests++;
  if (s->closing)
    return;
  if (!keep_alive || s->peer_eof || s->close_after || s->w->stopping) {
    s->close_after = true;
    s->blocked = true;
    session_timer(s, ST_NONE);
    session_update_reading(s);
    if (s->writes_pending == 0)
      session_close(s);
    return;
  }
  s->blocked = false;
  s->head_bytes = 0;
  if (s->in && s->parse_off == s->in->len) {
    /* Idle connections hold no read block. A parser resume still pending
     * has no bytes to act on: the next read goes through it. */
    iobuf_unref(s->in);
    s->in = NULL;
    s->parse_off = 0;
  }
  session_timer(s, ST_IDLE);
  if (!s->in_process)
    session_process(s);
}

/* --- timers ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  struct session *s = t->data;
  if (s->timer_kind == ST_NONE)
    return;
  uint64_t now = uv_now(t->loop);
  if (now < s->timer_due) { /* armed for an earlier deadline since replaced */
    s->timer_fire = s->timer_due;
    uv_timer_start(t, on_timer, s->timer_due - now, 0);
    return;
  }
  enum session_timer kind = s->timer_kind;
  s->timer_kind = ST_NONE;
  switch (kind) {
  case ST_NONE:
    break;
  case ST_IDLE:
    session_close(s);
    break;
  case ST_HEADER:
    if (s->ex && s->ex->state == EX_HEAD) {
      s->blocked = true;
      exchange_reply(s->ex, 408, NULL, true);
    } else {
      session_close(s);
    }
    break;
  case ST_CONNECT:
  case ST_RESPONSE:
  case ST_UPSTREAM_IDLE:
  case ST_BODY:
  case ST_CLIENT_STALL:
    if (s->ex)
      exchange_timeout(s->ex, (int)kind);
    else
      session_close(s);
    break;
  case ST_TUNNEL:
    if (s->ex && s->tunnel)
      tunnel_timeout(s->ex);
    else
      session_close(s);
    break;
  }
}

void session_tunnel_begin(struct session *s) {
  s->tunnel = true;
  s->blocked = true; /* the parser is done with this connection */
  session_timer(s, ST_TUNNEL);
  if (s->eof_pending && s->ex) {
    /* The client closed while its upgrade request waited for the 101: what
     * it sent went upstream already; end the tunnel the same way. */
    s->eof_pending = false;
    tunnel_client_read(s->ex, UV_EOF);
    return;
  }
  session_update_reading(s);
}

void session_tunnel_end(struct session *s) {
  s->tunnel = false;
  session_exchange_done(s, false);
}

void session_timer(struct session *s, enum session_timer kind) {
  if (s->closing)
    return;
  const struct config *cfg = s->w->cfg;
  uint64_t ms = 0;
  switch (kind) {
  case ST_NONE:
    s->timer_kind = ST_NONE; /* an armed timer fires and finds nothing to do */
    return;
  case ST_HEADER:
    ms = cfg->timeouts.client_header_ms;
    break;
  case ST_IDLE:
    ms = cfg->timeouts.client_idle_ms;
    break;
  case ST_CONNECT:
    ms = cfg->timeouts.upstream_connect_ms;
    break;
  case ST_RESPONSE:
    ms = cfg->timeouts.upstream_response_ms;
    break;
  case ST_UPSTREAM_IDLE:
    ms = cfg->timeouts.upstream_idle_ms;
    break;
  case ST_BODY:
  case ST_CLIENT_STALL:
  case ST_TUNNEL:
    ms = cfg->timeouts.client_idle_ms;
    break;
  }
  /* Lazy re-arming: a timer already due no later than the new deadline
   * stays armed and on_timer re-arms it for what is left. Requests move
   * through several deadlines each; this keeps them off the timer heap. */
  s->timer_kind = kind;
  s->timer_due = uv_now(&s->w->loop) + ms;
  if (uv_is_active((uv_handle_t *)&s->timer) && s->timer_fire <= s->timer_due)
    return;
  s->timer_fire = s->timer_due;
  uv_timer_start(&s->timer, on_timer, ms, 0);
}

/* --- accept ------------------------------------------------------------- */

void session_accept(struct worker_listener *l) {
  struct worker *w = l->w;
  struct session *s = calloc(1, sizeof(*s));
  if (!s) {
    log_error("out of memory accepting a connection");
    return;
  }
  s->w = w;
  s->listener = l->cfg;
  uv_tcp_init(&w->loop, &s->tcp);
  uv_timer_init(&w->loop, &s->timer);
  s->tcp.data = s;
  s->timer.data = s;
  s->open_handles = 2;
  if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&s->tcp) != 0) {
    s->closing = true;
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      uv_ip4_name(a, s->client_ip, sizeof(s->client_ip));
      s->client_port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, s->client_ip, sizeof(s->client_ip));
      s->client_port = ntohs(a->sin6_port);
    }
  }
  if (!s->client_ip[0])
    strcpy(s->client_ip, "-");
  llhttp_init(&s->parser, HTTP_REQUEST, &request_settings);
  s->parser.data = s;
  s->next = w->sessions;
  if (w->sessions)
    w->sessions->prev = s;
  w->sessions = s;
  s->over_limit = !worker_conn_opened(w);
  s->pp_pending = l->cfg->proxy_protocol;
  session_timer(s, ST_HEADER);
  session_update_reading(s);
}
