/* authreq: a route's `auth_request` (SPEC §8; nginx auth_request,
 * Traefik ForwardAuth): before a request is forwarded, ferry asks the
 * auth upstream with `GET path`, the client's headers (no body) and
 * X-Forwarded-Method / X-Forwarded-Uri.
 *
 * Owns the check's request head, the decision and what follows from it:
 * a 2xx lets the request through with the route's `pass_headers` taken
 * from the answer (ex->auth_ops: they replace whatever the client sent
 * under those names, and a name the answer lacks is removed); a 401 or
 * 403 goes back to the client as the auth service sent it (status,
 * headers, body up to AUTHREQ_BODY_MAX); anything else (another status,
 * a bigger body, no server, a failed or timed-out connection, an invalid
 * answer) is a 500, so an auth service that is down never lets a request
 * through. The client's body waits: the session stays blocked until the
 * request is forwarded. Counts ferry_auth_requests_total and sets
 * ex->auth_note / ex->auth_status for the access log and inspector. The
 * sending is src/subreq.c's; must not touch the exchange's upstream
 * connection. */
#ifndef FERRY_AUTHREQ_H
#define FERRY_AUTHREQ_H

#include <stdbool.h>

#include "ferry/exchange.h"

/* A 401/403 body bigger than this is not relayed: the client gets 500. */
#define AUTHREQ_BODY_MAX (64u * 1024u)

/* ex was routed to a route with auth_request and admitted: ask the auth
 * service; the exchange is forwarded (exchange_forward with target) or
 * answered once it decides. Always true: the exchange is taken over. */
bool authreq_begin(struct exchange *ex, struct slice target);

void authreq_cancel_slow(struct exchange *ex);
/* The exchange ends while its check is in flight: drop the check. */
static inline void authreq_cancel(struct exchange *ex) {
  if (ex->auth)
    authreq_cancel_slow(ex);
}

#endif
