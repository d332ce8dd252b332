/* config: proxy.yaml -> an immutable struct config (include/ferry/config.h).
 *
 * Owns: reading the file, turning libyaml's event stream into a small
 * syntax tree, checking that tree against the schema of SPEC §2, filling the
 * snapshot with values and defaults, resolving upstream server names once at
 * load time, every diagnostic about the file, and the snapshot's memory
 * (config_free). Must not touch: sockets other than through getaddrinfo(),
 * the event loop, the router's compiled form, or any state outside the
 * snapshot it returns. Nothing here is global, so several loads (a reload
 * while serving) may run on different threads.
 *
 * Two passes. (1) yaml_tree() reads events into ynodes that keep their
 * start mark; anchors are ignored, aliases rejected, nesting is bounded, and
 * a YAML syntax error ends the load with that one error. (2) The load_*
 * functions walk the tree in a fixed order (timeouts before upstreams,
 * upstreams before routes, so defaults and references resolve in one walk)
 * and report every problem they find, continuing past each one. Because of
 * that fixed order, diagnostics are sorted into file order before they reach
 * the caller.
 *
 * Running out of memory while loading is reported as an error, never an
 * abort: a reload must not take a serving process down. */
#include "ferry/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "ferry/http_head.h"
#include "ferry/router.h"

#define KEYPATH_MAX 256          /* longer key paths are cut short in messages */
#define QUOTE_MAX 60             /* bytes of a value shown in a message */
#define QBUF (QUOTE_MAX * 4 + 8) /* room for QUOTE_MAX escaped bytes, quotes and "..." */
#define MAX_DEPTH 64             /* deepest YAML nesting accepted */
#define MAX_FILE_BYTES (16u << 20)
#define HOST_MAX 256

/* ---- syntax tree ------------------------------------------------------ */

enum ykind {
  Y_NULL,   /* plain "", "~", "null": an empty value */
  Y_SCALAR, /* any other scalar */
  Y_SEQ,
  Y_MAP,
  Y_BAD /* an alias: already reported, skipped silently by the walk */
};

struct ynode {
  enum ykind kind;
  bool plain;       /* plain scalar without a tag: may be read as a number or bool */
  yaml_mark_t mark; /* where the node starts */
  char *s;          /* scalar text, NUL-terminated (may also contain NULs); NULL otherwise */
  size_t len;
  struct ynode **kids; /* sequence: items; mapping: key0, value0, key1, value1, ... */
  size_t n, cap;
};

/* ---- load context ------------------------------------------------------ */

struct note {
  size_t line, col, seq;
  char *text; /* complete message line, owned */
};

struct ctx {
  const char *file; /* name used in messages */
  const char *text; /* the whole input, for positions of reader errors */
  size_t len;
  struct note *notes;
  size_t nnotes, capnotes;
  size_t nerrors;
  bool oom;
  bool upstreams_bad; /* `upstreams` unreadable: do not report routes' references */
  struct config *cfg;
};

/* ---- small helpers ----------------------------------------------------- */

static void *xcalloc(struct ctx *c, size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL)
    c->oom = true;
  return p;
}

static char *xstrdup(struct ctx *c, const char *s) {
  char *p = strdup(s);
  if (p == NULL)
    c->oom = true;
  return p;
}

/* Replaces *dst (freed) with a copy of s. Keeps *dst on out of memory. */
static void set_str(struct ctx *c, char **dst, const char *s) {
  char *p = xstrdup(c, s);
  if (p != NULL) {
    free(*dst);
    *dst = p;
  }
}

static bool streq_nocase(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

/* Levenshtein distance, ASCII case ignored; SIZE_MAX for long words. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  size_t prev[65], cur[65];
  if (la > 64 || lb > 64)
    return SIZE_MAX;
  for (size_t j = 0; j <= lb; j++)
    prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      size_t best = prev[j] + 1;
      if (cur[j - 1] + 1 < best)
        best = cur[j - 1] + 1;
      if (prev[j - 1] + cost < best)
        best = prev[j - 1] + cost;
      cur[j] = best;
    }
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

/* "Did you mean" search: feed candidates with suggest_try(), then
 * suggest_get() returns the closest one if it is close enough, or NULL. */
struct suggest {
  const char *word;
  const char *best;
  size_t dist;
};

static void suggest_try(struct suggest *s, const char *cand) {
  size_t d = edit_distance(s->word, cand);
  if (s->best == NULL || d < s->dist) {
    s->best = cand;
    s->dist = d;
  }
}

static const char *suggest_get(const struct suggest *s) {
  size_t limit = strlen(s->word) <= 3 ? 1 : 2;
  return s->best != NULL && s->dist <= limit ? s->best : NULL;
}

/* Writes s (len bytes) into buf as a double-quoted, escaped string, cut
 * after QUOTE_MAX bytes with "...". Returns buf. size must be >= QBUF. */
static const char *quote_n(const char *s, size_t len, char *buf, size_t size) {
  size_t o = 0, i;
  buf[o++] = '"';
  for (i = 0; i < len && i < QUOTE_MAX; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)ch;
    } else if (ch == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
    } else if (ch == '\r') {
      buf[o++] = '\\';
      buf[o++] = 'r';
    } else if (ch == '\t') {
      buf[o++] = '\\';
      buf[o++] = 't';
    } else if (ch < 0x20 || ch == 0x7f) {
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
    } else {
      buf[o++] = (char)ch;
    }
  }
  if (i < len) {
    /* do not end in the middle of a UTF-8 sequence */
    while (o > 1 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
      o--;
    if (o > 1 && ((unsigned char)buf[o - 1] & 0xc0) == 0xc0)
      o--;
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

static const char *quote(const char *s, char *buf, size_t size) {
  return quote_n(s, strlen(s), buf, size);
}

/* What a node is, for "expected X, found Y" messages. */
static const char *found(const struct ynode *n, char *buf, size_t size) {
  switch (n->kind) {
  case Y_SEQ:
    return "a list";
  case Y_MAP:
    return "a mapping";
  case Y_NULL:
    return "an empty value";
  case Y_SCALAR:
    if (n->plain)
      return quote_n(n->s, n->len, buf, size);
    memcpy(buf, "quoted string ", 14);
    quote_n(n->s, n->len, buf + 14, size - 14);
    return buf;
  case Y_BAD:
    break;
  }
  return "an alias";
}

/* "a, b or c" */
static const char *join_names(const char *const *names, size_t n, char *buf, size_t size) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && o < size; i++) {
    const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
    int w = snprintf(buf + o, size - o, "%s%s", sep, names[i]);
    if (w < 0)
      break;
    o += (size_t)w;
  }
  return buf;
}

/* Key paths live in KEYPATH_MAX-byte buffers; a longer path is cut short. */
static void kp_append(char *buf, size_t *o, const char *s) {
  while (*s != '\0' && *o + 1 < KEYPATH_MAX)
    buf[(*o)++] = *s++;
  buf[*o] = '\0';
}

/* "parent.key", or "key" at the top level. */
static const char *kp_key(char *buf, const char *parent, const char *key) {
  size_t o = 0;
  kp_append(buf, &o, parent);
  if (o > 0)
    kp_append(buf, &o, ".");
  kp_append(buf, &o, key);
  return buf;
}

/* "parent[i]" */
static const char *kp_index(char *buf, const char *parent, size_t i) {
  char num[24];
  size_t o = 0;
  snprintf(num, sizeof num, "[%zu]", i);
  kp_append(buf, &o, parent);
  kp_append(buf, &o, num);
  return buf;
}

static int line_of(yaml_mark_t m) {
  return (int)(m.line + 1);
}

/* ---- diagnostics ------------------------------------------------------- */

static int diag_push(struct config_diag *d, char *msg) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    char **msgs = realloc(d->msgs, cap * sizeof *msgs);
    if (msgs == NULL)
      return -1;
    d->msgs = msgs;
    d->cap = cap;
  }
  d->msgs[d->n++] = msg;
  return 0;
}

/* An error without a position ("FILE: message") straight into diag. */
static void diag_error(struct config_diag *d, const char *file, const char *msg) {
  size_t len = strlen(file) + strlen(msg) + 3;
  char *text = malloc(len);
  d->nerrors++;
  if (text == NULL)
    return;
  snprintf(text, len, "%s: %s", file, msg);
  if (diag_push(d, text) != 0)
    free(text);
}

/* Records "FILE:LINE:COL: PATH: message" (no "PATH: " when path is empty). */
__attribute__((format(printf, 4, 5))) static void err_at(struct ctx *c, yaml_mark_t m,
                                                         const char *path, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->nerrors++;

  size_t line = m.line + 1, col = m.column + 1;
  const char *sep = path[0] ? ": " : "";
  int len = snprintf(NULL, 0, "%s:%zu:%zu: %s%s%s", c->file, line, col, path, sep, msg);
  char *text = len < 0 ? NULL : malloc((size_t)len + 1);
  if (text == NULL) {
    c->oom = true;
    return;
  }
  snprintf(text, (size_t)len + 1, "%s:%zu:%zu: %s%s%s", c->file, line, col, path, sep, msg);
  if (c->nnotes == c->capnotes) {
    size_t cap = c->capnotes ? c->capnotes * 2 : 8;
    struct note *notes = realloc(c->notes, cap * sizeof *notes);
    if (notes == NULL) {
      free(text);
      c->oom = true;
      return;
    }
    c->notes = notes;
    c->capnotes = cap;
  }
  c->notes[c->nnotes] = (struct note){line, col, c->nnotes, text};
  c->nnotes++;
}

