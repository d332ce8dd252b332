/* worker: one event-loop thread with its listeners, sessions, upstream
 * pools and free lists. Owns all of them; other threads only call
 * worker_stop (uv_async_send). */
#include "ferry/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/connpool.h"
#include "ferry/exchange.h"
#include "ferry/log.h"
#include "ferry/session.h"
#include "ferry/upstream.h"

#define EXCHANGE_FREE_MAX 64u

struct exchange *worker_exchange_get(struct worker *w) {
  struct exchange *ex = w->free_ex;
  if (ex) {
    w->free_ex = *(struct exchange **)(void *)ex;
    w->nfree_ex--;
    return ex;
  }
  return malloc(sizeof(struct exchange));
}

void worker_exchange_put(struct worker *w, struct exchange *ex) {
  if (w->nfree_ex >= EXCHANGE_FREE_MAX) {
    free(ex);
    return;
  }
  *(struct exchange **)(void *)ex = w->free_ex;
  w->free_ex = ex;
  w->nfree_ex++;
}

void worker_request_id(struct worker *w, char *out) {
  /* "%08x%012x" of (seed, counter), by hand: this runs for every request. */
  static const char hex[] = "0123456789abcdef";
  uint64_t n = ++w->reqid_counter;
  uint32_t seed = (uint32_t)w->reqid_seed;
  for (int i = 7; i >= 0; i--, seed >>= 4)
    out[i] = hex[seed & 15u];
  for (int i = 19; i >= 8; i--, n >>= 4)
    out[i] = hex[n & 15u];
  out[20] = '\0';
}

static void on_stop(uv_async_t *a);
static void on_drain_timeout(uv_timer_t *t);

int worker_init(struct worker *w, unsigned id, const struct config *cfg,
                const struct router *router, struct accesslog *log, struct upstreams *ups) {
  memset(w, 0, sizeof(*w));
  w->id = id;
  w->cfg = cfg;
  w->router = router;
  w->log = log;
  bufpool_init(&w->bufs);
  int r = uv_loop_init(&w->loop);
  if (r < 0)
    return r;
  w->loop.data = w;
  uint64_t seed = 0;
  if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0)
    seed = (uint64_t)uv_hrtime();
  w->reqid_seed = seed ^ ((uint64_t)id << 28);
  w->nups = cfg->nupstreams;
  w->ups = calloc(w->nups ? w->nups : 1, sizeof(*w->ups));
  if (!w->ups)
    return UV_ENOMEM;
  for (size_t i = 0; i < w->nups; i++)
    if (upstream_rt_init(&w->ups[i], &ups->pools[i], w->reqid_seed * 2654435761u + i) != 0)
      return UV_ENOMEM;
  uv_async_init(&w->loop, &w->stop_async, on_stop);
  w->stop_async.data = w;
  uv_timer_init(&w->loop, &w->drain_timer);
  w->drain_timer.data = w;
  uv_timer_init(&w->loop, &w->metrics_timer);
  w->metrics_timer.data = w;
  return 0;
}

static void on_metrics_timer(uv_timer_t *t) {
  struct worker *w = t->data;
  mc_set(&w->metrics.conns_active, w->nsessions);
  metrics_sample_servers(w);
}

static void on_connection(uv_stream_t *server, int status) {
  struct worker_listener *l = server->data;
  if (status < 0) {
    log_warn("listener %s: accept failed: %s", l->cfg->address, uv_strerror(status));
    return;
  }
  session_accept(l);
}

/* A listening socket with SO_REUSEPORT so each worker has its own and the
 * kernel spreads connections. Returns the fd or a negative errno. */
