/* request: the pure checks and normalisation of one request head, and the
 * pieces of what ferry does with it that do not need a connection: which
 * Host and target it is routed on, the redirect location, the upstream
 * target and the head sent upstream.
 *
 * Used by the exchange for every request and by `ferry explain` /
 * `ferry test-routes` (src/explain.c), so the tools tell exactly what the
 * proxy does. No sockets, no loop, no global state; memory comes from the
 * caller's arena. */
#ifndef FERRY_REQUEST_H
#define FERRY_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/slice.h"

/* A parsed request head, as the session hands it over. */
struct request_in {
  int method;                     /* llhttp_method_t */
  int minor;                      /* HTTP/1.minor */
  bool bad_version;               /* HTTP major version other than 1 */
  bool chunked;                   /* Transfer-Encoding: chunked */
  bool has_length;                /* Content-Length */
  struct slice url;               /* the request target as received */
  const struct hdr_list *headers; /* http_head_mark_hop done */
};

/* What the checks decided. */
struct request_checked {
  struct slice host;   /* Host as sent (with port), or the absolute-form
                          authority; n == 0: none */
  struct slice target; /* origin-form target ("/path?query"; "*" for OPTIONS *) */
  struct slice norm;   /* normalised path to route on (router_normalize_path) */
  int status;          /* 0: route it; else the status to answer, then close */
  const char *body;    /* with status: the body to send; NULL: the default one */
};

/* Checks in order (first failure wins): CONNECT (405), a major version
 * other than 1 (505), Content-Length with chunked (400), Transfer-Encoding
 * (501 for another coding, 400 when chunked is not alone and last or the
 * request is HTTP/1.0), more than one Host (400), the target's form (400
 * unless a path, "*" with OPTIONS, or an http(s) URL whose authority is a
 * host[:port]; the authority then wins over Host), an HTTP/1.1 request
 * without any Host (400), a path that does not normalise (400); arena
 * exhaustion gives 414. Copies go to arena a. Returns out->status. */
int request_check(const struct request_in *in, struct arena *a, struct request_checked *out);

/* The Location of a redirect route for a request with this target: the
 * route's location, plus the request's query unless the location has one.
 * Returns 0, or -1 when the arena is exhausted (414). */
int request_redirect_location(const struct cfg_route *r, struct slice target, struct arena *a,
                              struct slice *out);

/* The target sent upstream for route r (router_target; the rewrite goes
 * into arena a). Returns 0, or -1 when the arena is exhausted (414). */
int request_upstream_target(const struct cfg_route *r, struct slice target, struct slice norm,
                            struct arena *a, struct slice *out);

/* The upstream head's description for route r: method, target (already
 * rewritten), headers, Host (set_host, else the client's, else the
 * server's name), X-Forwarded-* from host and client_ip, the request id,
 * framing and the route's request_headers. */
void request_fwd_init(struct fwd_request *fr, const struct cfg_route *r,
                      const struct request_in *in, struct slice send_target, struct slice host,
                      struct slice server_name, struct slice client_ip, struct slice request_id,
                      uint64_t content_length, bool upgrade);

#endif
