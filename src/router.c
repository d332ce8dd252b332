/* router: the compiled route table of one configuration snapshot, request
 * path normalisation, and the upstream target rewrite.
 *
 * Owns the lookup structures built by router_new(); it borrows, and never
 * modifies, the struct config it was built from. After router_new() returns
 * everything is read-only, so router_match() may run on any number of
 * threads at once; it never allocates. Must not touch sockets or the loop.
 *
 * Compiled form. Routes are grouped into route sets: one per exact host,
 * one per wildcard suffix ("*.example.com" -> "example.com"), and one for
 * the host-less routes. Both kinds of host key live in one open-addressing
 * hash table. Inside a set, `path` and `path_prefix` routes hang off a trie
 * of path segments ("/api/v1" is the node root -> "api" -> "v1"; the edges
 * of every trie share one hash table keyed by (parent node, segment)); the
 * other routes of the set (no path condition, `path_regex`) are kept in a
 * list in file order.
 *
 * Matching a request (SPEC §2, first match in file order): the candidate
 * sets are the request host's exact set, the wildcard set of every suffix
 * that follows a "." other than the first byte ("a.b.example.com" looks up
 * "b.example.com", "example.com" and "com"), and the host-less set; a
 * request without Host uses the host-less set only. In each set the trie is
 * walked along the request path's segments, which visits exactly the nodes
 * whose prefix the path has on a segment boundary, and the rest list is
 * scanned. Every list (the rest list and each visited node's routes) is in
 * file order, so the answer is the smallest route index that passes its
 * remaining conditions (methods, headers, regex) over all lists; a list is
 * abandoned as soon as its next index is not below the best one found so
 * far. The cost is about one hash probe per host label and per path segment,
 * independent of the number of routes (bench/router.c measures it). Host
 * keys and edge labels are kept in place in the tables (up to KEY_INLINE
 * and SEG_INLINE bytes) and edge slots carry their hash, so a lookup rarely
 * reads memory outside the router's own arrays. */
#include "ferry/router.h"

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

/* How a trie entry decides, at the node it hangs off, whether it matches. */
enum ent_kind {
  ENT_SEGMENT, /* path_prefix without trailing '/': at any visited node */
  ENT_PLAIN,   /* path_prefix ending in '/': the path continues with '/' */
  ENT_EXACT    /* path: the path ends exactly here */
};

struct entry {
  uint32_t route;
  uint16_t kind;          /* enum ent_kind */
  uint16_t unconditional; /* 1: no methods or headers to check */
};

/* Bytes kept in place for a node's edge label or a host key: longer ones
 * are compared through a pointer stored in the same place, so a lookup
 * usually reads no memory outside the router's own tables. */
#define SEG_INLINE 16
#define KEY_INLINE 40

struct node {
  uint32_t parent;  /* NONE for a root */
  uint32_t seglen;  /* bytes of the edge label */
  uint32_t ent_off; /* this node's entries: ents[ent_off .. ent_off + ent_n) */
  uint32_t ent_n;
  char seg[SEG_INLINE]; /* the label, or a pointer to it (borrowed from a route) */
};

struct edge {
  uint32_t hash; /* edge_hash(parent, label) */
  uint32_t id;   /* child node index + 1; 0: empty slot */
};

struct rset {
  uint32_t root;             /* trie root node */
  uint32_t rest_off, rest_n; /* rest[rest_off .. rest_off + rest_n) */
};

struct host_slot {
  uint32_t hash;
  uint32_t len;         /* bytes of the key; HOST_WILDCARD set for a wildcard suffix */
  uint32_t set;         /* index into sets; NONE: empty slot */
  struct rset rs;       /* copy of sets[set], so a lookup reads one slot */
  char key[KEY_INLINE]; /* the key, or a pointer to it (borrowed from a route) */
};

#define HOST_WILDCARD 0x80000000u

struct router {
  const struct config *cfg;
  struct host_slot *hosts; /* power-of-two table, at most half full */
  uint32_t hmask;
  struct rset *sets; /* sets[0]: the host-less routes */
  uint32_t nsets;
  struct node *nodes;
  uint32_t nnodes;
  struct edge *edges; /* power of two, at most half full */
  uint32_t emask;
  struct entry *ents;
  uint32_t *rest;
  uint64_t wild_lens;  /* bit min(len, 63): a wildcard key of that length exists */
  bool hostless_empty; /* no host-less routes: skip that set */
};

