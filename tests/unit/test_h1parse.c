/* Unit tests for src/h1parse.c: what the fast head parser takes, what it
 * reads from it, and that it declines (H1_SLOW, list untouched) every form
 * the slow path must judge. tests/fuzz/fuzz_h1parse.c checks the accepted
 * heads against llhttp and the strict scanner. */
#include <criterion/criterion.h>
#include <llhttp.h>
#include <stdio.h>
#include <string.h>

#include "ferry/h1parse.h"
#include "leak_check.h"

TestSuite(h1parse, .fini = abort_on_leaks);

#define MAXH 16

static struct hdr hv[MAXH];

static int req(const char *s, struct hdr_list *l, struct h1_head *h) {
  *l = (struct hdr_list){.v = hv, .cap = MAXH};
  return h1_parse_request(s, strlen(s), l, h);
}

static int resp(const char *s, struct hdr_list *l, struct h1_head *h) {
  *l = (struct hdr_list){.v = hv, .cap = MAXH};
  return h1_parse_response(s, strlen(s), l, h);
}

static bool is(struct slice a, const char *b) {
  return a.n == strlen(b) && memcmp(a.p, b, a.n) == 0;
}

Test(h1parse, plain_get_is_read_in_one_pass) {
  const char *s = "GET /a/b?c=d%20e HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \t\r\n"
                  "X-Empty:\r\n\r\nnext";
  struct hdr_list l;
  struct h1_head h;
  cr_assert_eq(req(s, &l, &h), H1_OK);
  cr_assert_eq(h.len, strlen(s) - 4, "the head ends before the next bytes");
  cr_assert_eq(h.method, HTTP_GET);
  cr_assert(is(h.target, "/a/b?c=d%20e"));
  cr_assert_eq(h.minor, 1);
  cr_assert_eq(l.n, 3);
  cr_assert(is(l.v[0].name, "Host") && is(l.v[0].value, "example.com"));
  cr_assert_eq(l.v[0].tok, HDR_HOST);
  cr_assert(is(l.v[1].value, "curl/8"), "whitespace around a value is not part of it");
  cr_assert(is(l.v[2].name, "X-Empty") && l.v[2].value.n == 0);
  cr_assert(!h.has_length);
  cr_assert(h1_keep_alive(&h), "HTTP/1.1 persists by default");
}

