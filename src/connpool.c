/* connpool: upstream connections and the per-server idle keep-alive pool.
 *
 * Owns every upconn: its socket, idle timer, read block, response parser
 * and write batches. While attached, it reports to the exchange through
 * exchange_upstream_* and exchange_resp_* (the parser callbacks only hand
 * over slices; state changes happen after llhttp_execute returns). A
 * connection goes back to the pool only when its response ended cleanly,
 * the request was fully sent and nothing extra was read. */
#include "ferry/connpool.h"

#include <stdlib.h>
#include <string.h>

#include "ferry/chunked.h"
#include "ferry/exchange.h"
#include "ferry/h1parse.h"
#include "ferry/log.h"
#include "ferry/session.h"
#include "ferry/tunnel.h"
#include "ferry/upstream.h"
#include "ferry/worker.h"

/* --- response parser glue ----------------------------------------------- */

static struct exchange *pex(llhttp_t *p) {
  return ((struct upconn *)p->data)->ex;
}

static int on_status(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = pex(p);
  return ex ? exchange_resp_status(ex, at, n) : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = pex(p);
  return ex ? exchange_resp_header_name(ex, at, n) : -1;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  struct exchange *ex = pex(p);
  return ex ? exchange_resp_header_value(ex, at, n) : -1;
}

static int on_header_value_complete(llhttp_t *p) {
  struct exchange *ex = pex(p);
  return ex ? exchange_resp_header_done(ex) : -1;
}

static int on_headers_complete(llhttp_t *p) {
  struct upconn *c = p->data;
  if (!c->ex)
    return -1;
  c->resp_head = true;
  c->resp_minor = p->http_minor;
  int r = exchange_resp_headers_complete(c->ex, p->status_code, (p->flags & F_CHUNKED) != 0,
                                         (p->flags & F_CONTENT_LENGTH) != 0, p->content_length,
                                         llhttp_should_keep_alive(p) != 0);
  /* A chunked body follows: pause so parse_response() can check its
   * framing (src/chunked.c) before llhttp reads it. */
  chunked_check_begin(&c->chunks, r == 0 && (p->flags & F_CHUNKED) != 0);
  return c->chunks.active ? HPE_PAUSED : r;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  struct upconn *c = p->data;
  return c->ex ? exchange_resp_body(c->ex, at, n, c->in) : -1;
}

static int on_message_complete(llhttp_t *p) {
  struct upconn *c = p->data;
  if (!c->ex)
    return -1;
  /* Decide keep-alive before the callback may pause the parser. */
  bool ka = llhttp_should_keep_alive(p) != 0;
  int r = exchange_resp_message_complete(c->ex);
  if (r == HPE_PAUSED) {
    c->resp_done = true;
    c->keepalive_ok = ka;
  }
  return r;
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

/* --- lifetime ----------------------------------------------------------- */

static void on_closed(uv_handle_t *h) {
  struct upconn *c = h->data;
  if (--c->open_handles > 0)
    return;
  if (c->in)
    iobuf_unref(c->in);
  if (c->batch)
    wreq_put(c->batch);
  free(c);
}

static void idle_unlink(struct upconn *c) {
  struct server_rt *srv = c->srv;
  struct upconn **pp = &srv->idle;
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp) {
    *pp = c->next;
    srv->nidle--;
  }
  c->next = NULL;
}

