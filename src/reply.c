/* reply: the bytes of a response ferry makes itself (see reply.h).
 *
 * Pure: no I/O, no state; must not know exchanges or sockets. */
#include "ferry/reply.h"

#include <stdio.h>
#include <string.h>

#include "ferry/http_head_build.h"

const char *reply_default_body(int status) {
  switch (status) {
  case 400:
    return "bad request\n";
  case 404:
    return "no route\n";
  case 405:
    return "method not allowed\n";
  case 408:
    return "request timeout: the request head did not arrive in time\n";
  case 413:
    return "request body too large\n";
  case 414:
    return "request target too long\n";
  case 431:
    return "request header fields too large\n";
  case 501:
    return "not implemented\n";
  case 502:
    return "bad gateway: the upstream server failed to answer\n";
  case 503:
    return "service unavailable\n";
  case 504:
    return "gateway timeout: the upstream server did not answer in time\n";
  case 505:
    return "HTTP version not supported\n";
  default:
    return "";
  }
}

/* The header lines a respond or redirect route adds to the response ferry
 * makes for it: response_headers set, then add (remove has nothing to act
 * on there). Writes them to out unless it is NULL; returns their length. */
static size_t route_headers(const struct cfg_header_ops *ops, char *out) {
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    const struct cfg_kv *kv = pass ? ops->add : ops->set;
    size_t count = pass ? ops->nadd : ops->nset;
    for (size_t i = 0; i < count; i++) {
      size_t a = strlen(kv[i].name), v = strlen(kv[i].value);
      if (out) {
        memcpy(out + n, kv[i].name, a);
        memcpy(out + n + a, ": ", 2);
        memcpy(out + n + a + 2, kv[i].value, v);
        memcpy(out + n + a + 2 + v, "\r\n", 2);
      }
      n += a + v + 4;
    }
  }
  return n;
}

size_t reply_build(char *out, size_t cap, const struct reply *r) {
  size_t need = http_head_build_simple(NULL, 0, r->status, r->content_type, r->body, r->location,
                                       r->request_id, r->minor, r->keep_alive, r->head_only);
  char extra[96]; /* Date (RFC 9110 6.6.1), then Retry-After */
  size_t el = 0;
  if (r->date.n) {
    memcpy(extra, "Date: ", 6);
    memcpy(extra + 6, r->date.p, r->date.n);
    memcpy(extra + 6 + r->date.n, "\r\n", 2);
    el = r->date.n + 8;
  }
  if (r->retry_after)
    el += (size_t)snprintf(extra + el, sizeof(extra) - el, "Retry-After: %u\r\n", r->retry_after);
  size_t rhl = r->route_hdrs ? route_headers(r->route_hdrs, NULL) : 0;
  size_t total = need + el + rhl;
  if (!out || cap < total)
    return total;
  http_head_build_simple(out, need, r->status, r->content_type, r->body, r->location, r->request_id,
                         r->minor, r->keep_alive, r->head_only);
  const char *eol = el > 0 || rhl > 0 ? memchr(out, '\n', need) : NULL;
  if (eol) { /* Date, Retry-After and the route's headers right after the status line */
    size_t at = (size_t)(eol + 1 - out);
    memmove(out + at + el + rhl, out + at, need - at);
    memcpy(out + at, extra, el);
    if (rhl)
      route_headers(r->route_hdrs, out + at + el);
  }
  return total;
}
