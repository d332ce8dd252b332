/* session: one client connection (its stream, request parser, order).
 *
 * Owns: the client's stream (socket, read block, writes: src/stream.c),
 * its rx (request parser, per-message parse state, address text; attached
 * only while bytes are buffered or an exchange runs), the current
 * exchange (one at a time; pipelined requests wait unparsed in the read
 * block), what each of its deadlines means (the lists are
 * src/deadline.c's), and the worker's done list, from which finished
 * exchanges are freed in the loop's check phase. Must not touch an
 * upstream: it talks to the exchange, which is the only module that
 * knows both sides.
 *
 * The llhttp callbacks are src/reqparse.c's; they pause at the end of the
 * head and of the message, and everything else happens in
 * session_process(), outside llhttp_execute(). */
#include "ferry/session.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/addrtext.h"
#include "ferry/chunked.h"
#include "ferry/exchange.h"
#include "ferry/h1parse.h"
#include "ferry/log.h"
#include "ferry/proxyproto.h"
#include "ferry/reqparse.h"
#include "ferry/tls.h"
#include "ferry/wctx.h"

/* Free session_rx structs kept per worker; more are freed. */
#define RX_FREE_MAX 256u

_Static_assert(offsetof(struct worker, loop) == 0, "session_worker() needs the loop first");
_Static_assert(offsetof(struct session, st) == 0, "the stream is the session's first member");

static void session_process(struct session *s);
static void session_update_reading(struct session *s);
static void session_eof(struct session *s);
static void session_release_hold(struct session *s);
static void on_done_check(uv_check_t *c);
static void done_unlink(struct worker *w, struct exchange *ex);

/* --- the client address ------------------------------------------------ */

/* The client address as text, "-" when unknown. */
static void format_client_ip(const struct session *s, char *out) {
  if (!s->client_known) {
    out[0] = '-';
    out[1] = '\0';
    return;
  }
  addrtext_format(out, s->client_addr, s->client_v6);
}

