/* admin: the admin HTTP listener on its own thread and loop.
 *
 * Owns: the admin loop and thread, its listening socket, its connections
 * (one request each, or a long-lived stream), the route table and the
 * bounded multi-producer event queue workers post to. Must not touch any
 * worker's loop or objects: workers reach it only through admin_post and
 * the atomics behind admin_set_ready. */
#include "ferry/admin.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/log.h"

#define ADMIN_HEAD_MAX 8192u
#define ADMIN_HEAD_TIMEOUT_MS 10000u
/* Bytes of a refused Host value echoed in the 403 (before escaping). */
#define ADMIN_HOST_ECHO_MAX 64u

struct admin_routedef {
  char *path;
  size_t len;
  bool prefix;
  admin_handler_fn fn;
  void *ud;
};

struct admin_stophook {
  void (*fn)(void *ud);
  void *ud;
};

struct admin_cell {
  _Atomic size_t seq;
  admin_event_fn fn;
  void *arg;
};

struct admin_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* the request head must arrive within ADMIN_HEAD_TIMEOUT_MS */
  int open_handles;
  struct admin *a;
  struct admin_conn *next, *prev;
  char in[ADMIN_HEAD_MAX];
  size_t nin;
  size_t queued;     /* bytes written, not yet completed */
  size_t max_queued; /* streams only */
  bool closing;      /* uv_close called */
  bool close_after;  /* close once the queue drains */
  bool streaming;    /* handed over to a handler */
  bool done;         /* request handled; ignore further input */
  bool head_only;    /* HEAD request: the answer has no body */
  char client[64];
  admin_stream_closed_fn on_closed;
  void *ud;
};

struct admin_stream {
  struct admin_conn c;
};

struct admin_reply {
  struct admin_conn *c;
  int status;
  const char *ctype;
  char *body;
  size_t n, cap;
  char *extra;
  size_t nextra, capextra;
  bool oom;
  struct admin_stream *stream;
};

struct admin {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t wake;     /* events queued */
  uv_async_t stop_req; /* admin_stop */
  uv_thread_t thread;
  bool started, loop_inited, stopping;
  int adopt_fd; /* a listening socket handed over by a binary upgrade; -1: bind */
  struct sockaddr_storage addr;
  char *address;

  struct admin_routedef *routes;
  size_t nroutes;
  struct admin_stophook *hooks;
  size_t nhooks;

  struct admin_conn *conns;

  char **allowed_hosts; /* admin.allowed_hosts: our own copy */
  size_t nallowed_hosts;

  _Atomic bool ready;
  _Atomic uint64_t dropped;

  struct admin_cell cells[ADMIN_QUEUE_CAP];
  _Atomic size_t enq_pos;
  size_t deq_pos; /* admin thread only */
};

/* ---- event queue (Vyukov's bounded MPMC queue, used single-consumer) ---- */

int admin_post(struct admin *a, admin_event_fn fn, void *arg) {
  if (!a)
    return ADMIN_EFULL;
  size_t pos = atomic_load_explicit(&a->enq_pos, memory_order_relaxed);
  struct admin_cell *cell;
  for (;;) {
    cell = &a->cells[pos & (ADMIN_QUEUE_CAP - 1)];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    intptr_t dif = (intptr_t)seq - (intptr_t)pos;
    if (dif == 0) {
      if (atomic_compare_exchange_weak_explicit(&a->enq_pos, &pos, pos + 1, memory_order_relaxed,
                                                memory_order_relaxed))
        break;
    } else if (dif < 0) {
      atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
      return ADMIN_EFULL;
    } else {
      pos = atomic_load_explicit(&a->enq_pos, memory_order_relaxed);
    }
  }
  cell->fn = fn;
  cell->arg = arg;
  atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
  uv_async_send(&a->wake);
  return 0;
}

uint64_t admin_events_dropped(const struct admin *a) {
  return a ? atomic_load_explicit(&a->dropped, memory_order_relaxed) : 0;
}

