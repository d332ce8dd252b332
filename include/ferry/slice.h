/* slice: a (pointer, length) view into memory owned by someone else.
 * Slices never own what they point at; the owner of the buffer decides how
 * long they stay valid (a read buffer, an exchange's arena, a config). */
#ifndef FERRY_SLICE_H
#define FERRY_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct slice {
  const char *p;
  size_t n;
};

/* The struct that embeds member m, from a pointer to m. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})

static inline struct slice slice_make(const char *p, size_t n) {
  return (struct slice){p, n};
}

static inline struct slice slice_cstr(const char *s) {
  return (struct slice){s, s ? strlen(s) : 0};
}

/* ASCII-only, locale-independent lower casing. */
static inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static inline bool slice_eq(struct slice a, struct slice b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Case-insensitive (ASCII) equality. */
static inline bool slice_ieq(struct slice a, struct slice b) {
  if (a.n != b.n)
    return false;
  for (size_t i = 0; i < a.n; i++)
    if (ascii_lower(a.p[i]) != ascii_lower(b.p[i]))
      return false;
  return true;
}

#endif
