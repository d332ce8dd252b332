/* trace: W3C traceparent parsing (valid, malformed, future versions) and
 * the value ferry writes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ferry/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool parse(const char *s, char tid[33], char fl[3]) {
  memset(tid, 0, 33);
  memset(fl, 0, 3);
  return trace_parse(slice_cstr(s), tid, fl);
}

Test(trace, valid_version_00) {
  char tid[33], fl[3];
  cr_assert(parse(TP, tid, fl));
  cr_assert_str_eq(tid, "4bf92f3577b34da6a3ce929d0e0e4736");
  cr_assert_str_eq(fl, "01");
}

Test(trace, malformed_values_are_refused) {
  char tid[33], fl[3];
  static const char *const bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 with more */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* upper case */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  /* not hex */
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* later version, no "-" */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_not(parse(bad[i], tid, fl), "accepted %s", bad[i]);
}

Test(trace, later_versions_keep_the_fields_they_share) {
  char tid[33], fl[3];
  cr_assert(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tid, fl));
  cr_assert(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", tid, fl));
  cr_assert_str_eq(tid, "4bf92f3577b34da6a3ce929d0e0e4736");
}

Test(trace, format_writes_a_new_parent_id) {
  char out[TRACE_PARENT_LEN + 1] = {0}, tid[33], fl[3];
  trace_format(out, "4bf92f3577b34da6a3ce929d0e0e4736", 0x0123456789abcdefull, "01");
  cr_assert_str_eq(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-0123456789abcdef-01");
  cr_assert(parse(out, tid, fl));
}

Test(trace, random_is_never_zero_and_varies) {
  uint64_t st = 0, a = trace_random(&st), b = trace_random(&st);
  cr_assert_neq(a, 0);
  cr_assert_neq(a, b);
}

Test(trace, hex64_matches_printf_for_every_digit_position) {
  uint64_t st = 7, v = 0;
  char got[17] = {0}, want[17];
  for (int i = 0; i < 2000; i++) {
    v = i < 4 ? (uint64_t[]){0, ~0ull, 0x0123456789abcdefull, 0xfedcba9876543210ull}[i]
              : trace_random(&st);
    trace_hex64(got, v);
    snprintf(want, sizeof want, "%016llx", (unsigned long long)v);
    cr_assert_str_eq(got, want);
  }
}
