/* upstream: per-worker runtime state of upstream pools and servers, and the
 * balancer that picks a server for a request. Pure bookkeeping: sockets
 * belong to connpool. */
#ifndef FERRY_UPSTREAM_H
#define FERRY_UPSTREAM_H

#include <stdint.h>

#include "ferry/config.h"

struct upconn;
struct upstream_rt;

struct server_rt {
  const struct cfg_server *cfg;
  struct upstream_rt *up;
  struct upconn *idle; /* idle keep-alive connections, most recent first */
  uint32_t nidle;
  uint32_t active;    /* connections attached to an exchange */
  int64_t rr_current; /* smooth weighted round robin state */
  char name[64];      /* "127.0.0.1:9001" for logs */
};

struct upstream_rt {
  const struct cfg_upstream *cfg;
  struct server_rt *servers;
  size_t nservers;
};

/* Initialise from cfg; returns 0 or -1 on out of memory. */
int upstream_rt_init(struct upstream_rt *u, const struct cfg_upstream *cfg);
void upstream_rt_destroy(struct upstream_rt *u);

/* Smooth weighted round robin (nginx's algorithm): each pick adds every
 * server's weight to its current value, takes the largest, and subtracts
 * the total from the winner. Never NULL for a pool with servers. */
struct server_rt *upstream_pick(struct upstream_rt *u);

#endif
