/* retry: may a failed attempt go to another server, and the record of the
 * retries made (include/ferry/retry.h). Owns the retry rules, the use
 * of the route's budget window and the response deadline left after
 * earlier attempts; reads the exchange and the worker's
 * current generation, writes only the exchange's retry record fields
 * (nretries, tried_why, tried_status, budget_taken, budget_exhausted).
 * Must not pick servers, connect, answer, or free anything. */
#include "ferry/retry.h"

#include <llhttp.h>

#include "ferry/config.h"
#include "ferry/exchange.h"
#include "ferry/log.h"
#include "ferry/policy.h"
#include "ferry/traffic.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

const char *retry_reason_name(enum retry_reason r) {
  static const char *const names[] = {
#define RETRY_REASON_NAME(id, name) name,
      RETRY_REASONS(RETRY_REASON_NAME)
#undef RETRY_REASON_NAME
  };
  return (unsigned)r < RETRY_REASON_N ? names[r] : "unknown";
}

bool retry_idempotent(int method) {
  switch (method) {
  case HTTP_GET:
  case HTTP_HEAD:
  case HTTP_OPTIONS:
  case HTTP_TRACE:
  case HTTP_PUT:
  case HTTP_DELETE:
    return true;
  default:
    return false;
  }
}

bool retry_on_status(const struct cfg_retry *rt, int status) {
  if (status < 500 || status > 599)
    return false;
  unsigned k = (unsigned)(status - 500);
  return (rt->on_status[k / 64] >> (k % 64)) & 1u;
}

enum retry_verdict retry_eligible(const struct retry_ask *a) {
  /* Nothing can be taken back from the client, and a body that went
   * upstream is gone (ferry streams bodies, it does not keep them). */
  if (a->resp_started || a->body_sent)
    return RETRY_NO;
  if (a->why != RETRY_STATUS && a->body_may_flow)
    return RETRY_NO;
  if (!a->route) { /* the upstream's `retries`: failures before any response byte */
    if (a->why == RETRY_STATUS || a->why == RETRY_STALE)
      return RETRY_NO;
    return a->attempts_made <= a->upstream_retries ? RETRY_YES : RETRY_NO;
  }
  if (a->attempts_made >= a->route->attempts || a->out_of_time)
    return RETRY_NO;
  switch (a->why) {
  case RETRY_CONNECT_FAILURE:
    return a->route->on_connect_failure ? RETRY_BUDGETED : RETRY_NO;
  case RETRY_RESET:
    return a->route->on_reset ? RETRY_BUDGETED : RETRY_NO;
  case RETRY_STATUS:
    /* a request without a body, read whole: the same head can be sent
     * again; only methods whose repetition changes nothing more */
    return retry_on_status(a->route, a->status) && retry_idempotent(a->method) && a->req_done
               ? RETRY_BUDGETED
               : RETRY_NO;
  default:
    return RETRY_NO;
  }
}

/* The route's shared state, or NULL (no route retry, a bare test snapshot). */
static struct traffic_route *budget_of(const struct exchange *ex) {
  return ex->route && ex->route->retry.enabled ? policy_route_state(ex) : NULL;
}

void retry_request(struct exchange *ex) {
  struct traffic_route *tr = budget_of(ex);
  if (tr)
    retrybudget_request(&tr->retry_budget, uv_now(&ex->w->loop));
}

uint64_t retry_time_left(const struct exchange *ex, uint64_t timeout_ms) {
  if (ex->ntried <= 1 || !timeout_ms)
    return timeout_ms;
  uint64_t now = uv_now(&ex->w->loop);
  uint64_t spent = now > ex->t_fwd_ms ? now - ex->t_fwd_ms : 0;
  return spent < timeout_ms ? timeout_ms - spent : 1;
}

uint64_t retry_response_ms(const struct exchange *ex) {
  return ex->route ? retry_time_left(ex, ex->route->timeout_ms) : 0;
}

bool retry_begin(struct exchange *ex, enum retry_reason why, int status, bool body_may_flow) {
  const struct cfg_route *r = ex->route;
  const struct cfg_retry *rt = r && r->retry.enabled ? &r->retry : NULL;
  uint64_t now = uv_now(&ex->w->loop);
  struct retry_ask a = {
      .route = rt,
      .upstream_retries = ex->up ? ex->up->cfg->retries : 0,
      .why = why,
      .status = status,
      .method = ex->method,
      .attempts_made = ex->ntried,
      .resp_started = ex->resp_started,
      .body_sent = ex->req_body_bytes > 0,
      .body_may_flow = body_may_flow && !ex->req_done && (ex->req_chunked || ex->req_length > 0),
      .req_done = ex->req_done,
      .out_of_time = rt && r->timeout_ms && now - ex->t_fwd_ms >= r->timeout_ms,
  };
  switch (retry_eligible(&a)) {
  case RETRY_NO:
    return false;
  case RETRY_YES:
    return true;
  case RETRY_BUDGETED:
    break;
  }
  struct traffic_route *tr = budget_of(ex);
  if (!tr)
    return true;
  if (retrybudget_take(&tr->retry_budget, now)) {
    ex->budget_taken = true;
    return true;
  }
  ex->budget_exhausted = true;
  log_debug("route %zu: retry budget (%u%% of the last %u s of requests) spent; the answer "
            "stands",
            r->index, (unsigned)r->retry.budget_percent, RETRYBUDGET_SLOTS);
  return false;
}

void retry_cancel(struct exchange *ex) {
  struct traffic_route *tr;
  if (ex->budget_taken && (tr = budget_of(ex)) != NULL)
    retrybudget_refund(&tr->retry_budget, uv_now(&ex->w->loop));
  ex->budget_taken = false;
}

void retry_count(struct exchange *ex, enum retry_reason why, int status) {
  ex->budget_taken = false;
  if (ex->nretries[why] < UINT8_MAX)
    ex->nretries[why]++;
  uint32_t failed = ex->ntried - 2; /* the new server is tried[ntried - 1] */
  if (why != RETRY_STALE && ex->ntried >= 2 && failed < EX_MAX_TRIED) {
    ex->tried_why[failed] = (uint8_t)(why + 1);
    ex->tried_status[failed] = (uint16_t)status;
  }
  if (ex->up && why != RETRY_STALE)
    upstream_count_retry(ex->up);
}
