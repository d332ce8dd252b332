/* http_head_build: the serialisers for every head ferry writes: the
 * request to the upstream, the response to the client, ferry's own simple
 * replies, and the last chunk with its trailers. Owns the bounded writer
 * they share (private to this file, always inlined, so a literal's copy
 * has a constant size).
 *
 * Owns no memory: it writes into the caller's buffer and keeps nothing
 * after it returns. Must not touch sockets, the event loop, or allocate,
 * and must not decide what a header means: tokens, hop-by-hop marks, the
 * names route operations may not write and the trailer rule come from
 * http_head. Framing (Content-Length, Transfer-Encoding) and the
 * hop-by-hop set are always re-made here from the caller's decisions; no
 * client, upstream or configured header can override them. */
#include "ferry/http_head_build.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Bounded writer: bytes beyond cap are counted but never written, so len is
 * the size the whole output needs (snprintf-like, without the NUL). */
struct writer {
  char *out;
  size_t cap, len;
};

/* The writers below are inlined into every caller so that a literal's
 * length, and so its copy, is a constant there. */
#define HOT_INLINE static inline __attribute__((always_inline))

HOT_INLINE void put(struct writer *w, const char *p, size_t n) {
  if (w->len <= w->cap && w->cap - w->len >= n) {
    if (n > 0) /* the whole piece: a literal's copy has a constant size */
      memcpy(w->out + w->len, p, n);
  } else if (w->len < w->cap) {
    memcpy(w->out + w->len, p, w->cap - w->len);
  }
  w->len += n;
}

static void put_s(struct writer *w, struct slice s) {
  put(w, s.p, s.n);
}

static void put_c(struct writer *w, const char *s) {
  put(w, s, strlen(s));
}

/* A string literal: its length is known here, and a short fixed-size copy
 * is a few moves. */
#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_u64(struct writer *w, uint64_t v) {
  char tmp[20];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  put(w, tmp + i, sizeof tmp - i);
}

/* "Name: value\r\n" */
static void put_header(struct writer *w, struct slice name, struct slice value) {
  size_t n = name.n + value.n + 4;
  if (w->len <= w->cap && w->cap - w->len >= n) { /* fits: copy without the per-piece checks */
    char *o = w->out + w->len;
    if (name.n) /* an empty slice may have a NULL pointer: memcpy must not see it */
      memcpy(o, name.p, name.n);
    o += name.n;
    *o++ = ':';
    *o++ = ' ';
    if (value.n)
      memcpy(o, value.p, value.n);
    o += value.n;
    o[0] = '\r';
    o[1] = '\n';
    w->len += n;
    return;
  }
  put_s(w, name);
  put(w, ": ", 2);
  put_s(w, value);
  put(w, "\r\n", 2);
}

/* "Name: value\r\n" where prefix is the literal "Name: " (pn bytes): the
 * name is a fixed-size copy. Use through PUT_HEADER_LIT. */
HOT_INLINE void put_header_prefix(struct writer *w, const char *prefix, size_t pn,
                                  struct slice value) {
  size_t n = pn + value.n + 2;
  if (w->len <= w->cap && w->cap - w->len >= n) {
    char *o = w->out + w->len;
    memcpy(o, prefix, pn);
    if (value.n)
      memcpy(o + pn, value.p, value.n);
    o[n - 2] = '\r';
    o[n - 1] = '\n';
    w->len += n;
    return;
  }
  put(w, prefix, pn);
  put_s(w, value);
  put(w, "\r\n", 2);
}
#define PUT_HEADER_LIT(w, name, value)                                                             \
  put_header_prefix((w), name ": ", sizeof(name ": ") - 1, (value))

/* "HTTP/1.1 <status> <reason>\r\n"; reason.n == 0 uses the standard one. */
static void put_status_line(struct writer *w, int status, struct slice reason) {
  if (status >= 100 && status <= 999 && w->len <= w->cap && w->cap - w->len >= 13) {
    char *o = w->out + w->len; /* every status ferry sends: three digits */
    memcpy(o, "HTTP/1.1 ", 9);
    o[9] = (char)('0' + status / 100);
    o[10] = (char)('0' + status / 10 % 10);
    o[11] = (char)('0' + status % 10);
    o[12] = ' ';
    w->len += 13;
  } else {
    PUT_LIT(w, "HTTP/1.1 ");
    put_u64(w, status < 0 ? 0u : (uint64_t)status);
    put(w, " ", 1);
  }
  if (reason.n > 0)
    put_s(w, reason);
  else
    put_c(w, http_status_reason(status));
  put(w, "\r\n", 2);
}

/* True when ops->set or ops->remove names `name` (case-insensitive). */
static bool ops_names(const struct cfg_header_ops *ops, struct slice name) {
  if (!ops || (ops->nset == 0 && ops->nremove == 0))
    return false;
  for (size_t i = 0; i < ops->nset; i++)
    if (slice_ieq(slice_cstr(ops->set[i].name), name))
      return true;
  for (size_t i = 0; i < ops->nremove; i++)
    if (slice_ieq(slice_cstr(ops->remove[i]), name))
      return true;
  return false;
}

