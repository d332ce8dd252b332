/* filter: mitmproxy-like expressions (~h, ~c, ~m, ~u, !, &, |, ...) over
 * inspector records.
 *
 * Owns: the compiled tree (nodes and their regexes). A recursive-descent
 * parser builds it; matching walks it against a struct inspect_rec. Must
 * not touch anything but the record it is given: no I/O, no globals. */
#include "ferry/filter.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_MAX_DEPTH 64
#define FILTER_MAX_ARG 1024

enum fop {
  F_AND,
  F_OR,
  F_NOT,
  F_HEADER,     /* ~h */
  F_HEADER_REQ, /* ~hq */
  F_HEADER_RESP,
  F_CODE,
  F_METHOD,
  F_URL,
  F_DOMAIN,
  F_TYPE,
  F_BODY,
  F_BODY_REQ,
  F_BODY_RESP,
  F_ROUTE,
  F_ERROR,
  F_SERVED
};

struct filter {
  enum fop op;
  struct filter *a, *b; /* operands of AND, OR (a, b) and NOT (a) */
  regex_t re;
  bool has_re;
  char *word; /* ~r: the route index or upstream name */
};

static const struct {
  const char *name;
  enum fop op;
  int arg; /* 0 none, 1 regex, 2 word */
  bool whole;
} ops[] = {
    {"h", F_HEADER, 1, false},    {"hq", F_HEADER_REQ, 1, false}, {"hs", F_HEADER_RESP, 1, false},
    {"c", F_CODE, 1, true},       {"m", F_METHOD, 1, true},       {"u", F_URL, 1, false},
    {"d", F_DOMAIN, 1, false},    {"t", F_TYPE, 1, false},        {"b", F_BODY, 1, false},
    {"bq", F_BODY_REQ, 1, false}, {"bs", F_BODY_RESP, 1, false},  {"r", F_ROUTE, 2, true},
    {"e", F_ERROR, 0, false},     {"s", F_SERVED, 0, false},
};

/* --- parsing ------------------------------------------------------------------ */

struct parser {
  const char *s, *p;
  char *err;
  size_t errlen;
  bool failed;
  int depth;
};

static void fail(struct parser *ps, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct parser *ps, const char *at, const char *fmt, ...) {
  if (ps->failed)
    return;
  ps->failed = true;
  int k = snprintf(ps->err, ps->errlen, "at column %d: ", (int)(at - ps->s) + 1);
  if (k < 0 || (size_t)k >= ps->errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ps->err + k, ps->errlen - (size_t)k, fmt, ap);
  va_end(ap);
}

static void skip_ws(struct parser *ps) {
  while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
    ps->p++;
}

static struct filter *node_new(enum fop op, struct filter *a, struct filter *b) {
  struct filter *f = calloc(1, sizeof *f);
  if (f) {
    f->op = op;
    f->a = a;
    f->b = b;
  }
  return f;
}

void filter_free(struct filter *f) {
  if (!f)
    return;
  filter_free(f->a);
  filter_free(f->b);
  if (f->has_re)
    regfree(&f->re);
  free(f->word);
  free(f);
}

/* One word or quoted string into out; false when there is none. */
static bool read_word(struct parser *ps, char *out, size_t cap, size_t *n) {
  skip_ws(ps);
  char q = *ps->p;
  if (q == '"' || q == '\'') {
    const char *start = ps->p++;
    while (*ps->p && *ps->p != q) {
      if (*ps->p == '\\' && (ps->p[1] == q || ps->p[1] == '\\'))
        ps->p++;
      if (*n + 1 >= cap) {
        fail(ps, start, "the quoted text is too long (at most %d bytes)", FILTER_MAX_ARG - 1);
        return false;
      }
      out[(*n)++] = *ps->p++;
    }
    if (*ps->p != q) {
      fail(ps, start, "the quote %c is not closed", q);
      return false;
    }
    ps->p++;
    out[*n] = '\0';
    return true;
  }
  /* ')', '|' and '&' end the word unless inside a '(' the word opened
   * itself: "~c 4..|~c 5.." is two filters, "~m (PUT|POST)" one regex. */
  const char *start = ps->p;
  int parens = 0;
  while (*ps->p && *ps->p != ' ' && *ps->p != '\t' && *ps->p != '\n' &&
         !(parens == 0 && (*ps->p == ')' || *ps->p == '|' || *ps->p == '&'))) {
    parens += *ps->p == '(' ? 1 : *ps->p == ')' ? -1 : 0;
    if (*n + 1 >= cap) {
      fail(ps, start, "the word is too long (at most %d bytes)", FILTER_MAX_ARG - 1);
      return false;
    }
    out[(*n)++] = *ps->p++;
  }
  out[*n] = '\0';
  return ps->p > start;
}

