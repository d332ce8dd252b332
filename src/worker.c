/* worker: one event-loop thread with its listeners, sessions, upstream
 * pools and free lists. Owns all of them; other threads only call
 * worker_stop (uv_async_send). */
#include "ferry/worker.h"

#include <errno.h>
#include <fcntl.h>
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
#include "ferry/snapshot.h"
#include "ferry/subreq.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"

static void on_stop(uv_async_t *a);
static void on_reload(uv_async_t *a);
static void on_drain_timeout(uv_timer_t *t);
static void on_grace_over(uv_timer_t *t);

/* Without a drain grace, idle keep-alive connections stay open this long
 * after a stop (see on_stop). */
#define DRAIN_IDLE_LINGER_MS 1000u

/* --- configuration generations ------------------------------------------ */

static void close_idle_of(struct upstream_rt *ups, size_t nups) {
  for (size_t i = 0; i < nups; i++)
    for (size_t j = 0; j < ups[i].nservers; j++)
      connpool_close_idle(&ups[i].servers[j].pool);
}

/* Idle pooled connections of every generation (shutdown). */
static void close_idle_all(struct worker *w) {
  for (struct worker_gen *g = w->oldest_gen; g; g = g->newer)
    if (g->owns_ups)
      close_idle_of(g->ups, g->nups);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  size_t len = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  return memcmp(a, b, len) == 0;
}

/* Rebuilt pools: idle connections to a server that is still there (same
 * upstream name, same address) move to the new generation. */
static void adopt_idle(struct worker_gen *g, struct worker_gen *prev) {
  for (size_t i = 0; i < g->nups; i++) {
    struct upstream_rt *nu = &g->ups[i];
    for (size_t k = 0; k < prev->nups; k++) {
      struct upstream_rt *ou = &prev->ups[k];
      if (strcmp(ou->cfg->name, nu->cfg->name) != 0)
        continue;
      for (size_t a = 0; a < nu->nservers; a++)
        for (size_t b = 0; b < ou->nservers; b++)
          if (!nu->servers[a].gone && !ou->servers[b].gone && ou->servers[b].pool.idle &&
              same_addr(&nu->servers[a].slot->addr, &ou->servers[b].slot->addr))
            connpool_move_idle(&ou->servers[b].pool, &nu->servers[a].pool);
    }
  }
}

/* A generation for snap (the caller's reference on snap moves to it). It
 * takes over prev's upstream views when snap shares prev's pools. */
static struct worker_gen *gen_new(struct worker *w, struct snapshot *snap,
                                  struct worker_gen *prev) {
  struct worker_gen *g = calloc(1, sizeof(*g));
  if (!g)
    return NULL;
  g->snap = snap;
  g->owns_ups = true;
  if (prev && prev->snap->ups == snap->ups) {
    g->ups = prev->ups;
    g->nups = prev->nups;
    prev->owns_ups = false;
    return g;
  }
  g->nups = snap->cfg->nupstreams;
  g->ups = calloc(g->nups ? g->nups : 1, sizeof(*g->ups));
  if (!g->ups) {
    free(g);
    return NULL;
  }
  for (size_t i = 0; i < g->nups; i++) {
    if (upstream_rt_init(&g->ups[i], &snap->ups->pools[i],
                         w->reqid_seed * 2654435761u + i + snap->gen * 7919u) != 0) {
      for (size_t j = 0; j < i; j++)
        upstream_rt_destroy(&g->ups[j]);
      free(g->ups);
      free(g);
      return NULL;
    }
  }
  if (prev && prev->owns_ups)
    adopt_idle(g, prev);
  return g;
}

static void gen_free(struct worker_gen *g) {
  if (g->owns_ups) {
    close_idle_of(g->ups, g->nups);
    for (size_t i = 0; i < g->nups; i++)
      upstream_rt_destroy(&g->ups[i]);
    free(g->ups);
  }
  snapshot_unref(g->snap);
  free(g);
}

