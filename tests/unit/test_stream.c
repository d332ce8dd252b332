/* stream: reading into the read block, exact delivery of gathered writes,
 * the high/low watermarks on what queued writes pin, hold reasons, and
 * the one close path. Each test runs a real loop over one end of an
 * AF_UNIX socketpair; the test drives the other end (the peer) with plain
 * system calls, or drains it through a uv_poll on the same loop. Every
 * test ends with no handle left (uv_loop_close() == 0) and every block
 * back in the pool. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/slice.h"
#include "ferry/stream.h"
#include "leak_check.h"
#include "loop_fixture.h"

TestSuite(stream, .timeout = 60, .fini = abort_on_leaks);

/* The owner of the stream under test: counts what its class was told. */
struct owner {
  struct stream st;
  bool consume; /* read: mark what arrived as consumed (in_off = len) */
  char got[256];
  size_t ngot;
  ssize_t last_err; /* the last nread < 0 */
  int reads, errors;
  int written_calls, written_errors;
  size_t written_bytes;
  int high_calls, low_calls;
  uint32_t queued_at_high, queued_at_low;
  int closed_calls;
};

static void on_read(struct stream *st, ssize_t nread) {
  struct owner *o = container_of(st, struct owner, st);
  if (nread < 0) {
    o->errors++;
    o->last_err = nread;
    return;
  }
  o->reads++;
  /* The new bytes are the last nread of the read block. */
  cr_assert_geq(st->in->len, (uint32_t)nread);
  const char *p = st->in->data + st->in->len - nread;
  cr_assert_leq(o->ngot + (size_t)nread, sizeof(o->got));
  memcpy(o->got + o->ngot, p, (size_t)nread);
  o->ngot += (size_t)nread;
  if (o->consume)
    st->in_off = st->in->len;
}

static void on_written(struct stream *st, int status, size_t bytes) {
  struct owner *o = container_of(st, struct owner, st);
  o->written_calls++;
  if (status < 0)
    o->written_errors++;
  o->written_bytes += bytes;
}

static void on_watermark(struct stream *st, bool high) {
  struct owner *o = container_of(st, struct owner, st);
  if (high) {
    o->high_calls++;
    o->queued_at_high = st->queued;
  } else {
    o->low_calls++;
    o->queued_at_low = st->queued;
  }
}

static void on_closed(struct stream *st) {
  struct owner *o = container_of(st, struct owner, st);
  o->closed_calls++;
}

static const struct stream_class test_class = {
    .tr = &transport_tcp,
    .read = on_read,
    .written = on_written,
    .watermark = on_watermark,
    .closed = on_closed,
};

/* The peer end, drained by a uv_poll when asked: bytes kept (up to cap)
 * or only counted. */
struct peer {
  int fd;
  uv_poll_t poll;
  bool polling;
  char *buf;
  size_t cap, n; /* bytes kept */
  size_t total;  /* bytes read */
};

static void on_peer_readable(uv_poll_t *p, int status, int events) {
  (void)events;
  struct peer *pe = p->data;
  cr_assert_eq(status, 0);
  char tmp[65536];
  for (;;) {
    ssize_t r = read(pe->fd, tmp, sizeof(tmp));
    if (r < 0) {
      cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "peer read: %s", strerror(errno));
      return;
    }
    if (r == 0)
      return;
    if (pe->buf) {
      cr_assert_leq(pe->n + (size_t)r, pe->cap, "more bytes than were written");
      memcpy(pe->buf + pe->n, tmp, (size_t)r);
      pe->n += (size_t)r;
    }
    pe->total += (size_t)r;
  }
}

static void peer_drain(struct loop_fixture *fx, struct peer *pe) {
  cr_assert_eq(uv_poll_init_socket(&fx->loop, &pe->poll, pe->fd), 0);
  pe->poll.data = pe;
  cr_assert_eq(uv_poll_start(&pe->poll, UV_READABLE, on_peer_readable), 0);
  pe->polling = true;
}

static void peer_write(struct peer *pe, const char *s) {
  size_t n = strlen(s);
  cr_assert_eq(write(pe->fd, s, n), (ssize_t)n);
}

