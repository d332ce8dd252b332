/* Unit tests for src/http_head.c (tokens, hop-by-hop marking) and
 * src/http_head_build.c (the exact bytes of every head ferry serialises). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/http_head.h"
#include "ferry/http_head_build.h"
#include "leak_check.h"

static void teardown(void) {
  abort_on_leaks();
}

TestSuite(http_head, .fini = teardown);

#define MAXH 32

/* A header list over static storage, filled from "Name", "value" pairs. */
struct hl {
  struct hdr v[MAXH];
  struct hdr_list l;
};

static void hl_init(struct hl *h, const char *const *kv, size_t npairs) {
  memset(h, 0, sizeof *h);
  h->l.v = h->v;
  h->l.cap = MAXH;
  for (size_t i = 0; i < npairs; i++)
    cr_assert_eq(http_head_push(&h->l, slice_cstr(kv[2 * i]), slice_cstr(kv[2 * i + 1])), 0);
  http_head_mark_hop(&h->l);
}

#define HL(h, ...)                                                                                 \
  do {                                                                                             \
    static const char *const kv_[] = {__VA_ARGS__};                                                \
    hl_init((h), kv_, sizeof kv_ / sizeof kv_[0] / 2);                                             \
  } while (0)

/* Serialise with a buffer of exactly the needed size and return it as a
 * NUL-terminated string the caller frees. */
static char *build_req(const struct fwd_request *r) {
  size_t need = http_head_build_request(NULL, 0, r);
  char *buf = malloc(need + 1);
  cr_assert_eq(http_head_build_request(buf, need, r), need);
  buf[need] = '\0';
  return buf;
}

static char *build_resp(const struct fwd_response *r) {
  size_t need = http_head_build_response(NULL, 0, r);
  char *buf = malloc(need + 1);
  cr_assert_eq(http_head_build_response(buf, need, r), need);
  buf[need] = '\0';
  return buf;
}

static struct fwd_request base_req(const struct hdr_list *l) {
  return (struct fwd_request){
      .method = SLICE_LIT("GET"),
      .target = SLICE_LIT("/x"),
      .headers = l,
      .host = SLICE_LIT("app"),
      .client_ip = SLICE_LIT("10.0.0.1"),
      .proto = SLICE_LIT("http"),
      .request_id = SLICE_LIT("rid"),
      .client_minor = 1,
      .framing = FRAMING_NONE,
  };
}

static struct fwd_response base_resp(const struct hdr_list *l) {
  return (struct fwd_response){
      .status = 200,
      .headers = l,
      .framing = FRAMING_LENGTH,
      .content_length = 5,
      .request_id = SLICE_LIT("rid"),
      .client_minor = 1,
      .keep_alive = true,
  };
}

#define ASSERT_REQ(r, expected)                                                                    \
  do {                                                                                             \
    char *got_ = build_req(r);                                                                     \
    cr_assert_str_eq(got_, expected);                                                              \
    free(got_);                                                                                    \
  } while (0)

#define ASSERT_RESP(r, expected)                                                                   \
  do {                                                                                             \
    char *got_ = build_resp(r);                                                                    \
    cr_assert_str_eq(got_, expected);                                                              \
    free(got_);                                                                                    \
  } while (0)

/* ---- tokens and lists ------------------------------------------------ */

