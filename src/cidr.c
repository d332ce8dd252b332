/* cidr: parsing CIDR ranges and matching addresses (include/ferry/cidr.h).
 * Owns nothing; pure functions over bytes. Must not touch sockets,
 * configuration or any state. */
#include "ferry/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ::ffff:a.b.c.d -> a.b.c.d */
static void unmap_v4(uint8_t addr[16], bool *v6) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (*v6 && memcmp(addr, prefix, 12) == 0) {
    memmove(addr, addr + 12, 4);
    memset(addr + 4, 0, 12);
    *v6 = false;
  }
}

/* A numeric address, NUL-terminated, no brackets or port. */
static bool parse_plain(const char *s, uint8_t addr[16], bool *v6) {
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, s, addr) == 1) {
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s, addr) == 1) {
    *v6 = true;
    return true;
  }
  return false;
}

int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen) {
  char host[64];
  const char *slash = strchr(s, '/');
  size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
  struct cidr c;
  memset(&c, 0, sizeof c);
  if (hlen == 0 || hlen >= sizeof host) {
    snprintf(err, errlen, "expected an address range such as 10.0.0.0/8, 192.0.2.7 or fd00::/8");
    return -1;
  }
  memcpy(host, s, hlen);
  host[hlen] = '\0';
  if (!parse_plain(host, c.addr, &c.v6)) {
    snprintf(err, errlen,
             "\"%s\" is not an IPv4 or IPv6 address (expected e.g. 10.0.0.0/8, 192.0.2.7 or "
             "fd00::/8)",
             host);
    return -1;
  }
  unsigned max = c.v6 ? 128 : 32;
  unsigned long bits = max;
  if (slash) {
    const char *p = slash + 1;
    size_t plen = strlen(p);
    bool digits = plen > 0 && plen <= 3;
    for (size_t i = 0; digits && i < plen; i++)
      digits = p[i] >= '0' && p[i] <= '9';
    bits = digits ? strtoul(p, NULL, 10) : max + 1;
    if (bits > max) {
      snprintf(err, errlen, "prefix length \"/%s\" is not a number 0..%u", p, max);
      return -1;
    }
  }
  c.bits = (uint8_t)bits;
  /* host bits must be zero: 10.1.2.3/8 most likely means 10.0.0.0/8 */
  struct cidr net = c;
  for (unsigned i = 0; i < 16; i++) {
    unsigned keep = c.bits > i * 8 ? (unsigned)c.bits - i * 8 : 0;
    uint8_t mask = 0xff;
    if (keep < 8)
      mask = (uint8_t)(0xff00u >> keep);
    net.addr[i] = (uint8_t)(c.addr[i] & mask);
  }
  if (memcmp(net.addr, c.addr, 16) != 0) {
    char text[INET6_ADDRSTRLEN];
    inet_ntop(c.v6 ? AF_INET6 : AF_INET, net.addr, text, sizeof text);
    snprintf(err, errlen, "\"%s\" has bits set after the prefix: write %s/%u", s, text,
             (unsigned)c.bits);
    return -1;
  }
  *out = c;
  return 0;
}

/* c against an address already unmapped (unmap_v4). */
static bool match_unmapped(const struct cidr *c, const uint8_t a[16], bool v6) {
  if (v6 != c->v6)
    return false;
  unsigned full = c->bits / 8, rest = c->bits % 8;
  if (memcmp(a, c->addr, full) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xff00u >> rest);
  return (a[full] & mask) == c->addr[full];
}

bool cidr_match(const struct cidr *c, const uint8_t addr[16], bool v6) {
  uint8_t a[16];
  memcpy(a, addr, 16);
  unmap_v4(a, &v6);
  return match_unmapped(c, a, v6);
}

bool cidr_list_match(const struct cidr *list, size_t n, const uint8_t addr[16], bool v6) {
  if (n == 0)
    return false;
  uint8_t a[16];
  memcpy(a, addr, 16);
  unmap_v4(a, &v6); /* once for the whole list */
  for (size_t i = 0; i < n; i++)
    if (match_unmapped(&list[i], a, v6))
      return true;
  return false;
}

bool cidr_parse_ip(const char *p, size_t n, uint8_t addr[16], bool *v6) {
  char buf[64];
  if (n > 0 && p[0] == '[') { /* [v6] or [v6]:port */
    const char *end = memchr(p, ']', n);
    if (!end)
      return false;
    size_t after = n - (size_t)(end + 1 - p);
    if (after > 0 && end[1] != ':')
      return false;
    p++;
    n = (size_t)(end - p);
  } else {
    /* a.b.c.d:port (one colon); a bare IPv6 address has several */
    const char *colon = memchr(p, ':', n);
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - p)))
      n = (size_t)(colon - p);
  }
  if (n == 0 || n >= sizeof buf)
    return false;
  memcpy(buf, p, n);
  buf[n] = '\0';
  return parse_plain(buf, addr, v6);
}
