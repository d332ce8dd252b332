/* connpool: one server's idle upstream connections on one worker.
 *
 * Owns the memory of every upstream connection (struct upconn, an
 * upclient plus its pool bookkeeping): it creates them (connect),
 * lends them to a request (checkout), takes them back (release: idle
 * list, or closed when not reusable), and closes those idle past their
 * timeout or when the server speaks or closes while idle. It knows
 * nothing of HTTP beyond upclient_reusable, and nothing of exchanges,
 * sessions or upstream configuration: the limits come with the pool. */
#ifndef FERRY_CONNPOOL_H
#define FERRY_CONNPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "ferry/upclient.h"

/* Idle connections beyond max_idle (up to FACTOR times it) stay pooled
 * for SURPLUS_MS, so bursts reuse them; max_idle 0 pools nothing. */
#define CONNPOOL_SURPLUS_FACTOR 16u
#define CONNPOOL_SURPLUS_MS 1000u

struct upconn;

struct connpool {
  struct upconn *idle; /* idle connections, most recent first */
  uint32_t nidle;
  uint32_t active;          /* connections lent to a request or connecting */
  uint32_t max_idle;        /* keepalive.max_idle */
  uint64_t idle_timeout_ms; /* keepalive.idle_timeout */
  const char *name;         /* the server, for log lines */
  struct tls_client *tls;   /* upstream tls: connections speak TLS (NULL: plain) */
  const char *tls_name;     /* SNI and the name verified */
};

/* A pooled connection. The upclient comes first: an upclient pointer
 * handed out by checkout/connect is the upconn. */
struct upconn {
  struct upclient c;
  uv_timer_t idle_timer;
  struct connpool *pool;
  struct upconn *next; /* idle list */
  int open_handles;
  bool idle;
  uint64_t idle_until; /* idle timeout deadline (loop ms) while idle */
  uint64_t idle_fire;  /* when the armed idle timer fires (loop ms) */
};

void connpool_init(struct connpool *p, uint32_t max_idle, uint64_t idle_timeout_ms,
                   const char *name);
/* An idle connection, lent to the caller (upclient_begin next), or NULL. */
struct upclient *connpool_checkout(struct connpool *p);
/* A new connection to addr, connecting (its holder's `connected` follows
 * once upclient_begin set it). NULL with *err (a uv error) when nothing
 * could be started. */
struct upclient *connpool_connect(struct connpool *p, uv_loop_t *loop, const struct sockaddr *addr,
                                  int *err);
/* The holder is done with uc. keep: the holder allows reuse (the whole
 * request was sent, the worker is not stopping, the server is still
 * configured); it goes idle only if also upclient_reusable and the pool
 * has room, else it is closed. */
void connpool_release(struct upclient *uc, bool keep);
/* Close now (lent or idle). */
void connpool_close(struct upclient *uc);
/* Close every idle connection of p. */
void connpool_close_idle(struct connpool *p);
/* A reload rebuilt the pools: move from's idle connections (same server)
 * to `to`, up to its max_idle; the rest close. */
void connpool_move_idle(struct connpool *from, struct connpool *to);

#endif
