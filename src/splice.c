/* splice: socket to pipe to socket, for body bytes nothing in ferry needs
 * to see (see splice.h).
 *
 * Owns the worker's pipe and the attempts; must not touch streams beyond
 * the descriptors it is given, parse bytes, or keep bytes in the pipe
 * after an attempt has been drained. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ferry/splice.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/log.h"

/* As much as one attempt may move (STREAM_TURN_BYTES): a short splice
 * from a socket then means the socket had no more. */
#define SPLICE_PIPE_SIZE (128u * 1024u)

void splice_pipe_open(struct splice_pipe *p) {
  p->rd = p->wr = -1;
  p->cap = 0;
  p->on = false;
#ifdef __linux__
  const char *env = getenv("FERRY_SPLICE");
  if (env && (strcmp(env, "0") == 0 || strcmp(env, "off") == 0)) {
    log_debug("splice: off (FERRY_SPLICE=%s); bodies are copied through ferry", env);
    return;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    log_debug("splice: off, cannot create a pipe: %s (check the open-file limit)", strerror(errno));
    return;
  }
  int cap = fcntl(fds[1], F_GETPIPE_SZ);
  if (cap < 0 || (unsigned)cap < SPLICE_PIPE_SIZE)
    cap = fcntl(fds[1], F_SETPIPE_SZ, (int)SPLICE_PIPE_SIZE);
  if (cap <= 0) {
    close(fds[0]);
    close(fds[1]);
    log_debug("splice: off, the pipe's size is unknown: %s", strerror(errno));
    return;
  }
  p->rd = fds[0];
  p->wr = fds[1];
  p->cap = (uint32_t)cap;
  p->on = true;
#else
  log_debug("splice: not available on this system; bodies are copied through ferry");
#endif
}

void splice_pipe_close(struct splice_pipe *p) {
  if (p->rd >= 0)
    close(p->rd);
  if (p->wr >= 0)
    close(p->wr);
  p->rd = p->wr = -1;
  p->on = false;
}

#ifdef __linux__
/* Write up to n pipe bytes to dst_fd: how many went (errors in j). */
static size_t pipe_out(struct splice_job *j, int dst_fd, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t o =
        splice(j->pipe->rd, NULL, dst_fd, NULL, n - done, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (o > 0) {
      done += (size_t)o;
      continue;
    }
    if (o < 0 && errno == EINTR)
      continue;
    if (o < 0 && errno != EAGAIN)
      j->dst_err = -errno; /* libuv's errors are negated errno values */
    break;
  }
  return done;
}
#endif

void splice_run(struct splice_job *j, int src_fd, int dst_fd, size_t max) {
  j->moved = j->out = j->stuck = 0;
  j->src_err = j->dst_err = 0;
  j->ran = true;
#ifdef __linux__
  size_t want = max;
  if (j->left && *j->left < want)
    want = (size_t)*j->left;
  while (want > 0) {
    size_t n = want < j->pipe->cap ? want : j->pipe->cap;
    ssize_t in = splice(src_fd, NULL, j->pipe->wr, NULL, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (in == 0) {
      j->src_err = UV_EOF;
      break;
    }
    if (in < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        j->src_err = -errno;
      break;
    }
    j->moved += (size_t)in;
    want -= (size_t)in;
    size_t out = pipe_out(j, dst_fd, (size_t)in);
    j->out += out;
    if (out < (size_t)in) {
      j->stuck = (size_t)in - out;
      break;
    }
  }
#else
  (void)src_fd;
  (void)dst_fd;
  (void)max;
  j->src_err = UV_ENOSYS;
#endif
}

ssize_t splice_drain(struct splice_job *j, char *p, size_t n) {
  char sink[4096];
  bool discard = !p || n == 0;
  size_t got = 0;
  while (j->stuck > 0 && (discard || got < n)) {
    size_t want = discard ? sizeof(sink) : n - got;
    if (want > j->stuck)
      want = j->stuck;
    ssize_t r = read(j->pipe->rd, discard ? sink : p + got, want);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r < 0 ? -errno : UV_EIO; /* bytes the pipe was said to hold are gone */
    j->stuck -= (size_t)r;
    if (!discard)
      got += (size_t)r;
  }
  return (ssize_t)got;
}
