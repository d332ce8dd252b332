/* ferry-echo: the demo upstream for ferry.
 *
 *   ferry-echo [-n NAME] ADDR:PORT        ADDR is IPv4 or [IPv6]
 *
 * Answers every request with 200, Content-Type: text/plain, an
 * X-Echo-Server: NAME header and a Content-Length body that shows what
 * arrived:
 *
 *   echo NAME
 *   GET /path?q=1 HTTP/1.1          <- the request line as received
 *   Host: example.com               <- each header line as received
 *   ...
 *                                   <- a blank line
 *   body: N bytes                   <- the request body is counted, not kept
 *
 * Keep-alive (HTTP/1.1 by default, HTTP/1.0 with Connection: keep-alive),
 * pipelining, chunked and Content-Length request bodies, and
 * Expect: 100-continue are supported. Memory per connection is bounded: a
 * 64 KiB read buffer, a 64 KiB cap on the echoed head (431 over it), and
 * reading pauses while more than 256 KiB of responses wait to be written.
 * SIGINT / SIGTERM close everything and exit 0. */
#include <llhttp.h>
#include <uv.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define READ_BUF_SIZE (64u * 1024u)
#define HEAD_MAX (64u * 1024u)
#define WRITE_HIGH_WATER (256u * 1024u)
#define WRITE_LOW_WATER (64u * 1024u)
#define LINGER_MS 2000

struct conn {
  uv_tcp_t tcp;
  uv_timer_t linger; /* bounds the wait for the client's FIN after ours */
  llhttp_t parser;
  struct conn *prev, *next;
  int open_handles; /* freed when both handles are closed */

  char rbuf[READ_BUF_SIZE];
  size_t pend_off, pend_len; /* unparsed bytes kept in rbuf while paused */
  bool paused;               /* parser paused by backpressure, reading stopped */
  bool done;                 /* no more requests: flush writes, then shut down */
  bool got_eof;              /* the client closed its side */
  bool shut;                 /* our FIN was sent; discarding input until EOF */
  bool closed;               /* uv_close called */
  size_t pending_writes;

  /* The request being parsed. */
  char head[HEAD_MAX]; /* request line + header lines, '\n'-terminated */
  size_t head_len;
  bool head_overflow;
  bool in_head;                /* false after headers complete (trailers are not echoed) */
  size_t field_off, value_off; /* where the current header's name / value start */
  size_t field_len;
  bool expect_continue;
  uint64_t body_bytes;
};

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sig_int, sig_term;
static struct conn *conns;
static const char *server_name = "echo";
static llhttp_settings_t settings;

static void conn_close(struct conn *c);
static void conn_feed(struct conn *c, const char *data, size_t len);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- writing -------------------------------------------------------- */

struct wreq {
  uv_write_t req;
  size_t len;
  char data[];
};

static void on_linger_timeout(uv_timer_t *t) {
  conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct conn *c = req->handle->data;
  free(req);
  if (status < 0)
    conn_close(c);
}

/* All responses are out: send FIN, then read and discard until the client
 * closes too (so unread input cannot turn our close into a reset that
 * destroys the response in flight), bounded by LINGER_MS. */
static void conn_finish(struct conn *c) {
  if (c->closed || c->shut)
    return;
  if (c->got_eof) {
    conn_close(c);
    return;
  }
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    conn_close(c);
    return;
  }
  c->shut = true;
  c->paused = false;
  /* Reading may have been stopped by backpressure; the FIN must be seen. */
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  uv_timer_start(&c->linger, on_linger_timeout, LINGER_MS, 0);
}

static void conn_resume(struct conn *c);

static void on_write(uv_write_t *req, int status) {
  struct conn *c = req->handle->data;
  free(req);
  c->pending_writes--;
  if (c->closed)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->done) {
    if (c->pending_writes == 0)
      conn_finish(c);
  } else if (c->paused &&
             uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= WRITE_LOW_WATER) {
    conn_resume(c);
  }
}

/* Queue len bytes; returns false (and closes) if that fails. */
static bool conn_write(struct conn *c, struct wreq *w) {
  uv_buf_t buf = uv_buf_init(w->data, (unsigned int)w->len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
    free(w);
    conn_close(c);
    return false;
  }
  c->pending_writes++;
  return true;
}

static struct wreq *wreq_new(size_t cap) {
  struct wreq *w = malloc(sizeof *w + cap);
  if (w)
    w->len = 0;
  return w;
}

/* An error answer; the connection closes after it. */
static void conn_error(struct conn *c, int status, const char *reason, const char *detail) {
  struct wreq *w = wreq_new(512);
  c->done = true;
  if (!w) {
    conn_close(c);
    return;
  }
  char body[256];
  int blen = snprintf(body, sizeof body, "%s: %s\n", reason, detail);
  if (blen < 0 || (size_t)blen >= sizeof body)
    blen = (int)strlen(body);
  int n = snprintf(w->data, 512,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                   "X-Echo-Server: %.64s\r\nConnection: close\r\n\r\n%s",
                   status, reason, blen, server_name, body);
  w->len = (n < 0 || n >= 512) ? 511 : (size_t)n;
  conn_write(c, w); /* on_write shuts the connection down once all is out */
}

