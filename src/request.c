/* request: pure checks and normalisation of a request head, the redirect
 * location, the upstream target and the upstream head's description.
 *
 * Owns nothing: everything it returns points into the caller's request or
 * arena. Must not touch sockets, sessions, exchanges or workers: the
 * exchange (every request) and `ferry explain` (src/explain.c) call the
 * same functions, so explain tells what the proxy does. */
#include "ferry/request.h"

#include <llhttp.h>
#include <string.h>

#include "ferry/router.h"

static bool ieq_prefix(struct slice s, const char *lit) {
  size_t n = strlen(lit);
  if (s.n < n)
    return false;
  return slice_ieq((struct slice){s.p, n}, (struct slice){lit, n});
}

static int refuse(struct request_checked *out, int status, const char *body) {
  out->status = status;
  out->body = body;
  return status;
}

int request_check(const struct request_in *in, struct arena *a, struct request_checked *out) {
  memset(out, 0, sizeof *out);
  if (in->method == HTTP_CONNECT)
    return refuse(out, 405, "method not allowed: ferry is not a forward proxy\n");
  if (in->bad_version)
    return refuse(out, 505, NULL);
  if (in->chunked && in->has_length) /* llhttp rejects this too */
    return refuse(out, 400, NULL);
  /* Transfer-Encoding: only "chunked", last and once (llhttp lets
   * "gzip, chunked" through and reports a final non-chunked coding only
   * after the head); HTTP/1.0 has no transfer codings (RFC 9112 6.1). */
  int te = http_head_check_transfer_encoding(in->headers);
  if (te == 0 && in->minor == 0 && http_head_find_tok(in->headers, HDR_TRANSFER_ENCODING))
    te = 400;
  if (te == 501)
    return refuse(out, 501,
                  "not implemented: ferry accepts no Transfer-Encoding but chunked; "
                  "send the body with Content-Length or chunked alone\n");
  if (te != 0)
    return refuse(out, 400,
                  "bad request: Transfer-Encoding must be chunked, once, as the final coding, "
                  "in an HTTP/1.1 request\n");

  /* Host: exactly one Host header; absolute-form authority wins. */
  struct slice host = {NULL, 0};
  unsigned nhost = 0;
  for (uint32_t i = 0; i < in->headers->n; i++)
    if (in->headers->v[i].tok == HDR_HOST) {
      host = in->headers->v[i].value;
      nhost++;
    }
  if (nhost > 1)
    return refuse(out, 400, "bad request: more than one Host header\n");
  struct slice target = in->url;
  if (target.n == 1 && target.p[0] == '*' && in->method != HTTP_OPTIONS)
    return refuse(out, 400, "bad request: only OPTIONS may use the target *\n");
  if (target.n > 0 && target.p[0] != '/' && !(target.n == 1 && target.p[0] == '*')) {
    size_t skip = ieq_prefix(target, "http://") ? 7 : ieq_prefix(target, "https://") ? 8 : 0;
    if (!skip)
      return refuse(out, 400, "bad request: the request target is not a path or an http URL\n");
    size_t i = skip;
    while (i < target.n && target.p[i] != '/' && target.p[i] != '?')
      i++;
    host = (struct slice){target.p + skip, i - skip};
    if (host.n == 0 || memchr(host.p, '@', host.n))
      return refuse(out, 400, "bad request: the URL's authority must be a host[:port]\n");
    struct slice rest = {target.p + i, target.n - i};
    if (rest.n == 0 || rest.p[0] == '?') {
      char *t = arena_alloc(a, rest.n + 1);
      if (!t)
        return refuse(out, 414, NULL);
      t[0] = '/';
      memcpy(t + 1, rest.p, rest.n);
      rest = (struct slice){t, rest.n + 1};
    }
    target = rest;
  }
  if (host.n == 0 && in->minor >= 1 && nhost == 0)
    return refuse(out, 400, "bad request: HTTP/1.1 requests must carry a Host header\n");
  out->host = host;
  out->target = target;

  /* Normalised path for matching. */
  if (target.n == 1 && target.p[0] == '*') {
    out->norm = SLICE_LIT("/"); /* OPTIONS * is matched like "/" and sent as is */
    return 0;
  }
  char *nbuf = arena_alloc(a, target.n + 1);
  size_t nlen = 0;
  if (!nbuf)
    return refuse(out, 414, NULL);
  if (router_normalize_path(target, nbuf, target.n + 1, &nlen) != 0)
    return refuse(out, 400, "bad request: malformed request path\n");
  out->norm = (struct slice){nbuf, nlen};
  return 0;
}

int request_redirect_location(const struct cfg_route *r, struct slice target, struct arena *a,
                              struct slice *out) {
  /* Keep the query string unless the location has one. */
  const char *loc = r->redirect_location;
  size_t ll = strlen(loc);
  struct slice query = {NULL, 0};
  const char *qm = target.n ? memchr(target.p, '?', target.n) : NULL;
  if (qm && !strchr(loc, '?'))
    query = (struct slice){qm, (size_t)(target.p + target.n - qm)};
  char *lb = arena_alloc(a, ll + query.n + 1);
  if (!lb)
    return -1;
  memcpy(lb, loc, ll);
  if (query.n)
    memcpy(lb + ll, query.p, query.n);
  *out = (struct slice){lb, ll + query.n};
  return 0;
}

int request_upstream_target(const struct cfg_route *r, struct slice target, struct slice norm,
                            struct arena *a, struct slice *out) {
  size_t tcap = target.n + (r->rewrite_prefix ? strlen(r->rewrite_prefix) : 0) + 2;
  char *tbuf = r->rewrite_prefix ? arena_alloc(a, tcap) : NULL;
  if (r->rewrite_prefix && !tbuf)
    return -1;
  return router_target(r, target, norm, tbuf, tcap, out);
}

void request_fwd_init(struct fwd_request *fr, const struct cfg_route *r,
                      const struct request_in *in, struct slice send_target, struct slice host,
                      struct slice server_name, struct slice client_ip, struct slice request_id,
                      uint64_t content_length, bool upgrade) {
  *fr = (struct fwd_request){
      .method = slice_cstr(llhttp_method_name((llhttp_method_t)in->method)),
      .target = send_target,
      .headers = in->headers,
      .host = r->set_host ? slice_cstr(r->set_host) : (host.n ? host : server_name),
      .client_ip = client_ip,
      .proto = SLICE_LIT("http"),
      .fwd_host = host,
      .request_id = request_id,
      .client_minor = in->minor,
      .framing = in->chunked      ? FRAMING_CHUNKED
                 : in->has_length ? FRAMING_LENGTH
                                  : FRAMING_NONE,
      .content_length = content_length,
      .upgrade = upgrade,
      .ops = &r->request_headers,
  };
}
