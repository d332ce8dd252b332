/* policy: the route's traffic control as the exchange applies it before
 * forwarding (SPEC §8): allow/deny, rate limit, which upstream of a
 * weighted split. The shared state (split order, buckets) is in
 * src/traffic.c; this module only reads the exchange's request and the
 * worker's current configuration generation, and arms the response
 * deadline with the route's `timeout`. Must not answer the client or
 * touch connections: the exchange does that with the status returned
 * here. */
#ifndef FERRY_POLICY_H
#define FERRY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exchange;
struct traffic_route;

/* The shared traffic-control state (src/traffic.c) of ex's route, in the
 * generation the matching router belongs to; NULL when there is none (a
 * test's bare snapshot). */
struct traffic_route *policy_route_state(const struct exchange *ex);

/* allow/deny then rate_limit on ex's route: 0 to go on, else the status
 * to answer (403, 429) with ex->error_note and ex->retry_after set. */
int policy_admit(struct exchange *ex);

/* The index in the configuration's upstreams of ex's upstream: the
 * route's one, or the next of its weighted split. */
size_t policy_upstream(struct exchange *ex);

/* Whether ex is among the `percent` of its route's requests that are
 * mirrored (a counter shared by the workers, see traffic_mirror_next). */
bool policy_mirror_sample(struct exchange *ex);

/* W3C Trace Context: ex->traceparent for the upstream, with the client's
 * trace id (a valid traceparent) or a new one, and a new span id of
 * ferry's own; ex->trace_id set. */
void policy_trace(struct exchange *ex);

/* The body of ferry's answer for a status from policy_admit, or for -503:
 * the upstream's max_requests are all in flight. */
const char *policy_message(int status);

#endif
