/* routetest: `ferry test-routes [-c FILE] TESTS.yaml` — route test cases
 * for CI of configuration repositories (SPEC §9).
 *
 * Each case is a request and what should happen to it; the request is
 * explained with src/explain.c (the proxy's own checks, router and
 * rewrite code) and the result compared field by field. Pure apart from
 * reading the tests file and printing. */
#ifndef FERRY_ROUTETEST_H
#define FERRY_ROUTETEST_H

#include <stdio.h>

#include "ferry/config.h"
#include "ferry/router.h"

struct routetest_summary {
  unsigned passed, failed;
};

/* Runs the cases of tests_file against cfg (compiled as router), printing
 * "PASS  name" or "FAIL  name" with what was expected and what ferry would
 * do, then a summary line, to out. Returns 0 when the file could be read
 * (sum filled), or -1 after printing its errors ("FILE:LINE:COL: ...") to
 * err. */
int routetest_run(const struct config *cfg, const struct router *router, const char *tests_file,
                  FILE *out, FILE *err, struct routetest_summary *sum);

/* argv[0] is "test-routes". Exit code: 0 when every case passes, 1
 * otherwise (a failing case, a bad tests file or configuration, usage). */
int routetest_main(int argc, char **argv);

#endif
