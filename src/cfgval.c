/* cfgval: typed values of the configuration (include/ferry/cfgval.h):
 * booleans, integers, durations, sizes, enumerations, lists and mappings
 * with a fixed set of keys, paths, listen addresses and the syntax checks
 * behind them (tokens, header values, host names, host:port).
 *
 * Owns: the rules for what a well-formed value of each type is and the
 * wording of the error when it is not. Must not touch: which key holds
 * which type or any default (the schema loaders in config.c and cfgroute.c
 * decide), struct config, name resolution, sockets or the event loop.
 * Stateless: everything it records goes into the struct ydoc it is given. */
#include "ferry/http_head.h"
#include "ferry/cfgval.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/config.h"

void cfgval_err_type(struct ydoc *c, const struct ynode *n, const char *path,
                     const char *expected) {
  char qb[YDOC_QBUF + 16];
  ydoc_err(c, n->mark, path, "expected %s, found %s", expected, ydoc_found(n, qb, sizeof qb));
}

/* Any non-empty scalar, as text (owned by the node). NUL bytes are refused. */
bool cfgval_text(struct ydoc *c, const struct ynode *n, const char *path, const char **out) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind != Y_SCALAR) {
    cfgval_err_type(c, n, path, "a string");
    return false;
  }
  if (strlen(n->s) != n->len) {
    ydoc_err(c, n->mark, path, "must not contain NUL characters");
    return false;
  }
  *out = n->s;
  return true;
}

bool cfgval_str(struct ydoc *c, const struct ynode *n, const char *path, char **out) {
  const char *s;
  if (!cfgval_text(c, n, path, &s))
    return false;
  ydoc_set_str(c, out, s);
  return true;
}

bool cfgval_bool(struct ydoc *c, const struct ynode *n, const char *path, bool *out) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind == Y_SCALAR && n->plain) {
    for (size_t i = 0; i < 3; i++) {
      if (ydoc_streq_nocase(n->s, yes[i])) {
        *out = true;
        return true;
      }
      if (ydoc_streq_nocase(n->s, no[i])) {
        *out = false;
        return true;
      }
    }
  }
  cfgval_err_type(c, n, path, "true or false");
  return false;
}

/* Decimal integer with an optional sign. 1: ok; 0: not an integer;
 * -1: an integer too large for int64_t. */
int cfgval_parse_int(const char *s, int64_t *out) {
  bool neg = false;
  uint64_t v = 0;
  if (*s == '-' || *s == '+')
    neg = *s++ == '-';
  if (!isdigit((unsigned char)*s))
    return 0;
  for (; *s; s++) {
    if (!isdigit((unsigned char)*s))
      return 0;
    if (v > ((uint64_t)INT64_MAX - (uint64_t)(*s - '0')) / 10) {
      while (isdigit((unsigned char)*++s)) {
      }
      return *s ? 0 : -1;
    }
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = neg ? -(int64_t)v : (int64_t)v;
  return 1;
}

bool cfgval_int(struct ydoc *c, const struct ynode *n, const char *path, int64_t min, int64_t max,
                int64_t *out) {
  int64_t v = 0;
  int r;
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind != Y_SCALAR || !n->plain || (r = cfgval_parse_int(n->s, &v)) == 0) {
    cfgval_err_type(c, n, path, "an integer");
    return false;
  }
  if (r < 0 || v < min || v > max) {
    char qb[YDOC_QBUF];
    ydoc_err(c, n->mark, path, "%s is out of range (expected %lld..%lld)",
             r < 0 ? ydoc_quote(n->s, qb, sizeof qb) : n->s, (long long)min, (long long)max);
    return false;
  }
  *out = v;
  return true;
}

bool cfgval_u32(struct ydoc *c, const struct ynode *n, const char *path, uint32_t min, uint32_t max,
                uint32_t *out) {
  int64_t v;
  if (!cfgval_int(c, n, path, min, max, &v))
    return false;
  *out = (uint32_t)v;
  return true;
}

/* Non-empty scalar of any style (a plain 10 is a string "10" here). */
static bool get_word(struct ydoc *c, const struct ynode *n, const char *path, const char *expected,
                     const char **out) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind != Y_SCALAR || n->len == 0) {
    cfgval_err_type(c, n, path, expected);
    return false;
  }
  *out = n->s;
  return true;
}

bool cfgval_duration(struct ydoc *c, const struct ynode *n, const char *path, uint64_t min_ms,
                     uint64_t *out) {
  const char *s;
  uint64_t v;
  char qb[YDOC_QBUF];
  if (!get_word(c, n, path, "a duration (e.g. 250ms, 10s, 2m, 1h)", &s))
    return false;
  if (strlen(s) != n->len || config_parse_duration_ms(s, &v) != 0) {
    ydoc_err(c, n->mark, path,
             "invalid duration %s (expected e.g. 250ms, 10s, 2m, 1h or a number of seconds)",
             ydoc_quote_n(s, n->len, qb, sizeof qb));
    return false;
  }
  if (v < min_ms) {
    ydoc_err(c, n->mark, path, "must be greater than 0, found %s", ydoc_quote(s, qb, sizeof qb));
    return false;
  }
  *out = v;
  return true;
}

