/* Unit tests for src/filter.c: a table of expressions, each with the set of
 * captured exchanges it must match, and a table of malformed expressions
 * with the message each must give. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/filter.h"
#include "leak_check.h"

static void teardown(void) {
  abort_on_leaks();
}

TestSuite(filter, .fini = teardown);

#define NREC 4
static struct inspect_rec *recs[NREC];

static const struct inspect_kv req0[] = {{SLICE_LIT("Host"), SLICE_LIT("shop.test")},
                                         {SLICE_LIT("X-Env"), SLICE_LIT("prod")},
                                         {SLICE_LIT("Accept"), SLICE_LIT("application/json")}};
static const struct inspect_kv up0[] = {{SLICE_LIT("Server"), SLICE_LIT("app/1.2")}};
static const char resp0[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "X-Request-Id: r0\r\n\r\n";
static const char fwd0[] =
    "GET /v2/users?x=1 HTTP/1.1\r\nHost: shop.test\r\nVia: 1.1 ferry\r\n\r\n";
static const struct inspect_kv req1[] = {{SLICE_LIT("Host"), SLICE_LIT("auth.test")},
                                         {SLICE_LIT("Content-Type"), SLICE_LIT("text/plain")}};
static const char resp1[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\n";
static const struct inspect_kv req2[] = {{SLICE_LIT("Host"), SLICE_LIT("shop.test")}};
static const char resp2[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n";

static void build(void) {
  struct inspect_src s[NREC] = {
      {.method = SLICE_LIT("GET"),
       .target = SLICE_LIT("/api/users?x=1"),
       .host = SLICE_LIT("shop.test"),
       .route_index = 0,
       .upstream = SLICE_LIT("api"),
       .status = 200,
       .complete = true,
       .req_line = SLICE_LIT("GET /api/users?x=1 HTTP/1.1"),
       .req = req0,
       .nreq = 3,
       .fwd_head = {fwd0, sizeof fwd0 - 1},
       .up_line = SLICE_LIT("HTTP/1.1 200 OK"),
       .up = up0,
       .nup = 1,
       .up_present = true,
       .client_head = {resp0, sizeof resp0 - 1}},
      {.method = SLICE_LIT("POST"),
       .target = SLICE_LIT("/login"),
       .host = SLICE_LIT("auth.test"),
       .route_index = 1,
       .upstream = SLICE_LIT("auth"),
       .error = SLICE_LIT("no healthy upstream server"),
       .status = 503,
       .complete = true,
       .has_body = true,
       .body = {SLICE_LIT("user=ann&pw=x"), {NULL, 0}},
       .req_line = SLICE_LIT("POST /login HTTP/1.1"),
       .req = req1,
       .nreq = 2,
       .client_head = {resp1, sizeof resp1 - 1}},
      {.method = SLICE_LIT("PUT"),
       .target = SLICE_LIT("/nothing/here"),
       .host = SLICE_LIT("shop.test"),
       .route_index = -1,
       .status = 404,
       .complete = true,
       .body = {{NULL, 0}, SLICE_LIT("no route\n")},
       .req_line = SLICE_LIT("PUT /nothing/here HTTP/1.1"),
       .req = req2,
       .nreq = 1,
       .client_head = {resp2, sizeof resp2 - 1}},
      {.method = SLICE_LIT("GET"),
       .target = SLICE_LIT("/api/big"),
       .host = SLICE_LIT("shop.test"),
       .route_index = 0,
       .upstream = SLICE_LIT("api"),
       .error = SLICE_LIT("client closed the connection"),
       .status = 200,
       .complete = false,
       .req_line = SLICE_LIT("GET /api/big HTTP/1.1"),
       .req = req2,
       .nreq = 1,
       .fwd_head = {fwd0, sizeof fwd0 - 1},
       .up_line = SLICE_LIT("HTTP/1.1 200 OK"),
       .up = up0,
       .nup = 1,
       .up_present = true,
       .client_head = {resp0, sizeof resp0 - 1}},
  };
  for (int i = 0; i < NREC; i++) {
    recs[i] = inspect_rec_build(&s[i]);
    cr_assert_not_null(recs[i]);
  }
}

static void release(void) {
  for (int i = 0; i < NREC; i++)
    free(recs[i]);
}

/* Bit i: the expression matches record i. */
static const struct {
  const char *expr;
  unsigned want;
} cases[] = {
    {"~m GET", 0x9},
    {"~m get", 0x9},
    {"~m GE", 0x0}, /* the method matches whole */
    {"~m (PUT|POST)", 0x6},
    {"~m \"(PUT|POST)\"", 0x6},
    {"~c 200", 0x9},
    {"~c 5..", 0x2},
    {"~c 4..|~c 5..", 0x6},
    {"~c 20", 0x0}, /* the status matches whole */
    {"!~c 200", 0x6},
    {"~u /api", 0x9},
    {"~u ^http://auth\\.test/", 0x2},
    {"~u x=1$", 0x1},
    {"~d shop", 0xd},
    {"~h X-Env: prod", 0x1},
    {"~h x-env: PROD", 0x1}, /* case-insensitive */
    {"~h 'X-Env: prod'", 0x1},
    {"~h X-Env: staging", 0x0},
    {"~h ^Via: 1.1 ferry$", 0x9}, /* the forwarded head counts for ~h */
    {"~hq Server", 0x0},          /* the upstream's response header is not a request one */
    {"~hs Server: app", 0x9},     /* as the upstream sent it */
    {"~hs content-type: text", 0x6},
    {"~t json", 0x9},
    {"~t text/plain", 0x6},
    {"~b user=", 0x2},
    {"~bq user=", 0x2},
    {"~bs user=", 0x0},
    {"~bs 'no route'", 0x4},
    {"~r 0", 0x9},
    {"~r auth", 0x2},
    {"~r 2", 0x0},
    {"~e", 0xa}, /* an error note, or a response cut short */
    {"~s", 0x9}, /* an upstream answered */
    {"~m GET & ~c 200", 0x9},
    {"~m GET ~u big", 0x8}, /* juxtaposition is &, as in mitmproxy */
    {"~m GET and ~u big", 0x8},
    {"~m PUT or ~m POST", 0x6},
    {"~m GET & !~e", 0x1},
    {"!(~m GET | ~c 404)", 0x2},
    {"~c 200 | ~c 404 & ~m PUT", 0xd}, /* & binds tighter than | */
    {"(~c 200 | ~c 404) & ~m PUT", 0x4},
    {"!!~s", 0x9},
    {"  ~m   GET  ", 0x9},
};

