/* router: the compiled route table of one configuration snapshot, request
 * path normalisation, and the upstream target rewrite.
 *
 * Owns the lookup structures built by router_new() (an open-addressing hash
 * of exact hosts and the candidate index lists); it borrows, and never
 * modifies, the struct config it was built from. After router_new() returns
 * everything is read-only, so router_match() may run on any number of
 * threads at once; it never allocates. Must not touch sockets or the loop.
 *
 * Candidate sets per request host (SPEC §2, first match in file order):
 *   - host found in the exact table: that entry's list (routes whose host is
 *     exactly it, plus wildcard routes that cover it, in file order) merged
 *     by route index with the host-less routes;
 *   - any other host: the `anyhost` list (wildcard and host-less routes in
 *     file order), wildcards filtered by suffix at match time;
 *   - no Host at all: the host-less routes only. */
#include "ferry/router.h"

#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct host_slot {
  const char *host; /* NULL: empty slot; else borrowed from a cfg_route */
  size_t len;
  uint32_t hash;
  uint32_t off, n; /* this host's candidates: cand[off .. off + n) */
};

struct router {
  const struct config *cfg;
  struct host_slot *slots; /* nslots entries, power of two; NULL when no exact hosts */
  uint32_t mask;           /* nslots - 1 */
  uint32_t *cand;          /* per-host candidate lists, concatenated */
  uint32_t *hostless;      /* routes with host == NULL, file order */
  uint32_t nhostless;
  uint32_t *anyhost; /* wildcard and host-less routes, file order */
  uint32_t nanyhost;
};

/* ---- hosts ----------------------------------------------------------- */

/* FNV-1a over the lower-cased bytes, so hashing is case-insensitive. */
static uint32_t host_hash(const char *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)ascii_lower(p[i]);
    h *= 16777619u;
  }
  return h;
}

/* A request host as matched: one trailing '.' (fully qualified form) is
 * ignored, as nginx does. */
static struct slice host_key(struct slice h) {
  if (h.n > 1 && h.p[h.n - 1] == '.')
    h.n--;
  return h;
}

/* Wildcard route host (stored as the suffix ".example.com") against a
 * request host: at least one label must precede the suffix. */
static bool wildcard_covers(const char *suffix, struct slice host) {
  size_t sn = strlen(suffix);
  if (sn == 0 || host.n <= sn)
    return false;
  if (!slice_ieq(slice_make(host.p + host.n - sn, sn), slice_make(suffix, sn)))
    return false;
  /* Tolerate a suffix stored without its leading dot. */
  return suffix[0] == '.' || host.p[host.n - sn - 1] == '.';
}

/* Index of the slot holding host, or of the empty slot where it belongs.
 * The table is never full (at least twice as many slots as hosts). */
static uint32_t slot_probe(const struct router *r, struct slice host, uint32_t h) {
  uint32_t i = h & r->mask;
  while (r->slots[i].host &&
         !(r->slots[i].hash == h && slice_ieq(slice_make(r->slots[i].host, r->slots[i].len), host)))
    i = (i + 1) & r->mask;
  return i;
}

static const struct host_slot *slot_find(const struct router *r, struct slice host) {
  if (!r->slots)
    return NULL;
  const struct host_slot *s = &r->slots[slot_probe(r, host, host_hash(host.p, host.n))];
  return s->host ? s : NULL;
}

/* ---- build ----------------------------------------------------------- */

static bool route_is_exact(const struct cfg_route *rt) {
  return rt->host && !rt->host_wildcard;
}

void router_free(struct router *r) {
  if (!r)
    return;
  free(r->slots);
  free(r->cand);
  free(r->hostless);
  free(r->anyhost);
  free(r);
}

static bool route_is_wildcard(const struct cfg_route *rt) {
  return rt->host && rt->host_wildcard;
}