Test(http_head, token_recognises_well_known_names_case_insensitively) {
  static const struct {
    const char *name;
    enum hdr_token tok;
  } cases[] = {
      {"Connection", HDR_CONNECTION},
      {"KEEP-ALIVE", HDR_KEEP_ALIVE},
      {"proxy-connection", HDR_PROXY_CONNECTION},
      {"TE", HDR_TE},
      {"Trailer", HDR_TRAILER},
      {"Transfer-Encoding", HDR_TRANSFER_ENCODING},
      {"upgrade", HDR_UPGRADE},
      {"Content-Length", HDR_CONTENT_LENGTH},
      {"HoSt", HDR_HOST},
      {"X-Forwarded-For", HDR_X_FORWARDED_FOR},
      {"x-forwarded-proto", HDR_X_FORWARDED_PROTO},
      {"X-Forwarded-Host", HDR_X_FORWARDED_HOST},
      {"Via", HDR_VIA},
      {"X-Request-ID", HDR_X_REQUEST_ID},
      {"Expect", HDR_EXPECT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_assert_eq(http_head_token(cases[i].name, strlen(cases[i].name)), cases[i].tok, "%s",
                 cases[i].name);
}

/* The token compare works a word at a time: every byte of every known
 * name is checked in both cases, and a byte that differs by any other bit
 * (e.g. CR against '-', both 0x0d|0x20 = '-') is a miss. */
Test(http_head, token_compares_every_byte_in_both_cases_and_nothing_else) {
  static const char *const known[] = {"te",
                                      "via",
                                      "host",
                                      "date",
                                      "expect",
                                      "upgrade",
                                      "trailer",
                                      "connection",
                                      "keep-alive",
                                      "traceparent",
                                      "x-request-id",
                                      "content-length",
                                      "x-forwarded-for",
                                      "x-forwarded-host",
                                      "proxy-connection",
                                      "transfer-encoding",
                                      "x-forwarded-proto"};
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
    char name[32];
    size_t n = strlen(known[k]);
    enum hdr_token tok = http_head_token(known[k], n);
    cr_assert_neq(tok, HDR_OTHER, "%s", known[k]);
    for (size_t i = 0; i < n; i++) {
      for (unsigned bit = 1; bit < 256; bit <<= 1) {
        memcpy(name, known[k], n);
        name[i] = (char)(name[i] ^ bit);
        bool same_letter = bit == 0x20 && known[k][i] >= 'a' && known[k][i] <= 'z';
        cr_assert_eq(http_head_token(name, n), same_letter ? tok : HDR_OTHER, "%s byte %zu ^ %#x",
                     known[k], i, bit);
      }
    }
  }
}

Test(http_head, token_of_unknown_or_near_miss_names_is_other) {
  const char *names[] = {
      "",       "t",         "tee",        "hosts",           "Content-Lengthx", "X-Forwarded-Fox",
      "Accept", "Connectio", "Keep_Alive", "Proxy-Connectiom"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    cr_assert_eq(http_head_token(names[i], strlen(names[i])), HDR_OTHER, "%s", names[i]);
}

Test(http_head, push_trims_ows_and_sets_token) {
  struct hdr v[2];
  struct hdr_list l = {.v = v, .cap = 2};
  cr_assert_eq(http_head_push(&l, SLICE_LIT("Host"), SLICE_LIT(" \t a b \t")), 0);
  cr_assert_eq(l.n, 1);
  cr_assert(slice_eq(v[0].value, SLICE_LIT("a b")));
  cr_assert_eq(v[0].tok, HDR_HOST);
  cr_assert_eq(v[0].flags, 0);
  cr_assert_eq(http_head_push(&l, SLICE_LIT("X-Empty"), SLICE_LIT("   ")), 0);
  cr_assert_eq(v[1].value.n, 0);
}

Test(http_head, push_fails_when_list_full) {
  struct hdr v[1];
  struct hdr_list l = {.v = v, .cap = 1};
  cr_assert_eq(http_head_push(&l, SLICE_LIT("A"), SLICE_LIT("1")), 0);
  cr_assert_eq(http_head_push(&l, SLICE_LIT("B"), SLICE_LIT("2")), -1);
  cr_assert_eq(l.n, 1);
}

Test(http_head, fixed_hop_by_hop_headers_are_marked) {
  struct hl h;
  HL(&h, "Connection", "close", "Keep-Alive", "timeout=5", "Proxy-Connection", "x", "TE",
     "trailers", "Trailer", "X", "Transfer-Encoding", "chunked", "Upgrade", "websocket", "Accept",
     "*/*", "Content-Length", "3");
  for (uint32_t i = 0; i < 7; i++)
    cr_assert(h.v[i].flags & HDRF_HOP, "header %u", i);
  cr_assert_not(h.v[7].flags & HDRF_HOP);
  cr_assert_not(h.v[8].flags & HDRF_HOP);
}

Test(http_head, connection_named_headers_are_marked_hop) {
  struct hl h;
  HL(&h, "X-A", "1", "Connection", " x-b ,, X-A\t", "x-b", "2", "X-C", "3", "connection",
     "X-Later");
  cr_assert(h.v[0].flags & HDRF_HOP);
  cr_assert(h.v[2].flags & HDRF_HOP);
  cr_assert_not(h.v[3].flags & HDRF_HOP);
}

Test(http_head, connection_named_header_in_second_connection_line_is_marked) {
  struct hl h;
  HL(&h, "Connection", "keep-alive", "X-Secret", "s", "Connection", "X-SECRET");
  cr_assert(h.v[1].flags & HDRF_HOP);
}

Test(http_head, connection_has_finds_option_case_insensitively) {
  struct hl h;
  HL(&h, "Connection", "Keep-Alive", "connection", "foo,  Upgrade ");
  cr_assert(http_head_connection_has(&h.l, "keep-alive"));
  cr_assert(http_head_connection_has(&h.l, "upgrade"));
  cr_assert(http_head_connection_has(&h.l, "FOO"));
  cr_assert_not(http_head_connection_has(&h.l, "close"));
  cr_assert_not(http_head_connection_has(&h.l, "keep"));
}

Test(http_head, connection_has_ignores_other_headers) {
  struct hl h;
  HL(&h, "X-Connection", "close", "Keep-Alive", "close");
  cr_assert_not(http_head_connection_has(&h.l, "close"));
}

Test(http_head, find_is_case_insensitive_and_returns_first) {
  struct hl h;
  HL(&h, "X-Canary", "1", "x-canary", "2", "Host", "h");
  const struct hdr *f = http_head_find(&h.l, SLICE_LIT("X-CANARY"));
  cr_assert_eq(f, &h.v[0]);
  cr_assert_null(http_head_find(&h.l, SLICE_LIT("X-Canar")));
  cr_assert_eq(http_head_find_tok(&h.l, HDR_HOST), &h.v[2]);
  cr_assert_null(http_head_find_tok(&h.l, HDR_VIA));
}

Test(http_head, request_id_sanity) {
  cr_assert(http_head_request_id_sane(SLICE_LIT("a")));
  cr_assert(http_head_request_id_sane(SLICE_LIT("Az09._:+=/-")));
  cr_assert_not(http_head_request_id_sane(SLICE_LIT("")));
  cr_assert_not(http_head_request_id_sane(SLICE_LIT("a b")));
  cr_assert_not(http_head_request_id_sane(SLICE_LIT("a\r\nX: y")));
  cr_assert_not(http_head_request_id_sane(SLICE_LIT("a,b")));
  cr_assert_not(http_head_request_id_sane(SLICE_LIT("caf\xc3\xa9")));
  char id[129];
  memset(id, 'x', sizeof id);
  cr_assert(http_head_request_id_sane(slice_make(id, 128)));
  cr_assert_not(http_head_request_id_sane(slice_make(id, 129)));
}

Test(http_head, status_reason_known_and_unknown) {
  cr_assert_str_eq(http_status_reason(200), "OK");
  cr_assert_str_eq(http_status_reason(404), "Not Found");
  cr_assert_str_eq(http_status_reason(431), "Request Header Fields Too Large");
  cr_assert_str_eq(http_status_reason(502), "Bad Gateway");
  cr_assert_str_eq(http_status_reason(299), "");
}

/* ---- request head ---------------------------------------------------- */

Test(http_head, request_head_full_order) {
  struct hl h;
  HL(&h, "Host", "client.example", "User-Agent", "curl/8", "X-Forwarded-For", "1.1.1.1", "Via",
     "1.1 edge", "X-Request-Id", "old", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "spoof",
     "Accept", "*/*", "Content-Length", "3", "X-Env", "dev", "X-Debug", "1");
  struct cfg_kv set[] = {{"X-Env", "prod"}};
  struct cfg_kv add[] = {{"X-Via-Route", "users"}};
  char *rm[] = {"x-debug"};
  struct cfg_header_ops ops = {set, 1, add, 1, rm, 1};
  struct fwd_request r = base_req(&h.l);
  r.method = SLICE_LIT("POST");
  r.target = SLICE_LIT("/v2/users/7?x=1");
  r.host = SLICE_LIT("users.internal");
  r.fwd_host = SLICE_LIT("client.example");
  r.framing = FRAMING_LENGTH;
  r.content_length = 3;
  r.ops = &ops;
  ASSERT_REQ(&r, "POST /v2/users/7?x=1 HTTP/1.1\r\n"
                 "Host: users.internal\r\n"
                 "User-Agent: curl/8\r\n"
                 "Accept: */*\r\n"
                 "Content-Length: 3\r\n"
                 "X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "X-Forwarded-Host: client.example\r\n"
                 "Via: 1.1 edge, 1.1 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "X-Env: prod\r\n"
                 "X-Via-Route: users\r\n"
                 "\r\n");
}

Test(http_head, request_minimal_without_client_headers) {
  struct fwd_request r = base_req(NULL);
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "Via: 1.1 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "\r\n");
}

Test(http_head, request_without_host_has_no_host_line) {
  struct hl h;
  HL(&h, "Accept", "*/*");
  struct fwd_request r = base_req(&h.l);
  r.host = slice_make(NULL, 0);
  r.client_minor = 0;
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Accept: */*\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "Via: 1.0 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "\r\n");
}

Test(http_head, hop_by_hop_headers_are_removed_from_request) {
  struct hl h;
  HL(&h, "Connection", "keep-alive", "Keep-Alive", "timeout=5", "Proxy-Connection", "keep-alive",
     "TE", "trailers", "Trailer", "X-T", "Upgrade", "h2c", "Accept", "a");
  struct fwd_request r = base_req(&h.l);
  r.proto = slice_make(NULL, 0);
  r.client_ip = slice_make(NULL, 0);
  r.request_id = slice_make(NULL, 0);
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "Accept: a\r\n"
                 "Via: 1.1 ferry\r\n"
                 "\r\n");
}

Test(http_head, connection_named_headers_are_removed) {
  struct hl h;
  HL(&h, "X-Keep", "k", "X-Secret", "s", "Connection", "close, x-secret", "X-Other", "o");
  struct fwd_request r = base_req(&h.l);
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "X-Keep: k\r\n"
                 "X-Other: o\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "Via: 1.1 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "\r\n");
}

Test(http_head, connection_naming_xff_drops_client_xff_but_keeps_client_ip) {
  struct hl h;
  HL(&h, "X-Forwarded-For", "6.6.6.6", "Connection", "X-Forwarded-For");
  struct fwd_request r = base_req(&h.l);
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nX-Forwarded-For: 10.0.0.1\r\n"));
  cr_assert_null(strstr(got, "6.6.6.6"));
  free(got);
}

Test(http_head, xff_appends_to_existing) {
  struct hl h;
  HL(&h, "X-Forwarded-For", "1.1.1.1, 2.2.2.2", "Accept", "a", "x-forwarded-for", "3.3.3.3");
  struct fwd_request r = base_req(&h.l);
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1\r\n"),
                     "%s", got);
  cr_assert_null(strstr(got, "x-forwarded-for"));
  free(got);
}

Test(http_head, xff_skips_empty_client_values) {
  struct hl h;
  HL(&h, "X-Forwarded-For", "  ", "X-Forwarded-For", "1.1.1.1");
  struct fwd_request r = base_req(&h.l);
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n"), "%s", got);
  free(got);
}

Test(http_head, via_appends_http10_marker_for_http10_client) {
  struct hl h;
  HL(&h, "Via", "1.0 a", "Via", "1.1 b");
  struct fwd_request r = base_req(&h.l);
  r.client_minor = 0;
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nVia: 1.0 a, 1.1 b, 1.0 ferry\r\n"), "%s", got);
  free(got);
}

Test(http_head, client_framing_headers_are_replaced_by_chunked) {
  struct hl h;
  HL(&h, "Transfer-Encoding", "chunked", "Content-Length", "10", "Accept", "a");
  struct fwd_request r = base_req(&h.l);
  r.framing = FRAMING_CHUNKED;
  r.proto = slice_make(NULL, 0);
  r.client_ip = slice_make(NULL, 0);
  r.request_id = slice_make(NULL, 0);
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "Accept: a\r\n"
                 "Transfer-Encoding: chunked\r\n"
                 "Via: 1.1 ferry\r\n"
                 "\r\n");
}

Test(http_head, content_length_zero_is_sent) {
  struct fwd_request r = base_req(NULL);
  r.framing = FRAMING_LENGTH;
  r.content_length = 0;
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nContent-Length: 0\r\n"));
  free(got);
}

Test(http_head, content_length_max_value_is_exact) {
  struct fwd_request r = base_req(NULL);
  r.framing = FRAMING_LENGTH;
  r.content_length = UINT64_MAX;
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nContent-Length: 18446744073709551615\r\n"));
  free(got);
}

Test(http_head, request_ops_set_replaces_client_header_case_insensitively) {
  struct hl h;
  HL(&h, "x-env", "dev", "X-ENV", "dev2", "Accept", "a");
  struct cfg_kv set[] = {{"X-Env", "prod"}};
  struct cfg_header_ops ops = {.set = set, .nset = 1};
  struct fwd_request r = base_req(&h.l);
  r.ops = &ops;
  char *got = build_req(&r);
  cr_assert_null(strstr(got, "dev"));
  cr_assert_not_null(strstr(got, "X-Request-Id: rid\r\nX-Env: prod\r\n\r\n"), "%s", got);
  free(got);
}

Test(http_head, request_ops_remove_drops_header) {
  struct hl h;
  HL(&h, "X-Debug", "1", "Accept", "a", "x-debug", "2");
  char *rm[] = {"X-DEBUG"};
  struct cfg_header_ops ops = {.remove = rm, .nremove = 1};
  struct fwd_request r = base_req(&h.l);
  r.ops = &ops;
  char *got = build_req(&r);
  cr_assert_null(strstr(got, "ebug"), "%s", got);
  cr_assert_not_null(strstr(got, "\r\nAccept: a\r\n"));
  free(got);
}

Test(http_head, request_ops_add_appends_after_client_header) {
  struct hl h;
  HL(&h, "X-Tag", "client");
  struct cfg_kv add[] = {{"X-Tag", "route"}};
  struct cfg_header_ops ops = {.add = add, .nadd = 1};
  struct fwd_request r = base_req(&h.l);
  r.ops = &ops;
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "X-Tag: client\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "Via: 1.1 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "X-Tag: route\r\n"
                 "\r\n");
}

Test(http_head, ops_set_replaces_generated_forwarding_header) {
  struct cfg_kv set[] = {{"X-Forwarded-Proto", "https"}};
  char *rm[] = {"via"};
  struct cfg_header_ops ops = {.set = set, .nset = 1, .remove = rm, .nremove = 1};
  struct fwd_request r = base_req(NULL);
  r.ops = &ops;
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Request-Id: rid\r\n"
                 "X-Forwarded-Proto: https\r\n"
                 "\r\n");
}

Test(http_head, ops_cannot_touch_framing_or_hop_headers) {
  struct cfg_kv set[] = {{"Content-Length", "0"}, {"Connection", "close"}};
  struct cfg_kv add[] = {{"Transfer-Encoding", "chunked"}, {"X-Ok", "1"}};
  char *rm[] = {"Content-Length"};
  struct cfg_header_ops ops = {set, 2, add, 2, rm, 1};
  struct fwd_request r = base_req(NULL);
  r.framing = FRAMING_LENGTH;
  r.content_length = 9;
  r.ops = &ops;
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "Content-Length: 9\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "Via: 1.1 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "X-Ok: 1\r\n"
                 "\r\n");
}

Test(http_head, upgrade_request_keeps_upgrade_header) {
  struct hl h;
  HL(&h, "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Key", "k");
  struct fwd_request r = base_req(&h.l);
  r.upgrade = true;
  ASSERT_REQ(&r, "GET /x HTTP/1.1\r\n"
                 "Host: app\r\n"
                 "Sec-WebSocket-Key: k\r\n"
                 "X-Forwarded-For: 10.0.0.1\r\n"
                 "X-Forwarded-Proto: http\r\n"
                 "Via: 1.1 ferry\r\n"
                 "X-Request-Id: rid\r\n"
                 "Connection: upgrade\r\n"
                 "Upgrade: websocket\r\n"
                 "\r\n");
}

Test(http_head, expect_header_is_forwarded) {
  struct hl h;
  HL(&h, "Expect", "100-continue");
  struct fwd_request r = base_req(&h.l);
  char *got = build_req(&r);
  cr_assert_not_null(strstr(got, "\r\nExpect: 100-continue\r\n"));
  free(got);
}

/* ---- response head --------------------------------------------------- */

Test(http_head, response_head_full_order) {
  struct hl h;
  HL(&h, "Server", "nginx", "Content-Type", "text/html", "Content-Length", "5", "X-Request-Id",
     "upstream-id", "Connection", "keep-alive, X-Hop", "X-Hop", "1", "Keep-Alive", "timeout=5",
     "Set-Cookie", "a=1", "X-Frame-Options", "SAMEORIGIN");
  struct cfg_kv set[] = {{"X-Frame-Options", "DENY"}};
  struct cfg_kv add[] = {{"X-Served-By", "ferry"}};
  char *rm[] = {"server"};
  struct cfg_header_ops ops = {set, 1, add, 1, rm, 1};
  struct fwd_response r = base_resp(&h.l);
  r.ops = &ops;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\n"
                  "Content-Type: text/html\r\n"
                  "Set-Cookie: a=1\r\n"
                  "Content-Length: 5\r\n"
                  "X-Request-Id: rid\r\n"
                  "X-Frame-Options: DENY\r\n"
                  "X-Served-By: ferry\r\n"
                  "\r\n");
}

Test(http_head, response_uses_upstream_reason_or_standard_one) {
  struct fwd_response r = base_resp(NULL);
  r.status = 404;
  r.framing = FRAMING_NONE;
  r.request_id = slice_make(NULL, 0);
  ASSERT_RESP(&r, "HTTP/1.1 404 Not Found\r\n\r\n");
  r.reason = SLICE_LIT("Nope");
  ASSERT_RESP(&r, "HTTP/1.1 404 Nope\r\n\r\n");
  r.status = 299;
  r.reason = slice_make(NULL, 0);
  ASSERT_RESP(&r, "HTTP/1.1 299 \r\n\r\n");
}

Test(http_head, response_chunked_framing_replaces_upstream_framing) {
  struct hl h;
  HL(&h, "Transfer-Encoding", "chunked", "Content-Length", "7");
  struct fwd_response r = base_resp(&h.l);
  r.framing = FRAMING_CHUNKED;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\n"
                  "Transfer-Encoding: chunked\r\n"
                  "X-Request-Id: rid\r\n"
                  "\r\n");
}

Test(http_head, response_close_framing_writes_no_length) {
  struct fwd_response r = base_resp(NULL);
  r.framing = FRAMING_CLOSE;
  r.client_minor = 0;
  r.keep_alive = false;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\n"
                  "X-Request-Id: rid\r\n"
                  "Connection: close\r\n"
                  "\r\n");
}

