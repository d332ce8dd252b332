/* Shared pieces of ferry's libFuzzer targets: a bounded copy arena (the
 * exchange's arena, minus the iobuf chain) and a guard that keeps the
 * config loader off the network. */
#ifndef FERRY_FUZZ_COMMON_H
#define FERRY_FUZZ_COMMON_H

#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/slice.h"

#define FZ_ARENA 65536

struct fz_arena {
  char buf[FZ_ARENA];
  size_t used;
};

/* Append (p, n) to *s, which is empty or the last thing appended. */
static inline int fz_extend(struct fz_arena *a, struct slice *s, const char *p, size_t n) {
  if (s->n == 0)
    s->p = a->buf + a->used;
  if (s->p + s->n != a->buf + a->used || a->used + n > FZ_ARENA)
    return -1;
  memcpy(a->buf + a->used, p, n);
  a->used += n;
  s->n += n;
  return 0;
}

#endif