/* Fills the exact-host table. For each distinct exact host, its candidate
 * list holds, in file order, the routes for exactly that host and the
 * wildcard routes covering it (host-less ones are merged at match time).
 * Costs O(routes + hosts * wildcard routes). Returns 0 or -1 on out of
 * memory or when the lists would not fit 32-bit offsets. */
static int build_hosts(struct router *r, size_t nexact) {
  const struct config *cfg = r->cfg;
  uint32_t nslots = 4;
  while (nslots < 2 * nexact)
    nslots *= 2;
  r->slots = calloc(nslots, sizeof *r->slots);
  if (!r->slots)
    return -1;
  r->mask = nslots - 1;

  /* Count: insert distinct hosts; n = exact routes + covering wildcards. */
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct cfg_route *rt = &cfg->routes[i];
    if (!route_is_exact(rt))
      continue;
    struct slice key = host_key(slice_cstr(rt->host));
    uint32_t h = host_hash(key.p, key.n);
    struct host_slot *s = &r->slots[slot_probe(r, key, h)];
    if (!s->host)
      *s = (struct host_slot){key.p, key.n, h, 0, 0};
    s->n++;
  }
  for (size_t i = 0; i < cfg->nroutes; i++) {
    if (!route_is_wildcard(&cfg->routes[i]))
      continue;
    for (uint32_t j = 0; j < nslots; j++) {
      struct host_slot *s = &r->slots[j];
      if (s->host && wildcard_covers(cfg->routes[i].host, slice_make(s->host, s->len)))
        s->n++;
    }
  }

  /* Lay the lists out, then fill them walking routes in file order; n is
   * reset and counts back up as the fill cursor. */
  uint64_t total = 0;
  for (uint32_t j = 0; j < nslots; j++) {
    r->slots[j].off = (uint32_t)total;
    total += r->slots[j].n;
    r->slots[j].n = 0;
  }
  if (total > UINT32_MAX)
    return -1;
  r->cand = malloc((total ? total : 1) * sizeof *r->cand);
  if (!r->cand)
    return -1;
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct cfg_route *rt = &cfg->routes[i];
    if (route_is_exact(rt)) {
      struct slice key = host_key(slice_cstr(rt->host));
      struct host_slot *s = &r->slots[slot_probe(r, key, host_hash(key.p, key.n))];
      r->cand[s->off + s->n++] = (uint32_t)i;
    } else if (route_is_wildcard(rt)) {
      for (uint32_t j = 0; j < nslots; j++) {
        struct host_slot *s = &r->slots[j];
        if (s->host && wildcard_covers(rt->host, slice_make(s->host, s->len)))
          r->cand[s->off + s->n++] = (uint32_t)i;
      }
    }
  }
  return 0;
}

struct router *router_new(const struct config *cfg) {
  struct router *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->cfg = cfg;
  if (cfg->nroutes > UINT32_MAX / 4)
    goto fail;

  size_t nexact = 0;
  size_t alloc = cfg->nroutes ? cfg->nroutes : 1;
  r->hostless = malloc(alloc * sizeof *r->hostless);
  r->anyhost = malloc(alloc * sizeof *r->anyhost);
  if (!r->hostless || !r->anyhost)
    goto fail;
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct cfg_route *rt = &cfg->routes[i];
    if (!rt->host)
      r->hostless[r->nhostless++] = (uint32_t)i;
    if (!rt->host || rt->host_wildcard)
      r->anyhost[r->nanyhost++] = (uint32_t)i;
    else
      nexact++;
  }
  if (nexact > 0 && build_hosts(r, nexact) < 0)
    goto fail;
  return r;

fail:
  router_free(r);
  return NULL;
}

/* ---- match ----------------------------------------------------------- */

/* Segment-boundary prefix rule of SPEC §2. */
static bool prefix_matches(const char *prefix, struct slice path) {
  size_t m = strlen(prefix);
  if (path.n < m || (m > 0 && memcmp(path.p, prefix, m) != 0))
    return false;
  if (m > 0 && prefix[m - 1] == '/')
    return true;
  return path.n == m || path.p[m] == '/';
}

