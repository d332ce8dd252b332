/* retry: whether a failed attempt of a request may go to another server
 * (SPEC §8 route `retry`, and the upstream's `retries` on routes without
 * one), and the record of the retries made.
 *
 * The decision itself (retry_eligible) is pure: which failures the
 * configuration retries, how many attempts it allows, and the rules every
 * retry obeys — nothing of the response reached the client, no request
 * body byte went upstream (bodies stream through ferry and are not kept
 * for a replay), and a retry on a status only for an idempotent method
 * (RFC 9110 §9.2.2) whose whole request, without a body, was read. The
 * exchange glue (retry_begin ...) adds the route's retry budget
 * (src/retrybudget.c, through the snapshot's traffic state) and the
 * route's `timeout` as a bound on all attempts together. It reads and
 * marks the exchange's record fields; it never picks a server, connects,
 * answers or frees anything: the exchange does that. */
#ifndef FERRY_RETRY_H
#define FERRY_RETRY_H

#include <stdbool.h>
#include <stdint.h>

struct cfg_retry;
struct exchange;

/* Why an attempt was retried (label `reason` of ferry_retries_total). */
#define RETRY_REASONS(X)                                                                           \
  X(CONNECT_FAILURE, "connect_failure") /* refused, unreachable, connect timed out */              \
  X(RESET, "reset")                     /* closed or reset before any response byte */             \
  X(STATUS, "status")                   /* a status listed in retry.on */                          \
  X(STALE, "stale_connection") /* a pooled connection the server had closed: same server again */

enum retry_reason {
#define RETRY_REASON_ENUM(id, name) RETRY_##id,
  RETRY_REASONS(RETRY_REASON_ENUM)
#undef RETRY_REASON_ENUM
      RETRY_REASON_N
};

const char *retry_reason_name(enum retry_reason r);

/* What the decision needs to know of a failed attempt. */
struct retry_ask {
  const struct cfg_retry *route; /* the route's `retry`, NULL when it has none */
  uint32_t upstream_retries;     /* the upstream's `retries` (used when route is NULL) */
  enum retry_reason why;
  int status;             /* RETRY_STATUS: the response's status */
  int method;             /* llhttp_method_t */
  uint32_t attempts_made; /* servers tried so far, this one included */
  bool resp_started;      /* part of a response went to the client */
  bool body_sent;         /* a request body byte went upstream */
  bool body_may_flow;     /* a body not read yet could start flowing to the new attempt */
  bool req_done;          /* the whole request was read */
  bool out_of_time;       /* the route's `timeout` is spent */
};

enum retry_verdict {
  RETRY_NO,      /* the answer (or failure) stands */
  RETRY_YES,     /* retry (the upstream's `retries`: no budget) */
  RETRY_BUDGETED /* retry if the route's budget allows */
};

/* Pure: may the attempt a describes be retried? */
enum retry_verdict retry_eligible(const struct retry_ask *a);
/* RFC 9110 §9.2.2: GET HEAD OPTIONS TRACE PUT DELETE. */
bool retry_idempotent(int method);
/* Is status listed in rt's `on`? */
bool retry_on_status(const struct cfg_retry *rt, int status);

/* --- the exchange's side ------------------------------------------------ */
/* ex's route keeps a retry budget: count this request in it (once, when
 * it is forwarded). */
void retry_request(struct exchange *ex);
/* ex's current attempt failed (why, status): true when it may go to
 * another server, with a budget place taken when the route has a budget;
 * false when the failure stands (ex->budget_exhausted set when the budget
 * said no). body_may_flow: the new connection would carry a body not read
 * yet. */
bool retry_begin(struct exchange *ex, enum retry_reason why, int status, bool body_may_flow);
/* retry_begin said yes but no server is left: give its place back. */
void retry_cancel(struct exchange *ex);
/* The retry went out (for RETRY_STALE on the same server, else on the
 * server exchange_next_server just added): counted for the observers,
 * with the status that was dropped (RETRY_STATUS). */
void retry_count(struct exchange *ex, enum retry_reason why, int status);
/* Milliseconds of the route's `timeout` left for this attempt, the
 * attempts before it included (at least 1); the timeout itself before any
 * retry. */
uint64_t retry_time_left(const struct exchange *ex, uint64_t timeout_ms);
/* The route's own `timeout` (ms) for the upstream response, less what
 * earlier attempts of a retried request took; 0 for
 * timeouts.upstream_response. */
uint64_t retry_response_ms(const struct exchange *ex);

#endif
