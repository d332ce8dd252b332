/* tunnel: an Upgrade (WebSocket and others) turned into a byte tunnel.
 *
 * After the upstream's 101 has been relayed, the exchange's client socket
 * and upstream connection carry opaque bytes both ways until either side
 * closes or nothing moves for timeouts.client_idle. Bytes are forwarded as
 * slices of the read blocks (never copied); each direction stops reading
 * when the other side's write queue passes BP_HIGH and resumes below
 * BP_LOW, so memory stays bounded.
 *
 * The tunnel state lives in the exchange; the sockets stay owned by the
 * session and the upstream connection, which hand their reads here while
 * session.tunnel / upconn.tunnel is set. */
#ifndef FERRY_TUNNEL_H
#define FERRY_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct exchange;

/* Byte counts go to the exchange's req_body_bytes (client -> upstream) and
 * resp_body_bytes (upstream -> client), so the access log shows them. */
struct tunnel {
  bool client_eof; /* client closed: end once the upstream queue drained */
};

/* The 101 head is queued to the client: forward bytes either side sent
 * early and start pumping. */
void tunnel_start(struct exchange *ex);
/* The session read nread bytes (> 0, appended to its read block) or an
 * error/EOF (< 0). */
void tunnel_client_read(struct exchange *ex, ssize_t nread);
/* Same for the upstream connection. */
void tunnel_upstream_read(struct exchange *ex, ssize_t nread);
/* The upstream's write queue drained (possibly to empty). */
void tunnel_upstream_drained(struct exchange *ex);
/* timeouts.client_idle passed with no byte in either direction. */
void tunnel_timeout(struct exchange *ex);

#endif
