/* buf: recycled read blocks, per-exchange arenas and write requests.
 * Owns the worker's free lists; must not touch sockets or parsers. */
#include "ferry/buf.h"

#include <stdlib.h>
#include <string.h>

void bufpool_init(struct bufpool *p) {
  memset(p, 0, sizeof(*p));
}

void bufpool_destroy(struct bufpool *p) {
  while (p->free_blocks) {
    struct iobuf *b = p->free_blocks;
    p->free_blocks = b->next;
    free(b);
  }
  p->nfree_blocks = 0;
  while (p->free_big) {
    struct iobuf *b = p->free_big;
    p->free_big = b->next;
    free(b);
  }
  p->nfree_big = 0;
  while (p->free_wreqs) {
    struct wreq *w = p->free_wreqs;
    p->free_wreqs = w->next_free;
    free(w);
  }
  p->nfree_wreqs = 0;
}

/* A block that is not a standard one from the free list: a large one
 * from its own list, or new memory. Out of line, like iobuf_put_other:
 * the standard block's path stays the short one. */
__attribute__((noinline)) static struct iobuf *iobuf_new(struct bufpool *p, size_t cap) {
  struct iobuf *b;
  if (cap > IOBUF_SIZE && cap <= IOBUF_BIG && p->free_big) {
    b = p->free_big;
    p->free_big = b->next;
    p->nfree_big--;
    return b;
  }
  size_t c = cap <= IOBUF_SIZE ? IOBUF_SIZE : cap <= IOBUF_BIG ? IOBUF_BIG : cap;
  if (c > UINT32_MAX)
    return NULL;
  b = malloc(sizeof(*b) + c);
  if (b)
    b->cap = (uint32_t)c;
  return b;
}

struct iobuf *iobuf_get(struct bufpool *p, size_t cap) {
  struct iobuf *b;
  if (cap <= IOBUF_SIZE && p->free_blocks) {
    b = p->free_blocks;
    p->free_blocks = b->next;
    p->nfree_blocks--;
  } else if ((b = iobuf_new(p, cap)) == NULL) {
    return NULL;
  }
  b->pool = p;
  b->next = NULL;
  b->refs = 1;
  b->len = 0;
  p->blocks_live++;
  return b;
}

__attribute__((noinline)) static void iobuf_put_other(struct bufpool *p, struct iobuf *b) {
  if (b->cap == IOBUF_BIG && p->nfree_big < IOBUF_BIG_FREE_MAX) {
    b->next = p->free_big;
    p->free_big = b;
    p->nfree_big++;
  } else {
    free(b);
  }
}

void iobuf_unref(struct iobuf *b) {
  if (--b->refs > 0)
    return;
  struct bufpool *p = b->pool;
  p->blocks_live--;
  if (b->cap == IOBUF_SIZE && p->nfree_blocks < IOBUF_FREE_MAX) {
    b->next = p->free_blocks;
    p->free_blocks = b;
    p->nfree_blocks++;
  } else {
    iobuf_put_other(p, b);
  }
}

void arena_init(struct arena *a, struct bufpool *p, size_t limit) {
  a->pool = p;
  a->head = NULL;
  a->used_total = 0;
  a->limit = limit;
}

/* Offset in b's data of the first address at or after b->len that is a
 * multiple of align: data[] itself sits 4 bytes past an 8-byte boundary
 * (after the block's 28-byte header), so the address is aligned, not the
 * offset. */
static size_t arena_aligned(const struct iobuf *b, size_t align) {
  uintptr_t base = (uintptr_t)b->data;
  return (size_t)(((base + b->len + (align - 1)) & ~(uintptr_t)(align - 1)) - base);
}

static char *arena_room(struct arena *a, size_t n, size_t align) {
  struct iobuf *b = a->head;
  if (b) {
    size_t off = arena_aligned(b, align);
    if (off + n <= b->cap) {
      b->len = (uint32_t)(off + n);
      return b->data + off;
    }
  }
  b = iobuf_get(a->pool, n + align - 1);
  if (!b)
    return NULL;
  b->next = a->head;
  a->head = b;
  size_t off = arena_aligned(b, align);
  b->len = (uint32_t)(off + n);
  return b->data + off;
}