static int note_cmp(const void *pa, const void *pb) {
  const struct note *a = pa, *b = pb;
  if (a->line != b->line)
    return a->line < b->line ? -1 : 1;
  if (a->col != b->col)
    return a->col < b->col ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Moves the collected notes, in file order, into d. */
static void flush_notes(struct ctx *c, struct config_diag *d) {
  if (c->nnotes > 1)
    qsort(c->notes, c->nnotes, sizeof c->notes[0], note_cmp);
  for (size_t i = 0; i < c->nnotes; i++)
    if (diag_push(d, c->notes[i].text) != 0)
      free(c->notes[i].text);
  d->nerrors += c->nerrors;
  free(c->notes);
  c->notes = NULL;
  c->nnotes = c->capnotes = 0;
}

/* ---- YAML -> tree ------------------------------------------------------ */

static void node_free(struct ynode *n) {
  if (n == NULL)
    return;
  for (size_t i = 0; i < n->n; i++)
    node_free(n->kids[i]);
  free(n->kids);
  free(n->s);
  free(n);
}

static struct ynode *node_new(struct ctx *c, enum ykind kind, yaml_mark_t mark) {
  struct ynode *n = xcalloc(c, 1, sizeof *n);
  if (n != NULL) {
    n->kind = kind;
    n->mark = mark;
  }
  return n;
}

static int node_add(struct ctx *c, struct ynode *parent, struct ynode *kid) {
  if (parent->n == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 4;
    struct ynode **kids = realloc(parent->kids, cap * sizeof *kids);
    if (kids == NULL) {
      c->oom = true;
      return -1;
    }
    parent->kids = kids;
    parent->cap = cap;
  }
  parent->kids[parent->n++] = kid;
  return 0;
}

static struct ynode *scalar_node(struct ctx *c, const yaml_event_t *ev) {
  const char *v = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.plain_implicit;
  bool null = plain && (len == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
                        strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0);
  struct ynode *n = node_new(c, null ? Y_NULL : Y_SCALAR, ev->start_mark);
  if (n == NULL)
    return NULL;
  n->plain = plain;
  n->s = malloc(len + 1);
  if (n->s == NULL) {
    c->oom = true;
    free(n);
    return NULL;
  }
  memcpy(n->s, v, len);
  n->s[len] = '\0';
  n->len = len;
  return n;
}

/* Reports libyaml's error with its position. Reader errors (bad encoding)
 * carry a byte offset instead of a mark; the position is counted from it. */
static void syntax_error(struct ctx *c, const yaml_parser_t *p) {
  if (p->error == YAML_MEMORY_ERROR) {
    c->oom = true;
    return;
  }
  const char *problem = p->problem ? p->problem : "unknown error";
  if (p->error == YAML_READER_ERROR) {
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < p->problem_offset && i < c->len; i++) {
      if (c->text[i] == '\n') {
        m.line++;
        m.column = 0;
      } else {
        m.column++;
      }
    }
    if (p->problem_value != -1)
      err_at(c, m, "", "invalid input: %s (byte 0x%02x)", problem, p->problem_value & 0xff);
    else
      err_at(c, m, "", "invalid input: %s", problem);
    return;
  }
  if (p->context != NULL)
    err_at(c, p->problem_mark, "", "YAML syntax error: %s (%s started at line %zu, column %zu)",
           problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  else
    err_at(c, p->problem_mark, "", "YAML syntax error: %s", problem);
}

/* Reads text into a tree. Returns true when the YAML was well formed, with
 * *root set to the document's root node, or NULL for an empty stream; the
 * caller frees *root. Returns false (reported) on a syntax error, an alias,
 * nesting deeper than MAX_DEPTH, a second document or out of memory. */
static bool yaml_tree(struct ctx *c, const char *text, size_t len, struct ynode **root) {
  yaml_parser_t p;
  struct ynode *stack[MAX_DEPTH];
  size_t depth = 0;
  int ndocs = 0;
  bool ok = true, done = false;

  *root = NULL;
  if (!yaml_parser_initialize(&p)) {
    c->oom = true;
    return false;
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  while (!done) {
    yaml_event_t ev;
    struct ynode *n = NULL;
    if (!yaml_parser_parse(&p, &ev)) {
      syntax_error(c, &p);
      ok = false;
      break;
    }
    switch (ev.type) {
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++ndocs > 1) {
        err_at(c, ev.start_mark, "", "only one YAML document is allowed (found a second \"---\")");
        ok = false;
        done = true;
      }
      break;
    case YAML_ALIAS_EVENT:
      err_at(c, ev.start_mark, "", "YAML aliases (*%s) are not supported; write the value out",
             (const char *)ev.data.alias.anchor);
      n = node_new(c, Y_BAD, ev.start_mark);
      break;
    case YAML_SCALAR_EVENT:
      n = scalar_node(c, &ev);
      break;
    case YAML_SEQUENCE_START_EVENT:
      n = node_new(c, Y_SEQ, ev.start_mark);
      break;
    case YAML_MAPPING_START_EVENT:
      n = node_new(c, Y_MAP, ev.start_mark);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if (depth > 0)
        depth--;
      break;
    default:
      break;
    }
    if (n != NULL) {
      if (depth == 0 && *root == NULL) {
        *root = n;
      } else if (depth == 0 || node_add(c, stack[depth - 1], n) != 0) {
        node_free(n); /* cannot happen with one document, or out of memory */
        n = NULL;
        ok = false;
        done = true;
      }
      if (n != NULL && (n->kind == Y_SEQ || n->kind == Y_MAP)) {
        if (depth == MAX_DEPTH) {
          err_at(c, ev.start_mark, "", "nesting is deeper than %d levels", MAX_DEPTH);
          ok = false;
          done = true;
        } else {
          stack[depth++] = n;
        }
      }
    } else if (c->oom) {
      ok = false;
      done = true;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return ok;
}

/* ---- typed values ------------------------------------------------------ *
 * Each get_* takes the value node of a key (NULL when the key is absent)
 * and its key path. Absent: returns false and leaves *out alone. Present and
 * valid: stores *out and returns true. Present and invalid: reports an error
 * and returns false, *out untouched. Y_BAD nodes return false silently. */

static void err_type(struct ctx *c, const struct ynode *n, const char *path, const char *expected) {
  char qb[QBUF + 16];
  err_at(c, n->mark, path, "expected %s, found %s", expected, found(n, qb, sizeof qb));
}

/* Any non-empty scalar, as text (owned by the node). NUL bytes are refused. */
static bool get_text(struct ctx *c, const struct ynode *n, const char *path, const char **out) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind != Y_SCALAR) {
    err_type(c, n, path, "a string");
    return false;
  }
  if (strlen(n->s) != n->len) {
    err_at(c, n->mark, path, "must not contain NUL characters");
    return false;
  }
  *out = n->s;
  return true;
}

static bool get_str(struct ctx *c, const struct ynode *n, const char *path, char **out) {
  const char *s;
  if (!get_text(c, n, path, &s))
    return false;
  set_str(c, out, s);
  return true;
}

static bool get_bool(struct ctx *c, const struct ynode *n, const char *path, bool *out) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind == Y_SCALAR && n->plain) {
    for (size_t i = 0; i < 3; i++) {
      if (streq_nocase(n->s, yes[i])) {
        *out = true;
        return true;
      }
      if (streq_nocase(n->s, no[i])) {
        *out = false;
        return true;
      }
    }
  }
  err_type(c, n, path, "true or false");
  return false;
}

/* Decimal integer with an optional sign. 1: ok; 0: not an integer;
 * -1: an integer too large for int64_t. */
static int parse_int(const char *s, int64_t *out) {
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

static bool get_int(struct ctx *c, const struct ynode *n, const char *path, int64_t min,
                    int64_t max, int64_t *out) {
  int64_t v = 0;
  int r;
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind != Y_SCALAR || !n->plain || (r = parse_int(n->s, &v)) == 0) {
    err_type(c, n, path, "an integer");
    return false;
  }
  if (r < 0 || v < min || v > max) {
    char qb[QBUF];
    err_at(c, n->mark, path, "%s is out of range (expected %lld..%lld)",
           r < 0 ? quote(n->s, qb, sizeof qb) : n->s, (long long)min, (long long)max);
    return false;
  }
  *out = v;
  return true;
}

static bool get_u32(struct ctx *c, const struct ynode *n, const char *path, uint32_t min,
                    uint32_t max, uint32_t *out) {
  int64_t v;
  if (!get_int(c, n, path, min, max, &v))
    return false;
  *out = (uint32_t)v;
  return true;
}

