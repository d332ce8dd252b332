/* forwarded: the client address behind a trusted proxy (the right-most
 * X-Forwarded-For entry that is not itself trusted), and the forwarding
 * headers such a proxy sent being kept. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/buf.h"
#include "ferry/forwarded.h"
#include "ferry/http_head.h"
#include "ferry/http_head_build.h"
#include "leak_check.h"

#define MAXH 16

static struct bufpool pool;
static struct arena arena;
static struct hdr store[MAXH];
static struct hdr_list list;
static struct cidr cidrs[3];
static struct cfg_listener listener;

static void setup(void) {
  bufpool_init(&pool);
  arena_init(&arena, &pool, 1 << 16);
  static const char *const ranges[] = {"10.0.0.0/8", "192.168.0.0/16", "fd00::/8"};
  char err[128];
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq(cidr_parse(ranges[i], &cidrs[i], err, sizeof err), 0);
  memset(&listener, 0, sizeof listener);
  listener.trusted_proxies = cidrs;
  listener.ntrusted_proxies = 3;
}

static void teardown(void) {
  arena_reset(&arena);
  bufpool_destroy(&pool);
  abort_on_leaks();
}

TestSuite(forwarded, .init = setup, .fini = teardown);

/* Headers from "Name", "value" pairs. */
static void headers(const char *const *kv, size_t npairs) {
  memset(&list, 0, sizeof list);
  list.v = store;
  list.cap = MAXH;
  for (size_t i = 0; i < npairs; i++)
    cr_assert_eq(http_head_push(&list, slice_cstr(kv[2 * i]), slice_cstr(kv[2 * i + 1])), 0);
  http_head_mark_hop(&list);
}
#define HEADERS(...)                                                                               \
  do {                                                                                             \
    static const char *const kv_[] = {__VA_ARGS__};                                                \
    headers(kv_, sizeof kv_ / sizeof kv_[0] / 2);                                                  \
  } while (0)

static const char *client(bool trusted) {
  return forwarded_client(&list, &listener, trusted, "10.9.9.9", &arena);
}

Test(forwarded, peer_in_the_list_is_trusted) {
  uint8_t a[16] = {0};
  inet_pton(AF_INET, "10.9.9.9", a);
  cr_assert(forwarded_trusted(&listener, a, false, true));
  cr_assert_not(forwarded_trusted(&listener, a, false, false), "an unknown peer is not trusted");
  inet_pton(AF_INET, "127.0.0.1", a);
  cr_assert_not(forwarded_trusted(&listener, a, false, true));
  struct cfg_listener none = {0};
  inet_pton(AF_INET, "10.9.9.9", a);
  cr_assert_not(forwarded_trusted(&none, a, false, true), "no trusted_proxies: nobody");
}

Test(forwarded, rightmost_untrusted_entry_is_the_client) {
  HEADERS("X-Forwarded-For", "203.0.113.7, 198.51.100.2, 10.1.1.1");
  cr_assert_str_eq(client(true), "198.51.100.2");
  cr_assert_str_eq(client(false), "10.9.9.9", "an untrusted peer's header means nothing");
}

Test(forwarded, several_header_lines_read_as_one_list) {
  HEADERS("X-Forwarded-For", "203.0.113.7", "Accept", "*/*", "X-Forwarded-For",
          "192.168.3.3 , 10.0.0.2,,");
  cr_assert_str_eq(client(true), "203.0.113.7");
}

Test(forwarded, every_entry_trusted_gives_the_leftmost) {
  HEADERS("X-Forwarded-For", "10.0.0.5, 192.168.0.1");
  cr_assert_str_eq(client(true), "10.0.0.5");
}

Test(forwarded, ipv6_and_ports) {
  HEADERS("X-Forwarded-For", "[2001:db8::7]:4431, fd00::1");
  cr_assert_str_eq(client(true), "2001:db8::7");
  HEADERS("X-Forwarded-For", "198.51.100.9:5555");
  cr_assert_str_eq(client(true), "198.51.100.9");
}

Test(forwarded, walk_stops_at_an_entry_that_is_not_an_address) {
  HEADERS("X-Forwarded-For", "203.0.113.7, unknown, 10.0.0.2");
  cr_assert_str_eq(client(true), "10.0.0.2", "the trusted hop right of the garbage");
  HEADERS("X-Forwarded-For", "203.0.113.7, _hidden");
  cr_assert_str_eq(client(true), "10.9.9.9", "nothing usable: the peer");
}

Test(forwarded, no_header_or_a_hop_by_hop_one_gives_the_peer) {
  HEADERS("Accept", "*/*");
  cr_assert_str_eq(client(true), "10.9.9.9");
  HEADERS("Connection", "X-Forwarded-For", "X-Forwarded-For", "203.0.113.7");
  cr_assert_str_eq(client(true), "10.9.9.9");
}

static char *build(bool keep) {
  struct fwd_request r = {
      .method = SLICE_LIT("GET"),
      .target = SLICE_LIT("/"),
      .headers = &list,
      .host = SLICE_LIT("app"),
      .client_ip = SLICE_LIT("10.9.9.9"),
      .proto = SLICE_LIT("http"),
      .fwd_host = SLICE_LIT("app"),
      .keep_forwarded = keep,
      .client_minor = 1,
      .framing = FRAMING_NONE,
  };
  size_t need = http_head_build_request(NULL, 0, &r);
  char *buf = malloc(need + 1);
  cr_assert_eq(http_head_build_request(buf, need, &r), need);
  buf[need] = '\0';
  return buf;
}

Test(forwarded, trusted_peer_keeps_proto_and_host_and_xff_gets_the_peer) {
  HEADERS("X-Forwarded-Proto", "https", "X-Forwarded-Host", "shop.example", "X-Forwarded-For",
          "203.0.113.7");
  char *kept = build(true);
  cr_assert_str_eq(kept, "GET / HTTP/1.1\r\nHost: app\r\nX-Forwarded-Proto: https\r\n"
                         "X-Forwarded-Host: shop.example\r\n"
                         "X-Forwarded-For: 203.0.113.7, 10.9.9.9\r\nVia: 1.1 ferry\r\n\r\n");
  char *replaced = build(false);
  cr_assert_str_eq(replaced, "GET / HTTP/1.1\r\nHost: app\r\n"
                             "X-Forwarded-For: 203.0.113.7, 10.9.9.9\r\n"
                             "X-Forwarded-Proto: http\r\nX-Forwarded-Host: app\r\n"
                             "Via: 1.1 ferry\r\n\r\n");
  free(kept);
  free(replaced);
}

Test(forwarded, trusted_peer_without_the_headers_gets_ferrys) {
  HEADERS("Accept", "*/*");
  char *h = build(true);
  cr_assert_str_eq(h, "GET / HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n"
                      "X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: http\r\n"
                      "X-Forwarded-Host: app\r\nVia: 1.1 ferry\r\n\r\n");
  free(h);
}
