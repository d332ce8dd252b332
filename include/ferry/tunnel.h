/* tunnel: an Upgrade (WebSocket and others) turned into a byte tunnel.
 *
 * After the upstream's 101 has been relayed, the client's stream and the
 * upstream's carry opaque bytes both ways until either side closes or
 * nothing moves for timeouts.client_idle (the owner's timer). Bytes are
 * forwarded as slices of the read blocks (never copied). Flow control is
 * the streams' own: a writer over its high-water mark holds the other
 * side's reading through stream_flow, as for any exchange; the owner
 * routes the watermark callbacks there.
 *
 * Owns nothing but its counters: the streams stay their owners' (the
 * session and the upstream client). Must not parse the bytes, and knows
 * its owner only through the callbacks below. */
#ifndef FERRY_TUNNEL_H
#define FERRY_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stream;
struct tunnel;

struct tunnel_cbs {
  /* Bytes moved (re-arm the idle timer). */
  void (*activity)(struct tunnel *t);
  /* The tunnel is over. abort: a side failed, close the client at once;
   * otherwise the client gets what is queued, then the close. note: why,
   * for the log (NULL for a plain close by either side). */
  void (*end)(struct tunnel *t, const char *note, bool abort);
  /* Bytes about to be forwarded (to_client: upstream -> client), shown
   * to an observer (the inspector's WebSocket frames); only while
   * t->observe. The pump never parses them. */
  void (*bytes)(struct tunnel *t, bool to_client, const char *p, size_t n);
};

struct tunnel {
  struct stream *client, *upstream;
  const struct tunnel_cbs *cbs;
  uint64_t *to_upstream; /* byte counters the owner keeps (for the access log) */
  uint64_t *to_client;
  bool client_eof; /* client closed: end once the upstream queue drained */
  bool observe;    /* call cbs->bytes */
  bool ended;
};

/* The 101 head is queued to the client: forward what either side sent
 * early and start pumping. */
void tunnel_start(struct tunnel *t);
/* The client's stream read nread bytes (> 0) or an error/EOF (< 0). */
void tunnel_client_read(struct tunnel *t, ssize_t nread);
/* The same for the upstream's stream. */
void tunnel_upstream_read(struct tunnel *t, ssize_t nread);
/* A write to the upstream completed. */
void tunnel_upstream_written(struct tunnel *t);

#endif
