/* balance: the balancing algorithms as pure functions over an array of
 * peers. No sockets, no threads, no allocation except the hash ring.
 *
 * The caller (upstream) fills one balance_peer per server before a pick:
 * its weight, its current load (requests in flight across the process) and
 * whether it may take a request (present, healthy, not ejected, not
 * already tried by this request). `current` is the smooth weighted round
 * robin state and must be kept between picks. Every pick returns the index
 * of the chosen peer, or -1 when no peer is usable. */
#ifndef FERRY_BALANCE_H
#define FERRY_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/slice.h"

struct balance_peer {
  uint32_t weight; /* >= 1 (0 is treated as 1) */
  uint32_t load;   /* requests in flight */
  bool usable;
  int64_t current; /* smooth weighted round robin state (caller keeps it) */
};

/* Smooth weighted round robin (nginx's algorithm): every usable peer's
 * current grows by its weight, the largest wins and loses the total. A
 * weight-3 peer next to a weight-1 peer gets 3 of every 4 picks,
 * interleaved (a, a, b, a), not in a burst. */
int balance_round_robin(struct balance_peer *p, size_t n);

/* Fewest requests in flight relative to weight (load/weight, compared
 * exactly); ties are broken by smooth weighted round robin among the tied
 * peers, so an idle pool still follows the weights. */
int balance_least_conn(struct balance_peer *p, size_t n);

/* Power of two choices: two distinct usable peers drawn at random (each
 * with probability proportional to its weight), the less loaded relative
 * to weight wins. rng is the caller's xorshift state (any non-zero seed). */
int balance_random2(const struct balance_peer *p, size_t n, uint64_t *rng);

/* A consistent hash ring: each peer gets weight * BALANCE_RING_VNODES
 * points, placed by hashing "NAME#i", so the ring depends only on the peer
 * names and weights (every worker builds the same one). Removing a peer
 * moves only the keys that pointed at it. */
#define BALANCE_RING_VNODES 160u

struct balance_ring_point {
  uint64_t hash;
  uint32_t peer;
};

struct balance_ring {
  struct balance_ring_point *pts;
  size_t n;
};

/* Build over peers 0..n-1 named names[i] with weights[i]; names[i] == NULL
 * leaves peer i out of the ring. Returns 0 or -1 on out of memory (r is
 * then empty). Frees what r held before. */
int balance_ring_build(struct balance_ring *r, const char *const *names, const uint32_t *weights,
                       size_t n);
void balance_ring_free(struct balance_ring *r);

/* The first usable peer clockwise from key_hash; -1 if none. */
int balance_ring_pick(const struct balance_ring *r, const struct balance_peer *p, size_t n,
                      uint64_t key_hash);

/* 64-bit hash of bytes (FNV-1a, then a splitmix64 finalizer so nearby keys
 * spread over the whole ring). */
uint64_t balance_hash(const void *data, size_t len);

/* Next value of a xorshift64* generator (state must be non-zero). */
uint64_t balance_rand(uint64_t *state);

/* The value of cookie `name` in a Cookie header value ("a=1; b=2").
 * Returns true and sets *value (a slice into header) when present. */
bool balance_cookie(struct slice header, struct slice name, struct slice *value);

#endif
