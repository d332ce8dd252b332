/* retrybudget: the sliding window of a route's requests and retries
 * (include/ferry/retrybudget.h). Owns the ring of atomic slot words and
 * the budget arithmetic; must not read a clock, allocate or lock. */
#include "ferry/retrybudget.h"

#define SEC(w) ((uint32_t)((w) >> 32))
#define CNT(w) ((uint32_t)(w))

void retrybudget_init(struct retrybudget *b, uint32_t percent) {
  b->percent = percent > 100 ? 100 : percent;
  for (unsigned i = 0; i < RETRYBUDGET_SLOTS; i++) {
    atomic_init(&b->requests[i], 0);
    atomic_init(&b->retries[i], 0);
  }
}

/* Add delta (+1 or -1) to the count of second sec in *slot, starting it
 * over when it still holds an older second. A -1 on a slot that moved on
 * (or holds 0) does nothing. */
static void slot_add(_Atomic uint64_t *slot, uint32_t sec, int delta) {
  uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
  for (;;) {
    uint64_t next;
    if (SEC(old) == sec && (delta > 0 || CNT(old) > 0))
      next = delta > 0 ? old + 1 : old - 1;
    else if (delta > 0 && SEC(old) != sec)
      next = (uint64_t)sec << 32 | 1u;
    else
      return;
    if (atomic_compare_exchange_weak_explicit(slot, &old, next, memory_order_relaxed,
                                              memory_order_relaxed))
      return;
  }
}

static uint64_t window_sum(_Atomic uint64_t *slots, uint32_t sec) {
  uint64_t sum = 0;
  for (unsigned i = 0; i < RETRYBUDGET_SLOTS; i++) {
    uint64_t w = atomic_load_explicit(&slots[i], memory_order_relaxed);
    if ((uint32_t)(sec - SEC(w)) < RETRYBUDGET_SLOTS)
      sum += CNT(w);
  }
  return sum;
}

void retrybudget_request(struct retrybudget *b, uint64_t now_ms) {
  uint32_t sec = (uint32_t)(now_ms / 1000);
  slot_add(&b->requests[sec % RETRYBUDGET_SLOTS], sec, 1);
}

uint64_t retrybudget_allowed(uint32_t percent, uint64_t requests) {
  if (percent == 0)
    return 0;
  uint64_t share = requests * percent / 100;
  return share > RETRYBUDGET_MIN_RETRIES ? share : RETRYBUDGET_MIN_RETRIES;
}

bool retrybudget_take(struct retrybudget *b, uint64_t now_ms) {
  uint32_t sec = (uint32_t)(now_ms / 1000);
  if (b->percent == 0)
    return false;
  slot_add(&b->retries[sec % RETRYBUDGET_SLOTS], sec, 1);
  uint64_t req = window_sum(b->requests, sec), ret = window_sum(b->retries, sec);
  if (ret <= retrybudget_allowed(b->percent, req))
    return true;
  slot_add(&b->retries[sec % RETRYBUDGET_SLOTS], sec, -1);
  return false;
}

void retrybudget_refund(struct retrybudget *b, uint64_t now_ms) {
  uint32_t sec = (uint32_t)(now_ms / 1000);
  slot_add(&b->retries[sec % RETRYBUDGET_SLOTS], sec, -1);
}

void retrybudget_window(struct retrybudget *b, uint64_t now_ms, uint64_t *requests,
                        uint64_t *retries) {
  uint32_t sec = (uint32_t)(now_ms / 1000);
  *requests = window_sum(b->requests, sec);
  *retries = window_sum(b->retries, sec);
}
