/* tunnel: byte pump between a client and an upstream after a 101.
 *
 * Owns nothing but the counters in struct tunnel: the client socket stays
 * the session's and the upstream socket the connpool's. Must not parse
 * the bytes. Ends by closing both sides: the upstream connection is never
 * pooled again, and the session closes once its queued writes are done. */
#include "ferry/tunnel.h"

#include "ferry/connpool.h"
#include "ferry/exchange.h"
#include "ferry/log.h"
#include "ferry/session.h"
#include "ferry/upstream.h"

/* Ends the tunnel: log, close the upstream, close the client after its
 * queue drains. */
static void tunnel_end(struct exchange *ex, const char *note) {
  struct session *s = ex->s;
  if (note && !ex->error_note)
    ex->error_note = note;
  if (ex->uc) {
    connpool_close(ex->uc);
    ex->uc = NULL;
  }
  ex->state = EX_DONE;
  exchange_tunnel_done(ex);
  session_tunnel_end(s);
}

/* Client bytes in s->rx->in[parse_off..len) go upstream as a slice. */
static int pump_to_upstream(struct exchange *ex) {
  struct session *s = ex->s;
  struct upconn *uc = ex->uc;
  struct session_rx *rx = s->rx;
  if (!rx || !rx->in || rx->parse_off >= rx->in->len)
    return 0;
  size_t n = rx->in->len - rx->parse_off;
  if (ex->insp.on) /* the inspector reads WebSocket frames; the pump never parses */
    inspect_tunnel_bytes(ex, 0, rx->in->data + rx->parse_off, n);
  if (upconn_add(uc, rx->in->data + rx->parse_off, n, rx->in) != 0)
    return -1;
  rx->parse_off = rx->in->len;
  ex->req_body_bytes += n;
  return upconn_flush(uc);
}

/* Upstream bytes in uc->in[parse_off..len) go to the client as a slice. */
static int pump_to_client(struct exchange *ex) {
  struct session *s = ex->s;
  struct upconn *uc = ex->uc;
  if (!uc->in || uc->parse_off >= uc->in->len)
    return 0;
  size_t n = uc->in->len - uc->parse_off;
  if (ex->insp.on)
    inspect_tunnel_bytes(ex, 1, uc->in->data + uc->parse_off, n);
  if (session_add(s, uc->in->data + uc->parse_off, n, uc->in) != 0)
    return -1;
  uc->parse_off = uc->in->len;
  ex->resp_body_bytes += n;
  if (session_flush(s) != 0)
    return -1;
  if (!s->closing && s->queued > BP_HIGH && ex->uc)
    upconn_set_bp(ex->uc, true);
  return 0;
}

void tunnel_start(struct exchange *ex) {
  struct session *s = ex->s;
  ex->state = EX_TUNNEL;
  ex->resp_done = true;
  log_debug("client %s: upgraded to a tunnel to %s", session_client_ip(s),
            ex->srv ? ex->srv->name : "-");
  if (pump_to_client(ex) != 0 || s->closing) {
    if (!s->closing)
      session_close(s);
    return;
  }
  if (!ex->uc || pump_to_upstream(ex) != 0) {
    session_close(s);
    return;
  }
  session_tunnel_begin(s);
  if (ex->uc && !ex->uc->bp_paused)
    upconn_set_bp(ex->uc, false); /* (re)start reading the upstream */
}

void tunnel_client_read(struct exchange *ex, ssize_t nread) {
  struct session *s = ex->s;
  if (nread < 0) {
    if (nread != UV_EOF) {
      ex->error_note = "tunnel: client connection failed";
      exchange_tunnel_done(ex);
      session_close(s);
      return;
    }
    /* The client closed: deliver what it sent, then close both. */
    ex->tun.client_eof = true;
    s->peer_eof = true;
    if (!ex->uc || ex->uc->writes_pending == 0)
      tunnel_end(ex, NULL);
    return;
  }
  session_timer(s, ST_TUNNEL);
  if (pump_to_upstream(ex) != 0) {
    ex->error_note = "tunnel: upstream write failed";
    exchange_tunnel_done(ex);
    session_close(s);
  }
}

void tunnel_upstream_read(struct exchange *ex, ssize_t nread) {
  struct session *s = ex->s;
  if (nread < 0) {
    if (nread != UV_EOF)
      ex->error_note = "tunnel: upstream connection failed";
    tunnel_end(ex, NULL); /* the client gets what is queued, then EOF */
    return;
  }
  session_timer(s, ST_TUNNEL);
  if (pump_to_client(ex) != 0 && !s->closing) {
    ex->error_note = "tunnel: client write failed";
    exchange_tunnel_done(ex);
    session_close(s);
  }
}

void tunnel_upstream_drained(struct exchange *ex) {
  session_set_bp(ex->s, false);
  if (ex->tun.client_eof && ex->uc && ex->uc->writes_pending == 0)
    tunnel_end(ex, NULL);
}

void tunnel_timeout(struct exchange *ex) {
  ex->error_note = "tunnel idle timeout";
  exchange_tunnel_done(ex);
  session_close(ex->s);
}
