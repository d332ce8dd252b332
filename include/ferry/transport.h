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
};

#endif
