/* proxyproto: v1 and v2 headers, incremental input, malformed input. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "ferry/proxyproto.h"

static void ip_of(const struct sockaddr_storage *ss, char *out, size_t n, unsigned *port) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n);
    *port = ntohs(a->sin_port);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)n);
    *port = ntohs(a->sin6_port);
  }
}

static void expect_src(const struct proxyproto_info *pi, const char *ip, unsigned port) {
  char buf[64];
  unsigned p;
  ip_of(&pi->src, buf, sizeof(buf), &p);
  cr_assert_str_eq(buf, ip);
  cr_assert_eq(p, port);
}

Test(proxyproto, v1_tcp4_with_request_after_it) {
  const char *in = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 8080\r\nGET / HTTP/1.1\r\n";
  struct proxyproto_info pi;
  cr_assert_eq(proxyproto_parse(in, strlen(in), &pi), PP_OK);
  cr_assert_eq(pi.version, 1);
  cr_assert_not(pi.local);
  cr_assert_eq(pi.len, strlen("PROXY TCP4 203.0.113.7 192.0.2.1 51234 8080\r\n"));
  expect_src(&pi, "203.0.113.7", 51234);
}

Test(proxyproto, v1_tcp6_and_unknown) {
  const char *in = "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
  struct proxyproto_info pi;
  cr_assert_eq(proxyproto_parse(in, strlen(in), &pi), PP_OK);
  expect_src(&pi, "2001:db8::1", 1);
  in = "PROXY UNKNOWN\r\n";
  cr_assert_eq(proxyproto_parse(in, strlen(in), &pi), PP_OK);
  cr_assert(pi.local);
  cr_assert_eq(pi.len, strlen(in));
  in = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
  cr_assert_eq(proxyproto_parse(in, strlen(in), &pi), PP_OK);
  cr_assert(pi.local);
}

Test(proxyproto, v1_byte_by_byte_needs_more_until_crlf) {
  const char *in = "PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n";
  struct proxyproto_info pi;
  for (size_t i = 0; i < strlen(in); i++)
    cr_assert_eq(proxyproto_parse(in, i, &pi), PP_AGAIN, "at %zu bytes", i);
  cr_assert_eq(proxyproto_parse(in, strlen(in), &pi), PP_OK);
  expect_src(&pi, "10.0.0.1", 1000);
}

Test(proxyproto, v1_malformed) {
  static const struct {
    const char *in;
    int want;
  } cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", PP_E_MISSING},
      {"PROXI TCP4", PP_E_MISSING},
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PP_E_V1_SYNTAX},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PP_E_V1_SYNTAX},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PP_E_V1_SYNTAX},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PP_E_V1_SYNTAX},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PP_E_V1_SYNTAX},
      {"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n", PP_E_V1_ADDRESS},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", PP_E_V1_ADDRESS},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", PP_E_V1_ADDRESS},
      {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", PP_E_V1_ADDRESS},
      {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PP_E_V1_ADDRESS},
  };
  struct proxyproto_info pi;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    cr_assert_eq(proxyproto_parse(cases[i].in, strlen(cases[i].in), &pi), cases[i].want,
                 "case %zu: %s", i, cases[i].in);
  char longline[200];
  memset(longline, 'x', sizeof(longline));
  memcpy(longline, "PROXY TCP4 ", 11);
  cr_assert_eq(proxyproto_parse(longline, sizeof(longline), &pi), PP_E_V1_TOO_LONG);
  cr_assert_str_neq(proxyproto_strerror(PP_E_V1_TOO_LONG), "unknown PROXY protocol error");
}

static size_t v2(unsigned char *b, unsigned char ver_cmd, unsigned char fam,
                 const unsigned char *addr, size_t alen, size_t tlv) {
  static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
  memcpy(b, sig, 12);
  b[12] = ver_cmd;
  b[13] = fam;
  b[14] = (unsigned char)((alen + tlv) >> 8);
  b[15] = (unsigned char)(alen + tlv);
  memcpy(b + 16, addr, alen);
  memset(b + 16 + alen, 0xAB, tlv);
  return 16 + alen + tlv;
}

Test(proxyproto, v2_tcp4_with_tlvs_incrementally) {
  unsigned char addr[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0xC3, 0x50, 0x1F, 0x90};
  unsigned char b[128];
  size_t n = v2(b, 0x21, 0x11, addr, sizeof(addr), 7);
  memcpy(b + n, "GET", 3);
  struct proxyproto_info pi;
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(proxyproto_parse((const char *)b, i, &pi), PP_AGAIN, "at %zu bytes", i);
  cr_assert_eq(proxyproto_parse((const char *)b, n + 3, &pi), PP_OK);
  cr_assert_eq(pi.version, 2);
  cr_assert_eq(pi.len, n);
  expect_src(&pi, "198.51.100.9", 50000);
}

Test(proxyproto, v2_tcp6_local_and_unspec) {
  unsigned char addr[36] = {
      0x20,        0x01,        0x0d,      0xb8,        [15] = 5,   [16] = 0x20,
      [17] = 0x01, [32] = 0x00, [33] = 80, [34] = 0x1F, [35] = 0x90};
  unsigned char b[128];
  size_t n = v2(b, 0x21, 0x21, addr, sizeof(addr), 0);
  struct proxyproto_info pi;
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_OK);
  expect_src(&pi, "2001:db8::5", 80);
  n = v2(b, 0x20, 0x00, addr, 0, 0); /* LOCAL: a health check from the balancer */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_OK);
  cr_assert(pi.local);
  cr_assert_eq(pi.len, 16u);
  n = v2(b, 0x21, 0x12, addr, 12, 0); /* UDP over IPv4: keep the socket address */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_OK);
  cr_assert(pi.local);
}

Test(proxyproto, v2_malformed) {
  unsigned char addr[36] = {0};
  unsigned char b[128];
  struct proxyproto_info pi;
  size_t n = v2(b, 0x11, 0x11, addr, 12, 0); /* version 1 in a v2 header */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_E_V2_VERSION);
  n = v2(b, 0x22, 0x11, addr, 12, 0); /* command 2 */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_E_V2_VERSION);
  n = v2(b, 0x21, 0x11, addr, 8, 0); /* TCP4 needs 12 bytes */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_E_V2_LENGTH);
  n = v2(b, 0x21, 0x21, addr, 12, 0); /* TCP6 needs 36 */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_E_V2_LENGTH);
  b[5] = 'X'; /* broken signature */
  cr_assert_eq(proxyproto_parse((const char *)b, n, &pi), PP_E_MISSING);
}
