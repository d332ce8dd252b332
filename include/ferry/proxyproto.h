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

#include "ferry/err.h"

#define PROXYPROTO_V1_MAX 107 /* longest v1 line, CRLF included */

/* Results: PP_OK (a whole header was parsed), PP_AGAIN (a valid prefix:
 * read more), or a negative error: one of ferry's codes FERRY_E_PP_*
 * (include/ferry/err.h), also named PP_E_* here. */
enum proxyproto_result {
  PP_OK = 0,
  PP_AGAIN = 1,
  PP_E_MISSING = FERRY_E_PP_MISSING,
  PP_E_V1_TOO_LONG = FERRY_E_PP_V1_TOO_LONG,
  PP_E_V1_SYNTAX = FERRY_E_PP_V1_SYNTAX,
  PP_E_V1_ADDRESS = FERRY_E_PP_V1_ADDRESS,
  PP_E_V2_VERSION = FERRY_E_PP_V2_VERSION,
  PP_E_V2_LENGTH = FERRY_E_PP_V2_LENGTH,
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
/* A sentence for a result code (ferry_strerror for the errors). */
const char *proxyproto_strerror(int r);

#endif
