/* Balancers: distributions over many picks, and consistent hashing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ferry/balance.h"

static void peers(struct balance_peer *p, size_t n, const uint32_t *weights) {
  memset(p, 0, n * sizeof(*p));
  for (size_t i = 0; i < n; i++) {
    p[i].weight = weights ? weights[i] : 1;
    p[i].usable = true;
  }
}

Test(balance, round_robin_weight_3_gets_3_of_4_interleaved) {
  struct balance_peer p[2];
  uint32_t w[] = {3, 1};
  peers(p, 2, w);
  int seq[8];
  for (int i = 0; i < 8; i++)
    seq[i] = balance_round_robin(p, 2);
  /* nginx's smooth sequence for {3, 1}: a a b a, repeated */
  int want[8] = {0, 0, 1, 0, 0, 0, 1, 0};
  for (int i = 0; i < 8; i++)
    cr_assert_eq(seq[i], want[i], "pick %d: got %d want %d", i, seq[i], want[i]);
  int count[2] = {0, 0};
  for (int i = 0; i < 40000; i++)
    count[balance_round_robin(p, 2)]++;
  cr_assert_eq(count[0], 30000);
  cr_assert_eq(count[1], 10000);
}

Test(balance, round_robin_never_bursts_the_heavy_server) {
  struct balance_peer p[3];
  uint32_t w[] = {5, 1, 1};
  peers(p, 3, w);
  /* 5 of 7 picks go to a, spread out: a a b a c a a (never a x5 burst) */
  int want[7] = {0, 0, 1, 0, 2, 0, 0};
  for (int round = 0; round < 100; round++)
    for (int i = 0; i < 7; i++)
      cr_assert_eq(balance_round_robin(p, 3), want[i], "round %d pick %d", round, i);
}

Test(balance, round_robin_skips_unusable_and_reports_none) {
  struct balance_peer p[3];
  peers(p, 3, NULL);
  p[1].usable = false;
  int count[3] = {0};
  for (int i = 0; i < 1000; i++)
    count[balance_round_robin(p, 3)]++;
  cr_assert_eq(count[1], 0);
  cr_assert_eq(count[0], 500);
  cr_assert_eq(count[2], 500);
  p[0].usable = p[2].usable = false;
  cr_assert_eq(balance_round_robin(p, 3), -1);
}

Test(balance, least_conn_picks_fewest_in_flight) {
  struct balance_peer p[3];
  peers(p, 3, NULL);
  p[0].load = 5;
  p[1].load = 2;
  p[2].load = 7;
  for (int i = 0; i < 10; i++)
    cr_assert_eq(balance_least_conn(p, 3), 1);
  p[1].usable = false;
  cr_assert_eq(balance_least_conn(p, 3), 0);
}

Test(balance, least_conn_respects_weights) {
  /* Simulate: each pick adds one in-flight request; requests never finish.
   * In-flight counts must end up proportional to weight. */
  struct balance_peer p[3];
  uint32_t w[] = {1, 2, 5};
  peers(p, 3, w);
  for (int i = 0; i < 8000; i++)
    p[balance_least_conn(p, 3)].load++;
  fprintf(stderr, "least_conn weights 1:2:5 after 8000 picks: %u %u %u\n", p[0].load, p[1].load,
          p[2].load);
  cr_assert_eq(p[0].load, 1000);
  cr_assert_eq(p[1].load, 2000);
  cr_assert_eq(p[2].load, 5000);
}

Test(balance, least_conn_idle_pool_follows_weights) {
  struct balance_peer p[2];
  uint32_t w[] = {3, 1};
  peers(p, 2, w);
  int count[2] = {0, 0};
  for (int i = 0; i < 4000; i++)
    count[balance_least_conn(p, 2)]++; /* load stays 0: all tied */
  cr_assert_eq(count[0], 3000);
  cr_assert_eq(count[1], 1000);
}

