/* forwarded: who the client is when a connection comes from a trusted
 * proxy (listeners[].trusted_proxies, SPEC §3).
 *
 * A peer inside the listener's trusted_proxies may speak for the client:
 * its X-Forwarded-Proto and X-Forwarded-Host are forwarded as sent, and the
 * client address used for access logs and hashing is the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy. Everything else
 * (the X-Forwarded-For value ferry appends, the inspector's connection
 * address) stays the peer.
 *
 * Pure: reads a header list and the listener's configuration; the only
 * memory it takes is from the arena it is given. */
#ifndef FERRY_FORWARDED_H
#define FERRY_FORWARDED_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/http_head.h"

/* The peer (addr in network order, IPv4 in the first 4 bytes; known: the
 * address could be read) is in l's trusted_proxies. */
bool forwarded_trusted(const struct cfg_listener *l, const uint8_t addr[16], bool v6, bool known);

/* The client address for logs and hashing: with trusted false, peer; else
 * the right-most entry of the X-Forwarded-For headers in h (in order, each
 * a comma-separated list) that is not in l's trusted_proxies, as text
 * allocated from a. When every entry is trusted, the left-most one. The
 * walk stops at an entry that is not an IP address: the trusted entry to
 * its right counts then, or the peer when there is none. peer also when
 * there is no X-Forwarded-For or a has no memory. */
const char *forwarded_client(const struct hdr_list *h, const struct cfg_listener *l, bool trusted,
                             const char *peer, struct arena *a);

#endif