static void drain_events(struct admin *a) {
  for (;;) {
    struct admin_cell *cell = &a->cells[a->deq_pos & (ADMIN_QUEUE_CAP - 1)];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    if (seq != a->deq_pos + 1)
      return;
    admin_event_fn fn = cell->fn;
    void *arg = cell->arg;
    atomic_store_explicit(&cell->seq, a->deq_pos + ADMIN_QUEUE_CAP, memory_order_release);
    a->deq_pos++;
    fn(arg);
  }
}

static void on_wake(uv_async_t *h) {
  drain_events(h->data);
}

/* ---- requests ----------------------------------------------------------- */

struct slice admin_request_header(const struct admin_request *req, const char *name) {
  struct slice n = slice_cstr(name);
  for (size_t i = 0; i < req->nheaders; i++)
    if (slice_ieq(req->headers[i].name, n))
      return req->headers[i].value;
  return (struct slice){NULL, 0};
}

struct slice admin_request_param(const struct admin_request *req, const char *name, bool *found) {
  size_t nl = strlen(name);
  const char *p = req->query.p, *end = req->query.p + req->query.n;
  *found = false;
  while (p && p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *e = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(e - p));
    const char *ke = eq ? eq : e;
    if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0) {
      *found = true;
      return eq ? slice_make(eq + 1, (size_t)(e - eq - 1)) : slice_make(e, 0);
    }
    p = amp ? amp + 1 : end;
  }
  return (struct slice){NULL, 0};
}

/* ---- connections -------------------------------------------------------- */

struct admin_write {
  uv_write_t req;
  struct admin_conn *c;
  size_t n;
  char data[];
};

static void conn_close(struct admin_conn *c);

static void on_conn_closed(uv_handle_t *h) {
  struct admin_conn *c = h->data;
  if (--c->open_handles > 0)
    return;
  struct admin *a = c->a;
  if (c->prev)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (c->streaming && c->on_closed)
    c->on_closed(c->ud, (struct admin_stream *)(void *)c);
  free(c);
}

static void conn_close(struct admin_conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_head_timeout(uv_timer_t *t) {
  struct admin_conn *c = t->data;
  if (!c->done)
    conn_close(c); /* no complete request head in time */
}

static void on_written(uv_write_t *req, int status) {
  struct admin_write *w = container_of(req, struct admin_write, req);
  struct admin_conn *c = w->c;
  c->queued -= w->n;
  free(w);
  if (status < 0)
    conn_close(c);
  else if (c->close_after && c->queued == 0)
    conn_close(c);
}

static int conn_write(struct admin_conn *c, const char *p1, size_t n1, const char *p2, size_t n2) {
  if (c->closing)
    return ADMIN_ECLOSED;
  struct admin_write *w = malloc(sizeof(*w) + n1 + n2);
  if (!w)
    return UV_ENOMEM;
  w->c = c;
  w->n = n1 + n2;
  if (n1)
    memcpy(w->data, p1, n1);
  if (n2)
    memcpy(w->data + n1, p2, n2);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->n);
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (r < 0) {
    free(w);
    conn_close(c);
    return r;
  }
  c->queued += w->n;
  return 0;
}

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 409:
    return "Conflict";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "Status";
  }
}

