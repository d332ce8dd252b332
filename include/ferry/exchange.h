/* exchange: one request, from route to last byte.
 *
 * Owned by its session; created when a request message begins and freed by
 * the session (from the loop's check phase) after exchange_finish, or when
 * the session closes. Holds the parsed request and response heads (in its
 * arena), the route, the chosen server, the attached upstream client, and
 * the fields the observers (access log, metrics, inspector) read. */
#ifndef FERRY_EXCHANGE_H
#define FERRY_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/inspect.h"
#include "ferry/retry.h"
#include "ferry/tunnel.h"

#define EX_MAX_HEADERS 128
#define EX_MAX_TRIED 10 /* servers remembered per request (retries, access log) */

struct session;
struct worker;
struct upclient;
struct tls_conn;
struct tls_info;
struct server_rt;
struct upstream_rt;
struct worker_gen;
struct subreq;

enum exchange_state {
  EX_HEAD,       /* request head arriving */
  EX_CONNECTING, /* waiting for an upstream connection (or auth_request's answer) */
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
  bool method_known;     /* method was read (a rejected head may stop before it) */
  bool version_known;    /* major and minor were read */
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
  struct slice norm; /* the normalised path routes were matched on; NULL before */
  /* The client address for logs and hashing, set when the head is
   * complete: the peer's, or the one a trusted proxy's X-Forwarded-For
   * names (src/forwarded.c); NULL before. peer_trusted: the peer is in the
   * listener's trusted_proxies. */
  const char *client_ip;
  bool peer_trusted;
  /* What the observers (access log, metrics, inspector) need of the
   * connection, copied here so they never reach into the session: the
   * peer's address text (valid while the exchange lives) and port, the
   * listener's address, and the bytes of the request head. */
  const char *peer_ip;
  uint8_t peer_addr[16]; /* the same, binary (network order; IPv4 in the first 4 bytes) */
  uint16_t peer_port;
  bool peer_v6, peer_known;
  const char *listener;
  const struct tls_conn *tls;      /* the connection's TLS state on a TLS listener, else NULL */
  const struct tls_info *tls_info; /* what the observers show of it (session_tls_info) */
  uint64_t req_head_bytes;

  const struct cfg_route *route;
  /* The generation whose router matched route: its upstreams and traffic
   * state are the ones route's indexes name, also when exchange_forward
   * runs after a reload (auth_request). Alive while gen is held. */
  struct worker_gen *route_gen;
  struct upstream_rt *up;
  bool up_held; /* holds a max_requests place of up (upstream_enter) */
  /* W3C trace context (src/trace.c): the traceparent sent upstream and
   * its trace id; trace_id[0] == 0 until the request is forwarded */
  char traceparent[56];
  char trace_id[33];
  int refused; /* status of a traffic-control refusal (403, 429; 503 circuit open), 0 none */
  /* auth_request (src/authreq.c): the check in flight, the target to
   * forward once it passes, the request_headers ops with its
   * pass_headers (arena), and what it decided, for the observers */
  struct subreq *auth;
  struct slice auth_target;
  const struct cfg_header_ops *auth_ops;
  const char *auth_note; /* "allowed", "denied", "error"; NULL: no check */
  int auth_status;       /* the auth service's status, 0 when none came */
  /* mirror (src/mirror.c): the copy while the request body still flows
   * to it, and what became of it: "sent", "dropped", "failed"; NULL when
   * the request was not sampled */
  struct subreq *mirror;
  const char *mirror_note;
  struct server_rt *srv;
  struct upclient *uc; /* the upstream connection, while attached */
  bool uc_reused;      /* uc came from the idle pool */

