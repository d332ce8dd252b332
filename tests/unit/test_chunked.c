/* Unit tests for src/chunked.c: the strict chunk-framing validator. Every
 * case runs twice, once in one call and once a byte at a time, and both
 * must agree on the verdict and where it falls. */
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/chunked.h"
#include "leak_check.h"

TestSuite(chunked, .fini = abort_on_leaks);

/* The verdict over s[0..n) in one call; *at: used. */
static int whole(const char *s, size_t n, size_t *at) {
  struct chunked_check c;
  chunked_check_begin(&c, true);
  return chunked_check(&c, s, n, at);
}

/* The same a byte at a time; *at: absolute offset of the verdict. */
static int bytewise(const char *s, size_t n, size_t *at) {
  struct chunked_check c;
  chunked_check_begin(&c, true);
  for (size_t i = 0; i < n; i++) {
    size_t u = 0;
    int r = chunked_check(&c, s + i, 1, &u);
    if (r != CHUNKED_MORE) {
      *at = i + u;
      return r;
    }
  }
  *at = n;
  return CHUNKED_MORE;
}

static int verdict(const char *s, size_t *at) {
  size_t n = strlen(s), a1 = 0, a2 = 0;
  int r1 = whole(s, n, &a1), r2 = bytewise(s, n, &a2);
  cr_assert_eq(r1, r2, "one call and bytewise agree on %s", s);
  cr_assert_eq(a1, a2, "and on the offset (%zu, %zu)", a1, a2);
  *at = a1;
  return r1;
}

Test(chunked, well_formed_bodies_end_after_the_last_crlf) {
  static const char *ok[] = {
      "0\r\n\r\n",
      "3\r\nabc\r\n0\r\n\r\n",
      "A\r\n0123456789\r\n0\r\n\r\n",
      "a;name=value;x\r\n0123456789\r\n0;last\r\n\r\n",
      "2 ;bws\r\nab\r\n0\r\n\r\n",
      "3\r\n\r\n\n\r\n0\r\n\r\n", /* data may hold CR and LF */
      "0003\r\nabc\r\n000\r\n\r\n",
      "2\r\nab\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n",
      "1\r\n\x80\r\n0\r\nX-Text: caf\xc3\xa9\t!\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    size_t at = 0;
    cr_assert_eq(verdict(ok[i], &at), CHUNKED_DONE, "%s", ok[i]);
    cr_assert_eq(at, strlen(ok[i]), "%s ends at its last byte", ok[i]);
  }
}

Test(chunked, bytes_after_the_body_are_left_for_the_next_message) {
  const char *s = "2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  size_t at = 0;
  cr_assert_eq(verdict(s, &at), CHUNKED_DONE);
  cr_assert_eq(at, strlen("2\r\nab\r\n0\r\n\r\n"));
  struct chunked_check c;
  chunked_check_begin(&c, true);
  size_t u = 0;
  cr_assert_eq(chunked_check(&c, s, at, &u), CHUNKED_DONE);
  cr_assert(!c.active, "inactive once the body ended");
  cr_assert_eq(chunked_check(&c, s + at, 3, &u), CHUNKED_DONE);
  cr_assert_eq(u, 0, "nothing after the end is consumed");
}

Test(chunked, partial_bodies_want_more) {
  static const char *more[] = {
      "",      "2",         "2\r",           "2\r\na", "2\r\nab", "2\r\nab\r", "2\r\nab\r\n0",
      "0\r\n", "0\r\nX: y", "0\r\nX: y\r\n", "0\r\n\r"};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
    size_t at = 0;
    cr_assert_eq(verdict(more[i], &at), CHUNKED_MORE, "\"%s\"", more[i]);
    cr_assert_eq(at, strlen(more[i]));
  }
}

