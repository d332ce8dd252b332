/* exchange: one request, from route to last byte.
 *
 * Owned by its session; created when a request message begins and freed by
 * the session after exchange_finish/abort. Holds the parsed request and
 * response heads (copied into its arena), the route, the chosen server and
 * the attached upstream connection. */
#ifndef FERRY_EXCHANGE_H
#define FERRY_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/inspect.h"
#include "ferry/tunnel.h"

#define EX_MAX_HEADERS 128
#define EX_MAX_TRIED 8 /* servers remembered per request (retries, access log) */

struct session;
struct worker;
struct upconn;
struct server_rt;
struct upstream_rt;
struct worker_gen;

enum exchange_state {
  EX_HEAD,       /* request head arriving */
  EX_CONNECTING, /* waiting for an upstream connection */
  EX_FORWARDING, /* request (head/body) flowing upstream, response awaited or flowing */
  EX_TUNNEL,     /* 101 relayed: bytes pumped both ways (src/tunnel.c) */
  EX_DONE        /* response fully queued to the client */
};

struct exchange {
  struct session *s;
  struct worker *w;
  enum exchange_state state;
  struct arena arena;
  uint64_t t_start_ms;

  /* request, as parsed */
  int method; /* llhttp_method_t */
  struct slice url;
  struct slice cur_name, cur_value;
  struct hdr_list req_hdrs;
  int minor;             /* HTTP/1.minor (1.2+ becomes 1 once the head is checked) */
  int major;             /* HTTP/major as received */
  bool target_clean;     /* the one-pass parser took the target: visible ASCII only */
  bool client_keepalive; /* what the request asked for */
  bool req_chunked;
  bool req_has_length;
  uint64_t req_length; /* Content-Length when not chunked */
  bool req_done;       /* whole request parsed */
  bool too_many_headers;
  bool head_overflow;
  uint64_t req_body_bytes;
  char request_id[24];
  struct slice rid;
  struct slice host; /* as sent by the client (with port), for logs */

  const struct cfg_route *route;
  struct upstream_rt *up;
  struct server_rt *srv;
  struct upconn *uc;

  /* response, as parsed from the upstream */
  int status;
  struct slice reason;
  struct slice rcur_name, rcur_value;
  struct hdr_list resp_hdrs;
  enum body_framing client_framing;
  bool resp_started; /* head queued to the client */
  bool resp_done;
  bool keep_alive; /* to the client */
  uint64_t resp_body_bytes;
  uint64_t bytes_to_client;
  const char *error_note;                /* why it ended badly, for the log */
  struct iobuf *uhead_buf;               /* holds uhead until every write of it completed */
  struct iobuf *req_pin;                 /* read block the request head's slices point into */
  struct iobuf *resp_pin;                /* read block the response head's slices point into */
  bool skip_1xx;                         /* parsing an interim response */
  bool retried;                          /* the keep-alive race retry was used */
  struct server_rt *tried[EX_MAX_TRIED]; /* servers attempted, in order */
  uint32_t ntried;                       /* attempts (may exceed EX_MAX_TRIED) */
  bool srv_counted;                      /* srv's in-flight count is held */
  uint32_t retry_after;                  /* 503 for want of a server: Retry-After */
  bool logged;
  bool body_too_large;
  bool upgrade_req;      /* Upgrade + Connection: upgrade from an HTTP/1.1 client */
  bool upgraded;         /* the upstream answered 101: tunnel after the head */
  uint32_t req_trailers; /* index in req_hdrs where trailer fields start */
  uint32_t resp_trailers;
  struct tunnel tun;
  struct inspect_ex insp; /* inspector capture; insp.on false unless the route asks */

  /* Header storage last: exchange_init clears everything before it. */
  struct hdr req_store[EX_MAX_HEADERS];
  struct hdr resp_store[EX_MAX_HEADERS];
  struct worker_gen *gen; /* set by worker_exchange_get; exchange_init keeps it */
};

/* --- called by session ------------------------------------------------- */
void exchange_init(struct exchange *ex, struct session *s, struct worker *w);
/* The head is complete: route and start forwarding or answer directly. */
void exchange_start(struct exchange *ex);
/* Request body bytes (p, n) from block b (chunk framing already removed). */
int exchange_request_body(struct exchange *ex, const char *p, size_t n, struct iobuf *b);
/* The request message ended. */
void exchange_request_done(struct exchange *ex);
/* The session timer fired while this exchange was current. */
void exchange_timeout(struct exchange *ex, int kind);
/* The client went away or the session is closing: stop everything. */
void exchange_abort(struct exchange *ex);
/* Client's write queue dropped below the low-water mark. */
void exchange_client_drained(struct exchange *ex);
/* Release the arena and references; the struct may be reused. */
void exchange_reset(struct exchange *ex);
/* Answer with ferry's own response (error statuses, respond:, 404). */
void exchange_reply(struct exchange *ex, int status, const char *body, bool close);

/* A timer for the current phase: request body progress, upstream
 * response, response body progress or client stalled (see session.h). */
void exchange_arm_timer(struct exchange *ex);
/* The tunnel ended (either side closed, idle, or an error): log it. */
void exchange_tunnel_done(struct exchange *ex);

/* --- called by connpool ------------------------------------------------ */
void exchange_upstream_connected(struct exchange *ex, int status);
/* Response bytes were parsed: head/body/end flags are on the upconn. */
void exchange_upstream_data(struct exchange *ex);
/* The upconn's write queue dropped below the low-water mark / finished. */
void exchange_upstream_drained(struct exchange *ex);
/* The upstream connection failed (error < 0: uv error, or EOF). */
void exchange_upstream_error(struct exchange *ex, int error);

/* Response parser glue, used by connpool's llhttp callbacks. */
int exchange_resp_header_name(struct exchange *ex, const char *p, size_t n);
int exchange_resp_header_value(struct exchange *ex, const char *p, size_t n);
int exchange_resp_header_done(struct exchange *ex);
int exchange_resp_status(struct exchange *ex, const char *p, size_t n);
/* Head complete: returns what llhttp's on_headers_complete should return. */
int exchange_resp_headers_complete(struct exchange *ex, int status, bool upstream_chunked,
                                   bool upstream_length, uint64_t length, bool upstream_keepalive);
int exchange_resp_body(struct exchange *ex, const char *p, size_t n, struct iobuf *b);
int exchange_resp_message_complete(struct exchange *ex);

#endif
