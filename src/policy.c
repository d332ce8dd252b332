/* policy: the route's traffic control before forwarding
 * (include/ferry/policy.h). Owns the order of the checks, what each
 * refusal says and the traceparent sent upstream (the response deadline
 * after earlier attempts is src/retry.c's); reads the exchange and the
 * generation whose router matched the route, never answers or frees
 * anything. */
#include "ferry/policy.h"

#include <string.h>

#include "ferry/cidr.h"

#include "ferry/exchange.h"
#include "ferry/snapshot.h"
#include "ferry/trace.h"
#include "ferry/traffic.h"
#include "ferry/wctx.h"

struct traffic_route *policy_route_state(const struct exchange *ex) {
  struct worker_gen *g = ex->route_gen ? ex->route_gen : ex->w->gen;
  struct traffic *t = g && g->snap ? g->snap->traffic : NULL;
  return t && ex->route->index < t->nroutes ? &t->routes[ex->route->index] : NULL;
}

int policy_admit(struct exchange *ex) {
  const struct cfg_route *r = ex->route;
  struct traffic_route *tr;
  uint32_t wait_s = 0;
  if ((!r->nallow && !r->ndeny && !r->rate_limit.enabled) || !(tr = policy_route_state(ex)))
    return 0;
  /* The peer's binary address when it is the client (no trusted proxy
   * named another): no text to parse. */
  struct traffic_client c;
  c.text = slice_cstr(ex->client_ip ? ex->client_ip : "");
  if (ex->client_ip == ex->peer_ip && ex->peer_known) {
    memcpy(c.addr, ex->peer_addr, 16);
    c.v6 = ex->peer_v6;
    c.ok = true;
  } else {
    c.ok = cidr_parse_ip(c.text.p, c.text.n, c.addr, &c.v6);
  }
  switch (traffic_admit(tr, r, &c, &ex->req_hdrs, uv_now(&ex->w->loop) * 1000, &wait_s)) {
  case TRAFFIC_PASS:
    return 0;
  case TRAFFIC_FORBIDDEN:
    ex->error_note = "client address refused by allow/deny";
    return 403;
  case TRAFFIC_LIMITED:
    ex->retry_after = wait_s;
    ex->error_note = "rate limited";
    return 429;
  }
  return 0;
}

size_t policy_upstream(struct exchange *ex) {
  const struct cfg_route *r = ex->route;
  struct traffic_route *tr;
  if (r->nsplit < 2 || !(tr = policy_route_state(ex)) || !tr->norder)
    return r->upstream_index;
  return r->split[traffic_split_next(tr)].upstream_index;
}

bool policy_mirror_sample(struct exchange *ex) {
  uint32_t percent = ex->route->mirror.percent;
  struct traffic_route *tr;
  if (percent == 0 || percent >= 100 || !(tr = policy_route_state(ex)))
    return percent > 0;
  return traffic_mirror_next(tr, percent);
}

const char *policy_message(int status) {
  switch (status) {
  case 403:
    return "forbidden: this client address may not use this route\n";
  case 429:
    return "too many requests: retry after the seconds in Retry-After\n";
  case -503:
    return "service unavailable: too many requests in flight to this upstream; retry later\n";
  default:
    return "refused\n";
  }
}

void policy_trace(struct exchange *ex) {
  struct worker *w = ex->w;
  char flags[2] = {'0', '0'};
  if (!w->trace_rng)
    w->trace_rng = w->reqid_seed ^ 0x5deece66dull;
  const struct hdr *h = http_head_find_tok(&ex->req_hdrs, HDR_TRACEPARENT);
  if (!h || !trace_parse(h->value, ex->trace_id, flags)) {
    trace_hex64(ex->trace_id, trace_random(&w->trace_rng));
    trace_hex64(ex->trace_id + 16, trace_random(&w->trace_rng));
  }
  ex->trace_id[32] = '\0';
  trace_format(ex->traceparent, ex->trace_id, trace_random(&w->trace_rng), flags);
  ex->traceparent[TRACE_PARENT_LEN] = '\0';
}
