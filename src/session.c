/* session: one client connection (socket, read block, request parser).
 *
 * Owns: the client socket, its rx (read block, request parser, per-message
 * parse state, address text; attached only while bytes are buffered or an
 * exchange runs), the current exchange (one at a time; pipelined requests
 * wait unparsed in the read block), and the worker's per-kind deadline
 * lists with their one timer. Must not touch upstream sockets directly: it
 * talks to the exchange, which talks to connpool.
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

#include "ferry/chunked.h"
#include "ferry/connpool.h"
#include "ferry/exchange.h"
#include "ferry/h1parse.h"
#include "ferry/log.h"
#include "ferry/proxyproto.h"
#include "ferry/tunnel.h"
#include "ferry/worker.h"

enum pause_reason { PR_NONE, PR_HEAD, PR_DONE };

/* Free session_rx structs kept per worker; more are freed. */
#define RX_FREE_MAX 256u

_Static_assert(offsetof(struct worker, loop) == 0, "session_worker() needs the loop first");
_Static_assert(offsetof(struct session, tcp) == 0, "libuv callbacks cast the handle");
_Static_assert(offsetof(struct session_rx, parser) == 0, "llhttp callbacks cast the parser");

static void session_process(struct session *s);
static void session_update_reading(struct session *s);
static void session_eof(struct session *s);

static struct exchange *cur_ex(llhttp_t *p) {
  struct session *s = p->data;
  return s->ex;
}

/* The read block of the rx whose parser p is. */
static struct iobuf *cur_in(llhttp_t *p) {
  return ((struct session_rx *)(void *)p)->in;
}

/* A request begins on ex (from worker_exchange_get): the header deadline
 * runs until its head is complete. */
static void session_begin(struct session *s, struct exchange *ex) {
  exchange_init(ex, s, session_worker(s)); /* keeps req_store */
  s->ex = ex;
  if (s->timer_kind != ST_HEADER)
    session_timer(s, ST_HEADER);
}

/* The request head is complete and within limits: the exchange takes
 * over, or answers 503 past limits.max_connections. */
static void session_head_done(struct session *s) {
  s->blocked = true;
  if (s->over_limit)
    exchange_reply(s->ex, 503,
                   "service unavailable: too many connections (limits.max_connections)\n", true);
  else
    exchange_start(s->ex);
}

static int on_message_begin(llhttp_t *p) {
  struct session *s = p->data;
  if (s->ex) /* cannot happen: the parser pauses at every message end */
    return -1;
  struct exchange *ex = worker_exchange_get(session_worker(s));
  if (!ex)
    return -1;
  s->rx->head_bytes = 0;
  session_begin(s, ex);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, &ex->url, at, n, cur_in(p)) != 0) {
    if (ex)
      ex->head_overflow = true;
    return -1;
  }
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, &ex->cur_name, at, n, cur_in(p)) != 0) {
    if (ex)
      ex->head_overflow = true;
    return -1;
  }
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, &ex->cur_value, at, n, cur_in(p)) != 0) {
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
  ex->major = p->http_major;
  /* Upgrade needs HTTP/1.1 and "Connection: upgrade" (llhttp's flag);
   * CONNECT also sets it and gets 405. */
  ex->upgrade_req =
      p->upgrade && p->method != HTTP_CONNECT && p->http_major == 1 && p->http_minor >= 1;
  ex->req_trailers = ex->req_hdrs.n; /* fields pushed from now on are trailers */
  s->rx->chunk_ext_bytes = 0;
  chunked_check_begin(&s->rx->chunks, ex->req_chunked);
  http_head_mark_hop(&ex->req_hdrs);
  s->rx->pause_reason = PR_HEAD;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct session *s = p->data;
  if (!s->ex)
    return 0; /* body of a request already answered; connection will close */
  return exchange_request_body(s->ex, at, n, s->rx->in) == 0 ? 0 : -1;
}

/* Chunk extensions are dropped (bodies are re-chunked), but a long one is
 * refused rather than read forever. */
#define MAX_CHUNK_EXT_BYTES 1024u

static int on_chunk_extension(llhttp_t *p, const char *at, size_t n) {
  (void)at;
  struct session_rx *rx = (struct session_rx *)(void *)p;
  if (n > MAX_CHUNK_EXT_BYTES - rx->chunk_ext_bytes)
    return -1;
  rx->chunk_ext_bytes += (uint32_t)n;
  return 0;
}

