/* inspector: /inspect, /inspect/requests, /inspect/stream, /inspect/har and replay on the
 * admin listener.
 *
 * Owns: the store of captured records, the list of Server-Sent Event
 * clients (each with its heartbeat timer) and replay connections. Runs on
 * the admin thread only, except inspector_post, which any worker calls and
 * which only hands a record to admin_post. Must not touch worker state:
 * records arrive complete and owned. */
#include "ferry/inspector.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/har.h"
#include "ferry/insprec.h"
#include "ferry/err.h"
#include "ferry/log.h"

#define HEARTBEAT_MS 15000u
#define STREAM_MAX_QUEUED (256u * 1024u)
#define REPLAY_TIMEOUT_MS 10000u

struct sse_client {
  struct inspector *in;
  struct sse_client *next, *prev;
  struct admin_stream *stream; /* NULL once closed */
  uv_timer_t heartbeat;
  struct inspect_filter filter;
};

struct replay_conn {
  struct inspector *in;
  struct replay_conn *next, *prev;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  uv_write_t write;
  struct inspect_out head;
  char buf[4096];
  int open_handles;
  bool closing;
};

struct inspector {
  const struct config *cfg;
  struct admin *admin;
  struct inspect_store store;
  struct sse_client *clients;
  struct replay_conn *replays;
  bool stopping;
  uint64_t replays_sent;
};

bool inspector_wanted(const struct config *cfg) {
  return cfg->admin.enabled && cfg->admin.inspect_keep > 0;
}

/* --- records arriving from workers -------------------------------------------- */

struct post_arg {
  struct inspector *in;
  struct inspect_rec *rec;
};

static void broadcast(struct inspector *in, const struct inspect_rec *rec) {
  struct inspect_out ev = {0};
  for (struct sse_client *c = in->clients; c; c = c->next) {
    if (!c->stream || !inspect_filter_match(&c->filter, rec))
      continue;
    if (ev.n == 0)
      inspect_render_event(&ev, rec, in->cfg->admin.replay);
    if (ev.oom)
      break;
    /* ADMIN_ESLOW closes the stream; its on_closed unlinks the client. */
    admin_stream_write(c->stream, ev.p, ev.n);
  }
  free(ev.p);
}

static void free_list(struct inspect_rec *rec) {
  while (rec) {
    struct inspect_rec *next = rec->next;
    free(rec);
    rec = next;
  }
}

/* Admin thread: records arrived (arg: struct post_arg, ours to free). */
static void on_post(void *arg) {
  struct post_arg *pa = arg;
  struct inspector *in = pa->in;
  struct inspect_rec *rec = pa->rec;
  free(pa);
  while (rec) {
    struct inspect_rec *next = rec->next;
    if (inspect_store_push(&in->store, rec) && !in->stopping)
      broadcast(in, rec);
    rec = next;
  }
}

void inspector_post(struct inspector *in, struct inspect_rec *list) {
  struct post_arg *pa = in ? malloc(sizeof *pa) : NULL;
  if (!pa) {
    free_list(list);
    return;
  }
  pa->in = in;
  pa->rec = list;
  if (admin_post(in->admin, on_post, pa) != 0) {
    free(pa);
    free_list(list);
  }
}

/* --- JSON surfaces -------------------------------------------------------------- */

static void reply_out(struct admin_reply *rep, int status, const char *ctype,
                      struct inspect_out *o) {
  admin_reply_status(rep, status, ctype);
  if (o->oom) {
    admin_reply_status(rep, 500, NULL);
    admin_reply_printf(rep, "out of memory rendering the answer\n");
  } else {
    admin_reply_append(rep, o->p ? o->p : "", o->n);
  }
  free(o->p);
}

static void reply_error(struct admin_reply *rep, int status, const char *msg) {
  admin_reply_status(rep, status, "application/json");
  struct inspect_out o = {0};
  inspect_out_puts(&o, "{\"error\":");
  inspect_json_str(&o, slice_cstr(msg)); /* may quote what the client sent */
  inspect_out_puts(&o, "}\n");
  admin_reply_append(rep, o.p ? o.p : "", o.n);
  free(o.p);
}

static bool is_get(const struct admin_request *req) {
  return slice_eq(req->method, SLICE_LIT("GET")) || slice_eq(req->method, SLICE_LIT("HEAD"));
}

static void page(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  (void)ud;
  if (!is_get(req)) {
    reply_error(rep, 405, "use GET for /inspect");
    return;
  }
  /* The admin sends Cache-Control: no-store with every answer. */
  admin_reply_status(rep, 200, "text/html; charset=utf-8");
  admin_reply_append(rep, inspect_page_html, inspect_page_html_len);
}