static bool regex_matches(const regex_t *re, struct slice path) {
  if (!re)
    return false;
#ifdef REG_STARTEND
  /* glibc reads only [rm_so, rm_eo): no NUL terminator needed. */
  regmatch_t m[1] = {{.rm_so = 0, .rm_eo = (regoff_t)path.n}};
  return regexec(re, path.p ? path.p : "", 1, m, REG_STARTEND) == 0;
#else
  char buf[8192];
  if (path.n >= sizeof buf)
    return false;
  memcpy(buf, path.p, path.n);
  buf[path.n] = '\0';
  return regexec(re, buf, 0, NULL, 0) == 0;
#endif
}

static bool path_matches(const struct cfg_route *rt, struct slice path) {
  switch (rt->path_kind) {
  case PATH_ANY:
    return true;
  case PATH_EXACT:
    return rt->path && slice_eq(path, slice_cstr(rt->path));
  case PATH_PREFIX:
    return rt->path && prefix_matches(rt->path, path);
  case PATH_REGEX:
    return regex_matches(rt->regex, path);
  }
  return false;
}

/* Everything but the host: path, method, header conditions. */
static bool route_accepts(const struct cfg_route *rt, const struct route_query *q) {
  if (rt->methods) {
    if (q->method < 0 || q->method >= 64 || !(rt->methods & (1ull << q->method)))
      return false;
  }
  if (!path_matches(rt, q->path))
    return false;
  for (size_t i = 0; i < rt->nheaders; i++) {
    const struct hdr *h = http_head_find(q->headers, slice_cstr(rt->headers[i].name));
    if (!h || !slice_eq(h->value, slice_cstr(rt->headers[i].value)))
      return false;
  }
  return true;
}

const struct cfg_route *router_match(const struct router *r, const struct route_query *q) {
  const struct cfg_route *routes = r->cfg->routes;

  if (q->host.n == 0) {
    for (uint32_t i = 0; i < r->nhostless; i++)
      if (route_accepts(&routes[r->hostless[i]], q))
        return &routes[r->hostless[i]];
    return NULL;
  }

  struct slice host = host_key(q->host);
  const struct host_slot *s = slot_find(r, host);
  if (!s) {
    for (uint32_t i = 0; i < r->nanyhost; i++) {
      const struct cfg_route *rt = &routes[r->anyhost[i]];
      if (rt->host && !wildcard_covers(rt->host, host))
        continue;
      if (route_accepts(rt, q))
        return rt;
    }
    return NULL;
  }

  /* Merge this host's list with the host-less list by route index. */
  const uint32_t *a = r->cand + s->off, *b = r->hostless;
  uint32_t na = s->n, nb = r->nhostless, i = 0, j = 0;
  while (i < na || j < nb) {
    uint32_t k = (j >= nb || (i < na && a[i] < b[j])) ? a[i++] : b[j++];
    if (route_accepts(&routes[k], q))
      return &routes[k];
  }
  return NULL;
}

/* ---- targets --------------------------------------------------------- */

struct slice router_host_strip_port(struct slice host) {
  if (host.n > 0 && host.p[0] == '[') {
    const char *close = memchr(host.p, ']', host.n);
    if (close)
      host.n = (size_t)(close - host.p) + 1;
    return host;
  }
  const char *colon = memchr(host.p ? host.p : "", ':', host.n);
  if (!colon)
    return host;
  size_t at = (size_t)(colon - host.p);
  /* A second ':' means an unbracketed IPv6 literal: no port to strip. */
  if (memchr(colon + 1, ':', host.n - at - 1))
    return host;
  host.n = at;
  return host;
}

