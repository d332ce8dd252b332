/* routetest: `ferry test-routes`, route test cases run through explain.
 *
 * Owns: the parsed tests file (a libyaml document, freed after the run)
 * and the PASS/FAIL report. Every decision about a request is explain's
 * (src/explain.c), which runs the proxy's own code; this module only
 * compares. Must not touch sockets or the running proxy. */
#include "ferry/routetest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ferry/explain.h"

#define RT_MAX_HEADERS 64

/* --- reading the tests file ---------------------------------------------------- */

struct rt_file {
  const char *name;
  yaml_document_t doc;
  FILE *err;
  unsigned errors;
};

static void rt_error(struct rt_file *f, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rt_error(struct rt_file *f, const yaml_node_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(f->err, "%s:%zu:%zu: ", f->name, n ? n->start_mark.line + 1 : 1,
          n ? n->start_mark.column + 1 : 1);
  vfprintf(f->err, fmt, ap);
  fputc('\n', f->err);
  va_end(ap);
  f->errors++;
}

static yaml_node_t *node(struct rt_file *f, int id) {
  return yaml_document_get_node(&f->doc, id);
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A scalar value, or an error naming what was expected. */
static const char *want_scalar(struct rt_file *f, const yaml_node_t *n, const char *path) {
  const char *s = scalar(n);
  if (!s)
    rt_error(f, n, "%s: expected a single value", path);
  return s;
}

static bool to_int(const char *s, long lo, long hi, long *out) {
  char *e;
  long v = s && *s ? strtol(s, &e, 10) : 0;
  if (!s || !*s || *e || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

struct rt_case {
  const char *name;
  int line;
  const char *method, *url, *from;
  struct explain_header headers[RT_MAX_HEADERS];
  size_t nheaders;
  /* expectations; NULL / -1: not checked */
  const char *upstream, *request_line;
  long status, route_line;
  struct explain_header expect_headers[RT_MAX_HEADERS];
  size_t nexpect_headers;
};

/* A mapping of header names to values into hs. */
static size_t read_headers(struct rt_file *f, const yaml_node_t *n, const char *path,
                           struct explain_header *hs) {
  size_t k = 0;
  if (!n || n->type != YAML_MAPPING_NODE) {
    rt_error(f, n, "%s: expected a mapping of header names to values, e.g. {X-Canary: \"1\"}",
             path);
    return 0;
  }
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const char *name = want_scalar(f, node(f, p->key), path);
    const char *value = want_scalar(f, node(f, p->value), path);
    if (!name || !value)
      continue;
    if (k == RT_MAX_HEADERS) {
      rt_error(f, node(f, p->key), "%s: at most %d headers", path, RT_MAX_HEADERS);
      break;
    }
    hs[k++] = (struct explain_header){(char *)name, (char *)value};
  }
  return k;
}

static void read_request(struct rt_file *f, const yaml_node_t *n, struct rt_case *c) {
  if (!n || n->type != YAML_MAPPING_NODE) {
    rt_error(f, n, "request: expected {method: GET, url: \"http://host/path\", headers: {...}}");
    return;
  }
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const char *key = scalar(node(f, p->key));
    yaml_node_t *v = node(f, p->value);
    if (key && strcmp(key, "method") == 0)
      c->method = want_scalar(f, v, "request.method");
    else if (key && strcmp(key, "url") == 0)
      c->url = want_scalar(f, v, "request.url");
    else if (key && strcmp(key, "from") == 0)
      c->from = want_scalar(f, v, "request.from");
    else if (key && strcmp(key, "headers") == 0)
      c->nheaders = read_headers(f, v, "request.headers", c->headers);
    else
      rt_error(f, node(f, p->key),
               "request: unknown key \"%s\" (expected method, url, headers or from)",
               key ? key : "?");
  }
  if (!c->url)
    rt_error(f, n, "request: url is required, e.g. url: \"http://api.example.com/users/7\"");
}

static void read_expect(struct rt_file *f, const yaml_node_t *n, struct rt_case *c) {
  if (!n || n->type != YAML_MAPPING_NODE) {
    rt_error(f, n, "expect: expected a mapping, e.g. {upstream: api} or {status: 301}");
    return;
  }
  unsigned errors = f->errors;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const char *key = scalar(node(f, p->key));
    yaml_node_t *v = node(f, p->value);
    const char *s;
    if (key && strcmp(key, "upstream") == 0) {
      c->upstream = want_scalar(f, v, "expect.upstream");
    } else if (key && strcmp(key, "status") == 0) {
      if ((s = want_scalar(f, v, "expect.status")) && !to_int(s, 100, 599, &c->status))
        rt_error(f, v, "expect.status: \"%s\" is not a status code (100 to 599)", s);
    } else if (key && strcmp(key, "route_line") == 0) {
      if ((s = want_scalar(f, v, "expect.route_line")) && !to_int(s, 1, 10000000, &c->route_line))
        rt_error(f, v, "expect.route_line: \"%s\" is not a line number", s);
    } else if (key && strcmp(key, "request_line") == 0) {
      c->request_line = want_scalar(f, v, "expect.request_line");
    } else if (key && strcmp(key, "headers") == 0) {
      c->nexpect_headers = read_headers(f, v, "expect.headers", c->expect_headers);
    } else {
      rt_error(f, node(f, p->key),
               "expect: unknown key \"%s\" (expected upstream, status, route_line, "
               "request_line or headers)",
               key ? key : "?");
    }
  }
  if (f->errors == errors && !c->upstream && c->status < 0 && c->route_line < 0 &&
      !c->request_line && !c->nexpect_headers)
    rt_error(f, n, "expect: say what should happen, e.g. upstream: api or status: 301");
}

static void read_case(struct rt_file *f, const yaml_node_t *n, struct rt_case *c) {
  memset(c, 0, sizeof *c);
  c->status = c->route_line = -1;
  c->method = "GET";
  c->line = (int)n->start_mark.line + 1;
  if (n->type != YAML_MAPPING_NODE) {
    rt_error(f, n, "expected a test case: {name: ..., request: {...}, expect: {...}}");
    return;
  }
  bool has_request = false, has_expect = false;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const char *key = scalar(node(f, p->key));
    yaml_node_t *v = node(f, p->value);
    if (key && strcmp(key, "name") == 0) {
      c->name = want_scalar(f, v, "name");
    } else if (key && strcmp(key, "request") == 0) {
      has_request = true;
      read_request(f, v, c);
    } else if (key && strcmp(key, "expect") == 0) {
      has_expect = true;
      read_expect(f, v, c);
    } else {
      rt_error(f, node(f, p->key), "unknown key \"%s\" (expected name, request and expect)",
               key ? key : "?");
    }
  }
  if (!has_request || !has_expect)
    rt_error(f, n, "a test case needs request: and expect:");
}