static int on_chunk_complete(llhttp_t *p) {
  ((struct session_rx *)(void *)p)->chunk_ext_bytes = 0;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct session *s = p->data;
  if (!s->ex)
    return 0; /* the exchange was answered before its (empty) body ended */
  s->rx->pause_reason = PR_DONE;
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

/* --- the client address ------------------------------------------------ */

/* Decimal text of each byte value: up to three digits, then the count. */
#define OCT_LEN(v) ((v) >= 100 ? 3 : (v) >= 10 ? 2 : 1)
#define OCT_POW(v, i) (OCT_LEN(v) - 1 - (i) == 2 ? 100 : OCT_LEN(v) - 1 - (i) == 1 ? 10 : 1)
#define OCT_DIGIT(v, i) (char)((i) < OCT_LEN(v) ? '0' + (v) / OCT_POW(v, i) % 10 : 0)
#define OCT(v)                                                                                     \
  { OCT_DIGIT(v, 0), OCT_DIGIT(v, 1), OCT_DIGIT(v, 2), (char)OCT_LEN(v) }
#define OCT4(v) OCT(v), OCT((v) + 1), OCT((v) + 2), OCT((v) + 3)
#define OCT16(v) OCT4(v), OCT4((v) + 4), OCT4((v) + 8), OCT4((v) + 12)
#define OCT64(v) OCT16(v), OCT16((v) + 16), OCT16((v) + 32), OCT16((v) + 48)
static const char octet_text[256][4] = {OCT64(0), OCT64(64), OCT64(128), OCT64(192)};

/* A dotted quad by table (this runs whenever a keep-alive connection's
 * next request arrives), uv_inet_ntop for IPv6. */
void session_format_addr(char *out, const uint8_t addr[16], bool v6) {
  if (v6) {
    if (uv_inet_ntop(AF_INET6, addr, out, INET6_ADDRSTRLEN) != 0)
      strcpy(out, "-");
    return;
  }
  /* Each octet's 4 table bytes are copied whole; the count byte is then
   * overwritten by the dot (or the final NUL). */
  const char *t0 = octet_text[addr[0]], *t1 = octet_text[addr[1]];
  const char *t2 = octet_text[addr[2]], *t3 = octet_text[addr[3]];
  char *o = out;
  memcpy(o, t0, 4);
  o += t0[3];
  *o++ = '.';
  memcpy(o, t1, 4);
  o += t1[3];
  *o++ = '.';
  memcpy(o, t2, 4);
  o += t2[3];
  *o++ = '.';
  memcpy(o, t3, 4);
  o[(unsigned char)t3[3]] = '\0';
}

/* The client address as text, "-" when unknown. */
static void format_client_ip(const struct session *s, char *out) {
  if (!s->client_known) {
    out[0] = '-';
    out[1] = '\0';
    return;
  }
  session_format_addr(out, s->client_addr, s->client_v6);
}

/* Record a socket address as the client's. */
static void set_client_addr(struct session *s, const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
    memcpy(s->client_addr, &a->sin_addr, 4);
    s->client_port = ntohs(a->sin_port);
    s->client_v6 = false;
    s->client_known = true;
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(s->client_addr, &a->sin6_addr, 16);
    s->client_port = ntohs(a->sin6_port);
    s->client_v6 = true;
    s->client_known = true;
  }
}

/* The address as text for a log line: the rx's copy, or formatted into buf
 * (INET6_ADDRSTRLEN bytes) while none is attached. */
static const char *client_str(const struct session *s, char *buf) {
  if (s->rx)
    return s->rx->client_ip;
  format_client_ip(s, buf);
  return buf;
}

/* --- rx: read block and parser, attached while needed ------------------- */

/* Attach an rx (from the worker's free list, else malloc) with a fresh
 * parser; NULL on OOM. */