void connpool_close(struct upconn *c) {
  if (c->state == UC_CLOSING)
    return;
  if (c->state == UC_IDLE)
    idle_unlink(c);
  else
    c->srv->active--;
  c->state = UC_CLOSING;
  c->ex = NULL;
  if (c->reading)
    uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  uv_close((uv_handle_t *)&c->idle_timer, on_closed);
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void connpool_move_idle(struct server_rt *from, struct server_rt *to) {
  while (from->idle) {
    struct upconn *c = from->idle;
    if (to->nidle >= to->up->cfg->keepalive_max_idle) {
      connpool_close(c);
      continue;
    }
    from->idle = c->next;
    from->nidle--;
    c->srv = to;
    c->next = to->idle;
    to->idle = c;
    to->nidle++;
  }
}

void connpool_close_idle(struct worker *w) {
  for (size_t i = 0; i < w->nups; i++)
    for (size_t j = 0; j < w->ups[i].nservers; j++)
      while (w->ups[i].servers[j].idle)
        connpool_close(w->ups[i].servers[j].idle);
}

/* --- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct upconn *c = h->data;
  if (c->in && c->parse_off == c->in->len) {
    if (c->in->refs == 1) {
      c->in->len = 0;
    } else {
      iobuf_unref(c->in);
      c->in = NULL;
    }
    c->parse_off = 0;
  }
  if (!c->in)
    c->in = iobuf_get(&c->w->bufs, IOBUF_SIZE);
  if (!c->in || c->in->len == c->in->cap) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->in->data + c->in->len, c->in->cap - c->in->len);
}

/* The fast path (RM_START, RM_FAST_BODY) over the bytes just read: false
 * when the response is not one it takes, and llhttp is to read it from
 * its first byte instead (nothing has been consumed then). */
static bool fast_read(struct upconn *c, struct exchange *ex) {
  if (c->rmode == RM_START) {
    const char *start = c->in->data + c->parse_off;
    size_t avail = c->in->len - c->parse_off;
    if ((ex->resp_pin && ex->resp_pin != c->in) || ex->resp_hdrs.n != 0)
      return false;
    struct h1_head h;
    if (h1_parse_response(start, avail, &ex->resp_hdrs, &h) != H1_OK)
      return false;
    bool no_body = h.status == 204 || h.status == 304;
    /* Interim responses, upgrades and bodies delimited by the close stay
     * with llhttp. */
    if (h.status < 200 || (!h.has_length && !no_body && ex->method != HTTP_HEAD)) {
      ex->resp_hdrs.n = 0;
      return false;
    }
    if (!ex->resp_pin) {
      iobuf_ref(c->in);
      ex->resp_pin = c->in;
    }
    ex->reason = h.reason;
    c->parse_off += h.len;
    c->resp_head = true;
    c->resp_minor = h.minor;
    c->rmode = RM_FAST_BODY;
    c->fast_ka = h1_keep_alive(&h);
    int r = exchange_resp_headers_complete(ex, h.status, false, h.has_length, h.length, c->fast_ka);
    if (r < 0) {
      c->broken = true;
      c->parse_error = HPE_CB_HEADERS_COMPLETE;
      log_debug("upstream %s: invalid response: status %d refused", c->srv->name, h.status);
      return true;
    }
    /* 1: no body (HEAD, 204, 304), whatever the head declares. */
    c->body_left = r == 1 || no_body ? 0 : h.length;
  }
  size_t avail = c->in->len - c->parse_off;
  size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
  if (take > 0) {
    if (exchange_resp_body(ex, c->in->data + c->parse_off, take, c->in) != 0) {
      c->broken = true;
      c->parse_error = HPE_USER;
      return true;
    }
    c->parse_off += take;
    c->body_left -= take;
  }
  if (c->body_left == 0 && !c->resp_done) {
    int r = exchange_resp_message_complete(ex);
    if (r != HPE_PAUSED) {
      c->broken = true;
      c->parse_error = HPE_CB_MESSAGE_COMPLETE;
      return true;
    }
    c->resp_done = true;
    c->keepalive_ok = c->fast_ka;
  }
  if (c->resp_done && c->parse_off != c->in->len)
    c->broken = true; /* bytes after the response: never reuse */
  return true;
}

/* llhttp over start[0..avail), with a chunked body's framing checked by
 * chunked_check() first: the parser pauses at the end of such a head, the
 * rest is validated, and llhttp must end the body exactly where the
 * validator does. Returns what llhttp_execute would (its error position
 * is absolute), or HPE_INVALID_CHUNK_SIZE for framing llhttp 8.1 would
 * have let through (the exchange answers 502 or cuts the client). */
static llhttp_errno_t parse_response(struct upconn *c, const char *start, size_t avail) {
  const char *p = start, *end = start + avail;
  for (;;) {
    size_t feed = (size_t)(end - p);
    int ck = 0;
    bool checked = c->chunks.active && feed > 0;
    if (checked && (ck = chunked_check(&c->chunks, p, feed, &feed)) < 0) {
      llhttp_set_error_reason(&c->parser, chunked_strerror(ck));
      return HPE_INVALID_CHUNK_SIZE;
    }
    bool was_done = c->resp_done;
    llhttp_errno_t err = llhttp_execute(&c->parser, p, feed);
    const char *at = err == HPE_PAUSED ? llhttp_get_error_pos(&c->parser) : p + feed;
    if (checked && (ck == CHUNKED_DONE) != (c->resp_done && !was_done && at == p + feed)) {
      llhttp_set_error_reason(&c->parser, "chunked body framing read two ways");
      return HPE_INVALID_CHUNK_SIZE;
    }
    if (err != HPE_PAUSED || c->resp_done || !c->chunks.active)
      return err;
    llhttp_resume(&c->parser); /* paused at the end of a chunked head */
    p = at;
  }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct upconn *c = st->data;
  struct exchange *ex = c->ex;
  if (c->state == UC_IDLE || !ex) {
    /* An idle connection that speaks or closes is finished. */
    connpool_close(c);
    return;
  }
  if (nread == 0)
    return;
  if (c->tunnel) {
    if (nread > 0)
      c->in->len += (uint32_t)nread;
    tunnel_upstream_read(ex, nread);
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF) {
      c->eof = true;
      /* A close-delimited body ends here. */
      llhttp_errno_t e = llhttp_finish(&c->parser);
      if (c->resp_done) {
        c->broken = true; /* never reuse a closed connection */
        exchange_upstream_data(ex);
        return;
      }
      (void)e;
    }
    exchange_upstream_error(ex, (int)nread);
    return;
  }
  c->got_bytes = true;
  c->in->len += (uint32_t)nread;
  if (c->rmode != RM_LLHTTP) {
    if (fast_read(c, ex)) {
      if (c->broken && !c->resp_done) {
        exchange_upstream_error(ex, UV_EPROTO);
        return;
      }
      exchange_upstream_data(ex); /* the last use of c, as below */
      return;
    }
    c->rmode = RM_LLHTTP;
  }
  const char *start = c->in->data + c->parse_off;
  size_t avail = c->in->len - c->parse_off;
  llhttp_errno_t err = parse_response(c, start, avail);
  if (err == HPE_OK) {
    c->parse_off = c->in->len;
  } else if (err == HPE_PAUSED) {
    c->parse_off += (size_t)(llhttp_get_error_pos(&c->parser) - start);
    if (c->parse_off != c->in->len)
      c->broken = true; /* bytes after the response: never reuse */
  } else {
    c->broken = true;
    c->parse_error = (int)err;
    log_debug("upstream %s: invalid response: %s (%s)", c->srv->name, llhttp_errno_name(err),
              llhttp_get_error_reason(&c->parser));
  }
  if (c->broken && !c->resp_done) {
    exchange_upstream_error(ex, UV_EPROTO);
    return;
  }
  /* Must be the last use of c: the exchange may release or close it. */
  exchange_upstream_data(ex);
}