/* Non-empty scalar of any style (a plain 10 is a string "10" here). */
static bool get_word(struct ctx *c, const struct ynode *n, const char *path, const char *expected,
                     const char **out) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind != Y_SCALAR || n->len == 0) {
    err_type(c, n, path, expected);
    return false;
  }
  *out = n->s;
  return true;
}

static bool get_duration(struct ctx *c, const struct ynode *n, const char *path, uint64_t min_ms,
                         uint64_t *out) {
  const char *s;
  uint64_t v;
  char qb[QBUF];
  if (!get_word(c, n, path, "a duration (e.g. 250ms, 10s, 2m, 1h)", &s))
    return false;
  if (strlen(s) != n->len || config_parse_duration_ms(s, &v) != 0) {
    err_at(c, n->mark, path,
           "invalid duration %s (expected e.g. 250ms, 10s, 2m, 1h or a number of seconds)",
           quote_n(s, n->len, qb, sizeof qb));
    return false;
  }
  if (v < min_ms) {
    err_at(c, n->mark, path, "must be greater than 0, found %s", quote(s, qb, sizeof qb));
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

static bool get_size(struct ctx *c, const struct ynode *n, const char *path, uint64_t min,
                     uint64_t max, uint64_t *out) {
  const char *s;
  uint64_t v;
  char qb[QBUF], lo[32], hi[32];
  if (!get_word(c, n, path, "a size (e.g. 512, 16k, 1m, 2g)", &s))
    return false;
  if (strlen(s) != n->len || config_parse_size(s, &v) != 0) {
    err_at(c, n->mark, path, "invalid size %s (expected e.g. 512, 16k, 1m, 2g)",
           quote_n(s, n->len, qb, sizeof qb));
    return false;
  }
  if (v < min || v > max) {
    err_at(c, n->mark, path, "%s is out of range (expected %s..%s)", quote(s, qb, sizeof qb),
           size_text(min, lo, sizeof lo), size_text(max, hi, sizeof hi));
    return false;
  }
  *out = v;
  return true;
}

/* One of names[0..count), stored as its index. */
static bool get_enum(struct ctx *c, const struct ynode *n, const char *path,
                     const char *const *names, size_t count, int *out) {
  char list[256], qb[QBUF], expected[300];
  const char *s;
  join_names(names, count, list, sizeof list);
  snprintf(expected, sizeof expected, "one of %s", list);
  if (!get_word(c, n, path, expected, &s))
    return false;
  struct suggest sg = {s, NULL, 0};
  for (size_t i = 0; i < count; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (int)i;
      return true;
    }
    suggest_try(&sg, names[i]);
  }
  const char *best = suggest_get(&sg);
  if (best != NULL)
    err_at(c, n->mark, path, "unknown value %s (did you mean \"%s\"?)",
           quote_n(s, n->len, qb, sizeof qb), best);
  else
    err_at(c, n->mark, path, "unknown value %s (expected %s)", quote_n(s, n->len, qb, sizeof qb),
           list);
  return false;
}

/* A list: true with its item count (0 for an empty value). */
static bool as_seq(struct ctx *c, const struct ynode *n, const char *path, size_t *count) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind == Y_NULL) {
    *count = 0;
    return true;
  }
  if (n->kind != Y_SEQ) {
    err_type(c, n, path, "a list");
    return false;
  }
  *count = n->n;
  return true;
}

/* A mapping: true with its number of pairs (0 for an empty value). */
static bool as_map(struct ctx *c, const struct ynode *n, const char *path, size_t *pairs) {
  if (n == NULL || n->kind == Y_BAD)
    return false;
  if (n->kind == Y_NULL) {
    *pairs = 0;
    return true;
  }
  if (n->kind != Y_MAP) {
    err_type(c, n, path, "a mapping");
    return false;
  }
  *pairs = n->n / 2;
  return true;
}

/* Checks key i of a mapping: a scalar, not equal to an earlier key
 * (ASCII case ignored when nocase). noun names the key in messages. Returns
 * true when the pair should be used; false (reported) otherwise. */
static bool key_ok(struct ctx *c, const struct ynode *map, size_t i, const char *path, bool nocase,
                   const char *noun) {
  const struct ynode *k = map->kids[2 * i];
  char qb[QBUF];
  if (k->kind == Y_BAD)
    return false;
  if (k->kind != Y_SCALAR) {
    err_type(c, k, path, "a key");
    return false;
  }
  for (size_t j = 0; j < i; j++) {
    const struct ynode *prev = map->kids[2 * j];
    if (prev->kind == Y_SCALAR &&
        (nocase ? streq_nocase(prev->s, k->s) : strcmp(prev->s, k->s) == 0)) {
      err_at(c, k->mark, path, "duplicate %s %s (first defined at line %d)", noun,
             quote_n(k->s, k->len, qb, sizeof qb), line_of(prev->mark));
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
static bool fields(struct ctx *c, const struct ynode *n, const char *path, const char *const *keys,
                   const struct ynode **vals, const struct ynode **knodes) {
  size_t nkeys = 0, pairs;
  while (keys[nkeys] != NULL) {
    vals[nkeys] = NULL;
    knodes[nkeys] = NULL;
    nkeys++;
  }
  if (n == NULL || !as_map(c, n, path, &pairs))
    return false;
  for (size_t i = 0; i < pairs; i++) {
    const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
    char qb[QBUF], list[512];
    if (!key_ok(c, n, i, path, false, "key"))
      continue;
    size_t f = 0;
    while (f < nkeys && strcmp(keys[f], k->s) != 0)
      f++;
    if (f < nkeys) {
      vals[f] = v;
      knodes[f] = k;
      continue;
    }
    struct suggest sg = {k->s, NULL, 0};
    for (size_t j = 0; j < nkeys; j++)
      suggest_try(&sg, keys[j]);
    const char *best = suggest_get(&sg);
    if (best != NULL)
      err_at(c, k->mark, path, "unknown key %s (did you mean \"%s\"?)",
             quote_n(k->s, k->len, qb, sizeof qb), best);
    else
      err_at(c, k->mark, path, "unknown key %s (expected %s)", quote_n(k->s, k->len, qb, sizeof qb),
             join_names(keys, nkeys, list, sizeof list));
  }
  return true;
}

/* ---- value syntax ------------------------------------------------------ */

static bool is_token(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!http_is_tchar((unsigned char)*s))
      return false;
  return true;
}

/* No control characters but HTAB: safe inside a header line. */
static bool is_field_value(const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return false;
  }
  return true;
}

static bool has_space_or_ctl(const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= 0x20 || ch == 0x7f)
      return true;
  }
  return false;
}

