/* stream: one socket's read block, write batches, watermarks, per-turn
 * read share, splice attempts and close path (see stream.h), and the
 * plain TCP transport.
 *
 * Owns the handle and the buffers it reads into and writes from; must not
 * parse what it carries or know its owner beyond the class callbacks. */
#include "ferry/stream.h"

#include "ferry/slice.h"

static inline struct bufpool *stream_pool(const struct stream *st) {
  return (struct bufpool *)st->tcp.loop->data;
}

/* --- plain TCP transport ------------------------------------------------ */

/* The read block, recycled in place when the owner consumed all of it and
 * nobody else holds it; a new one when a write still pins it, or when a
 * large body wants a large block. */
static void tcp_alloc(struct stream *st, uv_buf_t *buf) {
  struct iobuf *in = st->in;
  if (in && st->in_off == in->len) {
    if (in->refs == 1 && (!st->big || in->cap >= IOBUF_BIG)) {
      in->len = 0;
    } else {
      iobuf_unref(in);
      st->in = in = NULL;
    }
    st->in_off = 0;
  }
  if (!in)
    st->in = in = iobuf_get(stream_pool(st), st->big ? IOBUF_BIG : IOBUF_SIZE);
  if (!in || in->len == in->cap) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(in->data + in->len, in->cap - in->len);
}

static ssize_t tcp_input(struct stream *st, ssize_t nread) {
  if (nread > 0)
    st->in->len += (uint32_t)nread;
  return nread;
}

static void on_write(uv_write_t *req, int status);

static int tcp_send(struct stream *st, struct wreq *wr) {
  if (wreq_try_write(wr, (uv_stream_t *)&st->tcp))
    return 1;
  return uv_write(&wr->req, (uv_stream_t *)&st->tcp, wr->bufs, wr->nbufs, on_write);
}

const struct transport transport_tcp = {"tcp", tcp_alloc, tcp_input, tcp_send, NULL, NULL, NULL};

int stream_write_queue(struct stream *st, struct wreq *wr) {
  return uv_write(&wr->req, (uv_stream_t *)&st->tcp, wr->bufs, wr->nbufs, on_write);
}

/* --- reading ------------------------------------------------------------ */

static inline int stream_fd(const struct stream *st) {
  uv_os_fd_t fd = -1;
  return uv_fileno((const uv_handle_t *)&st->tcp, &fd) == 0 ? fd : -1;
}

/* A splice attempt may run now: the destination has nothing queued or
 * gathered (spliced bytes must not overtake them), the source nothing
 * unconsumed, the body bytes left. */
static bool splice_ready(struct stream *st) {
  const struct splice_job *j = st->sp;
  const struct stream *d = j->dst;
  return !d->closing && d->writes_pending == 0 && (!d->batch || d->batch->nbufs == 0) &&
         !stream_pending(st) && (!j->left || *j->left > 0);
}

/* The read that on_alloc does not hand to libuv: this turn's share is
 * read (yield), or a splice attempt runs instead. False: read as usual.
 * Out of line: the common read pays only the test that leads here. */
__attribute__((noinline)) static bool alloc_withheld(struct stream *st, uv_buf_t *buf) {
  if (!(st->withold & STREAM_WITHHOLD_TURN)) {
    if (!splice_ready(st))
      return false;
    stream_release_in(st);
    splice_run(st->sp, stream_fd(st), stream_fd(st->sp->dst), STREAM_TURN_BYTES - st->turn_bytes);
  }
  /* No buffer: libuv reports UV_ENOBUFS and polls the socket again next
   * turn. */
  st->yielded = true;
  *buf = uv_buf_init(NULL, 0);
  return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct stream *st = (struct stream *)(void *)h;
  if (st->withold && alloc_withheld(st, buf))
    return;
  const struct transport *tr = st->cls->tr;
  if (tr == &transport_tcp)
    tcp_alloc(st, buf);
  else
    tr->alloc(st, buf);
}

/* Bytes an attempt left in the pipe join the destination's batch, in a
 * block of their own (no more than the pipe holds: 128 KiB). */
static int splice_keep(struct stream *d, struct splice_job *j) {
  struct iobuf *b = iobuf_get(stream_pool(d), j->stuck);
  ssize_t n = b ? splice_drain(j, b->data, j->stuck) : UV_ENOMEM;
  int r = n < 0 ? (int)n : stream_add(d, b->data, (size_t)n, b) == 0 ? 0 : UV_ENOMEM;
  if (b)
    iobuf_unref(b);
  return r;
}

