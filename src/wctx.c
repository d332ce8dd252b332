/* wctx: services of the per-worker context (see wctx.h): request ids,
 * the process-wide connection count, generation references.
 *
 * Must not include session, exchange, pool or worker headers. */
#include "ferry/wctx.h"

void wctx_request_id(struct worker *w, char *out) {
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

bool wctx_conn_opened(struct worker *w) {
  w->nsessions++;
  mc_set(&w->metrics.conns_active, w->nsessions);
  mc_add(&w->metrics.conns_total, 1);
  uint64_t n = w->proc_conns ? atomic_fetch_add_explicit(w->proc_conns, 1, memory_order_relaxed) + 1
                             : w->nsessions;
  if (n > w->cfg->limits.max_connections) {
    mc_add(&w->metrics.conns_rejected, 1);
    return false;
  }
  return true;
}

void wctx_conn_closed(struct worker *w) {
  w->nsessions--;
  mc_set(&w->metrics.conns_active, w->nsessions);
  if (w->proc_conns)
    atomic_fetch_sub_explicit(w->proc_conns, 1, memory_order_relaxed);
}

struct worker_gen *wctx_gen_hold(struct worker *w) {
  w->gen->refs++;
  return w->gen;
}

void wctx_gen_drop(struct worker *w, struct worker_gen *g) {
  g->refs--;
  if (g == w->oldest_gen && g != w->gen && g->refs == 0 && w->gen_idle)
    w->gen_idle(w);
}
