/* retrybudget: the retry budget's share and floor, its 10 s window sliding
 * one second at a time (the clock is injected), slots reused on the next
 * turn of the ring, refunds, and counting from several threads at once. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "ferry/retrybudget.h"

/* Far from 0 so that second 0 (an untouched slot) is never in the window. */
#define T0 1000000000ull

static unsigned takes(struct retrybudget *b, uint64_t now, unsigned tries) {
  unsigned n = 0;
  for (unsigned i = 0; i < tries; i++)
    n += retrybudget_take(b, now);
  return n;
}

Test(retrybudget, share_of_requests_with_a_floor) {
  cr_assert_eq(retrybudget_allowed(20, 0), RETRYBUDGET_MIN_RETRIES);
  cr_assert_eq(retrybudget_allowed(20, 49), 10);
  cr_assert_eq(retrybudget_allowed(20, 100), 20);
  cr_assert_eq(retrybudget_allowed(20, 104), 20);
  cr_assert_eq(retrybudget_allowed(100, 1000), 1000);
  cr_assert_eq(retrybudget_allowed(0, 1000), 0);
}

Test(retrybudget, quiet_route_gets_the_floor_then_is_cut_off) {
  struct retrybudget b;
  retrybudget_init(&b, 20);
  retrybudget_request(&b, T0);
  cr_assert_eq(takes(&b, T0 + 1, 50), RETRYBUDGET_MIN_RETRIES);
  uint64_t req, ret;
  retrybudget_window(&b, T0 + 2, &req, &ret);
  cr_assert_eq(req, 1);
  cr_assert_eq(ret, RETRYBUDGET_MIN_RETRIES, "refused retries are not counted");
}

Test(retrybudget, budget_zero_allows_nothing) {
  struct retrybudget b;
  retrybudget_init(&b, 0);
  for (int i = 0; i < 100; i++)
    retrybudget_request(&b, T0);
  cr_assert_eq(takes(&b, T0, 5), 0);
}

Test(retrybudget, share_grows_with_requests) {
  struct retrybudget b;
  retrybudget_init(&b, 20);
  for (int i = 0; i < 200; i++)
    retrybudget_request(&b, T0 + (uint64_t)i);
  cr_assert_eq(takes(&b, T0 + 500, 100), 40);
  for (int i = 0; i < 5; i++)
    retrybudget_request(&b, T0 + 600);
  cr_assert_eq(takes(&b, T0 + 700, 10), 1, "205 requests: 41 retries");
}

Test(retrybudget, window_slides_one_second_at_a_time) {
  struct retrybudget b;
  retrybudget_init(&b, 50);
  /* 100 requests and 50 retries in second 0 of the window */
  for (int i = 0; i < 100; i++)
    retrybudget_request(&b, T0);
  cr_assert_eq(takes(&b, T0 + 999, 80), 50);
  uint64_t req, ret;
  /* seconds 1..9 later: still inside, nothing more allowed */
  for (uint64_t s = 1; s < RETRYBUDGET_SLOTS; s++) {
    retrybudget_window(&b, T0 + s * 1000, &req, &ret);
    cr_assert_eq(req, 100, "second %llu", (unsigned long long)s);
    cr_assert_eq(ret, 50);
    cr_assert_not(retrybudget_take(&b, T0 + s * 1000 + 500));
  }
  /* 10 s later the first second has left the window */
  retrybudget_window(&b, T0 + RETRYBUDGET_SLOTS * 1000, &req, &ret);
  cr_assert_eq(req, 0);
  cr_assert_eq(ret, 0);
  cr_assert_eq(takes(&b, T0 + RETRYBUDGET_SLOTS * 1000, 20), RETRYBUDGET_MIN_RETRIES);
}

Test(retrybudget, ring_slot_of_an_old_turn_starts_over) {
  struct retrybudget b;
  retrybudget_init(&b, 20);
  for (int i = 0; i < 30; i++)
    retrybudget_request(&b, T0);
  /* second T0+3 and T0+13 share a slot: the new second does not add to
   * the old count, and the old one has left the window */
  for (int i = 0; i < 7; i++)
    retrybudget_request(&b, T0 + 3000);
  uint64_t req, ret;
  retrybudget_window(&b, T0 + 12999, &req, &ret);
  cr_assert_eq(req, 7, "at second 12: second 3 is the window's oldest, second 0 is out");
  retrybudget_request(&b, T0 + 13000);
  retrybudget_window(&b, T0 + 13000, &req, &ret);
  cr_assert_eq(req, 1, "second 13 took second 3's slot and started it over");
}

Test(retrybudget, refund_gives_a_place_back) {
  struct retrybudget b;
  retrybudget_init(&b, 20);
  cr_assert_eq(takes(&b, T0, 20), RETRYBUDGET_MIN_RETRIES);
  retrybudget_refund(&b, T0);
  cr_assert(retrybudget_take(&b, T0));
  cr_assert_not(retrybudget_take(&b, T0));
  /* a refund for a second that left the ring's slot changes nothing */
  retrybudget_refund(&b, T0 - 10000);
  uint64_t req, ret;
  retrybudget_window(&b, T0, &req, &ret);
  cr_assert_eq(ret, RETRYBUDGET_MIN_RETRIES);
}

struct racer {
  struct retrybudget *b;
  unsigned granted;
};

static void *race(void *arg) {
  struct racer *r = arg;
  for (int i = 0; i < 1000; i++) {
    retrybudget_request(r->b, T0 + 10);
    r->granted += retrybudget_take(r->b, T0 + 10);
  }
  return NULL;
}

Test(retrybudget, threads_never_exceed_the_budget) {
  struct retrybudget b;
  retrybudget_init(&b, 10);
  struct racer r[4] = {{&b, 0}, {&b, 0}, {&b, 0}, {&b, 0}};
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, race, &r[i]);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  uint64_t req, ret;
  retrybudget_window(&b, T0 + 10, &req, &ret);
  cr_assert_eq(req, 4000, "no request lost");
  unsigned granted = r[0].granted + r[1].granted + r[2].granted + r[3].granted;
  cr_assert_eq(ret, granted, "what was granted is what is counted");
  cr_assert_leq(granted, 400, "10%% of 4000");
  cr_assert_geq(granted, 300, "refusals from races stay rare");
}