/* Report the splice attempt made in on_alloc. */
static void splice_report(struct stream *st) {
  struct splice_job *j = st->sp;
  struct stream *d = j->dst;
  j->ran = false;
  if (j->stuck > 0 && j->dst_err == 0)
    j->dst_err = splice_keep(d, j);
  if (j->stuck > 0)
    (void)splice_drain(j, NULL, 0); /* the pipe is shared: empty it */
  if (j->dst_err != 0) {
    d->cls->written(d, j->dst_err, 0); /* its owner closes it (and so this stream) */
    return;
  }
  if (j->out > 0)
    d->cls->written(d, 0, j->out);
  if (st->closing || st->sp != j)
    return;
  int src_err = j->src_err;
  if (j->moved > 0)
    st->cls->spliced(st, j->moved);
  if (src_err != 0 && !st->closing && st->sp == j)
    st->cls->read(st, src_err);
}

/* A read filled its buffer, so libuv reads again in this run: count it
 * against the turn's share. */
static inline void turn_count(struct stream *st, size_t n) {
  st->turn_bytes += (uint32_t)n;
  if (st->turn_bytes >= STREAM_TURN_BYTES)
    st->withold |= STREAM_WITHHOLD_TURN;
}

/* The read callback of a read on_alloc withheld. */
__attribute__((noinline)) static void read_withheld(struct stream *st) {
  st->yielded = false;
  st->turn_bytes = 0; /* the next run starts with a full share */
  st->withold &= (uint8_t)~STREAM_WITHHOLD_TURN;
  if (st->sp && st->sp->ran)
    splice_report(st);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  struct stream *st = (struct stream *)(void *)h;
  if ((size_t)nread == buf->len) { /* never true for nread < 0 */
    turn_count(st, buf->len);
  } else {
    st->turn_bytes = 0; /* a short read ends libuv's run */
    if (nread == UV_ENOBUFS && st->yielded) {
      read_withheld(st);
      return;
    }
    if (nread == 0)
      return;
  }
  const struct transport *tr = st->cls->tr;
  nread = tr == &transport_tcp ? tcp_input(st, nread) : tr->input(st, nread);
  if (nread != 0)
    st->cls->read(st, nread);
}

void stream_splice(struct stream *src, struct splice_job *j) {
  if (src->cls->tr != &transport_tcp || j->dst->cls->tr != &transport_tcp || !j->pipe->on)
    return;
  j->ran = false;
  src->sp = j;
  src->withold |= STREAM_WITHHOLD_SPLICE;
}

void stream_update_reading(struct stream *st) {
  bool want = st->hold == 0 && !st->closing;
  if (want && !st->reading) {
    if (uv_read_start((uv_stream_t *)&st->tcp, on_alloc, on_read) == 0) {
      st->reading = true;
      const struct transport *tr = st->cls->tr;
      if (tr != &transport_tcp && tr->resume)
        tr->resume(st);
    }
  } else if (!want && st->reading) {
    uv_read_stop((uv_stream_t *)&st->tcp);
    st->reading = false;
    st->turn_bytes = 0;
    st->withold &= (uint8_t)~STREAM_WITHHOLD_TURN;
  }
}

void stream_drop_in(struct stream *st) {
  iobuf_unref(st->in);
  st->in = NULL;
  st->in_off = 0;
}

/* --- writing ------------------------------------------------------------ */

/* One write finished (or was all taken by uv_try_write). */
static void write_done(struct stream *st, struct wreq *wr, int status) {
  size_t bytes = wr->bytes;
  st->queued -= (uint32_t)wr->cost;
  st->writes_pending--;
  wreq_put(wr);
  if (st->closing)
    return;
  st->cls->written(st, status, bytes);
  if (st->closing || status < 0)
    return;
  if (st->high && st->queued < STREAM_LOW) {
    st->high = false;
    if (st->cls->watermark)
      st->cls->watermark(st, false);
  }
}

static void on_write(uv_write_t *req, int status) {
  struct wreq *wr = container_of(req, struct wreq, req);
  write_done(req->data, wr, status);
}