/* --- running ------------------------------------------------------------------- */

/* What ferry does with the request, in words, for a FAIL report. */
static void outcome(char *buf, size_t cap, const struct explain_result *r) {
  if (r->error)
    snprintf(buf, cap, "refused with %d before routing (%s)", r->status, r->error);
  else if (!r->matched)
    snprintf(buf, cap, "no route matches (404)");
  else if (r->route->action == ACTION_UPSTREAM)
    snprintf(buf, cap, "upstream %s, routes[%zu] (line %d)", r->route->upstream, r->route->index,
             r->route->line);
  else
    snprintf(buf, cap, "%s %d, routes[%zu] (line %d)", r->action, r->status, r->route->index,
             r->route->line);
}

static bool run_case(const struct config *cfg, const struct router *router, const struct rt_case *c,
                     FILE *out, const char *tests_file) {
  struct explain_query q = {c->method, c->url, c->headers, c->nheaders, c->from, "test-routes"};
  struct explain_result r;
  char err[512], what[1024], got[256];
  const char *name = c->name ? c->name : "(unnamed)";
  if (explain_run(cfg, router, &q, &r, err, sizeof err) != 0) {
    fprintf(out, "FAIL  %s  (%s:%d)\n      the request cannot be explained: %s\n", name, tests_file,
            c->line, err);
    return false;
  }
  outcome(what, sizeof what, &r);
  char *diff = NULL;
  size_t dn = 0;
  FILE *d = open_memstream(&diff, &dn);
  if (!d) {
    explain_result_free(&r);
    return false;
  }
  unsigned bad = 0;
  if (c->upstream && !(r.matched && r.route->action == ACTION_UPSTREAM &&
                       strcmp(r.route->upstream, c->upstream) == 0)) {
    fprintf(d, "      upstream:      expected %s, got %s\n", c->upstream, what);
    bad++;
  }
  if (c->status >= 0 && r.status != c->status) {
    if (r.status == 0)
      fprintf(d, "      status:        expected %ld, got a request forwarded to %s\n", c->status,
              what);
    else
      fprintf(d, "      status:        expected %ld, got %d: %s\n", c->status, r.status, what);
    bad++;
  }
  if (c->route_line >= 0 && !(r.matched && r.route->line == c->route_line)) {
    if (r.matched)
      snprintf(got, sizeof got, "line %d (routes[%zu])", r.route->line, r.route->index);
    else
      snprintf(got, sizeof got, "no route");
    fprintf(d, "      route_line:    expected %ld, got %s\n", c->route_line, got);
    bad++;
  }
  if (c->request_line && !(r.request_line && strcmp(r.request_line, c->request_line) == 0)) {
    fprintf(d, "      request_line:  expected \"%s\", got %s%s%s\n", c->request_line,
            r.request_line ? "\"" : "", r.request_line ? r.request_line : "nothing forwarded",
            r.request_line ? "\"" : "");
    bad++;
  }
  for (size_t i = 0; i < c->nexpect_headers; i++) {
    char *buf;
    const char *v = explain_forwarded_header(&r, c->expect_headers[i].name, &buf);
    if (!v || strcmp(v, c->expect_headers[i].value) != 0) {
      fprintf(d, "      header %s:  expected \"%s\", got %s%s%s\n", c->expect_headers[i].name,
              c->expect_headers[i].value, v ? "\"" : "", v ? v : "none sent upstream",
              v ? "\"" : "");
      bad++;
    }
    free(buf);
  }
  if (bad) {
    /* Why the routes the case expected did not match. */
    for (size_t i = 0; i < r.nskipped; i++) {
      const struct cfg_route *rt = &cfg->routes[r.skipped[i].index];
      bool wanted =
          (c->route_line >= 0 && rt->line == c->route_line) ||
          (c->upstream && rt->action == ACTION_UPSTREAM && strcmp(rt->upstream, c->upstream) == 0);
      if (wanted)
        fprintf(d, "      routes[%zu] (line %d) did not match: %s\n", r.skipped[i].index,
                r.skipped[i].line, r.skipped[i].reason);
    }
    fprintf(d, "      see: ferry explain -c %s %s '%s'", cfg->file ? cfg->file : "proxy.yaml",
            c->method, c->url);
    for (size_t i = 0; i < c->nheaders; i++)
      fprintf(d, " -H '%s: %s'", c->headers[i].name, c->headers[i].value);
    fprintf(d, "\n");
  }
  fclose(d);
  if (bad)
    fprintf(out, "FAIL  %s  (%s:%d)\n%s", name, tests_file, c->line, diff ? diff : "");
  else
    fprintf(out, "PASS  %s\n", name);
  free(diff);
  explain_result_free(&r);
  return bad == 0;
}