/* Send a whole response and close after it. */
static void conn_respond(struct admin_conn *c, int status, const char *ctype, const char *extra,
                         size_t nextra, const char *body, size_t n) {
  char head[512];
  int hn = snprintf(head, sizeof(head),
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n",
                    status, reason(status), ctype, n);
  if (hn < 0 || (size_t)hn >= sizeof(head))
    hn = 0;
  c->done = true;
  c->close_after = true;
  size_t total = (size_t)hn + nextra + 2;
  char *h = malloc(total);
  if (!h) {
    conn_close(c);
    return;
  }
  memcpy(h, head, (size_t)hn);
  if (nextra)
    memcpy(h + hn, extra, nextra);
  memcpy(h + (size_t)hn + nextra, "\r\n", 2);
  int r = conn_write(c, h, total, body, c->head_only ? 0 : n);
  free(h);
  if (r == 0)
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void simple(struct admin_conn *c, int status, const char *body) {
  conn_respond(c, status, "text/plain; charset=utf-8", NULL, 0, body, strlen(body));
}

/* ---- replies ------------------------------------------------------------ */

static void grow_append(char **buf, size_t *n, size_t *cap, bool *oom, const char *p, size_t len) {
  if (*oom)
    return;
  if (*n + len > *cap) {
    size_t nc = *cap ? *cap : 1024;
    while (nc < *n + len)
      nc *= 2;
    char *nb = realloc(*buf, nc);
    if (!nb) {
      *oom = true;
      return;
    }
    *buf = nb;
    *cap = nc;
  }
  memcpy(*buf + *n, p, len);
  *n += len;
}

void admin_reply_status(struct admin_reply *rep, int status, const char *content_type) {
  rep->status = status;
  if (content_type)
    rep->ctype = content_type;
}

void admin_reply_header(struct admin_reply *rep, const char *line) {
  grow_append(&rep->extra, &rep->nextra, &rep->capextra, &rep->oom, line, strlen(line));
  grow_append(&rep->extra, &rep->nextra, &rep->capextra, &rep->oom, "\r\n", 2);
}

void admin_reply_append(struct admin_reply *rep, const char *p, size_t n) {
  grow_append(&rep->body, &rep->n, &rep->cap, &rep->oom, p, n);
}

void admin_reply_vprintf(struct admin_reply *rep, const char *fmt, va_list ap) {
  char tmp[1024];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if ((size_t)n < sizeof(tmp)) {
    admin_reply_append(rep, tmp, (size_t)n);
  } else {
    char *big = malloc((size_t)n + 1);
    if (!big) {
      rep->oom = true;
    } else {
      vsnprintf(big, (size_t)n + 1, fmt, ap2);
      admin_reply_append(rep, big, (size_t)n);
      free(big);
    }
  }
  va_end(ap2);
}

void admin_reply_printf(struct admin_reply *rep, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  admin_reply_vprintf(rep, fmt, ap);
  va_end(ap);
}

struct admin_stream *admin_reply_stream(struct admin_reply *rep, const char *content_type,
                                        size_t max_queued, admin_stream_closed_fn on_closed,
                                        void *ud) {
  struct admin_conn *c = rep->c;
  if (rep->stream)
    return rep->stream;
  char head[512];
  int hn = snprintf(head, sizeof(head),
                    "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                    "X-Accel-Buffering: no\r\nConnection: close\r\n",
                    content_type);
  if (hn < 0 || (size_t)hn >= sizeof(head) || rep->oom)
    return NULL;
  c->streaming = true;
  c->done = true;
  c->on_closed = on_closed;
  c->ud = ud;
  c->max_queued = max_queued ? max_queued : ADMIN_STREAM_MAX_QUEUED;
  rep->stream = (struct admin_stream *)(void *)c;
  if (conn_write(c, head, (size_t)hn, rep->extra ? rep->extra : "", rep->nextra) != 0 ||
      conn_write(c, "\r\n", 2, NULL, 0) != 0) {
    /* conn_write closed the connection: on_closed follows from the loop. */
  }
  return rep->stream;
}

int admin_stream_write(struct admin_stream *s, const char *p, size_t n) {
  struct admin_conn *c = &s->c;
  if (c->closing || c->close_after)
    return ADMIN_ECLOSED;
  /* The bound is on what libuv still holds (not yet taken by the kernel):
   * c->queued also counts writes the kernel already took whose callbacks
   * run only on the next loop iteration, and one iteration may carry many
   * posted events, so a client that reads everything would look slow. */
  size_t pending = c->tcp.write_queue_size;
  if (pending + n > c->max_queued) {
    log_info("admin: dropping slow stream client %s (%zu bytes queued)", c->client, pending);
    conn_close(c);
    return ADMIN_ESLOW;
  }
  return conn_write(c, p, n, NULL, 0);
}

size_t admin_stream_queued(const struct admin_stream *s) {
  return s->c.tcp.write_queue_size;
}

void admin_stream_close(struct admin_stream *s) {
  struct admin_conn *c = &s->c;
  if (c->closing)
    return;
  c->close_after = true;
  if (c->queued == 0)
    conn_close(c);
}

/* ---- Host guard --------------------------------------------------------- */

/* ":PORT" after the host: 1..5 digits, at most 65535. */
static bool valid_port(const char *p, size_t n) {
  if (n == 0 || n > 5)
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  return v <= 65535;
}

static bool is_ip_literal(int af, const char *p, size_t n) {
  char text[64];
  unsigned char bin[16];
  if (n == 0 || n >= sizeof(text))
    return false;
  memcpy(text, p, n);
  text[n] = '\0';
  return inet_pton(af, text, bin) == 1;
}

bool admin_host_allowed(struct slice host, const char *const *allowed, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(allowed[i], "*") == 0)
      return true;
  if (host.p == NULL)
    return true; /* no Host header: not a browser */
  const char *p = host.p;
  size_t len = host.n;
  if (len > 0 && p[0] == '[') {
    const char *rb = memchr(p, ']', len);
    if (!rb)
      return false;
    size_t after = len - (size_t)(rb + 1 - p);
    if (after > 0 && (rb[1] != ':' || !valid_port(rb + 2, after - 1)))
      return false;
    return is_ip_literal(AF_INET6, p + 1, (size_t)(rb - p - 1));
  }
  const char *colon = memchr(p, ':', len);
  size_t hn = colon ? (size_t)(colon - p) : len;
  if (hn == 0 || (colon && !valid_port(colon + 1, len - hn - 1)))
    return false;
  struct slice name = slice_make(p, hn);
  if (is_ip_literal(AF_INET, p, hn) || slice_ieq(name, SLICE_LIT("localhost")))
    return true;
  for (size_t i = 0; i < n; i++)
    if (slice_ieq(name, slice_cstr(allowed[i])))
      return true;
  return false;
}

