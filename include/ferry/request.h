/* request: the pure checks and normalisation of one parsed request head.
 *
 * Owns nothing: every function reads the head it is given (method,
 * version, target and header list, as a parser left them) and writes only
 * into the caller's scratch buffer. Must not touch sessions, exchanges,
 * sockets or the event loop; the exchange calls request_check() when a
 * head is complete and answers with the verdict's status and message.
 *
 * What is refused, and with which status, is decided here and nowhere
 * else: the error table below maps every failed check to its HTTP status
 * and the words the client reads. */
#ifndef FERRY_REQUEST_H
#define FERRY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/err.h"
#include "ferry/http_head_build.h"
#include "ferry/slice.h"

/* Every way a request head can fail is in err.h's table of ferry's
 * errors (FERRY_REQUEST_ERRORS: name, status, message): one vocabulary,
 * statuses mapped in one place (src/err.c). REQUEST_E_x is the check's
 * index; request_err_code() its ferry error code. */
#define REQUEST_ERRORS FERRY_REQUEST_ERRORS

enum request_error {
  REQUEST_OK = 0,
#define REQUEST_ENUM_(name, status, msg) REQUEST_E_##name,
  REQUEST_ERRORS(REQUEST_ENUM_)
#undef REQUEST_ENUM_
      REQUEST_E__COUNT
};

/* The ferry error code of a failed check (0 for REQUEST_OK). */
static inline int request_err_code(enum request_error e) {
  return e == REQUEST_OK ? 0 : FERRY_E_REQUEST_BASE - (int)e;
}

/* The HTTP status a failed check is answered with (0 for REQUEST_OK). */
int request_status(enum request_error e);
/* The plain-text body the client reads ("" for REQUEST_OK). */
const char *request_message(enum request_error e);
/* The error's name ("HOST_BAD"), for logs and tests. */
const char *request_error_name(enum request_error e);

/* A parsed request head, as the parser left it. */
struct request_head {
  int method;                     /* enum llhttp_method */
  int major, minor;               /* HTTP/major.minor as received (single digits) */
  struct slice target;            /* the request target as received */
  const struct hdr_list *headers; /* every field of the head */
  bool chunked;                   /* the parser saw Transfer-Encoding: chunked */
  bool has_length;                /* the parser saw Content-Length */
  bool target_clean;              /* the one-pass parser took only HC_TARGET bytes */
};

/* What a head that passed every check means. */
struct request_verdict {
  int minor;         /* the minor version ferry serves: HTTP/1.2+ is served as 1.1 */
  struct slice host; /* absolute-form authority, else the Host value (with port); may be empty */
  struct slice path; /* origin-form target to forward (path[?query]), or "*" */
  struct slice norm; /* normalised path for matching ("/" for "*") */
};

/* Bytes of scratch request_check() needs for a target of n bytes. */
static inline size_t request_scratch_size(size_t target_n) {
  return 2 * target_n + 2;
}

/* Every check of a complete head, in the order a client should learn
 * about them: CONNECT, version, framing (Content-Length with chunked,
 * Transfer-Encoding), Host count, target bytes and form, absolute-form
 * authority, Host syntax, Host presence, path normalisation. scratch
 * (cap >= request_scratch_size(h->target.n)) holds the normalised path and
 * a rebuilt origin-form target; v's slices point into it or into the head.
 * Returns REQUEST_OK or the first failed check. */
enum request_error request_check(const struct request_head *h, char *scratch, size_t cap,
                                 struct request_verdict *v);

/* The pieces, each usable on its own. */

/* HTTP/1.0 and 1.1 as is, 1.2..1.9 served as 1.1 (*minor_out = 1); major
 * 0 or 2 and above: REQUEST_E_VERSION. */
enum request_error request_check_version(int major, int minor, int *minor_out);

/* Transfer-Encoding of a request: chunked only, once, last, and never in
 * HTTP/1.0 (RFC 9112 6.1); a coding ferry does not implement is
 * REQUEST_E_TE_CODING (501). */
enum request_error request_check_transfer_encoding(const struct hdr_list *l, int minor);

/* host[:port] (RFC 3986 3.2.2, RFC 9112 3.2): a reg-name of unreserved,
 * sub-delims (but ',') and %XX, or an IPv4 address, or a bracketed IPv6
 * literal; then optionally ':' and 1 to 5 digits. No userinfo, no path,
 * no list, no whitespace. An empty value is REQUEST_E_HOST_BAD unless
 * allow_empty. */
enum request_error request_check_host(struct slice v, bool allow_empty);

/* Every byte of the target is visible ASCII (0x21..0x7e): raw UTF-8,
 * other bytes >= 0x80 and control characters are REQUEST_E_TARGET_BYTES. */
enum request_error request_check_target_bytes(struct slice t);

/* --- what a routed request becomes (shared by the exchange and by
 * `ferry explain`, so both build exactly the same thing) --------------- */

/* A redirect route's Location: the route's, with the client's query
 * string kept unless the location has one; in arena a. 0 or -1 (no room). */
int request_redirect_location(const struct cfg_route *r, struct slice target, struct arena *a,
                              struct slice *out);
/* listeners[].redirect_https: the Location https://host[:port]target
 * (port left out for 443), in arena a. -1 without a host name. */
int request_https_location(struct slice host, struct slice target, uint16_t port, struct arena *a,
                           struct slice *out);
/* The target sent upstream: target with the route's rewrite_prefix
 * applied (router_target), in arena a when rewritten. 0 or -1. */
int request_upstream_target(const struct cfg_route *r, struct slice target, struct slice norm,
                            struct arena *a, struct slice *out);
/* The forwarding description of a request routed by r (headers and
 * rewrite rules, forwarding headers, framing): http_head_build_request
 * serialises it. server_name is the Host sent when the client sent none
 * and the route sets none; keep_forwarded: the peer is a trusted proxy. */
void request_fwd_init(struct fwd_request *fr, const struct cfg_route *r,
                      const struct request_head *h, struct slice send_target, struct slice host,
                      struct slice server_name, struct slice client_ip, struct slice request_id,
                      uint64_t content_length, bool upgrade, bool keep_forwarded);

#endif
