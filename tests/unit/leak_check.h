/* leak_check: explicit LeakSanitizer checks for Criterion tests under ASan.
 * Criterion's workers exit without running LeakSanitizer, so a leak would
 * go unseen. Two ways to check:
 *  - check_leaks() at the end of a test body: a failed assertion;
 *  - abort_on_leaks() in a suite's .fini (Criterion ignores assertions
 *    there): a leak aborts, reported as a crash in teardown, and the run
 *    exits non-zero. */
#ifndef FERRY_TEST_LEAK_CHECK_H
#define FERRY_TEST_LEAK_CHECK_H

#include <criterion/criterion.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define FERRY_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY_HAVE_LSAN 1
#endif
#endif

#ifdef FERRY_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
static inline void check_leaks(void) {
  cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report above)");
}
static inline void abort_on_leaks(void) {
  if (__lsan_do_recoverable_leak_check() != 0)
    abort();
}
#else
static inline void check_leaks(void) {}
static inline void abort_on_leaks(void) {}
#endif

#endif