int admin_set_allowed_hosts(struct admin *a, char *const *names, size_t n) {
  char **copy = n ? calloc(n, sizeof(*copy)) : NULL;
  if (n && !copy)
    return UV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if ((copy[i] = strdup(names[i])) == NULL) {
      while (i-- > 0)
        free(copy[i]);
      free(copy);
      return UV_ENOMEM;
    }
  }
  for (size_t i = 0; i < a->nallowed_hosts; i++)
    free(a->allowed_hosts[i]);
  free(a->allowed_hosts);
  a->allowed_hosts = copy;
  a->nallowed_hosts = n;
  return 0;
}

/* 403 for a Host the guard refused. The value is echoed bounded, with
 * anything but printable ASCII (and the quote and backslash) as \xNN. */
static void refuse_host(struct admin_conn *c, struct slice host) {
  char q[ADMIN_HOST_ECHO_MAX * 4 + 8];
  size_t qn = 0;
  size_t n = host.n > ADMIN_HOST_ECHO_MAX ? ADMIN_HOST_ECHO_MAX : host.n;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)host.p[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
      q[qn++] = (char)ch;
    else
      qn += (size_t)snprintf(q + qn, sizeof(q) - qn, "\\x%02x", ch);
  }
  if (host.n > n) {
    memcpy(q + qn, "...", 3);
    qn += 3;
  }
  q[qn] = '\0';
  char msg[512];
  snprintf(msg, sizeof(msg),
           "admin: Host \"%s\" is not allowed (a guard against DNS rebinding); use the IP "
           "address or localhost, or list the name in admin.allowed_hosts\n",
           q);
  simple(c, 403, msg);
}

/* ---- request parsing and dispatch --------------------------------------- */

static const struct admin_routedef *find_route(struct admin *a, struct slice path) {
  const struct admin_routedef *best = NULL;
  for (size_t i = 0; i < a->nroutes; i++) {
    const struct admin_routedef *r = &a->routes[i];
    bool m = path.n == r->len && memcmp(path.p, r->path, r->len) == 0;
    if (!m && r->prefix && path.n > r->len && memcmp(path.p, r->path, r->len) == 0 &&
        (path.p[r->len] == '/' || r->path[r->len - 1] == '/'))
      m = true;
    if (m && (!best || r->len > best->len))
      best = r;
  }
  return best;
}