/* ops when it sets or removes any header, else NULL: the builders test
 * this once instead of scanning empty lists for every line. */
static inline const struct cfg_header_ops *naming_ops(const struct cfg_header_ops *ops) {
  return ops && (ops->nset || ops->nremove) ? ops : NULL;
}

/* True when a header ferry generates itself (Host, X-Forwarded-*, Via,
 * X-Request-Id) is to be emitted: ops->set replaces it, ops->remove drops
 * it, so either suppresses ferry's own line. nops: from naming_ops. */
#define OWN_WANTED(nops, name) (!(nops) || !ops_names((nops), SLICE_LIT(name)))

/* ops->set entries then ops->add entries, skipping protected names. */
static void put_ops(struct writer *w, const struct cfg_header_ops *ops) {
  if (!ops || (ops->nset == 0 && ops->nadd == 0))
    return;
  for (size_t i = 0; i < ops->nset; i++) {
    struct slice n = slice_cstr(ops->set[i].name);
    if (!http_head_token_protected(http_head_token(n.p, n.n)))
      put_header(w, n, slice_cstr(ops->set[i].value));
  }
  for (size_t i = 0; i < ops->nadd; i++) {
    struct slice n = slice_cstr(ops->add[i].name);
    if (!http_head_token_protected(http_head_token(n.p, n.n)))
      put_header(w, n, slice_cstr(ops->add[i].value));
  }
}

static void put_framing(struct writer *w, enum body_framing framing, uint64_t content_length) {
  if (framing == FRAMING_LENGTH) {
    PUT_LIT(w, "Content-Length: ");
    put_u64(w, content_length);
    put(w, "\r\n", 2);
  } else if (framing == FRAMING_CHUNKED) {
    PUT_LIT(w, "Transfer-Encoding: chunked\r\n");
  }
}

/* Joins the values of every non-hop header with token tok in l with ", ",
 * then `last` (when non-empty), as one line after `name` (which ends in
 * ": "). Writes nothing when the result would be empty. */
static void put_joined(struct writer *w, const char *name, const struct hdr_list *l,
                       enum hdr_token tok, struct slice last) {
  bool any = false;
  for (uint32_t i = 0; l && i < l->n; i++) {
    const struct hdr *h = &l->v[i];
    if (h->tok != tok || (h->flags & HDRF_HOP) || h->value.n == 0)
      continue;
    if (!any)
      put_c(w, name);
    else
      put(w, ", ", 2);
    put_s(w, h->value);
    any = true;
  }
  if (last.n > 0) {
    if (!any)
      put_c(w, name);
    else
      put(w, ", ", 2);
    put_s(w, last);
    any = true;
  }
  if (any)
    put(w, "\r\n", 2);
}

/* put_joined for a literal name ("Name: "): when l holds no such header,
 * the one line for `last`. */
#define PUT_JOINED_LIT(w, name, l, tok, last)                                                      \
  do {                                                                                             \
    if ((l) && http_head_may_have((l), (tok)))                                                     \
      put_joined((w), name ": ", (l), (tok), (last));                                              \
    else if ((last).n > 0)                                                                         \
      PUT_HEADER_LIT((w), name, (last));                                                           \
  } while (0)

/* "Connection: upgrade" followed by every Upgrade header of l. */
static void put_upgrade(struct writer *w, const struct hdr_list *l) {
  PUT_LIT(w, "Connection: upgrade\r\n");
  for (uint32_t i = 0; l && i < l->n; i++)
    if (l->v[i].tok == HDR_UPGRADE)
      put_header(w, SLICE_LIT("Upgrade"), l->v[i].value);
}

/* The Connection line sent to a client, shared by the response builders. */
static void put_client_connection(struct writer *w, int client_minor, bool keep_alive) {
  if (!keep_alive)
    PUT_LIT(w, "Connection: close\r\n");
  else if (client_minor == 0)
    PUT_LIT(w, "Connection: keep-alive\r\n");
}

