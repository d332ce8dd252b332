/* Unit tests for src/request.c: the pure checks of a parsed request head
 * (Host and target validators, Transfer-Encoding, versions, target forms
 * and normalisation) and the one table that maps a failed check to its
 * status and message. No sockets. */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <string.h>

#include "ferry/request.h"
#include "leak_check.h"

TestSuite(request, .fini = abort_on_leaks);

#define MAXH 8

static bool is(struct slice a, const char *b) {
  return a.n == strlen(b) && (a.n == 0 || memcmp(a.p, b, a.n) == 0);
}

/* A head from a request line's pieces and name/value pairs. */
struct t_head {
  struct hdr hv[MAXH];
  struct hdr_list l;
  struct request_head h;
  char scratch[512];
  struct request_verdict v;
};

static void t_init(struct t_head *t, int method, int major, int minor, const char *target,
                   const char *const *kv, size_t npairs) {
  memset(t, 0, sizeof(*t));
  t->l = (struct hdr_list){.v = t->hv, .cap = MAXH};
  for (size_t i = 0; i < npairs; i++)
    cr_assert_eq(http_head_push(&t->l, slice_cstr(kv[2 * i]), slice_cstr(kv[2 * i + 1])), 0);
  http_head_mark_hop(&t->l);
  t->h = (struct request_head){.method = method,
                               .major = major,
                               .minor = minor,
                               .target = slice_cstr(target),
                               .headers = &t->l};
}

static enum request_error t_check(struct t_head *t) {
  return request_check(&t->h, t->scratch, sizeof t->scratch, &t->v);
}

/* check(method, major, minor, target, "Name", "value", ...) */
#define CHECK(t, m, maj, min, target, ...)                                                         \
  ({                                                                                               \
    static const char *const kv_[] = {NULL, NULL, ##__VA_ARGS__};                                  \
    t_init((t), (m), (maj), (min), (target), kv_ + 2, sizeof kv_ / sizeof kv_[0] / 2 - 1);         \
    t_check(t);                                                                                    \
  })

static enum request_error host(const char *v) {
  return request_check_host(slice_cstr(v), false);
}

Test(request, host_is_host_and_optional_port) {
  const char *ok[] = {"example.com",
                      "example.com:8080",
                      "EXAMPLE.com:1",
                      "a",
                      "127.0.0.1",
                      "127.0.0.1:80",
                      "[::1]",
                      "[::1]:443",
                      "[2001:db8::7]:1",
                      "[::ffff:1.2.3.4]",
                      "[v1.fe80::a+en1]",
                      "xn--bcher-kva.ch",
                      "under_score.example",
                      "a%2Db.example",
                      "a-b.c~d!$&'()*+;="};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    cr_assert_eq(host(ok[i]), REQUEST_OK, "%s is host[:port]", ok[i]);
}

Test(request, host_with_userinfo_path_list_or_junk_is_refused) {
  const char *bad[] = {
      "user@example.com",
      "user:pw@example.com",
      "example.com/x",
      "example.com?q",
      "example.com#f",
      "a, b",
      "a,b",
      "a b",
      "a\tb",
      " a",
      ":80",
      "a:",
      "a:80x",
      "a:123456",
      "a:80:90",
      "[::1",
      "[::1]x",
      "[]",
      "[zz::1]",
      "[::1]:",
      "a%2",
      "a%zz",
      "ex\xc3\xa9.com",
      "a\x01",
      "a\"b",
      "a\\b",
      "a<b",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(host(bad[i]), REQUEST_E_HOST_BAD, "\"%s\" is refused", bad[i]);
}

Test(request, empty_host_only_where_allowed) {
  cr_assert_eq(request_check_host(slice_cstr(""), false), REQUEST_E_HOST_BAD);
  cr_assert_eq(request_check_host(slice_cstr(""), true), REQUEST_OK);
  struct t_head t;
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/", "Host", ""), REQUEST_E_HOST_BAD,
               "an empty Host in HTTP/1.1");
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 0, "/", "Host", ""), REQUEST_OK,
               "an empty Host in HTTP/1.0 is no Host");
  cr_assert_eq(t.v.host.n, 0);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/"), REQUEST_E_HOST_MISSING);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 0, "/"), REQUEST_OK, "HTTP/1.0 needs no Host");
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/", "Host", "a", "host", "a"), REQUEST_E_HOST_MANY,
               "even two equal Host fields");
}