static struct filter *parse_or(struct parser *ps);

/* Whether p starts an operator or ends the expression: where the words of
 * a header filter's value stop. */
static bool at_operator(const char *p) {
  if (!*p || strchr(")&|~!", *p))
    return true;
  return (strncmp(p, "and", 3) == 0 && (p[3] == ' ' || p[3] == '\t' || !p[3])) ||
         (strncmp(p, "or", 2) == 0 && (p[2] == ' ' || p[2] == '\t' || !p[2]));
}

static struct filter *parse_op(struct parser *ps) {
  const char *at = ps->p++; /* '~' */
  size_t len = 0;
  while ((ps->p[len] >= 'a' && ps->p[len] <= 'z') || (ps->p[len] >= 'A' && ps->p[len] <= 'Z'))
    len++;
  size_t i = 0, nops = sizeof ops / sizeof ops[0];
  while (i < nops && !(strlen(ops[i].name) == len && strncmp(ops[i].name, ps->p, len) == 0))
    i++;
  if (i == nops) {
    fail(ps, at,
         "unknown filter ~%.*s (use ~h, ~hq, ~hs, ~c, ~m, ~u, ~d, ~t, ~b, ~bq, ~bs, ~r, ~e or ~s)",
         (int)len, ps->p);
    return NULL;
  }
  ps->p += len;
  struct filter *f = node_new(ops[i].op, NULL, NULL);
  if (!f) {
    fail(ps, at, "out of memory");
    return NULL;
  }
  if (ops[i].arg == 0)
    return f;
  char arg[FILTER_MAX_ARG];
  size_t n = 0;
  skip_ws(ps);
  const char *argat = ps->p;
  if (!read_word(ps, arg, sizeof arg, &n)) {
    fail(ps, argat, "~%s needs a %s after it", ops[i].name,
         ops[i].arg == 1 ? "regular expression" : "route index or upstream name");
    filter_free(f);
    return NULL;
  }
  /* "~h X-Env: prod": a header name ending in ':' takes the value with it. */
  bool hdr = f->op == F_HEADER || f->op == F_HEADER_REQ || f->op == F_HEADER_RESP;
  bool quoted = *argat == '"' || *argat == '\'';
  if (hdr && !quoted && n > 0 && arg[n - 1] == ':') {
    /* The value: the words up to the next operator ("~h Via: 1.1 ferry & ~c 200"). */
    for (;;) {
      const char *save = ps->p;
      skip_ws(ps);
      if (at_operator(ps->p)) {
        ps->p = save;
        break;
      }
      if (n + 2 >= sizeof arg) {
        fail(ps, argat, "the header filter is too long (at most %d bytes)", FILTER_MAX_ARG - 1);
        break;
      }
      arg[n++] = ' ';
      read_word(ps, arg, sizeof arg, &n);
      if (ps->failed)
        break;
    }
    if (ps->failed) {
      filter_free(f);
      return NULL;
    }
  }
  if (ops[i].arg == 2) {
    f->word = strdup(arg);
    if (!f->word) {
      fail(ps, at, "out of memory");
      filter_free(f);
      return NULL;
    }
    return f;
  }
  char pattern[FILTER_MAX_ARG + 8];
  snprintf(pattern, sizeof pattern, ops[i].whole ? "^(%s)$" : "%s", arg);
  int rc = regcomp(&f->re, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB);
  if (rc != 0) {
    char why[128];
    regerror(rc, &f->re, why, sizeof why);
    fail(ps, argat, "~%s %s: not a regular expression: %s", ops[i].name, arg, why);
    filter_free(f);
    return NULL;
  }
  f->has_re = true;
  return f;
}