/* Retire generations, oldest first, while nothing can use them. */
static void gen_retire(struct worker *w) {
  while (w->oldest_gen != w->gen && w->oldest_gen->refs == 0) {
    struct worker_gen *g = w->oldest_gen;
    w->oldest_gen = g->newer;
    gen_free(g);
  }
}

/* Each session deadline kind's duration from the current configuration
 * (deadlines already set keep their time). */
static void timers_configure(struct worker *w) {
  const struct config *cfg = w->cfg;
  struct deadlines *d = &w->dl;
  deadlines_configure(d, ST_HEADER, cfg->timeouts.client_header_ms);
  deadlines_configure(d, ST_IDLE, cfg->timeouts.client_idle_ms);
  deadlines_configure(d, ST_CONNECT, cfg->timeouts.upstream_connect_ms);
  deadlines_configure(d, ST_RESPONSE, cfg->timeouts.upstream_response_ms);
  deadlines_configure(d, ST_UPSTREAM_IDLE, cfg->timeouts.upstream_idle_ms);
  deadlines_configure(d, ST_BODY, cfg->timeouts.client_idle_ms);
  deadlines_configure(d, ST_CLIENT_STALL, cfg->timeouts.client_idle_ms);
  deadlines_configure(d, ST_TUNNEL, cfg->timeouts.client_idle_ms);
}

static void gen_make_current(struct worker *w, struct worker_gen *g) {
  if (w->gen)
    w->gen->newer = g;
  else
    w->oldest_gen = g;
  w->gen = g;
  w->cfg = g->snap->cfg;
  w->router = g->snap->router;
  w->ups = g->ups;
  w->nups = g->nups;
  timers_configure(w);
  mc_set(&w->metrics.config_gen, g->snap->gen);
}

int worker_init(struct worker *w, unsigned id, struct snapshot *snap, struct accesslog *log) {
  memset(w, 0, sizeof(*w));
  w->splice.rd = w->splice.wr = -1;
  w->id = id;
  w->gen_idle = gen_retire;
  w->log = log;
  bufpool_init(&w->bufs);
  int r = uv_loop_init(&w->loop);
  if (r < 0)
    return r;
  w->loop.data = &w->bufs; /* streams find their buffer pool here */
  splice_pipe_open(&w->splice);
  uint64_t seed = 0;
  if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0)
    seed = (uint64_t)uv_hrtime();
  w->reqid_seed = seed ^ ((uint64_t)id << 28);
  snapshot_ref(snap);
  struct worker_gen *g = gen_new(w, snap, NULL);
  if (!g) {
    snapshot_unref(snap);
    return UV_ENOMEM;
  }
  gen_make_current(w, g);
  uv_async_init(&w->loop, &w->stop_async, on_stop);
  w->stop_async.data = w;
  uv_async_init(&w->loop, &w->reload_async, on_reload);
  w->reload_async.data = w;
  uv_timer_init(&w->loop, &w->drain_timer);
  w->drain_timer.data = w;
  uv_timer_init(&w->loop, &w->grace_timer);
  w->grace_timer.data = w;
  uv_timer_init(&w->loop, &w->accept_timer);
  w->accept_timer.data = w;
  uv_timer_init(&w->loop, &w->metrics_timer);
  w->metrics_timer.data = w;
  session_worker_init(w);
  inspect_batch_init(w);
  return 0;
}

static void on_metrics_timer(uv_timer_t *t) {
  struct worker *w = t->data;
  metrics_sample_servers(w);
}

/* Accepting: the worker reads its listening sockets itself (a uv_poll
 * and accept4) rather than through uv_listen, because libuv hides fd
 * exhaustion: on EMFILE it accepts and closes the waiting connections
 * without telling anyone. Here a lack of fds is logged (at most once per
 * ACCEPT_LOG_MS), counted, and accepting pauses for ACCEPT_PAUSE_MS so
 * the connections wait in the backlog instead of spinning the loop. */
#define ACCEPT_BATCH 64u     /* connections taken per readiness event */
#define ACCEPT_PAUSE_MS 100u /* accepting stops this long when fds run out */
#define ACCEPT_LOG_MS 5000u  /* at most one accept-failure line this often */