static void replay(struct inspector *in, const struct inspect_rec *rec,
                   const struct admin_request *req, struct admin_reply *rep);

static void requests(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  struct inspector *in = ud;
  struct slice rest = {req->path.p + strlen("/inspect/requests"),
                       req->path.n - strlen("/inspect/requests")};
  char err[256];
  if (rest.n <= 1) { /* "/inspect/requests" or ".../" */
    if (!is_get(req)) {
      reply_error(rep, 405, "use GET for /inspect/requests");
      return;
    }
    struct inspect_filter f;
    if (inspect_filter_parse(req->query, &f, err, sizeof err) != 0) {
      reply_error(rep, 400, err);
      return;
    }
    struct inspect_out o = {0};
    inspect_render_list(&o, &in->store, &f, in->cfg->admin.replay);
    inspect_filter_release(&f);
    inspect_out_puts(&o, "\n");
    reply_out(rep, 200, "application/json", &o);
    return;
  }
  /* "/ID" or "/ID/replay" */
  const char *p = rest.p + 1, *end = rest.p + rest.n;
  uint64_t id = 0;
  const char *d = p;
  while (d < end && *d >= '0' && *d <= '9' && id < UINT64_MAX / 10)
    id = id * 10 + (uint64_t)(*d++ - '0');
  struct slice tail = {d, (size_t)(end - d)};
  bool is_replay = slice_eq(tail, SLICE_LIT("/replay"));
  if (d == p || (tail.n && !is_replay)) {
    reply_error(rep, 404,
                "no such path: use /inspect/requests, /inspect/requests/ID or "
                "/inspect/requests/ID/replay");
    return;
  }
  const struct inspect_rec *rec = inspect_store_find(&in->store, id);
  if (!rec) {
    snprintf(err, sizeof err,
             "exchange %" PRIu64 " is not kept (the inspector keeps the last %u; see "
             "/inspect/requests)",
             id, (unsigned)in->cfg->admin.inspect_keep);
    reply_error(rep, 404, err);
    return;
  }
  if (is_replay) {
    if (!slice_eq(req->method, SLICE_LIT("POST"))) {
      reply_error(rep, 405, "use POST to replay");
      return;
    }
    /* A custom header: another site's page in the same browser cannot
     * send it without a CORS preflight, which the admin never grants. */
    if (!admin_request_header(req, "X-Ferry-Replay").p) {
      reply_error(rep, 403, "send the header X-Ferry-Replay: 1 with the POST to replay");
      return;
    }
    replay(in, rec, req, rep);
    return;
  }
  if (!is_get(req)) {
    reply_error(rep, 405, "use GET for /inspect/requests/ID");
    return;
  }
  struct inspect_out o = {0};
  inspect_render_json(&o, rec, in->cfg->admin.replay);
  inspect_out_puts(&o, "\n");
  reply_out(rep, 200, "application/json", &o);
}

static void har(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  struct inspector *in = ud;
  char err[256];
  if (!is_get(req)) {
    reply_error(rep, 405, "use GET for /inspect/har");
    return;
  }
  struct inspect_filter f;
  if (inspect_filter_parse(req->query, &f, err, sizeof err) != 0) {
    reply_error(rep, 400, err);
    return;
  }
  struct inspect_out o = {0};
  har_render(&o, &in->store, &f);
  inspect_filter_release(&f);
  admin_reply_header(rep, "Content-Disposition: attachment; filename=\"ferry.har\"");
  reply_out(rep, 200, "application/json", &o);
}

/* --- Server-Sent Events --------------------------------------------------------- */

static void on_client_timer_closed(uv_handle_t *h) {
  struct sse_client *c = container_of(h, struct sse_client, heartbeat);
  inspect_filter_release(&c->filter);
  free(c);
}

static void on_stream_closed(void *ud, struct admin_stream *s) {
  struct sse_client *c = ud;
  (void)s;
  c->stream = NULL;
  if (c->prev)
    c->prev->next = c->next;
  else
    c->in->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->heartbeat, on_client_timer_closed);
}

static void on_heartbeat(uv_timer_t *t) {
  struct sse_client *c = container_of(t, struct sse_client, heartbeat);
  if (c->stream)
    admin_stream_write(c->stream, ": heartbeat\n\n", 13);
}

