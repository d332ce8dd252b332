/* health: the monitor thread (active checks and DNS refresh).
 *
 * Owns its loop (and the buffer pool its streams draw from), a probe per
 * checked server slot (timers, a check connection while one runs: a
 * stream, over TLS for upstreams with `tls`, with their verification) and
 * a resolver per configured server name. It writes shared slot state only
 * through atomics (slot->down) and the uppool_add/uppool_remove
 * membership calls; it is the only thread that changes membership once
 * workers run. */
#include "ferry/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/err.h"
#include "ferry/log.h"
#include "ferry/resolve.h"
#include "ferry/stream.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"

struct health;

struct probe {
  struct health *h;
  struct uppool *pool;
  struct upslot *slot;
  uv_timer_t interval;
  uv_timer_t timeout;
  uv_connect_t creq;
  char rbuf[256];
  size_t rlen;
  uint32_t fails, passes;
  uint32_t epoch;     /* slot->epoch the counts belong to */
  bool busy;          /* a check runs: st is open */
  bool finished;      /* the running check has its result */
  bool local_failing; /* the last check could not run for a local shortage (logged) */
  int open;           /* handles not yet closed */
  struct probe *next;
  char req[600];
  size_t reqlen;
  /* The check connection; tc right after it is its TLS state when the
   * upstream has `tls` (set up again for every check). */
  struct stream st;
  struct tls_conn tc;
};

struct resolver {
  struct health *h;
  struct uppool *pool;
  const struct cfg_server *cs;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  bool busy;
  bool failing; /* the failure was logged */
  bool full;    /* "no free slot" was logged */
};

struct health {
  struct upstreams *ups;
  uv_loop_t loop;
  struct bufpool bufs; /* the loop's (loop.data): what check streams read into */
  uv_async_t stop_async;
  uv_thread_t thread;
  bool stopping;
  struct probe ***probe_of; /* [pool][slot] */
  struct probe *probes;     /* all, for teardown */
  struct resolver *res;
  size_t nres;
};

/* --- active checks ------------------------------------------------------ */

static void record(struct probe *p, bool pass, const char *why) {
  const struct cfg_health_check *hc = &p->pool->cfg->health_check;
  bool down = atomic_load(&p->slot->down);
  if (pass) {
    p->fails = 0;
    if (down && ++p->passes >= hc->healthy_threshold) {
      /* Checks passing again also end a passive ejection. */
      atomic_store(&p->slot->eject_until_ms, 0);
      atomic_store(&p->slot->consecutive_5xx, 0);
      atomic_store(&p->slot->down, false);
      log_info("upstream %s server %s up: %u passed check%s", p->pool->cfg->name, p->slot->name,
               p->passes, p->passes == 1 ? "" : "s");
      p->passes = 0;
    }
    return;
  }
  p->passes = 0;
  if (!down && ++p->fails >= hc->unhealthy_threshold) {
    atomic_store(&p->slot->down, true);
    log_warn("upstream %s server %s down: %u failed check%s (%s)", p->pool->cfg->name,
             p->slot->name, p->fails, p->fails == 1 ? "" : "s", why);
    p->fails = 0;
  } else {
    log_debug("upstream %s server %s: health check failed (%s)", p->pool->cfg->name, p->slot->name,
              why);
  }
}

static void on_probe_handle_closed(uv_handle_t *h) {
  struct probe *p = h->data;
  p->open--;
}

static inline struct probe *stream_probe(struct stream *st) {
  return container_of(st, struct probe, st);
}

static void on_stream_closed(struct stream *st) {
  struct probe *p = stream_probe(st);
  p->busy = false;
  p->open--;
}

static void end_probe(struct probe *p) {
  p->finished = true;
  uv_timer_stop(&p->timeout);
  stream_close(&p->st);
}

static void finish(struct probe *p, bool pass, const char *why) {
  if (p->finished)
    return;
  p->local_failing = false;
  if (!p->h->stopping)
    record(p, pass, why);
  end_probe(p);
}

