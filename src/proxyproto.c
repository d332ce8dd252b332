/* proxyproto: PROXY protocol v1/v2 header parser. Pure functions over
 * bytes; owns nothing. */
#include "ferry/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const char v2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

const char *proxyproto_strerror(int r) {
  switch (r) {
  case PP_OK:
    return "ok";
  case PP_AGAIN:
    return "incomplete PROXY protocol header";
  default:
    return ferry_strerror(r);
  }
}

/* Decimal port 0..65535 without leading zeros (except "0"). */
static bool parse_port(const char *p, size_t n, uint16_t *out) {
  if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (v > 65535)
    return false;
  *out = (uint16_t)v;
  return true;
}

static bool parse_addr(int fam, const char *p, size_t n, uint16_t port,
                       struct sockaddr_storage *out) {
  char buf[INET6_ADDRSTRLEN];
  if (n == 0 || n >= sizeof(buf))
    return false;
  memcpy(buf, p, n);
  buf[n] = 0;
  memset(out, 0, sizeof(*out));
  if (fam == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    return inet_pton(AF_INET, buf, &a->sin_addr) == 1;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  return inet_pton(AF_INET6, buf, &a->sin6_addr) == 1;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" or "PROXY UNKNOWN ...\r\n". */
static int parse_v1(const char *p, size_t n, struct proxyproto_info *out) {
  size_t lim = n < PROXYPROTO_V1_MAX ? n : PROXYPROTO_V1_MAX;
  const char *cr = NULL;
  for (size_t i = 0; i < lim; i++) {
    if (p[i] == '\r') {
      cr = p + i;
      break;
    }
    if (p[i] == '\n' || p[i] == '\0')
      return PP_E_V1_SYNTAX;
  }
  if (!cr)
    return n >= PROXYPROTO_V1_MAX ? PP_E_V1_TOO_LONG : PP_AGAIN;
  if ((size_t)(cr - p) + 1 >= n)
    return (size_t)(cr - p) + 2 > PROXYPROTO_V1_MAX ? PP_E_V1_TOO_LONG : PP_AGAIN;
  if (cr[1] != '\n')
    return PP_E_V1_SYNTAX;
  out->version = 1;
  out->len = (size_t)(cr - p) + 2;
  /* split on single spaces */
  const char *f[6];
  size_t fl[6], nf = 0;
  const char *s = p + 6, *e = cr;
  while (s <= e && nf < 6) {
    const char *sp = memchr(s, ' ', (size_t)(e - s));
    const char *fe = sp ? sp : e;
    f[nf] = s;
    fl[nf++] = (size_t)(fe - s);
    if (!sp)
      break;
    s = sp + 1;
  }
  if (nf >= 1 && fl[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
    out->local = true;
    return PP_OK;
  }
  if (nf != 5)
    return PP_E_V1_SYNTAX;
  int fam;
  if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
    fam = AF_INET;
  else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
    fam = AF_INET6;
  else
    return PP_E_V1_SYNTAX;
  uint16_t sport, dport;
  if (!parse_port(f[3], fl[3], &sport) || !parse_port(f[4], fl[4], &dport) ||
      !parse_addr(fam, f[1], fl[1], sport, &out->src) ||
      !parse_addr(fam, f[2], fl[2], dport, &out->dst))
    return PP_E_V1_ADDRESS;
  out->local = false;
  return PP_OK;
}

static int parse_v2(const unsigned char *p, size_t n, struct proxyproto_info *out) {
  if (n < 16)
    return PP_AGAIN;
  unsigned ver = p[12] >> 4, cmd = p[12] & 0xfu;
  if (ver != 2 || cmd > 1)
    return PP_E_V2_VERSION;
  size_t len = ((size_t)p[14] << 8) | p[15];
  if (n < 16 + len)
    return PP_AGAIN;
  out->version = 2;
  out->len = 16 + len;
  unsigned fam = p[13] >> 4, proto = p[13] & 0xfu;
  const unsigned char *a = p + 16;
  if (cmd == 0 || proto != 1 /* STREAM */ || (fam != 1 && fam != 2)) {
    out->local = true; /* LOCAL (health checks), UNSPEC, UDP or unix: the socket's address */
    return PP_OK;
  }
  memset(&out->src, 0, sizeof(out->src));
  memset(&out->dst, 0, sizeof(out->dst));
  if (fam == 1) {
    if (len < 12)
      return PP_E_V2_LENGTH;
    struct sockaddr_in *s = (struct sockaddr_in *)&out->src, *d = (struct sockaddr_in *)&out->dst;
    s->sin_family = d->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&d->sin_addr, a + 4, 4);
    memcpy(&s->sin_port, a + 8, 2);
    memcpy(&d->sin_port, a + 10, 2);
  } else {
    if (len < 36)
      return PP_E_V2_LENGTH;
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                        *d = (struct sockaddr_in6 *)&out->dst;
    s->sin6_family = d->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&d->sin6_addr, a + 16, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    memcpy(&d->sin6_port, a + 34, 2);
  }
  out->local = false;
  return PP_OK;
}

int proxyproto_parse(const char *p, size_t n, struct proxyproto_info *out) {
  memset(out, 0, sizeof(*out));
  if (n == 0)
    return PP_AGAIN;
  if (p[0] == 'P') {
    size_t k = n < 6 ? n : 6;
    if (memcmp(p, "PROXY ", k) != 0)
      return PP_E_MISSING;
    return n < 6 ? PP_AGAIN : parse_v1(p, n, out);
  }
  if (p[0] == '\r') {
    size_t k = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
    if (memcmp(p, v2_sig, k) != 0)
      return PP_E_MISSING;
    return n < sizeof(v2_sig) ? PP_AGAIN : parse_v2((const unsigned char *)p, n, out);
  }
  return PP_E_MISSING;
}