static struct session_rx *session_rx_attach(struct session *s) {
  struct worker *w = session_worker(s);
  struct session_rx *rx = w->free_rx;
  if (rx) {
    w->free_rx = rx->parser.data;
    w->nfree_rx--;
  } else {
    rx = malloc(sizeof(*rx));
    if (!rx)
      return NULL;
  }
  llhttp_init(&rx->parser, HTTP_REQUEST, &request_settings);
  /* Any single-digit version reaches request_check_version, which serves
   * 1.2..1.9 as 1.1 and answers 505 to the rest; llhttp 8.1 would refuse
   * all but 0.9, 1.0, 1.1 and 2.0 with 400. No other leniency. */
  rx->parser.lenient_flags |= LENIENT_VERSION;
  rx->parser.data = s;
  rx->in = NULL;
  rx->parse_off = 0;
  rx->head_bytes = 0;
  rx->chunk_ext_bytes = 0;
  rx->pause_reason = PR_NONE;
  rx->resume_pending = false;
  rx->fast_done = false;
  chunked_check_begin(&rx->chunks, false);
  http_head_scan_reset(&rx->scan);
  format_client_ip(s, rx->client_ip);
  s->rx = rx;
  return rx;
}

/* Release the rx (and its read block) to the worker's free list. */
static void session_rx_detach(struct session *s) {
  struct worker *w = session_worker(s);
  struct session_rx *rx = s->rx;
  s->rx = NULL;
  if (rx->in)
    iobuf_unref(rx->in);
  if (w->nfree_rx >= RX_FREE_MAX) {
    free(rx);
    return;
  }
  rx->parser.data = w->free_rx;
  w->free_rx = rx;
  w->nfree_rx++;
}

void session_rx_free_all(struct worker *w) {
  while (w->free_rx) {
    struct session_rx *rx = w->free_rx;
    w->free_rx = rx->parser.data;
    free(rx);
  }
  w->nfree_rx = 0;
}

/* --- deadline lists ------------------------------------------------------ */

/* The loop's cached time, as uv_now() returns it (uv_loop_t.time), read
 * without a call into libuv: session_timer runs several times per
 * request. */
static inline uint64_t loop_now(const struct worker *w) {
  return w->loop.time;
}

static inline struct session *link_session(struct session_link *n) {
  return container_of(n, struct session, tl);
}

static inline void tlist_unlink(struct session_link *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
}

static inline void tlist_link_after(struct session_link *at, struct session_link *n) {
  n->prev = at;
  n->next = at->next;
  at->next->prev = n;
  at->next = n;
}

/* Insert n (due set) into list head l in deadline order, when the tail is
 * due later than n: after a reload shortened the kind's duration. The
 * place is searched from both ends at once; equal deadlines keep their
 * arrival order. */
__attribute__((noinline)) static void tlist_insert_inside(struct session_link *l,
                                                          struct session_link *n) {
  uint64_t due = n->due;
  struct session_link *after = l->prev->prev; /* from the tail: n goes after it... */
  struct session_link *before = l->next;      /* from the head: ...or before it */
  /* The head has due 0 and the tail is due later than n: both walks stop. */
  while (after->due > due && before->due <= due) {
    after = after->prev;
    before = before->next;
  }
  if (after->due > due)
    after = before->prev;
  tlist_link_after(after, n);
}

/* Every session of a kind gets the same duration, so n normally goes at
 * the tail (the list head's due of 0 covers an empty list). */
static inline void tlist_insert(struct session_link *l, struct session_link *n) {
  if (l->prev->due <= n->due)
    tlist_link_after(l->prev, n);
  else
    tlist_insert_inside(l, n);
}

/* --- handles and closing ------------------------------------------------ */

static void session_free(struct session *s) {
  if (s->ex) {
    exchange_reset(s->ex);
    worker_exchange_put(session_worker(s), s->ex);
    s->ex = NULL;
  }
  if (s->rx)
    session_rx_detach(s);
  if (s->batch)
    wreq_put(s->batch);
  free(s);
}

static void on_handle_closed(uv_handle_t *h) {
  session_free((struct session *)(void *)h);
}

void session_close(struct session *s) {
  if (s->closing)
    return;
  struct worker *w = session_worker(s);
  s->closing = true;
  if (s->ex)
    exchange_abort(s->ex);
  if (s->reading)
    uv_read_stop((uv_stream_t *)&s->tcp);
  s->reading = false;
  tlist_unlink(&s->tl);
  s->timer_kind = ST_NONE;
  worker_conn_closed(w);
  uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
  if (w->stopping)
    session_timers_quiesce(w);
}

void session_close_all(struct worker *w) {
  for (int k = 0; k < ST_KINDS; k++) {
    struct session_link *l = &w->timers[k];
    while (l->next != l)
      session_close(link_session(l->next));
  }
}

