/* retrybudget: how many retries a route may add (SPEC §8 `retry.budget`),
 * over a sliding window of its recent requests, shared by every worker
 * without a lock.
 *
 * The window is RETRYBUDGET_SLOTS one-second slots in a ring. Each slot is
 * two 64-bit atomic words, requests and retries, each holding the second
 * it counts (high 32 bits) and its count (low 32 bits): counting is one
 * compare-and-swap that either adds one to the current second's count or
 * starts the slot over for a new second, so a slot left from an earlier
 * turn of the ring is never mixed in. Reading the window sums the slots
 * whose second is within the last RETRYBUDGET_SLOTS seconds (the current,
 * partial one included).
 *
 * A retry is allowed while the window's retries stay within budget percent
 * of its requests, or within RETRYBUDGET_MIN_RETRIES whatever the traffic
 * (so a quiet route can still retry a failure; with budget 0 nothing is
 * retried). It takes its place first and then checks, giving it back when
 * over: workers deciding at the same instant may refuse one retry too many
 * but never allow one too many.
 *
 * Owns nothing but its words; no clock of its own (callers pass the time,
 * tests inject it), no allocation, no lock. */
#ifndef FERRY_RETRYBUDGET_H
#define FERRY_RETRYBUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RETRYBUDGET_SLOTS 10u       /* seconds in the window */
#define RETRYBUDGET_MIN_RETRIES 10u /* retries per window allowed at any traffic (budget > 0) */

struct retrybudget {
  uint32_t percent; /* 0..100 */
  _Atomic uint64_t requests[RETRYBUDGET_SLOTS];
  _Atomic uint64_t retries[RETRYBUDGET_SLOTS];
};

void retrybudget_init(struct retrybudget *b, uint32_t percent);
/* One request of the route at now_ms (any monotonic clock in ms). */
void retrybudget_request(struct retrybudget *b, uint64_t now_ms);
/* May one more retry go out at now_ms? True: it is counted. False: the
 * budget is spent, nothing counted. */
bool retrybudget_take(struct retrybudget *b, uint64_t now_ms);
/* Give back a retry taken at now_ms that did not happen (no server left). */
void retrybudget_refund(struct retrybudget *b, uint64_t now_ms);
/* The window's requests and retries at now_ms. */
void retrybudget_window(struct retrybudget *b, uint64_t now_ms, uint64_t *requests,
                        uint64_t *retries);
/* Retries the window allows for `requests` requests. Pure. */
uint64_t retrybudget_allowed(uint32_t percent, uint64_t requests);

#endif