Test(http_head, response_http10_keep_alive_is_explicit) {
  struct fwd_response r = base_resp(NULL);
  r.client_minor = 0;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\n"
                  "Content-Length: 5\r\n"
                  "X-Request-Id: rid\r\n"
                  "Connection: keep-alive\r\n"
                  "\r\n");
}

Test(http_head, response_http11_close_is_explicit) {
  struct fwd_response r = base_resp(NULL);
  r.keep_alive = false;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\n"
                  "Content-Length: 5\r\n"
                  "X-Request-Id: rid\r\n"
                  "Connection: close\r\n"
                  "\r\n");
}

Test(http_head, response_upgrade_101_keeps_upgrade) {
  struct hl h;
  HL(&h, "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", "abc");
  struct fwd_response r = base_resp(&h.l);
  r.status = 101;
  r.framing = FRAMING_NONE;
  r.upgrade = true;
  ASSERT_RESP(&r, "HTTP/1.1 101 Switching Protocols\r\n"
                  "Sec-WebSocket-Accept: abc\r\n"
                  "X-Request-Id: rid\r\n"
                  "Connection: upgrade\r\n"
                  "Upgrade: websocket\r\n"
                  "\r\n");
}

Test(http_head, response_ops_remove_drops_upstream_header_case_insensitively) {
  struct hl h;
  HL(&h, "SERVER", "apache", "X-Powered-By", "php");
  char *rm[] = {"Server", "x-powered-by"};
  struct cfg_header_ops ops = {.remove = rm, .nremove = 2};
  struct fwd_response r = base_resp(&h.l);
  r.ops = &ops;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\n"
                  "Content-Length: 5\r\n"
                  "X-Request-Id: rid\r\n"
                  "\r\n");
}