static void listeners_poll(struct worker *w, bool on);

static void on_accept_resume(uv_timer_t *t) {
  struct worker *w = t->data;
  listeners_poll(w, true); /* only those still open: none once a drain closed them */
}

static void accept_failed(struct worker_listener *l, int err) {
  struct worker *w = l->w;
  mc_add(&w->metrics.accept_errors, 1);
  uint64_t skipped;
  if (log_rate_due(&w->accept_log, uv_now(&w->loop), ACCEPT_LOG_MS, &skipped))
    log_error("listener %s: cannot accept a connection: %s (%" PRIu64
              " more since the last report); raise the open-file limit (ulimit -n, "
              "LimitNOFILE) or lower limits.max_connections",
              l->cfg->address, uv_strerror(err), skipped);
  if (err == UV_EMFILE || err == UV_ENFILE || err == UV_ENOBUFS || err == UV_ENOMEM) {
    listeners_poll(w, false);
    uv_timer_start(&w->accept_timer, on_accept_resume, ACCEPT_PAUSE_MS, 0);
  }
}

#define OVER_LIMIT_BODY "service unavailable: too many connections (limits.max_connections)\n"
#define OVER_LIMIT_BODY_LEN "67"
_Static_assert(sizeof(OVER_LIMIT_BODY) - 1 == 67, "OVER_LIMIT_BODY_LEN is its length");

/* A connection over limits.max_connections is answered straight from the
 * accept: whatever request bytes are already there are read and dropped
 * (so the close does not turn into a reset that could hide the answer), a
 * fixed 503 is written and the fd is closed. It never becomes a session,
 * so the surplus holds no fd and no memory, whatever the client does. */
static void refuse(int fd) {
  static const char reply[] = "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Retry-After: 1\r\n"
                              "Connection: close\r\n"
                              "Content-Length: " OVER_LIMIT_BODY_LEN "\r\n"
                              "\r\n" OVER_LIMIT_BODY;
  char scratch[4096];
  for (int i = 0; i < 4 && recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; i++)
    ;
  (void)!send(fd, reply, sizeof(reply) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  close(fd);
}

static void on_listener_ready(uv_poll_t *p, int status, int events) {
  (void)events;
  struct worker_listener *l = p->data;
  if (status < 0) {
    accept_failed(l, status);
    return;
  }
  for (unsigned i = 0; i < ACCEPT_BATCH && l->open; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK)
        return;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM)
        continue; /* that connection is gone; the next may be fine */
      accept_failed(l, -e);
      return;
    }
    if (!wctx_conn_opened(l->w)) { /* over limits.max_connections */
      refuse(fd);
      wctx_conn_closed(l->w);
      continue;
    }
    session_accept(l->w, l->cfg, fd);
  }
}