/* "16k" for 16384; plain digits when not a whole number of k/m/g. */
static const char *size_text(uint64_t v, char *buf, size_t size) {
  static const char units[] = "gmk";
  for (int i = 0; i < 3; i++) {
    uint64_t unit = 1ull << (10 * (3 - i));
    if (v != 0 && v % unit == 0) {
      snprintf(buf, size, "%llu%c", (unsigned long long)(v / unit), units[i]);
      return buf;
    }
  }
  snprintf(buf, size, "%llu", (unsigned long long)v);
  return buf;
}

bool cfgval_size(struct ydoc *c, const struct ynode *n, const char *path, uint64_t min,
                 uint64_t max, uint64_t *out) {
  const char *s;
  uint64_t v;
  char qb[YDOC_QBUF], lo[32], hi[32];
  if (!get_word(c, n, path, "a size (e.g. 512, 16k, 1m, 2g)", &s))
    return false;
  if (strlen(s) != n->len || config_parse_size(s, &v) != 0) {
    ydoc_err(c, n->mark, path, "invalid size %s (expected e.g. 512, 16k, 1m, 2g)",
             ydoc_quote_n(s, n->len, qb, sizeof qb));
    return false;
  }
  if (v < min || v > max) {
    ydoc_err(c, n->mark, path, "%s is out of range (expected %s..%s)", ydoc_quote(s, qb, sizeof qb),
             size_text(min, lo, sizeof lo), size_text(max, hi, sizeof hi));
    return false;
  }
  *out = v;
  return true;
}

/* One of names[0..count), stored as its index. */
bool cfgval_enum(struct ydoc *c, const struct ynode *n, const char *path, const char *const *names,
                 size_t count, int *out) {
  char list[256], qb[YDOC_QBUF], expected[300];
  const char *s;
  ydoc_join_names(names, count, list, sizeof list);
  snprintf(expected, sizeof expected, "one of %s", list);
  if (!get_word(c, n, path, expected, &s))
    return false;
  struct ydoc_suggest sg = {s, NULL, 0};
  for (size_t i = 0; i < count; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (int)i;
      return true;
    }
    ydoc_suggest_try(&sg, names[i]);
  }
  const char *best = ydoc_suggest_get(&sg);
  if (best != NULL)
    ydoc_err(c, n->mark, path, "unknown value %s (did you mean \"%s\"?)",
             ydoc_quote_n(s, n->len, qb, sizeof qb), best);
  else
    ydoc_err(c, n->mark, path, "unknown value %s (expected %s)",
             ydoc_quote_n(s, n->len, qb, sizeof qb), list);
  return false;
}

/* A list: true with its item count (0 for an empty value). */
bool cfgval_seq(struct ydoc *c, const struct ynode *n, const char *path, size_t *count) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind == Y_NULL) {
    *count = 0;
    return true;
  }
  if (n->kind != Y_SEQ) {
    cfgval_err_type(c, n, path, "a list");
    return false;
  }
  *count = n->n;
  return true;
}

/* A mapping: true with its number of pairs (0 for an empty value). */
bool cfgval_map(struct ydoc *c, const struct ynode *n, const char *path, size_t *pairs) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind == Y_NULL) {
    *pairs = 0;
    return true;
  }
  if (n->kind != Y_MAP) {
    cfgval_err_type(c, n, path, "a mapping");
    return false;
  }
  *pairs = n->n / 2;
  return true;
}

/* Checks key i of a mapping: a scalar, not equal to an earlier key
 * (ASCII case ignored when nocase). noun names the key in messages. Returns
 * true when the pair should be used; false (reported) otherwise. */
bool cfgval_key_ok(struct ydoc *c, const struct ynode *map, size_t i, const char *path, bool nocase,
                   const char *noun) {
  const struct ynode *k = map->kids[2 * i];
  char qb[YDOC_QBUF];
  if (k->kind == Y_BAD)
    return false;
  if (k->kind != Y_SCALAR) {
    cfgval_err_type(c, k, path, "a key");
    return false;
  }
  for (size_t j = 0; j < i; j++) {
    const struct ynode *prev = map->kids[2 * j];
    if (prev->kind == Y_SCALAR &&
        (nocase ? ydoc_streq_nocase(prev->s, k->s) : strcmp(prev->s, k->s) == 0)) {
      ydoc_err(c, k->mark, path, "duplicate %s %s (first defined at line %d)", noun,
               ydoc_quote_n(k->s, k->len, qb, sizeof qb), ydoc_line(prev->mark));
      return false;
    }
  }
  return true;
}

