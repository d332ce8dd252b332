/* resolve: upstream server names to socket addresses.
 *
 * Normally the system resolver (getaddrinfo). When a hosts file is given
 * (the FERRY_HOSTS_FILE environment variable, a test and operations knob),
 * names are looked up only in that file, in /etc/hosts format
 * ("ADDRESS NAME [ALIASES...]", "#" comments), re-read on every lookup so
 * changing the file changes the answers. Addresses are deduplicated and
 * kept in the order found, at most `max`. */
#ifndef FERRY_RESOLVE_H
#define FERRY_RESOLVE_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Look host up in the hosts file. Returns the number of addresses (>= 1),
 * or -1 with a reason in why (file unreadable, name not in it). */
int resolve_hosts_file(const char *file, const char *host, uint16_t port,
                       struct sockaddr_storage *out, size_t max, char *why, size_t whylen);

/* Addresses of a getaddrinfo answer with port set, deduplicated. */
int resolve_collect(const struct addrinfo *res, uint16_t port, struct sockaddr_storage *out,
                    size_t max);

/* Blocking lookup: the hosts file when hosts_file is not NULL, else
 * getaddrinfo. Returns the count (>= 1) or -1 with a reason in why. */
int resolve_now(const char *hosts_file, const char *host, uint16_t port,
                struct sockaddr_storage *out, size_t max, char *why, size_t whylen);

/* "127.0.0.1:9001" or "[::1]:9001". */
void resolve_name(const struct sockaddr_storage *a, char *out, size_t len);

#endif
