/* traffic: process-wide state of the routes' traffic control (SPEC §8):
 * the weighted split's order, the rate-limit buckets, the retry budget
 * windows and the counters of what they refused. One struct traffic per
 * configuration snapshot, built from the configuration before workers see
 * it and shared by every worker without a lock: the split advances one
 * atomic counter, a retry budget slot is one compare-and-swap, a rate-limit
 * bucket is one atomic word changed by compare-and-swap.
 *
 * Rate limits use the token bucket in its "theoretical arrival time" form
 * (GCRA): a bucket is the time at which it would be full again, so taking
 * a token is one compare-and-swap of one 64-bit word. Buckets per key live
 * in a fixed table per route (TRAFFIC_RL_SLOTS slots of 16 bytes, two
 * candidate slots per key): memory is bounded whatever the number of keys.
 * A key takes a slot whose bucket is full again (forgetting a full bucket
 * loses nothing); only when both candidates hold buckets still refilling
 * does it take the one that refills first, which lets that older key start
 * over with a full bucket (counted in evictions). */
#ifndef FERRY_TRAFFIC_H
#define FERRY_TRAFFIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/retrybudget.h"
#include "ferry/slice.h"

struct hdr_list;

struct config;
struct cfg_route;
struct cfg_rate_limit;

#define TRAFFIC_RL_SLOTS 4096u /* per route with a per-key rate_limit: 64 KiB */

struct traffic_bucket {
  _Atomic uint64_t key; /* hash of the key, 0 = free */
  _Atomic uint64_t tat; /* µs: when the bucket is full again */
};

struct traffic_route {
  /* split: one period of the smooth weighted round robin over the
   * route's split indices; requests take it in turn */
  uint8_t *order;
  uint32_t norder;
  _Atomic uint64_t next;
  /* mirror: requests of the route seen so far (the sampling counter) */
  _Atomic uint64_t mirror_seq;
  /* rate_limit */
  uint64_t interval_us; /* one token refills in this */
  uint64_t window_us;   /* burst * interval: how far ahead tat may run */
  struct traffic_bucket *buckets;
  uint32_t nbuckets; /* 1 (key: route) or TRAFFIC_RL_SLOTS */
  _Atomic uint64_t limited;
  _Atomic uint64_t forbidden; /* allow/deny refusals */
  _Atomic uint64_t evictions;
  /* retry: the route's budget window (src/retrybudget.c) */
  struct retrybudget retry_budget;
};

struct traffic {
  struct traffic_route *routes; /* one per cfg->routes[] */
  size_t nroutes;
};

/* Built for cfg (NULL on out of memory); freed by traffic_free. */
struct traffic *traffic_new(const struct config *cfg);
void traffic_free(struct traffic *t);

/* One period of smooth weighted round robin over weights[0..n) (each
 * 1..1000, n <= 255), divided by their greatest common divisor: writes
 * the pick order into out (room for the sum of the weights) and returns
 * its length. 90/10 -> 9 picks of 0 and one of 1, spread. Pure. */
uint32_t traffic_swrr_order(const uint32_t *weights, size_t n, uint8_t *out);

/* Whether the route's next request is copied to its mirror: of every
 * 100 requests in a row, `percent`, spread evenly (the k-th request is
 * when floor(k * percent / 100) steps up), in one order shared by every
 * worker. */
static inline bool traffic_mirror_next(struct traffic_route *tr, uint32_t percent) {
  uint64_t k = atomic_fetch_add_explicit(&tr->mirror_seq, 1, memory_order_relaxed) % 100;
  return (k + 1) * percent / 100 > k * percent / 100;
}

/* The split index for the next request of the route. */
static inline size_t traffic_split_next(struct traffic_route *tr) {
  uint64_t i = atomic_fetch_add_explicit(&tr->next, 1, memory_order_relaxed);
  return tr->order[i % tr->norder];
}

/* One token-bucket step (GCRA) on *tat at time now_us: true and *tat
 * advanced when a token was there; false and *wait_us set to when one
 * will be. Pure. */
bool traffic_gcra(uint64_t *tat, uint64_t now_us, uint64_t interval_us, uint64_t window_us,
                  uint64_t *wait_us);

/* Take a token for key (hash; any value) at now_us from the route's
 * buckets. False: refused, *retry_after_s = whole seconds to wait (>= 1). */
bool traffic_rate_take(struct traffic_route *tr, uint64_t key, uint64_t now_us,
                       uint32_t *retry_after_s);

/* The hash of a rate-limit key's text (FNV-1a; never 0, which marks a
 * free slot). */
uint64_t traffic_hash(struct slice s);

/* The client address a route's checks see: binary when known (ok), and
 * as text (for a rate key when it is not). */
struct traffic_client {
  uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
  bool v6, ok;      /* ok false: not an IP address (matches no range) */
  struct slice text;
};

/* The route's request checks, cheapest first: deny/allow on the client
 * address (one that is not an IP address matches no range, so an allow
 * list refuses it), then the rate limit. */
enum traffic_verdict { TRAFFIC_PASS, TRAFFIC_FORBIDDEN, TRAFFIC_LIMITED };
enum traffic_verdict traffic_admit(struct traffic_route *tr, const struct cfg_route *r,
                                   const struct traffic_client *c, const struct hdr_list *hdrs,
                                   uint64_t now_us, uint32_t *retry_after_s);

#endif