static int hex_val(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static bool is_unreserved(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

/* Path part of an origin-form target: everything before '?' or '#'. */
static size_t path_len(struct slice target) {
  for (size_t i = 0; i < target.n; i++)
    if (target.p[i] == '?' || target.p[i] == '#')
      return i;
  return target.n;
}

/* Removes "." and ".." segments from p[0..*n) in place (RFC 3986 5.2.4).
 * p starts with '/'. A final "." or ".." segment leaves a trailing '/'.
 * Returns -1 when ".." would climb above the root. */
static int remove_dot_segments(char *p, size_t *n) {
  size_t len = *n, i = 0, o = 0;
  while (i < len) {
    /* p[i] == '/': the segment is p[i+1 .. j). */
    size_t j = i + 1;
    while (j < len && p[j] != '/')
      j++;
    size_t seg = j - i - 1;
    bool last = j == len;
    if (seg == 1 && p[i + 1] == '.') {
      if (last)
        p[o++] = '/';
    } else if (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.') {
      if (o == 0)
        return -1;
      while (p[--o] != '/')
        ;
      if (last)
        p[o++] = '/';
    } else {
      memmove(p + o, p + i, j - i);
      o += j - i;
    }
    i = j;
  }
  *n = o;
  return 0;
}

int router_normalize_path(struct slice target, char *out, size_t cap, size_t *outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = path_len(target), o = 0;
  *outlen = 0;
  if (n == 0 || target.p[0] != '/')
    return -1;

  for (size_t i = 0; i < n; i++) {
    char c = target.p[i];
    if (c != '%') {
      if (o >= cap)
        return -1;
      out[o++] = c;
      continue;
    }
    if (n - i < 3)
      return -1;
    int hi = hex_val(target.p[i + 1]), lo = hex_val(target.p[i + 2]);
    if (hi < 0 || lo < 0)
      return -1;
    int v = hi * 16 + lo;
    i += 2;
    if (is_unreserved(v)) {
      if (o >= cap)
        return -1;
      out[o++] = (char)v;
    } else {
      if (cap - o < 3)
        return -1;
      out[o++] = '%';
      out[o++] = hex[hi];
      out[o++] = hex[lo];
    }
  }

  if (remove_dot_segments(out, &o) < 0)
    return -1;
  *outlen = o;
  return 0;
}

int router_target(const struct cfg_route *r, struct slice target, struct slice norm_path, char *out,
                  size_t cap, struct slice *result) {
  *result = target;
  if (!r->rewrite_prefix || r->path_kind != PATH_PREFIX || !r->path)
    return 0;
  size_t m = strlen(r->path);
  if (norm_path.n < m || memcmp(norm_path.p, r->path, m) != 0)
    return 0; /* not matched by this route: nothing to rewrite */

  struct slice rp = slice_cstr(r->rewrite_prefix);
  if (rp.n == 0)
    rp = SLICE_LIT("/");
  struct slice rest = slice_make(norm_path.p + m, norm_path.n - m);

  /* Query: from '?' (if it comes before any '#') up to '#'. */
  struct slice query = {NULL, 0};
  size_t pl = path_len(target);
  if (pl < target.n && target.p[pl] == '?') {
    size_t e = pl;
    while (e < target.n && target.p[e] != '#')
      e++;
    query = slice_make(target.p + pl, e - pl);
  }

  /* Join rewrite_prefix and rest with exactly one '/' between them. */
  bool rp_slash = rp.p[rp.n - 1] == '/';
  bool rest_slash = rest.n > 0 && rest.p[0] == '/';
  if (rp_slash && rest_slash) {
    rest.p++;
    rest.n--;
  }
  bool sep = !rp_slash && !rest_slash && rest.n > 0;

  size_t need = rp.n + (sep ? 1 : 0) + rest.n + query.n;
  if (need > cap)
    return -1;
  size_t o = 0;
  memcpy(out + o, rp.p, rp.n);
  o += rp.n;
  if (sep)
    out[o++] = '/';
  if (rest.n)
    memcpy(out + o, rest.p, rest.n);
  o += rest.n;
  if (query.n)
    memcpy(out + o, query.p, query.n);
  o += query.n;
  *result = slice_make(out, o);
  return 0;
}
