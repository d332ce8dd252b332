/* upstream: per-worker runtime state of pools and servers, and balancing.
 * Owns the server_rt arrays; connections themselves belong to connpool. */
#include "ferry/upstream.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int upstream_rt_init(struct upstream_rt *u, const struct cfg_upstream *cfg) {
  u->cfg = cfg;
  u->nservers = cfg->nservers;
  u->servers = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*u->servers));
  if (!u->servers)
    return -1;
  for (size_t i = 0; i < cfg->nservers; i++) {
    struct server_rt *s = &u->servers[i];
    s->cfg = &cfg->servers[i];
    s->up = u;
    const struct sockaddr_storage *a = &s->cfg->addr;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->ss_family == AF_INET) {
      inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof(ip));
      snprintf(s->name, sizeof(s->name), "%s:%u", ip, (unsigned)s->cfg->port);
    } else if (a->ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof(ip));
      snprintf(s->name, sizeof(s->name), "[%s]:%u", ip, (unsigned)s->cfg->port);
    } else {
      snprintf(s->name, sizeof(s->name), "%s", s->cfg->address ? s->cfg->address : "?");
    }
  }
  return 0;
}

void upstream_rt_destroy(struct upstream_rt *u) {
  free(u->servers);
  u->servers = NULL;
  u->nservers = 0;
}

struct server_rt *upstream_pick(struct upstream_rt *u) {
  if (u->nservers == 1)
    return &u->servers[0];
  int64_t total = 0;
  struct server_rt *best = NULL;
  for (size_t i = 0; i < u->nservers; i++) {
    struct server_rt *s = &u->servers[i];
    int64_t wgt = s->cfg->weight ? (int64_t)s->cfg->weight : 1;
    s->rr_current += wgt;
    total += wgt;
    if (!best || s->rr_current > best->rr_current)
      best = s;
  }
  best->rr_current -= total;
  return best;
}
