/* addrtext: an IP address as text, exactly as inet_ntop writes it (a
 * dotted quad by table: it runs whenever a keep-alive connection's next
 * request arrives). Pure. */
#ifndef FERRY_ADDRTEXT_H
#define FERRY_ADDRTEXT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* addr (network order; IPv4 in the first 4 bytes) into out
 * (INET6_ADDRSTRLEN bytes); "-" when it cannot be formatted. */
void addrtext_format(char *out, const uint8_t addr[16], bool v6);

/* A socket address's bytes (network order; IPv4 in the first 4), port
 * and family into addr/port/v6; false (nothing written) for a family
 * other than IPv4 or IPv6. */
struct sockaddr;
bool addrtext_from_sockaddr(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port, bool *v6);

#endif
