/* wctx: services of the per-worker context (see wctx.h): request ids,
 * the process-wide connection count, generation references.
 *
 * Must not include session, exchange, pool or worker headers. */
#include "ferry/wctx.h"

#include "ferry/trace.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void wctx_request_id(struct worker *w, char *out) {
  /* "%08x%012x" of (seed, counter) by the vector hex writer: this runs for
   * every request. Digits 0-15 are the seed's low 32 bits and counter bits
   * 47-16, digits 16-19 the counter's low 16 bits. */
  uint64_t n = ++w->reqid_counter;
  char low[16];
  trace_hex64(out, (uint64_t)(uint32_t)w->reqid_seed << 32 | (uint32_t)(n >> 16));
  trace_hex64(low, n);
  memcpy(out + 16, low + 12, 4);
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

/* Format the current wall-clock second into w->date; the next refresh is
 * due when the loop's time reaches the start of the following second. */
void wctx_date_refresh(struct worker *w, uint64_t now) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  time_t t = ts.tv_sec;
  gmtime_r(&t, &tm);
  snprintf(w->date, sizeof w->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
           tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  uint64_t into = (uint64_t)ts.tv_nsec / 1000000u; /* ms into this second */
  w->date_next = now + (into < 1000 ? 1000 - into : 1);
}