/* Stores label (n bytes, borrowed) in place or as a pointer. */
static void inline_store(char *dst, size_t cap, const char *label, size_t n) {
  if (n <= cap)
    memcpy(dst, label, n);
  else
    memcpy(dst, &label, sizeof label);
}

static const char *inline_get(const char *src, size_t cap, size_t n) {
  if (n <= cap)
    return src;
  const char *p;
  memcpy(&p, src, sizeof p);
  return p;
}

/* ---- hashing ---------------------------------------------------------- */

#define FNV_BASIS 2166136261u
#define FNV_PRIME 16777619u

/* FNV-1a over the lower-cased bytes, so hashing is case-insensitive. */
static uint32_t host_hash(const char *p, size_t n, uint32_t wildcard) {
  uint32_t h = FNV_BASIS ^ wildcard;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)ascii_lower(p[i]);
    h *= FNV_PRIME;
  }
  return h;
}

static uint32_t edge_hash(uint32_t parent, const char *seg, size_t n) {
  uint32_t h = FNV_BASIS;
  for (int i = 0; i < 4; i++) {
    h ^= (parent >> (8 * i)) & 0xffu;
    h *= FNV_PRIME;
  }
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)seg[i];
    h *= FNV_PRIME;
  }
  return h;
}

/* ---- hosts ------------------------------------------------------------ */

/* A host as matched: one trailing '.' (fully qualified form) is ignored, as
 * nginx does. */
static struct slice host_key(struct slice h) {
  if (h.n > 1 && h.p[h.n - 1] == '.')
    h.n--;
  return h;
}

/* Key of a wildcard route: its suffix without the leading '.' (a suffix
 * stored without it is tolerated), without a trailing '.'. */
static struct slice wildcard_key(const char *suffix) {
  struct slice s = slice_cstr(suffix);
  if (s.n > 0 && s.p[0] == '.') {
    s.p++;
    s.n--;
  }
  return host_key(s);
}

/* Slot holding (key, wildcard), or the empty slot where it belongs. */
static uint32_t host_probe(const struct router *r, struct slice key, uint32_t wildcard,
                           uint32_t h) {
  uint32_t len = (uint32_t)key.n | (wildcard ? HOST_WILDCARD : 0), i = h & r->hmask;
  for (;;) {
    const struct host_slot *s = &r->hosts[i];
    if (s->set == NONE ||
        (s->hash == h && s->len == len &&
         slice_ieq(slice_make(inline_get(s->key, KEY_INLINE, key.n), key.n), key)))
      return i;
    i = (i + 1) & r->hmask;
  }
}

/* Slot of (key, wildcard), or NULL. */
static const struct host_slot *host_find(const struct router *r, struct slice key,
                                         uint32_t wildcard) {
  if (key.n == 0 || key.n >= HOST_WILDCARD)
    return NULL;
  const struct host_slot *s =
      &r->hosts[host_probe(r, key, wildcard, host_hash(key.p, key.n, wildcard))];
  return s->set != NONE ? s : NULL;
}

/* ---- trie ------------------------------------------------------------- */

static uint32_t edge_probe(const struct router *r, uint32_t parent, const char *seg, size_t n,
                           uint32_t h) {
  uint32_t i = h & r->emask;
  for (;;) {
    const struct edge *e = &r->edges[i];
    if (e->id == 0)
      return i;
    if (e->hash == h) {
      const struct node *c = &r->nodes[e->id - 1];
      if (c->parent == parent && c->seglen == n &&
          memcmp(inline_get(c->seg, SEG_INLINE, n), seg, n) == 0)
        return i;
    }
    i = (i + 1) & r->emask;
  }
}

static uint32_t child_find(const struct router *r, uint32_t parent, const char *seg, size_t n) {
  uint32_t id = r->edges[edge_probe(r, parent, seg, n, edge_hash(parent, seg, n))].id;
  return id ? id - 1 : NONE;
}

/* ---- build ------------------------------------------------------------ */

void router_free(struct router *r) {
  if (!r)
    return;
  free(r->hosts);
  free(r->sets);
  free(r->nodes);
  free(r->edges);
  free(r->ents);
  free(r->rest);
  free(r);
}