Test(request, target_bytes_must_be_visible_ascii) {
  cr_assert_eq(request_check_target_bytes(slice_cstr("/a/b?c=%20&d=\"<>{}|\\^`")), REQUEST_OK);
  const char *bad[] = {"/caf\xc3\xa9", "/\xc0\xaf", "/\x80",  "/\xff", "/a\tb",
                       "/a\x0c",       "/a\x7f",    "/a\x01", "/a b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(request_check_target_bytes(slice_cstr(bad[i])), REQUEST_E_TARGET_BYTES, "%zu", i);
  struct t_head t;
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/caf\xc3\xa9", "Host", "a"), REQUEST_E_TARGET_BYTES);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "http://a/caf\xc3\xa9", "Host", "a"),
               REQUEST_E_TARGET_BYTES, "absolute-form too");
  cr_assert_eq(request_status(REQUEST_E_TARGET_BYTES), 400);
}

Test(request, versions) {
  int minor = -1;
  cr_assert_eq(request_check_version(1, 0, &minor), REQUEST_OK);
  cr_assert_eq(minor, 0);
  cr_assert_eq(request_check_version(1, 1, &minor), REQUEST_OK);
  cr_assert_eq(minor, 1);
  for (int m = 2; m <= 9; m++) {
    cr_assert_eq(request_check_version(1, m, &minor), REQUEST_OK, "HTTP/1.%d", m);
    cr_assert_eq(minor, 1, "HTTP/1.%d is served as HTTP/1.1", m);
  }
  cr_assert_eq(request_check_version(2, 0, &minor), REQUEST_E_VERSION);
  cr_assert_eq(request_check_version(3, 0, &minor), REQUEST_E_VERSION);
  cr_assert_eq(request_check_version(9, 9, &minor), REQUEST_E_VERSION);
  cr_assert_eq(request_check_version(0, 9, &minor), REQUEST_E_VERSION);
  cr_assert_eq(request_status(REQUEST_E_VERSION), 505);
  struct t_head t;
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 2, "/", "Host", "a"), REQUEST_OK);
  cr_assert_eq(t.v.minor, 1);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 2, "/"), REQUEST_E_HOST_MISSING, "1.2 needs a Host as 1.1");
  cr_assert_eq(CHECK(&t, HTTP_GET, 2, 0, "/", "Host", "a"), REQUEST_E_VERSION);
}

Test(request, transfer_encoding) {
  struct t_head t;
  cr_assert_eq(CHECK(&t, HTTP_POST, 1, 1, "/", "Host", "a", "Transfer-Encoding", "chunked"),
               REQUEST_OK);
  cr_assert_eq(CHECK(&t, HTTP_POST, 1, 1, "/", "Host", "a", "Transfer-Encoding", "gzip"),
               REQUEST_E_TE_CODING);
  cr_assert_eq(CHECK(&t, HTTP_POST, 1, 1, "/", "Host", "a", "Transfer-Encoding", "gzip, chunked"),
               REQUEST_E_TE_CODING);
  cr_assert_eq(CHECK(&t, HTTP_POST, 1, 1, "/", "Host", "a", "Transfer-Encoding", "chunked, gzip"),
               REQUEST_E_TE_FRAMING, "chunked not last: the length is unknowable");
  cr_assert_eq(CHECK(&t, HTTP_POST, 1, 1, "/", "Host", "a", "Transfer-Encoding", "chunked",
                     "Transfer-Encoding", "chunked"),
               REQUEST_E_TE_FRAMING);
  cr_assert_eq(CHECK(&t, HTTP_POST, 1, 0, "/", "Transfer-Encoding", "chunked"),
               REQUEST_E_TE_FRAMING, "HTTP/1.0 has no transfer codings");
  t_init(&t, HTTP_POST, 1, 1, "/", NULL, 0);
  t.h.chunked = t.h.has_length = true;
  cr_assert_eq(t_check(&t), REQUEST_E_CL_AND_TE);
  cr_assert_eq(request_status(REQUEST_E_TE_CODING), 501);
  cr_assert_eq(request_status(REQUEST_E_TE_FRAMING), 400);
  cr_assert_eq(request_status(REQUEST_E_CL_AND_TE), 400);
}