static void start_reading(struct upconn *c) {
  if (!c->reading && c->state != UC_CLOSING &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = true;
}

void upconn_set_bp(struct upconn *c, bool paused) {
  c->bp_paused = paused;
  if (paused && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  } else if (!paused) {
    start_reading(c);
  }
}

/* --- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status) {
  struct wreq *wr = container_of(req, struct wreq, req);
  struct upconn *c = req->data;
  c->queued -= wr->bytes;
  c->writes_pending--;
  wreq_put(wr);
  if (c->state == UC_CLOSING)
    return;
  struct exchange *ex = c->ex;
  if (status < 0) {
    c->broken = true;
    if (ex) {
      exchange_upstream_error(ex, status);
    } else {
      connpool_close(c);
    }
    return;
  }
  if (ex && c->queued < BP_LOW)
    exchange_upstream_drained(ex);
}

int upconn_flush(struct upconn *c) {
  struct wreq *wr = c->batch;
  if (!wr || wr->nbufs == 0 || c->state == UC_CLOSING)
    return 0;
  c->batch = NULL;
  wr->req.data = c;
  c->queued += wr->bytes;
  c->writes_pending++;
  if (wreq_try_write(wr, (uv_stream_t *)&c->tcp)) {
    on_write(&wr->req, 0); /* all written at once: complete it here */
    return 0;
  }
  int r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, wr->bufs, wr->nbufs, on_write);
  if (r < 0) {
    c->queued -= wr->bytes;
    c->writes_pending--;
    wreq_put(wr);
    return r;
  }
  if (c->queued > BP_HIGH && c->ex)
    session_set_bp(c->ex->s, true);
  return 0;
}

