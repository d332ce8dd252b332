/* http_head: header lists and lookups, interned tokens, hop-by-hop
 * marking, the rules for what configuration and trailers may carry, the
 * strict head scanner and framing decisions. Writing heads is
 * http_head_build's (ferry/http_head_build.h).
 *
 * Pure functions over data: no sockets, no allocation. Header names and
 * values are slices into buffers owned by the caller (the read buffer of a
 * session or upstream connection); these functions never keep them. */
#ifndef FERRY_HTTP_HEAD_H
#define FERRY_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/slice.h"

/* One byte-class table for every scanner in ferry (h1parse, http_head,
 * request, config): a lookup and a mask per byte. */
#define HC_TCHAR 0x01u /* RFC 9110 tchar: field names, methods, codings */
#define HC_TARGET                                                                                  \
  0x02u /* taken in an origin-form target on the one-pass path:                                    \
           pchar, '/', '?', '%' (RFC 3986) */
#define HC_HOST                                                                                    \
  0x04u                /* a Host's reg-name: unreserved, sub-delims but ','                        \
                          ('%' only as %XX, checked apart) */
#define HC_VCHAR 0x08u /* visible ASCII, 0x21..0x7e */
extern const uint8_t http_char[256];

static inline bool http_is_tchar(unsigned char c) {
  return (http_char[c] & HC_TCHAR) != 0;
}

/* Well-known header names, interned at parse time so filtering is a flag
 * test rather than a string comparison. */
enum hdr_token {
  HDR_OTHER = 0,
  HDR_CONNECTION,
  HDR_KEEP_ALIVE,
  HDR_PROXY_CONNECTION,
  HDR_TE,
  HDR_TRAILER,
  HDR_TRANSFER_ENCODING,
  HDR_UPGRADE,
  HDR_CONTENT_LENGTH,
  HDR_HOST,
  HDR_X_FORWARDED_FOR,
  HDR_X_FORWARDED_PROTO,
  HDR_X_FORWARDED_HOST,
  HDR_VIA,
  HDR_X_REQUEST_ID,
  HDR_EXPECT,
  HDR_DATE,
  HDR_TRACEPARENT,
  HDR__COUNT
};

/* hdr.flags */
#define HDRF_HOP 0x01u /* hop-by-hop: a fixed one, or named in Connection */

struct hdr {
  struct slice name, value; /* value has no leading/trailing OWS */
  uint8_t tok;              /* enum hdr_token */
  uint8_t flags;            /* HDRF_* */
};

/* A header list over caller-provided storage (no allocation).
 *
 * toks is a summary that lets a lookup skip the scan: bit t is set for
 * every token t among v[0..n) whenever toks_n == n. Headers are added
 * only by http_head_push and h1parse, which keep it; a list shortened, or
 * filled some other way, has toks_n != n (or a superset in toks), and
 * every reader then scans as if all bits were set. An initialiser that
 * leaves both zero makes a valid empty list. */
struct hdr_list {
  struct hdr *v;
  uint32_t n, cap;
  uint32_t toks, toks_n;
};

/* False only when l certainly holds no header with token tok. */
static inline bool http_head_may_have(const struct hdr_list *l, unsigned tok) {
  return l->toks_n != l->n || (l->toks >> tok & 1u);
}

/* Token for a header name (case-insensitive); HDR_OTHER if not well known. */
enum hdr_token http_head_token(const char *name, size_t len);

/* True for a token no route header operation may add, set or remove: the
 * fixed hop-by-hop set and Content-Length (ferry re-makes framing). */
bool http_head_token_protected(unsigned tok);

/* Append a header; trims optional whitespace around value, sets tok.
 * Returns 0, or -1 when the list is full (caller answers 431). */
int http_head_push(struct hdr_list *l, struct slice name, struct slice value);

/* Mark hop-by-hop headers: the fixed set (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade) and every
 * header named in any Connection header's comma-separated list. Call once
 * per list after all headers are pushed. */
void http_head_mark_hop(struct hdr_list *l);

/* First header with this name (case-insensitive), or NULL. */
const struct hdr *http_head_find(const struct hdr_list *l, struct slice name);
/* First header with this token, or NULL. */
const struct hdr *http_head_find_tok(const struct hdr_list *l, enum hdr_token tok);

/* True when any Connection header lists the token `opt` (e.g. "close",
 * "keep-alive", "upgrade"), case-insensitively. */
