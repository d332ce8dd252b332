/* stream: one socket's read block, write batches, watermarks and close
 * path (see stream.h), and the plain TCP transport.
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
 * nobody else holds it; a new one when a write still pins it. */
static void tcp_alloc(struct stream *st, uv_buf_t *buf) {
  struct iobuf *in = st->in;
  if (in && st->in_off == in->len) {
    if (in->refs == 1) {
      in->len = 0;
    } else {
      iobuf_unref(in);
      st->in = in = NULL;
    }
    st->in_off = 0;
  }
  if (!in)
    st->in = in = iobuf_get(stream_pool(st), IOBUF_SIZE);
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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct stream *st = (struct stream *)(void *)h;
  const struct transport *tr = st->cls->tr;
  if (tr == &transport_tcp)
    tcp_alloc(st, buf);
  else
    tr->alloc(st, buf);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct stream *st = (struct stream *)(void *)h;
  if (nread == 0)
    return;
  const struct transport *tr = st->cls->tr;
  nread = tr == &transport_tcp ? tcp_input(st, nread) : tr->input(st, nread);
  if (nread != 0)
    st->cls->read(st, nread);
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
  st->reading = st->closing = st->high = false;
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
  const struct transport *tr = st->cls->tr;
  if (tr != &transport_tcp && tr->close)
    tr->close(st);
  if (st->reading)
    uv_read_stop((uv_stream_t *)&st->tcp);
  st->reading = false;
  uv_close((uv_handle_t *)&st->tcp, on_closed);
}