/* Whether a route hangs off the trie: `path` or `path_prefix` starting with
 * '/'. *key and *kind get the node's prefix (a trailing '/' of a prefix is
 * dropped and makes it ENT_PLAIN) and the entry kind. */
static bool trie_key(const struct cfg_route *rt, struct slice *key, enum ent_kind *kind) {
  if ((rt->path_kind != PATH_PREFIX && rt->path_kind != PATH_EXACT) || !rt->path ||
      rt->path[0] != '/')
    return false;
  *key = slice_cstr(rt->path);
  if (rt->path_kind == PATH_EXACT) {
    *kind = ENT_EXACT;
  } else if (key->p[key->n - 1] == '/') {
    key->n--;
    *kind = ENT_PLAIN;
  } else {
    *kind = ENT_SEGMENT;
  }
  return true;
}

static uint32_t pow2_at_least(uint64_t n) {
  uint32_t p = 4;
  while (p < n)
    p *= 2;
  return p;
}

static uint32_t node_add(struct router *r, uint32_t parent, const char *seg, uint32_t n) {
  uint32_t id = r->nnodes++;
  r->nodes[id] = (struct node){parent, n, 0, 0, {0}};
  inline_store(r->nodes[id].seg, SEG_INLINE, seg, n);
  return id;
}

/* The set of route rt, created on first use. */
static uint32_t set_of(struct router *r, const struct cfg_route *rt) {
  if (!rt->host)
    return 0;
  uint32_t wildcard = rt->host_wildcard ? 1 : 0;
  struct slice key = wildcard ? wildcard_key(rt->host) : host_key(slice_cstr(rt->host));
  uint32_t h = host_hash(key.p, key.n, wildcard);
  struct host_slot *s = &r->hosts[host_probe(r, key, wildcard, h)];
  if (s->set == NONE) {
    uint32_t set = r->nsets++;
    r->sets[set] = (struct rset){node_add(r, NONE, "", 0), 0, 0};
    s->hash = h;
    s->len = (uint32_t)key.n | (wildcard ? HOST_WILDCARD : 0);
    s->set = set;
    inline_store(s->key, KEY_INLINE, key.p ? key.p : "", key.n);
    if (wildcard)
      r->wild_lens |= 1ull << (key.n < 63 ? key.n : 63);
  }
  return s->set;
}

/* The node for prefix key under root, created as needed. */
static uint32_t node_of(struct router *r, uint32_t root, struct slice key) {
  uint32_t node = root;
  size_t pos = 0;
  while (pos < key.n) {
    size_t end = pos + 1;
    while (end < key.n && key.p[end] != '/')
      end++;
    const char *seg = key.p + pos + 1;
    uint32_t n = (uint32_t)(end - pos - 1);
    uint32_t h = edge_hash(node, seg, n);
    struct edge *e = &r->edges[edge_probe(r, node, seg, n, h)];
    if (e->id == 0)
      *e = (struct edge){h, node_add(r, node, seg, n) + 1};
    node = e->id - 1;
    pos = end;
  }
  return node;
}

/* Stable counting sort of n (bucket, route) pairs, bucket by bucket, into
 * out_route, or into out_ent with kinds[i] packing pair i's entry kind (low
 * byte) and its unconditional flag (bit 8); off[b] and cnt[b] receive each
 * bucket's range. Stable, so file order holds within a bucket. */
static void bucket_sort(const uint32_t (*pairs)[2], uint32_t n, uint32_t nbuckets, uint32_t *off,
                        uint32_t *cnt, uint32_t *out_route, struct entry *out_ent,
                        const uint32_t *kinds) {
  for (uint32_t b = 0; b < nbuckets; b++)
    cnt[b] = 0;
  for (uint32_t i = 0; i < n; i++)
    cnt[pairs[i][0]]++;
  uint32_t total = 0;
  for (uint32_t b = 0; b < nbuckets; b++) {
    off[b] = total;
    total += cnt[b];
    cnt[b] = 0;
  }
  for (uint32_t i = 0; i < n; i++) {
    uint32_t b = pairs[i][0], at = off[b] + cnt[b]++;
    if (out_route)
      out_route[at] = pairs[i][1];
    else
      out_ent[at] =
          (struct entry){pairs[i][1], (uint16_t)(kinds[i] & 0xffu), (uint16_t)(kinds[i] >> 8)};
  }
}

