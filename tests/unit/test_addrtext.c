/* addrtext_format: the client address text written into
 * X-Forwarded-For, the access log and hash keys must be exactly what
 * inet_ntop writes. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/addrtext.h"

static void expect_v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  uint8_t addr[16] = {a, b, c, d};
  char got[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];
  memset(got, 'x', sizeof got);
  addrtext_format(got, addr, false);
  cr_assert_not_null(inet_ntop(AF_INET, addr, want, sizeof want));
  cr_assert_str_eq(got, want);
}

Test(addrtext, ipv4_text_matches_inet_ntop_for_every_octet_value_in_every_position) {
  for (unsigned v = 0; v < 256; v++) {
    expect_v4((uint8_t)v, 0, 0, 0);
    expect_v4(0, (uint8_t)v, 0, 0);
    expect_v4(0, 0, (uint8_t)v, 0);
    expect_v4(0, 0, 0, (uint8_t)v);
    expect_v4((uint8_t)v, (uint8_t)(255 - v), (uint8_t)(v / 2), (uint8_t)(v * 7));
  }
  expect_v4(255, 255, 255, 255);
  expect_v4(127, 0, 0, 1);
  expect_v4(10, 100, 9, 99);
}

Test(addrtext, ipv6_text_matches_inet_ntop) {
  const char *in[] = {"::1",
                      "::",
                      "2001:db8::8a2e:370:7334",
                      "::ffff:192.0.2.1",
                      "fe80::1:2:3:4",
                      "2001:db8:85a3:1234:5678:8a2e:370:7334"};
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    uint8_t addr[16];
    cr_assert_eq(inet_pton(AF_INET6, in[i], addr), 1);
    char got[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];
    addrtext_format(got, addr, true);
    cr_assert_not_null(inet_ntop(AF_INET6, addr, want, sizeof want));
    cr_assert_str_eq(got, want, "%s", in[i]);
  }
}
