/* session: one client connection.
 *
 * Owns its stream (socket, read block, writes), the request parser and at
 * most one exchange at a time (pipelined requests wait in the read block,
 * in order). Freed only from its stream's close callback, after every
 * write it queued has completed or been cancelled. */
#ifndef FERRY_SESSION_H
#define FERRY_SESSION_H

#include <llhttp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/chunked.h"
#include "ferry/deadline.h"
#include "ferry/http_head.h"
#include "ferry/stream.h"
#include "ferry/tls.h"
#include "ferry/wctx.h"

struct worker;
struct cfg_listener;
struct exchange;

/* ST_BODY: request body progress (client_idle, re-armed on each body
 * read or upstream write completion); ST_CLIENT_STALL: the client stopped
 * reading a response (client_idle, re-armed on each completed write);
 * ST_TUNNEL: no byte either way in an upgraded connection (client_idle). */
enum session_timer {
  ST_NONE,
  ST_HEADER,
  ST_IDLE,
  ST_CONNECT,
  ST_RESPONSE,
  ST_UPSTREAM_IDLE,
  ST_BODY,
  ST_CLIENT_STALL,
  ST_TUNNEL,
  ST_KINDS
};

/* What a session holds only while it has bytes buffered or an exchange
 * running: the read block, the request parser and the per-message parse
 * state, and the client address as text. Taken from the worker's free
 * list when bytes arrive; given back when a keep-alive connection goes
 * idle (session_exchange_done). The parser comes first: the llhttp
 * callbacks find the rx from it. */
struct session_rx {
  llhttp_t parser;
  uint64_t head_bytes;      /* bytes of the current head seen so far */
  uint32_t chunk_ext_bytes; /* chunk extension bytes of the current chunk */
  uint8_t pause_reason;
  bool resume_pending;              /* parser was resumed; run it even with no new bytes */
  bool fast_done;                   /* a request read by h1parse awaits its message end */
  struct head_scan scan;            /* strictness checks over the current head */
  struct chunked_check chunks;      /* strict chunk framing over the current body */
  char client_ip[INET6_ADDRSTRLEN]; /* the session's address as text */
};

/* The stream (socket, read block, write batches) is the first member.
 * st.tcp.data holds the listener's configuration (the one the connection
 * came in on), st.tcp.loop the worker (its loop is its first member).
 * Every live session is in exactly one of the worker's deadline lists,
 * the one for timer_kind (ST_NONE: no deadline). */
struct session {
  struct stream st;
  struct deadline_link tl; /* in the worker's deadline list for timer_kind */
  struct session_rx *rx;   /* NULL while idle with nothing buffered */
  struct exchange *ex;     /* the current request, if any (then rx is set) */

  uint8_t client_addr[16]; /* network order; IPv4 in the first 4 bytes */
  uint16_t client_port;
  uint8_t timer_kind; /* enum session_timer */
  /* Plain bools, not bitfields: they are tested and set on every request,
   * and a bitfield store is a read-modify-write. */
  bool client_v6;
  bool client_known; /* false when the peer address could not be read */
  bool closing;
  bool blocked;    /* parser paused until the exchange lets it go on */
  bool in_process; /* inside session_process: do not re-enter */
  bool peer_eof;
  bool eof_pending; /* EOF read while bytes or the parser were held */
  bool close_after; /* close once queued writes are done */
  bool tunnel;      /* reads go to src/tunnel.c, not the parser */
  bool pp_pending;  /* PROXY protocol header expected before the first request */
  bool q_held;      /* between requests, the client's queue is over STREAM_HIGH: hold */
};

/* The worker a session belongs to (its loop is the worker's first member). */
static inline struct worker *session_worker(const struct session *s) {
  return (struct worker *)(void *)s->st.tcp.loop;
}

/* The listener configuration the connection came in on. */
static inline const struct cfg_listener *session_listener(const struct session *s) {
  return (const struct cfg_listener *)s->st.tcp.data;
}

/* The client address as text (X-Forwarded-For, logs, hashing). Only while
 * s->rx is attached, which it is whenever s->ex is set. */
static inline const char *session_client_ip(const struct session *s) {
  return s->rx->client_ip;
}

/* A connection accepted on worker w's listener lc (fd: non-blocking,
 * close-on-exec, already counted with wctx_conn_opened) becomes a
 * session. The fd is always taken over; lc must outlive the session (the
 * worker keeps its listeners until it exits). */
void session_accept(struct worker *w, const struct cfg_listener *lc, int fd);

struct tls_conn;
/* The connection's TLS state on a TLS listener, else NULL. */
static inline const struct tls_conn *session_tls(const struct session *s) {
  return s->st.cls->tr == &transport_tls ? TRANSPORT_STATE(&s->st, const struct tls_conn) : NULL;
}

/* What the observers show of the connection's TLS, once its handshake
 * completed; NULL on a plain listener. Valid while the session lives. */
const struct tls_info *session_tls_info(const struct session *s);

/* --- used by exchange -------------------------------------------------- */
/* Writes to the client go through s->st (stream_add, stream_flush). */
/* The exchange can take (more) request bytes: resume parsing. */
void session_unblock(struct session *s);
/* Arm the session timer for kind (ST_NONE stops it). Several times per
 * request: inline. */
static inline void session_timer(struct session *s, enum session_timer kind) {
  if (s->closing)
    return;
  s->timer_kind = (uint8_t)kind;
  deadline_set(&session_worker(s)->dl, &s->tl, kind);
}
/* The same with a duration of its own instead of the kind's. */
static inline void session_timer_ms(struct session *s, enum session_timer kind, uint64_t ms) {
  if (s->closing)
    return;
  s->timer_kind = (uint8_t)kind;
  deadline_set_ms(&session_worker(s)->dl, &s->tl, kind, ms);
}
/* The exchange finished (response fully queued). keep_alive false closes
 * the connection once the queue drains. The session frees the exchange
 * and starts the next request later, from the loop's check phase: the
 * caller may go on using ex until it returns to the loop. */
void session_exchange_done(struct session *s, bool keep_alive);
/* The exchange became a tunnel: reads go to src/tunnel.c from now on. */
void session_tunnel_begin(struct session *s);
/* The tunnel ended: drop the exchange and close once the queue drains. */
void session_tunnel_end(struct session *s);
/* Close the connection now, aborting any exchange. */
void session_close(struct session *s);
/* Close all sessions of the worker (shutdown). */
void session_close_all(struct worker *w);
/* Close the keep-alive connections idle between requests (graceful
 * stop); connections with a request begun or not yet read stay. */
void session_close_idle(struct worker *w);

/* --- the worker's deadline lists (used by worker) ---------------------- */
/* Set up w's deadline lists and their timer, and the check handle that
 * finishes exchanges outside their callbacks (worker_init). */
void session_worker_init(struct worker *w);
/* Close those handles (worker_run, after the loop stopped serving). */
void session_worker_close(struct worker *w);
/* Give back w's free session_rx structs (worker_destroy). */
void session_rx_free_all(struct worker *w);

#endif
