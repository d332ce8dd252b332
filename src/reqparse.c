/* reqparse: the llhttp callbacks that read a client's request into its
 * exchange.
 *
 * Owns: what each callback does with the bytes llhttp hands it: head
 * pieces kept as slices in the exchange's arena (copied only when split
 * across reads), header fields pushed onto the request's list, the
 * framing llhttp saw, body slices handed to the exchange, chunk extension
 * bounds; and the start of a request on a session (its header deadline)
 * and the hand-over of a complete head to the exchange. The callbacks
 * pause llhttp at the end of the head and of the message and leave every
 * decision to session_process() (src/session.c), outside
 * llhttp_execute(). Must not touch the socket, the stream or the
 * session's deadline lists beyond arming the header deadline, and never
 * an upstream. */
#include "ferry/reqparse.h"

#include <stddef.h>

#include "ferry/chunked.h"
#include "ferry/exchange.h"
#include "ferry/http_head.h"
#include "ferry/session.h"
#include "ferry/wctx.h"

_Static_assert(offsetof(struct session_rx, parser) == 0, "llhttp callbacks cast the parser");

static struct exchange *cur_ex(llhttp_t *p) {
  struct session *s = p->data;
  return s->ex;
}

/* The read block of the rx whose parser p is. */
static struct iobuf *cur_in(llhttp_t *p) {
  return ((struct session *)p->data)->st.in;
}

/* A request begins on ex (from exchange_new): the header deadline
 * runs until its head is complete. */
void reqparse_begin(struct session *s, struct exchange *ex) {
  exchange_init(ex, s, session_worker(s)); /* keeps req_store */
  s->ex = ex;
  if (s->timer_kind != ST_HEADER)
    session_timer(s, ST_HEADER);
}

/* The request head is complete and within limits: the exchange takes
 * over, or answers 503 past limits.max_connections. */
void reqparse_head_done(struct session *s) {
  s->blocked = true;
  s->ex->req_head_bytes = s->rx->head_bytes;
  exchange_start(s->ex);
}

static int on_message_begin(llhttp_t *p) {
  struct session *s = p->data;
  if (s->ex) /* cannot happen: the parser pauses at every message end */
    return -1;
  struct exchange *ex = exchange_new(session_worker(s));
  if (!ex)
    return -1;
  s->rx->head_bytes = 0;
  reqparse_begin(s, ex);
  return 0;
}

/* Keep (at, n) as the slice at `field` of the current exchange (a piece
 * of the read block, or copied when split); over the head's bound: fail. */
static int keep_slice(llhttp_t *p, size_t field, const char *at, size_t n) {
  struct exchange *ex = cur_ex(p);
  struct slice *dst = ex ? (struct slice *)(void *)((char *)ex + field) : NULL;
  if (!ex || arena_slice(&ex->arena, &ex->req_pin, dst, at, n, cur_in(p)) != 0) {
    if (ex)
      ex->head_overflow = true;
    return -1;
  }
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  return keep_slice(p, offsetof(struct exchange, url), at, n);
}

/* The method and the version are recorded as soon as they are read, so a
 * head rejected later is logged with what it really sent. */
static int on_method_complete(llhttp_t *p) {
  struct exchange *ex = cur_ex(p);
  if (ex) {
    ex->method = p->method;
    ex->method_known = true;
  }
  return 0;
}

static int on_version_complete(llhttp_t *p) {
  struct exchange *ex = cur_ex(p);
  if (ex) {
    ex->major = p->http_major;
    ex->minor = p->http_minor;
    ex->version_known = true;
  }
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  return keep_slice(p, offsetof(struct exchange, cur_name), at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  return keep_slice(p, offsetof(struct exchange, cur_value), at, n);
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
  ex->major = p->http_major;
  ex->method_known = ex->version_known = true;
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
  s->rx->pause_reason = REQPARSE_HEAD;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct session *s = p->data;
  if (!s->ex)
    return 0; /* body of a request already answered; connection will close */
  return exchange_request_body(s->ex, at, n, s->st.in) == 0 ? 0 : -1;
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
  s->rx->pause_reason = REQPARSE_DONE;
  return HPE_PAUSED;
}

const llhttp_settings_t reqparse_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_method_complete = on_method_complete,
    .on_version_complete = on_version_complete,
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
