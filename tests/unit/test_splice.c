/* splice: attempts over TCP socket pairs on loopback, through the pipe. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/splice.h"

/* A connected pair of non-blocking loopback TCP sockets: fds[0] writes to
 * fds[1]. */
static void tcp_pair(int fds[2]) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t n = sizeof(a);
  cr_assert(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0);
  cr_assert(listen(l, 1) == 0);
  cr_assert(getsockname(l, (struct sockaddr *)&a, &n) == 0);
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(connect(fds[0], (struct sockaddr *)&a, sizeof(a)) == 0);
  fds[1] = accept(l, NULL, NULL);
  cr_assert(fds[1] >= 0);
  close(l);
  for (int i = 0; i < 2; i++)
    fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
}

static void put(int fd, const char *p, size_t n) {
  while (n > 0) {
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    cr_assert_eq(poll(&pf, 1, 5000), 1, "fd %d never became writable", fd);
    ssize_t w = write(fd, p, n);
    cr_assert(w > 0);
    p += w;
    n -= (size_t)w;
  }
}

/* Wait until fd has bytes (or EOF) to read. */
static void wait_readable(int fd) {
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  cr_assert_eq(poll(&pf, 1, 5000), 1, "fd %d never became readable", fd);
}

/* Read exactly n bytes. */
static void get(int fd, char *p, size_t n) {
  while (n > 0) {
    wait_readable(fd);
    ssize_t r = read(fd, p, n);
    cr_assert(r > 0, "bytes missing");
    p += r;
    n -= (size_t)r;
  }
}

/* src: bytes arrive on src[1]; dst: spliced out of dst[0], arrive on dst[1]. */
static int src[2], dst[2];
static struct splice_pipe pipe_;

static void setup(void) {
  unsetenv("FERRY_SPLICE");
  splice_pipe_open(&pipe_);
  cr_assert(pipe_.on, "the pipe opens");
  tcp_pair(src);
  tcp_pair(dst);
}

static void teardown(void) {
  splice_pipe_close(&pipe_);
  for (int i = 0; i < 2; i++) {
    close(src[i]);
    close(dst[i]);
  }
}

TestSuite(splice, .init = setup, .fini = teardown);

Test(splice, moves_bytes_exactly_and_stops_at_the_limit) {
  char out[3000], in[2000];
  for (size_t i = 0; i < sizeof(out); i++)
    out[i] = (char)(i * 7);
  put(src[0], out, sizeof(out));
  wait_readable(src[1]);
  uint64_t left = 2000;
  struct splice_job j = {.pipe = &pipe_, .left = &left};
  splice_run(&j, src[1], dst[0], 1u << 20);
  cr_assert_eq(j.moved, 2000, "never past *left");
  cr_assert_eq(j.out, 2000);
  cr_assert_eq(j.stuck, 0);
  cr_assert_eq(j.src_err, 0);
  get(dst[1], in, sizeof(in));
  cr_assert(memcmp(in, out, sizeof(in)) == 0);
  char rest[1000];
  get(src[1], rest, sizeof(rest)); /* what follows the limit stays in the socket */
  cr_assert(memcmp(rest, out + 2000, sizeof(rest)) == 0);
}

Test(splice, reports_eof_and_a_socket_with_nothing_to_read) {
  struct splice_job j = {.pipe = &pipe_};
  splice_run(&j, src[1], dst[0], 65536);
  cr_assert_eq(j.moved, 0);
  cr_assert_eq(j.src_err, 0, "EAGAIN is no error");
  shutdown(src[0], SHUT_WR);
  wait_readable(src[1]);
  splice_run(&j, src[1], dst[0], 65536);
  cr_assert_eq(j.moved, 0);
  cr_assert_eq(j.src_err, UV_EOF);
}

Test(splice, what_the_destination_does_not_take_can_be_drained) {
  int small = 4096;
  setsockopt(dst[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  setsockopt(dst[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  size_t total = 0, stuck = 0;
  static char buf[1 << 20];
  memset(buf, 'z', sizeof(buf));
  struct splice_job j = {.pipe = &pipe_};
  /* Keep feeding until the destination (never read) pushes back. */
  for (int round = 0; round < 200 && stuck == 0; round++) {
    put(src[0], buf, 65536);
    wait_readable(src[1]);
    splice_run(&j, src[1], dst[0], 65536);
    total += j.moved;
    stuck = j.stuck;
    cr_assert_eq(j.moved, j.out + j.stuck);
  }
  cr_assert(stuck > 0, "the destination filled up");
  static char back[1 << 18];
  ssize_t n = splice_drain(&j, back, sizeof(back));
  cr_assert_eq((size_t)n, stuck, "every stuck byte came back");
  cr_assert_eq(j.stuck, 0);
  cr_assert(back[0] == 'z' && back[n - 1] == 'z');
  char probe;
  cr_assert(read(pipe_.rd, &probe, 1) < 0, "the pipe is empty after the drain");
  (void)total;
}

Test(splice, off_by_environment) {
  struct splice_pipe p;
  setenv("FERRY_SPLICE", "0", 1);
  splice_pipe_open(&p);
  cr_assert(!p.on);
  cr_assert_eq(p.rd, -1);
  splice_pipe_close(&p);
  unsetenv("FERRY_SPLICE");
}