  /* response, as parsed from the upstream */
  int status;
  uint8_t resp_minor; /* HTTP/1.x version of the upstream's response */
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
  bool attempt_open;                     /* the attempt on srv has no result counted yet */
  uint32_t retry_after;                  /* 503 for want of a server: Retry-After */
  /* retries (src/retry.c): how many by reason, the budget, and the answer
   * of a status retry being read and dropped (its body never reaches the
   * client) */
  uint8_t nretries[RETRY_REASON_N];
  uint8_t tried_why[EX_MAX_TRIED];     /* why attempt i was retried: reason + 1; 0 = it answered */
  uint16_t tried_status[EX_MAX_TRIED]; /* RETRY_STATUS: the status dropped */
  bool budget_taken;                   /* a budget place is held for the retry starting */
  bool budget_exhausted;               /* a retry was refused by the route's budget */
  bool discarding;                     /* reading a status-retried answer to drop it */
  uint64_t t_fwd_ms;                   /* the first attempt began (route timeout bound) */
  bool logged;
  bool done_pending; /* on the worker's done_list (src/session.c) */
  bool done_keep;    /* ...and the connection may stay open */
  struct exchange *done_next;
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
  struct worker_gen *gen; /* held from exchange_new to exchange_free; exchange_init keeps it */
};

/* --- called by session ------------------------------------------------- */
/* An exchange from the worker's free list (uninitialised: exchange_init
 * next) holding a reference on the current configuration generation, or
 * NULL on OOM. exchange_free gives it back (after exchange_reset). */
struct exchange *exchange_new(struct worker *w);
void exchange_free(struct worker *w, struct exchange *ex);
/* Free the worker's recycled exchanges (worker_destroy). */
void exchange_free_all(struct worker *w);
void exchange_init(struct exchange *ex, struct session *s, struct worker *w);
/* The head is complete: route and start forwarding or answer directly. */
void exchange_start(struct exchange *ex);
/* Request body bytes (p, n) from block b (chunk framing already removed). */
int exchange_request_body(struct exchange *ex, const char *p, size_t n, struct iobuf *b);
/* The session parsed what one read brought: send the body bytes on. */
void exchange_request_flush(struct exchange *ex);
/* The request message ended. */
void exchange_request_done(struct exchange *ex);
/* The session timer fired while this exchange was current. */
void exchange_timeout(struct exchange *ex, int kind);
/* The client went away or the session is closing: stop everything. */
void exchange_abort(struct exchange *ex);
/* The client's write queue went over its high-water mark, or back under
 * its low one (flow control, see src/exchange.c). */
void exchange_client_watermark(struct exchange *ex, bool high);
/* Client bytes (or EOF/error) while the exchange is a tunnel. */
static inline void exchange_client_tunnel_read(struct exchange *ex, ssize_t nread) {
  tunnel_client_read(&ex->tun, nread);
}
/* Release the arena and references; the struct may be reused. */
void exchange_reset(struct exchange *ex);
/* Answer with ferry's own response (error statuses, respond:, 404). */
void exchange_reply(struct exchange *ex, int status, const char *body, bool close);

/* Send a complete response ferry makes itself (content type, body, and a
 * Location when location.n) and end the exchange; once part of a response
 * went out, the connection is cut instead. */
void exchange_reply_full(struct exchange *ex, int status, struct slice content_type,
                         struct slice body, struct slice location, bool close);
/* Whether the connection stays open after an answer ferry makes itself
 * (close: the caller wants it closed). */
bool exchange_reply_keep(const struct exchange *ex, bool close);
/* Answer with the complete response in b (head, then body_n body bytes;
 * referenced, not taken), built with keep-alive `keep` from
 * exchange_reply_keep, and end the exchange. */
void exchange_reply_block(struct exchange *ex, int status, struct iobuf *b, uint64_t body_n,
                          bool keep);
/* Routed and admitted: pick a server of the route's upstream, build the
 * upstream head (target as routed, norm, host) and connect. Called by
 * exchange_start, or by auth_request once the auth service said yes. */
void exchange_forward(struct exchange *ex, struct slice target, struct slice norm,
                      struct slice host);

/* A timer for the current phase: request body progress, upstream
 * response, response body progress or client stalled (see session.h). */
void exchange_arm_timer(struct exchange *ex);

/* --- used inside the exchange's upstream client callbacks ---------------- */
/* Log the exchange once (access log, metrics, inspector): it ended. */
void exchange_log(struct exchange *ex);
/* The 101 head is queued: pump bytes both ways (src/extunnel.c). */
void exchange_tunnel_begin(struct exchange *ex);
void exchange_upstream_connected(struct exchange *ex, int status);
/* The upstream connection failed (error < 0: uv error, or EOF). */
void exchange_upstream_error(struct exchange *ex, int error);

#endif