/* A check that failed for err. A shortage on this host (out of file
 * descriptors, memory, local ports) is not the server's fault: it is not
 * counted, and logged once per run of such failures. */
static void fail(struct probe *p, int err, const char *why) {
  if (p->finished)
    return;
  if (!ferry_err_is_local(err)) {
    finish(p, false, why);
    return;
  }
  if (!p->local_failing && !p->h->stopping)
    log_warn("upstream %s server %s: health check not run: %s on this host (not counted against "
             "the server; raise the file descriptor limit or free memory)",
             p->pool->cfg->name, p->slot->name, ferry_strerror(err));
  p->local_failing = true;
  end_probe(p);
}

static void connect_why(int status, char *out, size_t len) {
  if (status == UV_ECONNREFUSED)
    snprintf(out, len, "connect refused");
  else
    snprintf(out, len, "connect failed: %s", ferry_strerror(status));
}

/* Bytes of the response (decrypted, over TLS) in st->in: only the status
 * line matters. */
static void on_stream_read(struct stream *st, ssize_t nread) {
  struct probe *p = stream_probe(st);
  if (p->finished)
    return;
  if (nread < 0) {
    fail(p, (int)nread, nread == UV_EOF ? "closed before a response" : ferry_strerror((int)nread));
    return;
  }
  struct iobuf *in = st->in;
  size_t avail = in->len - st->in_off, room = sizeof(p->rbuf) - 1 - p->rlen;
  size_t k = avail < room ? avail : room;
  memcpy(p->rbuf + p->rlen, in->data + st->in_off, k);
  st->in_off = in->len; /* the rest (headers, body) is not needed */
  p->rlen += k;
  p->rbuf[p->rlen] = '\0';
  char *eol = strstr(p->rbuf, "\r\n");
  if (!eol) {
    if (p->rlen >= sizeof(p->rbuf) - 1)
      finish(p, false, "invalid response");
    return;
  }
  int status = 0;
  if (strncmp(p->rbuf, "HTTP/1.", 7) != 0 || sscanf(p->rbuf + 8, " %3d", &status) != 1 ||
      status < 100) {
    finish(p, false, "invalid response");
    return;
  }
  char why[32];
  snprintf(why, sizeof(why), "status %d", status);
  finish(p, status >= 200 && status < 400, why);
}

static void on_stream_written(struct stream *st, int status, size_t bytes) {
  (void)bytes;
  struct probe *p = stream_probe(st);
  if (status < 0 && !p->finished)
    fail(p, status, ferry_strerror(status));
}

/* Send the request and read the answer (after the TLS handshake, if any). */
static void send_check(struct probe *p) {
  int r = stream_add(&p->st, p->req, p->reqlen, NULL) == 0 ? stream_flush(&p->st) : UV_ENOMEM;
  if (r < 0) {
    fail(p, r, ferry_strerror(r));
    return;
  }
  if (!p->finished)
    stream_hold(&p->st, STREAM_HOLD_OWNER, false);
}

static const struct stream_class probe_class = {
    .tr = &transport_tcp,
    .read = on_stream_read,
    .written = on_stream_written,
    .closed = on_stream_closed,
};

/* A failed handshake (verification included) is a failed check, with
 * OpenSSL's reason: "TLS handshake failed: certificate verify failed:
 * unable to get local issuer certificate". */
static void on_stream_handshake(struct stream *st, bool ok) {
  struct probe *p = stream_probe(st);
  if (p->finished)
    return;
  if (!ok) {
    char why[160];
    snprintf(why, sizeof why, "TLS handshake failed: %s", tls_conn_error(&p->tc));
    finish(p, false, why);
    return;
  }
  send_check(p);
}

static const struct stream_class probe_tls_class = {
    .tr = &transport_tls,
    .tr_off = offsetof(struct probe, tc) - offsetof(struct probe, st),
    .read = on_stream_read,
    .written = on_stream_written,
    .handshake = on_stream_handshake,
    .closed = on_stream_closed,
};