/* ---- simple responses ------------------------------------------------ */

static char *build_simple(int status, const char *ct, const char *body, const char *loc,
                          const char *rid, int minor, bool ka, bool head_only) {
  struct slice c = slice_cstr(ct), b = slice_cstr(body), l = slice_cstr(loc), i = slice_cstr(rid);
  size_t need = http_head_build_simple(NULL, 0, status, c, b, l, i, minor, ka, head_only);
  char *buf = malloc(need + 1);
  cr_assert_eq(http_head_build_simple(buf, need, status, c, b, l, i, minor, ka, head_only), need);
  buf[need] = '\0';
  return buf;
}

Test(http_head, simple_error_response_exact) {
  char *got = build_simple(404, "text/plain", "no route\n", NULL, "abc", 1, true, false);
  cr_assert_str_eq(got, "HTTP/1.1 404 Not Found\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 9\r\n"
                        "X-Request-Id: abc\r\n"
                        "\r\n"
                        "no route\n");
  free(got);
}

Test(http_head, simple_response_closing_connection) {
  char *got = build_simple(400, "text/plain", "bad request\n", NULL, "abc", 1, false, false);
  cr_assert_str_eq(got, "HTTP/1.1 400 Bad Request\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 12\r\n"
                        "X-Request-Id: abc\r\n"
                        "Connection: close\r\n"
                        "\r\n"
                        "bad request\n");
  free(got);
}