static void stream(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  struct inspector *in = ud;
  char err[256];
  if (!is_get(req)) {
    reply_error(rep, 405, "use GET for /inspect/stream");
    return;
  }
  struct sse_client *c = calloc(1, sizeof *c);
  if (!c) {
    reply_error(rep, 503, "out of memory: try again later");
    return;
  }
  if (inspect_filter_parse(req->query, &c->filter, err, sizeof err) != 0) {
    free(c);
    reply_error(rep, 400, err);
    return;
  }
  uint64_t heartbeat = HEARTBEAT_MS;
  bool found;
  struct slice hb = admin_request_param(req, "heartbeat", &found);
  if (found) {
    char tmp[16];
    snprintf(tmp, sizeof tmp, "%.*s", (int)(hb.n < 15 ? hb.n : 15), hb.p);
    char *e;
    unsigned long v = strtoul(tmp, &e, 10);
    if (!tmp[0] || *e || v < 100 || v > 600000) {
      inspect_filter_release(&c->filter);
      free(c);
      reply_error(rep, 400, "heartbeat: expected milliseconds between 100 and 600000");
      return;
    }
    heartbeat = v;
  }
  /* Resume after the last event the client saw (EventSource reconnects). */
  struct slice last = admin_request_header(req, "Last-Event-ID");
  if (last.n > 0 && last.n < 20) {
    uint64_t v = 0;
    bool ok = true;
    for (size_t i = 0; i < last.n && ok; i++)
      ok = last.p[i] >= '0' && last.p[i] <= '9';
    for (size_t i = 0; i < last.n && ok; i++)
      v = v * 10 + (uint64_t)(last.p[i] - '0');
    if (ok)
      c->filter.after = v;
  }
  c->in = in;
  c->stream = admin_reply_stream(rep, "text/event-stream", STREAM_MAX_QUEUED, on_stream_closed, c);
  if (!c->stream) {
    inspect_filter_release(&c->filter);
    free(c);
    return; /* the admin answers 500 */
  }
  uv_timer_init(admin_loop(in->admin), &c->heartbeat);
  uv_timer_start(&c->heartbeat, on_heartbeat, heartbeat, heartbeat);
  c->next = in->clients;
  if (in->clients)
    in->clients->prev = c;
  in->clients = c;
  /* A comment first, so the client knows the stream is up; then what it
   * missed since Last-Event-ID / after=, oldest first. */
  admin_stream_write(c->stream, ": ferry inspector stream\nretry: 2000\n\n", 38);
  if (c->filter.after > 0 && c->stream) {
    uint32_t n = 0;
    while (inspect_store_newest(&in->store, n) &&
           inspect_store_newest(&in->store, n)->id > c->filter.after)
      n++;
    struct inspect_out o = {0};
    for (uint32_t i = n; i-- > 0;) {
      const struct inspect_rec *r = inspect_store_newest(&in->store, i);
      if (inspect_filter_match(&c->filter, r))
        inspect_render_event(&o, r, in->cfg->admin.replay);
    }
    if (o.n && !o.oom)
      admin_stream_write(c->stream, o.p, o.n);
    free(o.p);
  }
}

/* --- replay ------------------------------------------------------------------- */

static void replay_handle_closed(uv_handle_t *h) {
  struct replay_conn *rc = h->data;
  if (--rc->open_handles > 0)
    return;
  free(rc->head.p);
  free(rc);
}

static void replay_close(struct replay_conn *rc) {
  if (rc->closing)
    return;
  rc->closing = true;
  if (rc->prev)
    rc->prev->next = rc->next;
  else
    rc->in->replays = rc->next;
  if (rc->next)
    rc->next->prev = rc->prev;
  uv_close((uv_handle_t *)&rc->tcp, replay_handle_closed);
  uv_close((uv_handle_t *)&rc->timer, replay_handle_closed);
}

static void replay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct replay_conn *rc = h->data;
  (void)suggested;
  *buf = uv_buf_init(rc->buf, sizeof rc->buf);
}

/* The response is read and discarded: the replayed exchange is captured
 * like any other and shows up in the list. */
static void replay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct replay_conn *rc = s->data;
  (void)buf;
  if (nread < 0)
    replay_close(rc);
}

static void replay_written(uv_write_t *w, int status) {
  struct replay_conn *rc = w->data;
  if (status < 0 || rc->closing) {
    replay_close(rc);
    return;
  }
  uv_read_start((uv_stream_t *)&rc->tcp, replay_alloc, replay_read);
}

static void replay_connected(uv_connect_t *req, int status) {
  struct replay_conn *rc = req->data;
  if (status < 0 || rc->closing) {
    if (status < 0 && status != UV_ECANCELED)
      log_warn("inspector: replay could not connect to the listener: %s", uv_strerror(status));
    replay_close(rc);
    return;
  }
  uv_buf_t b = uv_buf_init(rc->head.p, (unsigned)rc->head.n);
  rc->write.data = rc;
  if (uv_write(&rc->write, (uv_stream_t *)&rc->tcp, &b, 1, replay_written) != 0)
    replay_close(rc);
}

static void replay_timeout(uv_timer_t *t) {
  replay_close(t->data);
}

/* The listener's address to connect to: wildcard addresses become
 * loopback. */
