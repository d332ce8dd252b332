/* mirror: copies of a route's requests to its mirror upstream (see
 * mirror.h). Owns the sampling decision's use, the bounds on copies and
 * their counters; the sending is src/subreq.c's. Must not answer the
 * client, hold its stream or touch the exchange's upstream connection. */
#include "ferry/mirror.h"

#include <llhttp.h>

#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/policy.h"
#include "ferry/retry.h"
#include "ferry/subreq.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

static void count(struct metrics_route_slot *s, enum metrics_mirror what) {
  if (s)
    mc_add(&s->mirror[what], 1);
}

static struct metrics_route_slot *slot(struct exchange *ex) {
  return metrics_route_slot(&ex->w->metrics, ex->route);
}

static const char *const notes[METRICS_MIRROR_N] = {"sent", "dropped", "failed"};

/* The copy ended (owner: the exchange while its body still flows, else
 * NULL). sr->p.tag is its route's counters (they outlive the route's
 * configuration, which the copy may outlive). */
static void mirror_done(void *owner, struct subreq *sr, enum subreq_result r) {
  struct exchange *ex = owner;
  enum metrics_mirror what = r == SUBREQ_OK        ? METRICS_MIRROR_SENT
                             : r == SUBREQ_STOPPED ? METRICS_MIRROR_DROPPED
                                                   : METRICS_MIRROR_FAILED;
  if (ex) {
    ex->mirror = NULL;
    ex->mirror_note = notes[what];
  }
  if (what == METRICS_MIRROR_FAILED)
    log_debug("mirror %s: copy failed: %s", sr->up->cfg->name, subreq_result_name(r));
  count((struct metrics_route_slot *)(uintptr_t)sr->p.tag, what);
  subreq_free(sr);
}

void mirror_begin(struct exchange *ex) {
  const struct cfg_route *r = ex->route;
  struct worker *w = ex->w;
  if (!r->mirror.upstream || ex->upgrade_req || !policy_mirror_sample(ex))
    return;
  struct worker_gen *g = ex->route_gen; /* the route's, also after a reload (auth_request) */
  if (w->stopping || w->nmirrors >= MIRROR_MAX_INFLIGHT || r->mirror.upstream_index >= g->nups) {
    ex->mirror_note = "dropped";
    count(slot(ex), METRICS_MIRROR_DROPPED);
    return;
  }
  bool body = ex->req_chunked || ex->req_length > 0;
  struct subreq_params p = {.up = &g->ups[r->mirror.upstream_index],
                            .gen = g,
                            .head = ex->uhead_buf,
                            .head_request = ex->method == HTTP_HEAD,
                            .body = body,
                            .chunked = ex->req_chunked,
                            .mirror = true,
                            .response_ms = retry_response_ms(ex),
                            .client_ip = slice_cstr(ex->client_ip ? ex->client_ip : ""),
                            .hdrs = &ex->req_hdrs,
                            .done = mirror_done,
                            .owner = body ? ex : NULL,
                            .tag = slot(ex)};
  enum subreq_result why;
  struct subreq *sr = subreq_start(w, &p, &why);
  if (!sr) {
    ex->mirror_note = "failed";
    log_debug("mirror %s: copy not sent: %s", r->mirror.upstream, subreq_result_name(why));
    count((struct metrics_route_slot *)(uintptr_t)p.tag, METRICS_MIRROR_FAILED);
    return;
  }
  ex->mirror_note = "sent";
  if (body)
    ex->mirror = sr;
}

/* The _slow halves run only for a mirrored request: noinline keeps them
 * (and the registers they need) out of every request's exchange code. */
__attribute__((noinline)) void mirror_body_slow(struct exchange *ex, const char *p, size_t n,
                                                struct iobuf *b) {
  struct subreq *sr = ex->mirror;
  if (subreq_body(sr, p, n, b) == 0)
    return;
  /* The mirror is not keeping up: drop the copy rather than buffer it. */
  ex->mirror = NULL;
  ex->mirror_note = "dropped";
  log_debug("mirror %s: copy dropped: more than %u bytes waiting for it", sr->up->cfg->name,
            SUBREQ_QUEUE_MAX);
  count(slot(ex), METRICS_MIRROR_DROPPED);
  subreq_free(sr);
}

__attribute__((noinline)) void mirror_flush_slow(struct exchange *ex) {
  subreq_flush(ex->mirror);
}

__attribute__((noinline)) void mirror_request_done_slow(struct exchange *ex) {
  struct subreq *sr = ex->mirror;
  ex->mirror = NULL;
  subreq_set_owner(sr, NULL);
  subreq_body_end(sr);
}

__attribute__((noinline)) void mirror_detach_slow(struct exchange *ex) {
  struct subreq *sr = ex->mirror;
  ex->mirror = NULL;
  ex->mirror_note = "failed";
  count(slot(ex), METRICS_MIRROR_FAILED);
  subreq_free(sr);
}