Test(http_head, simple_redirect_has_location) {
  char *got = build_simple(301, "text/plain", "", "https://example.com/new", NULL, 0, true, false);
  cr_assert_str_eq(got, "HTTP/1.1 301 Moved Permanently\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 0\r\n"
                        "Location: https://example.com/new\r\n"
                        "Connection: keep-alive\r\n"
                        "\r\n");
  free(got);
}

Test(http_head, simple_head_only_keeps_content_length_without_body) {
  char *got = build_simple(200, "text/plain", "pong\n", NULL, "r1", 1, true, true);
  cr_assert_str_eq(got, "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 5\r\n"
                        "X-Request-Id: r1\r\n"
                        "\r\n");
  free(got);
}

Test(http_head, simple_http10_without_keep_alive_closes) {
  char *got = build_simple(200, "text/plain", "x", NULL, NULL, 0, false, false);
  cr_assert_str_eq(got, "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: 1\r\n"
                        "Connection: close\r\n"
                        "\r\n"
                        "x");
  free(got);
}

/* ---- bounds ---------------------------------------------------------- */

/* Every cap below the full size: a heap buffer of exactly cap bytes (ASan
 * catches any write past it), the same length returned, and the bytes
 * written are a prefix of the full output. */
Test(http_head, builder_never_writes_past_cap) {
  struct hl h;
  HL(&h, "Host", "h", "X-Forwarded-For", "1.1.1.1", "Accept", "a", "Connection", "x-a", "X-A", "1");
  struct fwd_request r = base_req(&h.l);
  r.framing = FRAMING_LENGTH;
  r.content_length = 123456;
  char *full = build_req(&r);
  size_t need = strlen(full);
  for (size_t cap = 0; cap < need; cap++) {
    char *buf = malloc(cap ? cap : 1);
    cr_assert_eq(http_head_build_request(cap ? buf : NULL, cap, &r), need);
    cr_assert(memcmp(buf, full, cap) == 0, "cap %zu", cap);
    free(buf);
  }
  free(full);
}