static void healthz(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  (void)ud;
  (void)req;
  admin_reply_append(rep, "ok\n", 3);
}

static void readyz(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  struct admin *a = ud;
  (void)req;
  if (admin_is_ready(a)) {
    admin_reply_append(rep, "ready\n", 6);
  } else {
    admin_reply_status(rep, 503, NULL);
    admin_reply_append(rep, "draining\n", 9);
  }
}

/* Parse the head in c->in[0..end) and dispatch. */
static void handle_request(struct admin_conn *c, size_t end) {
  struct admin *a = c->a;
  struct admin_header hdrs[ADMIN_MAX_HEADERS];
  struct admin_request req;
  memset(&req, 0, sizeof(req));
  const char *p = c->in, *e = c->in + end;
  const char *eol = memchr(p, '\r', (size_t)(e - p));
  if (!eol) {
    simple(c, 400, "bad request line\n");
    return;
  }
  const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
  if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 || sp1[1] != '/') {
    simple(c, 400, "bad request line: expected \"GET /path HTTP/1.1\"\n");
    return;
  }
  req.method = slice_make(p, (size_t)(sp1 - p));
  c->head_only = slice_eq(req.method, SLICE_LIT("HEAD"));
  const char *t = sp1 + 1;
  const char *q = memchr(t, '?', (size_t)(sp2 - t));
  req.path = slice_make(t, (size_t)((q ? q : sp2) - t));
  if (q)
    req.query = slice_make(q + 1, (size_t)(sp2 - q - 1));
  p = eol + 2;
  size_t nh = 0;
  while (p < e) {
    eol = memchr(p, '\r', (size_t)(e - p));
    if (!eol || eol == p)
      break;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && nh < ADMIN_MAX_HEADERS) {
      const char *v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = eol;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      hdrs[nh].name = slice_make(p, (size_t)(colon - p));
      hdrs[nh].value = slice_make(v, (size_t)(ve - v));
      nh++;
    }
    p = eol + 2;
  }
  req.headers = hdrs;
  req.nheaders = nh;
  req.client = c->client;

  struct slice host = admin_request_header(&req, "host");
  if (!admin_host_allowed(host, (const char *const *)a->allowed_hosts, a->nallowed_hosts)) {
    refuse_host(c, host);
    return;
  }

  const struct admin_routedef *r = find_route(a, req.path);
  if (!r) {
    char msg[512];
    size_t n = (size_t)snprintf(msg, sizeof(msg), "no such admin path; this listener serves:");
    for (size_t i = 0; i < a->nroutes && n + 2 < sizeof(msg); i++)
      n += (size_t)snprintf(msg + n, sizeof(msg) - n, " %s%s", a->routes[i].path,
                            a->routes[i].prefix ? "/..." : "");
    if (n + 2 > sizeof(msg))
      n = sizeof(msg) - 2;
    msg[n++] = '\n';
    msg[n] = 0;
    simple(c, 404, msg);
    return;
  }
  struct admin_reply rep = {.c = c, .status = 200, .ctype = "text/plain; charset=utf-8"};
  r->fn(r->ud, &req, &rep);
  if (rep.stream) {
    /* keep reading to notice the client going away */
  } else if (rep.oom) {
    simple(c, 500, "out of memory building the answer\n");
  } else {
    conn_respond(c, rep.status, rep.ctype, rep.extra, rep.nextra, rep.body ? rep.body : "", rep.n);
  }
  free(rep.body);
  free(rep.extra);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct admin_conn *c = container_of(h, struct admin_conn, tcp);
  (void)suggested;
  if (c->done || c->nin >= sizeof(c->in)) {
    static char sink[4096]; /* admin thread only: input after the head is discarded */
    *buf = uv_buf_init(sink, sizeof(sink));
    return;
  }
  *buf = uv_buf_init(c->in + c->nin, (unsigned)(sizeof(c->in) - c->nin));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct admin_conn *c = container_of(st, struct admin_conn, tcp);
  (void)buf;
  if (nread < 0) {
    conn_close(c); /* EOF or error: for a stream, the client went away */
    return;
  }
  if (c->done || nread == 0)
    return;
  size_t old = c->nin;
  c->nin += (size_t)nread;
  size_t from = old > 3 ? old - 3 : 0;
  for (size_t i = from; i + 3 < c->nin; i++) {
    if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
      uv_timer_stop(&c->timer);
      handle_request(c, i + 4);
      return;
    }
  }
  if (c->nin >= sizeof(c->in))
    simple(c, 431, "request head too large (the admin listener takes at most 8 KiB)\n");
}