/* A stream over one end of a socketpair, the peer on the other. sndbuf
 * > 0 shrinks the stream's send buffer so writes queue early. */
static void open_pair(struct loop_fixture *fx, struct owner *o, struct peer *pe, int sndbuf) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  if (sndbuf > 0)
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
  cr_assert_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
  memset(o, 0, sizeof(*o));
  memset(pe, 0, sizeof(*pe));
  pe->fd = sv[1];
  cr_assert_eq(stream_init(&o->st, &fx->loop, &test_class), 0);
  cr_assert_eq(stream_open(&o->st, sv[0]), 0, "uv_tcp_open adopts a socketpair end");
}

static void close_all(struct loop_fixture *fx, struct owner *o, struct peer *pe) {
  stream_close(&o->st);
  if (pe->polling)
    uv_close((uv_handle_t *)&pe->poll, NULL);
  loop_fixture_finish(fx);
  cr_assert_eq(o->closed_calls, 1);
  close(pe->fd);
}

/* A block of IOBUF_SIZE bytes, each block with its own pattern. */
static struct iobuf *pattern_block(struct bufpool *pool, unsigned seed) {
  struct iobuf *b = iobuf_get(pool, IOBUF_SIZE);
  cr_assert_not_null(b);
  for (uint32_t i = 0; i < IOBUF_SIZE; i++)
    b->data[i] = (char)('a' + (i * 7 + seed * 13) % 26);
  b->len = IOBUF_SIZE;
  return b;
}

Test(stream, bytes_from_the_peer_are_appended_to_the_read_block) {
  struct loop_fixture fx;
  loop_fixture_init(&fx);
  struct owner o;
  struct peer pe;
  open_pair(&fx, &o, &pe, 0);
  cr_assert_not(o.st.reading, "nothing is read before the owner asks");
  stream_hold(&o.st, STREAM_HOLD_OWNER, false);
  cr_assert(o.st.reading);

  peer_write(&pe, "abc");
  LOOP_WAIT(&fx, o.ngot == 3);
  /* not consumed: the next bytes go after them in the same block */
  peer_write(&pe, "defg");
  LOOP_WAIT(&fx, o.ngot == 7);
  cr_assert_not_null(o.st.in);
  cr_assert_eq(o.st.in_off, 0u);
  cr_assert_eq(o.st.in->len, 7u);
  cr_assert_arr_eq(o.st.in->data, "abcdefg", 7);
  cr_assert(stream_pending(&o.st));

  /* consumed and released: an idle stream holds no block */
  o.st.in_off = o.st.in->len;
  stream_release_in(&o.st);
  cr_assert_null(o.st.in);
  cr_assert_eq(fx.pool.blocks_live, 0u);

  /* the peer's end of stream comes through read as UV_EOF */
  cr_assert_eq(shutdown(pe.fd, SHUT_WR), 0);
  LOOP_WAIT(&fx, o.errors == 1);
  cr_assert_eq(o.last_err, UV_EOF);
  cr_assert_arr_eq(o.got, "abcdefg", 7);
  close_all(&fx, &o, &pe);
}

