/* tunnel: byte pump between a client and an upstream after a 101.
 *
 * Owns nothing but the state in struct tunnel: the client stream stays
 * the session's and the upstream stream the upstream client's. Must not
 * parse the bytes, and reaches its owner only through struct tunnel_cbs. */
#include "ferry/tunnel.h"

#include "ferry/stream.h"

static void tunnel_end(struct tunnel *t, const char *note, bool abort) {
  if (t->ended)
    return;
  t->ended = true;
  t->cbs->end(t, note, abort);
}

/* Unconsumed bytes of from's read block go to `to` as a slice. */
static int pump(struct tunnel *t, struct stream *from, struct stream *to, uint64_t *count) {
  if (!stream_pending(from))
    return 0;
  size_t n = from->in->len - from->in_off;
  if (t->observe)
    t->cbs->bytes(t, to == t->client, from->in->data + from->in_off, n);
  if (stream_add(to, from->in->data + from->in_off, n, from->in) != 0)
    return -1;
  from->in_off = from->in->len;
  *count += n;
  return stream_flush(to);
}

void tunnel_start(struct tunnel *t) {
  if (pump(t, t->upstream, t->client, t->to_client) != 0) {
    tunnel_end(t, "tunnel: client write failed", true);
    return;
  }
  if (t->ended || pump(t, t->client, t->upstream, t->to_upstream) != 0) {
    tunnel_end(t, "tunnel: upstream write failed", true);
    return;
  }
  if (!t->ended)
    stream_hold(t->upstream, STREAM_HOLD_OWNER, false); /* (re)start reading the upstream */
}

void tunnel_client_read(struct tunnel *t, ssize_t nread) {
  if (t->ended)
    return;
  if (nread < 0) {
    if (nread != UV_EOF) {
      tunnel_end(t, "tunnel: client connection failed", true);
      return;
    }
    /* The client closed: deliver what it sent, then close both. */
    t->client_eof = true;
    if (t->upstream->writes_pending == 0)
      tunnel_end(t, NULL, false);
    return;
  }
  t->cbs->activity(t);
  if (pump(t, t->client, t->upstream, t->to_upstream) != 0)
    tunnel_end(t, "tunnel: upstream write failed", true);
}

void tunnel_upstream_read(struct tunnel *t, ssize_t nread) {
  if (t->ended)
    return;
  if (nread < 0) {
    /* the client gets what is queued, then EOF */
    tunnel_end(t, nread != UV_EOF ? "tunnel: upstream connection failed" : NULL, false);
    return;
  }
  t->cbs->activity(t);
  if (pump(t, t->upstream, t->client, t->to_client) != 0)
    tunnel_end(t, "tunnel: client write failed", true);
}

void tunnel_upstream_written(struct tunnel *t) {
  if (!t->ended && t->client_eof && t->upstream->writes_pending == 0)
    tunnel_end(t, NULL, false);
}