static void on_connection(uv_stream_t *server, int status) {
  struct admin *a = server->data;
  if (status < 0) {
    log_warn("admin %s: accept failed: %s", a->address, uv_strerror(status));
    return;
  }
  struct admin_conn *c = calloc(1, sizeof(*c));
  if (!c)
    return;
  c->a = a;
  uv_tcp_init(&a->loop, &c->tcp);
  uv_timer_init(&a->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = a->conns;
  if (a->conns)
    a->conns->prev = c;
  a->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  snprintf(c->client, sizeof(c->client), "-");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->client, sizeof(c->client));
    else
      uv_ip4_name((struct sockaddr_in *)&ss, c->client, sizeof(c->client));
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, on_head_timeout, ADMIN_HEAD_TIMEOUT_MS, 0);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    conn_close(c);
}

/* ---- lifetime ----------------------------------------------------------- */

struct admin *admin_new(const struct sockaddr_storage *addr, const char *address) {
  struct admin *a = calloc(1, sizeof(*a));
  if (!a)
    return NULL;
  a->addr = *addr;
  a->adopt_fd = -1;
  a->address = strdup(address ? address : "admin");
  if (!a->address) {
    free(a);
    return NULL;
  }
  for (size_t i = 0; i < ADMIN_QUEUE_CAP; i++)
    atomic_init(&a->cells[i].seq, i);
  atomic_init(&a->enq_pos, 0);
  atomic_init(&a->ready, true);
  atomic_init(&a->dropped, 0);
  if (admin_route(a, "/healthz", false, healthz, a) != 0 ||
      admin_route(a, "/readyz", false, readyz, a) != 0) {
    admin_free(a);
    return NULL;
  }
  return a;
}

int admin_route(struct admin *a, const char *path, bool prefix, admin_handler_fn fn, void *ud) {
  struct admin_routedef *nr = realloc(a->routes, (a->nroutes + 1) * sizeof(*nr));
  if (!nr)
    return UV_ENOMEM;
  a->routes = nr;
  char *p = strdup(path);
  if (!p)
    return UV_ENOMEM;
  nr[a->nroutes++] = (struct admin_routedef){p, strlen(p), prefix, fn, ud};
  return 0;
}

int admin_on_stop(struct admin *a, void (*fn)(void *ud), void *ud) {
  struct admin_stophook *nh = realloc(a->hooks, (a->nhooks + 1) * sizeof(*nh));
  if (!nh)
    return UV_ENOMEM;
  a->hooks = nh;
  nh[a->nhooks++] = (struct admin_stophook){fn, ud};
  return 0;
}

uv_loop_t *admin_loop(struct admin *a) {
  return &a->loop;
}

void admin_set_ready(struct admin *a, bool ready) {
  if (a)
    atomic_store(&a->ready, ready);
}

bool admin_is_ready(const struct admin *a) {
  return a && atomic_load(&((struct admin *)(uintptr_t)a)->ready);
}

static void on_stop_req(uv_async_t *h) {
  struct admin *a = h->data;
  if (a->stopping)
    return;
  a->stopping = true;
  for (size_t i = 0; i < a->nhooks; i++)
    a->hooks[i].fn(a->hooks[i].ud);
  uv_close((uv_handle_t *)&a->listener, NULL);
  for (struct admin_conn *c = a->conns; c; c = c->next)
    conn_close(c);
  drain_events(a); /* workers are joined: nothing more arrives */
  uv_close((uv_handle_t *)&a->wake, NULL);
  uv_close((uv_handle_t *)&a->stop_req, NULL);
}

