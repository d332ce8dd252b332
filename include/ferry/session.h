/* session: one client connection.
 *
 * Owns the socket, its read block, the request parser and at most one
 * exchange at a time (pipelined requests wait in the read block, in order).
 * Freed only from the close callbacks of its handles, after every write it
 * queued has completed or been cancelled. */
#ifndef FERRY_SESSION_H
#define FERRY_SESSION_H

#include <llhttp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/http_head.h"

struct worker;
struct worker_listener;
struct cfg_listener;
struct exchange;

/* Queued-write watermarks for backpressure (bytes). */
#define BP_HIGH (256u * 1024u)
#define BP_LOW (64u * 1024u)

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
  ST_TUNNEL
};

struct session {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct worker *w;
  struct session *next, *prev; /* worker's list */
  int open_handles;

  llhttp_t parser;
  struct iobuf *in; /* NULL while idle with nothing buffered */
  size_t parse_off;
  uint64_t head_bytes; /* bytes of the current head seen so far */

  struct exchange *ex; /* the current request, if any */
  enum session_timer timer_kind;
  uint64_t timer_due;  /* deadline of timer_kind (loop ms) */
  uint64_t timer_fire; /* when the armed uv timer fires (loop ms) */

  struct wreq *batch;
  size_t queued;
  unsigned writes_pending;

  bool closing;
  bool blocked;   /* parser paused until the exchange lets it go on */
  bool bp_paused; /* upstream is slow: stop reading */
  bool reading;
  bool in_process; /* inside session_process: do not re-enter */
  bool peer_eof;
  bool eof_pending;    /* EOF read while bytes or the parser were held */
  bool close_after;    /* close once queued writes are done */
  bool resume_pending; /* parser was resumed; run it even with no new bytes */
  bool fast_done;      /* a request read by h1parse awaits its message end */
  int pause_reason;
  unsigned requests;
  bool tunnel;              /* reads go to src/tunnel.c, not the parser */
  struct head_scan scan;    /* strictness checks over the current head */
  uint32_t chunk_ext_bytes; /* chunk extension bytes of the current chunk */

  const struct cfg_listener *listener; /* the listener it came in on */
  bool pp_pending;                     /* PROXY protocol header expected before the first request */
  bool over_limit; /* accepted past limits.max_connections: each request gets 503 */
  char client_ip[INET6_ADDRSTRLEN];
  uint16_t client_port;
};

/* Accept a connection from listener l; on failure the socket is closed. */
void session_accept(struct worker_listener *l);

/* --- used by exchange -------------------------------------------------- */
/* Queue bytes for the client; b (optional) is referenced until written. */
int session_add(struct session *s, const char *p, size_t n, struct iobuf *b);
int session_add_copy(struct session *s, const char *p, size_t n);
int session_flush(struct session *s);
/* The exchange can take (more) request bytes: resume parsing. */
void session_unblock(struct session *s);
/* The upstream's queue passed/dropped under the watermarks. */
void session_set_bp(struct session *s, bool paused);
/* Arm the session timer for kind (ST_NONE stops it). */
void session_timer(struct session *s, enum session_timer kind);
/* The exchange finished (response fully queued). keep_alive false closes
 * the connection once the queue drains. The session frees the exchange. */
void session_exchange_done(struct session *s, bool keep_alive);
/* The exchange became a tunnel: reads go to src/tunnel.c from now on. */
void session_tunnel_begin(struct session *s);
/* The tunnel ended: drop the exchange and close once the queue drains. */
void session_tunnel_end(struct session *s);
/* Close the connection now, aborting any exchange. */
void session_close(struct session *s);
/* Close all sessions of the worker (shutdown). */
void session_close_all(struct worker *w);

#endif