bool http_head_connection_has(const struct hdr_list *l, const char *opt);

/* A client-supplied X-Request-Id is kept when it is 1..128 characters of
 * [A-Za-z0-9._:+=/-]; anything else is replaced by a generated id. */
bool http_head_request_id_sane(struct slice v);

/* Reason phrase for a status code ("OK", "Not Found", ...; "" if unknown). */
const char *http_status_reason(int status);

enum body_framing {
  FRAMING_NONE,    /* no body */
  FRAMING_LENGTH,  /* Content-Length: content_length */
  FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
  FRAMING_CLOSE    /* response only: body ends when the connection closes */
};

/* --- request head strictness ------------------------------------------
 * llhttp (8.x, never lenient) rejects most malformed heads; these checks
 * cover what it lets through: bare LF line ends, obs-fold continuation
 * lines, whitespace between a field name and its colon, empty field names
 * and control characters in values. */

enum head_scan_error {
  HEAD_SCAN_BARE_LF = -1,       /* LF not preceded by CR */
  HEAD_SCAN_BARE_CR = -2,       /* CR not followed by LF */
  HEAD_SCAN_OBS_FOLD = -3,      /* a line starting with SP or HT */
  HEAD_SCAN_SPACE_IN_NAME = -4, /* whitespace inside a name or before its colon */
  HEAD_SCAN_EMPTY_NAME = -5,    /* a line starting with ':' */
  HEAD_SCAN_NO_COLON = -6,      /* a header line without a colon */
  HEAD_SCAN_CTL = -7            /* NUL or another control character in a line */
};

/* Incremental scanner over the bytes of one request head. Zero it (or call
 * http_head_scan_reset) before the first byte of each head. */
struct head_scan {
  uint8_t state;
};

static inline void http_head_scan_reset(struct head_scan *sc) {
  sc->state = 0;
}

/* Scans p[0..n), continuing from earlier calls. Returns 0 when every byte
 * was consumed and the head is not complete yet, 1 when the head ended
 * (*used = bytes up to and including the LF of the empty line), or a
 * negative enum head_scan_error with *used = the offset in p of the byte
 * found wrong (the bytes before it passed). Leading empty lines (CRLF) before the
 * request line are allowed, as llhttp allows them. */
int http_head_scan(struct head_scan *sc, const char *p, size_t n, size_t *used);
/* Words for a head_scan_error, for logs. */
const char *http_head_scan_strerror(int err);

/* Transfer-Encoding of a request or response: 0 when absent or exactly
 * "chunked" (in one header); 400 when chunked appears but not as the final
 * coding, appears twice, the field is repeated or its value is empty; 501
 * when any other coding is named (ferry implements none but chunked). */
int http_head_check_transfer_encoding(const struct hdr_list *l);

/* True when the trailer field h (one of l->v[from..l->n)) may be
 * forwarded: false for what RFC 9110 6.5.1 keeps out of trailers and
 * ferry never forwards there: every interned name (framing, Host,
 * hop-by-hop, forwarding fields, Date), credentials (Authorization,
 * Proxy-Authorization, Cookie, Set-Cookie, WWW-/Proxy-Authenticate),
 * request modifiers and response control data (Cache-Control, Expect,
 * Max-Forwards, Range, If-*, Age, Expires, Location, Retry-After, Vary),
 * content metadata (Content-Type, -Encoding, -Range, -Location),
 * Forwarded, any field a Connection header among l->v[0..from) names, and
 * malformed ones (a name that is not a token, a control character in the
 * value). The same rule both ways (request and response trailers). */
bool http_head_trailer_allowed(const struct hdr_list *l, uint32_t from, const struct hdr *h);

/* How ferry frames a response body for the client (RFC 9112 6.3):
 * FRAMING_NONE for HEAD, 1xx, 204 and 304 whatever the upstream said
 * (HEAD keeps a declared length: FRAMING_LENGTH, no body follows);
 * FRAMING_LENGTH for a Content-Length body; otherwise (chunked or
 * close-delimited upstream) FRAMING_CHUNKED for HTTP/1.1 clients and
 * FRAMING_CLOSE for HTTP/1.0 ones. */
enum body_framing http_head_response_framing(bool head_request, int status, bool upstream_chunked,
                                             bool upstream_length, int client_minor);

#endif