static void admin_thread(void *arg) {
  struct admin *a = arg;
  uv_run(&a->loop, UV_RUN_DEFAULT);
}

int admin_start(struct admin *a, char *msg, size_t msglen) {
  int r = uv_loop_init(&a->loop);
  if (r < 0) {
    snprintf(msg, msglen, "admin listener %s: cannot create its event loop: %s", a->address,
             uv_strerror(r));
    return r;
  }
  a->loop_inited = true;
  uv_tcp_init(&a->loop, &a->listener);
  a->listener.data = a;
  uv_async_init(&a->loop, &a->wake, on_wake);
  a->wake.data = a;
  uv_async_init(&a->loop, &a->stop_req, on_stop_req);
  a->stop_req.data = a;
  if (a->adopt_fd >= 0) {
    r = uv_tcp_open(&a->listener, a->adopt_fd);
    if (r < 0)
      close(a->adopt_fd);
    a->adopt_fd = -1; /* the handle owns it now (or it is closed) */
  } else {
    r = uv_tcp_bind(&a->listener, (const struct sockaddr *)&a->addr, 0);
  }
  if (r == 0)
    r = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
  if (r == 0)
    r = uv_thread_create(&a->thread, admin_thread, a);
  if (r < 0) {
    snprintf(msg, msglen, "cannot listen on admin address %s: %s%s", a->address, uv_strerror(r),
             r == UV_EADDRINUSE ? " (another process uses this port: stop it or change "
                                  "admin.address)"
             : r == UV_EACCES   ? " (ports below 1024 need privileges: use a higher port)"
                                : "");
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->wake, NULL);
    uv_close((uv_handle_t *)&a->stop_req, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    return r;
  }
  a->started = true;
  /* Every registered path, those under another one folded into it:
   * "/healthz, /readyz, /metrics, /inspect". */
  char paths[512];
  size_t n = 0;
  paths[0] = '\0';
  for (size_t i = 0; i < a->nroutes && n < sizeof(paths); i++) {
    const struct admin_routedef *ri = &a->routes[i];
    bool under = false;
    for (size_t j = 0; j < a->nroutes && !under; j++)
      under = j != i && ri->len > a->routes[j].len && ri->path[a->routes[j].len] == '/' &&
              memcmp(ri->path, a->routes[j].path, a->routes[j].len) == 0;
    if (!under)
      n += (size_t)snprintf(paths + n, sizeof(paths) - n, "%s%s", n ? ", " : "", ri->path);
  }
  log_info("admin: serving %s on %s", paths, a->address);
  return 0;
}

void admin_adopt_fd(struct admin *a, int fd) {
  a->adopt_fd = fd;
}

int admin_listen_fd(const struct admin *a) {
  uv_os_fd_t fd;
  if (!a || !a->started || uv_fileno((const uv_handle_t *)&a->listener, &fd) != 0)
    return -1;
  return fd;
}

void admin_stop(struct admin *a) {
  if (a && a->started)
    uv_async_send(&a->stop_req);
}

void admin_join(struct admin *a) {
  if (a && a->started) {
    uv_thread_join(&a->thread);
    a->started = false;
  }
}

void admin_free(struct admin *a) {
  if (!a)
    return;
  if (a->adopt_fd >= 0)
    close(a->adopt_fd); /* never started */
  if (a->loop_inited && uv_loop_close(&a->loop) != 0)
    log_error("admin: event loop still had open handles at exit");
  for (size_t i = 0; i < a->nroutes; i++)
    free(a->routes[i].path);
  free(a->routes);
  free(a->hooks);
  for (size_t i = 0; i < a->nallowed_hosts; i++)
    free(a->allowed_hosts[i]);
  free(a->allowed_hosts);
  free(a->address);
  free(a);
}