/* Reads a mapping with a fixed set of keys. keys[] is NULL-terminated;
 * vals[i] and knodes[i] receive the value and key node of keys[i], or NULL.
 * Unknown and duplicate keys are reported (with a suggestion) and skipped;
 * an empty value is read as an empty mapping. Returns false when n is not a
 * mapping (reported unless n is Y_BAD). */
bool cfgval_fields(struct ydoc *c, const struct ynode *n, const char *path, const char *const *keys,
                   const struct ynode **vals, const struct ynode **knodes) {
  size_t nkeys = 0, pairs;
  while (keys[nkeys] != NULL) {
    vals[nkeys] = NULL;
    knodes[nkeys] = NULL;
    nkeys++;
  }
  if (n == NULL || !cfgval_map(c, n, path, &pairs))
    return false;
  for (size_t i = 0; i < pairs; i++) {
    const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
    char qb[YDOC_QBUF], list[512];
    if (!cfgval_key_ok(c, n, i, path, false, "key"))
      continue;
    size_t f = 0;
    while (f < nkeys && strcmp(keys[f], k->s) != 0)
      f++;
    if (f < nkeys) {
      vals[f] = v;
      knodes[f] = k;
      continue;
    }
    struct ydoc_suggest sg = {k->s, NULL, 0};
    for (size_t j = 0; j < nkeys; j++)
      ydoc_suggest_try(&sg, keys[j]);
    const char *best = ydoc_suggest_get(&sg);
    if (best != NULL)
      ydoc_err(c, k->mark, path, "unknown key %s (did you mean \"%s\"?)",
               ydoc_quote_n(k->s, k->len, qb, sizeof qb), best);
    else
      ydoc_err(c, k->mark, path, "unknown key %s (expected %s)",
               ydoc_quote_n(k->s, k->len, qb, sizeof qb),
               ydoc_join_names(keys, nkeys, list, sizeof list));
  }
  return true;
}

/* Path-like values: must start with '/', no spaces or control characters;
 * with no_query also no '?' or '#'. */
bool cfgval_path(struct ydoc *c, const struct ynode *n, const char *path, const char *s,
                 bool no_query) {
  char qb[YDOC_QBUF];
  if (s[0] != '/') {
    ydoc_err(c, n->mark, path, "must start with \"/\", found %s", ydoc_quote(s, qb, sizeof qb));
    return false;
  }
  if (cfgval_has_space_or_ctl(s)) {
    ydoc_err(c, n->mark, path, "must not contain spaces or control characters, found %s",
             ydoc_quote(s, qb, sizeof qb));
    return false;
  }
  if (no_query && strpbrk(s, "?#") != NULL) {
    ydoc_err(c, n->mark, path,
             "must not contain \"?\" or \"#\" (routes match the path without "
             "the query), found %s",
             ydoc_quote(s, qb, sizeof qb));
    return false;
  }
  return true;
}

/* ---- value syntax ------------------------------------------------------ */

bool cfgval_is_token(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!http_is_tchar((unsigned char)*s))
      return false;
  return true;
}

/* No control characters but HTAB: safe inside a header line. */
bool cfgval_is_field_value(const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return false;
  }
  return true;
}

bool cfgval_has_space_or_ctl(const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= 0x20 || ch == 0x7f)
      return true;
  }
  return false;
}

bool cfgval_is_host_name(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
      return false;
  return true;
}

