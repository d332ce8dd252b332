/* transport: how bytes cross one socket under a stream.
 *
 * An interface only: a stream (src/stream.c) calls these for every read
 * and write, so what sits above the stream never knows which transport it
 * runs on. Plain TCP (transport_tcp, in src/stream.c) reads straight into
 * the stream's read block and writes the stream's batches as they are.
 * A TLS transport reads records into its own buffer, decrypts into the
 * read block, and encrypts a whole batch into one write; it keeps its
 * state beside the stream it serves. Implementations may use the stream's
 * fields; nothing else may use these functions. */
#ifndef FERRY_TRANSPORT_H
#define FERRY_TRANSPORT_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

struct stream;
struct wreq;

struct transport {
  const char *name; /* "tcp", "tls": for logs */
  /* libuv wants a buffer for the next read (len 0: none now). */
  void (*alloc)(struct stream *st, uv_buf_t *buf);
  /* nread > 0 raw bytes landed in that buffer: make the application bytes
   * available in st->in and return how many were added (0: none yet,
   * e.g. a partial record); < 0 passes an error or EOF through. */
  ssize_t (*input)(struct stream *st, ssize_t nread);
  /* Send one batch of application bytes. Returns 1 when all of it was
   * written at once (no callback follows), 0 when it was queued (the
   * stream's write callback completes it), < 0 on error (nothing queued;
   * the caller still owns wr). */
  int (*send)(struct stream *st, struct wreq *wr);
  /* Reading was (re)started: bytes the transport already holds (decrypted
   * but not delivered because the read block was full) must reach the
   * owner without waiting for the socket. May be NULL. */
  void (*resume)(struct stream *st);
  /* The handle closed: release the transport's state, then call
   * st->cls->closed(st) (at once or later). NULL: the stream calls it. */
  void (*closed)(struct stream *st);
  /* The stream is closing, its handle still open: the last word the
   * transport owes the peer (TLS close_notify) goes out now if the socket
   * takes it at once; nothing waits for it. May be NULL. */
  void (*close)(struct stream *st);
};

/* For transports: the state a transport keeps beside the stream, at the
 * offset the stream's class names (struct stream_class.tr_off). */
#define TRANSPORT_STATE(st, type) ((type *)(void *)((char *)(st) + (st)->cls->tr_off))
/* For transports: write wr (bytes already on the wire format, e.g. TLS
 * records) now, outside any batch; it completes like a batch (the
 * written callback reports its bytes). 0 or a uv error (wr freed). */
int stream_write_raw(struct stream *st, struct wreq *wr);
/* For transports: queue what is left of wr after a partial uv_try_write;
 * the stream's write path completes it. 0 or a uv error. */
int stream_write_queue(struct stream *st, struct wreq *wr);

#endif
