/* stream: one socket's bytes in and out, the one place that reads and
 * writes sockets on the request path.
 *
 * Owns the socket handle, its read block (`in`, with the offset up to
 * which the owner consumed it), the batch of writes being gathered, the
 * count of what queued writes pin (wreq.cost), the high/low watermarks
 * on that count, and one close path. It reads through a transport (plain
 * TCP or TLS, see transport.h) and tells its owner what happened through
 * the callbacks of its class: bytes read, watermark crossed, write done,
 * closed. It must not parse what it carries or know who owns it; the
 * owner (a session, an upstream client) embeds it and finds itself back
 * with container_of.
 *
 * It reads at most STREAM_TURN_BYTES per loop turn before yielding to
 * the other sockets, and can splice what it reads straight to another
 * stream's socket (stream_splice, src/splice.c) instead of into `in`.
 *
 * Reading runs while no hold reason is set (STREAM_HOLD_*): the owner's
 * own (parser blocked, queue full), and flow control (the peer stream's
 * writer is over its high-water mark), which only the exchange and the
 * tunnel set, through stream_hold. The loop that owns the handle must
 * have its bufpool as loop->data. Worker thread only. */
#ifndef FERRY_STREAM_H
#define FERRY_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/splice.h"
#include "ferry/transport.h"

/* Watermarks on what queued writes pin (bytes of memory): over HIGH the
 * owner is told to stop feeding the stream; under LOW, after that, to go
 * on. One connection's memory is bounded by HIGH plus one batch. */
#define STREAM_HIGH (256u * 1024u)
#define STREAM_LOW (64u * 1024u)
/* Bytes one stream may read in one run of libuv's read loop (one loop
 * turn): past it the stream yields (its read buffer is empty, libuv stops
 * for this socket and polls it again next turn, behind the others that
 * were ready), so a socket that always has bytes cannot hold the loop. */
#define STREAM_TURN_BYTES (128u * 1024u)

/* Why the next read's buffer may be withheld (one test per read). */
enum {
  STREAM_WITHHOLD_TURN = 1u,   /* this turn's share is read: yield */
  STREAM_WITHHOLD_SPLICE = 2u, /* a splice job is set (sp) */
};

/* Reasons reading is stopped; reading runs when none is set. */
enum {
  STREAM_HOLD_OWNER = 1u, /* the owner does not want bytes now */
  STREAM_HOLD_FLOW = 2u,  /* flow control: the other side's writer is full */
};

struct stream;

/* What a stream tells its owner; each may close the stream, after which
 * the stream touches nothing of the owner but `closed`. */
struct stream_class {
  const struct transport *tr;
  /* Where the transport's own state sits, in bytes from the stream (0:
   * none; see TRANSPORT_STATE). */
  uint32_t tr_off;
  /* nread > 0 bytes were appended to st->in; < 0: EOF or a read error. */
  void (*read)(struct stream *st, ssize_t nread);
  /* A queued write completed (status < 0: it failed); bytes: its size. */
  void (*written)(struct stream *st, int status, size_t bytes);
  /* The queue went over STREAM_HIGH (high), or under STREAM_LOW after
   * that (!high). May be NULL. */
  void (*watermark)(struct stream *st, bool high);
  /* A transport with a handshake (TLS) finished it (ok) or failed it;
   * the stream closes after a failure. May be NULL. */
  void (*handshake)(struct stream *st, bool ok);
  /* The handle is closed: the owner may free the memory holding st. */
  void (*closed)(struct stream *st);
  /* n bytes went from this stream's socket to its splice job's
   * destination (written there or queued on it) without passing through
   * st->in. Needed only by owners that call stream_splice. */
  void (*spliced)(struct stream *st, size_t n);
};

