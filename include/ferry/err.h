/* err: ferry's one error vocabulary.
 *
 * Every function that can fail returns 0 (or a count) or a negative code.
 * A code is either libuv's (UV_ECONNREFUSED, UV_EOF, ... : -errno and
 * libuv's own, described by uv_strerror) or one of ferry's own below, which
 * lie outside libuv's range. ferry_err_name() and ferry_strerror() describe
 * both kinds; ferry_err_http_status() is the one place that decides which
 * HTTP status a client gets for an error.
 *
 * Pure: no state, no allocation, no I/O. */
#ifndef FERRY_ERR_H
#define FERRY_ERR_H

#include <stdbool.h>

/* X(NAME, code, HTTP status, description) */
#define FERRY_ERRORS(X)                                                                            \
  /* the client's request */                                                                       \
  X(BAD_REQUEST, -10001, 400, "malformed request")                                                 \
  X(HEAD_TOO_LARGE, -10002, 431, "request head too large")                                         \
  X(URI_TOO_LONG, -10003, 414, "request target too long")                                          \
  X(BODY_TOO_LARGE, -10004, 413, "request body too large")                                         \
  X(UNKNOWN_CODING, -10005, 501, "unknown transfer coding")                                        \
  X(VERSION, -10006, 505, "HTTP version not supported")                                            \
  X(REQUEST_TIMEOUT, -10007, 408, "the request stopped arriving")                                  \
  /* the upstream side */                                                                          \
  X(INVALID_RESPONSE, -10020, 502, "invalid upstream response")                                    \
  X(RESPONSE_HEAD_TOO_LARGE, -10021, 502, "upstream response head too large")                      \
  X(CONNECT_TIMEOUT, -10022, 504, "upstream connect timed out")                                    \
  X(RESPONSE_TIMEOUT, -10023, 504, "upstream response timed out")                                  \
  X(NO_SERVER, -10024, 503, "no server of the upstream is up")                                     \
  X(RESOLVE, -10025, 502, "the server's name did not resolve to an address")                       \
  /* the PROXY protocol header (src/proxyproto.c) */                                               \
  X(PP_MISSING, -10040, 400, "the connection does not start with a PROXY protocol header")         \
  X(PP_V1_TOO_LONG, -10041, 400, "PROXY v1 line longer than 107 bytes without CRLF")               \
  X(PP_V1_SYNTAX, -10042, 400, "malformed PROXY v1 line")                                          \
  X(PP_V1_ADDRESS, -10043, 400, "bad address or port in the PROXY v1 line")                        \
  X(PP_V2_VERSION, -10044, 400, "unsupported PROXY v2 version or command")                         \
  X(PP_V2_LENGTH, -10045, 400, "PROXY v2 address block shorter than its family needs")

/* X(name, status, message): every way a request head can fail (src/request.c).
 * Their codes are FERRY_E_REQUEST_BASE - 1 - index, in this order. */
#define FERRY_REQUEST_ERRORS(X)                                                                    \
  X(CONNECT, 405, "method not allowed: ferry is not a forward proxy\n")                            \
  X(VERSION, 505,                                                                                  \
    "HTTP version not supported: ferry speaks HTTP/1.0 and HTTP/1.1; send HTTP/1.1\n")             \
  X(CL_AND_TE, 400,                                                                                \
    "bad request: Content-Length together with Transfer-Encoding; send one of them\n")             \
  X(TE_CODING, 501,                                                                                \
    "not implemented: ferry accepts no Transfer-Encoding but chunked; send the body with "         \
    "Content-Length or chunked alone\n")                                                           \
  X(TE_FRAMING, 400,                                                                               \
    "bad request: Transfer-Encoding must be chunked, once, as the final coding, in an HTTP/1.1 "   \
    "request\n")                                                                                   \
  X(HOST_MANY, 400, "bad request: more than one Host header; send exactly one\n")                  \
  X(HOST_MISSING, 400, "bad request: HTTP/1.1 requests must carry a Host header\n")                \
  X(HOST_BAD, 400,                                                                                 \
    "bad request: the Host header must be host[:port] (no user@, path, list or empty value)\n")    \
  X(TARGET_BYTES, 400,                                                                             \
    "bad request: the request target has bytes outside visible ASCII; percent-encode them\n")      \
  X(TARGET_STAR, 400, "bad request: only OPTIONS may use the target *\n")                          \
  X(TARGET_FORM, 400, "bad request: the request target is not a path or an http URL\n")            \
  X(AUTHORITY_BAD, 400, "bad request: the URL's authority must be a host[:port]\n")                \
  X(PATH_BAD, 400, "bad request: malformed request path\n")                                        \
  X(TOO_LONG, 414, "request target too long\n")

#define FERRY_E_REQUEST_BASE (-10100)

enum ferry_err {
#define FERRY_ERR_ENUM(name, code, status, text) FERRY_E_##name = code,
  FERRY_ERRORS(FERRY_ERR_ENUM)
#undef FERRY_ERR_ENUM
};

/* "FERRY_E_HEAD_TOO_LARGE" for ferry's codes, libuv's name ("ECONNREFUSED",
 * "EOF") for libuv's, "OK" for 0 and "UNKNOWN" otherwise. Static strings. */
const char *ferry_err_name(int err);
/* A description: ferry's own text, uv_strerror() for libuv's codes, "ok"
 * for 0 and "unknown error" otherwise. Static strings. */
const char *ferry_strerror(int err);

/* True for a shortage on this host (EMFILE, ENFILE, ENOMEM, ENOBUFS,
 * EADDRNOTAVAIL, EAI_MEMORY): never the fault of the peer, so it must not
 * count against an upstream server. */
bool ferry_err_is_local(int err);

/* The HTTP status a client is answered with when err (< 0) ends its
 * request before a response began: ferry's own codes as in the table above;
 * a local shortage 503; a timeout 504; refused, reset, closed, unreachable,
 * a protocol error and any other libuv code 502. 0 for err >= 0. */
int ferry_err_http_status(int err);

#endif
