/* authreq: a route's auth_request (see authreq.h). Owns the check's
 * head, the decision, the pass_headers ops and the relayed denial; the
 * sending is src/subreq.c's. Must not touch the exchange's upstream
 * connection or free the exchange. */
#include "ferry/authreq.h"

#include <string.h>

#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/policy.h"
#include "ferry/retry.h"
#include "ferry/request.h"
#include "ferry/session.h"
#include "ferry/subreq.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

static void count(struct exchange *ex, enum metrics_auth what) {
  struct metrics_route_slot *s = metrics_route_slot(&ex->w->metrics, ex->route);
  if (s)
    mc_add(&s->auth[what], 1);
}

/* A NUL-terminated copy of v in the exchange's arena (NULL: no room). */
static char *arena_cstr(struct exchange *ex, struct slice v) {
  char *p = arena_alloc(&ex->arena, v.n + 1);
  if (p) {
    memcpy(p, v.p, v.n);
    p[v.n] = '\0';
  }
  return p;
}

/* The auth service could not decide: 500, never a way through. */
static void auth_error(struct exchange *ex, const char *why) {
  const struct cfg_route *r = ex->route;
  log_warn("auth_request to upstream %s for route at line %d: %s; answering 500 (the request "
           "is not forwarded until the auth service answers 2xx, 401 or 403)",
           r->auth.upstream, r->line, why);
  ex->auth_note = "error";
  ex->error_note = "auth_request failed";
  count(ex, METRICS_AUTH_ERROR);
  exchange_reply(ex, 500, "internal server error: the authorization check failed\n", false);
}

/* The route's request_headers, with each pass_header set from the
 * answer's values or removed when the answer has none. */
static const struct cfg_header_ops *pass_ops(struct exchange *ex, const struct hdr_list *ans) {
  const struct cfg_route *r = ex->route;
  const struct cfg_header_ops *base = &r->request_headers;
  size_t nset = base->nset, nrem = base->nremove;
  struct cfg_header_ops *ops = arena_alloc(&ex->arena, sizeof *ops);
  struct cfg_kv *set = arena_alloc(&ex->arena, (nset + ans->n + 1) * sizeof *set);
  char **rem = arena_alloc(&ex->arena, (nrem + r->auth.npass_headers + 1) * sizeof *rem);
  if (!ops || !set || !rem)
    return NULL;
  if (nset)
    memcpy(set, base->set, nset * sizeof *set);
  if (nrem)
    memcpy(rem, base->remove, nrem * sizeof *rem);
  for (size_t i = 0; i < r->auth.npass_headers; i++) {
    char *name = r->auth.pass_headers[i];
    bool found = false;
    for (uint32_t j = 0; j < ans->n; j++) {
      if (!slice_ieq(ans->v[j].name, slice_cstr(name)))
        continue;
      char *value = arena_cstr(ex, ans->v[j].value);
      if (!value)
        return NULL;
      set[nset++] = (struct cfg_kv){name, value};
      found = true;
    }
    if (!found)
      rem[nrem++] = name;
  }
  *ops = (struct cfg_header_ops){set, nset, base->add, base->nadd, rem, nrem};
  return ops;
}

/* 401/403: the auth service's answer goes back as it came (its headers
 * minus hop-by-hop ones, its body re-framed with a Content-Length). */
static void auth_deny(struct exchange *ex, const struct subreq *sr) {
  struct slice body = sr->body ? slice_make(sr->body->data, sr->body->len) : (struct slice){0};
  bool keep = exchange_reply_keep(ex, false);
  bool head_only = ex->method == HTTP_HEAD;
  struct fwd_response fr = {.status = sr->status,
                            .reason = sr->reason,
                            .headers = &sr->hdrs,
                            .framing = FRAMING_LENGTH,
                            .content_length = body.n,
                            .request_id = ex->rid,
                            .date = wctx_http_date(ex->w),
                            .client_minor = ex->minor,
                            .keep_alive = keep,
                            .ops = &ex->route->response_headers};
  size_t head = http_head_build_response(NULL, 0, &fr);
  size_t total = head + (head_only ? 0 : body.n);
  struct iobuf *b = iobuf_get(&ex->w->bufs, total);
  if (!b) {
    auth_error(ex, "out of memory for the denial");
    return;
  }
  http_head_build_response(b->data, head, &fr);
  if (!head_only && body.n)
    memcpy(b->data + head, body.p, body.n);
  b->len = (uint32_t)total;
  ex->auth_note = "denied";
  ex->error_note = "auth_request denied";
  count(ex, METRICS_AUTH_DENIED);
  exchange_reply_block(ex, sr->status, b, head_only ? 0 : body.n, keep);
  iobuf_unref(b);
}

/* 401 and 403 bodies are kept (to relay them); others are discarded. */
static bool auth_head(void *owner, struct subreq *sr) {
  (void)owner;
  return sr->status == 401 || sr->status == 403;
}