Test(balance, random2_prefers_less_loaded_and_spreads) {
  struct balance_peer p[4];
  peers(p, 4, NULL);
  uint64_t rng = 12345;
  /* Requests that never finish: power of two choices keeps loads close. */
  for (int i = 0; i < 40000; i++)
    p[balance_random2(p, 4, &rng)].load++;
  uint32_t lo = p[0].load, hi = p[0].load;
  for (int i = 1; i < 4; i++) {
    lo = p[i].load < lo ? p[i].load : lo;
    hi = p[i].load > hi ? p[i].load : hi;
  }
  fprintf(stderr, "random2 4 peers, 40000 picks, in flight: %u %u %u %u\n", p[0].load, p[1].load,
          p[2].load, p[3].load);
  cr_assert_leq(hi - lo, 40, "spread %u..%u", lo, hi);

  /* With equal load, picks are random but fair: each near 1/4. */
  peers(p, 4, NULL);
  int count[4] = {0};
  for (int i = 0; i < 40000; i++)
    count[balance_random2(p, 4, &rng)]++;
  for (int i = 0; i < 4; i++)
    cr_assert(count[i] > 9000 && count[i] < 11000, "peer %d: %d", i, count[i]);

  /* A heavily loaded peer is (almost) never chosen when others are idle. */
  peers(p, 4, NULL);
  p[2].load = 100;
  int c2 = 0;
  for (int i = 0; i < 10000; i++)
    c2 += balance_random2(p, 4, &rng) == 2;
  cr_assert_eq(c2, 0);

  peers(p, 1, NULL);
  cr_assert_eq(balance_random2(p, 1, &rng), 0);
  p[0].usable = false;
  cr_assert_eq(balance_random2(p, 1, &rng), -1);
}

Test(balance, random2_respects_weights) {
  struct balance_peer p[2];
  uint32_t w[] = {3, 1};
  peers(p, 2, w);
  uint64_t rng = 99;
  for (int i = 0; i < 40000; i++)
    p[balance_random2(p, 2, &rng)].load++;
  /* load/weight equalises: 30000 vs 10000 (within the last few picks) */
  cr_assert(p[0].load >= 29990 && p[0].load <= 30010, "%u %u", p[0].load, p[1].load);
}

#define NSRV 10
#define NKEYS 100000

static void ring_of(struct balance_ring *r, int skip) {
  static char names[NSRV][32];
  const char *np[NSRV];
  uint32_t w[NSRV];
  for (int i = 0; i < NSRV; i++) {
    snprintf(names[i], sizeof(names[i]), "10.0.0.%d:8080", i + 1);
    np[i] = i == skip ? NULL : names[i];
    w[i] = 1;
  }
  cr_assert_eq(balance_ring_build(r, np, w, NSRV), 0);
}

static uint64_t key_hash(int k) {
  char key[32];
  int n = snprintf(key, sizeof(key), "192.168.%d.%d", (k >> 8) & 0xff, k & 0xff);
  n += snprintf(key + n, sizeof(key) - (size_t)n, "/%d", k >> 16);
  return balance_hash(key, (size_t)n);
}

Test(balance, hash_ring_distribution_over_100000_keys) {
  struct balance_ring r = {0};
  ring_of(&r, -1);
  struct balance_peer p[NSRV];
  peers(p, NSRV, NULL);
  int count[NSRV] = {0};
  for (int k = 0; k < NKEYS; k++)
    count[balance_ring_pick(&r, p, NSRV, key_hash(k))]++;
  int lo = NKEYS, hi = 0;
  for (int i = 0; i < NSRV; i++) {
    lo = count[i] < lo ? count[i] : lo;
    hi = count[i] > hi ? count[i] : hi;
  }
  fprintf(stderr, "hash ring: 10 servers, 100000 keys: fewest %d, most %d per server\n", lo, hi);
  /* ideal 10000 each; 160 points per server keeps it within +-25% */
  cr_assert(lo > 7500 && hi < 12500, "fewest %d most %d", lo, hi);
  balance_ring_free(&r);
}

