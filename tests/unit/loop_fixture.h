/* loop_fixture: a uv loop with its buffer pool (loop.data, as streams
 * expect) and a guard timer for tests that wait for loop events.
 *
 * LOOP_WAIT runs the loop until a condition holds, at most a bounded time:
 * the guard timer wakes the loop, so an event that never comes fails the
 * assertion instead of hanging the test. loop_fixture_finish closes the
 * guard, runs the loop dry and asserts that no handle was left behind and
 * that every read block went back to the pool. */
#ifndef FERRY_TEST_LOOP_FIXTURE_H
#define FERRY_TEST_LOOP_FIXTURE_H

#include <criterion/criterion.h>
#include <uv.h>

#include "ferry/buf.h"

#define LOOP_WAIT_MS 5000u

struct loop_fixture {
  uv_loop_t loop;
  struct bufpool pool;
  uv_timer_t guard;
};

static void loop_fixture_guard_cb(uv_timer_t *t) {
  (void)t; /* only wakes the loop */
}

static inline void loop_fixture_init(struct loop_fixture *fx) {
  bufpool_init(&fx->pool);
  cr_assert_eq(uv_loop_init(&fx->loop), 0);
  fx->loop.data = &fx->pool;
  uv_timer_init(&fx->loop, &fx->guard);
}

#define LOOP_WAIT(fx, cond)                                                                        \
  do {                                                                                             \
    uv_update_time(&(fx)->loop);                                                                   \
    uint64_t end_ = uv_now(&(fx)->loop) + LOOP_WAIT_MS;                                            \
    uv_timer_start(&(fx)->guard, loop_fixture_guard_cb, LOOP_WAIT_MS, 0);                          \
    while (!(cond) && uv_now(&(fx)->loop) < end_)                                                  \
      uv_run(&(fx)->loop, UV_RUN_ONCE);                                                            \
    uv_timer_stop(&(fx)->guard);                                                                   \
    cr_assert((cond), "timed out waiting for %s", #cond);                                          \
  } while (0)

static inline void loop_fixture_finish(struct loop_fixture *fx) {
  uv_close((uv_handle_t *)&fx->guard, NULL);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&fx->loop), 0, "no handle left behind");
  cr_assert_eq(fx->pool.blocks_live, 0u, "every block returned to the pool");
  bufpool_destroy(&fx->pool);
}

#endif
