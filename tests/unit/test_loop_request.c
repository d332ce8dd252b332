/* One proxied request through a real worker loop, end to end inside one
 * process: configuration from a string, snapshot_build, worker_init and
 * worker_listen as main.c does them, a client thread and a scripted
 * upstream thread on plain sockets, the worker loop on the test thread.
 * The client stops the worker (worker_stop is thread-safe) once it has
 * its answer. Then the loop must close with no handle left
 * (worker_destroy returns uv_loop_close's 0), the idle connections on
 * both sides must have been closed by the stop, and everything is freed
 * as main.c frees it, so LeakSanitizer has nothing to report. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/accesslog.h"
#include "ferry/config.h"
#include "ferry/snapshot.h"
#include "ferry/worker.h"
#include "leak_check.h"
#include "script_server.h"

TestSuite(loop_request, .timeout = 60, .fini = abort_on_leaks);

#define UPSTREAM_BODY "hello from the upstream\n"
#define UPSTREAM_RESPONSE                                                                          \
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Upstream: scripted\r\nContent-Length: 24\r\n"  \
  "\r\n" UPSTREAM_BODY

/* The client: one request, its whole response, then the stop. */
struct client {
  uint16_t port;
  struct worker *w;
  uv_thread_t thread;
  char resp[8192];
  size_t len;
  size_t head_len;   /* through the empty line */
  bool complete;     /* head and Content-Length body read */
  bool ferry_closed; /* EOF from ferry after the stop (idle keep-alive closed) */
  int error;
};

static const char *find_header(const char *head, size_t head_len, const char *name, size_t *vlen) {
  size_t nlen = strlen(name);
  for (const char *p = memmem(head, head_len, "\r\n", 2); p && p + 2 < head + head_len;
       p = memmem(p + 2, (size_t)(head + head_len - (p + 2)), "\r\n", 2)) {
    const char *line = p + 2;
    if ((size_t)(head + head_len - line) > nlen + 1 && strncasecmp(line, name, nlen) == 0 &&
        line[nlen] == ':') {
      const char *v = line + nlen + 1;
      while (*v == ' ')
        v++;
      const char *end = memmem(v, (size_t)(head + head_len - v), "\r\n", 2);
      *vlen = end ? (size_t)(end - v) : 0;
      return v;
    }
  }
  return NULL;
}

static void client_main(void *arg) {
  struct client *c = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(c->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0) {
    c->error = errno;
    goto stop;
  }
  script_timeout(fd);
  static const char req[] = "GET / HTTP/1.1\r\nHost: loop.test\r\nUser-Agent: unit\r\n\r\n";
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      !script_send_all(fd, req, sizeof(req) - 1)) {
    c->error = errno;
    goto stop;
  }
  size_t want = 0; /* head + body, once the head is known */
  while (!c->complete) {
    ssize_t r = recv(fd, c->resp + c->len, sizeof(c->resp) - 1 - c->len, 0);
    if (r <= 0) {
      c->error = r < 0 ? errno : EPROTO;
      goto stop;
    }
    c->len += (size_t)r;
    c->resp[c->len] = '\0';
    if (!c->head_len) {
      const char *e = memmem(c->resp, c->len, "\r\n\r\n", 4);
      if (!e)
        continue;
      c->head_len = (size_t)(e + 4 - c->resp);
      size_t vlen;
      const char *cl = find_header(c->resp, c->head_len, "Content-Length", &vlen);
      if (!cl) {
        c->error = EPROTO;
        goto stop;
      }
      want = c->head_len + strtoul(cl, NULL, 10);
    }
    c->complete = c->len >= want;
  }
  /* Answered: stop the worker gracefully; it closes this idle keep-alive
   * connection, which the client sees as EOF. */
  worker_stop(c->w, false);
  char tmp[64];
  ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
  c->ferry_closed = r == 0;
  close(fd);
  return;
stop:
  if (fd >= 0)
    close(fd);
  worker_stop(c->w, false); /* never leave the loop running */
}

static struct config *load(const char *text) {
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  int rc = config_load_string("loop.yaml", text, strlen(text), &cfg, &diag);
  for (size_t i = 0; i < diag.n; i++)
    cr_log_info("%s", diag.msgs[i]);
  config_diag_free(&diag);
  cr_assert_eq(rc, 0, "the test configuration loads");
  return cfg;
}