Test(http_head, response_builder_never_writes_past_cap) {
  struct hl h;
  HL(&h, "Content-Type", "text/plain", "Server", "s");
  struct fwd_response r = base_resp(&h.l);
  char *full = build_resp(&r);
  size_t need = strlen(full);
  for (size_t cap = 0; cap < need; cap++) {
    char *buf = malloc(cap ? cap : 1);
    cr_assert_eq(http_head_build_response(cap ? buf : NULL, cap, &r), need);
    cr_assert(memcmp(buf, full, cap) == 0, "cap %zu", cap);
    free(buf);
  }
  free(full);
}

Test(http_head, simple_builder_never_writes_past_cap) {
  char *full = build_simple(503, "text/plain", "no healthy server\n", NULL, "id", 1, false, false);
  size_t need = strlen(full);
  for (size_t cap = 0; cap < need; cap++) {
    char *buf = malloc(cap ? cap : 1);
    cr_assert_eq(http_head_build_simple(cap ? buf : NULL, cap, 503, SLICE_LIT("text/plain"),
                                        SLICE_LIT("no healthy server\n"), slice_make(NULL, 0),
                                        SLICE_LIT("id"), 1, false, false),
                 need);
    cr_assert(memcmp(buf, full, cap) == 0, "cap %zu", cap);
    free(buf);
  }
  free(full);
}

/* ---- request head strictness ------------------------------------------ */

static int scan_all(const char *s, size_t *used) {
  struct head_scan sc = {0};
  *used = 0;
  return http_head_scan(&sc, s, strlen(s), used);
}

Test(http_head, scan_accepts_a_well_formed_head_and_stops_at_its_end) {
  const char *s = "\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Tab: a\tb\r\n\r\nBODY";
  size_t used;
  cr_assert_eq(scan_all(s, &used), 1);
  cr_assert_eq(used, strlen(s) - 4);
}

Test(http_head, scan_is_incremental_byte_by_byte) {
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  struct head_scan sc = {0};
  size_t used = 0;
  for (size_t i = 0; i + 1 < strlen(s); i++)
    cr_assert_eq(http_head_scan(&sc, s + i, 1, &used), 0, "byte %zu", i);
  cr_assert_eq(http_head_scan(&sc, s + strlen(s) - 1, 1, &used), 1);
  cr_assert_eq(used, 1);
}