static int replay_target(const struct inspect_rec *rec, struct sockaddr_storage *ss) {
  char text[128], err[128];
  snprintf(text, sizeof text, "%.*s", (int)rec->listener.n, rec->listener.p);
  if (config_parse_listen_address(text, ss, err, sizeof err) != 0)
    return -1;
  if (ss->ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (a->sin_addr.s_addr == htonl(INADDR_ANY))
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (ss->ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    if (memcmp(&a->sin6_addr, &in6addr_any, sizeof a->sin6_addr) == 0)
      a->sin6_addr = in6addr_loopback;
  }
  return 0;
}

static void replay(struct inspector *in, const struct inspect_rec *rec,
                   const struct admin_request *req, struct admin_reply *rep) {
  char msg[256];
  if (!in->cfg->admin.replay) {
    reply_error(rep, 403, "replay is off: set admin.replay: true in the configuration to allow it");
    return;
  }
  /* Edit and replay: method=, target=, h=, body= in the query. */
  struct inspect_replay_edit edit;
  if (req->query.n > 0) {
    if (inspect_replay_edit_parse(req->query, &edit, msg, sizeof msg) != 0) {
      reply_error(rep, 400, msg);
      return;
    }
  } else if (!inspect_replayable(rec)) {
    reply_error(rep, 409,
                rec->redacted ? "this request had redacted headers: replaying it would not send "
                                "the same request"
                              : "this request carried a body, which the inspector does not keep: "
                                "it cannot be replayed");
    return;
  }
  bool edited = req->query.n > 0;
  struct sockaddr_storage ss;
  struct replay_conn *rc = NULL;
  if (in->stopping || replay_target(rec, &ss) != 0) {
    reply_error(rep, 409, "the listener this request came in on is not known");
  } else if ((rc = calloc(1, sizeof *rc)) == NULL) {
    reply_error(rep, 503, "out of memory: try again later");
  } else if (edited && inspect_render_replay_edited(&rc->head, rec, &edit, msg, sizeof msg) != 0) {
    reply_error(rep, 409, msg);
    free(rc->head.p);
    free(rc);
    rc = NULL;
  } else if (!edited) {
    inspect_render_replay(&rc->head, rec);
  }
  if (edited)
    inspect_replay_edit_free(&edit);
  if (!rc)
    return;
  rc->in = in;
  uv_loop_t *loop = admin_loop(in->admin);
  uv_tcp_init(loop, &rc->tcp);
  uv_timer_init(loop, &rc->timer);
  rc->tcp.data = rc->timer.data = rc->connect.data = rc;
  rc->open_handles = 2;
  rc->next = in->replays;
  if (in->replays)
    in->replays->prev = rc;
  in->replays = rc;
  int r = rc->head.oom ? UV_ENOMEM
                       : uv_tcp_connect(&rc->connect, &rc->tcp, (const struct sockaddr *)&ss,
                                        replay_connected);
  if (r < 0) {
    replay_close(rc);
    snprintf(msg, sizeof msg, "cannot connect to the listener: %s", ferry_strerror(r));
    reply_error(rep, ferry_err_http_status(r), msg); /* 503 for a local shortage */
    return;
  }
  uv_timer_start(&rc->timer, replay_timeout, REPLAY_TIMEOUT_MS, 0);
  in->replays_sent++;
  admin_reply_status(rep, 202, "application/json");
  admin_reply_printf(rep, "{\"replayed\":%" PRIu64 ",\"listener\":\"%.*s\"}\n", rec->id,
                     (int)rec->listener.n, rec->listener.p);
}

/* --- lifetime -------------------------------------------------------------------- */

static void on_admin_stop(void *ud) {
  struct inspector *in = ud;
  in->stopping = true;
  while (in->replays)
    replay_close(in->replays);
  /* Streams are closed by the admin; their on_closed closes the timers. */
}

struct inspector *inspector_new(const struct config *cfg, struct admin *a) {
  struct inspector *in = calloc(1, sizeof *in);
  if (!in)
    return NULL;
  in->cfg = cfg;
  in->admin = a;
  if (inspect_store_init(&in->store, cfg->admin.inspect_keep, cfg->admin.inspect_max_bytes) != 0 ||
      admin_route(a, "/inspect", false, page, in) != 0 ||
      admin_route(a, "/inspect/requests", true, requests, in) != 0 ||
      admin_route(a, "/inspect/stream", false, stream, in) != 0 ||
      admin_route(a, "/inspect/har", false, har, in) != 0 ||
      admin_on_stop(a, on_admin_stop, in) != 0) {
    inspector_free(in);
    return NULL;
  }
  return in;
}

void inspector_free(struct inspector *in) {
  if (!in)
    return;
  inspect_store_destroy(&in->store);
  free(in);
}
