/* mirror: a route's `mirror` (SPEC §8): a copy of `percent` of its
 * requests, head and body, to another upstream, whose answer is
 * discarded.
 *
 * Owns the decision to copy (sampling through policy), the copy's
 * sub-request while the request body flows (ex->mirror), its bounds and
 * its counters (ferry_mirror_requests_total, ex->mirror_note). The copy
 * never holds the client: it never sets flow control on the client's
 * stream, and when it cannot keep up (more than SUBREQ_QUEUE_MAX of body
 * pinned, MIRROR_MAX_INFLIGHT copies already in flight on the worker, or
 * the worker stopping) it is dropped and counted, never buffered. Once the
 * whole request went to it the copy lives on by itself (its own
 * deadlines) and the exchange forgets it. Must not answer the client or
 * touch the exchange's upstream connection. */
#ifndef FERRY_MIRROR_H
#define FERRY_MIRROR_H

#include <stddef.h>

#include "ferry/exchange.h"

/* Copies in flight per worker; a copy beyond them is dropped. */
#define MIRROR_MAX_INFLIGHT 64u

/* The upstream head is built (ex->uhead_buf): copy the request when the
 * route mirrors and ex is sampled. */
void mirror_begin(struct exchange *ex);

void mirror_body_slow(struct exchange *ex, const char *p, size_t n, struct iobuf *b);
void mirror_request_done_slow(struct exchange *ex);
void mirror_detach_slow(struct exchange *ex);

/* Request body bytes (framing removed) for the copy too. */
static inline void mirror_body(struct exchange *ex, const char *p, size_t n, struct iobuf *b) {
  if (ex->mirror)
    mirror_body_slow(ex, p, n, b);
}
/* Send what the last read gave the copy. */
void mirror_flush_slow(struct exchange *ex);
static inline void mirror_flush(struct exchange *ex) {
  if (ex->mirror)
    mirror_flush_slow(ex);
}
/* The request ended: the copy goes on by itself. */
static inline void mirror_request_done(struct exchange *ex) {
  if (ex->mirror)
    mirror_request_done_slow(ex);
}
/* The exchange ends before its request did: the incomplete copy fails. */
static inline void mirror_detach(struct exchange *ex) {
  if (ex->mirror)
    mirror_detach_slow(ex);
}

#endif
