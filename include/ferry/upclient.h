/* upclient: the HTTP/1 client of one upstream connection.
 *
 * Owns the connection's stream (socket, read block, write batches), the
 * response parser (the one-pass h1parse for a plain head with a
 * Content-Length body, llhttp for everything else, from the response's
 * first byte), and the decision whether the connection may be reused. It
 * reports to whoever holds it (an exchange, or the pool while idle)
 * through a callbacks struct and the owner pointer given with it; the
 * response head goes into storage the owner lends (struct upclient_sink).
 * It never includes exchange, session or tunnel headers, and never frees
 * its owner. Whoever created it (connpool) is told when its handle closed
 * (on_closed) and frees the memory.
 *
 * Callbacks are only made from the stream's callbacks, after the parser
 * returned; an owner that releases or closes the upclient inside one of
 * them must not touch it afterwards, and the upclient touches nothing of
 * itself after `read_done`, `error` or `connected` with an error. */
#ifndef FERRY_UPCLIENT_H
#define FERRY_UPCLIENT_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry/buf.h"
#include "ferry/chunked.h"
#include "ferry/http_head.h"
#include "ferry/stream.h"
#include "ferry/tls.h"

/* Where a response head goes: the owner's arena and header list. Strings
 * that arrive whole in one read block become slices of it (the first
 * such pins it in *pin, released by the owner); others are copied. */
struct upclient_sink {
  struct arena *arena;
  struct iobuf **pin;
  struct hdr_list *hdrs;
  struct slice *reason;
};

/* A response head, as the parser saw it. */
struct upclient_head {
  int status;
  bool chunked;    /* Transfer-Encoding: chunked */
  bool has_length; /* Content-Length */
  uint64_t length;
  bool keep_alive; /* the response allows reuse as far as its head says */
  uint8_t minor;   /* HTTP/1.minor of the response */
};

struct upclient;

struct upclient_cbs {
  /* Connecting finished: 0, or a uv error (the owner closes it). */
  void (*connected)(void *owner, int status);
  /* A response head: -1 invalid (the response fails with UV_EPROTO), 0 a
   * body follows as framed, 1 no body whatever the head says (HEAD, 1xx,
   * 204, 304). 1xx heads are followed by another head. */
  int (*head)(void *owner, const struct upclient_head *h);
  /* Body bytes, framing removed, from read block b. 0 or -1 (fails).
   * p == NULL: n bytes were spliced to the destination (see
   * upclient_splice_to). */
  int (*body)(void *owner, const char *p, size_t n, struct iobuf *b);
  /* A message ended: 1 for the final response (parsing stops), 0 for an
   * interim one (the next head follows), -1 on error. */
  int (*done)(void *owner);
  /* Everything one read produced has been handed over (flush it). */
  void (*read_done)(void *owner);
  /* The response failed: a uv error, UV_EOF (closed before it ended) or
   * UV_EPROTO (invalid). The owner closes or releases the upclient. */
  void (*error)(void *owner, int err);
  /* A queued write completed. */
  void (*written)(void *owner);
  /* The write queue went over the high-water mark / back under low. */
  void (*watermark)(void *owner, bool high);
  /* Raw mode (after an upgrade): nread bytes appended to the stream's
   * read block, or an error / EOF. */
  void (*raw)(void *owner, ssize_t nread);
};

/* How the current response is read: a plain head in one read is parsed
 * by h1parse and its Content-Length body counted here (the common case);
 * anything else goes through llhttp from its first byte. */
enum upclient_read_mode { UR_START, UR_FAST_BODY, UR_LLHTTP };

struct upclient {
  struct stream st; /* first: the stream callbacks find the upclient */
  uv_connect_t connect_req;
  const struct upclient_cbs *cbs;
  void *owner;
  struct upclient_sink sink;
  const char *name;                     /* the server, for log lines */
  void (*on_closed)(struct upclient *); /* the creator frees the memory */

  llhttp_t parser;
  struct chunked_check chunks;      /* strict framing of a chunked response body */
  struct slice cur_name, cur_value; /* the header field being parsed */
  uint64_t body_left;               /* UR_FAST_BODY: Content-Length bytes still to come */
  uint8_t rmode;                    /* enum upclient_read_mode */
  bool fast_ka;                     /* UR_FAST_BODY: the head allows reuse */
  bool head_request;                /* the request was HEAD: no body whatever is declared */
  bool connecting;
  bool got_bytes;     /* any response byte since upclient_begin */
  bool resp_done;     /* the final response ended */
  bool broken;        /* framing error, trailing bytes or write error: never reuse */
  bool eof;           /* the server closed */
  bool raw;           /* upgraded: reads go to cbs->raw; never reused */
  bool keepalive_ok;  /* the response allows reuse */
  int parse_error;    /* llhttp_errno_t, for logs */
  bool splice_wanted; /* the holder lets the body go straight to sj.dst */
  struct splice_job sj;
  bool tls_on;         /* the stream runs over TLS (state in tls) */
  struct tls_conn tls; /* last: set up only by upclient_use_tls */
};

/* Set up uc on loop, not connected. name is kept (not copied). */
int upclient_init(struct upclient *uc, uv_loop_t *loop, const char *name,
                  void (*on_closed)(struct upclient *));
/* Speak TLS on this connection (after upclient_init, before connecting):
 * `connected` then follows the handshake, and a failed one reports
 * UV_EPROTO after logging why. name: SNI and the name verified. 0 or -1. */
int upclient_use_tls(struct upclient *uc, struct tls_client *cli, const char *name);
/* Connect to addr; cbs->connected follows (owner set by upclient_begin). */
int upclient_connect(struct upclient *uc, const struct sockaddr *addr);
/* A new request by owner: response state reset, reading on. */
void upclient_begin(struct upclient *uc, const struct upclient_cbs *cbs, void *owner,
                    const struct upclient_sink *sink, bool head_request);
/* Hand the connection to another holder (the idle pool) without a request. */
void upclient_hand_over(struct upclient *uc, const struct upclient_cbs *cbs, void *owner);
/* From the holder's head callback: the response body may go from this
 * connection's socket straight to dst's (splice.h, through the worker's
 * pipe), when its framing is a Content-Length or the close and both are
 * plain TCP. The body callback then also gets (NULL, n, NULL): n bytes
 * that already went to dst. Ends with the response. */
void upclient_splice_to(struct upclient *uc, struct stream *dst, const struct splice_pipe *pipe);
/* From now on reads go to cbs->raw (an upgraded connection). */
void upclient_set_raw(struct upclient *uc);
/* Whether the connection may carry another request: the response ended
 * cleanly and allows it, the whole request was sent (request_sent), no
 * byte came after the response, no write is pending or gathered. */
bool upclient_reusable(const struct upclient *uc, bool request_sent);
/* Close; on_closed follows. Callbacks stop at once. */
void upclient_close(struct upclient *uc);

#endif
