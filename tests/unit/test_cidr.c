/* cidr: parsing address ranges and matching IPv4 and IPv6 addresses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/cidr.h"

static struct cidr parse(const char *s) {
  struct cidr c;
  char err[256] = "";
  cr_assert_eq(cidr_parse(s, &c, err, sizeof err), 0, "%s: %s", s, err);
  return c;
}

/* addr as inet_pton reads it, IPv4 in the first 4 bytes */
static bool match(const struct cidr *c, const char *ip) {
  uint8_t a[16] = {0};
  bool v6 = strchr(ip, ':') != NULL;
  cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, ip, a), 1, "%s", ip);
  return cidr_match(c, a, v6);
}

Test(cidr, ipv4_ranges) {
  struct cidr c = parse("10.0.0.0/8");
  cr_assert(match(&c, "10.0.0.0"));
  cr_assert(match(&c, "10.255.255.255"));
  cr_assert_not(match(&c, "11.0.0.0"));
  cr_assert_not(match(&c, "9.255.255.255"));
  c = parse("192.168.1.128/25");
  cr_assert(match(&c, "192.168.1.200"));
  cr_assert_not(match(&c, "192.168.1.127"));
  c = parse("192.0.2.7"); /* one address */
  cr_assert_eq(c.bits, 32);
  cr_assert(match(&c, "192.0.2.7"));
  cr_assert_not(match(&c, "192.0.2.6"));
  c = parse("0.0.0.0/0");
  cr_assert(match(&c, "203.0.113.9"));
  cr_assert_not(match(&c, "::1"), "an IPv4 range never matches an IPv6 address");
}

Test(cidr, ipv6_ranges) {
  struct cidr c = parse("fd00::/8");
  cr_assert(match(&c, "fd12:3456::1"));
  cr_assert_not(match(&c, "fe80::1"));
  c = parse("2001:db8::/32");
  cr_assert(match(&c, "2001:db8:ffff::1"));
  cr_assert_not(match(&c, "2001:db9::1"));
  c = parse("::1");
  cr_assert_eq(c.bits, 128);
  cr_assert(match(&c, "::1"));
  cr_assert_not(match(&c, "::2"));
  c = parse("2001:db8::/33");
  cr_assert(match(&c, "2001:db8:7fff::1"));
  cr_assert_not(match(&c, "2001:db8:8000::1"));
  c = parse("::/0");
  cr_assert(match(&c, "2001:db8::1"));
  cr_assert_not(match(&c, "127.0.0.1"));
}

Test(cidr, ipv4_mapped_ipv6_matches_as_ipv4) {
  struct cidr c = parse("127.0.0.0/8");
  cr_assert(match(&c, "::ffff:127.0.0.1"));
  cr_assert_not(match(&c, "::ffff:10.0.0.1"));
}

Test(cidr, list_match) {
  struct cidr l[2] = {parse("10.0.0.0/8"), parse("::1")};
  uint8_t a[16] = {0};
  inet_pton(AF_INET, "10.1.2.3", a);
  cr_assert(cidr_list_match(l, 2, a, false));
  inet_pton(AF_INET, "127.0.0.1", a);
  cr_assert_not(cidr_list_match(l, 2, a, false));
  cr_assert_not(cidr_list_match(l, 0, a, false));
}

Test(cidr, bad_ranges_say_what_to_write) {
  static const struct {
    const char *in, *says;
  } bad[] = {
      {"10.1.2.3/8", "write 10.0.0.0/8"},
      {"fd00::1/8", "write fd00::/8"},
      {"10.0.0.0/33", "0..32"},
      {"::/129", "0..128"},
      {"10.0.0.0/", "0..32"},
      {"10.0.0.0/x", "0..32"},
      {"10.0.0.0/-1", "0..32"},
      {"10.0.0.0/08x", "0..32"},
      {"10.0.0", "not an IPv4 or IPv6 address"},
      {"example.com/8", "not an IPv4 or IPv6 address"},
      {"[::1]/128", "not an IPv4 or IPv6 address"},
      {"", "expected an address range"},
      {"/8", "expected an address range"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct cidr c;
    char err[256] = "";
    cr_assert_eq(cidr_parse(bad[i].in, &c, err, sizeof err), -1, "accepted \"%s\"", bad[i].in);
    cr_assert(strstr(err, bad[i].says) != NULL, "\"%s\": %s", bad[i].in, err);
  }
}

Test(cidr, parse_ip_text_with_brackets_and_ports) {
  uint8_t a[16], want[16] = {0};
  bool v6;
  cr_assert(cidr_parse_ip("192.0.2.1", 9, a, &v6));
  inet_pton(AF_INET, "192.0.2.1", want);
  cr_assert_not(v6);
  cr_assert_eq(memcmp(a, want, 4), 0);
  cr_assert(cidr_parse_ip("192.0.2.1:8080", 14, a, &v6));
  cr_assert_not(v6);
  cr_assert_eq(memcmp(a, want, 4), 0);
  cr_assert(cidr_parse_ip("2001:db8::1", 11, a, &v6));
  cr_assert(v6);
  cr_assert(cidr_parse_ip("[2001:db8::1]:443", 17, a, &v6));
  cr_assert(v6);
  inet_pton(AF_INET6, "2001:db8::1", want);
  cr_assert_eq(memcmp(a, want, 16), 0);
  cr_assert(cidr_parse_ip("[::1]", 5, a, &v6));
  /* a length shorter than the text: only those bytes count */
  cr_assert(cidr_parse_ip("10.0.0.1, 10.0.0.2", 8, a, &v6));
  static const char *const no[] = {"",           "unknown", "[::1",        "[::1]x",
                                   "10.0.0.256", "_hidden", "1.2.3.4:5:6x"};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    cr_assert_not(cidr_parse_ip(no[i], strlen(no[i]), a, &v6), "took \"%s\"", no[i]);
}