int routetest_run(const struct config *cfg, const struct router *router, const char *tests_file,
                  FILE *out, FILE *err, struct routetest_summary *sum) {
  memset(sum, 0, sizeof *sum);
  FILE *in = fopen(tests_file, "rb");
  if (!in) {
    fprintf(err, "%s: cannot read the tests file: %s\n", tests_file, strerror(errno));
    return -1;
  }
  struct rt_file f = {.name = tests_file, .err = err};
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_file(&parser, in);
  int ok = yaml_parser_load(&parser, &f.doc);
  if (!ok) {
    fprintf(err, "%s:%zu:%zu: %s %s\n", tests_file, parser.problem_mark.line + 1,
            parser.problem_mark.column + 1, parser.problem ? parser.problem : "malformed YAML",
            parser.context ? parser.context : "");
    yaml_parser_delete(&parser);
    fclose(in);
    return -1;
  }
  yaml_parser_delete(&parser);
  fclose(in);
  yaml_node_t *root = yaml_document_get_root_node(&f.doc);
  struct rt_case *cases = NULL;
  size_t ncases = 0;
  if (!root || root->type != YAML_SEQUENCE_NODE) {
    rt_error(&f, root,
             "expected a list of test cases: - {name: ..., request: {...}, expect: {...}}");
  } else {
    size_t n = (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
    cases = calloc(n ? n : 1, sizeof *cases);
    if (!cases) {
      fprintf(err, "%s: out of memory\n", tests_file);
      f.errors++;
    }
    for (size_t i = 0; cases && i < n; i++)
      read_case(&f, node(&f, root->data.sequence.items.start[i]), &cases[ncases++]);
    if (cases && n == 0)
      rt_error(&f, root, "no test cases in the file");
  }
  if (f.errors) {
    fprintf(err, "%s: %u error%s: fix the file and run again\n", tests_file, f.errors,
            f.errors == 1 ? "" : "s");
    free(cases);
    yaml_document_delete(&f.doc);
    return -1;
  }
  for (size_t i = 0; i < ncases; i++) {
    if (run_case(cfg, router, &cases[i], out, tests_file))
      sum->passed++;
    else
      sum->failed++;
  }
  fprintf(out, "%u passed, %u failed (%s against %s)\n", sum->passed, sum->failed, tests_file,
          cfg->file ? cfg->file : "proxy.yaml");
  free(cases);
  yaml_document_delete(&f.doc);
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: ferry test-routes [-c FILE] TESTS.yaml\n"
             "\n"
             "  Runs route test cases against FILE (default proxy.yaml) without sending anything:\n"
             "\n"
             "    - name: users go to the v2 API\n"
             "      request: {method: GET, url: \"http://api.example.com/users/7\",\n"
             "                headers: {X-Canary: \"1\"}}\n"
             "      expect:\n"
             "        upstream: api          # or status: 301 / 200 for redirect / respond routes\n"
             "        route_line: 14         # optional\n"
             "        request_line: \"GET /v2/users/7 HTTP/1.1\"   # optional\n"
             "        headers: {X-Env: prod} # optional: sent upstream with these values\n"
             "\n"
             "  Prints PASS or FAIL (with what was expected and what ferry would do) per case;\n"
             "  exit 0 when every case passes, 1 otherwise.\n");
}