/* A free port on 127.0.0.1, held by a bound (not listening) SO_REUSEPORT
 * socket until the worker's own SO_REUSEPORT listener is bound beside it,
 * so no other process can take it in between. */
static int reserve_port(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  int one = 1;
  cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t alen = sizeof(a);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

Test(loop_request, one_request_through_a_worker_loop_leaves_no_handle_behind) {
  struct script_server up;
  script_server_start(&up, UPSTREAM_RESPONSE, strlen(UPSTREAM_RESPONSE), false);
  uint16_t port;
  int reserved = reserve_port(&port);

  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "listeners: [{address: 127.0.0.1:%u}]\n"
           "workers: 1\n"
           "access_log: {path: off}\n"
           "timeouts: {drain: 5s}\n"
           "upstreams:\n"
           "  app:\n"
           "    servers: [{address: 127.0.0.1:%u}]\n"
           "routes: [{path_prefix: /, upstream: app}]\n",
           (unsigned)port, (unsigned)up.port);
  struct config *cfg = load(yaml);

  /* as main.c: the snapshot owns router and pools, main keeps cfg */
  struct snapshot_reaper reaper = {0}; /* no wake: the last unref frees at once */
  char err[512] = "";
  struct snapshot *snap = snapshot_build(cfg, NULL, &reaper, 1, err, sizeof(err));
  cr_assert_not_null(snap, "snapshot_build: %s", err);
  snap->owns_cfg = false;
  struct accesslog alog;
  cr_assert_eq(accesslog_open(&alog, cfg, 1, err, sizeof(err)), 0, "%s", err);

  struct worker *w = calloc(1, sizeof(*w));
  cr_assert_not_null(w);
  _Atomic uint64_t conns = 0;
  cr_assert_eq(worker_init(w, 0, snap, &alog), 0);
  w->proc_conns = &conns;
  cr_assert_eq(worker_listen(w), 0, "%s", w->start_error_msg);
  close(reserved);

  struct client c = {.port = port, .w = w};
  cr_assert_eq(uv_thread_create(&c.thread, client_main, &c), 0);
  worker_run(w); /* until the client's worker_stop, then every handle closed */
  uv_thread_join(&c.thread);
  int loop_close = worker_destroy(w);
  script_server_join(&up);
  uint64_t conns_left = atomic_load(&conns);
  free(w);
  snapshot_unref(snap);
  snapshot_reap(&reaper);
  config_free(cfg); /* after every snapshot that could point into it */
  accesslog_close(&alog);

  cr_assert_eq(loop_close, 0, "uv_loop_close: no handle left behind");
  cr_assert_eq(conns_left, 0u, "every client connection counted out");

  /* the client's answer */
  cr_assert_eq(c.error, 0, "client: %s", strerror(c.error));
  cr_assert(c.complete);
  cr_assert_eq(strncmp(c.resp, "HTTP/1.1 200 ", 13), 0, "status line: %.40s", c.resp);
  cr_assert_eq(c.len - c.head_len, strlen(UPSTREAM_BODY));
  cr_assert_str_eq(c.resp + c.head_len, UPSTREAM_BODY, "the body is the upstream's");
  size_t n;
  const char *v = find_header(c.resp, c.head_len, "X-Upstream", &n);
  cr_assert(v && n == 8 && memcmp(v, "scripted", 8) == 0, "the upstream's headers come back");
  size_t idlen;
  const char *id = find_header(c.resp, c.head_len, "X-Request-Id", &idlen);
  cr_assert_not_null(id, "X-Request-Id on the response");
  cr_assert_gt(idlen, 0u);
  cr_assert(c.ferry_closed, "the stop closed the idle keep-alive client connection");

  /* what the upstream got: the request, forwarded with the same id */
  cr_assert(up.answered);
  cr_assert_eq(strncmp(up.req, "GET / HTTP/1.1\r\n", 16), 0, "request line: %.40s", up.req);
  size_t uplen;
  const char *upid = find_header(up.req, up.req_len, "X-Request-Id", &uplen);
  cr_assert_not_null(upid, "X-Request-Id forwarded upstream");
  cr_assert(uplen == idlen && memcmp(upid, id, idlen) == 0,
            "the client and the upstream see the same request id");
  cr_assert_not_null(find_header(up.req, up.req_len, "Via", &n));
  cr_assert(up.peer_closed, "the stop closed the pooled upstream connection");
}
