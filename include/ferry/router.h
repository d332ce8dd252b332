/* router: the compiled match rules of one configuration.
 *
 * Built once per configuration snapshot and read-only afterwards, so any
 * number of worker threads may call router_match() concurrently. Matching
 * follows SPEC §2: first match in file order wins. */
#ifndef FERRY_ROUTER_H
#define FERRY_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/slice.h"

struct router;

/* What a request is matched on. */
struct route_query {
  struct slice host;              /* the request's host without port, any case;
                                     n == 0: the request had no Host (HTTP/1.0) */
  struct slice path;              /* normalised path (router_normalize_path), no query */
  int method;                     /* llhttp_method_t */
  const struct hdr_list *headers; /* for `headers:` conditions */
};

/* Compile cfg's routes. cfg must outlive the router. NULL on out of memory. */
struct router *router_new(const struct config *cfg);
void router_free(struct router *r);

/* The first route matching q, or NULL (the caller answers 404). */
const struct cfg_route *router_match(const struct router *r, const struct route_query *q);

/* Why one route does not match a request, for `ferry explain`: the first
 * condition that fails, checked in the order host, path, methods, headers. */
enum router_skip {
  ROUTER_SKIP_NONE = 0, /* the route matches */
  ROUTER_SKIP_HOST,
  ROUTER_SKIP_PATH,
  ROUTER_SKIP_METHOD,
  ROUTER_SKIP_HEADER
};

/* Checks route rt alone against q with the same rules router_match()
 * applies (exact and wildcard hosts, the segment-boundary prefix, exact
 * paths, regexes, methods, headers). *header gets the index in rt->headers
 * of the failing header condition (ROUTER_SKIP_HEADER). A linear,
 * explanatory check for tools and tests; the request path uses
 * router_match() only. */
enum router_skip router_route_check(const struct cfg_route *rt, const struct route_query *q,
                                    size_t *header);

/* A short description of route r's conditions for people, e.g.
 * "host api.example.com, path_prefix /api" or "any request"; at most cap-1
 * bytes and a NUL. Returns the length written. */
size_t router_route_label(const struct cfg_route *r, char *out, size_t cap);

/* Whether route a matches every request that route b matches, so that b
 * can never match when a comes first in the file: a's host is the same as
 * b's or wider (no host; a wildcard covering b's host or wildcard), a's path
 * condition is the same or wider (none; a path_prefix that b's path or
 * prefix falls under; the same path or path_regex), and a has no condition
 * b lacks (a's methods include b's, a's headers are a subset of b's).
 * Conservative: false when it cannot tell (e.g. two different regexes). */
bool router_route_covers(const struct cfg_route *a, const struct cfg_route *b);

/* Appends a warning to diag (and counts it in diag->nwarnings) for every
 * route of cfg that an earlier route covers (router_route_covers), naming
 * both routes and their lines:
 *   FILE:LINE:COL: warning: routes[3] (line 14) can never match: routes[1]
 *   (line 8) comes first and matches every request it would; ...
 * One warning per shadowed route (the first route covering it). Returns the
 * number of warnings added; messages that cannot be allocated are dropped. */
size_t router_check_shadowed(const struct config *cfg, struct config_diag *diag);

/* Host header value -> host without ":port" ("[::1]:80" -> "[::1]"). */
struct slice router_host_strip_port(struct slice host);

/* Normalise an origin-form target for matching: take the path before '?'
 * or '#', decode percent-encoded unreserved characters (ALPHA DIGIT - . _ ~)
 * and leave other escapes as they are (upper-casing their hex digits),
 * resolve "." and ".." segments (RFC 3986 5.2.4), keep a trailing '/'.
 * Writes at most cap bytes to out and sets *outlen.
 * Returns 0, or -1 when the target does not start with '/', a '%' is not
 * followed by two hex digits, ".." would climb above the root, or out is
 * too small (the caller answers 400). */
int router_normalize_path(struct slice target, char *out, size_t cap, size_t *outlen);

/* The target to send upstream for route r.
 * Without rewrite_prefix: the client's target bytes unchanged (returned in
 *   *result pointing at target; nothing written to out).
 * With rewrite_prefix (only for PATH_PREFIX routes): rewrite_prefix followed
 *   by the rest of the normalised path after the matched prefix, then the
 *   client's query ("?..." from target) unchanged; "/" as rewrite_prefix
 *   strips the prefix ("/users/7" -> "/7", "/users" -> "/"); never emits
 *   "//" at the junction. Written to out.
 * Returns 0, or -1 when out (cap bytes) is too small. */
int router_target(const struct cfg_route *r, struct slice target, struct slice norm_path, char *out,
                  size_t cap, struct slice *result);

#endif