static void auth_done(void *owner, struct subreq *sr, enum subreq_result r) {
  struct exchange *ex = owner;
  ex->auth = NULL;
  ex->auth_status = r == SUBREQ_OK || r == SUBREQ_TOO_LARGE ? sr->status : 0;
  if (r == SUBREQ_OK && sr->status >= 200 && sr->status <= 299) {
    ex->auth_ops = pass_ops(ex, &sr->hdrs);
    subreq_free(sr);
    if (!ex->auth_ops) {
      auth_error(ex, "no room for the pass_headers");
      return;
    }
    ex->auth_note = "allowed";
    count(ex, METRICS_AUTH_ALLOWED);
    exchange_forward(ex, ex->auth_target, ex->norm, ex->host);
    return;
  }
  if (r == SUBREQ_OK && (sr->status == 401 || sr->status == 403)) {
    auth_deny(ex, sr);
    subreq_free(sr);
    return;
  }
  char why[96];
  if (r == SUBREQ_OK)
    snprintf(why, sizeof why, "the auth service answered %d", sr->status);
  else if (r == SUBREQ_TOO_LARGE)
    snprintf(why, sizeof why, "its %d answer's body is over %u bytes", sr->status,
             AUTHREQ_BODY_MAX);
  else
    snprintf(why, sizeof why, "no answer from the auth service: %s", subreq_result_name(r));
  subreq_free(sr);
  auth_error(ex, why);
}

/* The check's head: GET path, the client's headers (hop-by-hop, framing
 * and forwarding headers re-made as for any forwarded request), with
 * X-Forwarded-Method and X-Forwarded-Uri (the target in origin form, as
 * the client sent it, before any rewrite_prefix) set. NULL when out of
 * memory. */
static struct iobuf *auth_head_block(struct exchange *ex, struct slice target) {
  const struct cfg_route *r = ex->route;
  struct worker *w = ex->w;
  const char *method = llhttp_method_name((llhttp_method_t)ex->method);
  char *uri = arena_cstr(ex, target);
  if (!uri)
    return NULL;
  struct cfg_kv set[2] = {{"X-Forwarded-Method", (char *)method}, {"X-Forwarded-Uri", uri}};
  struct cfg_header_ops ops = {.set = set, .nset = 2};
  struct request_head rh = {.method = HTTP_GET, .minor = ex->minor, .headers = &ex->req_hdrs};
  struct fwd_request fr;
  request_fwd_init(&fr, r, &rh, slice_cstr(r->auth.path), ex->host,
                   slice_cstr(w->ups[r->auth.upstream_index].cfg->name), slice_cstr(ex->peer_ip),
                   ex->rid, 0, false, ex->peer_trusted);
  fr.host = ex->host.n ? ex->host : fr.host; /* the client's, not set_host */
  fr.ops = &ops;
  if (ex->tls) {
    fr.proto = SLICE_LIT("https");
    fr.client_cert = tls_conn_xfcc(ex->tls, &ex->arena);
  }
  size_t need = http_head_build_request(NULL, 0, &fr);
  struct iobuf *b = iobuf_get(&w->bufs, need);
  if (b) {
    http_head_build_request(b->data, need, &fr);
    b->len = (uint32_t)need;
  }
  return b;
}

bool authreq_begin(struct exchange *ex, struct slice target) {
  const struct cfg_route *r = ex->route;
  struct worker *w = ex->w;
  if (r->auth.upstream_index >= w->nups) {
    auth_error(ex, "the upstream is not configured");
    return true;
  }
  struct iobuf *head = auth_head_block(ex, target);
  if (!head) {
    auth_error(ex, "out of memory for the request head");
    return true;
  }
  struct subreq_params p = {.up = &w->ups[r->auth.upstream_index],
                            .head = head,
                            .response_ms = retry_response_ms(ex),
                            .keep_max = AUTHREQ_BODY_MAX,
                            .client_ip = slice_cstr(ex->client_ip ? ex->client_ip : ""),
                            .hdrs = &ex->req_hdrs,
                            .head_cb = auth_head,
                            .done = auth_done,
                            .owner = ex};
  enum subreq_result why;
  struct subreq *sr = subreq_start(w, &p, &why);
  iobuf_unref(head);
  if (!sr) {
    char msg[96];
    snprintf(msg, sizeof msg, "no request to the auth service: %s", subreq_result_name(why));
    auth_error(ex, msg);
    return true;
  }
  ex->auth = sr;
  ex->auth_target = target;
  ex->state = EX_CONNECTING;
  session_timer(ex->s, ST_NONE); /* the check has deadlines of its own */
  return true;
}

/* noinline: only a check in flight gets here; inlined, it cost every
 * request's exchange_reset registers to save. */
__attribute__((noinline)) void authreq_cancel_slow(struct exchange *ex) {
  struct subreq *sr = ex->auth;
  ex->auth = NULL;
  subreq_free(sr);
}
