/* traffic: the split order (smooth weighted round robin), the GCRA token
 * bucket, the bounded bucket table and the allow/deny + rate verdicts. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/traffic.h"

static void order_of(const uint32_t *w, size_t n, char *out) {
  uint8_t o[4096];
  uint32_t len = traffic_swrr_order(w, n, o);
  for (uint32_t i = 0; i < len; i++)
    out[i] = (char)('a' + o[i]);
  out[len] = '\0';
}

Test(traffic, split_90_10_is_9_then_1_per_period) {
  char s[4096];
  order_of((uint32_t[]){90, 10}, 2, s);
  cr_assert_str_eq(s, "aaaaabaaaa"); /* divided by the gcd: 9/1, the canary mid-period */
  order_of((uint32_t[]){50, 50}, 2, s);
  cr_assert_str_eq(s, "ab");
  order_of((uint32_t[]){100}, 1, s);
  cr_assert_str_eq(s, "a");
  order_of((uint32_t[]){5, 1, 1}, 3, s);
  cr_assert_str_eq(s, "aabacaa"); /* smooth: never 5 a's in a row */
}

Test(traffic, split_order_counts_match_weights) {
  uint32_t w[3] = {7, 3, 999};
  uint8_t *o = malloc(2000);
  uint32_t len = traffic_swrr_order(w, 3, o), c[3] = {0};
  cr_assert_eq(len, 1009);
  for (uint32_t i = 0; i < len; i++)
    c[o[i]]++;
  cr_assert_eq(c[0], 7);
  cr_assert_eq(c[1], 3);
  cr_assert_eq(c[2], 999);
  free(o);
}

Test(traffic, gcra_burst_then_one_per_interval) {
  uint64_t tat = 0, wait = 0, now = 1000000;
  /* 3 tokens, one per 100 ms */
  for (int i = 0; i < 3; i++)
    cr_assert(traffic_gcra(&tat, now, 100000, 300000, &wait), "token %d", i);
  cr_assert_not(traffic_gcra(&tat, now, 100000, 300000, &wait));
  cr_assert_eq(wait, 100000);
  cr_assert_not(traffic_gcra(&tat, now + 99999, 100000, 300000, &wait));
  cr_assert_eq(wait, 1);
  cr_assert(traffic_gcra(&tat, now + 100000, 100000, 300000, &wait));
  /* idle for long: full again, never more than the burst */
  now += 10000000;
  for (int i = 0; i < 3; i++)
    cr_assert(traffic_gcra(&tat, now, 100000, 300000, &wait));
  cr_assert_not(traffic_gcra(&tat, now, 100000, 300000, &wait));
}

static struct traffic_route bucket_route(uint32_t nbuckets) {
  struct traffic_route tr;
  memset(&tr, 0, sizeof tr);
  tr.interval_us = 1000000; /* one per second */
  tr.window_us = 2000000;   /* burst 2 */
  tr.nbuckets = nbuckets;
  tr.buckets = calloc(nbuckets, sizeof *tr.buckets);
  return tr;
}

Test(traffic, rate_take_per_key_with_retry_after) {
  struct traffic_route tr = bucket_route(TRAFFIC_RL_SLOTS);
  uint32_t ra = 0;
  uint64_t k1 = traffic_hash(slice_cstr("10.0.0.1")), k2 = traffic_hash(slice_cstr("10.0.0.2"));
  uint64_t now = 5000000;
  cr_assert(traffic_rate_take(&tr, k1, now, &ra));
  cr_assert(traffic_rate_take(&tr, k1, now, &ra));
  cr_assert_not(traffic_rate_take(&tr, k1, now, &ra));
  cr_assert_eq(ra, 1);
  cr_assert(traffic_rate_take(&tr, k2, now, &ra), "another key has its own bucket");
  cr_assert_eq(atomic_load(&tr.limited), 1);
  free(tr.buckets);
}

