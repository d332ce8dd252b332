/* explain: `ferry explain` — which route a request takes and why, and the
 * request exactly as ferry would forward it, without sending anything.
 *
 * Built on the proxy's own code: request_check (the request-head checks),
 * router_match (the route), router_route_check (why each earlier route did
 * not match), request_upstream_target / request_redirect_location and
 * request_fwd_init + http_head_build_request (the upstream head). Pure:
 * no sockets, no threads; results are heap copies owned by the caller.
 * `ferry test-routes` (src/routetest.c) and the inspector use it too. */
#ifndef FERRY_EXPLAIN_H
#define FERRY_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ferry/config.h"
#include "ferry/insprec.h"
#include "ferry/router.h"

struct explain_header {
  char *name, *value;
};

/* A request to explain. Strings are borrowed for the call. */
struct explain_query {
  const char *method; /* "GET" (any case is not accepted: methods are case-sensitive) */
  const char *url;    /* "http://host/path?q", or "/path" with a Host header */
  const struct explain_header *headers; /* as the client would send them */
  size_t nheaders;
  const char *client_ip;  /* X-Forwarded-For; NULL: "127.0.0.1" */
  const char *request_id; /* X-Request-Id when the client sends none; NULL: generated */
};

struct explain_skip {
  size_t index; /* in routes[] */
  int line;
  enum router_skip why;
  char *reason; /* "host: ...", "path: ...", "method: ...", "header: ..." */
};

struct explain_result {
  bool matched;
  int status;  /* what ferry answers itself: respond/redirect status, 404 (no route), or the
                  request check's status (400, 501...); 0 when forwarded upstream */
  char *error; /* with a failed request check: ferry's message, without newline */
  const struct cfg_route *route;  /* NULL unless matched */
  const char *action;             /* "upstream", "redirect", "respond"; NULL unless matched */
  char *location;                 /* redirect: the Location ferry sends */
  char *request_line;             /* upstream: "GET /v2/users/7 HTTP/1.1" */
  struct explain_header *headers; /* upstream: what goes with it, in order */
  size_t nheaders;
  struct explain_skip *skipped; /* every route before the match (every route: no match) */
  size_t nskipped;
};

/* Explain q against cfg compiled as router. Returns 0 (out filled: free it
 * with explain_result_free), or -1 with a sentence in err for a request
 * that cannot be explained (unknown method, malformed header, out of memory). */
int explain_run(const struct config *cfg, const struct router *router,
                const struct explain_query *q, struct explain_result *out, char *err,
                size_t errlen);
void explain_result_free(struct explain_result *r);

/* Why route rt does not match q (why and hi from router_route_check), as
 * one sentence starting with the condition: "host: ...", "path: ...",
 * "method: ...", "header: ...". Written to out (cap bytes, NUL-terminated,
 * truncated when long); returns its length. No allocation: the inspector
 * calls it on a worker when it captures an exchange. */
size_t explain_skip_reason(char *out, size_t cap, const struct cfg_route *rt,
                           const struct route_query *q, enum router_skip why, size_t hi);

/* SPEC §9's JSON object (one line, then a newline). */
void explain_render_json(struct inspect_out *o, const struct explain_result *r);
/* The same for people. */
void explain_render_text(FILE *out, const struct config *cfg, const struct explain_query *q,
                         const struct explain_result *r);

/* Value of header name in r's forwarded headers (case-insensitive, values
 * of repeated names joined with ", "), or NULL; *buf is the caller's to
 * free when set. */
const char *explain_forwarded_header(const struct explain_result *r, const char *name, char **buf);

/* `ferry explain [-c FILE] [--json] METHOD URL [-H "Name: value"]...
 * [--from IP]`; argv[0] is "explain". Exit code: 0 a route matches, 3
 * none does, 1 usage or configuration error. */
int explain_main(int argc, char **argv);

#endif