static struct wreq *batch(struct upconn *c, unsigned bufs, size_t scratch) {
  if (c->batch && !wreq_has_room(c->batch, bufs, scratch)) {
    if (upconn_flush(c) < 0)
      return NULL;
  }
  if (!c->batch)
    c->batch = wreq_get(&c->w->bufs);
  return c->batch;
}

int upconn_add(struct upconn *c, const char *p, size_t n, struct iobuf *b) {
  struct wreq *wr = batch(c, 1, 0);
  if (!wr)
    return -1;
  wreq_add(wr, p, n, b);
  return 0;
}

int upconn_add_copy(struct upconn *c, const char *p, size_t n) {
  if (n > WREQ_SCRATCH)
    return -1;
  struct wreq *wr = batch(c, 1, n);
  if (!wr)
    return -1;
  wreq_add_copy(wr, p, n);
  return 0;
}

/* --- pool --------------------------------------------------------------- */

static void attach(struct upconn *c, struct exchange *ex) {
  c->ex = ex;
  c->state = UC_ACTIVE;
  c->srv->active++;
  c->got_bytes = c->resp_done = c->resp_head = c->broken = c->eof = c->tunnel = false;
  c->keepalive_ok = false;
  c->bp_paused = false;
  c->parse_error = 0;
  c->rmode = RM_START;
  c->body_left = 0;
  llhttp_init(&c->parser, HTTP_RESPONSE, &response_settings);
  c->parser.data = c;
  chunked_check_begin(&c->chunks, false);
}

static void on_idle_timeout(uv_timer_t *t) {
  struct upconn *c = t->data;
  if (c->state != UC_IDLE)
    return; /* in use again: armed anew when it next goes idle */
  uint64_t now = uv_now(t->loop);
  if (now < c->idle_until) { /* idle again since the timer was armed */
    c->idle_fire = c->idle_until;
    uv_timer_start(t, on_idle_timeout, c->idle_until - now, 0);
    return;
  }
  connpool_close(c);
}

struct upconn *connpool_checkout(struct worker *w, struct server_rt *srv, struct exchange *ex) {
  (void)w;
  struct upconn *c = srv->idle;
  if (!c)
    return NULL;
  srv->idle = c->next;
  srv->nidle--;
  c->next = NULL;
  /* The idle timer stays armed; on_idle_timeout ignores a busy connection. */
  attach(c, ex);
  c->reused = true;
  start_reading(c);
  return c;
}