static int listen_socket(const struct sockaddr_storage *addr) {
  int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (addr->ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  socklen_t len =
      addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (bind(fd, (const struct sockaddr *)addr, len) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int worker_listen(struct worker *w) {
  const struct config *cfg = w->cfg;
  w->listeners = calloc(cfg->nlisteners, sizeof(*w->listeners));
  if (!w->listeners)
    return UV_ENOMEM;
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    struct worker_listener *l = &w->listeners[i];
    l->w = w;
    l->cfg = &cfg->listeners[i];
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = l;
    w->nlisteners++;
    int fd = listen_socket(&l->cfg->addr);
    int r = fd;
    if (fd >= 0) {
      r = uv_tcp_open(&l->tcp, fd);
      if (r < 0)
        close(fd);
      else
        r = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    }
    if (r < 0) {
      w->start_error = r;
      snprintf(w->start_error_msg, sizeof(w->start_error_msg), "cannot listen on %s: %s%s",
               l->cfg->address, uv_strerror(r),
               r == UV_EADDRINUSE ? " (another process uses this port: stop it or change "
                                    "listeners[].address)"
               : r == UV_EACCES   ? " (ports below 1024 need privileges: use a higher port)"
                                  : "");
      return r;
    }
  }
  return 0;
}

static void close_listeners(struct worker *w) {
  for (size_t i = 0; i < w->nlisteners; i++)
    if (!uv_is_closing((uv_handle_t *)&w->listeners[i].tcp))
      uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
}

/* Graceful stop: no new connections, idle ones closed, requests in flight
 * finish (their connections close after the response) until
 * timeouts.drain, then everything is closed. */
static void on_stop(uv_async_t *a) {
  struct worker *w = a->data;
  if (w->stopping) {
    if (atomic_load(&w->stop_now))
      session_close_all(w);
    return;
  }
  w->stopping = true;
  close_listeners(w);
  connpool_close_idle(w);
  if (atomic_load(&w->stop_now)) {
    session_close_all(w);
  } else {
    struct session *s = w->sessions;
    while (s) {
      struct session *next = s->next;
      if (!s->ex || s->ex->state == EX_HEAD)
        session_close(s);
      s = next;
    }
  }
  if (w->sessions) {
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->timeouts.drain_ms, 0);
    uv_unref((uv_handle_t *)&w->drain_timer);
  }
  uv_close((uv_handle_t *)&w->stop_async, NULL); /* worker_stop is called once */
}

static void on_drain_timeout(uv_timer_t *t) {
  struct worker *w = t->data;
  if (w->sessions)
    log_warn("worker %u: drain timeout: closing %" PRIu64 " connections with requests in flight",
             w->id, w->nsessions);
  session_close_all(w);
}

void worker_stop(struct worker *w, bool now) {
  if (now)
    atomic_store(&w->stop_now, true);
  uv_async_send(&w->stop_async);
}

void worker_run(struct worker *w) {
  if (!atomic_load(&w->stop_now)) {
    on_metrics_timer(&w->metrics_timer);
    uv_timer_start(&w->metrics_timer, on_metrics_timer, METRICS_SAMPLE_MS, METRICS_SAMPLE_MS);
    uv_unref((uv_handle_t *)&w->metrics_timer);
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* Anything left (e.g. after an abnormal stop) is closed here. */
  session_close_all(w);
  connpool_close_idle(w);
  close_listeners(w);
  if (!uv_is_closing((uv_handle_t *)&w->stop_async))
    uv_close((uv_handle_t *)&w->stop_async, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->metrics_timer))
    uv_close((uv_handle_t *)&w->metrics_timer, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

void worker_destroy(struct worker *w) {
  int r = uv_loop_close(&w->loop);
  if (r != 0)
    log_error("worker %u: event loop still had open handles at exit", w->id);
  for (size_t i = 0; i < w->nups; i++)
    upstream_rt_destroy(&w->ups[i]);
  free(w->ups);
  free(w->listeners);
  while (w->free_ex) {
    struct exchange *ex = w->free_ex;
    w->free_ex = *(struct exchange **)(void *)ex;
    free(ex);
  }
  bufpool_destroy(&w->bufs);
}
