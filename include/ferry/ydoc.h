/* ydoc: a YAML document as a small syntax tree, and the diagnostics about it.
 *
 * Owns: reading text into ynodes (each keeps libyaml's start mark, so every
 * message can say FILE:LINE:COL), the list of diagnostics collected while a
 * document is read and checked, and the helpers that word those messages
 * (quoting values, key paths, "did you mean" suggestions). Must not touch:
 * what the keys mean (cfgval reads values, config and cfgroute know the
 * schema), struct config, sockets or the event loop. Nothing here is global,
 * so several loads may run at once on different threads.
 *
 * Only the configuration loader (config.c, cfgval.c, cfgroute.c) uses it. */
#ifndef FERRY_YDOC_H
#define FERRY_YDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>
#include <yaml.h>

#include "ferry/config.h"

#define YDOC_KEYPATH_MAX 256               /* longer key paths are cut short in messages */
#define YDOC_QUOTE_MAX 60                  /* bytes of a value shown in a message */
#define YDOC_QBUF (YDOC_QUOTE_MAX * 4 + 8) /* room for the escaped bytes, quotes and "..." */
#define YDOC_MAX_DEPTH 64                  /* deepest YAML nesting accepted */

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

struct ydoc_note {
  size_t line, col, seq;
  char *text; /* complete message line, owned */
};

/* One document being read and checked. Zero it, then set file, text, len. */
struct ydoc {
  const char *file; /* name used in messages */
  const char *text; /* the whole input, for positions of reader errors */
  size_t len;
  struct ydoc_note *notes;
  size_t nnotes, capnotes;
  size_t nerrors, nwarnings;
  bool oom; /* an allocation failed: the load fails with one "out of memory" error */
};

/* Allocation that records failure in c->oom instead of aborting. */
void *ydoc_calloc(struct ydoc *c, size_t n, size_t size);
char *ydoc_strdup(struct ydoc *c, const char *s);
/* Replaces *dst (freed) with a copy of s. Keeps *dst on out of memory. */
void ydoc_set_str(struct ydoc *c, char **dst, const char *s);

static inline bool ydoc_streq_nocase(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

/* "Did you mean" search: start with {word, NULL, 0}, feed candidates with
 * ydoc_suggest_try(), then ydoc_suggest_get() returns the closest one if it
 * is close enough, or NULL. */
struct ydoc_suggest {
  const char *word;
  const char *best;
  size_t dist;
};
void ydoc_suggest_try(struct ydoc_suggest *s, const char *cand);
const char *ydoc_suggest_get(const struct ydoc_suggest *s);

/* Writes s (len bytes) into buf as a double-quoted, escaped string, cut
 * after YDOC_QUOTE_MAX bytes with "...". Returns buf. size must be >= YDOC_QBUF. */
const char *ydoc_quote_n(const char *s, size_t len, char *buf, size_t size);
const char *ydoc_quote(const char *s, char *buf, size_t size);
/* What a node is, for "expected X, found Y" messages. */
const char *ydoc_found(const struct ynode *n, char *buf, size_t size);
/* "a, b or c" */
const char *ydoc_join_names(const char *const *names, size_t n, char *buf, size_t size);
/* Key paths in YDOC_KEYPATH_MAX-byte buffers: "parent.key" (or "key" at the
 * top level) and "parent[i]". Return buf. */
const char *ydoc_kp_key(char *buf, const char *parent, const char *key);
const char *ydoc_kp_index(char *buf, const char *parent, size_t i);
/* 1-based line of a mark. */
int ydoc_line(yaml_mark_t m);

/* Records "FILE:LINE:COL: PATH: message" (no "PATH: " when path is empty)
 * as an error, or as "FILE:LINE:COL: warning: PATH: message". */
__attribute__((format(printf, 4, 5))) void ydoc_err(struct ydoc *c, yaml_mark_t m, const char *path,
                                                    const char *fmt, ...);
__attribute__((format(printf, 4, 5))) void ydoc_warn(struct ydoc *c, yaml_mark_t m,
                                                     const char *path, const char *fmt, ...);
/* Moves the collected messages, in file order, into d, with their counts. */
void ydoc_flush(struct ydoc *c, struct config_diag *d);
/* An error without a position ("FILE: message") straight into d. */
void ydoc_diag_error(struct config_diag *d, const char *file, const char *msg);

/* Reads text into a tree. Returns true when the YAML was well formed, with
 * *root set to the document's root node, or NULL for an empty stream; the
 * caller frees *root with ydoc_free_tree(). Returns false (reported) on a
 * syntax error, an alias, nesting deeper than YDOC_MAX_DEPTH, a second
 * document or out of memory. */
bool ydoc_parse(struct ydoc *c, const char *text, size_t len, struct ynode **root);
void ydoc_free_tree(struct ynode *n);

#endif