Test(http_head, scan_rejects_what_llhttp_lets_through) {
  size_t used;
  cr_assert_eq(scan_all("GET / HTTP/1.1\nHost: a\r\n\r\n", &used), HEAD_SCAN_BARE_LF);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nHost: a\r\n\n", &used), HEAD_SCAN_BARE_LF);
  cr_assert_eq(scan_all("\nGET / HTTP/1.1\r\n\r\n", &used), HEAD_SCAN_BARE_LF);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", &used), HEAD_SCAN_OBS_FOLD);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", &used), HEAD_SCAN_OBS_FOLD);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &used), HEAD_SCAN_SPACE_IN_NAME);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", &used), HEAD_SCAN_SPACE_IN_NAME);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\n: a\r\n\r\n", &used), HEAD_SCAN_EMPTY_NAME);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nHost\r\n\r\n", &used), HEAD_SCAN_NO_COLON);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", &used), HEAD_SCAN_BARE_CR);
  struct head_scan sc = {0};
  cr_assert_eq(http_head_scan(&sc, "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27, &used), HEAD_SCAN_CTL);
  cr_assert_str_eq(http_head_scan_strerror(HEAD_SCAN_OBS_FOLD), "obsolete line folding");
}

Test(http_head, scan_error_reports_the_offset_of_the_wrong_byte) {
  size_t used;
  cr_assert_eq(scan_all("GET /x HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", &used), HEAD_SCAN_BARE_LF);
  cr_assert_eq(used, 24, "the LF after \"Host: a\"");
  cr_assert_eq(scan_all("\x16\x03\x01", &used), HEAD_SCAN_CTL);
  cr_assert_eq(used, 0);
  cr_assert_eq(scan_all("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", &used), HEAD_SCAN_OBS_FOLD);
  cr_assert_eq(used, 22);
  /* Split input: the offset is within the last call's bytes. */
  struct head_scan sc = {0};
  cr_assert_eq(http_head_scan(&sc, "GET / HTTP/1.1\r\n", 16, &used), 0);
  cr_assert_eq(http_head_scan(&sc, "Host : a\r\n\r\n", 14, &used), HEAD_SCAN_SPACE_IN_NAME);
  cr_assert_eq(used, 4);
}

static int te_of(const char *const *kv, size_t npairs) {
  struct hl h;
  hl_init(&h, kv, npairs);
  return http_head_check_transfer_encoding(&h.l);
}

#define TE(...)                                                                                    \
  ({                                                                                               \
    static const char *const kv_[] = {__VA_ARGS__};                                                \
    te_of(kv_, sizeof kv_ / sizeof kv_[0] / 2);                                                    \
  })

Test(http_head, transfer_encoding_only_chunked_is_accepted) {
  cr_assert_eq(TE("Host", "a"), 0);
  cr_assert_eq(TE("Transfer-Encoding", "chunked"), 0);
  cr_assert_eq(TE("transfer-encoding", " Chunked "), 0);
  cr_assert_eq(TE("Transfer-Encoding", "gzip, chunked"), 501);
  cr_assert_eq(TE("Transfer-Encoding", "x-custom, chunked"), 501);
  cr_assert_eq(TE("Transfer-Encoding", "gzip"), 501);
  cr_assert_eq(TE("Transfer-Encoding", "gzip, deflate"), 501);
  cr_assert_eq(TE("Transfer-Encoding", "chunked, gzip"), 400);
  cr_assert_eq(TE("Transfer-Encoding", "chunked, chunked"), 400);
  cr_assert_eq(TE("Transfer-Encoding", ""), 400);
  cr_assert_eq(TE("Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"), 400);
}

Test(http_head, last_chunk_carries_trailers_but_not_framing_or_hop_fields) {
  struct hl h;
  HL(&h, "Host", "a", "X-Checksum", "abc", "Content-Length", "5", "Connection", "x-hop", "x-hop",
     "1", "Server-Timing", "db;dur=5");
  size_t need = http_head_build_last_chunk(NULL, 0, &h.l, 1);
  char buf[256];
  cr_assert_lt(need, sizeof buf);
  cr_assert_eq(http_head_build_last_chunk(buf, sizeof buf, &h.l, 1), need);
  buf[need] = 0;
  cr_assert_str_eq(buf, "0\r\nX-Checksum: abc\r\nServer-Timing: db;dur=5\r\n\r\n");
  cr_assert_eq(http_head_build_last_chunk(buf, sizeof buf, &h.l, h.l.n), 5);
}

Test(http_head, trailers_never_carry_credentials_routing_or_connection_named_fields) {
  struct hl h;
  /* head: Host, Connection naming x-hop; trailers from index 2 */
  HL(&h, "Host", "a", "Connection", "x-hop", "X-Checksum", "abc", "Authorization", "Basic x",
     "Cookie", "s=1", "Set-Cookie", "s=2", "proxy-authorization", "y", "Host", "evil",
     "Transfer-Encoding", "chunked", "Content-Length", "0", "TE", "trailers", "X-Hop", "1", "Date",
     "d", "Cache-Control", "no-store", "Content-Type", "text/html", "Location", "/x",
     "If-None-Match", "*", "Forwarded", "for=1", "X-Forwarded-For", "1.2.3.4", "Server-Timing",
     "x");
  char buf[512];
  size_t need = http_head_build_last_chunk(buf, sizeof buf, &h.l, 2);
  cr_assert_lt(need, sizeof buf);
  buf[need] = 0;
  cr_assert_str_eq(buf, "0\r\nX-Checksum: abc\r\nServer-Timing: x\r\n\r\n");
}

Test(http_head, response_without_date_gets_the_given_one_once) {
  struct hl h;
  HL(&h, "Server", "s");
  struct fwd_response r = base_resp(&h.l);
  r.date = SLICE_LIT("Sun, 06 Nov 1994 08:49:37 GMT");
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\n"
                  "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Request-Id: rid\r\n\r\n");
  HL(&h, "date", "Mon, 07 Nov 1994 08:49:37 GMT");
  r.headers = &h.l;
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\ndate: Mon, 07 Nov 1994 08:49:37 GMT\r\n"
                  "Content-Length: 5\r\nX-Request-Id: rid\r\n\r\n");
  r.date = (struct slice){NULL, 0};
  HL(&h, "Server", "s");
  ASSERT_RESP(&r, "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 5\r\nX-Request-Id: rid\r\n\r\n");
  cr_assert_eq(http_head_token("DATE", 4), HDR_DATE);
}

