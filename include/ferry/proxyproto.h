/* proxyproto: the PROXY protocol header (HAProxy's spec, versions 1 and 2)
 * that an L4 load balancer puts before the first byte of a connection to
 * carry the original client address.
 *
 * Pure: parses bytes, touches no socket. The session feeds it the start of
 * a connection on listeners with `proxy_protocol: true`. */
#ifndef FERRY_PROXYPROTO_H
#define FERRY_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXYPROTO_V1_MAX 107 /* longest v1 line, CRLF included */

/* Results: PP_OK (a whole header was parsed), PP_AGAIN (a valid prefix:
 * read more), or a negative error. */
#define PROXYPROTO_ERRORS(X)                                                                       \
  X(MISSING, "the connection does not start with a PROXY protocol header")                         \
  X(V1_TOO_LONG, "PROXY v1 line longer than 107 bytes without CRLF")                               \
  X(V1_SYNTAX, "malformed PROXY v1 line")                                                          \
  X(V1_ADDRESS, "bad address or port in the PROXY v1 line")                                        \
  X(V2_VERSION, "unsupported PROXY v2 version or command")                                         \
  X(V2_LENGTH, "PROXY v2 address block shorter than its family needs")

enum proxyproto_result {
  PP_OK = 0,
  PP_AGAIN = 1,
#define PP_ENUM(name, msg) PP_E_##name,
  PP_E_FIRST_ = -100,
  PROXYPROTO_ERRORS(PP_ENUM)
#undef PP_ENUM
};

struct proxyproto_info {
  int version; /* 1 or 2 */
  bool local;  /* LOCAL (v2) / UNKNOWN (v1) / a non-TCP family: keep the socket's address */
  struct sockaddr_storage src, dst; /* set unless local */
  size_t len;                       /* bytes the header takes, to skip */
};

/* Parse the header at the start of p[0..n). PP_OK fills *out; PP_AGAIN
 * means every byte so far fits a header: call again with more. */
int proxyproto_parse(const char *p, size_t n, struct proxyproto_info *out);
/* A sentence for a result code. */
const char *proxyproto_strerror(int r);

#endif