Test(request, target_forms_and_absolute_authority) {
  struct t_head t;
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "http://Example.com:8080/a?b", "Host", "other"),
               REQUEST_OK);
  cr_assert(is(t.v.host, "Example.com:8080"), "the authority wins over Host");
  cr_assert(is(t.v.path, "/a?b"));
  cr_assert(is(t.v.norm, "/a"));
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "HTTPS://h?q=1"), REQUEST_OK);
  cr_assert(is(t.v.path, "/?q=1"), "an empty path becomes /");
  cr_assert(is(t.v.host, "h"));
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "http://h"), REQUEST_OK);
  cr_assert(is(t.v.path, "/"));
  const char *bad_auth[] = {"http://u@h/", "http:///x", "http://h,i/", "http://h:x/", "http://h:/"};
  for (size_t i = 0; i < sizeof bad_auth / sizeof bad_auth[0]; i++)
    cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, bad_auth[i], "Host", "h"), REQUEST_E_AUTHORITY_BAD, "%s",
                 bad_auth[i]);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "http://h/", "Host", "u@h"), REQUEST_E_HOST_BAD,
               "a Host beside an absolute-form target is still checked");
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "ftp://h/", "Host", "h"), REQUEST_E_TARGET_FORM);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "h:80", "Host", "h"), REQUEST_E_TARGET_FORM);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "*", "Host", "h"), REQUEST_E_TARGET_STAR);
  cr_assert_eq(CHECK(&t, HTTP_OPTIONS, 1, 1, "*", "Host", "h"), REQUEST_OK);
  cr_assert(is(t.v.path, "*") && is(t.v.norm, "/"));
  cr_assert_eq(CHECK(&t, HTTP_CONNECT, 1, 1, "h:443", "Host", "h:443"), REQUEST_E_CONNECT);
  cr_assert_eq(request_status(REQUEST_E_CONNECT), 405);
}

Test(request, normalisation) {
  struct t_head t;
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/a/./b/../c/%7euser/%2F?x=/../", "Host", "h"),
               REQUEST_OK);
  cr_assert(is(t.v.norm, "/a/c/~user/%2F"), "got %.*s", (int)t.v.norm.n, t.v.norm.p);
  cr_assert(is(t.v.path, "/a/./b/../c/%7euser/%2F?x=/../"), "the target is sent as received");
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/a%zz", "Host", "h"), REQUEST_E_PATH_BAD);
  cr_assert_eq(CHECK(&t, HTTP_GET, 1, 1, "/a%2", "Host", "h"), REQUEST_E_PATH_BAD);
}

Test(request, scratch_too_small_is_414) {
  struct t_head t;
  t_init(&t, HTTP_GET, 1, 1, "/abc", NULL, 0);
  cr_assert_eq(request_check(&t.h, t.scratch, request_scratch_size(4) - 1, &t.v),
               REQUEST_E_TOO_LONG);
  cr_assert_eq(request_status(REQUEST_E_TOO_LONG), 414);
}

Test(request, the_one_pass_target_skips_the_byte_check_only) {
  struct t_head t;
  t_init(&t, HTTP_GET, 1, 1, "/a", NULL, 0);
  t.h.target_clean = true;
  cr_assert_eq(t_check(&t), REQUEST_E_HOST_MISSING, "every other check still runs");
}

Test(request, every_error_has_a_status_and_words) {
  for (int e = 1; e < REQUEST_E__COUNT; e++) {
    int st = request_status((enum request_error)e);
    cr_assert(st >= 400 && st < 600, "%s", request_error_name((enum request_error)e));
    const char *m = request_message((enum request_error)e);
    cr_assert(strlen(m) > 10 && m[strlen(m) - 1] == '\n', "%s", request_error_name(e));
  }
  cr_assert_eq(request_status(REQUEST_OK), 0);
  cr_assert_str_eq(request_error_name(REQUEST_E_HOST_BAD), "HOST_BAD");
}