struct router *router_new(const struct config *cfg) {
  struct router *r = calloc(1, sizeof *r);
  uint32_t(*tp)[2] = NULL, (*rp)[2] = NULL, *kinds = NULL, *off = NULL, *cnt = NULL;
  if (!r)
    return NULL;
  r->cfg = cfg;
  if (cfg->nroutes > UINT32_MAX / 8)
    goto fail;
  uint32_t nroutes = (uint32_t)cfg->nroutes;

  /* Upper bounds: a set per route plus the host-less one; a node per set
   * root and per path segment of a trie route. */
  uint64_t maxnodes = (uint64_t)nroutes + 1;
  for (uint32_t i = 0; i < nroutes; i++) {
    struct slice key;
    enum ent_kind kind;
    if (trie_key(&cfg->routes[i], &key, &kind))
      for (size_t j = 0; j < key.n; j++)
        maxnodes += key.p[j] == '/';
  }
  if (maxnodes > UINT32_MAX / 4)
    goto fail;
  uint32_t hslots = pow2_at_least(2 * (uint64_t)nroutes), eslots = pow2_at_least(2 * maxnodes);
  r->hmask = hslots - 1;
  r->emask = eslots - 1;
  r->hosts = calloc(hslots, sizeof *r->hosts);
  r->sets = calloc((size_t)nroutes + 1, sizeof *r->sets);
  r->nodes = calloc(maxnodes, sizeof *r->nodes);
  r->edges = calloc(eslots, sizeof *r->edges);
  r->ents = calloc(nroutes ? nroutes : 1, sizeof *r->ents);
  r->rest = calloc(nroutes ? nroutes : 1, sizeof *r->rest);
  tp = calloc(nroutes ? nroutes : 1, sizeof *tp);
  rp = calloc(nroutes ? nroutes : 1, sizeof *rp);
  kinds = calloc(nroutes ? nroutes : 1, sizeof *kinds);
  if (!r->hosts || !r->sets || !r->nodes || !r->edges || !r->ents || !r->rest || !tp || !rp ||
      !kinds)
    goto fail;

  r->nsets = 1;
  r->sets[0] = (struct rset){node_add(r, NONE, "", 0), 0, 0};
  for (uint32_t k = 0; k < hslots; k++)
    r->hosts[k].set = NONE;
  uint32_t nt = 0, nr = 0;
  for (uint32_t i = 0; i < nroutes; i++) {
    const struct cfg_route *rt = &cfg->routes[i];
    uint32_t set = set_of(r, rt);
    struct slice key;
    enum ent_kind kind;
    if (trie_key(rt, &key, &kind)) {
      tp[nt][0] = node_of(r, r->sets[set].root, key);
      tp[nt][1] = i;
      kinds[nt++] = (uint32_t)kind | (!rt->methods && !rt->nheaders ? 1u << 8 : 0);
    } else {
      rp[nr][0] = set;
      rp[nr++][1] = i;
    }
  }

  /* Lay the lists out grouped by node and by set, file order within. */
  uint32_t nb = r->nnodes > r->nsets ? r->nnodes : r->nsets;
  off = calloc(nb, sizeof *off);
  cnt = calloc(nb, sizeof *cnt);
  if (!off || !cnt)
    goto fail;
  bucket_sort((const uint32_t(*)[2])tp, nt, r->nnodes, off, cnt, NULL, r->ents, kinds);
  for (uint32_t k = 0; k < r->nnodes; k++) {
    r->nodes[k].ent_off = off[k];
    r->nodes[k].ent_n = cnt[k];
  }
  bucket_sort((const uint32_t(*)[2])rp, nr, r->nsets, off, cnt, r->rest, NULL, NULL);
  for (uint32_t k = 0; k < r->nsets; k++) {
    r->sets[k].rest_off = off[k];
    r->sets[k].rest_n = cnt[k];
  }
  for (uint32_t k = 0; k < hslots; k++)
    if (r->hosts[k].set != NONE)
      r->hosts[k].rs = r->sets[r->hosts[k].set];
  r->hostless_empty = r->sets[0].rest_n == 0 && r->nodes[r->sets[0].root].ent_n == 0;
  for (uint32_t k = 0; k < r->nnodes && r->hostless_empty; k++)
    if (r->nodes[k].parent == r->sets[0].root)
      r->hostless_empty = false;
  free(tp);
  free(rp);
  free(kinds);
  free(off);
  free(cnt);
  return r;

fail:
  free(tp);
  free(rp);
  free(kinds);
  free(off);
  free(cnt);
  router_free(r);
  return NULL;
}

