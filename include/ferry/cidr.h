/* cidr: address ranges written as CIDR ("10.0.0.0/8", "fd00::/8",
 * "192.0.2.7" for one address) and matching addresses against them.
 *
 * Pure: no state, no allocation, no I/O. Used for listeners[].trusted_proxies
 * and meant for route allow/deny lists. IPv4 and IPv6 ranges never match
 * each other, except that an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * matched as the IPv4 address it carries. */
#ifndef FERRY_CIDR_H
#define FERRY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
  uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes; host bits zero */
  uint8_t bits;     /* prefix length: 0..32 (IPv4) or 0..128 (IPv6) */
  bool v6;
};

/* Parses s (NUL-terminated). Returns 0, or -1 with a sentence in err that
 * says what is wrong and what to write instead. A prefix with host bits
 * set ("10.1.2.3/8") is refused with the range it means ("10.0.0.0/8"). */
int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen);

/* addr (network order; IPv4 in the first 4 bytes) inside c? */
bool cidr_match(const struct cidr *c, const uint8_t addr[16], bool v6);
/* Inside any of list[0..n)? */
bool cidr_list_match(const struct cidr *list, size_t n, const uint8_t addr[16], bool v6);

/* Parses an IP address as text (p, n: not NUL-terminated; an IPv6 address
 * may be in brackets, and either may carry a ":port", which is ignored)
 * into addr/v6. False when it is not an IP address. */
bool cidr_parse_ip(const char *p, size_t n, uint8_t addr[16], bool *v6);

#endif