void *arena_alloc(struct arena *a, size_t n) {
  if (n == 0)
    n = 1;
  if (a->used_total + n > a->limit)
    return NULL;
  char *p = arena_room(a, n, 8);
  if (p)
    a->used_total += n;
  return p;
}

int arena_extend(struct arena *a, struct slice *s, const char *p, size_t n) {
  if (n == 0)
    return 0;
  if (a->used_total + n > a->limit)
    return -1;
  struct iobuf *b = a->head;
  if (s->n > 0 && b && s->p + s->n == b->data + b->len && b->len + n <= b->cap) {
    memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    s->n += n;
    a->used_total += n;
    return 0;
  }
  /* Start the string afresh (copying what it had) where it fits whole. */
  size_t total = s->n + n;
  if (a->used_total + total > a->limit)
    return -1;
  char *dst = arena_room(a, total, 1);
  if (!dst)
    return -1;
  if (s->n)
    memcpy(dst, s->p, s->n);
  memcpy(dst + s->n, p, n);
  s->p = dst;
  s->n = total;
  a->used_total += total;
  return 0;
}

int arena_slice(struct arena *a, struct iobuf **pin, struct slice *s, const char *p, size_t n,
                struct iobuf *b) {
  if (n > 0 && s->n == 0 && b && (!*pin || *pin == b)) {
    if (!*pin) {
      iobuf_ref(b);
      *pin = b;
    }
    s->p = p;
    s->n = n;
    return 0;
  }
  return arena_extend(a, s, p, n);
}

void arena_reset(struct arena *a) {
  while (a->head) {
    struct iobuf *b = a->head;
    a->head = b->next;
    b->next = NULL;
    iobuf_unref(b);
  }
  a->used_total = 0;
}

struct wreq *wreq_get(struct bufpool *p) {
  struct wreq *w = p->free_wreqs;
  if (w) {
    p->free_wreqs = w->next_free;
    p->nfree_wreqs--;
  } else {
    w = malloc(sizeof(*w));
    if (!w)
      return NULL;
  }
  w->pool = p;
  w->next_free = NULL;
  w->nbufs = 0;
  w->nrefs = 0;
  w->bytes = 0;
  w->cost = 0;
  w->scratch_used = 0;
  w->req.data = NULL;
  return w;
}

void wreq_put(struct wreq *w) {
  for (unsigned i = 0; i < w->nrefs; i++)
    iobuf_unref(w->refs[i]);
  w->nrefs = 0;
  struct bufpool *p = w->pool;
  if (p->nfree_wreqs < 256) {
    w->next_free = p->free_wreqs;
    p->free_wreqs = w;
    p->nfree_wreqs++;
  } else {
    free(w);
  }
}

void wreq_add(struct wreq *w, const char *p, size_t n, struct iobuf *b) {
  if (n == 0)
    return;
  if (b) {
    unsigned i;
    for (i = 0; i < w->nrefs; i++)
      if (w->refs[i] == b)
        break;
    if (i == w->nrefs) {
      iobuf_ref(b);
      w->refs[w->nrefs++] = b;
      w->cost += b->cap;
    }
  } else {
    w->cost += n;
  }
  /* Coalesce with the previous buffer when contiguous. */
  if (w->nbufs > 0) {
    uv_buf_t *last = &w->bufs[w->nbufs - 1];
    if (last->base + last->len == p) {
      last->len += n;
      w->bytes += n;
      return;
    }
  }
  w->bufs[w->nbufs++] = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
  w->bytes += n;
}

bool wreq_try_write(struct wreq *w, uv_stream_t *st) {
  int r = uv_try_write(st, w->bufs, w->nbufs);
  if (r <= 0)
    return false;
  size_t done = (size_t)r;
  if (done >= w->bytes)
    return true;
  unsigned i = 0;
  while (done >= w->bufs[i].len)
    done -= w->bufs[i++].len;
  memmove(w->bufs, w->bufs + i, (w->nbufs - i) * sizeof(w->bufs[0]));
  w->nbufs -= i;
  w->bufs[0].base += done;
  w->bufs[0].len -= done;
  return false;
}

void wreq_add_copy(struct wreq *w, const char *p, size_t n) {
  char *dst = w->scratch + w->scratch_used;
  memcpy(dst, p, n);
  w->scratch_used += n;
  wreq_add(w, dst, n, NULL);
}