Test(filter, table_of_expressions) {
  build();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[256] = "";
    struct filter *f = filter_compile(cases[i].expr, err, sizeof err);
    cr_assert_not_null(f, "%s: %s", cases[i].expr, err);
    unsigned got = 0;
    for (int r = 0; r < NREC; r++)
      got |= filter_match(f, recs[r]) ? 1u << r : 0u;
    cr_expect_eq(got, cases[i].want, "%s: matched 0x%x, expected 0x%x", cases[i].expr, got,
                 cases[i].want);
    filter_free(f);
  }
  release();
}

static const struct {
  const char *expr, *message;
} errors[] = {
    {"", "at column 1: the expression ends where a filter (~h, ~c, ~m, ~u, ...) should follow"},
    {"~x foo", "at column 1: unknown filter ~x (use ~h, ~hq, ~hs, ~c, ~m, ~u, ~d, ~t, ~b, ~bq, "
               "~bs, ~r, ~e or ~s)"},
    {"~c", "at column 3: ~c needs a regular expression after it"},
    {"~r", "at column 3: ~r needs a route index or upstream name after it"},
    {"~c 5.. &", "at column 9: the expression ends where a filter"},
    {"(~c 200", "at column 1: this ( is not closed"},
    {"~c 200)", "at column 7: this ) has no ( before it"},
    {"~m \"GET", "at column 4: the quote \" is not closed"},
    {"~u [a", "at column 4: ~u [a: not a regular expression"},
    {"GET", "at column 1: expected a filter such as ~c 5.. or ~m POST, an ! or a (, found \"GET\""},
    {"~e ~", "at column 4: unknown filter ~"},
};

Test(filter, malformed_expressions_say_where_and_why) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
    char err[256] = "";
    struct filter *f = filter_compile(errors[i].expr, err, sizeof err);
    cr_expect_null(f, "%s compiled", errors[i].expr);
    filter_free(f);
    cr_expect(strncmp(err, errors[i].message, strlen(errors[i].message)) == 0,
              "%s: got \"%s\", expected \"%s\"", errors[i].expr, err, errors[i].message);
  }
}

Test(filter, deep_nesting_is_refused) {
  char expr[400];
  size_t n = 0;
  for (int i = 0; i < 100; i++)
    expr[n++] = '(';
  expr[n] = '\0';
  char err[256];
  cr_assert_null(filter_compile(expr, err, sizeof err));
  cr_assert_not_null(strstr(err, "nests too deeply"), "%s", err);
}