static void on_connect(uv_connect_t *req, int status) {
  struct probe *p = req->data;
  if (p->finished)
    return;
  if (status < 0) {
    char why[128];
    connect_why(status, why, sizeof(why));
    fail(p, status, why);
    return;
  }
  if (p->st.cls == &probe_tls_class) {
    /* reading feeds the handshake; the request follows it */
    stream_hold(&p->st, STREAM_HOLD_OWNER, false);
    int r = tls_conn_start(&p->st);
    if (r < 0 && !p->finished)
      finish(p, false, "TLS handshake failed: cannot send the ClientHello");
    return;
  }
  send_check(p);
}

static void on_timeout(uv_timer_t *t) {
  finish(t->data, false, "timed out");
}

static void on_interval(uv_timer_t *t) {
  struct probe *p = t->data;
  if (p->busy || p->h->stopping ||
      atomic_load_explicit(&p->slot->state, memory_order_acquire) != UPSLOT_ACTIVE)
    return;
  uint32_t epoch = atomic_load(&p->slot->epoch);
  if (epoch != p->epoch) { /* the slot was reused for a new address */
    p->epoch = epoch;
    p->fails = p->passes = 0;
  }
  p->busy = true;
  p->finished = false;
  p->rlen = 0;
  struct tls_client *cli = p->pool->cfg->tls_cli;
  int r = stream_init(&p->st, &p->h->loop, cli ? &probe_tls_class : &probe_class);
  if (r < 0) { /* no handle to close */
    p->busy = false;
    p->finished = true;
    if (!p->local_failing)
      log_warn("upstream %s server %s: health check not run: %s on this host (not counted "
               "against the server)",
               p->pool->cfg->name, p->slot->name, ferry_strerror(r));
    p->local_failing = true;
    return;
  }
  p->st.hold = STREAM_HOLD_OWNER; /* nothing to read before connecting */
  p->open++;
  p->creq.data = p;
  /* SNI and the name verified: as for the workers' connections */
  if (cli && tls_conn_connect(&p->tc, cli, p->slot->cfg->host, &p->h->loop) != 0)
    r = UV_ENOMEM;
  if (r == 0)
    r = stream_connect(&p->st, &p->creq, (const struct sockaddr *)&p->slot->addr, on_connect);
  if (r < 0) {
    char why[128];
    connect_why(r, why, sizeof(why));
    fail(p, r, why);
    return;
  }
  uv_timer_start(&p->timeout, on_timeout, p->pool->cfg->health_check.timeout_ms, 0);
}

