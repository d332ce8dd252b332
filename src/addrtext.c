/* addrtext: an IP address as the text ferry writes into X-Forwarded-For,
 * the access log and hash keys, exactly as inet_ntop writes it.
 *
 * Pure; owns only its lookup table. */
#include "ferry/addrtext.h"

#include <arpa/inet.h>
#include <string.h>
#include <uv.h>

/* Decimal text of each byte value: up to three digits, then the count. */
#define OCT_LEN(v) ((v) >= 100 ? 3 : (v) >= 10 ? 2 : 1)
#define OCT_POW(v, i) (OCT_LEN(v) - 1 - (i) == 2 ? 100 : OCT_LEN(v) - 1 - (i) == 1 ? 10 : 1)
#define OCT_DIGIT(v, i) (char)((i) < OCT_LEN(v) ? '0' + (v) / OCT_POW(v, i) % 10 : 0)
#define OCT(v)                                                                                     \
  { OCT_DIGIT(v, 0), OCT_DIGIT(v, 1), OCT_DIGIT(v, 2), (char)OCT_LEN(v) }
#define OCT4(v) OCT(v), OCT((v) + 1), OCT((v) + 2), OCT((v) + 3)
#define OCT16(v) OCT4(v), OCT4((v) + 4), OCT4((v) + 8), OCT4((v) + 12)
#define OCT64(v) OCT16(v), OCT16((v) + 16), OCT16((v) + 32), OCT16((v) + 48)
static const char octet_text[256][4] = {OCT64(0), OCT64(64), OCT64(128), OCT64(192)};

/* A dotted quad by table (this runs whenever a keep-alive connection's
 * next request arrives), uv_inet_ntop for IPv6. */
void addrtext_format(char *out, const uint8_t addr[16], bool v6) {
  if (v6) {
    if (uv_inet_ntop(AF_INET6, addr, out, INET6_ADDRSTRLEN) != 0)
      strcpy(out, "-");
    return;
  }
  /* Each octet's 4 table bytes are copied whole; the count byte is then
   * overwritten by the dot (or the final NUL). */
  const char *t0 = octet_text[addr[0]], *t1 = octet_text[addr[1]];
  const char *t2 = octet_text[addr[2]], *t3 = octet_text[addr[3]];
  char *o = out;
  memcpy(o, t0, 4);
  o += t0[3];
  *o++ = '.';
  memcpy(o, t1, 4);
  o += t1[3];
  *o++ = '.';
  memcpy(o, t2, 4);
  o += t2[3];
  *o++ = '.';
  memcpy(o, t3, 4);
  o[(unsigned char)t3[3]] = '\0';
}

bool addrtext_from_sockaddr(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port, bool *v6) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    memcpy(addr, &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
    *v6 = false;
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(addr, &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
    *v6 = true;
    return true;
  }
  return false;
}
