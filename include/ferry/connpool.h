/* connpool: connections to upstream servers and the idle keep-alive pool.
 *
 * An upconn is owned by its server's idle list while idle and by one
 * exchange while attached. It owns its socket, a read block and a
 * response parser; it reports to the attached exchange through the
 * exchange_upstream_* hooks and never frees the exchange. */
#ifndef FERRY_CONNPOOL_H
#define FERRY_CONNPOOL_H

#include <llhttp.h>
#include <stdbool.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/chunked.h"

struct worker;
struct server_rt;
struct exchange;

/* Idle connections beyond keepalive.max_idle (up to FACTOR times it) stay
 * pooled for SURPLUS_MS, so bursts reuse them; max_idle 0 pools nothing. */
#define CONNPOOL_SURPLUS_FACTOR 16u
#define CONNPOOL_SURPLUS_MS 1000u

enum upconn_state { UC_CONNECTING, UC_ACTIVE, UC_IDLE, UC_CLOSING };

/* How the current response is being read: a plain head in one read is
 * parsed by h1parse and its Content-Length body counted here (the common
 * case); anything else goes through llhttp from its first byte. */
enum upconn_read_mode { RM_START, RM_FAST_BODY, RM_LLHTTP };

struct upconn {
  uv_tcp_t tcp;
  uv_timer_t idle_timer;
  uv_connect_t connect_req;
  struct worker *w;
  struct server_rt *srv;
  struct exchange *ex; /* attached exchange, NULL when idle or closing */
  struct upconn *next; /* idle list */
  enum upconn_state state;
  int open_handles;

  llhttp_t parser;
  struct chunked_check chunks; /* strict framing of a chunked response body */
  struct iobuf *in;
  size_t parse_off;
  uint64_t body_left; /* RM_FAST_BODY: Content-Length bytes still to come */
  uint8_t rmode;      /* enum upconn_read_mode */
  bool fast_ka;       /* RM_FAST_BODY: the head allows reuse */
  uint8_t resp_minor; /* HTTP/1.x version of the response head */

  struct wreq *batch; /* writes being gathered */
  size_t queued;      /* bytes written but not yet completed */
  unsigned writes_pending;

  bool reused;    /* came from the idle pool */
  bool got_bytes; /* any response byte on this attachment */
  bool reading;
  bool bp_paused; /* reading stopped because the client is slow */
  bool resp_done; /* response message complete */
  bool resp_head; /* response head complete (event for the exchange) */
  bool broken;    /* framing error, trailing bytes or write error */
  bool eof;
  bool tunnel;         /* upgraded: reads go to src/tunnel.c; never pooled again */
  bool keepalive_ok;   /* the response allows reuse (llhttp_should_keep_alive) */
  int parse_error;     /* llhttp_errno_t */
  uint64_t requests;   /* served on this connection */
  uint64_t idle_until; /* idle timeout deadline (loop ms) while idle */
  uint64_t idle_fire;  /* when the armed idle timer fires (loop ms) */
};

/* Take an idle connection to srv for ex, or NULL when the pool is empty. */
struct upconn *connpool_checkout(struct worker *w, struct server_rt *srv, struct exchange *ex);
/* Start connecting to srv for ex; exchange_upstream_connected() is called
 * with 0 or a negative uv error. NULL if nothing could be started (the
 * error is in *err). */
struct upconn *connpool_connect(struct worker *w, struct server_rt *srv, struct exchange *ex,
                                int *err);
/* Detach from the exchange: back to the idle pool when reusable (response
 * ended cleanly and allows keep-alive, request_sent, nothing extra read,
 * no write pending, pool not full), else close. */
void connpool_release(struct upconn *c, bool request_sent);
/* Close now; the attached exchange (if any) is detached first, quietly. */
void connpool_close(struct upconn *c);

/* Writes: gather buffers, then flush once per batch. */
int upconn_add(struct upconn *c, const char *p, size_t n, struct iobuf *b);
int upconn_add_copy(struct upconn *c, const char *p, size_t n);
int upconn_flush(struct upconn *c);
/* Start or stop reading the response (backpressure from the client). */
void upconn_set_bp(struct upconn *c, bool paused);

/* A reload rebuilt the pools: hand from's idle connections (same upstream
 * name and address) to to, up to to's keepalive.max_idle; the rest close. */
void connpool_move_idle(struct server_rt *from, struct server_rt *to);

/* Close every idle connection of this worker (shutdown). */
void connpool_close_idle(struct worker *w);

#endif
