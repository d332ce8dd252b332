/* ydoc: a YAML document as a small syntax tree, and the diagnostics about it
 * (include/ferry/ydoc.h).
 *
 * Owns: turning libyaml's event stream into ynodes that keep their start
 * mark (anchors ignored, aliases rejected, nesting bounded; a YAML syntax
 * error ends the read with that one error), the messages collected while a
 * document is read and checked, sorted into file order when they are handed
 * over (the schema is walked in a fixed order, not in file order), and the
 * helpers that word those messages. Must not touch: the meaning of any key
 * or value (cfgval, config, cfgroute), struct config, sockets, the event
 * loop, or any state outside the struct ydoc it is given.
 *
 * Running out of memory is recorded in ydoc.oom, never an abort: a reload
 * must not take a serving process down. */
#include "ferry/ydoc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ----------------------------------------------------- */

void *ydoc_calloc(struct ydoc *c, size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (p == NULL)
    c->oom = true;
  return p;
}

char *ydoc_strdup(struct ydoc *c, const char *s) {
  char *p = strdup(s);
  if (p == NULL)
    c->oom = true;
  return p;
}

/* Replaces *dst (freed) with a copy of s. Keeps *dst on out of memory. */
void ydoc_set_str(struct ydoc *c, char **dst, const char *s) {
  char *p = ydoc_strdup(c, s);
  if (p != NULL) {
    free(*dst);
    *dst = p;
  }
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

/* "Did you mean" search: feed candidates with ydoc_suggest_try(), then
 * ydoc_suggest_get() returns the closest one if it is close enough, or NULL. */
void ydoc_suggest_try(struct ydoc_suggest *s, const char *cand) {
  size_t d = edit_distance(s->word, cand);
  if (s->best == NULL || d < s->dist) {
    s->best = cand;
    s->dist = d;
  }
}

const char *ydoc_suggest_get(const struct ydoc_suggest *s) {
  size_t limit = strlen(s->word) <= 3 ? 1 : 2;
  return s->best != NULL && s->dist <= limit ? s->best : NULL;
}

/* Writes s (len bytes) into buf as a double-quoted, escaped string, cut
 * after YDOC_QUOTE_MAX bytes with "...". Returns buf. size must be >= YDOC_QBUF. */
const char *ydoc_quote_n(const char *s, size_t len, char *buf, size_t size) {
  size_t o = 0, i;
  buf[o++] = '"';
  for (i = 0; i < len && i < YDOC_QUOTE_MAX; i++) {
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

const char *ydoc_quote(const char *s, char *buf, size_t size) {
  return ydoc_quote_n(s, strlen(s), buf, size);
}

/* What a node is, for "expected X, found Y" messages. */
const char *ydoc_found(const struct ynode *n, char *buf, size_t size) {
  switch (n->kind) {
  case Y_SEQ:
    return "a list";
  case Y_MAP:
    return "a mapping";
  case Y_NULL:
    return "an empty value";
  case Y_SCALAR:
    if (n->plain)
      return ydoc_quote_n(n->s, n->len, buf, size);
    memcpy(buf, "quoted string ", 14);
    ydoc_quote_n(n->s, n->len, buf + 14, size - 14);
    return buf;
  case Y_BAD:
    break;
  }
  return "an alias";
}

/* "a, b or c" */
const char *ydoc_join_names(const char *const *names, size_t n, char *buf, size_t size) {
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

/* Key paths live in YDOC_KEYPATH_MAX-byte buffers; a longer path is cut short. */
static void kp_append(char *buf, size_t *o, const char *s) {
  while (*s != '\0' && *o + 1 < YDOC_KEYPATH_MAX)
    buf[(*o)++] = *s++;
  buf[*o] = '\0';
}

/* "parent.key", or "key" at the top level. */
const char *ydoc_kp_key(char *buf, const char *parent, const char *key) {
  size_t o = 0;
  kp_append(buf, &o, parent);
  if (o > 0)
    kp_append(buf, &o, ".");
  kp_append(buf, &o, key);
  return buf;
}

/* "parent[i]" */
const char *ydoc_kp_index(char *buf, const char *parent, size_t i) {
  char num[24];
  size_t o = 0;
  snprintf(num, sizeof num, "[%zu]", i);
  kp_append(buf, &o, parent);
  kp_append(buf, &o, num);
  return buf;
}

int ydoc_line(yaml_mark_t m) {
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
void ydoc_diag_error(struct config_diag *d, const char *file, const char *msg) {
  size_t len = strlen(file) + strlen(msg) + 3;
  char *text = malloc(len);
  d->nerrors++;
  if (text == NULL)
    return;
  snprintf(text, len, "%s: %s", file, msg);
  if (diag_push(d, text) != 0)
    free(text);
}

/* Records "FILE:LINE:COL: PATH: message" (no "PATH: " when path is empty),
 * with "warning: " before the message for a warning. */
static void note_at(struct ydoc *c, yaml_mark_t m, const char *path, bool warning, const char *fmt,
                    va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (warning)
    c->nwarnings++;
  else
    c->nerrors++;

  size_t line = m.line + 1, col = m.column + 1;
  const char *sep = path[0] ? ": " : "";
  const char *kind = warning ? "warning: " : "";
  int len = snprintf(NULL, 0, "%s:%zu:%zu: %s%s%s%s", c->file, line, col, kind, path, sep, msg);
  char *text = len < 0 ? NULL : malloc((size_t)len + 1);
  if (text == NULL) {
    c->oom = true;
    return;
  }
  snprintf(text, (size_t)len + 1, "%s:%zu:%zu: %s%s%s%s", c->file, line, col, kind, path, sep, msg);
  if (c->nnotes == c->capnotes) {
    size_t cap = c->capnotes ? c->capnotes * 2 : 8;
    struct ydoc_note *notes = realloc(c->notes, cap * sizeof *notes);
    if (notes == NULL) {
      free(text);
      c->oom = true;
      return;
    }
    c->notes = notes;
    c->capnotes = cap;
  }
  c->notes[c->nnotes] = (struct ydoc_note){line, col, c->nnotes, text};
  c->nnotes++;
}

void ydoc_err(struct ydoc *c, yaml_mark_t m, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  note_at(c, m, path, false, fmt, ap);
  va_end(ap);
}

void ydoc_warn(struct ydoc *c, yaml_mark_t m, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  note_at(c, m, path, true, fmt, ap);
  va_end(ap);
}

static int note_cmp(const void *pa, const void *pb) {
  const struct ydoc_note *a = pa, *b = pb;
  if (a->line != b->line)
    return a->line < b->line ? -1 : 1;
  if (a->col != b->col)
    return a->col < b->col ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Moves the collected notes, in file order, into d. */
void ydoc_flush(struct ydoc *c, struct config_diag *d) {
  if (c->nnotes > 1)
    qsort(c->notes, c->nnotes, sizeof c->notes[0], note_cmp);
  for (size_t i = 0; i < c->nnotes; i++)
    if (diag_push(d, c->notes[i].text) != 0)
      free(c->notes[i].text);
  d->nerrors += c->nerrors;
  d->nwarnings += c->nwarnings;
  free(c->notes);
  c->notes = NULL;
  c->nnotes = c->capnotes = 0;
}

/* ---- YAML -> tree ------------------------------------------------------ */

void ydoc_free_tree(struct ynode *n) {
  if (n == NULL)
    return;
  for (size_t i = 0; i < n->n; i++)
    ydoc_free_tree(n->kids[i]);
  free(n->kids);
  free(n->s);
  free(n);
}

static struct ynode *node_new(struct ydoc *c, enum ykind kind, yaml_mark_t mark) {
  struct ynode *n = ydoc_calloc(c, 1, sizeof *n);
  if (n != NULL) {
    n->kind = kind;
    n->mark = mark;
  }
  return n;
}

static int node_add(struct ydoc *c, struct ynode *parent, struct ynode *kid) {
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

static struct ynode *scalar_node(struct ydoc *c, const yaml_event_t *ev) {
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
static void syntax_error(struct ydoc *c, const yaml_parser_t *p) {
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
      ydoc_err(c, m, "", "invalid input: %s (byte 0x%02x)", problem, p->problem_value & 0xff);
    else
      ydoc_err(c, m, "", "invalid input: %s", problem);
    return;
  }
  if (p->context != NULL)
    ydoc_err(c, p->problem_mark, "", "YAML syntax error: %s (%s started at line %zu, column %zu)",
             problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  else
    ydoc_err(c, p->problem_mark, "", "YAML syntax error: %s", problem);
}

/* Reads text into a tree. Returns true when the YAML was well formed, with
 * *root set to the document's root node, or NULL for an empty stream; the
 * caller frees *root. Returns false (reported) on a syntax error, an alias,
 * nesting deeper than YDOC_MAX_DEPTH, a second document or out of memory. */
bool ydoc_parse(struct ydoc *c, const char *text, size_t len, struct ynode **root) {
  yaml_parser_t p;
  struct ynode *stack[YDOC_MAX_DEPTH];
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
        ydoc_err(c, ev.start_mark, "",
                 "only one YAML document is allowed (found a second \"---\")");
        ok = false;
        done = true;
      }
      break;
    case YAML_ALIAS_EVENT:
      ydoc_err(c, ev.start_mark, "", "YAML aliases (*%s) are not supported; write the value out",
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
        ydoc_free_tree(n); /* cannot happen with one document, or out of memory */
        n = NULL;
        ok = false;
        done = true;
      }
      if (n != NULL && (n->kind == Y_SEQ || n->kind == Y_MAP)) {
        if (depth == YDOC_MAX_DEPTH) {
          ydoc_err(c, ev.start_mark, "", "nesting is deeper than %d levels", YDOC_MAX_DEPTH);
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
