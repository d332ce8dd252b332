/* extunnel: the exchange's side of a tunnel (after a 101): it starts the
 * pump (src/tunnel.c) between the client's and the upstream's streams and
 * implements its callbacks (idle timer, the end, bytes for the inspector).
 * Owns nothing of its own; the exchange's fields are src/exchange.c's.
 * Must not free the session or the upstream connection: it asks
 * session_* and connpool_close. Its functions keep the exchange_ names
 * they are declared under in exchange.h. */
#include "ferry/connpool.h"
#include "ferry/exchange.h"
#include "ferry/log.h"
#include "ferry/session.h"
#include "ferry/upclient.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

static inline struct exchange *tunnel_exchange(struct tunnel *t) {
  return container_of(t, struct exchange, tun);
}

static void tunnel_activity(struct tunnel *t) {
  session_timer(tunnel_exchange(t)->s, ST_TUNNEL);
}

/* The tunnel is over: log it, close the upstream, and close the client
 * (after its queue drains unless abort). */
static void tunnel_over(struct tunnel *t, const char *note, bool abort) {
  struct exchange *ex = tunnel_exchange(t);
  struct session *s = ex->s;
  if (note && !ex->error_note)
    ex->error_note = note;
  if (ex->uc) {
    connpool_close(ex->uc);
    ex->uc = NULL;
  }
  ex->state = EX_DONE;
  exchange_log(ex);
  if (abort)
    session_close(s);
  else
    session_tunnel_end(s);
}

/* The inspector reads WebSocket frames of captured upgrades. */
static void tunnel_bytes(struct tunnel *t, bool to_client, const char *p, size_t n) {
  inspect_tunnel_bytes(tunnel_exchange(t), to_client ? 1 : 0, p, n);
}

static const struct tunnel_cbs exchange_tunnel_cbs = {tunnel_activity, tunnel_over, tunnel_bytes};

/* The 101 head is queued: bytes flow both ways from now on. */
void exchange_tunnel_begin(struct exchange *ex) {
  struct session *s = ex->s;
  ex->state = EX_TUNNEL;
  ex->resp_done = true;
  log_debug("client %s: upgraded to a tunnel to %s", session_client_ip(s),
            ex->srv ? ex->srv->name : "-");
  ex->tun = (struct tunnel){.client = &s->st,
                            .upstream = &ex->uc->st,
                            .cbs = &exchange_tunnel_cbs,
                            .to_upstream = &ex->req_body_bytes,
                            .to_client = &ex->resp_body_bytes,
                            .observe = ex->insp.on};
  tunnel_start(&ex->tun);
  if (ex->state == EX_TUNNEL && !s->closing)
    session_tunnel_begin(s);
}