/* The handle comes first: libuv callbacks find the stream from it. */
struct stream {
  uv_tcp_t tcp;
  const struct stream_class *cls;
  struct iobuf *in;   /* read block; NULL when released */
  struct wreq *batch; /* writes being gathered */
  uint32_t in_off;    /* bytes of in the owner has consumed */
  uint32_t queued;    /* cost of writes not yet completed */
  uint16_t writes_pending;
  uint8_t hold; /* STREAM_HOLD_* */
  bool reading;
  bool closing;
  bool high;             /* over STREAM_HIGH, not yet back under STREAM_LOW */
  bool big;              /* IOBUF_BIG read blocks (a stream reading large bodies) */
  bool yielded;          /* the last read buffer was withheld on purpose */
  uint8_t withold;       /* STREAM_WITHHOLD_*: a read buffer may be withheld */
  uint32_t turn_bytes;   /* read in this run of libuv's read loop */
  struct splice_job *sp; /* not NULL: reads are spliced to sp->dst when they can */
};

extern const struct transport transport_tcp;

/* Initialise st on loop (whose data is its bufpool). 0 or a uv error. */
int stream_init(struct stream *st, uv_loop_t *loop, const struct stream_class *cls);
/* Adopt a connected socket (non-blocking). On error the fd is still the
 * caller's; the stream must be closed. */
int stream_open(struct stream *st, int fd);
/* Connect; cb gets 0 or a uv error (req->data is the caller's). */
int stream_connect(struct stream *st, uv_connect_t *req, const struct sockaddr *addr,
                   uv_connect_cb cb);

/* Queue (p, n) for writing; b, when not NULL, is referenced until the
 * write completes (no copy). Copy variant for short, transient bytes.
 * Both return 0 or -1 (closing, out of memory). */
int stream_add(struct stream *st, const char *p, size_t n, struct iobuf *b);
int stream_add_copy(struct stream *st, const char *p, size_t n);
/* Write the gathered batch (uv_try_write first, a write request only for
 * the rest). May call written/watermark before it returns. */
int stream_flush(struct stream *st);

/* Start or stop reading to match the hold reasons (stream_hold does it). */
void stream_update_reading(struct stream *st);
/* Set or clear a hold reason, starting or stopping reads to match. Runs
 * several times per request: inline, with a call only on a change. */
static inline void stream_hold(struct stream *st, unsigned reason, bool on) {
  uint8_t h = on ? (uint8_t)(st->hold | reason) : (uint8_t)(st->hold & ~reason);
  st->hold = h;
  if (st->reading != (h == 0 && !st->closing))
    stream_update_reading(st);
}
/* Flow control between two streams, the one rule the exchange and the
 * tunnel both use: while the stream a reader's bytes go to is over its
 * high-water mark (high), the reader is held; under its low-water mark
 * again, it reads on. Called from the writer's watermark callback. */
static inline void stream_flow(struct stream *reader, bool high) {
  stream_hold(reader, STREAM_HOLD_FLOW, high);
}

/* From the next read on, move what src reads straight to j->dst's socket
 * (splice.h): whenever dst has nothing queued or gathered and src nothing
 * unconsumed, one attempt per loop turn of up to STREAM_TURN_BYTES (and
 * *j->left); the owner hears of it through its class's spliced callback,
 * EOF and errors through read as usual. Otherwise reads take the usual
 * path. Bytes the destination did not take join its queue, so its
 * watermarks and flow control hold. Both streams must be plain TCP. */
void stream_splice(struct stream *src, struct splice_job *j);
static inline void stream_splice_end(struct stream *src) {
  src->sp = NULL;
  src->withold &= (uint8_t)~STREAM_WITHHOLD_SPLICE;
}

/* Bytes read and not yet consumed by the owner. */
static inline bool stream_pending(const struct stream *st) {
  return st->in && st->in_off < st->in->len;
}
/* Give back the read block when everything in it was consumed (an idle
 * connection holds none). */
void stream_drop_in(struct stream *st);
static inline void stream_release_in(struct stream *st) {
  if (st->in && st->in_off == st->in->len)
    stream_drop_in(st);
}
/* The one close path: stop reading, cancel queued writes (their written
 * calls are not made), close the handle; `closed` follows. Idempotent. */
void stream_close(struct stream *st);

#endif
