/* splice: body bytes moved from one socket to another through a pipe,
 * never copied into ferry (Linux splice(2)).
 *
 * Owns the worker's pipe (struct splice_pipe, in the worker context) and
 * the record of one splicing source (struct splice_job): where its bytes
 * go, how many it may still take, and what the last attempt did. It must
 * not parse what it moves or know the owners of the sockets; the stream
 * (src/stream.c) runs the attempts from its read path and reports them.
 * The pipe is empty between attempts: what the destination did not take
 * is read back out at once (splice_drain), so one pipe serves every
 * connection of a worker. Worker thread only. */
#ifndef FERRY_SPLICE_H
#define FERRY_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The worker's pipe. on is false when splicing is off (FERRY_SPLICE=0) or
 * the pipe could not be made: bodies then take the read/write path. */
struct splice_pipe {
  int rd, wr;
  uint32_t cap; /* bytes the pipe holds: the most one attempt leaves in it */
  bool on;
};

struct stream;

struct splice_job {
  struct stream *dst;             /* where the bytes go */
  const struct splice_pipe *pipe; /* the worker's */
  const uint64_t *left;           /* bytes the body still has; NULL: until EOF */
  /* The last attempt (splice_run): */
  size_t moved; /* bytes taken from the source */
  size_t out;   /* of them, written to the destination's socket */
  size_t stuck; /* of them, left in the pipe (moved - out) */
  int src_err;  /* 0, UV_EOF or a uv error reading the source */
  int dst_err;  /* 0 or a uv error writing the destination */
  bool ran;     /* an attempt waits to be reported */
};

/* Open the worker's pipe unless FERRY_SPLICE is "0" or "off" (then, or on
 * failure, p->on is false and a debug line says why). */
void splice_pipe_open(struct splice_pipe *p);
void splice_pipe_close(struct splice_pipe *p);

/* One attempt: up to max bytes (and *left) from socket src_fd into the
 * pipe and on to socket dst_fd, until the source has nothing more, the
 * destination is full, or max. Sets the attempt's fields of j. */
void splice_run(struct splice_job *j, int src_fd, int dst_fd, size_t max);
/* Read up to n of the bytes the attempt left in the pipe into p: the
 * count read (j->stuck goes down by it), or a uv error. n == 0 or p ==
 * NULL: throw them away. */
ssize_t splice_drain(struct splice_job *j, char *p, size_t n);

#endif
