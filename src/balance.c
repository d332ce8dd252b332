/* balance: balancing algorithms as pure functions over peer arrays.
 * Owns nothing but the points array of a hash ring. */
#include "ferry/balance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t wgt(const struct balance_peer *p) {
  return p->weight ? (int64_t)p->weight : 1;
}

/* Smooth weighted round robin over the peers with mask[i] (or usable when
 * mask is NULL). */
static int swrr(struct balance_peer *p, size_t n, const bool *mask) {
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < n; i++) {
    if (mask ? !mask[i] : !p[i].usable)
      continue;
    p[i].current += wgt(&p[i]);
    total += wgt(&p[i]);
    if (best < 0 || p[i].current > p[best].current)
      best = (int)i;
  }
  if (best >= 0)
    p[best].current -= total;
  return best;
}

int balance_round_robin(struct balance_peer *p, size_t n) {
  return swrr(p, n, NULL);
}

/* load_a / weight_a compared with load_b / weight_b, exactly: <0, 0, >0. */
static int cmp_load(const struct balance_peer *a, const struct balance_peer *b) {
  uint64_t l = (uint64_t)a->load * (uint64_t)wgt(b);
  uint64_t r = (uint64_t)b->load * (uint64_t)wgt(a);
  return l < r ? -1 : l > r ? 1 : 0;
}

int balance_least_conn(struct balance_peer *p, size_t n) {
  int best = -1;
  size_t ties = 0;
  for (size_t i = 0; i < n; i++) {
    if (!p[i].usable)
      continue;
    int c = best < 0 ? -1 : cmp_load(&p[i], &p[best]);
    if (c < 0) {
      best = (int)i;
      ties = 1;
    } else if (c == 0) {
      ties++;
    }
  }
  if (ties <= 1)
    return best;
  /* Several peers share the lowest load: weighted round robin among them.
   * n is small (a pool); a bounded mask on the stack avoids allocation. */
  bool mask_small[256];
  bool *mask = n <= 256 ? mask_small : malloc(n);
  if (!mask)
    return best;
  for (size_t i = 0; i < n; i++)
    mask[i] = p[i].usable && cmp_load(&p[i], &p[best]) == 0;
  int r = swrr(p, n, mask);
  if (mask != mask_small)
    free(mask);
  return r;
}

uint64_t balance_rand(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* A usable peer drawn with probability weight/total, skipping `skip`. */
static int weighted_draw(const struct balance_peer *p, size_t n, int skip, uint64_t *rng) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i].usable && (int)i != skip)
      total += (uint64_t)wgt(&p[i]);
  if (total == 0)
    return -1;
  uint64_t r = balance_rand(rng) % total;
  for (size_t i = 0; i < n; i++) {
    if (!p[i].usable || (int)i == skip)
      continue;
    uint64_t w = (uint64_t)wgt(&p[i]);
    if (r < w)
      return (int)i;
    r -= w;
  }
  return -1;
}

int balance_random2(const struct balance_peer *p, size_t n, uint64_t *rng) {
  int a = weighted_draw(p, n, -1, rng);
  if (a < 0)
    return -1;
  int b = weighted_draw(p, n, a, rng);
  if (b < 0)
    return a;
  int c = cmp_load(&p[a], &p[b]);
  if (c == 0)
    return (balance_rand(rng) & 1) ? a : b;
  return c < 0 ? a : b;
}

uint64_t balance_hash(const void *data, size_t len) {
  const unsigned char *s = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= s[i];
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

static int point_cmp(const void *a, const void *b) {
  const struct balance_ring_point *x = a, *y = b;
  if (x->hash != y->hash)
    return x->hash < y->hash ? -1 : 1;
  return x->peer < y->peer ? -1 : x->peer > y->peer ? 1 : 0;
}

void balance_ring_free(struct balance_ring *r) {
  free(r->pts);
  r->pts = NULL;
  r->n = 0;
}

int balance_ring_build(struct balance_ring *r, const char *const *names, const uint32_t *weights,
                       size_t n) {
  balance_ring_free(r);
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    if (names[i])
      total += (size_t)(weights[i] ? weights[i] : 1) * BALANCE_RING_VNODES;
  if (total == 0)
    return 0;
  r->pts = malloc(total * sizeof(*r->pts));
  if (!r->pts)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (!names[i])
      continue;
    size_t points = (size_t)(weights[i] ? weights[i] : 1) * BALANCE_RING_VNODES;
    for (size_t k = 0; k < points; k++) {
      char key[300];
      int len = snprintf(key, sizeof(key), "%s#%zu", names[i], k);
      if (len < 0)
        len = 0;
      if ((size_t)len >= sizeof(key))
        len = (int)sizeof(key) - 1;
      r->pts[r->n++] = (struct balance_ring_point){balance_hash(key, (size_t)len), (uint32_t)i};
    }
  }
  qsort(r->pts, r->n, sizeof(*r->pts), point_cmp);
  return 0;
}

int balance_ring_pick(const struct balance_ring *r, const struct balance_peer *p, size_t n,
                      uint64_t key_hash) {
  if (r->n == 0)
    return -1;
  /* First point with hash >= key_hash (wrapping). */
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->pts[mid].hash < key_hash)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t k = 0; k < r->n; k++) {
    const struct balance_ring_point *pt = &r->pts[(lo + k) % r->n];
    if (pt->peer < n && p[pt->peer].usable)
      return (int)pt->peer;
  }
  return -1;
}

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

bool balance_cookie(struct slice header, struct slice name, struct slice *value) {
  size_t i = 0;
  while (i < header.n) {
    while (i < header.n && (is_ows(header.p[i]) || header.p[i] == ';'))
      i++;
    size_t start = i;
    while (i < header.n && header.p[i] != ';')
      i++;
    struct slice pair = {header.p + start, i - start};
    const char *eq = memchr(pair.p, '=', pair.n);
    if (!eq)
      continue;
    struct slice k = {pair.p, (size_t)(eq - pair.p)};
    while (k.n && is_ows(k.p[k.n - 1]))
      k.n--;
    if (!slice_eq(k, name))
      continue;
    struct slice v = {eq + 1, (size_t)(pair.p + pair.n - eq - 1)};
    while (v.n && is_ows(v.p[0])) {
      v.p++;
      v.n--;
    }
    while (v.n && is_ows(v.p[v.n - 1]))
      v.n--;
    if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') {
      v.p++;
      v.n -= 2;
    }
    *value = v;
    return true;
  }
  return false;
}