Test(stream, gathered_writes_arrive_exactly_and_in_order) {
  struct loop_fixture fx;
  loop_fixture_init(&fx);
  struct owner o;
  struct peer pe;
  open_pair(&fx, &o, &pe, 0);

  /* Copies, slices of referenced blocks (contiguous and not), static
   * bytes: more than one batch (WREQ_REFS blocks each) and more than the
   * socket takes at once, so uv_try_write and uv_write both run. */
  struct iobuf *b[6];
  for (unsigned i = 0; i < 6; i++)
    b[i] = pattern_block(&fx.pool, i);
  static char expect[8 * IOBUF_SIZE];
  size_t n = 0;
#define ADD(p, len, blk)                                                                           \
  do {                                                                                             \
    cr_assert_eq(stream_add(&o.st, (p), (len), (blk)), 0);                                         \
    memcpy(expect + n, (p), (len));                                                                \
    n += (len);                                                                                    \
  } while (0)
  cr_assert_eq(stream_add_copy(&o.st, "HTTP/1.1 200 OK\r\n", 17), 0);
  memcpy(expect + n, "HTTP/1.1 200 OK\r\n", 17);
  n += 17;
  ADD("X: static\r\n\r\n", 13, NULL);
  ADD(b[0]->data, 100, b[0]);
  ADD(b[0]->data + 100, 900, b[0]); /* contiguous with the last: one buffer */
  ADD(b[1]->data + 5000, 11000, b[1]);
  ADD(b[0]->data + 20, 10, b[0]);
  for (unsigned i = 2; i < 6; i++)
    ADD(b[i]->data, IOBUF_SIZE, b[i]);
  ADD(b[1]->data, 5000, b[1]);
#undef ADD
  /* the write requests hold their own references */
  for (unsigned i = 0; i < 6; i++)
    iobuf_unref(b[i]);
  cr_assert_gt(fx.pool.blocks_live, 0u);
  cr_assert_eq(stream_flush(&o.st), 0);

  pe.buf = malloc(sizeof(expect));
  pe.cap = sizeof(expect);
  peer_drain(&fx, &pe);
  LOOP_WAIT(&fx, pe.n == n && o.st.writes_pending == 0);
  cr_assert_arr_eq(pe.buf, expect, n, "the peer got exactly the bytes added, in order");
  cr_assert_eq(o.written_errors, 0);
  cr_assert_eq(o.written_bytes, n, "written reports every byte once");
  cr_assert_eq(o.st.queued, 0u);
  cr_assert_eq(fx.pool.blocks_live, 0u, "completed writes released their blocks");
  cr_assert_eq(o.high_calls, 0);
  free(pe.buf);
  close_all(&fx, &o, &pe);
}

Test(stream, watermarks_fire_once_over_high_and_once_back_under_low) {
  struct loop_fixture fx;
  loop_fixture_init(&fx);
  struct owner o;
  struct peer pe;
  open_pair(&fx, &o, &pe, 4096);

  struct iobuf *b[4];
  for (unsigned i = 0; i < 4; i++)
    b[i] = pattern_block(&fx.pool, i);
  /* The peer does not read: keep queueing 16 KiB references until the
   * stream says it is over its high-water mark (bounded). */
  size_t added = 0;
  for (unsigned i = 0; i < 256 && o.high_calls == 0; i++) {
    cr_assert_eq(stream_add(&o.st, b[i % 4]->data, IOBUF_SIZE, b[i % 4]), 0);
    cr_assert_eq(stream_flush(&o.st), 0);
    added += IOBUF_SIZE;
  }
  for (unsigned i = 0; i < 4; i++)
    iobuf_unref(b[i]);
  cr_assert_eq(o.high_calls, 1, "high fired once");
  cr_assert_gt(o.queued_at_high, STREAM_HIGH);
  cr_assert_leq(o.queued_at_high, STREAM_HIGH + IOBUF_SIZE, "told as soon as it crossed");
  cr_assert(o.st.high);
  cr_assert_eq(o.low_calls, 0);

  /* Drain the peer: low fires once, below STREAM_LOW, and every byte
   * arrives. */
  peer_drain(&fx, &pe);
  LOOP_WAIT(&fx, o.low_calls >= 1);
  cr_assert_lt(o.queued_at_low, STREAM_LOW);
  LOOP_WAIT(&fx, pe.total == added && o.st.writes_pending == 0);
  cr_assert_eq(o.low_calls, 1, "low fired once");
  cr_assert_eq(o.high_calls, 1);
  cr_assert_not(o.st.high);
  cr_assert_eq(o.st.queued, 0u);
  cr_assert_eq(o.written_bytes, added);
  cr_assert_eq(o.written_errors, 0);
  cr_assert_eq(fx.pool.blocks_live, 0u);
  close_all(&fx, &o, &pe);
}

static int readable_bytes(struct stream *st) {
  uv_os_fd_t fd;
  cr_assert_eq(uv_fileno((uv_handle_t *)&st->tcp, &fd), 0);
  int n = 0;
  cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
  return n;
}

/* Lets the loop poll for I/O without blocking: a reading stream with
 * bytes waiting in its socket gets them in one such turn. */