Test(traffic, bucket_table_is_bounded_and_forgets_full_buckets_first) {
  struct traffic_route tr = bucket_route(TRAFFIC_RL_SLOTS);
  uint32_t ra;
  uint64_t now = 5000000;
  /* many more keys than slots, each used once and then idle */
  for (uint32_t i = 0; i < 10 * TRAFFIC_RL_SLOTS; i++)
    cr_assert(traffic_rate_take(&tr, traffic_hash(slice_make((char *)&i, sizeof i)), now, &ra));
  cr_assert_gt(atomic_load(&tr.evictions), 0, "10x more active keys than slots evict");
  uint64_t before = atomic_load(&tr.evictions);
  /* Later, every bucket is full again: a new key takes a slot without
   * evicting anything that matters, and keeps its own bucket. */
  for (uint32_t i = 0; i < 1000; i++) {
    uint32_t k = 0x10000000u + i;
    uint64_t key = traffic_hash(slice_make((char *)&k, sizeof k));
    now += 3000000; /* longer than the 2 s window */
    cr_assert(traffic_rate_take(&tr, key, now, &ra));
    cr_assert(traffic_rate_take(&tr, key, now, &ra));
    cr_assert_not(traffic_rate_take(&tr, key, now, &ra), "key %u kept its bucket", i);
  }
  cr_assert_eq(atomic_load(&tr.evictions), before, "full buckets are forgotten silently");
  free(tr.buckets);
}

static const struct traffic_client *client(const char *text) {
  static struct traffic_client c;
  memset(&c, 0, sizeof c);
  c.text = slice_cstr(text);
  c.ok = cidr_parse_ip(c.text.p, c.text.n, c.addr, &c.v6);
  return &c;
}

Test(traffic, admit_deny_first_then_allow_then_rate) {
  struct cfg_route r;
  memset(&r, 0, sizeof r);
  struct cidr allow[1], deny[1];
  char err[128];
  cr_assert_eq(cidr_parse("10.0.0.0/8", &allow[0], err, sizeof err), 0);
  cr_assert_eq(cidr_parse("10.1.0.0/16", &deny[0], err, sizeof err), 0);
  r.allow = allow;
  r.nallow = 1;
  r.deny = deny;
  r.ndeny = 1;
  struct traffic_route tr = bucket_route(1);
  r.rate_limit.enabled = true;
  r.rate_limit.key = RATE_KEY_ROUTE;
  struct hdr store[1];
  struct hdr_list h = {.v = store, .cap = 1};
  uint32_t ra;
  cr_assert_eq(traffic_admit(&tr, &r, client("10.1.2.3"), &h, 0, &ra), TRAFFIC_FORBIDDEN);
  cr_assert_eq(traffic_admit(&tr, &r, client("192.0.2.1"), &h, 0, &ra), TRAFFIC_FORBIDDEN);
  cr_assert_eq(traffic_admit(&tr, &r, client("not-an-ip"), &h, 0, &ra), TRAFFIC_FORBIDDEN);
  cr_assert_eq(traffic_admit(&tr, &r, client("::ffff:10.1.0.9"), &h, 0, &ra), TRAFFIC_FORBIDDEN);
  cr_assert_eq(traffic_admit(&tr, &r, client("10.2.0.1"), &h, 0, &ra), TRAFFIC_PASS);
  cr_assert_eq(traffic_admit(&tr, &r, client("10.2.0.1"), &h, 0, &ra), TRAFFIC_PASS);
  cr_assert_eq(traffic_admit(&tr, &r, client("10.2.0.2"), &h, 0, &ra), TRAFFIC_LIMITED);
  cr_assert_eq(atomic_load(&tr.forbidden), 4);
  free(tr.buckets);
}

/* mirror percent: exactly `percent` of every 100 requests in a row,
 * spread evenly rather than bunched at the start of the period. */
Test(traffic, mirror_sampling_takes_percent_of_every_100_spread_evenly) {
  for (uint32_t pct = 0; pct <= 100; pct++) {
    struct traffic_route tr;
    memset(&tr, 0, sizeof tr);
    uint32_t taken = 0, longest_gap = 0, gap = 0;
    for (int i = 0; i < 300; i++) {
      if (traffic_mirror_next(&tr, pct)) {
        taken++;
        gap = 0;
      } else if (++gap > longest_gap) {
        longest_gap = gap;
      }
    }
    cr_assert_eq(taken, 3 * pct, "percent %u: %u of 300", pct, taken);
    if (pct > 0)
      cr_assert_leq(longest_gap, 100 / pct, "percent %u: %u requests in a row not copied", pct,
                    longest_gap);
  }
  struct traffic_route tr;
  memset(&tr, 0, sizeof tr);
  char seq[11] = {0};
  for (int i = 0; i < 10; i++)
    seq[i] = traffic_mirror_next(&tr, 20) ? 'm' : '.';
  cr_assert_str_eq(seq, "....m....m");
}
