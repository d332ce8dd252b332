/* http_head: header lists, hop-by-hop filtering, and serialising the heads
 * ferry sends (to the upstream, back to the client, and its own replies).
 *
 * Pure functions over data: no sockets, no allocation. Header names and
 * values are slices into buffers owned by the caller (the read buffer of a
 * session or upstream connection); these functions never keep them. */
#ifndef FERRY_HTTP_HEAD_H
#define FERRY_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/config.h"
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

/* The end of a chunked body with trailers: "0" CRLF, then the fields
 * l->v[from..l->n) except those RFC 9110 6.5.1 keeps out of trailers and
 * ferry never forwards there: every interned name (framing, Host,
 * hop-by-hop, forwarding fields, Date), credentials (Authorization,
 * Proxy-Authorization, Cookie, Set-Cookie, WWW-/Proxy-Authenticate),
 * request modifiers and response control data (Cache-Control, Expect,
 * Max-Forwards, Range, If-*, Age, Expires, Location, Retry-After, Vary),
 * content metadata (Content-Type, -Encoding, -Range, -Location),
 * Forwarded, any field the head's Connection header names, and malformed
 * ones (a name that is not a token, a control character in the value);
 * then CRLF. The same rule both ways (request and response trailers).
 * Returns the length needed (see http_head_build_request). */
size_t http_head_build_last_chunk(char *out, size_t cap, const struct hdr_list *l, uint32_t from);

/* How ferry frames a response body for the client (RFC 9112 6.3):
 * FRAMING_NONE for HEAD, 1xx, 204 and 304 whatever the upstream said
 * (HEAD keeps a declared length: FRAMING_LENGTH, no body follows);
 * FRAMING_LENGTH for a Content-Length body; otherwise (chunked or
 * close-delimited upstream) FRAMING_CHUNKED for HTTP/1.1 clients and
 * FRAMING_CLOSE for HTTP/1.0 ones. */
enum body_framing http_head_response_framing(bool head_request, int status, bool upstream_chunked,
                                             bool upstream_length, int client_minor);

#endif
