/* health: the upstream monitor thread, one per process.
 *
 * It has its own uv loop and never touches worker loops or client
 * connections. For every pool with health_check it sends
 * "GET path HTTP/1.1" to each server every interval on a connection of its
 * own (closed after the answer) — over TLS for an upstream with `tls`,
 * with its verification, server name and client certificate; a 2xx or 3xx
 * status within timeout is a pass, anything else (refused, timed out,
 * closed, a failed TLS handshake, other status) a failure.
 * unhealthy_threshold failures in a row mark the server down,
 * healthy_threshold passes mark it up again; each change is logged once:
 *   upstream api server 127.0.0.1:9001 down: 3 failed checks (connect refused)
 *   upstream api server 127.0.0.1:9443 down: 3 failed checks (TLS handshake failed:
 *     certificate verify failed: unable to get local issuer certificate)
 *   upstream api server 127.0.0.1:9001 up: 2 passed checks
 * It also re-resolves server names every resolve_interval (uv_getaddrinfo,
 * or the FERRY_HOSTS_FILE hosts file): new addresses join the pool,
 * vanished ones are removed (uppool_add / uppool_remove). */
#ifndef FERRY_HEALTH_H
#define FERRY_HEALTH_H

#include <stddef.h>

struct upstreams;
struct health;

/* Start the thread. NULL with a message in err on failure. */
struct health *health_start(struct upstreams *ups, char *err, size_t errlen);
/* Stop it, close its handles and free (joins the thread). */
void health_stop(struct health *h);

#endif