int routetest_main(int argc, char **argv) {
  const char *file = "proxy.yaml", *tests = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
      file = argv[++i];
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "ferry test-routes: unknown option \"%s\"\n", argv[i]);
      usage(stderr);
      return 1;
    } else if (!tests) {
      tests = argv[i];
    } else {
      fprintf(stderr, "ferry test-routes: unexpected argument \"%s\" (one tests file)\n", argv[i]);
      return 1;
    }
  }
  if (!tests) {
    fprintf(stderr, "ferry test-routes: expected a tests file, e.g. ferry test-routes -c "
                    "proxy.yaml proxy.tests.yaml\n");
    usage(stderr);
    return 1;
  }
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  int lr = config_load_file(file, &cfg, &diag);
  for (size_t i = 0; lr != 0 && i < diag.n; i++)
    fprintf(stderr, "%s\n", diag.msgs[i]);
  config_diag_free(&diag);
  if (lr != 0) {
    fprintf(stderr, "ferry test-routes: %s has errors: fix them (ferry -t -c %s) and run again\n",
            file, file);
    return 1;
  }
  struct router *router = router_new(cfg);
  int rc = 1;
  struct routetest_summary sum;
  if (!router)
    fprintf(stderr, "ferry test-routes: out of memory compiling routes\n");
  else if (routetest_run(cfg, router, tests, stdout, stderr, &sum) == 0)
    rc = sum.failed == 0 ? 0 : 1;
  router_free(router);
  config_free(cfg);
  return rc;
}