Test(balance, hash_removing_one_of_ten_remaps_about_a_tenth) {
  struct balance_ring full = {0}, less = {0};
  ring_of(&full, -1);
  struct balance_peer p[NSRV];
  peers(p, NSRV, NULL);
  int worst = 0;
  for (int gone = 0; gone < NSRV; gone++) {
    ring_of(&less, gone);
    int moved = 0, moved_marked = 0, on_removed = 0;
    for (int k = 0; k < NKEYS; k++) {
      uint64_t h = key_hash(k);
      int a = balance_ring_pick(&full, p, NSRV, h);
      int b = balance_ring_pick(&less, p, NSRV, h);
      cr_assert_neq(b, gone);
      on_removed += a == gone;
      moved += a != b;
      /* keys of servers still present never move */
      if (a != gone)
        cr_assert_eq(a, b, "key %d moved from %d to %d", k, a, b);
      /* marking the server unusable (down, ejected) is the same as removing it */
      p[gone].usable = false;
      moved_marked += balance_ring_pick(&full, p, NSRV, h) != a;
      p[gone].usable = true;
    }
    cr_assert_eq(moved, on_removed);
    cr_assert_eq(moved_marked, on_removed);
    cr_assert_leq(moved, NKEYS / 10 + NKEYS / 40, "removing %d moved %d", gone, moved); /* +2.5% */
    if (gone == 3)
      fprintf(stderr, "hash ring: removing server 3 of 10 remapped %d of %d keys (%.2f%%)\n", moved,
              NKEYS, 100.0 * moved / NKEYS);
    worst = moved > worst ? moved : worst;
  }
  fprintf(stderr,
          "hash ring: removing any 1 of 10 servers remapped at most %d of %d keys (%.2f%%)\n",
          worst, NKEYS, 100.0 * worst / NKEYS);
  balance_ring_free(&full);
  balance_ring_free(&less);
}

Test(balance, hash_same_key_same_server_and_weights) {
  struct balance_ring r = {0};
  const char *names[] = {"a:1", "b:1"};
  uint32_t w[] = {3, 1};
  cr_assert_eq(balance_ring_build(&r, names, w, 2), 0);
  cr_assert_eq(r.n, 4 * BALANCE_RING_VNODES);
  struct balance_peer p[2];
  peers(p, 2, w);
  int count[2] = {0};
  for (int k = 0; k < NKEYS; k++) {
    uint64_t h = key_hash(k);
    int a = balance_ring_pick(&r, p, 2, h);
    cr_assert_eq(balance_ring_pick(&r, p, 2, h), a);
    count[a]++;
  }
  fprintf(stderr, "hash ring weights 3:1 over 100000 keys: %d %d\n", count[0], count[1]);
  cr_assert(count[0] > 70000 && count[0] < 80000, "%d", count[0]);
  p[0].usable = p[1].usable = false;
  cr_assert_eq(balance_ring_pick(&r, p, 2, 42), -1);
  balance_ring_free(&r);
  cr_assert_eq(balance_ring_pick(&r, p, 2, 42), -1);
}

Test(balance, cookie_value) {
  struct slice v;
  struct slice h = SLICE_LIT("a=1; session=abc123 ;theme=\"dark\"");
  cr_assert(balance_cookie(h, SLICE_LIT("session"), &v));
  cr_assert_eq(v.n, 6);
  cr_assert_eq(memcmp(v.p, "abc123", 6), 0);
  cr_assert(balance_cookie(h, SLICE_LIT("theme"), &v));
  cr_assert_eq(v.n, 4);
  cr_assert_eq(memcmp(v.p, "dark", 4), 0);
  cr_assert(balance_cookie(h, SLICE_LIT("a"), &v));
  cr_assert_eq(v.n, 1);
  cr_assert(!balance_cookie(h, SLICE_LIT("sess"), &v));
  cr_assert(!balance_cookie(SLICE_LIT(""), SLICE_LIT("a"), &v));
  cr_assert(!balance_cookie(SLICE_LIT("novalue"), SLICE_LIT("novalue"), &v));
}
