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
