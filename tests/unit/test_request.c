/* Unit tests for src/request.c: the request-head checks (each refusal and
 * its status), the Host and target routed on (absolute-form authority
 * wins), the redirect location and the upstream head's description. */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <string.h>

#include "ferry/request.h"
#include "leak_check.h"

static struct bufpool pool;
static struct arena arena;

static void setup(void) {
  bufpool_init(&pool);
  arena_init(&arena, &pool, 1 << 16);
}

static void teardown(void) {
  arena_reset(&arena);
  bufpool_destroy(&pool);
  abort_on_leaks();
}

TestSuite(request, .init = setup, .fini = teardown);

struct hcase {
  const char *name, *value;
};

/* Runs request_check on a head described by its parts. */
static int check(int method, int minor, const char *url, const struct hcase *h, size_t nh,
                 struct request_checked *out) {
  static struct hdr store[16];
  struct hdr_list l = {store, 0, 16};
  bool chunked = false, has_length = false;
  for (size_t i = 0; i < nh; i++) {
    http_head_push(&l, slice_cstr(h[i].name), slice_cstr(h[i].value));
    chunked = chunked || l.v[l.n - 1].tok == HDR_TRANSFER_ENCODING;
    has_length = has_length || l.v[l.n - 1].tok == HDR_CONTENT_LENGTH;
  }
  http_head_mark_hop(&l);
  struct request_in in = {method, minor, false, chunked, has_length, slice_cstr(url), &l};
  return request_check(&in, &arena, out);
}

static const struct hcase host[] = {{"Host", "a.test"}};

Test(request, refusals_and_their_statuses) {
  static const struct {
    int method, minor;
    const char *url;
    struct hcase h[2];
    size_t nh;
    int status;
  } cases[] = {
      {HTTP_CONNECT, 1, "a.test:443", {{"Host", "a.test"}}, 1, 405},
      {HTTP_POST, 1, "/", {{"Content-Length", "1"}, {"Transfer-Encoding", "chunked"}}, 2, 400},
      {HTTP_POST, 1, "/", {{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}}, 2, 501},
      {HTTP_POST, 1, "/", {{"Host", "a"}, {"Transfer-Encoding", "chunked, chunked"}}, 2, 400},
      {HTTP_POST, 0, "/", {{"Transfer-Encoding", "chunked"}}, 1, 400},
      {HTTP_GET, 1, "/", {{"Host", "a"}, {"Host", "b"}}, 2, 400},
      {HTTP_GET, 1, "*", {{"Host", "a"}}, 1, 400},
      {HTTP_GET, 1, "ftp://a/", {{"Host", "a"}}, 1, 400},
      {HTTP_GET, 1, "http://u@a/", {{"Host", "a"}}, 1, 400},
      {HTTP_GET, 1, "http:///x", {{"Host", "a"}}, 1, 400},
      {HTTP_GET, 1, "/x", {{"X-A", "1"}}, 1, 400},
      {HTTP_GET, 1, "/../x", {{"Host", "a"}}, 1, 400},
      {HTTP_GET, 1, "/%zz", {{"Host", "a"}}, 1, 400},
      {HTTP_GET, 0, "/x", {{"X-A", "1"}}, 1, 0},
      {HTTP_OPTIONS, 1, "*", {{"Host", "a"}}, 1, 0},
      {HTTP_GET, 1, "/x", {{"Host", "a"}}, 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct request_checked out;
    int st = check(cases[i].method, cases[i].minor, cases[i].url, cases[i].h, cases[i].nh, &out);
    cr_expect_eq(st, cases[i].status, "case %zu (%s): %d, expected %d", i, cases[i].url, st,
                 cases[i].status);
    cr_expect_eq(out.status, st, "case %zu: out->status", i);
  }
}

Test(request, version_other_than_1_is_505) {
  static struct hdr store[1];
  struct hdr_list l = {store, 0, 1};
  struct request_in in = {HTTP_GET, 0, true, false, false, SLICE_LIT("/"), &l};
  struct request_checked out;
  cr_assert_eq(request_check(&in, &arena, &out), 505);
}

Test(request, absolute_form_authority_wins_and_the_path_is_normalised) {
  struct request_checked out;
  cr_assert_eq(check(HTTP_GET, 1, "http://b.test:8080?q=1", host, 1, &out), 0);
  cr_assert(slice_eq(out.host, SLICE_LIT("b.test:8080")));
  cr_assert(slice_eq(out.target, SLICE_LIT("/?q=1")), "an empty path becomes /");
  cr_assert(slice_eq(out.norm, SLICE_LIT("/")));
  cr_assert_eq(check(HTTP_GET, 1, "/a/./b/../%63?x", host, 1, &out), 0);
  cr_assert(slice_eq(out.host, SLICE_LIT("a.test")));
  cr_assert(slice_eq(out.target, SLICE_LIT("/a/./b/../%63?x")), "the target is kept as sent");
  cr_assert(slice_eq(out.norm, SLICE_LIT("/a/c")), "what routes is normalised");
}

Test(request, redirect_location_and_upstream_target) {
  struct cfg_route r = {0};
  r.redirect_location = "https://x.test/new";
  struct slice loc;
  cr_assert_eq(request_redirect_location(&r, SLICE_LIT("/old?a=1"), &arena, &loc), 0);
  cr_assert(slice_eq(loc, SLICE_LIT("https://x.test/new?a=1")));
  r.redirect_location = "https://x.test/new?b=2";
  cr_assert_eq(request_redirect_location(&r, SLICE_LIT("/old?a=1"), &arena, &loc), 0);
  cr_assert(slice_eq(loc, SLICE_LIT("https://x.test/new?b=2")), "the location's query wins");

  r.path_kind = PATH_PREFIX;
  r.path = "/users";
  r.rewrite_prefix = "/v2/users";
  struct slice t;
  cr_assert_eq(
      request_upstream_target(&r, SLICE_LIT("/users/7?x=1"), SLICE_LIT("/users/7"), &arena, &t), 0);
  cr_assert(slice_eq(t, SLICE_LIT("/v2/users/7?x=1")));
}

Test(request, upstream_head_description) {
  static struct hdr store[2];
  struct hdr_list l = {store, 0, 2};
  struct cfg_route r = {0};
  struct request_in in = {HTTP_POST, 0, false, false, true, SLICE_LIT("/x"), &l};
  struct fwd_request fr;
  request_fwd_init(&fr, &r, &in, SLICE_LIT("/y"), (struct slice){NULL, 0}, SLICE_LIT("10.0.0.1:80"),
                   SLICE_LIT("192.0.2.1"), SLICE_LIT("rid"), 5, false);
  cr_assert(slice_eq(fr.method, SLICE_LIT("POST")));
  cr_assert(slice_eq(fr.host, SLICE_LIT("10.0.0.1:80")), "no Host: the server's name");
  cr_assert_eq(fr.framing, FRAMING_LENGTH);
  cr_assert_eq(fr.content_length, 5);
  cr_assert_eq(fr.client_minor, 0);
  r.set_host = "internal";
  request_fwd_init(&fr, &r, &in, SLICE_LIT("/y"), SLICE_LIT("a.test"), SLICE_LIT("s"),
                   SLICE_LIT("192.0.2.1"), SLICE_LIT("rid"), 5, false);
  cr_assert(slice_eq(fr.host, SLICE_LIT("internal")), "set_host wins");
  cr_assert(slice_eq(fr.fwd_host, SLICE_LIT("a.test")), "X-Forwarded-Host: the client's Host");
}
