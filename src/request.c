/* request: pure checks and normalisation of a parsed request head (see
 * the header). No allocation, no state: the caller's scratch buffer holds
 * what is rebuilt; a failed check's status and message come from err.h's
 * one table of errors. */
#include "ferry/request.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>

#include "ferry/router.h"

int request_status(enum request_error e) {
  return ferry_err_http_status(request_err_code(e));
}

const char *request_message(enum request_error e) {
  return e == REQUEST_OK ? "" : ferry_strerror(request_err_code(e));
}

const char *request_error_name(enum request_error e) {
  if (e == REQUEST_OK)
    return "OK";
  return ferry_err_name(request_err_code(e)) + sizeof("FERRY_E_REQUEST_") - 1;
}

enum request_error request_check_version(int major, int minor, int *minor_out) {
  if (major != 1 || minor < 0 || minor > 9)
    return REQUEST_E_VERSION;
  *minor_out = minor > 1 ? 1 : minor;
  return REQUEST_OK;
}

enum request_error request_check_transfer_encoding(const struct hdr_list *l, int minor) {
  int te = http_head_check_transfer_encoding(l);
  if (te == 0 && minor == 0 && http_head_find_tok(l, HDR_TRANSFER_ENCODING))
    te = 400; /* HTTP/1.0 has no transfer codings (RFC 9112 6.1) */
  return te == 0 ? REQUEST_OK : te == 501 ? REQUEST_E_TE_CODING : REQUEST_E_TE_FRAMING;
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The inside of "[...]": an IPv6 address (hex digits, ':' and a trailing
 * dotted quad) or an IPvFuture "v1.x"; a cheap shape check, not a parse. */
static bool ip_literal_ok(struct slice s) {
  if (s.n < 2)
    return false;
  if (s.p[0] == 'v' || s.p[0] == 'V') {
    for (size_t i = 1; i < s.n; i++)
      if (!(http_char[(unsigned char)s.p[i]] & HC_HOST) && s.p[i] != ':')
        return false;
    return true;
  }
  bool colon = false;
  for (size_t i = 0; i < s.n; i++) {
    char c = s.p[i];
    if (c == ':')
      colon = true;
    else if (!is_hex(c) && c != '.')
      return false;
  }
  return colon;
}

enum request_error request_check_host(struct slice v, bool allow_empty) {
  const unsigned char *q = (const unsigned char *)v.p;
  size_t n = v.n, i = 0;
  if (n == 0)
    return allow_empty ? REQUEST_OK : REQUEST_E_HOST_BAD;
  if (q[0] == '[') {
    const unsigned char *close = memchr(q, ']', n);
    if (!close || !ip_literal_ok(slice_make(v.p + 1, (size_t)(close - q) - 1)))
      return REQUEST_E_HOST_BAD;
    i = (size_t)(close - q) + 1;
  } else {
    /* reg-name or IPv4address: one table test per byte (this runs for
     * every request); '%' must start %XX. */
    for (;;) {
      while (i < n && (http_char[q[i]] & HC_HOST))
        i++;
      if (i + 2 >= n || q[i] != '%' || !is_hex((char)q[i + 1]) || !is_hex((char)q[i + 2]))
        break;
      i += 3;
    }
    if (i == 0)
      return REQUEST_E_HOST_BAD; /* ":80" */
  }
  if (i == n)
    return REQUEST_OK;
  /* ':' then 1 to 5 digits; anything else ('@', '/', ',', whitespace, a
   * lone '%', controls, bytes >= 0x80) is not host[:port]. */
  size_t port = n - i - 1;
  if (q[i] != ':' || port == 0 || port > 5)
    return REQUEST_E_HOST_BAD;
  for (i++; i < n; i++)
    if (!is_digit((char)q[i]))
      return REQUEST_E_HOST_BAD;
  return REQUEST_OK;
}

enum request_error request_check_target_bytes(struct slice t) {
  for (size_t i = 0; i < t.n; i++)
    if (!(http_char[(unsigned char)t.p[i]] & HC_VCHAR))
      return REQUEST_E_TARGET_BYTES;
  return REQUEST_OK;
}

static bool ieq_prefix(struct slice s, const char *lit, size_t n) {
  return s.n >= n && slice_ieq(slice_make(s.p, n), slice_make(lit, n));
}

enum request_error request_check(const struct request_head *h, char *scratch, size_t cap,
                                 struct request_verdict *v) {
  memset(v, 0, sizeof(*v));
  if (h->method == HTTP_CONNECT)
    return REQUEST_E_CONNECT;
  enum request_error e = request_check_version(h->major, h->minor, &v->minor);
  if (e != REQUEST_OK)
    return e;
  if (h->chunked && h->has_length) /* llhttp refuses this too */
    return REQUEST_E_CL_AND_TE;
  /* llhttp lets "gzip, chunked" through and reports a final non-chunked
   * coding only after the head. */
  if ((e = request_check_transfer_encoding(h->headers, v->minor)) != REQUEST_OK)
    return e;