/* ---- llhttp callbacks ---------------------------------------------- */

static bool head_append(struct conn *c, const char *at, size_t len) {
  if (c->head_overflow || len > HEAD_MAX - c->head_len) {
    c->head_overflow = true;
    return false;
  }
  memcpy(c->head + c->head_len, at, len);
  c->head_len += len;
  return true;
}

#define APPEND(c, s)                                                                               \
  do {                                                                                             \
    if (!head_append((c), (s), sizeof(s) - 1))                                                     \
      return HPE_USER;                                                                             \
  } while (0)

static int on_message_begin(llhttp_t *p) {
  struct conn *c = p->data;
  c->head_len = 0;
  c->head_overflow = false;
  c->in_head = true;
  c->expect_continue = false;
  c->body_bytes = 0;
  return 0;
}

static int on_head_data(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  if (c->in_head && !head_append(c, at, len))
    return HPE_USER;
  return 0;
}

static int on_method_complete(llhttp_t *p) {
  APPEND((struct conn *)p->data, " ");
  return 0;
}

static int on_url_complete(llhttp_t *p) {
  APPEND((struct conn *)p->data, " HTTP/");
  return 0;
}

static int on_version_complete(llhttp_t *p) {
  struct conn *c = p->data;
  APPEND(c, "\n");
  c->field_off = c->head_len;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  struct conn *c = p->data;
  if (!c->in_head)
    return 0;
  c->field_len = c->head_len - c->field_off;
  APPEND(c, ": ");
  c->value_off = c->head_len;
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  struct conn *c = p->data;
  if (!c->in_head)
    return 0;
  const char *name = c->head + c->field_off;
  const char *value = c->head + c->value_off;
  size_t vlen = c->head_len - c->value_off;
  if (c->field_len == 6 && strncasecmp(name, "expect", 6) == 0 && vlen == 12 &&
      strncasecmp(value, "100-continue", 12) == 0)
    c->expect_continue = true;
  APPEND(c, "\n");
  c->field_off = c->head_len;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct conn *c = p->data;
  c->in_head = false;
  if (c->expect_continue && p->http_major == 1 && p->http_minor >= 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct wreq *w = wreq_new(sizeof cont);
    if (!w)
      return HPE_USER;
    memcpy(w->data, cont, sizeof cont - 1);
    w->len = sizeof cont - 1;
    if (!conn_write(c, w))
      return HPE_USER;
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  (void)at;
  ((struct conn *)p->data)->body_bytes += len;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct conn *c = p->data;
  bool keep_alive = llhttp_should_keep_alive(p) != 0;
  bool head_only = p->method == HTTP_HEAD;
  bool http10 = p->http_major == 1 && p->http_minor == 0;

  char tail[64];
  int tlen = snprintf(tail, sizeof tail, "\nbody: %" PRIu64 " bytes\n", c->body_bytes);
  size_t name_len = strlen(server_name);
  size_t body_len = 5 + name_len + 1 + c->head_len + (size_t)tlen; /* "echo " NAME "\n" */

  struct wreq *w = wreq_new(256 + name_len + body_len);
  if (!w)
    return HPE_USER;
  int n = snprintf(w->data, 256 + name_len,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "X-Echo-Server: %s\r\n%s\r\n",
                   body_len, server_name,
                   !keep_alive ? "Connection: close\r\n"
                   : http10    ? "Connection: keep-alive\r\n"
                               : "");
  w->len = (size_t)n;
  if (!head_only) {
    char *b = w->data + w->len;
    memcpy(b, "echo ", 5);
    memcpy(b + 5, server_name, name_len);
    b[5 + name_len] = '\n';
    memcpy(b + 6 + name_len, c->head, c->head_len);
    memcpy(b + 6 + name_len + c->head_len, tail, (size_t)tlen);
    w->len += body_len;
  }
  if (!conn_write(c, w))
    return HPE_USER;

  if (!keep_alive) {
    c->done = true;
    return HPE_PAUSED; /* stop parsing; what follows is discarded */
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_HIGH_WATER) {
    c->paused = true;
    return HPE_PAUSED;
  }
  return 0;
}

/* ---- reading --------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct conn *c = h->data;
  *buf = uv_buf_init(c->rbuf, (unsigned int)sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  (void)buf;
  if (c->closed)
    return;
  if (nread == UV_EOF) {
    c->got_eof = true;
    uv_read_stop(s);
    if (c->shut || c->pending_writes == 0) {
      conn_close(c);
    } else {
      /* Half-close: answer what was asked, then close. */
      c->done = true;
      c->paused = false;
    }
    return;
  }
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->done || c->shut)
    return; /* after the last request: discard */
  conn_feed(c, c->rbuf, (size_t)nread);
}