Test(h1parse, methods_versions_and_connection) {
  struct hdr_list l;
  struct h1_head h;
  static const struct {
    const char *line;
    int method;
  } m[] = {{"GET", HTTP_GET},    {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
           {"PUT", HTTP_PUT},    {"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS},
           {"PATCH", HTTP_PATCH}};
  char buf[128];
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    snprintf(buf, sizeof buf, "%s /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", m[i].line);
    cr_assert_eq(req(buf, &l, &h), H1_OK, "%s", m[i].line);
    cr_assert_eq(h.method, m[i].method);
    cr_assert_eq(h.minor, 0);
    cr_assert(h.conn_keep_alive && h1_keep_alive(&h), "HTTP/1.0 with keep-alive persists");
  }
  cr_assert_eq(req("GET / HTTP/1.0\r\nHost: a\r\n\r\n", &l, &h), H1_OK);
  cr_assert(!h1_keep_alive(&h), "HTTP/1.0 without keep-alive does not persist");
  cr_assert_eq(req("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &l, &h), H1_OK);
  cr_assert(h.conn_close && !h1_keep_alive(&h));
}

Test(h1parse, content_length_is_read) {
  struct hdr_list l;
  struct h1_head h;
  cr_assert_eq(req("POST /u HTTP/1.1\r\nContent-Length: 1234\r\n\r\nbody", &l, &h), H1_OK);
  cr_assert(h.has_length);
  cr_assert_eq(h.length, 1234);
  cr_assert_eq(l.v[0].tok, HDR_CONTENT_LENGTH);
}

/* Every form below must be left to llhttp and the strict scanner. */
Test(h1parse, declines_what_the_slow_path_judges) {
  static const char *const reqs[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n",                         /* partial head */
      "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",                 /* leading empty line */
      "GET / HTTP/1.1\nHost: a\r\n\r\n",                       /* bare LF */
      "GET / HTTP/1.1\r\nHost: a\n\r\n",                       /* bare LF */
      "GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n",                  /* bare CR */
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",                    /* space before colon */
      "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",                  /* obs-fold */
      "GET / HTTP/1.1\r\n: a\r\n\r\n",                         /* empty name */
      "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",              /* obs-text */
      "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n",                    /* control byte */
      "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",                    /* DEL */
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", /* chunked */
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",          /* upgrade */
      "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",         /* other Connection */
      "GET / HTTP/1.1\r\nConnection: close, x\r\n\r\n",        /* a list */
      "GET / HTTP/1.1\r\nConnection: close\r\nConnection: close\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: close \r\n\r\n", /* trailing OWS */
      "GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1 \r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", /* absolute-form */
      "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",     /* asterisk-form */
      "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
      "PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", /* rarer method */
      "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",   /* fragment */
      "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", /* two spaces */
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / http/1.1\r\nHost: a\r\n\r\n",
      "get / HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
    struct hdr_list l;
    struct h1_head h;
    cr_assert_eq(req(reqs[i], &l, &h), H1_SLOW, "request %zu taken", i);
    cr_assert_eq(l.n, 0, "request %zu: the list is left as it was", i);
    cr_assert_eq(l.toks, 0, "request %zu: its token summary too", i);
    cr_assert_eq(l.toks_n, 0, "request %zu: its token summary too", i);
  }
}

Test(h1parse, a_full_list_is_declined) {
  char buf[1024] = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < MAXH + 1; i++)
    strcat(buf, "X: y\r\n");
  strcat(buf, "\r\n");
  struct hdr_list l;
  struct h1_head h;
  cr_assert_eq(req(buf, &l, &h), H1_SLOW, "the slow path answers 431");
  cr_assert_eq(l.n, 0);
}

Test(h1parse, responses) {
  struct hdr_list l;
  struct h1_head h;
  cr_assert_eq(resp("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                    "Content-Length: 100\r\n\r\n",
                    &l, &h),
               H1_OK);
  cr_assert_eq(h.status, 200);
  cr_assert(is(h.reason, "OK"));
  cr_assert(is(l.v[0].value, "text/html; charset=utf-8"));
  cr_assert(h.has_length && h.length == 100);
  cr_assert(h1_keep_alive(&h));

  cr_assert_eq(resp("HTTP/1.0 304\r\nETag: \"x\"\r\n\r\n", &l, &h), H1_OK);
  cr_assert_eq(h.status, 304);
  cr_assert_eq(h.reason.n, 0, "no reason phrase");
  cr_assert(!h1_keep_alive(&h));

  cr_assert_eq(resp("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n", &l, &h), H1_OK);
  cr_assert(is(h.reason, "Not Found"));
  cr_assert(!h1_keep_alive(&h));

  static const char *const slow[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", /* partial */
      "HTTP/1.1 20 OK\r\n\r\n",                   /* two digits */
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 600 X\r\n\r\n",
      "HTTP/1.1 099 X\r\n\r\n",
      "HTTP/1.1 200 O\tK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
    cr_assert_eq(resp(slow[i], &l, &h), H1_SLOW, "response %zu taken", i);
    cr_assert_eq(l.n, 0);
  }
}

/* Values longer than one 16-byte block, with a bad byte at each offset. */
Test(h1parse, long_values_are_checked_at_every_offset) {
  char buf[256];
  for (int at = 0; at < 40; at++) {
    char v[41];
    memset(v, 'a', 40);
    v[40] = 0;
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
    struct hdr_list l;
    struct h1_head h;
    cr_assert_eq(req(buf, &l, &h), H1_OK);
    cr_assert_eq(l.v[0].value.n, 40);
    v[at] = '\x01';
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
    cr_assert_eq(req(buf, &l, &h), H1_SLOW, "control byte at %d", at);
    v[at] = ' ';
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nX: %s\r\n\r\n", v);
    cr_assert_eq(req(buf, &l, &h), H1_OK, "space at %d", at);
    cr_assert_eq(l.v[0].value.n, at == 0 || at == 39 ? 39u : 40u,
                 "inner spaces kept, leading and trailing ones trimmed");
  }
}

Test(h1parse, a_parsed_list_carries_its_token_summary) {
  struct hdr_list l;
  struct h1_head h;
  cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: r\r\nAccept: */*\r\n\r\n", &l, &h),
               H1_OK);
  cr_assert_eq(l.toks_n, l.n);
  cr_assert_eq(l.toks, 1u << HDR_HOST | 1u << HDR_X_REQUEST_ID | 1u << HDR_OTHER);
  cr_assert_null(http_head_find_tok(&l, HDR_TRACEPARENT));
  cr_assert_not_null(http_head_find_tok(&l, HDR_X_REQUEST_ID));
}

/* Field names are scanned 16 bytes at a time: every byte value at every
 * offset of a 40-byte name is judged as the tchar table says. */
Test(h1parse, long_names_are_checked_at_every_offset) {
  char name[41], buf[256];
  struct hdr_list l;
  struct h1_head h;
  for (int at = 0; at < 40; at++) {
    for (int c = 1; c < 256; c++) {
      memset(name, 'a', 40);
      name[40] = '\0';
      name[at] = (char)c;
      if (c == ':' || c == '\r' || c == '\n')
        continue; /* ends the name or the line: a different head */
      snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n%s: v\r\n\r\n", name);
      int r = req(buf, &l, &h);
      if (http_is_tchar((unsigned char)c)) {
        cr_assert_eq(r, H1_OK, "tchar %#x at %d", c, at);
        cr_assert_eq(l.v[0].name.n, 40u);
      } else {
        cr_assert_eq(r, H1_SLOW, "byte %#x at %d", c, at);
      }
    }
  }
}