/* ---- match ------------------------------------------------------------ */

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

/* Methods and header conditions. */
static bool route_accepts(const struct cfg_route *rt, const struct route_query *q) {
  if (rt->methods) {
    if (q->method < 0 || q->method >= 64 || !(rt->methods & (1ull << q->method)))
      return false;
  }
  for (size_t i = 0; i < rt->nheaders; i++) {
    const struct hdr *h = http_head_find(q->headers, slice_cstr(rt->headers[i].name));
    if (!h || !slice_eq(h->value, slice_cstr(rt->headers[i].value)))
      return false;
  }
  return true;
}

/* The first route of one node's list usable at path position pos (the
 * node's prefix is path[0 .. pos)), if its index is below *best. */
static void scan_node(const struct router *r, const struct node *nd, size_t pos,
                      const struct route_query *q, uint32_t *best) {
  const struct entry *e = r->ents + nd->ent_off;
  for (uint32_t i = 0; i < nd->ent_n && e[i].route < *best; i++) {
    if ((e[i].kind == ENT_EXACT && pos != q->path.n) ||
        (e[i].kind == ENT_PLAIN && pos == q->path.n))
      continue;
    if (e[i].unconditional || route_accepts(&r->cfg->routes[e[i].route], q)) {
      *best = e[i].route;
      return;
    }
  }
}

static void scan_set(const struct router *r, const struct rset *s, const struct route_query *q,
                     uint32_t *best) {
  const uint32_t *rest = r->rest + s->rest_off;
  for (uint32_t i = 0; i < s->rest_n && rest[i] < *best; i++) {
    const struct cfg_route *rt = &r->cfg->routes[rest[i]];
    if (route_accepts(rt, q) && path_matches(rt, q->path)) {
      *best = rest[i];
      break;
    }
  }
  /* Walk the trie along the path's segments; a path not starting with '/'
   * reaches no node but the root. */
  struct slice path = q->path;
  uint32_t node = s->root;
  size_t pos = 0;
  for (;;) {
    const struct node *nd = &r->nodes[node];
    if (nd->ent_n && r->ents[nd->ent_off].route < *best)
      scan_node(r, nd, pos, q, best);
    if (pos >= path.n || path.p[pos] != '/')
      return;
    size_t end = pos + 1;
    while (end < path.n && path.p[end] != '/')
      end++;
    if (end - pos - 1 > UINT32_MAX)
      return;
    node = child_find(r, node, path.p + pos + 1, end - pos - 1);
    if (node == NONE)
      return;
    pos = end;
  }
}

const struct cfg_route *router_match(const struct router *r, const struct route_query *q) {
  uint32_t best = NONE;
  if (!r->hostless_empty)
    scan_set(r, &r->sets[0], q, &best);
  if (q->host.n > 0) {
    struct slice host = host_key(q->host);
    const struct host_slot *hs = host_find(r, host, 0);
    if (hs)
      scan_set(r, &hs->rs, q, &best);
    /* Wildcard suffixes: what follows each '.' that is not the first byte. */
    for (size_t i = 1; r->wild_lens && i + 1 < host.n; i++) {
      size_t len = host.n - i - 1;
      if (host.p[i] != '.' || !(r->wild_lens & (1ull << (len < 63 ? len : 63))))
        continue;
      hs = host_find(r, slice_make(host.p + i + 1, len), 1);
      if (hs)
        scan_set(r, &hs->rs, q, &best);
    }
  }
  return best == NONE ? NULL : &r->cfg->routes[best];
}

/* ---- explaining one route ------------------------------------------- */

/* The host rule router_match() implements with its sets: an exact host
 * equals the request's host (any case, one trailing '.' ignored); a
 * wildcard suffix follows a '.' in the request's host that is not its
 * first byte; a request without Host matches host-less routes only. */
