/* script_server: a scripted HTTP/1 server on 127.0.0.1 for loop tests.
 *
 * A thread with plain blocking sockets accepts one connection, reads one
 * request head (through the empty line; no body), answers with the
 * scripted bytes in one send(), then closes at once (close_after) or
 * waits for the client to close first. Every blocking call is bounded
 * by SO_RCVTIMEO. The thread asserts nothing: it records what happened
 * and the test checks it after script_server_join. */
#ifndef FERRY_TEST_SCRIPT_SERVER_H
#define FERRY_TEST_SCRIPT_SERVER_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#define SCRIPT_TIMEOUT_S 5

struct script_server {
  int lfd;
  uint16_t port;
  const char *response;
  size_t resp_len;
  bool close_after;
  uv_thread_t thread;
  /* what the thread saw */
  char req[4096];
  size_t req_len;
  bool accepted, answered;
  bool peer_closed; /* the client closed after the response */
  int error;        /* errno of the first failure, 0 if none */
};

static inline void script_timeout(int fd) {
  struct timeval tv = {SCRIPT_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static inline bool script_send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

static void script_server_main(void *arg) {
  struct script_server *s = arg;
  int fd = accept(s->lfd, NULL, NULL); /* bounded by the listener's SO_RCVTIMEO */
  if (fd < 0) {
    s->error = errno;
    return;
  }
  s->accepted = true;
  script_timeout(fd);
  while (!memmem(s->req, s->req_len, "\r\n\r\n", 4)) {
    ssize_t r = recv(fd, s->req + s->req_len, sizeof(s->req) - 1 - s->req_len, 0);
    if (r <= 0 || s->req_len + (size_t)r >= sizeof(s->req) - 1) {
      s->error = r < 0 ? errno : EPROTO;
      close(fd);
      return;
    }
    s->req_len += (size_t)r;
  }
  s->req[s->req_len] = '\0';
  if (!script_send_all(fd, s->response, s->resp_len)) {
    s->error = errno;
    close(fd);
    return;
  }
  s->answered = true;
  if (!s->close_after) {
    char tmp[512];
    ssize_t r;
    while ((r = recv(fd, tmp, sizeof(tmp), 0)) > 0)
      ;
    if (r == 0)
      s->peer_closed = true;
    else
      s->error = errno;
  }
  close(fd);
}

/* Listen on 127.0.0.1 (a free port) and start the thread. */
static inline void script_server_start(struct script_server *s, const char *response, size_t len,
                                       bool close_after) {
  memset(s, 0, sizeof(*s));
  s->response = response;
  s->resp_len = len;
  s->close_after = close_after;
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(s->lfd, 0);
  script_timeout(s->lfd);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
  cr_assert_eq(listen(s->lfd, 4), 0);
  socklen_t alen = sizeof(a);
  cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
  s->port = ntohs(a.sin_port);
  cr_assert_eq(uv_thread_create(&s->thread, script_server_main, s), 0);
}

static inline void script_server_addr(const struct script_server *s, struct sockaddr_in *a) {
  cr_assert_eq(uv_ip4_addr("127.0.0.1", s->port, a), 0);
}

static inline void script_server_join(struct script_server *s) {
  uv_thread_join(&s->thread);
  close(s->lfd);
  cr_assert_eq(s->error, 0, "scripted server: %s", strerror(s->error));
}

#endif