static void on_connect(uv_connect_t *req, int status) {
  struct upconn *c = req->data;
  if (c->state == UC_CLOSING)
    return; /* cancelled by close (timeout or abort) */
  struct exchange *ex = c->ex;
  if (status < 0) {
    connpool_close(c);
    if (ex)
      exchange_upstream_connected(ex, status);
    return;
  }
  c->state = UC_ACTIVE;
  uv_tcp_nodelay(&c->tcp, 1);
  start_reading(c);
  if (ex)
    exchange_upstream_connected(ex, 0);
}

struct upconn *connpool_connect(struct worker *w, struct server_rt *srv, struct exchange *ex,
                                int *err) {
  struct upconn *c = calloc(1, sizeof(*c));
  if (!c) {
    *err = UV_ENOMEM;
    return NULL;
  }
  c->w = w;
  c->srv = srv;
  uv_tcp_init(&w->loop, &c->tcp);
  uv_timer_init(&w->loop, &c->idle_timer);
  c->tcp.data = c;
  c->idle_timer.data = c;
  c->connect_req.data = c;
  c->open_handles = 2;
  attach(c, ex);
  c->state = UC_CONNECTING;
  w->upstream_connects++;
  int r = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&srv->slot->addr,
                         on_connect);
  if (r < 0) {
    *err = r;
    c->ex = NULL;
    connpool_close(c);
    return NULL;
  }
  return c;
}

void connpool_release(struct upconn *c, bool request_sent) {
  struct server_rt *srv = c->srv;
  const struct cfg_upstream *ucfg = srv->up->cfg;
  /* Every request byte must be in the kernel (write callbacks may still be
   * due this loop pass; they are harmless once the connection is idle). */
  bool reusable = request_sent && !c->tunnel && c->resp_done && c->keepalive_ok && !c->broken &&
                  !c->eof && (!c->batch || c->batch->nbufs == 0) &&
                  uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0 &&
                  c->state == UC_ACTIVE && !c->w->stopping &&
                  srv->nidle < ucfg->keepalive_max_idle * CONNPOOL_SURPLUS_FACTOR &&
                  upstream_server_present(srv);
  if (!reusable) {
    log_debug("upstream %s: not reusing connection (sent=%d done=%d ka=%d broken=%d eof=%d "
              "queue=%zu idle=%u/%u state=%d batch=%u stopping=%d)",
              srv->name, request_sent, c->resp_done, c->keepalive_ok, c->broken, c->eof,
              uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp), srv->nidle,
              ucfg->keepalive_max_idle, (int)c->state, c->batch ? c->batch->nbufs : 0u,
              (int)c->w->stopping);
    connpool_close(c);
    return;
  }
  c->ex = NULL;
  c->srv->active--;
  c->state = UC_IDLE;
  c->requests++;
  if (c->in && c->parse_off == c->in->len) {
    iobuf_unref(c->in); /* idle connections hold no read block */
    c->in = NULL;
    c->parse_off = 0;
  }
  c->next = srv->idle;
  srv->idle = c;
  srv->nidle++;
  if (c->bp_paused)
    c->bp_paused = false;
  start_reading(c); /* notice the server closing it */
  /* Over max_idle, a burst just ended: keep the connection briefly so the
   * next burst reuses it instead of connecting anew (under load with more
   * clients than max_idle, closing at once made nearly every request
   * connect); it closes after CONNPOOL_SURPLUS_MS idle. */
  uint64_t idle_ms = ucfg->keepalive_idle_timeout_ms;
  if (srv->nidle > ucfg->keepalive_max_idle && idle_ms > CONNPOOL_SURPLUS_MS)
    idle_ms = CONNPOOL_SURPLUS_MS;
  c->idle_until = uv_now(&c->w->loop) + idle_ms;
  if (!uv_is_active((uv_handle_t *)&c->idle_timer) || c->idle_fire > c->idle_until) {
    c->idle_fire = c->idle_until;
    uv_timer_start(&c->idle_timer, on_idle_timeout, idle_ms, 0);
  }
}
