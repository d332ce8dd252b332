/* h1parse: a one-pass parser for the common HTTP/1.x head.
 *
 * Most heads on the wire are plain: a complete head in one read, a usual
 * method and an origin-form target (or a plain status line), token field
 * names, visible-ASCII values, CRLF line ends, at most one Content-Length
 * and no Transfer-Encoding. For those the heads are read here in one pass
 * straight into a header list, instead of through llhttp's callbacks plus
 * the strict scanner.
 *
 * The contract is narrow on purpose: H1_OK only for a head that llhttp and
 * http_head_scan both accept and read the same way (the differential
 * fuzz target tests/fuzz/fuzz_h1parse.c checks exactly that). Everything
 * else is H1_SLOW, and the caller parses the same bytes the old way, which
 * keeps every error status and every lenient corner where it was: a
 * partial head, leading empty lines, bare LF or CR, obs-fold, space before
 * a colon, obs-text, a control byte, Transfer-Encoding, Upgrade,
 * Proxy-Connection, a Connection field other than one lone "close" or
 * "keep-alive", a second Content-Length or one that is not plain digits,
 * other HTTP versions, rarer methods, and targets other than origin-form.
 *
 * Pure: no allocation, no state between calls. Header slices point into
 * the caller's buffer. */
#ifndef FERRY_H1PARSE_H
#define FERRY_H1PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/http_head.h"
#include "ferry/slice.h"

enum h1_result { H1_OK = 0, H1_SLOW = 1 };

struct h1_head {
  size_t len;           /* bytes of the head, through the empty line's LF */
  int method;           /* requests: enum llhttp_method */
  struct slice target;  /* requests: the request target as sent */
  int status;           /* responses: 100..599 */
  struct slice reason;  /* responses: the reason phrase, possibly empty */
  uint8_t minor;        /* HTTP/1.minor: 0 or 1 */
  bool has_length;      /* one Content-Length field was present */
  uint64_t length;      /* its value */
  bool conn_close;      /* Connection: close */
  bool conn_keep_alive; /* Connection: keep-alive */
};

/* Parse a request head at p[0..n). On H1_OK the fields are appended to
 * hdrs (values without surrounding whitespace, tokens set, flags 0) and
 * *h is filled. On H1_SLOW hdrs->n is back where it was. */
int h1_parse_request(const char *p, size_t n, struct hdr_list *hdrs, struct h1_head *h);

/* The same for a response head. */
int h1_parse_response(const char *p, size_t n, struct hdr_list *hdrs, struct h1_head *h);

/* Persistence as llhttp_should_keep_alive() decides it for a message whose
 * length is known: HTTP/1.1 unless "close", HTTP/1.0 only with
 * "keep-alive". */
static inline bool h1_keep_alive(const struct h1_head *h) {
  return h->minor >= 1 ? !h->conn_close : h->conn_keep_alive;
}

#endif