Test(chunked, chunk_terminators_other_than_crlf_are_refused) {
  static const struct {
    const char *s;
    int err;
    size_t at;
  } bad[] = {
      {"2\r\nabXX0\r\n\r\n", CHUNKED_E_DATA_END, 5}, /* two bytes that are not CRLF */
      {"2\r\nab\n0\r\n\r\n", CHUNKED_E_DATA_END, 5}, /* bare LF after data */
      {"2\r\nab\r0\r\n\r\n", CHUNKED_E_DATA_END, 6}, /* bare CR after data */
      {"2\r\nab\r\r\n0\r\n\r\n", CHUNKED_E_DATA_END, 6},
      {"2\r\nabc\r\n0\r\n\r\n", CHUNKED_E_DATA_END, 5}, /* data longer than its size */
      {"2\nab\r\n0\r\n\r\n", CHUNKED_E_LINE_END, 1},    /* bare LF after the size */
      {"2\rab\r\n0\r\n\r\n", CHUNKED_E_LINE_END, 2},    /* bare CR after the size */
      {"2;x\nab\r\n0\r\n\r\n", CHUNKED_E_LINE_END, 3},  /* bare LF after an extension */
      {"2 \r\nab\r\n0\r\n\r\n", CHUNKED_E_LINE_END, 2}, /* whitespace without ';' */
      {"0\n\r\n", CHUNKED_E_LINE_END, 1},               /* the last chunk's line */
      {"0\r\n\n", CHUNKED_E_TRAILER, 3},                /* bare LF ending the trailers */
      {"0\r\n\rX", CHUNKED_E_TRAILER, 4},
      {"0\r\nX: y\n\r\n", CHUNKED_E_TRAILER, 7},         /* trailer line ended by LF */
      {"0\r\nX: y\rz\r\n\r\n", CHUNKED_E_TRAILER, 8},    /* bare CR in a trailer */
      {"0\r\nX: y\r\n z\r\n\r\n", CHUNKED_E_TRAILER, 9}, /* obs-fold in trailers */
      {"0\r\nX : y\r\n\r\n", CHUNKED_E_TRAILER, 4},      /* space before the colon */
      {"0\r\n: y\r\n\r\n", CHUNKED_E_TRAILER, 3},        /* empty name */
      {"0\r\nX\r\n\r\n", CHUNKED_E_TRAILER, 4},          /* no colon */
      {"0\r\nX: a\x01\r\n\r\n", CHUNKED_E_TRAILER, 7},   /* control byte */
      {"zz\r\nab\r\n0\r\n\r\n", CHUNKED_E_SIZE, 0},
      {"-1\r\nab\r\n0\r\n\r\n", CHUNKED_E_SIZE, 0},
      {"0x2\r\nab\r\n0\r\n\r\n", CHUNKED_E_SIZE, 1},
      {"\r\n0\r\n\r\n", CHUNKED_E_SIZE, 0},
      {"fffffffffffffffff1\r\n", CHUNKED_E_SIZE, 16}, /* over 64 bits */
      {"2;a\x01\r\nab\r\n0\r\n\r\n", CHUNKED_E_EXT, 3},
      {"2;a\x7f\r\nab\r\n0\r\n\r\n", CHUNKED_E_EXT, 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t at = 99;
    int r = verdict(bad[i].s, &at);
    cr_assert_eq(r, bad[i].err, "case %zu: got %d (%s)", i, r, chunked_strerror(r));
    cr_assert_eq(at, bad[i].at, "case %zu: at %zu", i, at);
  }
}

Test(chunked, sixty_four_bit_sizes_are_read_and_skipped_in_constant_steps) {
  struct chunked_check c;
  chunked_check_begin(&c, true);
  size_t u = 0;
  cr_assert_eq(chunked_check(&c, "ffffffffffffffff\r\n", 18, &u), CHUNKED_MORE);
  cr_assert_eq(c.left, UINT64_MAX);
  static char block[65536];
  for (int i = 0; i < 4; i++)
    cr_assert_eq(chunked_check(&c, block, sizeof block, &u), CHUNKED_MORE);
  cr_assert_eq(c.left, UINT64_MAX - 4 * sizeof block);
}

Test(chunked, inactive_unless_begun_for_a_chunked_message) {
  struct chunked_check c;
  chunked_check_begin(&c, false);
  cr_assert(!c.active);
  chunked_check_begin(&c, true);
  cr_assert(c.active);
  cr_assert_str_eq(chunked_strerror(CHUNKED_E_DATA_END), "chunk data not followed by CRLF");
}