static struct filter *parse_unary(struct parser *ps) {
  skip_ws(ps);
  if (++ps->depth > FILTER_MAX_DEPTH) {
    fail(ps, ps->p, "the expression nests too deeply");
    return NULL;
  }
  struct filter *f = NULL;
  if (*ps->p == '!') {
    ps->p++;
    struct filter *x = parse_unary(ps);
    if (x && !(f = node_new(F_NOT, x, NULL))) {
      fail(ps, ps->p, "out of memory");
      filter_free(x);
    }
  } else if (*ps->p == '(') {
    const char *open = ps->p++;
    f = parse_or(ps);
    skip_ws(ps);
    if (f && *ps->p != ')') {
      fail(ps, open, "this ( is not closed");
      filter_free(f);
      f = NULL;
    } else if (f) {
      ps->p++;
    }
  } else if (*ps->p == '~') {
    f = parse_op(ps);
  } else if (*ps->p == '\0') {
    fail(ps, ps->p, "the expression ends where a filter (~h, ~c, ~m, ~u, ...) should follow");
  } else {
    fail(ps, ps->p, "expected a filter such as ~c 5.. or ~m POST, an ! or a (, found \"%.20s\"",
         ps->p);
  }
  ps->depth--;
  return f;
}

static bool at_and(struct parser *ps) {
  skip_ws(ps);
  if (*ps->p == '&') {
    ps->p++;
    return true;
  }
  if (strncmp(ps->p, "and", 3) == 0 && (ps->p[3] == ' ' || ps->p[3] == '\t')) {
    ps->p += 3;
    return true;
  }
  /* Juxtaposition: "~m POST ~c 5.." means both. */
  return *ps->p == '~' || *ps->p == '!' || *ps->p == '(';
}

/* A chain of `next` operands joined by what `at` recognises, as nodes of
 * kind (left-associative). */
static struct filter *parse_chain(struct parser *ps, struct filter *(*next)(struct parser *),
                                  bool (*at)(struct parser *), enum fop kind) {
  struct filter *f = next(ps);
  while (f && at(ps)) {
    struct filter *g = next(ps), *n = g ? node_new(kind, f, g) : NULL;
    if (!n) {
      if (g)
        fail(ps, ps->p, "out of memory");
      filter_free(f);
      filter_free(g);
      return NULL;
    }
    f = n;
  }
  return f;
}

static struct filter *parse_and(struct parser *ps) {
  return parse_chain(ps, parse_unary, at_and, F_AND);
}

static bool at_or(struct parser *ps) {
  skip_ws(ps);
  if (*ps->p == '|') {
    ps->p++;
    return true;
  }
  if (strncmp(ps->p, "or", 2) == 0 && (ps->p[2] == ' ' || ps->p[2] == '\t')) {
    ps->p += 2;
    return true;
  }
  return false;
}

static struct filter *parse_or(struct parser *ps) {
  return parse_chain(ps, parse_and, at_or, F_OR);
}

struct filter *filter_compile(const char *expr, char *err, size_t errlen) {
  struct parser ps = {expr, expr, err, errlen, false, 0};
  struct filter *f = parse_or(&ps);
  skip_ws(&ps);
  if (f && *ps.p) {
    fail(&ps, ps.p,
         *ps.p == ')' ? "this ) has no ( before it"
                      : "expected & or | between filters, found \"%.20s\"",
         ps.p);
    filter_free(f);
    return NULL;
  }
  if (!f && !ps.failed)
    snprintf(err, errlen, "out of memory");
  return f;
}

/* --- matching ----------------------------------------------------------------- */

/* regexec wants a NUL-terminated string (sanitizers' interceptors read to
 * the NUL even with REG_STARTEND), and a record's slices are not: copy,
 * on the stack when short. Admin thread only, never on the request path. */
static bool rx_match(const regex_t *re, struct slice s) {
  char stack[4096];
  char *buf = s.n < sizeof stack ? stack : malloc(s.n + 1);
  if (!buf)
    return false;
  if (s.n)
    memcpy(buf, s.p, s.n);
  buf[s.n] = '\0';
  bool m = regexec(re, buf, 0, NULL, 0) == 0;
  if (buf != stack)
    free(buf);
  return m;
}

