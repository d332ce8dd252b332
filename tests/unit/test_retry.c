/* retry: the pure decision — which failures a route's `retry` or an
 * upstream's `retries` retries, the body and method rules, attempts and
 * the time bound. */
#include <criterion/criterion.h>
#include <llhttp.h>

#include "ferry/config.h"
#include "ferry/retry.h"

static struct cfg_retry route_retry(void) {
  struct cfg_retry rt = {
      .enabled = true, .attempts = 3, .on_connect_failure = true, .budget_percent = 20};
  rt.on_status[0] |= 1ull << 3; /* 503 */
  rt.on_status[1] |= 1ull << (599 - 500 - 64);
  return rt;
}

static struct retry_ask get_failed(const struct cfg_retry *rt, enum retry_reason why, int status) {
  return (struct retry_ask){.route = rt,
                            .upstream_retries = 1,
                            .why = why,
                            .status = status,
                            .method = HTTP_GET,
                            .attempts_made = 1,
                            .req_done = true};
}

Test(retry, statuses_listed_are_retried_others_stand) {
  struct cfg_retry rt = route_retry();
  cr_assert(retry_on_status(&rt, 503));
  cr_assert(retry_on_status(&rt, 599));
  cr_assert_not(retry_on_status(&rt, 502));
  cr_assert_not(retry_on_status(&rt, 404));
  struct retry_ask a = get_failed(&rt, RETRY_STATUS, 503);
  cr_assert_eq(retry_eligible(&a), RETRY_BUDGETED);
  a.status = 500;
  cr_assert_eq(retry_eligible(&a), RETRY_NO);
}

Test(retry, conditions_not_listed_are_not_retried) {
  struct cfg_retry rt = route_retry(); /* connect-failure and 503, not reset */
  struct retry_ask a = get_failed(&rt, RETRY_CONNECT_FAILURE, 0);
  cr_assert_eq(retry_eligible(&a), RETRY_BUDGETED);
  a.why = RETRY_RESET;
  cr_assert_eq(retry_eligible(&a), RETRY_NO);
  a.why = RETRY_STALE;
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "the keep-alive race is the exchange's own");
}

Test(retry, status_retries_need_an_idempotent_method_without_a_body) {
  struct cfg_retry rt = route_retry();
  int yes[] = {HTTP_GET, HTTP_HEAD, HTTP_OPTIONS, HTTP_TRACE, HTTP_PUT, HTTP_DELETE};
  int no[] = {HTTP_POST, HTTP_PATCH, HTTP_CONNECT};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    struct retry_ask a = get_failed(&rt, RETRY_STATUS, 503);
    a.method = yes[i];
    cr_assert_eq(retry_eligible(&a), RETRY_BUDGETED, "method %d", yes[i]);
  }
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    struct retry_ask a = get_failed(&rt, RETRY_STATUS, 503);
    a.method = no[i];
    cr_assert_eq(retry_eligible(&a), RETRY_NO, "method %d", no[i]);
  }
  struct retry_ask a = get_failed(&rt, RETRY_STATUS, 503);
  a.body_sent = true;
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "a body went upstream");
  a = get_failed(&rt, RETRY_STATUS, 503);
  a.req_done = false;
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "the request is still arriving");
}

Test(retry, nothing_once_the_response_started_or_a_body_may_flow) {
  struct cfg_retry rt = route_retry();
  struct retry_ask a = get_failed(&rt, RETRY_CONNECT_FAILURE, 0);
  a.resp_started = true;
  cr_assert_eq(retry_eligible(&a), RETRY_NO);
  a = get_failed(&rt, RETRY_CONNECT_FAILURE, 0);
  a.body_may_flow = true;
  cr_assert_eq(retry_eligible(&a), RETRY_NO);
  a = get_failed(NULL, RETRY_RESET, 0);
  a.body_sent = true;
  cr_assert_eq(retry_eligible(&a), RETRY_NO);
}

Test(retry, attempts_and_time_bound_the_route) {
  struct cfg_retry rt = route_retry();
  struct retry_ask a = get_failed(&rt, RETRY_CONNECT_FAILURE, 0);
  a.attempts_made = 2;
  cr_assert_eq(retry_eligible(&a), RETRY_BUDGETED, "third of 3 attempts");
  a.attempts_made = 3;
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "3 attempts made");
  a = get_failed(&rt, RETRY_CONNECT_FAILURE, 0);
  a.out_of_time = true;
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "the route's timeout is spent");
}

Test(retry, without_a_route_retry_the_upstream_retries_apply_unbudgeted) {
  struct retry_ask a = get_failed(NULL, RETRY_CONNECT_FAILURE, 0);
  a.upstream_retries = 2;
  cr_assert_eq(retry_eligible(&a), RETRY_YES);
  a.attempts_made = 3;
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "1 + 2 retries made");
  a = get_failed(NULL, RETRY_RESET, 0);
  cr_assert_eq(retry_eligible(&a), RETRY_YES);
  a = get_failed(NULL, RETRY_STATUS, 503);
  cr_assert_eq(retry_eligible(&a), RETRY_NO, "statuses only with a route retry");
  a = get_failed(NULL, RETRY_CONNECT_FAILURE, 0);
  a.upstream_retries = 0;
  cr_assert_eq(retry_eligible(&a), RETRY_NO);
}

Test(retry, reason_names_are_the_metric_labels) {
  cr_assert_str_eq(retry_reason_name(RETRY_CONNECT_FAILURE), "connect_failure");
  cr_assert_str_eq(retry_reason_name(RETRY_RESET), "reset");
  cr_assert_str_eq(retry_reason_name(RETRY_STATUS), "status");
  cr_assert_str_eq(retry_reason_name(RETRY_STALE), "stale_connection");
}