static bool is_host_name(const char *s) {
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
static int split_host_port(const char *s, char *host, size_t hostsize, uint16_t *port,
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
  char qb[QBUF];
  if (plen == 0) {
    snprintf(err, errlen, "missing port number after \":\"");
    return -1;
  }
  for (size_t i = 0; i < plen; i++) {
    if (!isdigit((unsigned char)p[i])) {
      snprintf(err, errlen, "port %s is not a number", quote(p, qb, sizeof qb));
      return -1;
    }
  }
  unsigned long v = plen > 5 ? 0 : strtoul(p, NULL, 10);
  if (v < 1 || v > 65535) {
    snprintf(err, errlen, "port %s is out of range (expected 1..65535)",
             plen > QUOTE_MAX ? quote(p, qb, sizeof qb) : p);
    return -1;
  }
  *port = (uint16_t)v;
  return 0;
}

int config_parse_listen_address(const char *s, struct sockaddr_storage *out, char *err,
                                size_t errlen) {
  char host[HOST_MAX], qb[QBUF];
  uint16_t port;
  bool bracketed;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (split_host_port(s, host, sizeof host, &port, &bracketed, err, errlen) != 0)
    return -1;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (bracketed) {
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
      snprintf(err, errlen, "%s is not an IPv6 address", quote(host, qb, sizeof qb));
      return -1;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  } else {
    if (host[0] == '\0') {
      sin->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (streq_nocase(host, "localhost")) {
      sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
      snprintf(err, errlen, "host %s is not a numeric IP address or localhost",
               quote(host, qb, sizeof qb));
      return -1;
    }
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  }
  *out = ss;
  return 0;
}

static bool same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
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
static bool get_listen_address(struct ctx *c, const struct ynode *n, const char *path, char **text,
                               struct sockaddr_storage *addr) {
  const char *s;
  char e[256], qb[QBUF];
  if (!get_text(c, n, path, &s))
    return false;
  if (config_parse_listen_address(s, addr, e, sizeof e) != 0) {
    err_at(c, n->mark, path, "invalid address %s: %s", quote(s, qb, sizeof qb), e);
    return false;
  }
  set_str(c, text, s);
  return true;
}

/* ---- sections ---------------------------------------------------------- */

static void load_listeners(struct ctx *c, const struct ynode *top, const struct ynode *n) {
  static const char *const keys[] = {"address", "proxy_protocol", NULL};
  enum { K_ADDRESS, K_PROXY_PROTOCOL, K_N };
  struct config *cfg = c->cfg;
  size_t count;
  if (n == NULL) {
    err_at(c, top->mark, "", "at least one listener is required");
    return;
  }
  if (!as_seq(c, n, "listeners", &count))
    return;
  if (count == 0) {
    err_at(c, n->mark, "listeners", "at least one listener is required");
    return;
  }
  if ((cfg->listeners = xcalloc(c, count, sizeof *cfg->listeners)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i], *v[K_N], *k[K_N];
    char path[KEYPATH_MAX], sub[KEYPATH_MAX], qb[QBUF];
    kp_index(path, "listeners", i);
    if (!fields(c, item, path, keys, v, k))
      continue;
    struct cfg_listener *l = &cfg->listeners[cfg->nlisteners++];
    l->line = line_of(item->mark);
    get_bool(c, v[K_PROXY_PROTOCOL], kp_key(sub, path, "proxy_protocol"), &l->proxy_protocol);
    if (v[K_ADDRESS] == NULL) {
      err_at(c, item->mark, path, "missing required key \"address\"");
      continue;
    }
    if (!get_listen_address(c, v[K_ADDRESS], kp_key(sub, path, "address"), &l->address, &l->addr))
      continue;
    for (size_t j = 0; j + 1 < cfg->nlisteners; j++) {
      if (same_sockaddr(&cfg->listeners[j].addr, &l->addr)) {
        err_at(c, v[K_ADDRESS]->mark, sub, "duplicate listener %s (also at line %d)",
               quote(l->address, qb, sizeof qb), cfg->listeners[j].line);
        break;
      }
    }
  }
}

static void load_workers(struct ctx *c, const struct ynode *n) {
  int64_t v;
  if (n == NULL || n->kind == Y_BAD)
    return;
  if (n->kind == Y_SCALAR && strcmp(n->s, "auto") == 0) {
    c->cfg->workers = 0;
    return;
  }
  if (n->kind != Y_SCALAR || !n->plain || parse_int(n->s, &v) != 1) {
    err_type(c, n, "workers", "\"auto\" or an integer 1..256");
    return;
  }
  if (v < 1 || v > 256) {
    err_at(c, n->mark, "workers", "%s is out of range (expected \"auto\" or 1..256)", n->s);
    return;
  }
  c->cfg->workers = (uint32_t)v;
}

/* A YAML list of names into a fresh array that replaces *list; an item
 * that ok() refuses is an error "invalid WHAT \"item\"HINT". */
static void load_name_list(struct ctx *c, const struct ynode *n, const char *path, char ***list,
                           size_t *count, bool (*ok)(const char *), const char *what,
                           const char *hint) {
  size_t items;
  char qb[QBUF];
  if (!as_seq(c, n, path, &items))
    return;
  for (size_t i = 0; i < *count; i++)
    free((*list)[i]);
  free(*list);
  *list = NULL;
  *count = 0;
  if (items == 0 || (*list = xcalloc(c, items, sizeof(char *))) == NULL)
    return;
  for (size_t i = 0; i < items; i++) {
    const struct ynode *item = n->kids[i];
    char ipath[KEYPATH_MAX];
    const char *s;
    if (!get_text(c, item, kp_index(ipath, path, i), &s))
      continue;
    if (!ok(s)) {
      err_at(c, item->mark, ipath, "invalid %s %s%s", what, quote(s, qb, sizeof qb), hint);
      continue;
    }
    if (((*list)[*count] = xstrdup(c, s)) != NULL)
      (*count)++;
  }
}

/* admin.allowed_hosts: host names (no port) the admin listener serves
 * besides IP literals and localhost, or "*" for any Host. */
static bool allowed_host_ok(const char *s) {
  return strcmp(s, "*") == 0 || (is_host_name(s) && strlen(s) < HOST_MAX);
}

static void load_admin(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {
      "address",           "redact",         "inspect_keep", "inspect_all",   "inspect_body_bytes",
      "inspect_max_bytes", "redact_headers", "replay",       "allowed_hosts", NULL};
  enum {
    K_ADDRESS,
    K_REDACT,
    K_INSPECT_KEEP,
    K_INSPECT_ALL,
    K_INSPECT_BODY_BYTES,
    K_INSPECT_MAX_BYTES,
    K_REDACT_HEADERS,
    K_REPLAY,
    K_ALLOWED_HOSTS,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  char sub[KEYPATH_MAX];
  if (!fields(c, n, "admin", keys, v, k))
    return;
  cfg->admin.enabled = true;
  if (v[K_ADDRESS] != NULL) {
    get_listen_address(c, v[K_ADDRESS], kp_key(sub, "admin", "address"), &cfg->admin.address,
                       &cfg->admin.addr);
  } else {
    char e[128];
    set_str(c, &cfg->admin.address, "127.0.0.1:9901");
    config_parse_listen_address("127.0.0.1:9901", &cfg->admin.addr, e, sizeof e);
  }
  get_bool(c, v[K_REDACT], kp_key(sub, "admin", "redact"), &cfg->admin.redact);
  get_u32(c, v[K_INSPECT_KEEP], kp_key(sub, "admin", "inspect_keep"), 0, 100000,
          &cfg->admin.inspect_keep);
  get_bool(c, v[K_INSPECT_ALL], kp_key(sub, "admin", "inspect_all"), &cfg->admin.inspect_all);
  get_size(c, v[K_INSPECT_BODY_BYTES], kp_key(sub, "admin", "inspect_body_bytes"), 0, 65536,
           &cfg->admin.inspect_body_bytes);
  get_size(c, v[K_INSPECT_MAX_BYTES], kp_key(sub, "admin", "inspect_max_bytes"), 65536,
           (uint64_t)1 << 32, &cfg->admin.inspect_max_bytes);
  if (v[K_REDACT_HEADERS] != NULL)
    load_name_list(c, v[K_REDACT_HEADERS], kp_key(sub, "admin", "redact_headers"),
                   &cfg->admin.redact_headers, &cfg->admin.nredact_headers, is_token, "header name",
                   "");
  get_bool(c, v[K_REPLAY], kp_key(sub, "admin", "replay"), &cfg->admin.replay);
  if (v[K_ALLOWED_HOSTS] != NULL)
    load_name_list(c, v[K_ALLOWED_HOSTS], kp_key(sub, "admin", "allowed_hosts"),
                   &cfg->admin.allowed_hosts, &cfg->admin.nallowed_hosts, allowed_host_ok, "host",
                   " (expected a host name without port, e.g. ferry.internal, or \"*\" to serve "
                   "any Host)");
}

static void load_access_log(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {"path", "format", NULL};
  static const char *const formats[] = {"combined", "json"};
  enum { K_PATH, K_FORMAT, K_N };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  int format;
  if (!fields(c, n, "access_log", keys, v, k))
    return;
  const struct ynode *p = v[K_PATH];
  if (p != NULL && p->kind == Y_SCALAR &&
      (strcmp(p->s, "off") == 0 ||
       (p->plain &&
        (streq_nocase(p->s, "off") || streq_nocase(p->s, "false") || streq_nocase(p->s, "no"))))) {
    free(cfg->access_log.path);
    cfg->access_log.path = NULL;
  } else if (p != NULL && p->kind != Y_BAD) {
    const char *s;
    if (p->kind != Y_SCALAR || p->len == 0 ||
        (p->plain &&
         (streq_nocase(p->s, "true") || streq_nocase(p->s, "yes") || streq_nocase(p->s, "on"))))
      err_type(c, p, "access_log.path", "\"-\", a file path or off");
    else if (get_text(c, p, "access_log.path", &s))
      set_str(c, &cfg->access_log.path, s);
  }
  if (get_enum(c, v[K_FORMAT], "access_log.format", formats, 2, &format))
    cfg->access_log.format = (enum cfg_log_format)format;
}

static void load_limits(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {"max_request_header_bytes", "max_request_body_bytes",
                                     "max_connections", NULL};
  enum { K_HEADER, K_BODY, K_CONNS, K_N };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  if (!fields(c, n, "limits", keys, v, k))
    return;
  get_size(c, v[K_HEADER], "limits.max_request_header_bytes", 1024, 16ull << 20,
           &cfg->limits.max_request_header_bytes);
  get_size(c, v[K_BODY], "limits.max_request_body_bytes", 0, UINT64_MAX,
           &cfg->limits.max_request_body_bytes);
  get_u32(c, v[K_CONNS], "limits.max_connections", 1, 10000000, &cfg->limits.max_connections);
}

static void load_timeouts(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {
      "client_header", "client_idle", "upstream_connect", "upstream_response", "upstream_idle",
      "drain",         NULL};
  const struct ynode *v[6], *k[6];
  struct config *cfg = c->cfg;
  uint64_t *dst[6] = {&cfg->timeouts.client_header_ms,    &cfg->timeouts.client_idle_ms,
                      &cfg->timeouts.upstream_connect_ms, &cfg->timeouts.upstream_response_ms,
                      &cfg->timeouts.upstream_idle_ms,    &cfg->timeouts.drain_ms};
  char sub[KEYPATH_MAX];
  if (!fields(c, n, "timeouts", keys, v, k))
    return;
  for (size_t i = 0; i < 6; i++) /* drain may be 0: exit without waiting */
    get_duration(c, v[i], kp_key(sub, "timeouts", keys[i]), i == 5 ? 0 : 1, dst[i]);
}

/* Server address: "host:port" or "[v6]:port"; names resolved now. */
static void load_server_address(struct ctx *c, const struct ynode *n, const char *path,
                                struct cfg_server *sv) {
  const char *s;
  char host[HOST_MAX], e[256], qb[QBUF], qh[QBUF];
  bool bracketed;
  uint16_t port;
  struct sockaddr_storage ss;
  if (!get_text(c, n, path, &s))
    return;
  if (split_host_port(s, host, sizeof host, &port, &bracketed, e, sizeof e) != 0) {
    err_at(c, n->mark, path, "invalid address %s: %s", quote(s, qb, sizeof qb), e);
    return;
  }
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (bracketed) {
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
      err_at(c, n->mark, path, "invalid address %s: %s is not an IPv6 address",
             quote(s, qb, sizeof qb), quote(host, qh, sizeof qh));
      return;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  } else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  } else if (!is_host_name(host)) {
    err_at(c, n->mark, path, "invalid address %s: %s is not a host name or IP address",
           quote(s, qb, sizeof qb), quote(host, qh, sizeof qh));
    return;
  } else {
    /* A name: resolved by the upstream runtime at start and every
     * resolve_interval, so it is not looked up here. */
    sv->resolve = true;
  }
  set_str(c, &sv->address, s);
  set_str(c, &sv->host, host);
  sv->port = port;
  sv->addr = ss;
}

static void load_servers(struct ctx *c, struct cfg_upstream *up, const struct ynode *n,
                         const char *path) {
  static const char *const keys[] = {"address", "weight", NULL};
  enum { K_ADDRESS, K_WEIGHT, K_N };
  size_t count;
  if (!as_seq(c, n, path, &count))
    return;
  if (count == 0) {
    err_at(c, n->mark, path, "at least one server is required");
    return;
  }
  if ((up->servers = xcalloc(c, count, sizeof *up->servers)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i], *v[K_N], *k[K_N];
    char ipath[KEYPATH_MAX], sub[KEYPATH_MAX];
    kp_index(ipath, path, i);
    if (!fields(c, item, ipath, keys, v, k))
      continue;
    struct cfg_server *sv = &up->servers[up->nservers++];
    sv->weight = 1;
    sv->line = line_of(item->mark);
    get_u32(c, v[K_WEIGHT], kp_key(sub, ipath, "weight"), 1, 1000, &sv->weight);
    if (v[K_ADDRESS] == NULL)
      err_at(c, item->mark, ipath, "missing required key \"address\"");
    else
      load_server_address(c, v[K_ADDRESS], kp_key(sub, ipath, "address"), sv);
  }
}

/* "client_ip", "header:NAME" or "cookie:NAME". */
static bool is_hash_key(const char *s) {
  if (strcmp(s, "client_ip") == 0)
    return true;
  if (strncmp(s, "header:", 7) == 0)
    return is_token(s + 7);
  if (strncmp(s, "cookie:", 7) == 0)
    return is_token(s + 7);
  return false;
}

/* Path-like values: must start with '/', no spaces or control characters;
 * with no_query also no '?' or '#'. */
static bool check_path(struct ctx *c, const struct ynode *n, const char *path, const char *s,
                       bool no_query) {
  char qb[QBUF];
  if (s[0] != '/') {
    err_at(c, n->mark, path, "must start with \"/\", found %s", quote(s, qb, sizeof qb));
    return false;
  }
  if (has_space_or_ctl(s)) {
    err_at(c, n->mark, path, "must not contain spaces or control characters, found %s",
           quote(s, qb, sizeof qb));
    return false;
  }
  if (no_query && strpbrk(s, "?#") != NULL) {
    err_at(c, n->mark, path,
           "must not contain \"?\" or \"#\" (routes match the path without "
           "the query), found %s",
           quote(s, qb, sizeof qb));
    return false;
  }
  return true;
}

static void load_health_check(struct ctx *c, struct cfg_health_check *hc, const struct ynode *n,
                              const char *path) {
  static const char *const keys[] = {
      "path", "interval", "timeout", "unhealthy_threshold", "healthy_threshold", NULL};
  enum { K_PATH, K_INTERVAL, K_TIMEOUT, K_UNHEALTHY, K_HEALTHY, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[KEYPATH_MAX];
  const char *s;
  if (!fields(c, n, path, keys, v, k))
    return;
  hc->enabled = true;
  if (get_text(c, v[K_PATH], kp_key(sub, path, "path"), &s) &&
      check_path(c, v[K_PATH], sub, s, false))
    set_str(c, &hc->path, s);
  get_duration(c, v[K_INTERVAL], kp_key(sub, path, "interval"), 1, &hc->interval_ms);
  get_duration(c, v[K_TIMEOUT], kp_key(sub, path, "timeout"), 1, &hc->timeout_ms);
  get_u32(c, v[K_UNHEALTHY], kp_key(sub, path, "unhealthy_threshold"), 1, 1000,
          &hc->unhealthy_threshold);
  get_u32(c, v[K_HEALTHY], kp_key(sub, path, "healthy_threshold"), 1, 1000, &hc->healthy_threshold);
}

static void load_upstream(struct ctx *c, struct cfg_upstream *up, const struct ynode *n,
                          const char *path) {
  static const char *const keys[] = {"servers",   "balance",          "hash_key",
                                     "keepalive", "health_check",     "retries",
                                     "passive",   "resolve_interval", NULL};
  static const char *const passive_keys[] = {"consecutive_failures", "eject_for", NULL};
  static const char *const balances[] = {"round_robin", "least_conn", "random2", "hash"};
  static const char *const ka_keys[] = {"max_idle", "idle_timeout", NULL};
  enum {
    K_SERVERS,
    K_BALANCE,
    K_HASH_KEY,
    K_KEEPALIVE,
    K_HEALTH,
    K_RETRIES,
    K_PASSIVE,
    K_RESOLVE,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N], *kv[2], *kk[2];
  char sub[KEYPATH_MAX], sub2[KEYPATH_MAX], qb[QBUF];
  int balance;
  bool balance_ok = true;
  if (!fields(c, n, path, keys, v, k))
    return;

  if (v[K_SERVERS] == NULL)
    err_at(c, n->mark, path, "missing required key \"servers\"");
  else
    load_servers(c, up, v[K_SERVERS], kp_key(sub, path, "servers"));

  if (v[K_BALANCE] != NULL) {
    balance_ok = get_enum(c, v[K_BALANCE], kp_key(sub, path, "balance"), balances, 4, &balance);
    if (balance_ok)
      up->balance = (enum cfg_balance)balance;
  }
  if (balance_ok && up->balance == BALANCE_HASH) {
    const char *s;
    if (v[K_HASH_KEY] == NULL)
      err_at(c, v[K_BALANCE]->mark, path,
             "balance: hash requires hash_key (client_ip, header:NAME or cookie:NAME)");
    else if (get_text(c, v[K_HASH_KEY], kp_key(sub, path, "hash_key"), &s)) {
      if (is_hash_key(s))
        set_str(c, &up->hash_key, s);
      else
        err_at(c, v[K_HASH_KEY]->mark, sub,
               "invalid hash_key %s (expected client_ip, header:NAME or cookie:NAME)",
               quote(s, qb, sizeof qb));
    }
  } else if (balance_ok && v[K_HASH_KEY] != NULL) {
    err_at(c, k[K_HASH_KEY]->mark, path,
           "hash_key is only allowed with balance: hash (balance "
           "is %s)",
           balances[up->balance]);
  }

  kp_key(sub, path, "keepalive");
  if (fields(c, v[K_KEEPALIVE], sub, ka_keys, kv, kk)) {
    get_u32(c, kv[0], kp_key(sub2, sub, "max_idle"), 0, 100000, &up->keepalive_max_idle);
    get_duration(c, kv[1], kp_key(sub2, sub, "idle_timeout"), 1, &up->keepalive_idle_timeout_ms);
  }
  load_health_check(c, &up->health_check, v[K_HEALTH], kp_key(sub, path, "health_check"));
  get_u32(c, v[K_RETRIES], kp_key(sub, path, "retries"), 0, 100, &up->retries);
  kp_key(sub, path, "passive");
  if (fields(c, v[K_PASSIVE], sub, passive_keys, kv, kk)) {
    get_u32(c, kv[0], kp_key(sub2, sub, "consecutive_failures"), 0, 1000,
            &up->passive.consecutive_failures);
    get_duration(c, kv[1], kp_key(sub2, sub, "eject_for"), 1, &up->passive.eject_for_ms);
  }
  get_duration(c, v[K_RESOLVE], kp_key(sub, path, "resolve_interval"), 1, &up->resolve_interval_ms);
}

static bool is_upstream_name(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
      return false;
  return true;
}

static void load_upstreams(struct ctx *c, const struct ynode *n) {
  struct config *cfg = c->cfg;
  size_t pairs;
  if (n == NULL)
    return;
  if (!as_map(c, n, "upstreams", &pairs)) {
    c->upstreams_bad = true;
    return;
  }
  if (pairs == 0 || (cfg->upstreams = xcalloc(c, pairs, sizeof *cfg->upstreams)) == NULL)
    return;
  for (size_t i = 0; i < pairs; i++) {
    const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
    char path[KEYPATH_MAX], qb[QBUF];
    if (!key_ok(c, n, i, "upstreams", false, "upstream"))
      continue;
    if (!is_upstream_name(k->s))
      err_at(c, k->mark, "upstreams",
             "invalid upstream name %s (use letters, digits, \"_\", \"-\" and \".\")",
             quote_n(k->s, k->len, qb, sizeof qb));
    struct cfg_upstream *up = &cfg->upstreams[cfg->nupstreams++];
    up->name = xstrdup(c, k->s);
    up->line = line_of(k->mark);
    up->balance = BALANCE_ROUND_ROBIN;
    up->keepalive_max_idle = 32;
    up->keepalive_idle_timeout_ms = UINT64_MAX; /* resolved to timeouts.upstream_idle later */
    up->health_check.path = xstrdup(c, "/healthz");
    up->health_check.interval_ms = 5000;
    up->health_check.timeout_ms = 1000;
    up->health_check.unhealthy_threshold = 3;
    up->health_check.healthy_threshold = 2;
    up->retries = 1;
    up->passive.consecutive_failures = 5;
    up->passive.eject_for_ms = 30 * 1000;
    up->resolve_interval_ms = 30 * 1000;
    load_upstream(c, up, v, kp_key(path, "upstreams", k->s));
  }
}

/* ---- routes ------------------------------------------------------------ */

static const struct {
  const char *name;
  int method;
} http_methods[] = {
#define XX(num, name, string) {#string, HTTP_##name},
    HTTP_METHOD_MAP(XX)
#undef XX
};

static void load_methods(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                         const char *path) {
  size_t count;
  char qb[QBUF];
  if (!as_seq(c, n, path, &count))
    return;
  if (count == 0) {
    err_at(c, n->mark, path, "at least one method is required (omit methods to allow any)");
    return;
  }
  for (size_t i = 0; i < count; i++) {
    const struct ynode *m = n->kids[i];
    char ipath[KEYPATH_MAX];
    const char *s;
    size_t j, nm = sizeof http_methods / sizeof http_methods[0];
    if (!get_text(c, m, kp_index(ipath, path, i), &s))
      continue;
    struct suggest sg = {s, NULL, 0};
    for (j = 0; j < nm && strcmp(http_methods[j].name, s) != 0; j++)
      suggest_try(&sg, http_methods[j].name);
    if (j < nm) {
      r->methods |= 1ull << http_methods[j].method;
      continue;
    }
    const char *best = suggest_get(&sg);
    if (best != NULL)
      err_at(c, m->mark, ipath, "unknown method %s (did you mean \"%s\"?)", quote(s, qb, sizeof qb),
             best);
    else
      err_at(c, m->mark, ipath,
             "unknown method %s (expected an HTTP method such as GET, HEAD, "
             "POST, PUT, DELETE, PATCH or OPTIONS)",
             quote(s, qb, sizeof qb));
  }
}

/* What load_kvs() refuses: nothing (match conditions), or the headers
 * ferry manages itself (framing, hop-by-hop, and Host on requests). */
enum managed { MANAGED_NONE, MANAGED_REQUEST, MANAGED_RESPONSE };

static bool is_managed_header(const char *name, enum managed m) {
  static const char *const managed[] = {"connection", "keep-alive",    "proxy-connection",
                                        "te",         "trailer",       "transfer-encoding",
                                        "upgrade",    "content-length"};
  if (m == MANAGED_NONE)
    return false;
  if (m == MANAGED_REQUEST && streq_nocase(name, "host"))
    return true;
  for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++)
    if (streq_nocase(name, managed[i]))
      return true;
  return false;
}

/* Reads a mapping of header name -> value into kvs. nocase: names that
 * differ only in case are duplicates. */
static void load_kvs(struct ctx *c, const struct ynode *n, const char *path, struct cfg_kv **kvs,
                     size_t *count, bool nocase, enum managed managed) {
  size_t pairs;
  char qb[QBUF];
  if (!as_map(c, n, path, &pairs) || pairs == 0)
    return;
  if ((*kvs = xcalloc(c, pairs, sizeof **kvs)) == NULL)
    return;
  for (size_t i = 0; i < pairs; i++) {
    const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
    char sub[KEYPATH_MAX];
    const char *s;
    if (!key_ok(c, n, i, path, nocase, "header"))
      continue;
    if (!is_token(k->s) || strlen(k->s) != k->len) {
      err_at(c, k->mark, path, "invalid header name %s", quote_n(k->s, k->len, qb, sizeof qb));
      continue;
    }
    if (is_managed_header(k->s, managed)) {
      if (streq_nocase(k->s, "host"))
        err_at(c, k->mark, path, "cannot change \"%s\" here (use set_host)", k->s);
      else
        err_at(c, k->mark, path,
               "cannot change \"%s\": ferry manages framing and hop-by-hop "
               "headers",
               k->s);
      continue;
    }
    if (!get_text(c, v, kp_key(sub, path, k->s), &s))
      continue;
    if (!is_field_value(s)) {
      err_at(c, v->mark, sub, "header value must not contain control characters, found %s",
             quote(s, qb, sizeof qb));
      continue;
    }
    struct cfg_kv *kv = &(*kvs)[*count];
    kv->name = xstrdup(c, k->s);
    kv->value = xstrdup(c, s);
    (*count)++;
  }
}

static void load_header_ops(struct ctx *c, struct cfg_header_ops *ops, const struct ynode *n,
                            const char *path, bool request) {
  enum managed m = request ? MANAGED_REQUEST : MANAGED_RESPONSE;
  static const char *const keys[] = {"set", "add", "remove", NULL};
  enum { K_SET, K_ADD, K_REMOVE, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[KEYPATH_MAX], qb[QBUF];
  size_t count;
  if (!fields(c, n, path, keys, v, k))
    return;
  load_kvs(c, v[K_SET], kp_key(sub, path, "set"), &ops->set, &ops->nset, true, m);
  load_kvs(c, v[K_ADD], kp_key(sub, path, "add"), &ops->add, &ops->nadd, false, m);
  kp_key(sub, path, "remove");
  if (!as_seq(c, v[K_REMOVE], sub, &count) || count == 0)
    return;
  if ((ops->remove = xcalloc(c, count, sizeof *ops->remove)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = v[K_REMOVE]->kids[i];
    char ipath[KEYPATH_MAX];
    const char *s;
    if (!get_text(c, item, kp_index(ipath, sub, i), &s))
      continue;
    if (!is_token(s)) {
      err_at(c, item->mark, ipath, "invalid header name %s", quote(s, qb, sizeof qb));
      continue;
    }
    if ((request && streq_nocase(s, "host")) || streq_nocase(s, "content-length") ||
        streq_nocase(s, "transfer-encoding")) {
      err_at(c, item->mark, ipath, "cannot remove \"%s\": ferry needs it to frame the message", s);
      continue;
    }
    if ((ops->remove[ops->nremove] = xstrdup(c, s)) != NULL)
      ops->nremove++;
  }
}

/* Route host: lower-cased; "*.example.com" -> wildcard ".example.com". */
static void load_route_host(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                            const char *path) {
  const char *s;
  char qb[QBUF];
  if (!get_text(c, n, path, &s))
    return;
  bool wild = strncmp(s, "*.", 2) == 0;
  const char *name = wild ? s + 1 : s;
  if (!is_host_name(wild ? name + 1 : name) || strlen(name) >= HOST_MAX) {
    err_at(c, n->mark, path,
           "invalid host %s (expected a host name without port or path, e.g. "
           "api.example.com or *.example.com)",
           quote(s, qb, sizeof qb));
    return;
  }
  if ((r->host = xstrdup(c, name)) == NULL)
    return;
  for (char *p = r->host; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  r->host_wildcard = wild;
}

static void load_redirect(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                          const char *path) {
  static const char *const keys[] = {"location", "status", NULL};
  const struct ynode *v[2], *k[2];
  char sub[KEYPATH_MAX], qb[QBUF];
  const char *s;
  int64_t status;
  if (!fields(c, n, path, keys, v, k))
    return;
  if (v[0] == NULL)
    err_at(c, n->mark, path, "missing required key \"location\"");
  else if (get_text(c, v[0], kp_key(sub, path, "location"), &s)) {
    if (s[0] == '\0' || !is_field_value(s))
      err_at(c, v[0]->mark, sub, "expected a URL or path without control characters, found %s",
             quote(s, qb, sizeof qb));
    else
      set_str(c, &r->redirect_location, s);
  }
  if (get_int(c, v[1], kp_key(sub, path, "status"), INT64_MIN, INT64_MAX, &status)) {
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)
      r->redirect_status = (int)status;
    else
      err_at(c, v[1]->mark, sub, "%s is not a redirect status (expected 301, 302, 303, 307 or 308)",
             v[1]->s);
  }
}

static void load_respond(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                         const char *path) {
  static const char *const keys[] = {"status", "body", "content_type", NULL};
  enum { K_STATUS, K_BODY, K_CTYPE, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[KEYPATH_MAX], qb[QBUF];
  const char *s;
  int64_t status;
  set_str(c, &r->respond_body, "");
  set_str(c, &r->respond_content_type, "text/plain");
  if (!fields(c, n, path, keys, v, k))
    return;
  if (get_int(c, v[K_STATUS], kp_key(sub, path, "status"), 100, 599, &status))
    r->respond_status = (int)status;
  if (v[K_BODY] != NULL && v[K_BODY]->kind == Y_NULL) /* `body:` alone: empty */
    set_str(c, &r->respond_body, "");
  else
    get_str(c, v[K_BODY], kp_key(sub, path, "body"), &r->respond_body);
  if (get_text(c, v[K_CTYPE], kp_key(sub, path, "content_type"), &s)) {
    if (s[0] == '\0' || !is_field_value(s))
      err_at(c, v[K_CTYPE]->mark, sub, "expected a media type, found %s", quote(s, qb, sizeof qb));
    else
      set_str(c, &r->respond_content_type, s);
  }
}

/* path and path_prefix are compared with the normalised request path
 * (router_normalize_path: unreserved escapes decoded, other escapes in
 * upper case, dot-segments resolved), so a value not written in that form
 * could never match: an error that shows the form to write. */
static bool check_normal_path(struct ctx *c, const struct ynode *n, const char *path,
                              const char *s) {
  size_t len = strlen(s), nlen = 0;
  char qb[QBUF], qn[QBUF];
  char *norm = xcalloc(c, len + 1, 1);
  if (norm == NULL)
    return false;
  bool ok = true;
  if (router_normalize_path(slice_make(s, len), norm, len + 1, &nlen) != 0) {
    err_at(c, n->mark, path,
           "invalid path %s (a \"%%\" must be followed by two hex digits, and \"..\" must not "
           "go above \"/\")",
           quote(s, qb, sizeof qb));
    ok = false;
  } else if (nlen != len || memcmp(norm, s, len) != 0) {
    err_at(c, n->mark, path,
           "%s can never match: requests are matched on the normalised path (escapes of "
           "letters, digits and -._~ decoded, other escapes in upper case, \".\" and \"..\" "
           "resolved); write %s",
           quote(s, qb, sizeof qb), quote_n(norm, nlen, qn, sizeof qn));
    ok = false;
  }
  free(norm);
  return ok;
}

static const struct ynode *earliest(const struct ynode *a, const struct ynode *b) {
  if (a == NULL)
    return b;
  if (b == NULL)
    return a;
  return b->mark.index < a->mark.index ? b : a;
}

static void load_route(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                       const char *path) {
  static const char *const keys[] = {"host",
                                     "path",
                                     "path_prefix",
                                     "path_regex",
                                     "methods",
                                     "headers",
                                     "upstream",
                                     "redirect",
                                     "respond",
                                     "rewrite_prefix",
                                     "set_host",
                                     "request_headers",
                                     "response_headers",
                                     "inspect",
                                     NULL};
  enum {
    K_HOST,
    K_PATH,
    K_PREFIX,
    K_REGEX,
    K_METHODS,
    K_HEADERS,
    K_UPSTREAM,
    K_REDIRECT,
    K_RESPOND,
    K_REWRITE,
    K_SET_HOST,
    K_REQ_HEADERS,
    K_RESP_HEADERS,
    K_INSPECT,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N];
  char sub[KEYPATH_MAX], qb[QBUF];
  const char *s;
  if (!fields(c, n, path, keys, v, k))
    return;

  load_route_host(c, r, v[K_HOST], kp_key(sub, path, "host"));

  /* path, path_prefix, path_regex: the first one in the file counts */
  const struct ynode *first = earliest(earliest(k[K_PATH], k[K_PREFIX]), k[K_REGEX]);
  for (int i = K_PATH; i <= K_REGEX; i++) {
    if (k[i] == NULL)
      continue;
    if (k[i] != first) {
      err_at(c, k[i]->mark, path,
             "%s conflicts with %s (use only one of path, path_prefix, "
             "path_regex)",
             keys[i], first->s);
      continue;
    }
    if (!get_text(c, v[i], kp_key(sub, path, keys[i]), &s))
      continue;
    if (i == K_REGEX) {
      regex_t *re = xcalloc(c, 1, sizeof *re);
      int rc;
      if (re == NULL)
        continue;
      if (s[0] == '\0') {
        err_at(c, v[i]->mark, sub, "must not be empty");
        free(re);
      } else if ((rc = regcomp(re, s, REG_EXTENDED | REG_NOSUB)) != 0) {
        char why[256];
        regerror(rc, re, why, sizeof why);
        err_at(c, v[i]->mark, sub, "invalid regular expression %s: %s", quote(s, qb, sizeof qb),
               why);
        free(re);
      } else {
        r->regex = re;
        r->path_kind = PATH_REGEX;
        set_str(c, &r->path, s);
      }
    } else if (check_path(c, v[i], sub, s, true) && check_normal_path(c, v[i], sub, s)) {
      r->path_kind = i == K_PATH ? PATH_EXACT : PATH_PREFIX;
      set_str(c, &r->path, s);
    }
  }

  if (v[K_METHODS] != NULL)
    load_methods(c, r, v[K_METHODS], kp_key(sub, path, "methods"));
  load_kvs(c, v[K_HEADERS], kp_key(sub, path, "headers"), &r->headers, &r->nheaders, true,
           MANAGED_NONE);

  /* exactly one action; with several, the first one in the file counts */
  const struct ynode *act = earliest(earliest(k[K_UPSTREAM], k[K_REDIRECT]), k[K_RESPOND]);
  if (act == NULL) {
    err_at(c, n->mark, path, "no action (expected exactly one of upstream, redirect or respond)");
    return;
  }
  for (int i = K_UPSTREAM; i <= K_RESPOND; i++)
    if (k[i] != NULL && k[i] != act)
      err_at(c, k[i]->mark, path,
             "%s conflicts with %s (a route has exactly one of upstream, "
             "redirect or respond)",
             keys[i], act->s);
  if (act == k[K_UPSTREAM]) {
    r->action = ACTION_UPSTREAM;
    if (get_text(c, v[K_UPSTREAM], kp_key(sub, path, "upstream"), &s)) {
      struct config *cfg = c->cfg;
      struct suggest sg = {s, NULL, 0};
      size_t j;
      for (j = 0; j < cfg->nupstreams; j++) {
        if (cfg->upstreams[j].name != NULL && strcmp(cfg->upstreams[j].name, s) == 0)
          break;
        if (cfg->upstreams[j].name != NULL)
          suggest_try(&sg, cfg->upstreams[j].name);
      }
      set_str(c, &r->upstream, s);
      r->upstream_index = j;
      if (j == cfg->nupstreams && !c->upstreams_bad) {
        const char *best = suggest_get(&sg);
        if (best != NULL)
          err_at(c, v[K_UPSTREAM]->mark, sub, "unknown upstream %s (did you mean \"%s\"?)",
                 quote(s, qb, sizeof qb), best);
        else if (cfg->nupstreams == 0)
          err_at(c, v[K_UPSTREAM]->mark, sub, "unknown upstream %s (no upstreams are defined)",
                 quote(s, qb, sizeof qb));
        else
          err_at(c, v[K_UPSTREAM]->mark, sub, "unknown upstream %s", quote(s, qb, sizeof qb));
      }
    }
  } else if (act == k[K_REDIRECT]) {
    r->action = ACTION_REDIRECT;
    load_redirect(c, r, v[K_REDIRECT], kp_key(sub, path, "redirect"));
  } else {
    r->action = ACTION_RESPOND;
    load_respond(c, r, v[K_RESPOND], kp_key(sub, path, "respond"));
  }

  /* what is sent upstream: only for upstream routes */
  if (r->action != ACTION_UPSTREAM) {
    for (int i = K_REWRITE; i <= K_REQ_HEADERS; i++)
      if (k[i] != NULL)
        err_at(c, k[i]->mark, path, "%s only applies to routes with upstream", keys[i]);
  } else {
    if (v[K_REWRITE] != NULL && (k[K_PREFIX] == NULL || first != k[K_PREFIX]))
      err_at(c, k[K_REWRITE]->mark, path, "rewrite_prefix is only allowed with path_prefix");
    else if (get_text(c, v[K_REWRITE], kp_key(sub, path, "rewrite_prefix"), &s) &&
             check_path(c, v[K_REWRITE], sub, s, true))
      set_str(c, &r->rewrite_prefix, s);
    if (get_text(c, v[K_SET_HOST], kp_key(sub, path, "set_host"), &s)) {
      if (s[0] == '\0' || has_space_or_ctl(s) || strpbrk(s, "/?#@") != NULL)
        err_at(c, v[K_SET_HOST]->mark, sub,
               "invalid host %s (expected e.g. users.internal or "
               "users.internal:8080)",
               quote(s, qb, sizeof qb));
      else
        set_str(c, &r->set_host, s);
    }
    load_header_ops(c, &r->request_headers, v[K_REQ_HEADERS], kp_key(sub, path, "request_headers"),
                    true);
  }
  load_header_ops(c, &r->response_headers, v[K_RESP_HEADERS], kp_key(sub, path, "response_headers"),
                  false);
  get_bool(c, v[K_INSPECT], kp_key(sub, path, "inspect"), &r->inspect);
}

static void load_routes(struct ctx *c, const struct ynode *n) {
  struct config *cfg = c->cfg;
  size_t count;
  if (n == NULL || !as_seq(c, n, "routes", &count) || count == 0)
    return;
  if ((cfg->routes = xcalloc(c, count, sizeof *cfg->routes)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i];
    struct cfg_route *r = &cfg->routes[cfg->nroutes++];
    char path[KEYPATH_MAX];
    r->index = i;
    r->line = line_of(item->mark);
    r->col = (int)(item->mark.column + 1);
    r->path_kind = PATH_ANY;
    r->redirect_status = 302;
    r->respond_status = 200;
    load_route(c, r, item, kp_index(path, "routes", i));
  }
}

static void load_root(struct ctx *c, const struct ynode *root) {
  static const char *const keys[] = {"listeners", "workers",   "admin",  "access_log", "limits",
                                     "timeouts",  "upstreams", "routes", NULL};
  enum {
    K_LISTENERS,
    K_WORKERS,
    K_ADMIN,
    K_ACCESS_LOG,
    K_LIMITS,
    K_TIMEOUTS,
    K_UPSTREAMS,
    K_ROUTES,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  yaml_mark_t start = {0, 0, 0};

  if (root == NULL || root->kind == Y_NULL) {
    err_at(c, root ? root->mark : start, "", "at least one listener is required");
    return;
  }
  if (root->kind == Y_BAD)
    return;
  if (root->kind != Y_MAP) {
    err_type(c, root, "", "a mapping at the top level");
    return;
  }
  fields(c, root, "", keys, v, k);
  load_listeners(c, root, v[K_LISTENERS]);
  load_workers(c, v[K_WORKERS]);
  if (v[K_ADMIN] != NULL)
    load_admin(c, v[K_ADMIN]);
  if (v[K_ACCESS_LOG] != NULL)
    load_access_log(c, v[K_ACCESS_LOG]);
  if (v[K_LIMITS] != NULL)
    load_limits(c, v[K_LIMITS]);
  if (v[K_TIMEOUTS] != NULL)
    load_timeouts(c, v[K_TIMEOUTS]);
  load_upstreams(c, v[K_UPSTREAMS]);
  load_routes(c, v[K_ROUTES]);

  for (size_t i = 0; i < cfg->nupstreams; i++)
    if (cfg->upstreams[i].keepalive_idle_timeout_ms == UINT64_MAX)
      cfg->upstreams[i].keepalive_idle_timeout_ms = cfg->timeouts.upstream_idle_ms;

  if (cfg->admin.enabled && v[K_ADMIN] != NULL) {
    for (size_t i = 0; i < cfg->nlisteners; i++) {
      if (same_sockaddr(&cfg->listeners[i].addr, &cfg->admin.addr)) {
        err_at(c, v[K_ADMIN]->mark, "admin", "address %s is also a listener (line %d)",
               cfg->admin.address, cfg->listeners[i].line);
        break;
      }
    }
  }
}

/* ---- public API -------------------------------------------------------- */

static void set_defaults(struct ctx *c, struct config *cfg) {
  cfg->workers = 0;
  cfg->admin.redact = true;
  cfg->admin.inspect_keep = 500;
  cfg->admin.inspect_max_bytes = 16 * 1024 * 1024;
  {
    static const char *const redact[] = {"Authorization", "Proxy-Authorization", "Cookie",
                                         "Set-Cookie"};
    cfg->admin.redact_headers = xcalloc(c, 4, sizeof(char *));
    for (size_t i = 0; cfg->admin.redact_headers && i < 4; i++)
      if ((cfg->admin.redact_headers[i] = xstrdup(c, redact[i])) != NULL)
        cfg->admin.nredact_headers++;
  }
  cfg->access_log.path = xstrdup(c, "-");
  cfg->access_log.format = LOG_FORMAT_COMBINED;
  cfg->limits.max_request_header_bytes = 32 * 1024;
  cfg->limits.max_request_body_bytes = 0;
  cfg->limits.max_connections = 10000;
  cfg->timeouts.client_header_ms = 10 * 1000;
  cfg->timeouts.client_idle_ms = 60 * 1000;
  cfg->timeouts.upstream_connect_ms = 3 * 1000;
  cfg->timeouts.upstream_response_ms = 30 * 1000;
  cfg->timeouts.upstream_idle_ms = 60 * 1000;
  cfg->timeouts.drain_ms = 30 * 1000;
}

int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       struct config_diag *diag) {
  struct config_diag local = {0};
  struct ctx c;
  struct ynode *root = NULL;

  if (out != NULL)
    *out = NULL;
  if (diag == NULL)
    diag = &local;
  if (name == NULL)
    name = "(config)";
  if (text == NULL)
    len = 0;
  memset(&c, 0, sizeof c);
  c.file = name;
  c.text = text ? text : "";
  c.len = len;
  c.cfg = xcalloc(&c, 1, sizeof *c.cfg);
  if (c.cfg != NULL) {
    c.cfg->file = xstrdup(&c, name);
    set_defaults(&c, c.cfg);
    if (yaml_tree(&c, c.text, len, &root))
      load_root(&c, root);
    node_free(root);
  }
  bool failed = c.nerrors > 0 || c.oom;
  flush_notes(&c, diag);
  if (!failed) /* warnings about routes that can never match */
    router_check_shadowed(c.cfg, diag);
  if (c.oom)
    diag_error(diag, name, "out of memory while loading the configuration");
  if (diag == &local)
    config_diag_free(&local);
  if (failed || out == NULL) {
    config_free(c.cfg);
    return failed ? -1 : 0;
  }
  *out = c.cfg;
  return 0;
}

int config_load_file(const char *path, struct config **out, struct config_diag *diag) {
  struct config_diag local = {0};
  char msg[300];
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = -1;

  if (out != NULL)
    *out = NULL;
  if (diag == NULL)
    diag = &local;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(msg, sizeof msg, "cannot read: %s", strerror(errno));
    diag_error(diag, path, msg);
    goto done;
  }
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 16384;
      char *nbuf = ncap <= MAX_FILE_BYTES ? realloc(buf, ncap) : NULL;
      if (nbuf == NULL) {
        diag_error(diag, path,
                   ncap > MAX_FILE_BYTES ? "cannot read: file is larger than 16m"
                                         : "cannot read: out of memory");
        goto done;
      }
      buf = nbuf;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) {
        snprintf(msg, sizeof msg, "cannot read: %s", strerror(errno));
        diag_error(diag, path, msg);
        goto done;
      }
      break;
    }
  }
  rc = config_load_string(path, buf, len, out, diag);
done:
  if (f != NULL)
    fclose(f);
  free(buf);
  if (diag == &local)
    config_diag_free(&local);
  return rc;
}

static void free_kvs(struct cfg_kv *kvs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(kvs[i].name);
    free(kvs[i].value);
  }
  free(kvs);
}