int config_parse_duration_ms(const char *s, uint64_t *out) {
  uint64_t v = 0, mul;
  if (s == NULL || !isdigit((unsigned char)*s))
    return -1;
  for (; isdigit((unsigned char)*s); s++) {
    if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (*s == '\0' || strcmp(s, "s") == 0)
    mul = 1000;
  else if (strcmp(s, "ms") == 0)
    mul = 1;
  else if (strcmp(s, "m") == 0)
    mul = 60 * 1000;
  else if (strcmp(s, "h") == 0)
    mul = 60 * 60 * 1000;
  else
    return -1;
  if (v > UINT64_MAX / mul)
    return -1;
  *out = v * mul;
  return 0;
}

int config_parse_size(const char *s, uint64_t *out) {
  uint64_t v = 0, mul = 1;
  if (s == NULL || !isdigit((unsigned char)*s))
    return -1;
  for (; isdigit((unsigned char)*s); s++) {
    if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (*s != '\0') {
    switch (tolower((unsigned char)*s)) {
    case 'k':
      mul = 1ull << 10;
      break;
    case 'm':
      mul = 1ull << 20;
      break;
    case 'g':
      mul = 1ull << 30;
      break;
    default:
      return -1;
    }
    if (s[1] != '\0')
      return -1;
  }
  if (v > UINT64_MAX / mul)
    return -1;
  *out = v * mul;
  return 0;
}

/* Splits "host:port", "[v6]:port" or ":port". host receives the host
 * without brackets (possibly empty), *bracketed whether it had them. Returns
 * 0, or -1 with a reason in err. */
int cfgval_split_host_port(const char *s, char *host, size_t hostsize, uint16_t *port,
                           bool *bracketed, char *err, size_t errlen) {
  const char *h, *hend, *p;
  *bracketed = s[0] == '[';
  if (*bracketed) {
    h = s + 1;
    hend = strchr(h, ']');
    if (hend == NULL) {
      snprintf(err, errlen, "missing \"]\" after the IPv6 address");
      return -1;
    }
    if (hend[1] != ':') {
      snprintf(err, errlen, "expected \":PORT\" after \"]\"");
      return -1;
    }
    p = hend + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
      snprintf(err, errlen, "expected HOST:PORT");
      return -1;
    }
    h = s;
    hend = colon;
    p = colon + 1;
    if (memchr(h, ':', (size_t)(hend - h)) != NULL) {
      snprintf(err, errlen, "an IPv6 address must be written in brackets, e.g. [::1]:8080");
      return -1;
    }
  }
  if ((size_t)(hend - h) >= hostsize) {
    snprintf(err, errlen, "host is too long");
    return -1;
  }
  memcpy(host, h, (size_t)(hend - h));
  host[hend - h] = '\0';

  size_t plen = strlen(p);
  char qb[YDOC_QBUF];
  if (plen == 0) {
    snprintf(err, errlen, "missing port number after \":\"");
    return -1;
  }
  for (size_t i = 0; i < plen; i++) {
    if (!isdigit((unsigned char)p[i])) {
      snprintf(err, errlen, "port %s is not a number", ydoc_quote(p, qb, sizeof qb));
      return -1;
    }
  }
  unsigned long v = plen > 5 ? 0 : strtoul(p, NULL, 10);
  if (v < 1 || v > 65535) {
    snprintf(err, errlen, "port %s is out of range (expected 1..65535)",
             plen > YDOC_QUOTE_MAX ? ydoc_quote(p, qb, sizeof qb) : p);
    return -1;
  }
  *port = (uint16_t)v;
  return 0;
}

int config_parse_listen_address(const char *s, struct sockaddr_storage *out, char *err,
                                size_t errlen) {
  char host[CFGVAL_HOST_MAX], qb[YDOC_QBUF];
  uint16_t port;
  bool bracketed;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (cfgval_split_host_port(s, host, sizeof host, &port, &bracketed, err, errlen) != 0)
    return -1;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (bracketed) {
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
      snprintf(err, errlen, "%s is not an IPv6 address", ydoc_quote(host, qb, sizeof qb));
      return -1;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  } else {
    if (host[0] == '\0') {
      sin->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (ydoc_streq_nocase(host, "localhost")) {
      sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
      snprintf(err, errlen, "host %s is not a numeric IP address or localhost",
               ydoc_quote(host, qb, sizeof qb));
      return -1;
    }
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  }
  *out = ss;
  return 0;
}

bool cfgval_same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a,
                              *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return false;
}

/* A listener or admin address value: copied to *text, parsed into *addr. */
bool cfgval_listen_address(struct ydoc *c, const struct ynode *n, const char *path, char **text,
                           struct sockaddr_storage *addr) {
  const char *s;
  char e[256], qb[YDOC_QBUF];
  if (!cfgval_text(c, n, path, &s))
    return false;
  if (config_parse_listen_address(s, addr, e, sizeof e) != 0) {
    ydoc_err(c, n->mark, path, "invalid address %s: %s", ydoc_quote(s, qb, sizeof qb), e);
    return false;
  }
  ydoc_set_str(c, text, s);
  return true;
}

/* A list of CIDRs into *list (allocated, count items). */
void cfgval_cidrs(struct ydoc *c, const struct ynode *n, const char *path, struct cidr **list,
                  size_t *count) {
  size_t items;
  if (!cfgval_seq(c, n, path, &items) || items == 0)
    return;
  if ((*list = ydoc_calloc(c, items, sizeof **list)) == NULL)
    return;
  for (size_t i = 0; i < items; i++) {
    const struct ynode *item = n->kids[i];
    char ipath[YDOC_KEYPATH_MAX], e[256];
    const char *s;
    if (!cfgval_text(c, item, ydoc_kp_index(ipath, path, i), &s))
      continue;
    if (cidr_parse(s, &(*list)[*count], e, sizeof e) != 0) {
      ydoc_err(c, item->mark, ipath, "invalid address range: %s", e);
      continue;
    }
    (*count)++;
  }
}
