/* upclient: the HTTP/1 client of one upstream connection (see
 * upclient.h).
 *
 * Owns the connection's stream and response parser and decides reuse; it
 * reports through its holder's callbacks and must not include exchange,
 * session or tunnel headers. The parser callbacks only record slices and
 * call the holder's head/body/done callbacks; nothing is freed while
 * llhttp runs (a holder that ends the request does so from read_done or
 * error, the last thing a read does). */
#include "ferry/upclient.h"

#include <string.h>

#include "ferry/chunked.h"
#include "ferry/h1parse.h"
#include "ferry/log.h"
#include "ferry/slice.h"

static inline struct upclient *stream_uc(struct stream *st) {
  return container_of(st, struct upclient, st);
}

/* --- response parser glue ----------------------------------------------- */

static inline struct upclient *parser_uc(llhttp_t *p) {
  return p->data;
}

static int keep(struct upclient *uc, struct slice *s, const char *at, size_t n) {
  return arena_slice(uc->sink.arena, uc->sink.pin, s, at, n, uc->st.in) == 0 ? 0 : -1;
}

static int on_status(llhttp_t *p, const char *at, size_t n) {
  struct upclient *uc = parser_uc(p);
  return keep(uc, uc->sink.reason, at, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  struct upclient *uc = parser_uc(p);
  return keep(uc, &uc->cur_name, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct upclient *uc = parser_uc(p);
  return keep(uc, &uc->cur_value, at, n);
}

static int on_header_value_complete(llhttp_t *p) {
  struct upclient *uc = parser_uc(p);
  if (uc->cur_name.n == 0)
    return -1; /* llhttp accepts an empty field name: an invalid response (502) */
  int r = http_head_push(uc->sink.hdrs, uc->cur_name, uc->cur_value);
  uc->cur_name = uc->cur_value = (struct slice){NULL, 0};
  return r == 0 ? 0 : -1;
}

static int on_headers_complete(llhttp_t *p) {
  struct upclient *uc = parser_uc(p);
  struct upclient_head h = {
      .status = p->status_code,
      .chunked = (p->flags & F_CHUNKED) != 0,
      .has_length = (p->flags & F_CONTENT_LENGTH) != 0,
      .length = p->content_length,
      .keep_alive = llhttp_should_keep_alive(p) != 0,
      .minor = p->http_minor,
  };
  int r = uc->cbs->head(uc->owner, &h);
  /* A body that runs to the close may be spliced once this read is parsed
   * (llhttp still counts it as body until EOF ends it). */
  if (r == 0 && uc->splice_wanted && !h.chunked && llhttp_message_needs_eof(p)) {
    uc->sj.left = NULL;
    stream_splice(&uc->st, &uc->sj);
  }
  /* A chunked body follows: pause so parse_response() can check its
   * framing (src/chunked.c) before llhttp reads it. */
  chunked_check_begin(&uc->chunks, r == 0 && h.chunked);
  return uc->chunks.active ? HPE_PAUSED : r;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct upclient *uc = parser_uc(p);
  return uc->cbs->body(uc->owner, at, n, uc->st.in);
}

static int on_message_complete(llhttp_t *p) {
  struct upclient *uc = parser_uc(p);
  /* Decide keep-alive before the parser is paused. */
  bool ka = llhttp_should_keep_alive(p) != 0;
  int r = uc->cbs->done(uc->owner);
  if (r == 1) {
    uc->resp_done = true;
    uc->keepalive_ok = ka;
    stream_splice_end(&uc->st);
    return HPE_PAUSED;
  }
  return r == 0 ? 0 : -1;
}

static const llhttp_settings_t response_settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- reading ------------------------------------------------------------ */

/* The fast path's body has all its bytes: the response ends. 0 or -1. */
static int fast_end(struct upclient *uc) {
  stream_splice_end(&uc->st);
  if (uc->cbs->done(uc->owner) != 1)
    return -1;
  uc->resp_done = true;
  uc->keepalive_ok = uc->fast_ka;
  return 0;
}

/* The fast path (UR_START, UR_FAST_BODY) over the bytes just read: false
 * when the response is not one it takes, and llhttp is to read it from
 * its first byte instead (nothing has been consumed then). */
static bool fast_read(struct upclient *uc) {
  struct iobuf *in = uc->st.in;
  if (uc->rmode == UR_START) {
    const char *start = in->data + uc->st.in_off;
    size_t avail = in->len - uc->st.in_off;
    if ((*uc->sink.pin && *uc->sink.pin != in) || uc->sink.hdrs->n != 0)
      return false;
    struct h1_head h;
    if (h1_parse_response(start, avail, uc->sink.hdrs, &h) != H1_OK)
      return false;
    bool no_body = h.status == 204 || h.status == 304;
    /* Interim responses, upgrades and bodies delimited by the close stay
     * with llhttp. */
    if (h.status < 200 || (!h.has_length && !no_body && !uc->head_request)) {
      uc->sink.hdrs->n = 0;
      return false;
    }
    if (!*uc->sink.pin) {
      iobuf_ref(in);
      *uc->sink.pin = in;
    }
    *uc->sink.reason = h.reason;
    uc->st.in_off += (uint32_t)h.len;
    uc->rmode = UR_FAST_BODY;
    uc->fast_ka = h1_keep_alive(&h);
    struct upclient_head uh = {h.status, false, h.has_length, h.length, uc->fast_ka, h.minor};
    int r = uc->cbs->head(uc->owner, &uh);
    if (r < 0) {
      uc->broken = true;
      uc->parse_error = HPE_CB_HEADERS_COMPLETE;
      log_debug("upstream %s: invalid response: status %d refused", uc->name, h.status);
      return true;
    }
    /* 1: no body (HEAD, 204, 304), whatever the head declares. */
    uc->body_left = r == 1 || no_body ? 0 : h.length;
  }
  size_t avail = in->len - uc->st.in_off;
  size_t take = avail < uc->body_left ? avail : (size_t)uc->body_left;
  if (take > 0) {
    if (uc->cbs->body(uc->owner, in->data + uc->st.in_off, take, in) != 0) {
      uc->broken = true;
      uc->parse_error = HPE_USER;
      return true;
    }
    uc->st.in_off += (uint32_t)take;
    uc->body_left -= take;
  }
  if (uc->body_left == 0 && !uc->resp_done) {
    if (fast_end(uc) != 0) {
      uc->broken = true;
      uc->parse_error = HPE_CB_MESSAGE_COMPLETE;
      return true;
    }
  }
  if (uc->resp_done && uc->st.in_off != in->len)
    uc->broken = true; /* bytes after the response: never reuse */
  if (uc->splice_wanted && !uc->resp_done && !uc->st.sp) {
    uc->sj.left = &uc->body_left; /* never past the body */
    stream_splice(&uc->st, &uc->sj);
  }
  return true;
}

/* llhttp over start[0..avail), with a chunked body's framing checked by
 * chunked_check() first: the parser pauses at the end of such a head, the
 * rest is validated, and llhttp must end the body exactly where the
 * validator does. Returns what llhttp_execute would (its error position
 * is absolute), or HPE_INVALID_CHUNK_SIZE for framing llhttp 8.1 would
 * have let through (the holder answers 502 or cuts the client). */
static llhttp_errno_t parse_response(struct upclient *uc, const char *start, size_t avail) {
  const char *p = start, *end = start + avail;
  for (;;) {
    size_t feed = (size_t)(end - p);
    int ck = 0;
    bool checked = uc->chunks.active && feed > 0;
    if (checked && (ck = chunked_check(&uc->chunks, p, feed, &feed)) < 0) {
      llhttp_set_error_reason(&uc->parser, chunked_strerror(ck));
      return HPE_INVALID_CHUNK_SIZE;
    }
    bool was_done = uc->resp_done;
    llhttp_errno_t err = llhttp_execute(&uc->parser, p, feed);
    const char *at = err == HPE_PAUSED ? llhttp_get_error_pos(&uc->parser) : p + feed;
    if (checked && (ck == CHUNKED_DONE) != (uc->resp_done && !was_done && at == p + feed)) {
      llhttp_set_error_reason(&uc->parser, "chunked body framing read two ways");
      return HPE_INVALID_CHUNK_SIZE;
    }
    if (err != HPE_PAUSED || uc->resp_done || !uc->chunks.active)
      return err;
    llhttp_resume(&uc->parser); /* paused at the end of a chunked head */
    p = at;
  }
}

/* llhttp over the unparsed bytes. */
static void slow_read(struct upclient *uc) {
  struct iobuf *in = uc->st.in;
  const char *start = in->data + uc->st.in_off;
  size_t avail = in->len - uc->st.in_off;
  llhttp_errno_t err = parse_response(uc, start, avail);
  if (err == HPE_OK) {
    uc->st.in_off = in->len;
  } else if (err == HPE_PAUSED) {
    uc->st.in_off += (uint32_t)(llhttp_get_error_pos(&uc->parser) - start);
    if (uc->st.in_off != in->len)
      uc->broken = true; /* bytes after the response: never reuse */
  } else {
    uc->broken = true;
    uc->parse_error = (int)err;
    log_debug("upstream %s: invalid response: %s (%s)", uc->name, llhttp_errno_name(err),
              llhttp_get_error_reason(&uc->parser));
  }
}

static void on_stream_read(struct stream *st, ssize_t nread) {
  struct upclient *uc = stream_uc(st);
  if (uc->raw) {
    uc->cbs->raw(uc->owner, nread);
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF) {
      uc->eof = true;
      /* A close-delimited body ends here (on_message_complete). */
      if (uc->rmode == UR_LLHTTP && !uc->resp_done)
        (void)llhttp_finish(&uc->parser);
      if (uc->resp_done) {
        uc->broken = true; /* never reuse a closed connection */
        uc->cbs->read_done(uc->owner);
        return;
      }
    }
    uc->cbs->error(uc->owner, (int)nread);
    return;
  }
  uc->got_bytes = true;
  if (uc->rmode == UR_LLHTTP || !fast_read(uc)) {
    uc->rmode = UR_LLHTTP;
    slow_read(uc);
  }
  if (!uc->resp_done) {
    if (uc->broken) {
      uc->cbs->error(uc->owner, UV_EPROTO);
      return;
    }
    /* A response larger than one read: from now on this connection reads
     * IOBUF_BIG blocks (a 16 KiB body and its head in one read, a large
     * body in a quarter of the reads); an idle one holds no block. */
    uc->st.big = true;
  }
  uc->cbs->read_done(uc->owner); /* the last use of uc: the holder may release it */
}

/* n body bytes went straight to the holder's destination. */
static void on_stream_spliced(struct stream *st, size_t n) {
  struct upclient *uc = stream_uc(st);
  uc->got_bytes = true;
  if (uc->rmode == UR_FAST_BODY)
    uc->body_left -= n; /* the attempt was bounded by it */
  if (uc->cbs->body(uc->owner, NULL, n, NULL) != 0 ||
      (uc->rmode == UR_FAST_BODY && uc->body_left == 0 && fast_end(uc) != 0)) {
    uc->broken = true;
    uc->cbs->error(uc->owner, UV_EPROTO);
    return;
  }
  uc->cbs->read_done(uc->owner); /* the last use of uc */
}

void upclient_splice_to(struct upclient *uc, struct stream *dst, const struct splice_pipe *pipe) {
  uc->splice_wanted = true;
  uc->sj.dst = dst;
  uc->sj.pipe = pipe;
}

/* --- writing and lifetime ----------------------------------------------- */

static void on_stream_written(struct stream *st, int status, size_t bytes) {
  (void)bytes;
  struct upclient *uc = stream_uc(st);
  if (status < 0) {
    uc->broken = true;
    uc->cbs->error(uc->owner, status);
    return;
  }
  if (uc->cbs->written)
    uc->cbs->written(uc->owner);
}

static void on_stream_watermark(struct stream *st, bool high) {
  struct upclient *uc = stream_uc(st);
  if (uc->cbs->watermark)
    uc->cbs->watermark(uc->owner, high);
}

static void on_stream_closed(struct stream *st) {
  struct upclient *uc = stream_uc(st);
  uc->on_closed(uc);
}

static const struct stream_class upclient_stream_class = {
    .tr = &transport_tcp,
    .read = on_stream_read,
    .written = on_stream_written,
    .watermark = on_stream_watermark,
    .closed = on_stream_closed,
    .spliced = on_stream_spliced,
};

static void on_stream_handshake(struct stream *st, bool ok) {
  struct upclient *uc = stream_uc(st);
  if (!ok)
    log_error("upstream %s: TLS handshake failed: %s (check upstreams.*.tls: ca, server_name)",
              uc->name, tls_conn_error(&uc->tls));
  uc->cbs->connected(uc->owner, ok ? 0 : UV_EPROTO);
}

static const struct stream_class upclient_tls_class = {
    .tr = &transport_tls,
    .tr_off = offsetof(struct upclient, tls),
    .read = on_stream_read,
    .written = on_stream_written,
    .watermark = on_stream_watermark,
    .handshake = on_stream_handshake,
    .closed = on_stream_closed,
};

int upclient_use_tls(struct upclient *uc, struct tls_client *cli, const char *name) {
  if (tls_conn_connect(&uc->tls, cli, name, uc->st.tcp.loop) != 0)
    return -1;
  uc->tls_on = true;
  uc->st.cls = &upclient_tls_class;
  return 0;
}

int upclient_init(struct upclient *uc, uv_loop_t *loop, const char *name,
                  void (*on_closed)(struct upclient *)) {
  memset(uc, 0, offsetof(struct upclient, tls));
  uc->name = name;
  uc->on_closed = on_closed;
  uc->connect_req.data = uc;
  int r = stream_init(&uc->st, loop, &upclient_stream_class);
  uc->st.hold = STREAM_HOLD_OWNER; /* nothing to read before connecting */
  return r;
}

static void on_connect(uv_connect_t *req, int status) {
  struct upclient *uc = req->data;
  if (uc->st.closing)
    return; /* cancelled by a close (timeout, abort) */
  uc->connecting = false;
  if (status == 0) {
    uv_tcp_nodelay(&uc->st.tcp, 1);
    stream_hold(&uc->st, STREAM_HOLD_OWNER, false);
    if (uc->tls_on) { /* `connected` follows the handshake */
      int r = tls_conn_start(&uc->st);
      if (r < 0 && !uc->st.closing)
        uc->cbs->connected(uc->owner, r);
      return;
    }
  }
  uc->cbs->connected(uc->owner, status);
}

int upclient_connect(struct upclient *uc, const struct sockaddr *addr) {
  int r = stream_connect(&uc->st, &uc->connect_req, addr, on_connect);
  uc->connecting = r == 0;
  return r;
}

void upclient_begin(struct upclient *uc, const struct upclient_cbs *cbs, void *owner,
                    const struct upclient_sink *sink, bool head_request) {
  uc->cbs = cbs;
  uc->owner = owner;
  uc->sink = *sink;
  uc->head_request = head_request;
  uc->got_bytes = uc->resp_done = uc->broken = uc->eof = uc->raw = false;
  uc->keepalive_ok = uc->splice_wanted = false;
  stream_splice_end(&uc->st);
  uc->parse_error = 0;
  uc->rmode = UR_START;
  uc->body_left = 0;
  uc->cur_name = uc->cur_value = (struct slice){NULL, 0};
  llhttp_init(&uc->parser, HTTP_RESPONSE, &response_settings);
  uc->parser.data = uc;
  chunked_check_begin(&uc->chunks, false);
  stream_hold(&uc->st, STREAM_HOLD_FLOW, false);
}

void upclient_hand_over(struct upclient *uc, const struct upclient_cbs *cbs, void *owner) {
  uc->cbs = cbs;
  uc->owner = owner;
  stream_splice_end(&uc->st);
  uc->splice_wanted = false;
  stream_release_in(&uc->st);                    /* an idle connection holds no read block */
  stream_hold(&uc->st, STREAM_HOLD_FLOW, false); /* read, to notice the server closing */
}

void upclient_set_raw(struct upclient *uc) {
  uc->raw = true;
}

bool upclient_reusable(const struct upclient *uc, bool request_sent) {
  return request_sent && !uc->raw && uc->resp_done && uc->keepalive_ok && !uc->broken && !uc->eof &&
         !uc->connecting && !uc->st.closing && (!uc->st.batch || uc->st.batch->nbufs == 0) &&
         uv_stream_get_write_queue_size((const uv_stream_t *)&uc->st.tcp) == 0;
}

void upclient_close(struct upclient *uc) {
  stream_close(&uc->st);
}