void session_close_idle(struct worker *w) {
  for (int k = 0; k < ST_KINDS; k++) {
    struct session_link *l = &w->timers[k];
    for (struct session_link *n = l->next, *next; n != l; n = next) {
      next = n->next;
      if (!link_session(n)->ex) /* idle; a request already begun (even a partial head) may finish */
        session_close(link_session(n));
    }
  }
}

/* --- writes to the client ----------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  struct wreq *wr = container_of(req, struct wreq, req);
  struct session *s = req->data;
  s->queued -= (uint32_t)wr->bytes;
  s->writes_pending--;
  if (status >= 0)
    mc_add(&session_worker(s)->metrics.bytes_out, wr->bytes);
  wreq_put(wr);
  if (s->closing)
    return;
  if (status < 0) {
    char ip[INET6_ADDRSTRLEN];
    log_debug("client %s: write failed: %s", client_str(s, ip), uv_strerror(status));
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
  s->queued += (uint32_t)wr->bytes;
  s->writes_pending++;
  if (wreq_try_write(wr, (uv_stream_t *)&s->tcp)) {
    on_write(&wr->req, 0); /* all written at once: complete it here */
    return 0;
  }
  int r = uv_write(&wr->req, (uv_stream_t *)&s->tcp, wr->bufs, wr->nbufs, on_write);
  if (r < 0) {
    s->queued -= (uint32_t)wr->bytes;
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
    s->batch = wreq_get(&session_worker(s)->bufs);
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

/* Bytes wait unparsed in the read block. */
static inline bool rx_pending(const struct session *s) {
  return s->rx && s->rx->in && s->rx->parse_off < s->rx->in->len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct session *s = (struct session *)(void *)h;
  struct session_rx *rx = s->rx;
  if (!rx && !(rx = session_rx_attach(s))) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  if (rx->in && rx->parse_off == rx->in->len) {
    if (rx->in->refs == 1) {
      rx->in->len = 0;
    } else {
      iobuf_unref(rx->in);
      rx->in = NULL;
    }
    rx->parse_off = 0;
  }
  if (!rx->in)
    rx->in = iobuf_get(&session_worker(s)->bufs, IOBUF_SIZE);
  if (!rx->in || rx->in->len == rx->in->cap) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(rx->in->data + rx->in->len, rx->in->cap - rx->in->len);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct session *s = (struct session *)(void *)st;
  if (s->tunnel && s->ex) {
    if (nread > 0) {
      mc_add(&session_worker(s)->metrics.bytes_in, (uint64_t)nread);
      s->rx->in->len += (uint32_t)nread;
    }
    if (nread != 0)
      tunnel_client_read(s->ex, nread);
    return;
  }
  if (nread > 0) {
    mc_add(&session_worker(s)->metrics.bytes_in, (uint64_t)nread);
    s->rx->in->len += (uint32_t)nread;
    session_process(s);
    return;
  }
  if (nread == 0)
    return;
  if (nread != UV_EOF) {
    char ip[INET6_ADDRSTRLEN];
    log_debug("client %s: read failed: %s", client_str(s, ip), uv_strerror((int)nread));
    session_close(s);
    return;
  }
  /* EOF while the parser is held or bytes wait unparsed: act on it only
   * once those are handled, as if it were read then. */
  if (s->blocked || rx_pending(s)) {
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
  bool full = s->blocked && rx_pending(s) && s->rx->in->len == s->rx->in->cap;
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
  if (s->eof_pending && !s->closing && !s->blocked && !s->in_process && !rx_pending(s))
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
    ex = worker_exchange_get(session_worker(s));
    if (!ex) {
      session_close(s);
      return NULL;
    }
    exchange_init(ex, s, session_worker(s));
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
  const char *reason = llhttp_get_error_reason(&s->rx->parser);
  log_debug("client %s: bad request: %s (%s)", s->rx->client_ip, llhttp_errno_name(err),
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
  struct session_rx *rx = s->rx;
  if (!rx || !rx->in || rx->parse_off >= rx->in->len)
    return false;
  struct proxyproto_info pi;
  int r = proxyproto_parse(rx->in->data + rx->parse_off, rx->in->len - rx->parse_off, &pi);
  if (r == PP_AGAIN && rx->in->len < rx->in->cap)
    return false;
  if (r != PP_OK) {
    const struct cfg_listener *l = session_listener(s);
    mc_add(&session_worker(s)->metrics.proxy_protocol_errors, 1);
    log_debug("client %s on %s: %s: connection closed", rx->client_ip, l ? l->address : "-",
              proxyproto_strerror(r));
    session_close(s);
    return false;
  }
  rx->parse_off += pi.len;
  s->pp_pending = false;
  if (!pi.local) {
    set_client_addr(s, (const struct sockaddr *)&pi.src);
    format_client_ip(s, rx->client_ip);
  }
  return true;
}

/* A whole, plain request head without a body at the start of the unparsed
 * bytes: read by h1parse in one pass (no llhttp, no strict scan: it takes
 * only what both would accept and read the same way) and started exactly
 * as the llhttp callbacks would start it. The message is complete at the
 * end of its head; fast_done stands for llhttp's message-complete pause.
 * False, with nothing consumed, for anything else. */
static bool session_fast_head(struct session *s, struct session_rx *rx, const char *p, size_t n,
                              uint64_t max_head) {
  struct worker *w = session_worker(s);
  struct exchange *ex = worker_exchange_get(w);
  if (!ex)
    return false;
  struct hdr_list l = {ex->req_store, 0, EX_MAX_HEADERS};
  struct h1_head h;
  if (h1_parse_request(p, n, &l, &h) != H1_OK || (h.has_length && h.length > 0) ||
      h.len > max_head) {
    worker_exchange_put(w, ex);
    return false;
  }
  session_begin(s, ex);
  iobuf_ref(rx->in);
  ex->req_pin = rx->in;
  ex->url = h.target;
  ex->target_clean = true; /* h1parse took only HC_TARGET bytes */
  ex->req_hdrs.n = l.n;
  ex->minor = h.minor;
  ex->method = h.method;
  ex->client_keepalive = h1_keep_alive(&h);
  ex->req_has_length = h.has_length;
  ex->req_trailers = l.n;
  http_head_mark_hop(&ex->req_hdrs);
  rx->parse_off += h.len;
  rx->head_bytes = h.len;
  rx->fast_done = true;
  session_head_done(s);
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
  uint64_t max_head = session_worker(s)->cfg->limits.max_request_header_bytes;
  /* s->rx is read again on every pass: an exchange that ends inside one
   * (a reply sent at once) may release it. */
  struct session_rx *rx;
  while (!s->closing && !s->blocked && !s->close_after && (rx = s->rx) != NULL && rx->in &&
         (rx->parse_off < rx->in->len || rx->resume_pending || rx->fast_done)) {
    if (rx->fast_done) { /* a fast-path request, complete with its head */
      rx->fast_done = false;
      if (s->ex) {
        s->blocked = true;
        exchange_request_done(s->ex);
      }
      continue;
    }
    const char *start = rx->in->data + rx->parse_off;
    size_t avail = rx->in->len - rx->parse_off;
    if (!s->ex && avail > 0 && session_fast_head(s, rx, start, avail, max_head))
      continue;
    bool in_head = !s->ex || s->ex->state == EX_HEAD;
    if (in_head && avail > 0) {
      /* What llhttp lets through: bare LF, obs-fold, space before ':'. */
      size_t hend = 0;
      int sc = http_head_scan(&rx->scan, start, avail, &hend);
      if (sc < 0) {
        log_debug("client %s: bad request: %s", rx->client_ip, http_head_scan_strerror(sc));
        session_reject(s, 400);
        continue;
      }
    }
    /* What llhttp 8.1 lets through in chunk framing: chunked.c checks the
     * body bytes first, and llhttp must end the message exactly where it
     * does (never earlier, never later). */
    int ck = 0;
    size_t feed = avail;
    bool checked = !in_head && rx->chunks.active && avail > 0;
    if (checked && (ck = chunked_check(&rx->chunks, start, avail, &feed)) < 0) {
      llhttp_set_error_reason(&rx->parser, chunked_strerror(ck));
      session_parse_error(s, HPE_INVALID_CHUNK_SIZE);
      continue;
    }
    rx->resume_pending = false;
    rx->pause_reason = PR_NONE;
    llhttp_errno_t err = llhttp_execute(&rx->parser, start, feed);
    size_t used = feed;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
      used = (size_t)(llhttp_get_error_pos(&rx->parser) - start);
    bool ended = err == HPE_PAUSED_UPGRADE || (err == HPE_PAUSED && rx->pause_reason == PR_DONE);
    if (checked && (ck == CHUNKED_DONE) != (ended && used == feed)) {
      llhttp_set_error_reason(&rx->parser, "chunked body framing read two ways");
      session_parse_error(s, HPE_INVALID_CHUNK_SIZE);
      continue;
    }
    rx->parse_off += used;
    if (in_head)
      rx->head_bytes += used;

    if (err == HPE_OK) {
      if (s->ex && s->ex->state == EX_HEAD && rx->head_bytes > max_head) {
        s->blocked = true;
        exchange_reply(s->ex, head_limit_status(s->ex, max_head), NULL, true);
      }
    } else if (err == HPE_PAUSED) {
      llhttp_resume(&rx->parser);
      rx->resume_pending = true;
      uint8_t why = rx->pause_reason;
      if (why == PR_HEAD) {
        if (rx->head_bytes > max_head) {
          s->blocked = true;
          exchange_reply(s->ex, head_limit_status(s->ex, max_head), NULL, true);
        } else {
          session_head_done(s);
        }
      } else if (why == PR_DONE) {
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

/* True when the rx can go back to the free list: every byte read was
 * parsed and a fresh parser (llhttp_init on the next attach) behaves as
 * this one would on the next bytes. The exchange ended with keep-alive, so
 * the parser is
 *  - paused in on_message_complete and resumed: its next execute first
 *    runs llhttp's after-message step (flags and content length cleared;
 *    on_reset, which is not set), which leads to the start state when
 *    llhttp_should_keep_alive holds, else to its closed state (a
 *    "Connection: close" in chunked trailers) where it must stay;
 *  - paused in on_headers_complete of a request with no body (answered at
 *    once): on_message_complete follows without input and returns at once
 *    (no exchange), then the same after-message step;
 *  - or back in the start state already (at most leading CRLFs seen),
 *    where nothing of the previous message is used again. */
static bool rx_releasable(const struct session_rx *rx) {
  if (rx->in && rx->parse_off != rx->in->len)
    return false;
  return !rx->resume_pending || llhttp_should_keep_alive(&rx->parser);
}

void session_exchange_done(struct session *s, bool keep_alive) {
  struct exchange *ex = s->ex;
  struct worker *w = session_worker(s);
  session_flush(s);
  s->ex = NULL;
  if (ex) {
    exchange_reset(ex);
    worker_exchange_put(w, ex);
  }
  if (s->closing)
    return;
  if (!keep_alive || s->peer_eof || s->close_after || w->stopping) {
    if (s->rx)
      http_head_scan_reset(&s->rx->scan);
    s->close_after = true;
    s->blocked = true;
    session_timer(s, ST_NONE);
    session_update_reading(s);
    if (s->writes_pending == 0)
      session_close(s);
    return;
  }
  s->blocked = false;
  if (s->rx) {
    if (rx_releasable(s->rx)) {
      session_rx_detach(s); /* idle connections hold no read block and no parser */
    } else {
      http_head_scan_reset(&s->rx->scan); /* the next head starts fresh */
      s->rx->head_bytes = 0;
    }
  }
  session_timer(s, ST_IDLE);
  if (!s->in_process)
    session_process(s);
}

/* --- timers ------------------------------------------------------------- */

/* s's deadline passed: it moves to the ST_NONE list and what its kind
 * guards is acted on. */
static void session_expire(struct worker *w, struct session *s) {
  enum session_timer kind = (enum session_timer)s->timer_kind;
  tlist_unlink(&s->tl);
  s->timer_kind = ST_NONE;
  tlist_link_after(w->timers[ST_NONE].prev, &s->tl);
  switch (kind) {
  case ST_NONE:
  case ST_KINDS:
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

static void on_session_timer(uv_timer_t *t);

/* Arm the worker's timer for due (ms from now), earlier than it was. */
__attribute__((noinline)) static void timers_arm(struct worker *w, uint64_t due, uint64_t ms) {
  w->timer_fire = due;
  uv_timer_start(&w->session_timer, on_session_timer, ms, 0);
}

/* Arm the worker's timer for the earliest deadline when it is not already
 * due at or before it. */
static void timers_rearm(struct worker *w, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (int k = ST_NONE + 1; k < ST_KINDS; k++) {
    const struct session_link *l = &w->timers[k];
    if (l->next != l && l->next->due < next)
      next = l->next->due;
  }
  if (next < w->timer_fire)
    timers_arm(w, next, next > now ? next - now : 0);
}

static void on_session_timer(uv_timer_t *t) {
  struct worker *w = container_of(t, struct worker, session_timer);
  uint64_t now = uv_now(&w->loop);
  w->timer_fire = UINT64_MAX;
  /* Handlers only ever add deadlines at least 1 ms ahead (every session
   * timeout is >= 1ms), so each list drains. */
  for (int k = ST_NONE + 1; k < ST_KINDS; k++) {
    struct session_link *l = &w->timers[k];
    while (l->next != l && l->next->due <= now)
      session_expire(w, link_session(l->next));
  }
  timers_rearm(w, now);
}

void session_timers_init(struct worker *w) {
  for (int k = 0; k < ST_KINDS; k++)
    w->timers[k] = (struct session_link){&w->timers[k], &w->timers[k], 0};
  w->timer_fire = UINT64_MAX;
  uv_timer_init(&w->loop, &w->session_timer);
}

void session_timers_configure(struct worker *w) {
  const struct config *cfg = w->cfg;
  w->timer_ms[ST_NONE] = 0;
  w->timer_ms[ST_HEADER] = cfg->timeouts.client_header_ms;
  w->timer_ms[ST_IDLE] = cfg->timeouts.client_idle_ms;
  w->timer_ms[ST_CONNECT] = cfg->timeouts.upstream_connect_ms;
  w->timer_ms[ST_RESPONSE] = cfg->timeouts.upstream_response_ms;
  w->timer_ms[ST_UPSTREAM_IDLE] = cfg->timeouts.upstream_idle_ms;
  w->timer_ms[ST_BODY] = cfg->timeouts.client_idle_ms;
  w->timer_ms[ST_CLIENT_STALL] = cfg->timeouts.client_idle_ms;
  w->timer_ms[ST_TUNNEL] = cfg->timeouts.client_idle_ms;
}

void session_timers_close(struct worker *w) {
  if (!uv_is_closing((uv_handle_t *)&w->session_timer))
    uv_close((uv_handle_t *)&w->session_timer, NULL);
}

void session_timers_quiesce(struct worker *w) {
  for (int k = ST_NONE + 1; k < ST_KINDS; k++)
    if (w->timers[k].next != &w->timers[k])
      return;
  uv_timer_stop(&w->session_timer);
  w->timer_fire = UINT64_MAX;
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
  struct worker *w = session_worker(s);
  struct session_link *l = &w->timers[kind];
  tlist_unlink(&s->tl);
  s->timer_kind = (uint8_t)kind;
  if (kind == ST_NONE) { /* an armed timer fires and finds nothing to do */
    tlist_link_after(l->prev, &s->tl);
    return;
  }
  /* Lazy re-arming: a worker timer already due no later than the new
   * deadline stays armed, and on_session_timer re-arms it for the earliest
   * deadline left. Requests move through several deadlines each; this
   * keeps them off the timer heap. */
  uint64_t ms = w->timer_ms[kind];
  uint64_t due = loop_now(w) + ms;
  s->tl.due = due;
  tlist_insert(l, &s->tl);
  if (due < w->timer_fire)
    timers_arm(w, due, ms);
}

/* --- accept ------------------------------------------------------------- */

void session_accept(struct worker_listener *l) {
  struct worker *w = l->w;
  struct session *s = calloc(1, sizeof(*s));
  if (!s) {
    log_error("out of memory accepting a connection");
    return;
  }
  uv_tcp_init(&w->loop, &s->tcp);
  s->tcp.data = (void *)(uintptr_t)l->cfg;
  if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&s->tcp) != 0) {
    s->closing = true;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0)
    set_client_addr(s, (const struct sockaddr *)&ss);
  s->timer_kind = ST_NONE;
  tlist_link_after(w->timers[ST_NONE].prev, &s->tl);
  s->over_limit = !worker_conn_opened(w);
  s->pp_pending = l->cfg->proxy_protocol;
  session_timer(s, ST_HEADER);
  session_update_reading(s);
}