static bool head_match(const regex_t *re, const struct inspect_head *h) {
  char line[FILTER_MAX_ARG * 8];
  for (uint32_t i = 0; h->present && i < h->n; i++) {
    size_t room = sizeof line - 2; /* long lines are matched on their first bytes */
    size_t nn = h->h[i].name.n < room ? h->h[i].name.n : room;
    size_t vn = h->h[i].value.n < room - nn ? h->h[i].value.n : room - nn;
    memcpy(line, h->h[i].name.p, nn);
    memcpy(line + nn, ": ", 2);
    memcpy(line + nn + 2, h->h[i].value.p, vn);
    if (rx_match(re, (struct slice){line, nn + 2 + vn}))
      return true;
  }
  return false;
}

static struct slice content_type(const struct inspect_head *h) {
  for (uint32_t i = 0; h->present && i < h->n; i++)
    if (slice_ieq(h->h[i].name, SLICE_LIT("content-type")))
      return h->h[i].value;
  return (struct slice){"", 0};
}

bool filter_match(const struct filter *f, const struct inspect_rec *r) {
  const struct inspect_head *hd = r->heads;
  char buf[64];
  switch (f->op) {
  case F_AND:
    return filter_match(f->a, r) && filter_match(f->b, r);
  case F_OR:
    return filter_match(f->a, r) || filter_match(f->b, r);
  case F_NOT:
    return !filter_match(f->a, r);
  case F_HEADER:
    return head_match(&f->re, &hd[INSPECT_REQUEST_CLIENT]) ||
           head_match(&f->re, &hd[INSPECT_REQUEST_UPSTREAM]) ||
           head_match(&f->re, &hd[INSPECT_RESPONSE_UPSTREAM]) ||
           head_match(&f->re, &hd[INSPECT_RESPONSE_CLIENT]);
  case F_HEADER_REQ:
    return head_match(&f->re, &hd[INSPECT_REQUEST_CLIENT]) ||
           head_match(&f->re, &hd[INSPECT_REQUEST_UPSTREAM]);
  case F_HEADER_RESP:
    return head_match(&f->re, &hd[INSPECT_RESPONSE_UPSTREAM]) ||
           head_match(&f->re, &hd[INSPECT_RESPONSE_CLIENT]);
  case F_CODE: {
    int k = snprintf(buf, sizeof buf, "%d", r->status);
    return r->status > 0 && rx_match(&f->re, (struct slice){buf, (size_t)k});
  }
  case F_METHOD:
    return rx_match(&f->re, r->method);
  case F_URL: {
    char url[FILTER_MAX_ARG * 8];
    int k = snprintf(url, sizeof url, "http://%.*s%.*s", (int)r->host.n, r->host.p,
                     (int)r->target.n, r->target.p);
    size_t n = k < 0 ? 0 : (size_t)k < sizeof url ? (size_t)k : sizeof url - 1;
    return rx_match(&f->re, (struct slice){url, n});
  }
  case F_DOMAIN:
    return rx_match(&f->re, r->host);
  case F_TYPE:
    return rx_match(&f->re, content_type(&hd[INSPECT_RESPONSE_CLIENT]));
  case F_BODY:
    return (r->body[0].n && rx_match(&f->re, r->body[0])) ||
           (r->body[1].n && rx_match(&f->re, r->body[1]));
  case F_BODY_REQ:
    return r->body[0].n && rx_match(&f->re, r->body[0]);
  case F_BODY_RESP:
    return r->body[1].n && rx_match(&f->re, r->body[1]);
  case F_ROUTE:
    snprintf(buf, sizeof buf, "%d", r->route_index);
    return (r->route_index >= 0 && strcmp(buf, f->word) == 0) ||
           (r->upstream.n && slice_eq(r->upstream, slice_cstr(f->word)));
  case F_ERROR:
    return r->error.n > 0 || (r->status > 0 && !r->complete);
  case F_SERVED:
    return hd[INSPECT_RESPONSE_UPSTREAM].present;
  }
  return false;
}