static void listeners_poll(struct worker *w, bool on) {
  for (struct worker_listener *l = w->listeners; l; l = l->next) {
    if (!l->open)
      continue;
    if (on)
      uv_poll_start(&l->poll, UV_READABLE, on_listener_ready);
    else
      uv_poll_stop(&l->poll);
  }
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

static bool same_listener(const struct cfg_listener *a, const struct cfg_listener *b) {
  if (a->proxy_protocol != b->proxy_protocol || a->addr.ss_family != b->addr.ss_family ||
      (a->tls_srv != NULL) != (b->tls_srv != NULL) || a->redirect_https != b->redirect_https)
    return false;
  size_t len =
      a->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  return memcmp(&a->addr, &b->addr, len) == 0 && a->ntrusted_proxies == b->ntrusted_proxies &&
         (a->ntrusted_proxies == 0 || memcmp(a->trusted_proxies, b->trusted_proxies,
                                             a->ntrusted_proxies * sizeof(struct cidr)) == 0);
}

static void close_listener(struct worker_listener *l);

/* Open one listener for lc on a new socket (fd < 0), or on fd, a
 * listening socket handed over by a binary upgrade (taken over, closed on
 * failure). Returns 0, or a negative uv error with start_error_msg filled
 * (the listener is then closed). */
static int open_listener(struct worker *w, const struct cfg_listener *lc, int fd) {
  struct worker_listener *l = calloc(1, sizeof(*l));
  char *addr = strdup(lc->address ? lc->address : "-");
  size_t tsize = lc->ntrusted_proxies * sizeof(struct cidr);
  struct cidr *trusted = tsize ? malloc(tsize) : NULL;
  if (!l || !addr || (tsize && !trusted)) {
    free(l);
    free(addr);
    free(trusted);
    return UV_ENOMEM;
  }
  if (tsize)
    memcpy(trusted, lc->trusted_proxies, tsize);
  l->w = w;
  l->own = *lc;
  l->own.counters = &l->ctr;
  l->own.address = addr;
  l->own.trusted_proxies = trusted; /* the snapshot's copy goes with a reload */
  l->own.tls = NULL;                /* only the built contexts are used */
  l->tls = lc->tls_srv != NULL;
  if (l->own.tls_srv)
    tls_server_ref(l->own.tls_srv);
  l->cfg = &l->own;
  l->next = w->listeners;
  w->listeners = l;
  w->nlisteners++;
  l->fd = -1;
  int r;
  if (fd >= 0) {
    /* inherited without FD_CLOEXEC; the file status is shared with the old
     * process, which also wants it non-blocking */
    r = fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 &&
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0
            ? 0
            : -errno;
    if (r < 0)
      close(fd);
  } else {
    fd = listen_socket(&lc->addr);
    r = fd;
    if (fd >= 0 && listen(fd, 1024) != 0) {
      r = -errno;
      close(fd);
    }
  }
  if (r >= 0) {
    r = uv_poll_init_socket(&w->loop, &l->poll, fd);
    if (r < 0)
      close(fd);
  }
  if (r >= 0) {
    l->fd = fd;
    l->poll.data = l;
    l->open = true;
    r = uv_poll_start(&l->poll, UV_READABLE, on_listener_ready);
    if (r < 0)
      close_listener(l);
  }
  if (r < 0) {
    snprintf(w->start_error_msg, sizeof(w->start_error_msg), "cannot listen on %s: %s%s",
             l->cfg->address, uv_strerror(r),
             r == UV_EADDRINUSE ? " (another process uses this port: stop it or change "
                                  "listeners[].address)"
             : r == UV_EACCES   ? " (ports below 1024 need privileges: use a higher port)"
                                : "");
  }
  return r;
}

/* The socket closes at once (uv_poll does not own it): a client that sees
 * ferry stop listening is refused from then on, not queued. */
static void close_listener(struct worker_listener *l) {
  if (l->open) {
    l->open = false;
    uv_poll_stop(&l->poll);
    close(l->fd);
    l->fd = -1;
    uv_close((uv_handle_t *)&l->poll, NULL);
  }
}

int worker_adopt(struct worker *w, const struct cfg_listener *lc, int fd) {
  int r = open_listener(w, lc, fd);
  if (r < 0)
    w->start_error = r;
  return r;
}

static bool has_listener(const struct worker *w, const struct cfg_listener *lc) {
  for (const struct worker_listener *l = w->listeners; l; l = l->next)
    if (l->open && same_listener(l->cfg, lc))
      return true;
  return false;
}

int worker_listen(struct worker *w) {
  const struct config *cfg = w->cfg;
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    if (has_listener(w, &cfg->listeners[i]))
      continue; /* adopted from the process this one upgrades */
    int r = open_listener(w, &cfg->listeners[i], -1);
    if (r < 0) {
      w->start_error = r;
      return r;
    }
  }
  return 0;
}

/* Make the open listeners match cfg: new ones first (so a changed listener
 * never has a moment with no socket), then close those cfg no longer has. */
