/* reply: the bytes of a response ferry makes itself (its error statuses,
 * `respond` and `redirect` routes, 404).
 *
 * Pure: builds into memory the caller gives, with no I/O and no state. It
 * owns the default body of each status and where the extra header lines
 * go (Date, Retry-After, a route's response_headers, right after the
 * status line); http_head_build_simple does the rest. Must not know
 * exchanges or sockets. */
#ifndef FERRY_REPLY_H
#define FERRY_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/config.h"
#include "ferry/slice.h"

struct reply {
  int status;
  struct slice content_type, body, location; /* location: empty unless a redirect */
  struct slice request_id;
  struct slice date;                       /* the Date value */
  int minor;                               /* the client's HTTP/1.minor */
  bool keep_alive;                         /* else Connection: close */
  bool head_only;                          /* HEAD: the length, not the body */
  uint32_t retry_after;                    /* seconds; 0: no Retry-After */
  const struct cfg_header_ops *route_hdrs; /* a respond/redirect route's response_headers */
};

/* The body ferry sends with status when the caller has none ("" for
 * statuses it has no text for). */
const char *reply_default_body(int status);

/* Bytes of the response r; written to out when cap is at least that. */
size_t reply_build(char *out, size_t cap, const struct reply *r);

#endif