/* Record a socket address as the client's. */
static void set_client_addr(struct session *s, const struct sockaddr *sa) {
  if (addrtext_from_sockaddr(sa, s->client_addr, &s->client_port, &s->client_v6))
    s->client_known = true;
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
  llhttp_init(&rx->parser, HTTP_REQUEST, &reqparse_settings);
  /* Any single-digit version reaches request_check_version, which serves
   * 1.2..1.9 as 1.1 and answers 505 to the rest; llhttp 8.1 would refuse
   * all but 0.9, 1.0, 1.1 and 2.0 with 400. No other leniency. */
  rx->parser.lenient_flags |= LENIENT_VERSION;
  rx->parser.data = s;
  rx->head_bytes = 0;
  rx->chunk_ext_bytes = 0;
  rx->pause_reason = REQPARSE_NONE;
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

static inline struct session *link_session(struct deadline_link *n) {
  return container_of(n, struct session, tl);
}

/* --- handles and closing ------------------------------------------------ */

static inline struct session *stream_session(struct stream *st) {
  return container_of(st, struct session, st);
}

/* A session on a TLS listener: its TLS state sits right after it, in the
 * same allocation (plain sessions do not pay for it). */
struct tls_session {
  struct session s;
  struct tls_conn tc;
  struct tls_info info; /* for the observers, taken once the handshake completed */
  bool info_taken;
};

const struct tls_info *session_tls_info(const struct session *s) {
  if (s->st.cls->tr != &transport_tls)
    return NULL;
  const struct tls_session *ts = container_of(s, const struct tls_session, s);
  return ts->info_taken ? &ts->info : NULL;
}

/* The stream's handle closed: nothing points at the session any more. */
static void on_stream_closed(struct stream *st) {
  struct session *s = stream_session(st);
  if (s->ex) {
    exchange_reset(s->ex);
    exchange_free(session_worker(s), s->ex);
    s->ex = NULL;
  }
  if (s->rx)
    session_rx_detach(s);
  if (st->cls->tr == &transport_tls)
    tls_info_release(&container_of(s, struct tls_session, s)->info);
  free(s);
}

void session_close(struct session *s) {
  if (s->closing)
    return;
  struct worker *w = session_worker(s);
  s->closing = true;
  if (s->ex && s->ex->done_pending)
    done_unlink(w, s->ex);
  if (s->ex)
    exchange_abort(s->ex);
  deadline_remove(&s->tl);
  s->timer_kind = ST_NONE;
  wctx_conn_closed(w);
  stream_close(&s->st);
  if (w->stopping)
    deadlines_quiesce(&w->dl);
}

void session_close_all(struct worker *w) {
  for (int k = 0; k < ST_KINDS; k++) {
    struct deadline_link *l = &w->dl.lists[k];
    while (l->next != l)
      session_close(link_session(l->next));
  }
}

/* Only keep-alive connections between requests (ST_IDLE): a request
 * already begun (even a partial head) may finish, and so may a connection
 * just accepted whose first request has not been read yet (the client sent
 * it to a listening socket; closing it would fail a request that a drain
 * or an upgrade promises to serve). */
void session_close_idle(struct worker *w) {
  struct deadline_link *l = &w->dl.lists[ST_IDLE];
  for (struct deadline_link *n = l->next, *next; n != l; n = next) {
    next = n->next;
    if (!link_session(n)->ex)
      session_close(link_session(n));
  }
}

/* --- writes to the client ----------------------------------------------- */

static void on_stream_written(struct stream *st, int status, size_t bytes) {
  struct session *s = stream_session(st);
  if (status < 0) {
    char ip[INET6_ADDRSTRLEN];
    log_debug("client %s: write failed: %s", client_str(s, ip), uv_strerror(status));
    session_close(s);
    return;
  }
  mc_add(&session_worker(s)->metrics.bytes_out, bytes);
  if (s->timer_kind == ST_CLIENT_STALL)
    session_timer(s, ST_CLIENT_STALL); /* the client is reading: progress */
  if (s->close_after && !s->ex && st->writes_pending == 0)
    session_close(s);
}

/* The client's queue passed over STREAM_HIGH, or back under STREAM_LOW:
 * inside a request, the exchange's flow control acts on it; between
 * requests, the session holds the connection (session_queue_full). */
static void on_stream_watermark(struct stream *st, bool high) {
  struct session *s = stream_session(st);
  if (s->ex)
    exchange_client_watermark(s->ex, high);
  else if (!high && s->q_held)
    session_release_hold(s);
}

/* --- reading ------------------------------------------------------------ */

/* The bound across pipelined requests (limits the memory one connection
 * can make ferry hold): between requests, a client queue over
 * STREAM_HIGH (counted as the memory its writes pin, see struct wreq)
 * starts no new request. Inside a request the exchange applies the same
 * watermarks to the upstream's reads. */
static inline bool session_queue_full(const struct session *s) {
  return !s->ex && s->st.high;
}

/* Bytes wait unparsed in the read block. */
static inline bool rx_pending(const struct session *s) {
  return stream_pending(&s->st);
}

static void on_stream_read(struct stream *st, ssize_t nread) {
  struct session *s = stream_session(st);
  if (s->tunnel && s->ex) {
    if (nread > 0)
      mc_add(&session_worker(s)->metrics.bytes_in, (uint64_t)nread);
    else if (nread == UV_EOF)
      s->peer_eof = true;
    exchange_client_tunnel_read(s->ex, nread);
    return;
  }
  if (nread > 0) {
    mc_add(&session_worker(s)->metrics.bytes_in, (uint64_t)nread);
    if (!s->rx && !session_rx_attach(s)) {
      session_close(s);
      return;
    }
    session_process(s);
    return;
  }
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

static const struct stream_class session_stream_class = {
    .tr = &transport_tcp,
    .read = on_stream_read,
    .written = on_stream_written,
    .watermark = on_stream_watermark,
    .closed = on_stream_closed,
};

static void on_stream_handshake(struct stream *st, bool ok) {
  struct session *s = stream_session(st);
  struct listener_counters *ctr = session_listener(s)->counters;
  if (ctr)
    mc_add(ok ? &ctr->tls_ok : &ctr->tls_failed, 1);
  if (ok) {
    struct tls_session *ts = container_of(s, struct tls_session, s);
    tls_info_take(&ts->info, &ts->tc);
    ts->info_taken = true;
  } else {
    char ip[INET6_ADDRSTRLEN];
    log_debug("client %s: TLS handshake failed on %s: connection closed", client_str(s, ip),
              session_listener(s)->address);
  }
}

static const struct stream_class session_tls_class = {
    .tr = &transport_tls,
    .handshake = on_stream_handshake,
    .tr_off = offsetof(struct tls_session, tc),
    .read = on_stream_read,
    .written = on_stream_written,
    .watermark = on_stream_watermark,
    .closed = on_stream_closed,
};

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
  bool full = s->blocked && rx_pending(s) && s->st.in->len == s->st.in->cap;
  bool want =
      !s->closing && !s->q_held && !s->peer_eof && !s->close_after && !s->eof_pending && !full;
  stream_hold(&s->st, STREAM_HOLD_OWNER, !want);
  /* The parser caught up with a held EOF. */
  if (s->eof_pending && !s->closing && !s->blocked && !s->in_process && !rx_pending(s))
    session_eof(s);
}

/* The exchange a rejected request is answered on: the current one, or a
 * fresh one when the message had not begun (e.g. garbage before a request
 * line). Stops further parsing. NULL after closing the session when no
 * exchange can be had. */
static struct exchange *session_error_exchange(struct session *s) {
  struct exchange *ex = s->ex;
  if (!ex) {
    ex = exchange_new(session_worker(s));
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
  struct iobuf *in = s->st.in;
  if (!rx || !rx_pending(s))
    return false;
  struct proxyproto_info pi;
  int r = proxyproto_parse(in->data + s->st.in_off, in->len - s->st.in_off, &pi);
  if (r == PP_AGAIN && in->len < in->cap)
    return false;
  if (r != PP_OK) {
    const struct cfg_listener *l = session_listener(s);
    mc_add(&session_worker(s)->metrics.proxy_protocol_errors, 1);
    log_debug("client %s on %s: %s: connection closed", rx->client_ip, l ? l->address : "-",
              proxyproto_strerror(r));
    session_close(s);
    return false;
  }
  s->st.in_off += (uint32_t)pi.len;
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
  struct exchange *ex = exchange_new(w);
  if (!ex)
    return false;
  struct hdr_list l = {.v = ex->req_store, .cap = EX_MAX_HEADERS};
  struct h1_head h;
  if (h1_parse_request(p, n, &l, &h) != H1_OK || (h.has_length && h.length > 0) ||
      h.len > max_head) {
    exchange_free(w, ex);
    return false;
  }
  reqparse_begin(s, ex);
  iobuf_ref(s->st.in);
  ex->req_pin = s->st.in;
  ex->url = h.target;
  ex->target_clean = true; /* h1parse took only HC_TARGET bytes */
  ex->req_hdrs = l;        /* the same storage, with its token summary */
  ex->minor = h.minor;
  ex->method = h.method;
  ex->major = 1;
  ex->method_known = ex->version_known = true;
  ex->client_keepalive = h1_keep_alive(&h);
  ex->req_has_length = h.has_length;
  ex->req_trailers = l.n;
  http_head_mark_hop(&ex->req_hdrs);
  s->st.in_off += (uint32_t)h.len;
  rx->head_bytes = h.len;
  rx->fast_done = true;
  reqparse_head_done(s);
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
  while (!s->closing && !s->blocked && !s->close_after && !session_queue_full(s) &&
         (rx = s->rx) != NULL && s->st.in &&
         (rx_pending(s) || rx->resume_pending || rx->fast_done)) {
    if (rx->fast_done) { /* a fast-path request, complete with its head */
      rx->fast_done = false;
      if (s->ex) {
        s->blocked = true;
        exchange_request_done(s->ex);
      }
      continue;
    }
    const char *start = s->st.in->data + s->st.in_off;
    size_t avail = s->st.in->len - s->st.in_off;
    if (!s->ex && avail > 0 && session_fast_head(s, rx, start, avail, max_head))
      continue;
    bool in_head = !s->ex || s->ex->state == EX_HEAD;
    if (in_head && avail > 0) {
      /* What llhttp lets through: bare LF, obs-fold, space before ':'. */
      size_t hend = 0;
      int sc = http_head_scan(&rx->scan, start, avail, &hend);
      if (sc < 0) {
        log_debug("client %s: bad request: %s", rx->client_ip, http_head_scan_strerror(sc));
        /* llhttp reads the bytes before the wrong one (no head can end
         * there), so the log shows the request line that was sent. */
        if (hend > 0)
          (void)llhttp_execute(&rx->parser, start, hend);
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
    rx->pause_reason = REQPARSE_NONE;
    llhttp_errno_t err = llhttp_execute(&rx->parser, start, feed);
    size_t used = feed;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
      used = (size_t)(llhttp_get_error_pos(&rx->parser) - start);
    bool ended =
        err == HPE_PAUSED_UPGRADE || (err == HPE_PAUSED && rx->pause_reason == REQPARSE_DONE);
    if (checked && (ck == CHUNKED_DONE) != (ended && used == feed)) {
      llhttp_set_error_reason(&rx->parser, "chunked body framing read two ways");
      session_parse_error(s, HPE_INVALID_CHUNK_SIZE);
      continue;
    }
    s->st.in_off += (uint32_t)used;
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
      if (why == REQPARSE_HEAD) {
        if (rx->head_bytes > max_head) {
          s->blocked = true;
          exchange_reply(s->ex, head_limit_status(s->ex, max_head), NULL, true);
        } else {
          reqparse_head_done(s);
        }
      } else if (why == REQPARSE_DONE) {
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
  }
  if (!s->closing && s->ex)
    exchange_request_flush(s->ex); /* what this read produced leaves in one write */
  s->in_process = false;
  if (!s->closing && !s->q_held && session_queue_full(s)) {
    /* Responses the client has not read fill its queue: no next request
     * starts and nothing more is read until it drains below BP_LOW (or
     * client_idle passes without progress, which closes it). */
    s->q_held = true;
    session_timer(s, ST_CLIENT_STALL);
  }
  if (!s->closing)
    session_update_reading(s);
}

/* The client read enough of its queue: pipelined requests go on. */
static void session_release_hold(struct session *s) {
  s->q_held = false;
  if (s->ex || s->closing)
    return;
  session_timer(s, ST_IDLE);
  if (!s->in_process)
    session_process(s);
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
static bool rx_releasable(const struct session *s) {
  if (rx_pending(s))
    return false;
  return !s->rx->resume_pending || llhttp_should_keep_alive(&s->rx->parser);
}

/* The exchange is over (its response is queued): what it leaves behind
 * is finished from the loop's check phase, never here, because this runs
 * inside the callbacks of the exchange's own work (a response parsed
 * from an upstream read, a reply sent from the request parser, a write
 * completing). Only the response bytes go out now. */
void session_exchange_done(struct session *s, bool keep_alive) {
  struct exchange *ex = s->ex;
  struct worker *w = session_worker(s);
  stream_flush(&s->st);
  if (!ex || ex->done_pending)
    return;
  s->blocked = true;
  ex->done_pending = true;
  ex->done_keep = keep_alive;
  ex->done_next = w->done_list;
  w->done_list = ex;
  if (!w->done_armed) {
    w->done_armed = true;
    uv_check_start(&w->done_check, on_done_check);
  }
}

/* Take ex off the worker's list of finished exchanges (its session closes
 * before the check phase got to it). */
static void done_unlink(struct worker *w, struct exchange *ex) {
  for (struct exchange **pp = &w->done_list; *pp; pp = &(*pp)->done_next)
    if (*pp == ex) {
      *pp = ex->done_next;
      break;
    }
  ex->done_pending = false;
}

/* From the check phase: free the finished exchange, then close the
 * connection or let it go idle and start the next pipelined request. */
static void session_finish_exchange(struct session *s, struct exchange *ex) {
  struct worker *w = session_worker(s);
  bool keep_alive = ex->done_keep;
  s->ex = NULL;
  exchange_reset(ex);
  exchange_free(w, ex);
  if (s->closing)
    return;
  /* While stopping, a response whose head promised keep-alive (it went out
   * before the stop) leaves the connection idle rather than closing it
   * under the client's next request; that request is answered with
   * Connection: close, and the drain closes idle connections when its
   * grace ends (w->drain_idle_closed: from then on, at once). */
  if (!keep_alive || s->peer_eof || s->close_after || (w->stopping && w->drain_idle_closed)) {
    if (s->rx)
      http_head_scan_reset(&s->rx->scan);
    s->close_after = true;
    s->blocked = true;
    session_timer(s, ST_NONE);
    session_update_reading(s);
    if (s->st.writes_pending == 0)
      session_close(s);
    return;
  }
  s->blocked = false;
  if (s->rx) {
    if (rx_releasable(s)) {
      session_rx_detach(s); /* idle connections hold no read block and no parser */
      stream_release_in(&s->st);
    } else {
      http_head_scan_reset(&s->rx->scan); /* the next head starts fresh */
      s->rx->head_bytes = 0;
    }
  }
  session_timer(s, ST_IDLE);
  session_process(s);
}

/* Under load the handle stays armed from one loop turn to the next; it
 * stops after a turn that finished nothing. */
static void on_done_check(uv_check_t *c) {
  struct worker *w = container_of(c, struct worker, done_check);
  if (!w->done_list) {
    uv_check_stop(c);
    w->done_armed = false;
    return;
  }
  /* Exchanges finished meanwhile (a pipelined request answered at once)
   * join the list and are taken in this same pass. */
  while (w->done_list) {
    struct exchange *ex = w->done_list;
    w->done_list = ex->done_next;
    ex->done_pending = false;
    session_finish_exchange(ex->s, ex);
  }
}

/* --- timers ------------------------------------------------------------- */

/* s's deadline of kind passed (the deadline module already moved it to
 * the no-deadline list): act on what the kind guards. */
static void session_expire(struct deadlines *d, struct deadline_link *l, unsigned k) {
  (void)d;
  struct session *s = link_session(l);
  enum session_timer kind = (enum session_timer)k;
  s->timer_kind = ST_NONE;
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
    if (s->ex)
      exchange_timeout(s->ex, (int)kind);
    else
      session_close(s);
    break;
  }
}

void session_worker_init(struct worker *w) {
  deadlines_init(&w->dl, &w->loop, ST_KINDS, session_expire);
  w->done_list = NULL;
  w->done_armed = false;
  uv_check_init(&w->loop, &w->done_check);
}

void session_worker_close(struct worker *w) {
  deadlines_close(&w->dl);
  uv_close((uv_handle_t *)&w->done_check, NULL);
}

void session_tunnel_begin(struct session *s) {
  s->tunnel = true;
  s->blocked = true; /* the parser is done with this connection */
  session_timer(s, ST_TUNNEL);
  if (s->eof_pending && s->ex) {
    /* The client closed while its upgrade request waited for the 101: what
     * it sent went upstream already; end the tunnel the same way. */
    s->eof_pending = false;
    s->peer_eof = true;
    exchange_client_tunnel_read(s->ex, UV_EOF);
    return;
  }
  session_update_reading(s);
}

void session_tunnel_end(struct session *s) {
  s->tunnel = false;
  session_exchange_done(s, false);
}

/* --- accept ------------------------------------------------------------- */

void session_accept(struct worker *w, const struct cfg_listener *lc, int fd) {
  bool tls = lc->tls_srv != NULL;
  struct session *s = calloc(1, tls ? sizeof(struct tls_session) : sizeof(*s));
  if (!s) {
    log_error("out of memory accepting a connection on %s: connection closed", lc->address);
    close(fd);
    wctx_conn_closed(w);
    return;
  }
  stream_init(&s->st, &w->loop, tls ? &session_tls_class : &session_stream_class);
  s->st.tcp.data = (void *)(uintptr_t)lc;
  bool tls_failed =
      tls && tls_conn_accept(&((struct tls_session *)(void *)s)->tc, lc->tls_srv, &w->loop) != 0;
  if (tls_failed)
    log_error("out of memory starting TLS on %s: connection closed", lc->address);
  s->timer_kind = ST_NONE;
  deadline_add(&w->dl, &s->tl);
  if (tls_failed || stream_open(&s->st, fd) != 0) {
    close(fd);
    session_close(s);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&s->st.tcp, (struct sockaddr *)&ss, &len) == 0)
    set_client_addr(s, (const struct sockaddr *)&ss);
  s->pp_pending = lc->proxy_protocol;
  session_timer(s, ST_HEADER);
  session_update_reading(s);
}