static void sync_listeners(struct worker *w, const struct config *cfg) {
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    bool have = false;
    for (struct worker_listener *l = w->listeners; l && !have; l = l->next) {
      have = l->open && same_listener(l->cfg, &cfg->listeners[i]);
      if (have && l->own.tls_srv != cfg->listeners[i].tls_srv) {
        /* re-read certificates: new connections get the new contexts,
         * those in flight keep theirs */
        tls_server_ref(cfg->listeners[i].tls_srv);
        tls_server_unref(l->own.tls_srv);
        l->own.tls_srv = cfg->listeners[i].tls_srv;
      }
    }
    if (!have) {
      if (open_listener(w, &cfg->listeners[i], -1) < 0)
        log_error("worker %u: reload: %s", w->id, w->start_error_msg);
      else if (w->id == 0)
        log_info("reload: listening on %s", cfg->listeners[i].address);
    }
  }
  for (struct worker_listener *l = w->listeners; l; l = l->next) {
    if (!l->open)
      continue;
    bool keep = false;
    for (size_t i = 0; i < cfg->nlisteners && !keep; i++)
      keep = same_listener(l->cfg, &cfg->listeners[i]);
    if (!keep) {
      close_listener(l); /* first: whoever reads the line finds the port closed */
      if (w->id == 0)
        log_info("reload: no longer listening on %s", l->own.address);
    }
  }
}

static void close_listeners(struct worker *w) {
  uv_timer_stop(&w->accept_timer);
  for (struct worker_listener *l = w->listeners; l; l = l->next)
    close_listener(l);
}

size_t worker_listen_fds(const struct worker *w, int *fds, size_t max) {
  size_t n = 0;
  for (const struct worker_listener *l = w->listeners; l; l = l->next)
    if (l->open && l->fd >= 0 && n < max)
      fds[n++] = l->fd;
  return n;
}

void worker_reload(struct worker *w, struct snapshot *snap) {
  snapshot_ref(snap);
  struct snapshot *old = atomic_exchange(&w->pending, snap);
  if (old)
    snapshot_unref(old);
  uv_async_send(&w->reload_async);
}

static void on_reload(uv_async_t *a) {
  struct worker *w = a->data;
  struct snapshot *snap = atomic_exchange(&w->pending, NULL);
  if (!snap)
    return;
  if (w->stopping) {
    snapshot_unref(snap);
    return;
  }
  struct worker_gen *prev = w->gen;
  struct worker_gen *g = gen_new(w, snap, prev);
  if (!g) {
    log_error("worker %u: out of memory applying configuration generation %" PRIu64
              "; still serving the previous one",
              w->id, snap->gen);
    snapshot_unref(snap);
    return;
  }
  gen_make_current(w, g);
  if (prev->owns_ups) /* pools replaced: idle connections to the old ones are useless */
    close_idle_of(prev->ups, prev->nups);
  sync_listeners(w, w->cfg);
  gen_retire(w);
}

/* Listeners close; requests in flight get timeouts.drain to finish. The
 * drain timer does not keep the loop alive: the loop ends with the last
 * session. */
static void stop_accepting(struct worker *w) {
  close_listeners(w);
  if (w->nsessions) {
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->timeouts.drain_ms, 0);
    uv_unref((uv_handle_t *)&w->drain_timer);
  }
}

/* Graceful stop: requests in flight finish (their connections close after
 * the response, as w->stopping makes every response the last of its
 * connection).
 *
 * Listeners keep accepting for timeouts.drain_grace (a load balancer
 * still sends traffic until its health check sees /readyz 503), and idle
 * keep-alive connections stay open as long: a request on either is served
 * with Connection: close. Then listeners and idle connections close, and
 * timeouts.drain bounds the rest.
 *
 * Without a grace (or for a handover: a binary upgrade, where the same
 * sockets stay open in the new process) listeners close at once, and idle
 * keep-alive connections are given DRAIN_IDLE_LINGER_MS: a client that
 * keeps its connection busy sends its next request within it and gets a
 * response with Connection: close (then reconnects), rather than seeing
 * its connection closed under a request it was sending. */