Test(http_head, response_framing_follows_rfc9112_section_6_3) {
  /* HEAD keeps an announced length but never has a body */
  cr_assert_eq(http_head_response_framing(true, 200, false, true, 1), FRAMING_LENGTH);
  cr_assert_eq(http_head_response_framing(true, 200, true, false, 1), FRAMING_NONE);
  /* 1xx, 204, 304: no body whatever the upstream declares */
  cr_assert_eq(http_head_response_framing(false, 103, false, true, 1), FRAMING_NONE);
  cr_assert_eq(http_head_response_framing(false, 204, false, true, 1), FRAMING_NONE);
  cr_assert_eq(http_head_response_framing(false, 304, true, false, 1), FRAMING_NONE);
  /* lengths pass through; chunked or close-delimited depends on the client */
  cr_assert_eq(http_head_response_framing(false, 200, false, true, 0), FRAMING_LENGTH);
  cr_assert_eq(http_head_response_framing(false, 200, true, false, 1), FRAMING_CHUNKED);
  cr_assert_eq(http_head_response_framing(false, 200, false, false, 1), FRAMING_CHUNKED);
  cr_assert_eq(http_head_response_framing(false, 200, true, false, 0), FRAMING_CLOSE);
  cr_assert_eq(http_head_response_framing(false, 200, false, false, 0), FRAMING_CLOSE);
}

/* The token summary lets lookups skip lists without the token; a list
 * filled or shortened behind its back is scanned instead. */
Test(http_head, token_summary_skips_only_lists_that_lack_the_token) {
  struct hl h;
  HL(&h, "Accept", "*/*", "X-Request-Id", "abc");
  cr_assert_eq(h.l.toks_n, h.l.n);
  cr_assert_eq(http_head_find_tok(&h.l, HDR_X_REQUEST_ID), &h.v[1]);
  cr_assert_null(http_head_find_tok(&h.l, HDR_TRACEPARENT));
  cr_assert_not(http_head_may_have(&h.l, HDR_TRANSFER_ENCODING));

  /* an entry written directly: the summary no longer counts */
  h.v[2] = (struct hdr){.name = SLICE_LIT("Transfer-Encoding"),
                        .value = SLICE_LIT("chunked"),
                        .tok = HDR_TRANSFER_ENCODING};
  h.l.n = 3;
  cr_assert(http_head_may_have(&h.l, HDR_TRANSFER_ENCODING));
  cr_assert_eq(http_head_find_tok(&h.l, HDR_TRANSFER_ENCODING), &h.v[2]);
  cr_assert_eq(http_head_check_transfer_encoding(&h.l), 0);
  /* ... nor after pushing more on top of it */
  cr_assert_eq(http_head_push(&h.l, SLICE_LIT("Transfer-Encoding"), SLICE_LIT("gzip")), 0);
  cr_assert_eq(http_head_check_transfer_encoding(&h.l), 400);

  /* shortened: scanned, still right */
  h.l.n = 1;
  cr_assert_null(http_head_find_tok(&h.l, HDR_X_REQUEST_ID));
}

Test(http_head, connection_naming_a_well_known_header_marks_it_hop_by_hop) {
  struct hl h;
  HL(&h, "X-Forwarded-For", "1.2.3.4", "Via", "1.1 a", "Connection", "keep-alive, x-forwarded-for",
     "x-forwarded-for", "5.6.7.8", "Close", "1");
  cr_assert(h.v[0].flags & HDRF_HOP);
  cr_assert_not(h.v[1].flags & HDRF_HOP);
  cr_assert(h.v[3].flags & HDRF_HOP);
  cr_assert_not(h.v[4].flags & HDRF_HOP, "not named in Connection");
  HL(&h, "Connection", "close, X-Custom", "x-custom", "1", "Close", "2");
  cr_assert(h.v[1].flags & HDRF_HOP);
  cr_assert(h.v[2].flags & HDRF_HOP, "a header named in Connection is hop-by-hop, even Close");
}