static void free_header_ops(struct cfg_header_ops *ops) {
  free_kvs(ops->set, ops->nset);
  free_kvs(ops->add, ops->nadd);
  for (size_t i = 0; i < ops->nremove; i++)
    free(ops->remove[i]);
  free(ops->remove);
}

void config_free(struct config *cfg) {
  if (cfg == NULL)
    return;
  for (size_t i = 0; i < cfg->nlisteners; i++)
    free(cfg->listeners[i].address);
  free(cfg->listeners);
  free(cfg->admin.address);
  for (size_t i = 0; i < cfg->admin.nredact_headers; i++)
    free(cfg->admin.redact_headers[i]);
  free(cfg->admin.redact_headers);
  for (size_t i = 0; i < cfg->admin.nallowed_hosts; i++)
    free(cfg->admin.allowed_hosts[i]);
  free(cfg->admin.allowed_hosts);
  free(cfg->access_log.path);
  for (size_t i = 0; i < cfg->nupstreams; i++) {
    struct cfg_upstream *up = &cfg->upstreams[i];
    for (size_t j = 0; j < up->nservers; j++) {
      free(up->servers[j].address);
      free(up->servers[j].host);
    }
    free(up->servers);
    free(up->name);
    free(up->hash_key);
    free(up->health_check.path);
  }
  free(cfg->upstreams);
  for (size_t i = 0; i < cfg->nroutes; i++) {
    struct cfg_route *r = &cfg->routes[i];
    free(r->host);
    free(r->path);
    if (r->regex != NULL) {
      regfree(r->regex);
      free(r->regex);
    }
    free_kvs(r->headers, r->nheaders);
    free(r->upstream);
    free(r->redirect_location);
    free(r->respond_body);
    free(r->respond_content_type);
    free(r->rewrite_prefix);
    free(r->set_host);
    free_header_ops(&r->request_headers);
    free_header_ops(&r->response_headers);
  }
  free(cfg->routes);
  free(cfg->file);
  free(cfg);
}

void config_diag_free(struct config_diag *diag) {
  if (diag == NULL)
    return;
  for (size_t i = 0; i < diag->n; i++)
    free(diag->msgs[i]);
  free(diag->msgs);
  memset(diag, 0, sizeof *diag);
}
