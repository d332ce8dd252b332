/* leak_check: under ASan, LeakSanitizer's report at worker exit does not
 * fail a Criterion test (nor does anything in a .fini hook), so tests call
 * check_leaks() at the end of their body for an explicit leak check. */
#ifndef FERRY_TEST_LEAK_CHECK_H
#define FERRY_TEST_LEAK_CHECK_H

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
static inline void check_leaks(void) {
  cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report above)");
}
#else
static inline void check_leaks(void) {}
#endif

#endif