static void run_turns(struct loop_fixture *fx) {
  for (int i = 0; i < 3; i++)
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

Test(stream, a_hold_stops_reading_until_every_reason_is_released) {
  struct loop_fixture fx;
  loop_fixture_init(&fx);
  struct owner o;
  struct peer pe;
  open_pair(&fx, &o, &pe, 0);
  o.consume = true;
  stream_hold(&o.st, STREAM_HOLD_OWNER, false);
  peer_write(&pe, "1");
  LOOP_WAIT(&fx, o.ngot == 1);

  stream_hold(&o.st, STREAM_HOLD_OWNER, true);
  stream_hold(&o.st, STREAM_HOLD_FLOW, true);
  cr_assert_not(o.st.reading);
  peer_write(&pe, "2");
  run_turns(&fx);
  cr_assert_eq(readable_bytes(&o.st), 1, "the byte waits in the socket");
  cr_assert_eq(o.ngot, 1, "nothing is delivered while held");

  stream_hold(&o.st, STREAM_HOLD_OWNER, false); /* flow control still holds it */
  cr_assert_not(o.st.reading);
  run_turns(&fx);
  cr_assert_eq(o.ngot, 1, "one reason left is enough to hold");

  stream_flow(&o.st, false); /* the last reason goes: reading restarts */
  cr_assert(o.st.reading);
  LOOP_WAIT(&fx, o.ngot == 2);
  cr_assert_arr_eq(o.got, "12", 2);
  cr_assert_eq(readable_bytes(&o.st), 0);

  /* and a stream read without holds delivers in the same kind of turn
   * the held one was given above */
  peer_write(&pe, "3");
  run_turns(&fx);
  cr_assert_eq(o.ngot, 3);
  close_all(&fx, &o, &pe);
}

Test(stream, close_calls_closed_once_cancels_writes_and_returns_blocks) {
  struct loop_fixture fx;
  loop_fixture_init(&fx);
  uint64_t start_live = fx.pool.blocks_live;
  struct owner o;
  struct peer pe;
  open_pair(&fx, &o, &pe, 4096);

  /* a read block holding unconsumed bytes */
  stream_hold(&o.st, STREAM_HOLD_OWNER, false);
  peer_write(&pe, "unconsumed");
  LOOP_WAIT(&fx, o.ngot == 10);
  cr_assert_not_null(o.st.in);

  /* writes queued behind a peer that does not read, and a batch
   * gathered but not flushed */
  struct iobuf *b[2] = {pattern_block(&fx.pool, 1), pattern_block(&fx.pool, 2)};
  for (unsigned i = 0; i < 64 && o.st.writes_pending == 0; i++) {
    cr_assert_eq(stream_add(&o.st, b[0]->data, IOBUF_SIZE, b[0]), 0);
    cr_assert_eq(stream_flush(&o.st), 0);
  }
  cr_assert_gt(o.st.writes_pending, 0, "a write is queued");
  cr_assert_eq(stream_add(&o.st, b[1]->data, 100, b[1]), 0);
  cr_assert_not_null(o.st.batch);
  iobuf_unref(b[0]);
  iobuf_unref(b[1]);
  int written_before = o.written_calls;
  cr_assert_gt(fx.pool.blocks_live, start_live);

  stream_close(&o.st);
  stream_close(&o.st); /* idempotent */
  cr_assert_eq(stream_add(&o.st, "x", 1, NULL), -1, "nothing is queued once closing");
  cr_assert_eq(stream_add_copy(&o.st, "x", 1), -1);
  cr_assert_eq(stream_flush(&o.st), 0);
  LOOP_WAIT(&fx, o.closed_calls > 0);
  run_turns(&fx);
  cr_assert_eq(o.closed_calls, 1, "closed exactly once");
  cr_assert_eq(o.written_calls, written_before, "cancelled writes are not reported");
  cr_assert_eq(o.st.writes_pending, 0);
  cr_assert_eq(o.st.queued, 0u);
  cr_assert_null(o.st.in);
  cr_assert_null(o.st.batch);
  cr_assert_eq(fx.pool.blocks_live, start_live, "every block held went back to the pool");
  loop_fixture_finish(&fx);
  cr_assert_eq(o.closed_calls, 1);
  close(pe.fd);
}
