/* http_head_build: serialising the heads ferry sends (the request to the
 * upstream, the response to the client, its own replies, and the last
 * chunk with trailers).
 *
 * Pure functions over data: no sockets, no allocation. Each writes into
 * the caller's buffer and keeps no pointer to its inputs; header lists
 * come from http_head, which decides what each header is. */
#ifndef FERRY_HTTP_HEAD_BUILD_H
#define FERRY_HTTP_HEAD_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/slice.h"

/* The request head ferry sends upstream. */
struct fwd_request {
  struct slice method;            /* as received, e.g. "GET" */
  struct slice target;            /* origin-form path[?query] to send (already rewritten) */
  const struct hdr_list *headers; /* the client's headers, http_head_mark_hop done */
  struct slice host;              /* Host to send; n == 0: no Host line */
  struct slice client_ip;         /* appended to X-Forwarded-For */
  struct slice proto;             /* X-Forwarded-Proto value, "http" */
  struct slice fwd_host;          /* X-Forwarded-Host: the client's Host; n == 0: omitted */
  bool keep_forwarded;            /* the peer is a trusted proxy: its X-Forwarded-Proto and
                                     X-Forwarded-Host are kept (proto and fwd_host are sent only
                                     when it sent none) */
  struct slice request_id;        /* X-Request-Id to send */
  struct slice traceparent;       /* n > 0: sent in place of the client's (src/trace.c) */
  int client_minor;               /* client's HTTP/1.x minor: Via "1.0 ferry" / "1.1 ferry" */
  enum body_framing framing;
  uint64_t content_length; /* with FRAMING_LENGTH */
  bool upgrade;            /* keep the client's Upgrade header and send "Connection: upgrade" */
  const struct cfg_header_ops *ops; /* route request_headers; may be NULL */
  struct slice client_cert;         /* X-Forwarded-Client-Cert to send (mTLS); the
                                       client's own is never forwarded */
};

/* Serialise the upstream request head into out (at most cap bytes):
 *   METHOD SP target SP HTTP/1.1 CRLF
 *   Host (when given) first, then the client's headers in order, minus:
 *   hop-by-hop ones, Host, Content-Length, Transfer-Encoding,
 *   X-Forwarded-For/-Proto/-Host (-Proto/-Host kept with keep_forwarded),
 *   Via, X-Request-Id (these are re-made), X-Forwarded-Client-Cert, and
 *   names in ops->remove or ops->set;
 *   then framing (Content-Length: N or Transfer-Encoding: chunked),
 *   X-Forwarded-For (existing values joined with ", ", then client_ip),
 *   X-Forwarded-Proto, X-Forwarded-Host, Via (existing values, then
 *   "1.x ferry"), X-Request-Id, traceparent (when given, the client's is
 *   dropped), "Connection: upgrade" + Upgrade when upgrading,
 *   X-Forwarded-Client-Cert (client_cert, when set), ops->set entries,
 *   ops->add entries; CRLF.
 * Returns the full length needed; when it is > cap nothing useful was
 * written and the caller must retry with a larger buffer. */
size_t http_head_build_request(char *out, size_t cap, const struct fwd_request *r);

/* The response head ferry sends back to the client. */
struct fwd_response {
  int status;
  struct slice reason;              /* upstream's reason; n == 0: standard one */
  const struct hdr_list *headers;   /* upstream's headers, http_head_mark_hop done */
  enum body_framing framing;        /* what ferry will send to the client */
  uint64_t content_length;          /* with FRAMING_LENGTH */
  struct slice request_id;          /* sent as X-Request-Id */
  struct slice date;                /* sent as Date when the upstream sent none; n == 0: never */
  int client_minor;                 /* 0: HTTP/1.0 client */
  bool keep_alive;                  /* false: "Connection: close"; true with client_minor 0:
                                       "Connection: keep-alive" */
  bool upgrade;                     /* 101: keep Upgrade, send "Connection: upgrade" */
  const struct cfg_header_ops *ops; /* route response_headers; may be NULL */
};

/* Serialise "HTTP/1.1 status reason", the upstream's headers minus hop-by-hop
 * ones, Content-Length, Transfer-Encoding, X-Request-Id and ops-removed/set
 * names; then framing (FRAMING_LENGTH: Content-Length, FRAMING_CHUNKED:
 * Transfer-Encoding: chunked, NONE/CLOSE: nothing), Date (r->date, when no
 * Date was forwarded and ops neither set nor remove it), X-Request-Id, the
 * Connection header as described, ops->set, ops->add, CRLF.
 * Returns the length needed (see http_head_build_request). */
size_t http_head_build_response(char *out, size_t cap, const struct fwd_response *r);

/* A complete response ferry generates itself (errors, respond:, redirect:):
 * status line, Content-Type, Content-Length, X-Request-Id (when
 * request_id.n > 0), Location (when location.n > 0), Connection as for
 * fwd_response, CRLF, then body unless head_only.
 * Returns the length needed (see above). */
size_t http_head_build_simple(char *out, size_t cap, int status, struct slice content_type,
                              struct slice body, struct slice location, struct slice request_id,
                              int client_minor, bool keep_alive, bool head_only);

/* The end of a chunked body with trailers: "0" CRLF, then each field of
 * l->v[from..l->n) that http_head_trailer_allowed lets through, in order;
 * then CRLF. Returns the length needed (see http_head_build_request). */
size_t http_head_build_last_chunk(char *out, size_t cap, const struct hdr_list *l, uint32_t from);

#endif