static bool host_matches(const struct cfg_route *rt, struct slice qhost) {
  if (!rt->host)
    return true;
  if (qhost.n == 0)
    return false;
  struct slice host = host_key(qhost);
  if (!rt->host_wildcard)
    return slice_ieq(host, host_key(slice_cstr(rt->host)));
  struct slice key = wildcard_key(rt->host);
  if (key.n == 0 || host.n < key.n + 2)
    return false;
  size_t dot = host.n - key.n - 1;
  return dot >= 1 && host.p[dot] == '.' && slice_ieq(slice_make(host.p + dot + 1, key.n), key);
}

enum router_skip router_route_check(const struct cfg_route *rt, const struct route_query *q,
                                    size_t *header) {
  *header = 0;
  if (!host_matches(rt, q->host))
    return ROUTER_SKIP_HOST;
  if (!path_matches(rt, q->path))
    return ROUTER_SKIP_PATH;
  if (rt->methods && (q->method < 0 || q->method >= 64 || !(rt->methods & (1ull << q->method))))
    return ROUTER_SKIP_METHOD;
  for (size_t i = 0; i < rt->nheaders; i++) {
    const struct hdr *h = http_head_find(q->headers, slice_cstr(rt->headers[i].name));
    if (!h || !slice_eq(h->value, slice_cstr(rt->headers[i].value))) {
      *header = i;
      return ROUTER_SKIP_HEADER;
    }
  }
  return ROUTER_SKIP_NONE;
}

size_t router_route_label(const struct cfg_route *r, char *out, size_t cap) {
  static const char *const kinds[] = {"", "path", "path_prefix", "path_regex"};
  int k = 0;
  if (r->host)
    k = snprintf(out, cap, "host %s%s", r->host_wildcard ? "*" : "", r->host);
  if (r->path_kind != PATH_ANY && k >= 0 && (size_t)k < cap)
    k += snprintf(out + k, cap - (size_t)k, "%s%s %s", k ? ", " : "", kinds[r->path_kind], r->path);
  if (k == 0)
    k = snprintf(out, cap, "any request");
  if (k < 0)
    return 0;
  return (size_t)k < cap ? (size_t)k : cap - 1;
}

/* ---- shadowed routes -------------------------------------------------- */

static bool host_covers(const struct cfg_route *a, const struct cfg_route *b) {
  if (!a->host)
    return true;
  if (!b->host)
    return false;
  struct slice ah = host_key(slice_cstr(a->host)), bh = host_key(slice_cstr(b->host));
  if (!a->host_wildcard)
    return !b->host_wildcard && slice_ieq(ah, bh);
  /* a: ".example.com" covers "x.example.com" and ".x.example.com" (a
   * wildcard below it), and ".example.com" itself when b is a wildcard. */
  if (ah.n == 0 || bh.n < ah.n || (bh.n == ah.n && !b->host_wildcard))
    return false;
  return slice_ieq(slice_make(bh.p + bh.n - ah.n, ah.n), ah) &&
         (ah.p[0] == '.' || bh.n == ah.n || bh.p[bh.n - ah.n - 1] == '.');
}

static bool path_covers(const struct cfg_route *a, const struct cfg_route *b) {
  switch (a->path_kind) {
  case PATH_ANY:
    return true;
  case PATH_PREFIX:
    if (!a->path)
      return false;
    if (strcmp(a->path, "/") == 0) /* every path starts with "/" */
      return true;
    /* b's own path (or prefix) is the shortest path b matches; a prefix
     * that matches it matches everything b matches below it too. */
    return (b->path_kind == PATH_PREFIX || b->path_kind == PATH_EXACT) && b->path &&
           prefix_matches(a->path, slice_cstr(b->path));
  case PATH_EXACT:
  case PATH_REGEX:
    return b->path_kind == a->path_kind && a->path && b->path && strcmp(a->path, b->path) == 0;
  }
  return false;
}

static bool headers_cover(const struct cfg_route *a, const struct cfg_route *b) {
  for (size_t i = 0; i < a->nheaders; i++) {
    size_t j = 0;
    while (j < b->nheaders &&
           !(slice_ieq(slice_cstr(a->headers[i].name), slice_cstr(b->headers[j].name)) &&
             strcmp(a->headers[i].value, b->headers[j].value) == 0))
      j++;
    if (j == b->nheaders)
      return false;
  }
  return true;
}