static void on_stop(uv_async_t *a) {
  struct worker *w = a->data;
  if (w->stopping) {
    if (atomic_load(&w->stop_now))
      session_close_all(w);
    return;
  }
  w->stopping = true;
  subreq_worker_stop(w); /* mirror copies never hold up a stop */
  close_idle_all(w);
  if (atomic_load(&w->stop_now)) {
    w->drain_idle_closed = true;
    session_close_all(w);
  }
  /* The session timer must not keep the loop alive once no session has a
   * deadline (session_close keeps checking while stopping). */
  deadlines_quiesce(&w->dl);
  uint64_t grace = w->cfg->timeouts.drain_grace_ms;
  if (grace > 0 && !atomic_load(&w->stop_now) && !atomic_load(&w->handover)) {
    if (w->id == 0)
      log_info("drain: still accepting connections for %" PRIu64 " ms (timeouts.drain_grace)",
               grace);
    uv_timer_start(&w->grace_timer, on_grace_over, grace, 0); /* keeps the loop alive */
  } else {
    stop_accepting(w);
    if (w->nsessions) {
      uv_timer_start(&w->grace_timer, on_grace_over, DRAIN_IDLE_LINGER_MS, 0);
      uv_unref((uv_handle_t *)&w->grace_timer); /* the sessions keep the loop up */
    }
  }
  uv_close((uv_handle_t *)&w->stop_async, NULL); /* worker_stop is called once */
  uv_close((uv_handle_t *)&w->reload_async, NULL);
}

/* The grace (or the idle linger) is over: idle keep-alive connections
 * close, and listeners still open close. */
static void on_grace_over(uv_timer_t *t) {
  struct worker *w = t->data;
  w->drain_idle_closed = true;
  session_close_idle(w);
  bool accepting = false;
  for (struct worker_listener *l = w->listeners; l && !accepting; l = l->next)
    accepting = l->open;
  if (accepting) {
    stop_accepting(w);
    if (w->id == 0)
      log_info("drain: timeouts.drain_grace is over: no longer accepting connections");
  }
}

static void on_drain_timeout(uv_timer_t *t) {
  struct worker *w = t->data;
  if (w->nsessions)
    log_warn("worker %u: drain timeout: closing %" PRIu64 " connections with requests in flight",
             w->id, w->nsessions);
  session_close_all(w);
}

void worker_stop(struct worker *w, bool now) {
  if (now)
    atomic_store(&w->stop_now, true);
  uv_async_send(&w->stop_async);
}

void worker_handover(struct worker *w) {
  atomic_store(&w->handover, true);
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
  subreq_close_all(w);
  close_idle_all(w);
  close_listeners(w);
  if (!uv_is_closing((uv_handle_t *)&w->stop_async))
    uv_close((uv_handle_t *)&w->stop_async, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->reload_async))
    uv_close((uv_handle_t *)&w->reload_async, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->grace_timer))
    uv_close((uv_handle_t *)&w->grace_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->accept_timer))
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->metrics_timer))
    uv_close((uv_handle_t *)&w->metrics_timer, NULL);
  session_worker_close(w);
  inspect_batch_close(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

int worker_destroy(struct worker *w) {
  int r = uv_loop_close(&w->loop);
  if (r != 0)
    log_error("worker %u: event loop still had open handles at exit", w->id);
  struct snapshot *pending = atomic_exchange(&w->pending, NULL);
  if (pending)
    snapshot_unref(pending);
  while (w->oldest_gen) {
    struct worker_gen *g = w->oldest_gen;
    w->oldest_gen = g->newer;
    gen_free(g);
  }
  w->gen = NULL;
  w->ups = NULL;
  while (w->listeners) {
    struct worker_listener *l = w->listeners;
    w->listeners = l->next;
    free(l->own.address);
    free(l->own.trusted_proxies);
    tls_server_unref(l->own.tls_srv);
    free(l);
  }
  exchange_free_all(w);
  session_rx_free_all(w);
  splice_pipe_close(&w->splice);
  bufpool_destroy(&w->bufs);
  return r;
}
