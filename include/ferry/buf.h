/* buf: the memory a worker recycles on the request path.
 *
 *  - iobuf: a reference-counted read block. A connection reads into one;
 *    every write that forwards bytes straight out of it takes a reference,
 *    so the block lives until the last such write completes.
 *  - arena: per-exchange bump allocator over iobuf blocks; everything a
 *    request head needs (copied header bytes, the serialised upstream head)
 *    comes from it and is released in one step when the exchange ends.
 *  - wreq: one uv_write with up to WREQ_BUFS buffers, the references it
 *    holds and scratch space for chunk framing.
 *
 * All of it belongs to one worker and is touched only from that worker's
 * loop thread; free lists make the steady state allocation-free. */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/slice.h"

#define IOBUF_SIZE 16384u   /* data bytes of a standard block */
#define IOBUF_FREE_MAX 256u /* blocks kept on a worker's free list */
/* A large block: reads of a body known to be large (stream.big), and
 * anything between IOBUF_SIZE and this size. */
#define IOBUF_BIG 65536u
#define IOBUF_BIG_FREE_MAX 32u /* large blocks kept on a worker's free list */

struct bufpool;

struct iobuf {
  struct bufpool *pool;
  struct iobuf *next; /* free list / arena chain */
  uint32_t refs;
  uint32_t cap; /* bytes of data[] */
  uint32_t len; /* bytes filled */
  char data[];
};

#define WREQ_BUFS 16
#define WREQ_REFS 4
#define WREQ_SCRATCH 320

struct wreq {
  uv_write_t req; /* req.data: the stream owner that queued it */
  struct wreq *next_free;
  struct bufpool *pool;
  uv_buf_t bufs[WREQ_BUFS];
  unsigned nbufs;
  struct iobuf *refs[WREQ_REFS];
  unsigned nrefs;
  size_t bytes;
  /* Memory the request keeps alive until it completes: the whole capacity
   * of each block it references (a 100-byte slice pins its 16 KiB block)
   * plus bytes of other memory. Backpressure counts this, not bytes, so a
   * bound on queued writes is a bound on memory. */
  size_t cost;
  size_t scratch_used;
  char scratch[WREQ_SCRATCH];
};

/* Per-worker free lists. */
struct bufpool {
  struct iobuf *free_blocks;
  unsigned nfree_blocks;
  struct iobuf *free_big; /* IOBUF_BIG blocks */
  unsigned nfree_big;
  struct wreq *free_wreqs;
  unsigned nfree_wreqs;
  uint64_t blocks_live; /* for leak checks in tests */
};

void bufpool_init(struct bufpool *p);
/* Frees everything on the free lists. Blocks still referenced stay valid. */
void bufpool_destroy(struct bufpool *p);

/* A block with at least cap data bytes (cap <= IOBUF_SIZE, and cap <=
 * IOBUF_BIG, come from a free list), refs = 1, len = 0. NULL on out of
 * memory. */
struct iobuf *iobuf_get(struct bufpool *p, size_t cap);
static inline void iobuf_ref(struct iobuf *b) {
  b->refs++;
}
/* Drop one reference; the last one returns the block to its pool. */
void iobuf_unref(struct iobuf *b);

/* --- arena ------------------------------------------------------------ */
struct arena {
  struct bufpool *pool;
  struct iobuf *head; /* current block first */
  size_t used_total;
  size_t limit; /* bytes the arena may hand out in all */
};

void arena_init(struct arena *a, struct bufpool *p, size_t limit);
/* n bytes, 8-byte aligned; NULL when over the limit or out of memory. */
void *arena_alloc(struct arena *a, size_t n);
/* Append (p, n) to the string *s, which must be empty or the result of an
 * earlier arena_extend on this arena. Keeps *s contiguous, copying it when
 * the current block is full. Returns 0, or -1 over the limit / no memory. */
int arena_extend(struct arena *a, struct slice *s, const char *p, size_t n);
/* Like arena_extend, but a string that starts empty and arrives whole in
 * block b (the read block the bytes are in) becomes a slice of b, with no
 * copy: *pin takes a reference on b the first time (the caller releases it
 * with the arena). Strings split across reads or blocks are copied. */
int arena_slice(struct arena *a, struct iobuf **pin, struct slice *s, const char *p, size_t n,
                struct iobuf *b);
/* Releases every block at once. The arena is empty and reusable after. */
void arena_reset(struct arena *a);

/* --- write requests ---------------------------------------------------- */
struct wreq *wreq_get(struct bufpool *p);
/* Unrefs held blocks and returns the request to its pool. */
void wreq_put(struct wreq *w);
/* Room checks, so the caller can flush first. */
static inline int wreq_has_room(const struct wreq *w, unsigned bufs, size_t scratch) {
  return w->nbufs + bufs <= WREQ_BUFS && w->scratch_used + scratch <= WREQ_SCRATCH &&
         w->nrefs < WREQ_REFS;
}
/* Add a buffer; when b is not NULL the request takes a reference on it
 * (once per block). The caller checked wreq_has_room(). */
void wreq_add(struct wreq *w, const char *p, size_t n, struct iobuf *b);
/* Copy n bytes into scratch and add them as a buffer. */
void wreq_add_copy(struct wreq *w, const char *p, size_t n);
/* Write as much of w as the socket takes now (uv_try_write: no request,
 * no callback, no poll change). True when all of it went; otherwise the
 * written prefix is dropped from w->bufs (w->bytes keeps the total) and the
 * caller queues the rest with uv_write, which also reports any error. */
bool wreq_try_write(struct wreq *w, uv_stream_t *st);

#endif