int stream_flush(struct stream *st) {
  struct wreq *wr = st->batch;
  if (!wr || wr->nbufs == 0 || st->closing)
    return 0;
  st->batch = NULL;
  wr->req.data = st;
  st->queued += (uint32_t)wr->cost;
  st->writes_pending++;
  /* Plain TCP is called directly (inlined): this runs for every write. */
  const struct transport *tr = st->cls->tr;
  int r = tr == &transport_tcp ? tcp_send(st, wr) : tr->send(st, wr);
  if (r < 0) {
    st->queued -= (uint32_t)wr->cost;
    st->writes_pending--;
    wreq_put(wr);
    return r;
  }
  if (r == 1) {
    write_done(st, wr, 0); /* all written at once: complete it here */
    return 0;
  }
  if (!st->high && st->queued > STREAM_HIGH) {
    st->high = true;
    if (st->cls->watermark)
      st->cls->watermark(st, true);
  }
  return 0;
}

int stream_write_raw(struct stream *st, struct wreq *wr) {
  if (st->closing) {
    wreq_put(wr);
    return UV_ECANCELED;
  }
  if (wreq_try_write(wr, (uv_stream_t *)&st->tcp)) {
    wreq_put(wr); /* handshake bytes: nothing the owner waits for */
    return 0;
  }
  wr->bytes = 0; /* the owner's byte counts are application bytes */
  wr->req.data = st;
  st->queued += (uint32_t)wr->cost;
  st->writes_pending++;
  int r = stream_write_queue(st, wr);
  if (r < 0) {
    st->queued -= (uint32_t)wr->cost;
    st->writes_pending--;
    wreq_put(wr);
  }
  return r;
}

static struct wreq *batch_with_room(struct stream *st, unsigned bufs, size_t scratch) {
  if (st->batch && !wreq_has_room(st->batch, bufs, scratch)) {
    if (stream_flush(st) < 0)
      return NULL;
  }
  if (!st->batch && !st->closing)
    st->batch = wreq_get(stream_pool(st));
  return st->batch;
}

int stream_add(struct stream *st, const char *p, size_t n, struct iobuf *b) {
  if (st->closing)
    return -1;
  struct wreq *wr = batch_with_room(st, 1, 0);
  if (!wr)
    return -1;
  wreq_add(wr, p, n, b);
  return 0;
}

int stream_add_copy(struct stream *st, const char *p, size_t n) {
  if (st->closing || n > WREQ_SCRATCH)
    return -1;
  struct wreq *wr = batch_with_room(st, 1, n);
  if (!wr)
    return -1;
  wreq_add_copy(wr, p, n);
  return 0;
}

/* --- lifetime ----------------------------------------------------------- */

int stream_init(struct stream *st, uv_loop_t *loop, const struct stream_class *cls) {
  st->cls = cls;
  st->in = NULL;
  st->batch = NULL;
  st->in_off = st->queued = 0;
  st->writes_pending = 0;
  st->hold = 0;
  st->reading = st->closing = st->high = st->big = st->yielded = false;
  st->turn_bytes = 0;
  st->withold = 0;
  st->sp = NULL;
  return uv_tcp_init(loop, &st->tcp);
}

int stream_open(struct stream *st, int fd) {
  int r = uv_tcp_open(&st->tcp, fd);
  if (r == 0)
    uv_tcp_nodelay(&st->tcp, 1);
  return r;
}

int stream_connect(struct stream *st, uv_connect_t *req, const struct sockaddr *addr,
                   uv_connect_cb cb) {
  return uv_tcp_connect(req, &st->tcp, addr, cb);
}

static void on_closed(uv_handle_t *h) {
  struct stream *st = (struct stream *)(void *)h;
  if (st->in) {
    iobuf_unref(st->in);
    st->in = NULL;
  }
  if (st->batch) {
    wreq_put(st->batch);
    st->batch = NULL;
  }
  const struct transport *tr = st->cls->tr;
  if (tr != &transport_tcp && tr->closed)
    tr->closed(st);
  else
    st->cls->closed(st);
}

void stream_close(struct stream *st) {
  if (st->closing)
    return;
  st->closing = true;
  stream_splice_end(st);
  const struct transport *tr = st->cls->tr;
  if (tr != &transport_tcp && tr->close)
    tr->close(st);
  if (st->reading)
    uv_read_stop((uv_stream_t *)&st->tcp);
  st->reading = false;
  uv_close((uv_handle_t *)&st->tcp, on_closed);
}
