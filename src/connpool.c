/* connpool: one server's idle keep-alive connections (see connpool.h).
 *
 * Owns every upconn's memory and its idle timer; the connection itself
 * (socket, parser) is the upclient's. Must not know exchanges, sessions
 * or the upstream configuration. */
#include "ferry/connpool.h"

#include <stdlib.h>

#include "ferry/log.h"
#include "ferry/slice.h"

static inline struct upconn *as_upconn(struct upclient *uc) {
  return container_of(uc, struct upconn, c);
}

static void free_if_closed(struct upconn *u) {
  if (--u->open_handles == 0)
    free(u);
}

static void on_upclient_closed(struct upclient *uc) {
  free_if_closed(as_upconn(uc));
}

static void on_timer_closed(uv_handle_t *h) {
  free_if_closed(h->data);
}

static void idle_unlink(struct upconn *u) {
  struct connpool *p = u->pool;
  struct upconn **pp = &p->idle;
  while (*pp && *pp != u)
    pp = &(*pp)->next;
  if (*pp) {
    *pp = u->next;
    p->nidle--;
  }
  u->next = NULL;
}

void connpool_close(struct upclient *uc) {
  struct upconn *u = as_upconn(uc);
  if (uc->st.closing)
    return;
  if (u->idle)
    idle_unlink(u);
  else
    u->pool->active--;
  u->idle = false;
  upclient_close(uc);
  uv_close((uv_handle_t *)&u->idle_timer, on_timer_closed);
}

void connpool_init(struct connpool *p, uint32_t max_idle, uint64_t idle_timeout_ms,
                   const char *name) {
  *p = (struct connpool){.max_idle = max_idle, .idle_timeout_ms = idle_timeout_ms, .name = name};
}

void connpool_close_idle(struct connpool *p) {
  while (p->idle)
    connpool_close(&p->idle->c);
}

void connpool_move_idle(struct connpool *from, struct connpool *to) {
  if (from->tls || to->tls)
    return; /* TLS connections were verified under the old settings: not adopted */
  while (from->idle) {
    struct upconn *u = from->idle;
    if (to->nidle >= to->max_idle) {
      connpool_close(&u->c);
      continue;
    }
    from->idle = u->next;
    from->nidle--;
    u->pool = to;
    u->c.name = to->name;
    u->next = to->idle;
    to->idle = u;
    to->nidle++;
  }
}

/* --- while idle ---------------------------------------------------------- */

/* An idle connection that speaks or closes is finished. */
static void idle_error(void *owner, int err) {
  (void)err;
  connpool_close(&((struct upconn *)owner)->c);
}

static void idle_raw(void *owner, ssize_t nread) {
  (void)nread;
  connpool_close(&((struct upconn *)owner)->c);
}

static int idle_head(void *owner, const struct upclient_head *h) {
  (void)owner;
  (void)h;
  return -1;
}

static int idle_body(void *owner, const char *p, size_t n, struct iobuf *b) {
  (void)owner;
  (void)p;
  (void)n;
  (void)b;
  return -1;
}

static int idle_done(void *owner) {
  (void)owner;
  return -1;
}

static void idle_read_done(void *owner) {
  connpool_close(&((struct upconn *)owner)->c);
}

static void idle_connected(void *owner, int status) {
  (void)owner;
  (void)status;
}

static const struct upclient_cbs idle_cbs = {
    .connected = idle_connected,
    .head = idle_head,
    .body = idle_body,
    .done = idle_done,
    .read_done = idle_read_done,
    .error = idle_error,
    .raw = idle_raw,
};

static void on_idle_timeout(uv_timer_t *t) {
  struct upconn *u = t->data;
  if (!u->idle)
    return; /* in use again: armed anew when it next goes idle */
  uint64_t now = uv_now(t->loop);
  if (now < u->idle_until) { /* idle again since the timer was armed */
    u->idle_fire = u->idle_until;
    uv_timer_start(t, on_idle_timeout, u->idle_until - now, 0);
    return;
  }
  connpool_close(&u->c);
}

/* --- lending -------------------------------------------------------------- */

struct upclient *connpool_checkout(struct connpool *p) {
  struct upconn *u = p->idle;
  if (!u)
    return NULL;
  p->idle = u->next;
  p->nidle--;
  p->active++;
  u->next = NULL;
  u->idle = false;
  /* The idle timer stays armed; on_idle_timeout ignores a busy connection. */
  return &u->c;
}

struct upclient *connpool_connect(struct connpool *p, uv_loop_t *loop, const struct sockaddr *addr,
                                  int *err) {
  struct upconn *u = malloc(sizeof(*u));
  if (!u) {
    *err = UV_ENOMEM;
    return NULL;
  }
  upclient_init(&u->c, loop, p->name, on_upclient_closed);
  bool tls_failed = p->tls && upclient_use_tls(&u->c, p->tls, p->tls_name) != 0;
  uv_timer_init(loop, &u->idle_timer);
  u->idle_timer.data = u;
  u->pool = p;
  u->next = NULL;
  u->open_handles = 2;
  u->idle = false;
  u->idle_until = u->idle_fire = 0;
  p->active++;
  int r = tls_failed ? UV_ENOMEM : upclient_connect(&u->c, addr);
  if (r < 0) {
    *err = r;
    connpool_close(&u->c);
    return NULL;
  }
  return &u->c;
}

void connpool_release(struct upclient *uc, bool keep) {
  struct upconn *u = as_upconn(uc);
  struct connpool *p = u->pool;
  if (!keep || !upclient_reusable(uc, true) || p->nidle >= p->max_idle * CONNPOOL_SURPLUS_FACTOR) {
    log_debug("upstream %s: not reusing connection (keep=%d done=%d ka=%d broken=%d eof=%d "
              "idle=%u/%u)",
              p->name, keep, uc->resp_done, uc->keepalive_ok, uc->broken, uc->eof, p->nidle,
              p->max_idle);
    connpool_close(uc);
    return;
  }
  p->active--;
  u->idle = true;
  u->next = p->idle;
  p->idle = u;
  p->nidle++;
  upclient_hand_over(uc, &idle_cbs, u);
  /* Over max_idle, a burst just ended: keep the connection briefly so the
   * next burst reuses it instead of connecting anew (under load with more
   * clients than max_idle, closing at once made nearly every request
   * connect); it closes after CONNPOOL_SURPLUS_MS idle. */
  uint64_t idle_ms = p->idle_timeout_ms;
  if (p->nidle > p->max_idle && idle_ms > CONNPOOL_SURPLUS_MS)
    idle_ms = CONNPOOL_SURPLUS_MS;
  u->idle_until = uv_now(uc->st.tcp.loop) + idle_ms;
  if (!uv_is_active((uv_handle_t *)&u->idle_timer) || u->idle_fire > u->idle_until) {
    u->idle_fire = u->idle_until;
    uv_timer_start(&u->idle_timer, on_idle_timeout, idle_ms, 0);
  }
}