  /* Host: at most one field; absolute-form authority wins. */
  struct slice host = {NULL, 0};
  unsigned nhost = 0;
  const struct hdr_list *l = h->headers;
  for (uint32_t i = 0; l && i < l->n; i++)
    if (l->v[i].tok == HDR_HOST) {
      host = l->v[i].value;
      nhost++;
    }
  if (nhost > 1)
    return REQUEST_E_HOST_MANY;

  struct slice target = h->target;
  if (cap < request_scratch_size(target.n))
    return REQUEST_E_TOO_LONG;
  if (!h->target_clean && (e = request_check_target_bytes(target)) != REQUEST_OK)
    return e;
  bool star = target.n == 1 && target.p[0] == '*';
  if (star && h->method != HTTP_OPTIONS)
    return REQUEST_E_TARGET_STAR;
  if (target.n == 0)
    return REQUEST_E_TARGET_FORM;
  if (target.p[0] != '/' && !star) {
    size_t skip = ieq_prefix(target, "http://", 7) ? 7 : ieq_prefix(target, "https://", 8) ? 8 : 0;
    if (!skip)
      return REQUEST_E_TARGET_FORM;
    size_t i = skip;
    while (i < target.n && target.p[i] != '/' && target.p[i] != '?')
      i++;
    struct slice auth = slice_make(target.p + skip, i - skip);
    if (request_check_host(auth, false) != REQUEST_OK)
      return REQUEST_E_AUTHORITY_BAD;
    struct slice rest = slice_make(target.p + i, target.n - i);
    if (rest.n == 0 || rest.p[0] == '?') { /* "http://h" or "http://h?q": the path is "/" */
      char *t = scratch + target.n + 1;
      t[0] = '/';
      memcpy(t + 1, rest.p, rest.n);
      rest = slice_make(t, rest.n + 1);
    }
    /* A Host field sent beside it must still be well-formed. */
    if (nhost && request_check_host(host, v->minor == 0) != REQUEST_OK)
      return REQUEST_E_HOST_BAD;
    host = auth;
    target = rest;
  } else if (nhost && request_check_host(host, v->minor == 0) != REQUEST_OK) {
    return REQUEST_E_HOST_BAD;
  }
  if (host.n == 0 && v->minor >= 1 && nhost == 0)
    return REQUEST_E_HOST_MISSING;
  v->host = host;
  v->path = target;

  if (star) {
    v->norm = SLICE_LIT("/"); /* OPTIONS * is matched like "/" and sent as is */
    return REQUEST_OK;
  }
  size_t nlen = 0;
  if (router_normalize_path(target, scratch, target.n + 1, &nlen) != 0)
    return REQUEST_E_PATH_BAD;
  v->norm = slice_make(scratch, nlen);
  return REQUEST_OK;
}

/* --- what a routed request becomes --------------------------------------- */

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
                      const struct request_head *h, struct slice send_target, struct slice host,
                      struct slice server_name, struct slice client_ip, struct slice request_id,
                      uint64_t content_length, bool upgrade, bool keep_forwarded) {
  *fr = (struct fwd_request){
      .method = slice_cstr(llhttp_method_name((llhttp_method_t)h->method)),
      .target = send_target,
      .headers = h->headers,
      .host = r->set_host ? slice_cstr(r->set_host) : (host.n ? host : server_name),
      .client_ip = client_ip,
      .proto = SLICE_LIT("http"),
      .fwd_host = host,
      .request_id = request_id,
      .client_minor = h->minor,
      .framing = h->chunked      ? FRAMING_CHUNKED
                 : h->has_length ? FRAMING_LENGTH
                                 : FRAMING_NONE,
      .content_length = content_length,
      .upgrade = upgrade,
      .keep_forwarded = keep_forwarded,
      .ops = &r->request_headers,
  };
}

int request_https_location(struct slice host, struct slice target, uint16_t port, struct arena *a,
                           struct slice *out) {
  struct slice name = router_host_strip_port(host);
  size_t cap = name.n + target.n + 16;
  char *loc = name.n ? arena_alloc(a, cap) : NULL;
  if (!loc)
    return -1;
  int n = port == 443 ? snprintf(loc, cap, "https://%.*s", (int)name.n, name.p)
                      : snprintf(loc, cap, "https://%.*s:%u", (int)name.n, name.p, port);
  memcpy(loc + n, target.p, target.n);
  *out = (struct slice){loc, (size_t)n + target.n};
  return 0;
}
