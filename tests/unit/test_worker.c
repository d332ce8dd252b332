/* Unit tests for src/worker.c pieces that run without a loop: the Date
 * value every response carries, made at most once per second per worker
 * from the loop's cached time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ferry/worker.h"
#include "leak_check.h"

TestSuite(worker, .fini = abort_on_leaks);

static struct worker w; /* only the date fields and loop.time are used */

static void assert_imf_fixdate(struct slice d) {
  cr_assert_eq(d.n, 29, "IMF-fixdate is 29 bytes: %.*s", (int)d.n, d.p);
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  char z[30];
  memcpy(z, d.p, 29);
  z[29] = 0;
  const char *end = strptime(z, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  cr_assert(end && *end == 0, "parses as IMF-fixdate: %s", z);
  time_t t = timegm(&tm), now = time(NULL);
  cr_assert(t <= now && now - t <= 2, "the current time: %s", z);
}

Test(worker, http_date_is_formatted_once_per_second_of_loop_time) {
  memset(&w, 0, sizeof w);
  w.loop.time = 5000;
  assert_imf_fixdate(wctx_http_date(&w));
  uint64_t next = w.date_next;
  cr_assert(next > 5000 && next <= 6000, "refreshed at the next second: %llu",
            (unsigned long long)next);

  memcpy(w.date, "cached", 6); /* a marker: a refresh would overwrite it */
  w.loop.time = next - 1;
  struct slice d = wctx_http_date(&w);
  cr_assert(memcmp(d.p, "cached", 6) == 0, "within the second the text is reused");
  cr_assert_eq(w.date_next, next);

  w.loop.time = next;
  assert_imf_fixdate(wctx_http_date(&w));
  cr_assert_gt(w.date_next, next, "and made again once the second is over");
}

Test(worker, request_id_is_the_seed_then_the_counter_in_hex) {
  memset(&w, 0, sizeof w);
  w.reqid_seed = 0xfeedface0badf00dull; /* the low 32 bits are printed */
  w.reqid_counter = 0x123456789abcdeull - 1;
  char id[21], want[21];
  wctx_request_id(&w, id);
  cr_assert_str_eq(id, "0badf00d3456789abcde"); /* the counter's low 48 bits */
  for (uint64_t n = 0; n < 70000; n += 997) {
    w.reqid_counter = n;
    wctx_request_id(&w, id);
    snprintf(want, sizeof want, "%08x%012llx", 0x0badf00du, (unsigned long long)(n + 1));
    cr_assert_str_eq(id, want);
  }
}