size_t http_head_build_request(char *out, size_t cap, const struct fwd_request *r) {
  struct writer w = {out, cap, 0};
  const struct hdr_list *l = r->headers;
  const struct cfg_header_ops *nops = naming_ops(r->ops);

  put_s(&w, r->method);
  put(&w, " ", 1);
  put_s(&w, r->target);
  PUT_LIT(&w, " HTTP/1.1\r\n");

  if (r->host.n > 0 && OWN_WANTED(nops, "Host"))
    PUT_HEADER_LIT(&w, "Host", r->host);

  bool sent_proto = false, sent_host = false;
  for (uint32_t i = 0; l && i < l->n; i++) {
    const struct hdr *h = &l->v[i];
    if (h->flags & HDRF_HOP)
      continue;
    switch (h->tok) {
    case HDR_X_FORWARDED_PROTO:
    case HDR_X_FORWARDED_HOST:
      if (!r->keep_forwarded)
        continue;
      if (h->tok == HDR_X_FORWARDED_PROTO)
        sent_proto = true;
      else
        sent_host = true;
      break;
    case HDR_HOST:
    case HDR_CONTENT_LENGTH:
    case HDR_TRANSFER_ENCODING:
    case HDR_X_FORWARDED_FOR:
    case HDR_VIA:
    case HDR_X_REQUEST_ID:
      continue;
    case HDR_TRACEPARENT:
      if (r->traceparent.n > 0)
        continue;
      break;
    default:
      break;
    }
    if (nops && ops_names(nops, h->name))
      continue;
    if (h->name.n == 23 && strncasecmp(h->name.p, "x-forwarded-client-cert", 23) == 0)
      continue; /* only ferry says which certificate the client showed */
    put_header(&w, h->name, h->value);
  }

  put_framing(&w, r->framing, r->content_length);
  if (OWN_WANTED(nops, "X-Forwarded-For"))
    PUT_JOINED_LIT(&w, "X-Forwarded-For", l, HDR_X_FORWARDED_FOR, r->client_ip);
  if (r->proto.n > 0 && !sent_proto && OWN_WANTED(nops, "X-Forwarded-Proto"))
    PUT_HEADER_LIT(&w, "X-Forwarded-Proto", r->proto);
  if (r->fwd_host.n > 0 && !sent_host && OWN_WANTED(nops, "X-Forwarded-Host"))
    PUT_HEADER_LIT(&w, "X-Forwarded-Host", r->fwd_host);
  if (OWN_WANTED(nops, "Via"))
    PUT_JOINED_LIT(&w, "Via", l, HDR_VIA,
                   r->client_minor == 0 ? SLICE_LIT("1.0 ferry") : SLICE_LIT("1.1 ferry"));
  if (r->request_id.n > 0 && OWN_WANTED(nops, "X-Request-Id"))
    PUT_HEADER_LIT(&w, "X-Request-Id", r->request_id);
  if (r->traceparent.n > 0 && OWN_WANTED(nops, "traceparent"))
    PUT_HEADER_LIT(&w, "traceparent", r->traceparent);
  if (r->upgrade)
    put_upgrade(&w, l);
  if (r->client_cert.n > 0)
    PUT_HEADER_LIT(&w, "X-Forwarded-Client-Cert", r->client_cert);
  put_ops(&w, r->ops);
  put(&w, "\r\n", 2);
  return w.len;
}

size_t http_head_build_response(char *out, size_t cap, const struct fwd_response *r) {
  struct writer w = {out, cap, 0};
  const struct hdr_list *l = r->headers;

  const struct cfg_header_ops *nops = naming_ops(r->ops);
  put_status_line(&w, r->status, r->reason);

  bool dated = false;
  for (uint32_t i = 0; l && i < l->n; i++) {
    const struct hdr *h = &l->v[i];
    if (h->flags & HDRF_HOP)
      continue;
    if (h->tok != HDR_OTHER) {
      if (h->tok == HDR_CONTENT_LENGTH || h->tok == HDR_TRANSFER_ENCODING ||
          h->tok == HDR_X_REQUEST_ID)
        continue;
    }
    if (nops && ops_names(nops, h->name))
      continue;
    dated |= h->tok == HDR_DATE;
    put_header(&w, h->name, h->value);
  }

  put_framing(&w, r->framing, r->content_length);
  if (!dated && r->date.n > 0 && OWN_WANTED(nops, "Date"))
    PUT_HEADER_LIT(&w, "Date", r->date);
  if (r->request_id.n > 0 && OWN_WANTED(nops, "X-Request-Id"))
    PUT_HEADER_LIT(&w, "X-Request-Id", r->request_id);
  if (r->upgrade)
    put_upgrade(&w, l);
  else
    put_client_connection(&w, r->client_minor, r->keep_alive);
  put_ops(&w, r->ops);
  put(&w, "\r\n", 2);
  return w.len;
}

size_t http_head_build_simple(char *out, size_t cap, int status, struct slice content_type,
                              struct slice body, struct slice location, struct slice request_id,
                              int client_minor, bool keep_alive, bool head_only) {
  struct writer w = {out, cap, 0};

  put_status_line(&w, status, slice_make(NULL, 0));
  if (content_type.n > 0)
    put_header(&w, SLICE_LIT("Content-Type"), content_type);
  PUT_LIT(&w, "Content-Length: ");
  put_u64(&w, body.n);
  put(&w, "\r\n", 2);
  if (request_id.n > 0)
    put_header(&w, SLICE_LIT("X-Request-Id"), request_id);
  if (location.n > 0)
    put_header(&w, SLICE_LIT("Location"), location);
  put_client_connection(&w, client_minor, keep_alive);
  put(&w, "\r\n", 2);
  if (!head_only)
    put_s(&w, body);
  return w.len;
}

size_t http_head_build_last_chunk(char *out, size_t cap, const struct hdr_list *l, uint32_t from) {
  struct writer w = {out, cap, 0};
  put(&w, "0\r\n", 3);
  for (uint32_t i = from; l && i < l->n; i++) {
    const struct hdr *h = &l->v[i];
    if (!http_head_trailer_allowed(l, from, h))
      continue;
    put_header(&w, h->name, h->value);
  }
  put(&w, "\r\n", 2);
  return w.len;
}