/* Probes for every published slot of pool i that has none yet. */
static void ensure_probes(struct health *h, size_t i) {
  struct uppool *pool = &h->ups->pools[i];
  const struct cfg_health_check *hc = &pool->cfg->health_check;
  if (!hc->enabled)
    return;
  size_t n = atomic_load(&pool->nslots);
  for (size_t j = 0; j < n; j++) {
    if (h->probe_of[i][j])
      continue;
    struct probe *p = calloc(1, sizeof(*p));
    if (!p) {
      log_error("upstream %s: out of memory starting health checks", pool->cfg->name);
      return;
    }
    p->h = h;
    p->pool = pool;
    p->slot = &pool->slots[j];
    const struct cfg_server *cs = p->slot->cfg;
    int k = snprintf(p->req, sizeof(p->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ferry-health-check\r\n"
                     "Connection: close\r\n\r\n",
                     hc->path, cs->address);
    p->reqlen = k > 0 && (size_t)k < sizeof(p->req) ? (size_t)k : 0;
    uv_timer_init(&h->loop, &p->interval);
    uv_timer_init(&h->loop, &p->timeout);
    p->interval.data = p->timeout.data = p;
    p->open = 2;
    p->next = h->probes;
    h->probes = p;
    h->probe_of[i][j] = p;
    uv_timer_start(&p->interval, on_interval, 0, hc->interval_ms);
  }
}

/* --- DNS refresh ------------------------------------------------------- */

static void apply(struct resolver *r, const struct sockaddr_storage *addrs, int n,
                  const char *why) {
  struct uppool *pool = r->pool;
  const struct cfg_server *cs = r->cs;
  if (n <= 0) {
    if (!r->failing)
      log_warn("upstream %s server %s: cannot resolve %s: %s; keeping its current addresses and "
               "retrying every %llums",
               pool->cfg->name, cs->address, cs->host, why,
               (unsigned long long)pool->cfg->resolve_interval_ms);
    r->failing = true;
    return;
  }
  if (r->failing)
    log_info("upstream %s server %s: %s resolves again", pool->cfg->name, cs->address, cs->host);
  r->failing = false;
  bool full = false;
  for (int k = 0; k < n; k++) {
    uint32_t g = atomic_load(&pool->gen);
    struct upslot *s = uppool_add(pool, cs, &addrs[k]);
    if (!s) {
      char a[64];
      resolve_name(&addrs[k], a, sizeof(a));
      if (!r->full)
        log_warn("upstream %s server %s: %s resolves to %s, but all %u places for its addresses "
                 "are taken (in use, or gone less than %us ago); it joins when one frees",
                 pool->cfg->name, cs->address, cs->host, a, UPSTREAM_NAME_SLOTS,
                 UPSTREAM_SLOT_REUSE_MS / 1000);
      full = true;
      continue;
    }
    if (atomic_load(&pool->gen) != g)
      log_info("upstream %s server %s added: %s resolves to it", pool->cfg->name, s->name,
               cs->host);
  }
  r->full = full;
  size_t ns = atomic_load(&pool->nslots);
  for (size_t j = 0; j < ns; j++) {
    struct upslot *s = &pool->slots[j];
    if (s->cfg != cs || atomic_load(&s->state) != UPSLOT_ACTIVE)
      continue;
    bool found = false;
    for (int k = 0; k < n && !found; k++) {
      char a[64];
      resolve_name(&addrs[k], a, sizeof(a));
      found = strcmp(a, s->name) == 0;
    }
    if (!found) {
      uppool_remove(pool, s);
      log_info("upstream %s server %s removed: %s no longer resolves to it", pool->cfg->name,
               s->name, cs->host);
    }
  }
  ensure_probes(r->h, (size_t)(pool - r->h->ups->pools));
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct resolver *r = req->data;
  r->busy = false;
  if (status == UV_ECANCELED || r->h->stopping) {
    uv_freeaddrinfo(res);
    return;
  }
  struct sockaddr_storage addrs[UPSTREAM_MAX_ADDRS];
  int n = status == 0 ? resolve_collect(res, r->cs->port, addrs, UPSTREAM_MAX_ADDRS) : -1;
  uv_freeaddrinfo(res);
  apply(r, addrs, n, status < 0 ? uv_strerror(status) : "no address");
}

static void on_resolve_timer(uv_timer_t *t) {
  struct resolver *r = t->data;
  if (r->busy || r->h->stopping)
    return;
  const char *hf = r->h->ups->hosts_file;
  if (hf) {
    struct sockaddr_storage addrs[UPSTREAM_MAX_ADDRS];
    char why[256];
    int n = resolve_hosts_file(hf, r->cs->host, r->cs->port, addrs, UPSTREAM_MAX_ADDRS, why,
                               sizeof(why));
    apply(r, addrs, n, why);
    return;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  r->gai.data = r;
  if (uv_getaddrinfo(&r->h->loop, &r->gai, on_gai, r->cs->host, NULL, &hints) == 0)
    r->busy = true;
}

/* --- thread ------------------------------------------------------------- */

static void on_stop(uv_async_t *a) {
  struct health *h = a->data;
  h->stopping = true;
  for (struct probe *p = h->probes; p; p = p->next) {
    uv_close((uv_handle_t *)&p->interval, on_probe_handle_closed);
    uv_close((uv_handle_t *)&p->timeout, on_probe_handle_closed);
    if (p->busy) {
      p->finished = true;
      stream_close(&p->st);
    }
  }
  for (size_t i = 0; i < h->nres; i++) {
    uv_close((uv_handle_t *)&h->res[i].timer, NULL);
    if (h->res[i].busy)
      uv_cancel((uv_req_t *)&h->res[i].gai);
  }
  uv_close((uv_handle_t *)&h->stop_async, NULL);
}

static void run(void *arg) {
  struct health *h = arg;
  uv_run(&h->loop, UV_RUN_DEFAULT);
}

static void health_free(struct health *h) {
  while (h->probes) {
    struct probe *p = h->probes;
    h->probes = p->next;
    free(p);
  }
  if (h->probe_of)
    for (size_t i = 0; i < h->ups->npools; i++)
      free(h->probe_of[i]);
  free(h->probe_of);
  free(h->res);
  bufpool_destroy(&h->bufs);
  free(h);
}

struct health *health_start(struct upstreams *ups, char *err, size_t errlen) {
  struct health *h = calloc(1, sizeof(*h));
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  h->ups = ups;
  int r = uv_loop_init(&h->loop);
  if (r < 0) {
    snprintf(err, errlen, "cannot start the upstream monitor: %s", uv_strerror(r));
    free(h);
    return NULL;
  }
  bufpool_init(&h->bufs);
  h->loop.data = &h->bufs; /* streams draw their blocks from the loop's pool */
  h->probe_of = calloc(ups->npools ? ups->npools : 1, sizeof(*h->probe_of));
  size_t nres = 0;
  for (size_t i = 0; i < ups->npools; i++)
    for (size_t j = 0; j < ups->pools[i].cfg->nservers; j++)
      nres += ups->pools[i].cfg->servers[j].resolve;
  h->res = calloc(nres ? nres : 1, sizeof(*h->res));
  bool oom = !h->probe_of || !h->res;
  for (size_t i = 0; i < ups->npools && !oom; i++) {
    h->probe_of[i] = calloc(ups->pools[i].cap ? ups->pools[i].cap : 1, sizeof(**h->probe_of));
    oom = !h->probe_of[i];
  }
  if (oom) {
    snprintf(err, errlen, "out of memory");
    uv_loop_close(&h->loop);
    health_free(h);
    return NULL;
  }
  uv_async_init(&h->loop, &h->stop_async, on_stop);
  h->stop_async.data = h;
  for (size_t i = 0; i < ups->npools; i++) {
    struct uppool *pool = &ups->pools[i];
    ensure_probes(h, i);
    for (size_t j = 0; j < pool->cfg->nservers; j++) {
      const struct cfg_server *cs = &pool->cfg->servers[j];
      if (!cs->resolve)
        continue;
      struct resolver *rs = &h->res[h->nres++];
      rs->h = h;
      rs->pool = pool;
      rs->cs = cs;
      uv_timer_init(&h->loop, &rs->timer);
      rs->timer.data = rs;
      uint64_t iv = pool->cfg->resolve_interval_ms;
      uv_timer_start(&rs->timer, on_resolve_timer, iv, iv);
    }
  }
  r = uv_thread_create(&h->thread, run, h);
  if (r != 0) {
    snprintf(err, errlen, "cannot start the upstream monitor thread: %s", uv_strerror(r));
    uv_async_send(&h->stop_async);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_loop_close(&h->loop);
    health_free(h);
    return NULL;
  }
  return h;
}

void health_stop(struct health *h) {
  uv_async_send(&h->stop_async);
  uv_thread_join(&h->thread);
  if (uv_loop_close(&h->loop) != 0)
    log_error("upstream monitor: event loop still had open handles at exit");
  health_free(h);
}