static void conn_feed(struct conn *c, const char *data, size_t len) {
  for (;;) {
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (c->closed)
      return;
    if (err == HPE_OK)
      return;
    if (err == HPE_PAUSED_UPGRADE) {
      /* We answered 200, not 101: the connection stays HTTP. */
      const char *pos = llhttp_get_error_pos(&c->parser);
      llhttp_resume_after_upgrade(&c->parser);
      if (c->done)
        return;
      len -= (size_t)(pos - data);
      data = pos;
      continue;
    }
    if (err == HPE_PAUSED) {
      if (c->done) {
        if (c->pending_writes == 0)
          conn_finish(c);
        return;
      }
      const char *pos = llhttp_get_error_pos(&c->parser);
      c->pend_off = (size_t)(pos - c->rbuf);
      c->pend_len = len - (size_t)(pos - data);
      uv_read_stop((uv_stream_t *)&c->tcp);
      return;
    }
    if (c->done) /* a write failed inside a callback, or similar */
      return;
    if (c->head_overflow)
      conn_error(c, 431, "Request Header Fields Too Large", "request head over 64 KiB");
    else
      conn_error(c, 400, "Bad Request", llhttp_get_error_reason(&c->parser));
    return;
  }
}

static void conn_resume(struct conn *c) {
  c->paused = false;
  llhttp_resume(&c->parser);
  size_t off = c->pend_off, len = c->pend_len;
  c->pend_len = 0;
  if (len > 0)
    conn_feed(c, c->rbuf + off, len);
  if (!c->closed && !c->paused && !c->done)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- connections ------------------------------------------------------ */

static void on_conn_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->open_handles == 0)
    free(c);
}

static void conn_close(struct conn *c) {
  if (c->closed)
    return;
  c->closed = true;
  if (c->prev)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->linger, on_conn_handle_closed);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    fprintf(stderr, "ferry-echo: accept: %s\n", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    uv_tcp_t *t = malloc(sizeof *t);
    if (t && uv_tcp_init(loop, t) == 0 && uv_accept(server, (uv_stream_t *)t) == 0)
      uv_close((uv_handle_t *)t, (uv_close_cb)free);
    else
      free(t);
    return;
  }
  uv_tcp_init(loop, &c->tcp);
  uv_timer_init(loop, &c->linger);
  c->tcp.data = c;
  c->linger.data = c;
  c->open_handles = 2;
  c->next = conns;
  if (conns)
    conns->prev = c;
  conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- start and stop --------------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  (void)signum;
  uv_close((uv_handle_t *)&listener, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_term, NULL);
  while (conns)
    conn_close(conns);
}

static int parse_addr(const char *s, struct sockaddr_storage *ss) {
  char host[256];
  const char *colon;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
      return -1;
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = '\0';
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
      return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
  }
  char *endp;
  long port = strtol(colon + 1, &endp, 10);
  if (colon[1] == '\0' || *endp != '\0' || port < 0 || port > 65535)
    return -1;
  if (s[0] == '[')
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
  return uv_ip4_addr(host[0] ? host : "0.0.0.0", (int)port, (struct sockaddr_in *)ss);
}

static void usage(FILE *f) {
  fprintf(f, "usage: ferry-echo [-n NAME] ADDR:PORT\n"
             "  ADDR is an IPv4 address or [IPv6]; every request is answered with 200\n"
             "  and a text body echoing the request line, headers and body size.\n");
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "n:h")) != -1) {
    switch (opt) {
    case 'n':
      server_name = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 1;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 1;
  }
  const char *addr_str = argv[optind];
  if (strlen(server_name) > 64 || strpbrk(server_name, "\r\n")) {
    fprintf(stderr, "ferry-echo: NAME must be at most 64 characters on one line\n");
    return 1;
  }
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  if (parse_addr(addr_str, &addr) != 0) {
    fprintf(stderr, "ferry-echo: bad address \"%s\" (expected IPv4:PORT or [IPv6]:PORT)\n",
            addr_str);
    return 1;
  }

  signal(SIGPIPE, SIG_IGN);
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_method = on_head_data;
  settings.on_method_complete = on_method_complete;
  settings.on_url = on_head_data;
  settings.on_url_complete = on_url_complete;
  settings.on_version = on_head_data;
  settings.on_version_complete = on_version_complete;
  settings.on_header_field = on_head_data;
  settings.on_header_field_complete = on_header_field_complete;
  settings.on_header_value = on_head_data;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;

  loop = uv_default_loop();
  uv_tcp_init(loop, &listener);
  int rc = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&listener, 511, on_connection);
  if (rc != 0) {
    fprintf(stderr, "ferry-echo: cannot listen on %s: %s\n", addr_str, uv_strerror(rc));
    uv_close((uv_handle_t *)&listener, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 2;
  }
  uv_signal_init(loop, &sig_int);
  uv_signal_init(loop, &sig_term);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_term, on_signal, SIGTERM);

  fprintf(stderr, "ferry-echo %s listening on %s\n", server_name, addr_str);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