bool router_route_covers(const struct cfg_route *a, const struct cfg_route *b) {
  if (a->methods && (!b->methods || (b->methods & ~a->methods)))
    return false;
  return host_covers(a, b) && path_covers(a, b) && headers_cover(a, b);
}

static bool diag_add(struct config_diag *d, char *msg) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    char **msgs = realloc(d->msgs, cap * sizeof *msgs);
    if (!msgs)
      return false;
    d->msgs = msgs;
    d->cap = cap;
  }
  d->msgs[d->n++] = msg;
  return true;
}

/* The earliest route below *best in set s that covers b (routes[j]). The
 * candidates are found like router_match() finds routes for a request: the
 * rest list (no path condition, regexes) and the trie entries along b's own
 * path, which is where every path_prefix or path covering b's path sits. */
static void shadow_scan_set(const struct router *r, const struct rset *s, const struct cfg_route *b,
                            uint32_t *best) {
  const struct cfg_route *routes = r->cfg->routes;
  const uint32_t *rest = r->rest + s->rest_off;
  for (uint32_t i = 0; i < s->rest_n && rest[i] < *best; i++)
    if (router_route_covers(&routes[rest[i]], b)) {
      *best = rest[i];
      break;
    }
  struct slice path = {"", 0};
  if ((b->path_kind == PATH_PREFIX || b->path_kind == PATH_EXACT) && b->path)
    path = slice_cstr(b->path);
  uint32_t node = s->root;
  size_t pos = 0;
  for (;;) {
    const struct node *nd = &r->nodes[node];
    const struct entry *e = r->ents + nd->ent_off;
    for (uint32_t i = 0; i < nd->ent_n && e[i].route < *best; i++)
      if (router_route_covers(&routes[e[i].route], b)) {
        *best = e[i].route;
        break;
      }
    if (pos >= path.n || path.p[pos] != '/')
      return;
    size_t end = pos + 1;
    while (end < path.n && path.p[end] != '/')
      end++;
    node = child_find(r, node, path.p + pos + 1, end - pos - 1);
    if (node == NONE)
      return;
    pos = end;
  }
}

size_t router_check_shadowed(const struct config *cfg, struct config_diag *diag) {
  size_t added = 0;
  const char *file = cfg->file ? cfg->file : "(config)";
  struct router *r = router_new(cfg);
  if (!r)
    return 0; /* out of memory: no warnings, nothing else goes wrong */
  for (uint32_t j = 1; j < (uint32_t)cfg->nroutes; j++) {
    const struct cfg_route *b = &cfg->routes[j];
    uint32_t best = j;
    const struct host_slot *hs;
    /* Sets whose routes can cover b's host: the host-less set, b's own
     * exact or wildcard set, and the wildcard sets above b's host. */
    shadow_scan_set(r, &r->sets[0], b, &best);
    if (b->host) {
      uint32_t wildcard = b->host_wildcard ? 1 : 0;
      struct slice key = wildcard ? wildcard_key(b->host) : host_key(slice_cstr(b->host));
      if ((hs = host_find(r, key, wildcard)) != NULL)
        shadow_scan_set(r, &hs->rs, b, &best);
      for (size_t i = wildcard ? 0 : 1; i + 1 < key.n; i++)
        if (key.p[i] == '.' &&
            (hs = host_find(r, slice_make(key.p + i + 1, key.n - i - 1), 1)) != NULL)
          shadow_scan_set(r, &hs->rs, b, &best);
    }
    if (best == j)
      continue;
    const struct cfg_route *a = &cfg->routes[best];
    char *msg = NULL;
    int len = asprintf(&msg,
                       "%s:%d:%d: warning: routes[%u] (line %d) can never match: routes[%u] "
                       "(line %d) comes first and matches every request it would (same or wider "
                       "host and path, no extra conditions); move routes[%u] above routes[%u], "
                       "narrow routes[%u], or remove routes[%u]",
                       file, b->line, b->col, j, b->line, best, a->line, j, best, best, j);
    diag->nwarnings++;
    added++;
    if (len >= 0 && !diag_add(diag, msg))
      free(msg);
  }
  router_free(r);
  return added;
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
