/* inspect: the inspector's capture of exchanges, on the worker.
 *
 * Capture runs on a worker thread at the end of an exchange whose route
 * asked for it (`inspect: true`, or every route with admin.inspect_all):
 * everything the inspector shows is copied into one allocation, a
 * struct inspect_rec, which is then handed to the admin thread. The record
 * owns all its bytes (slices inside it point into the same allocation), so
 * it outlives the exchange and needs no locking once handed over.
 *
 * The records, the store and the renderers are insprec.h's.
 *
 * Cost for routes that do not ask: the exchange tests one flag
 * (ex->insp.on) at a handful of points; nothing else runs. */
#ifndef FERRY_INSPECT_H
#define FERRY_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/insprec.h"
#include "ferry/slice.h"

struct exchange;
struct iobuf;
struct worker;
struct inspect_rec;
struct inspect_out;
struct filter;

/* --- per-worker batch ------------------------------------------------------ *
 * Records captured during one turn of a worker's loop go to the admin
 * thread together, from a check handle at the end of the turn: one
 * cross-thread wake-up per turn instead of one per request. */
struct inspect_batch {
  uv_check_t check; /* runs after each poll; unreferenced */
  struct inspect_rec *head, *tail;
  bool started;
};

/* Worker thread. init: from worker_init, before the loop runs. close: when
 * the worker's loop has stopped serving; hands over what is left and closes
 * the handle (the loop must run once more to finish the close). */
void inspect_batch_init(struct worker *w);
void inspect_batch_close(struct worker *w);

/* --- per-exchange capture state (embedded in struct exchange) ------------ */

struct inspect_ex {
  bool on;                   /* this exchange is captured */
  bool upstream_responded;   /* an upstream response head was parsed */
  uint8_t upstream_minor;    /* its HTTP/1.x minor version */
  struct iobuf *client_head; /* the response head ferry sent (a reference) */
  uint64_t req_head_bytes;   /* request head bytes as received */
  /* uv_hrtime() marks; 0 = not reached */
  uint64_t t_head;      /* request head complete */
  uint64_t t_connect;   /* asked the pool for a connection (last attempt) */
  uint64_t t_connected; /* connection ready, request head queued */
  uint64_t t_response;  /* upstream response head parsed */
  /* first admin.inspect_body_bytes of each body, in the exchange's arena */
  char *body[2]; /* 0: request, 1: response */
  uint32_t body_n[2];
  struct inspect_ws_log ws; /* after a 101: frames, in the arena (ws.frames NULL until then) */
  bool ws_off;              /* no room for frames: not parsed */
};

/* Hooks for exchange.c. Each costs one test of ex->insp.on when the
 * exchange is not captured. */
#define INSPECT_MARK(ex, field)                                                                    \
  do {                                                                                             \
    if ((ex)->insp.on)                                                                             \
      (ex)->insp.field = uv_hrtime();                                                              \
  } while (0)

/* Does this exchange get captured? r: the matched route, or NULL. */
static inline bool inspect_wanted(const struct config *cfg, const struct cfg_route *r) {
  return cfg->admin.inspect_all || (r && r->inspect);
}

/* The route is known: start capturing when it (or admin.inspect_all) asks.
 * r may be NULL (no route). Worker thread; call only when w->insp is set
 * (the inspector runs), so configurations without it pay one branch. */
void inspect_begin(struct exchange *ex, const struct cfg_route *r);
/* The response head ferry queued to the client is in b (a reference is
 * kept until inspect_release); from_upstream: it answers an upstream
 * response parsed just now (not one of ferry's own replies). */
void inspect_note_response(struct exchange *ex, struct iobuf *b, bool from_upstream);
/* Body bytes passing (dir 0: request, 1: response): the first
 * admin.inspect_body_bytes are kept. */
void inspect_body(struct exchange *ex, int dir, const char *p, size_t n);
/* The exchange ended: build its record and hand it to the admin thread. */
void inspect_capture(struct exchange *ex);
/* Tunnel bytes passing after a 101 (dir 0: client -> upstream, 1: back). */
void inspect_tunnel_bytes(struct exchange *ex, int dir, const char *p, size_t n);
/* Drop what inspect_note_response kept. Called from exchange_reset. */
void inspect_release(struct exchange *ex);

#endif
