/* explain: `ferry explain`, which route a request takes and why, and the
 * head ferry would send upstream.
 *
 * Owns: the heap copies in a struct explain_result and the CLI's output.
 * It runs the proxy's own functions (request_check, router_match,
 * router_route_check, request_upstream_target, request_redirect_location,
 * request_fwd_init, http_head_build_request) on a request described on the
 * command line; it never opens a socket and must not grow its own copy of
 * any routing or rewriting rule. */
#include "ferry/explain.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/buf.h"
#include "ferry/request.h"
#include "ferry/trace.h"

#define EXPLAIN_MAX_HEADERS 128
#define EXPLAIN_ARENA (1u << 20)

/* --- helpers ----------------------------------------------------------------- */

static char *dup_slice(struct slice s) {
  char *p = malloc(s.n + 1);
  if (p) {
    if (s.n)
      memcpy(p, s.p, s.n);
    p[s.n] = '\0';
  }
  return p;
}

/* llhttp's number for a method name (exact case), or -1. */
static int method_number(const char *name) {
#define METHOD_CASE(NUM, NAME, STRING)                                                             \
  if (strcmp(name, #STRING) == 0)                                                                  \
    return NUM;
  HTTP_ALL_METHOD_MAP(METHOD_CASE)
#undef METHOD_CASE
  return -1;
}

static const char *method_name(int m) {
  return llhttp_method_name((llhttp_method_t)m);
}

/* "GET, HEAD" for a route's methods bitmask. */
static void methods_text(uint64_t methods, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (int m = 0; m < 64; m++) {
    if (!(methods & (1ull << m)))
      continue;
    int k = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", method_name(m));
    if (k < 0 || (size_t)k >= cap - n)
      return;
    n += (size_t)k;
  }
}

/* Appending to a bounded buffer without formatting: the inspector words
 * these reasons for every captured exchange, so they cost memcpy only. */
struct sbuf {
  char *p;
  size_t n, cap; /* cap >= 1; p[n] is kept NUL */
};

static void sb_add(struct sbuf *b, const char *s, size_t n) {
  size_t room = b->cap - 1 - b->n;
  size_t k = n < room ? n : room;
  if (k)
    memcpy(b->p + b->n, s, k);
  b->n += k;
  b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

static void sb_slice(struct sbuf *b, struct slice s) {
  sb_add(b, s.p, s.n);
}

size_t explain_skip_reason(char *out, size_t cap, const struct cfg_route *rt,
                           const struct route_query *q, enum router_skip why, size_t hi) {
  static const char *const pk[] = {"", "path", "path_prefix", "path_regex"};
  struct sbuf b = {out, 0, cap};
  if (cap == 0)
    return 0;
  out[0] = '\0';
  switch (why) {
  case ROUTER_SKIP_HOST:
    if (q->host.n == 0) {
      sb_str(&b, "host: the request has no Host; this route wants ");
      sb_str(&b, rt->host_wildcard ? "*" : "");
      sb_str(&b, rt->host);
    } else if (rt->host_wildcard) {
      sb_str(&b, "host: ");
      sb_slice(&b, q->host);
      sb_str(&b, " is not a subdomain of ");
      sb_str(&b, rt->host[0] == '.' ? rt->host + 1 : rt->host);
      sb_str(&b, " (host *");
      sb_str(&b, rt->host);
      sb_str(&b, ")");
    } else {
      sb_str(&b, "host: ");
      sb_slice(&b, q->host);
      sb_str(&b, " is not ");
      sb_str(&b, rt->host);
    }
    return b.n;
  case ROUTER_SKIP_PATH: {
    sb_str(&b, "path: ");
    sb_slice(&b, q->path);
    size_t m = strlen(rt->path);
    if (rt->path_kind == PATH_PREFIX && m > 0 && rt->path[m - 1] == '/') {
      sb_str(&b, " does not start with ");
      sb_str(&b, rt->path);
      sb_str(&b, " (path_prefix)");
    } else if (rt->path_kind == PATH_PREFIX) {
      sb_str(&b, " is not ");
      sb_str(&b, rt->path);
      sb_str(&b, " or below it (path_prefix ");
      sb_str(&b, rt->path);
      sb_str(&b, ")");
    } else if (rt->path_kind == PATH_EXACT) {
      sb_str(&b, " is not ");
      sb_str(&b, rt->path);
      sb_str(&b, " (path)");
    } else {
      sb_str(&b, " does not match ");
      sb_str(&b, pk[rt->path_kind]);
      sb_str(&b, " ");
      sb_str(&b, rt->path);
    }
    return b.n;
  }
  case ROUTER_SKIP_METHOD: {
    char ms[512];
    methods_text(rt->methods, ms, sizeof ms);
    sb_str(&b, "method: ");
    sb_str(&b, q->method >= 0 ? method_name(q->method) : "?");
    sb_str(&b, " is not one of ");
    sb_str(&b, ms);
    sb_str(&b, " (methods)");
    return b.n;
  }
  case ROUTER_SKIP_HEADER: {
    const struct cfg_kv *want = &rt->headers[hi];
    const struct hdr *h = http_head_find(q->headers, slice_cstr(want->name));
    sb_str(&b, "header: ");
    sb_str(&b, want->name);
    if (!h) {
      sb_str(&b, " is missing (this route wants ");
      sb_str(&b, want->name);
      sb_str(&b, ": ");
      sb_str(&b, want->value);
      sb_str(&b, ")");
    } else {
      sb_str(&b, " is \"");
      sb_slice(&b, h->value);
      sb_str(&b, "\", this route wants \"");
      sb_str(&b, want->value);
      sb_str(&b, "\"");
    }
    return b.n;
  }
  case ROUTER_SKIP_NONE:
    break;
  }
  sb_str(&b, "matches by its conditions, yet the router chose another route: please report "
             "this as a bug");
  return b.n;
}

/* The head http_head_build_request made, split into the result's request
 * line and header pairs. */
static int split_head(struct explain_result *out, const char *p, size_t n) {
  const char *end = p + n;
  const char *eol = memchr(p, '\r', n);
  if (!eol)
    return -1;
  out->request_line = dup_slice(slice_make(p, (size_t)(eol - p)));
  size_t cap = 0;
  for (const char *c = p; c < end; c++)
    cap += *c == '\n';
  out->headers = calloc(cap ? cap : 1, sizeof *out->headers);
  if (!out->request_line || !out->headers)
    return -1;
  p = eol + 2;
  while (p < end && (eol = memchr(p, '\r', (size_t)(end - p))) != NULL && eol > p) {
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon) {
      const char *v = colon + 1;
      while (v < eol && *v == ' ')
        v++;
      struct explain_header *h = &out->headers[out->nheaders++];
      h->name = dup_slice(slice_make(p, (size_t)(colon - p)));
      h->value = dup_slice(slice_make(v, (size_t)(eol - v)));
      if (!h->name || !h->value)
        return -1;
    }
    p = eol + 2;
  }
  return 0;
}

static void make_request_id(char out[24]) {
  static const char hex[] = "0123456789abcdef";
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
               ((uint64_t)getpid() << 32);
  for (int i = 0; i < 20; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = hex[x & 15u];
  }
  out[20] = '\0';
}

/* --- explaining --------------------------------------------------------------- */

void explain_result_free(struct explain_result *r) {
  if (!r)
    return;
  free(r->error);
  free(r->location);
  free(r->request_line);
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  for (size_t i = 0; i < r->nskipped; i++)
    free(r->skipped[i].reason);
  free(r->skipped);
  memset(r, 0, sizeof *r);
}

static int add_skip(struct explain_result *out, const struct cfg_route *rt,
                    const struct route_query *q, enum router_skip why, size_t hi) {
  struct explain_skip *s = &out->skipped[out->nskipped];
  s->index = rt->index;
  s->line = rt->line;
  s->why = why;
  char reason[1024];
  explain_skip_reason(reason, sizeof reason, rt, q, why, hi);
  s->reason = strdup(reason);
  if (!s->reason)
    return -1;
  out->nskipped++;
  return 0;
}

int explain_run(const struct config *cfg, const struct router *router,
                const struct explain_query *q, struct explain_result *out, char *err,
                size_t errlen) {
  memset(out, 0, sizeof *out);
  int method = method_number(q->method);
  if (method < 0) {
    snprintf(err, errlen,
             "unknown method \"%s\": use an HTTP method in capitals, e.g. GET, POST, PUT, DELETE",
             q->method);
    return -1;
  }
  if (q->nheaders > EXPLAIN_MAX_HEADERS) {
    snprintf(err, errlen, "too many headers (at most %d)", EXPLAIN_MAX_HEADERS);
    return -1;
  }
  struct hdr store[EXPLAIN_MAX_HEADERS];
  struct hdr_list hl = {.v = store, .cap = EXPLAIN_MAX_HEADERS};
  bool chunked = false, has_length = false;
  uint64_t length = 0;
  for (size_t i = 0; i < q->nheaders; i++) {
    http_head_push(&hl, slice_cstr(q->headers[i].name), slice_cstr(q->headers[i].value));
    const struct hdr *h = &hl.v[hl.n - 1];
    if (h->tok == HDR_TRANSFER_ENCODING)
      chunked = true; /* request_check refuses anything but "chunked" alone */
    if (h->tok == HDR_CONTENT_LENGTH) {
      char *e;
      unsigned long long v = strtoull(q->headers[i].value, &e, 10);
      if (!q->headers[i].value[0] || *e) {
        snprintf(err, errlen, "Content-Length \"%s\": expected a number of bytes",
                 q->headers[i].value);
        return -1;
      }
      has_length = true;
      length = v;
    }
  }
  http_head_mark_hop(&hl);
  bool upgrade = http_head_find_tok(&hl, HDR_UPGRADE) && http_head_connection_has(&hl, "upgrade");

  struct bufpool pool;
  struct arena arena;
  bufpool_init(&pool);
  arena_init(&arena, &pool, EXPLAIN_ARENA);
  int rc = -1;
  char *head = NULL;
  snprintf(err, errlen, "out of memory");

  struct request_head rh = {.method = method,
                            .major = 1,
                            .minor = 1,
                            .target = slice_cstr(q->url),
                            .headers = &hl,
                            .chunked = chunked,
                            .has_length = has_length};
  size_t scratch_n = request_scratch_size(rh.target.n);
  char *scratch = arena_alloc(&arena, scratch_n);
  struct request_verdict rq;
  enum request_error rerr =
      scratch ? request_check(&rh, scratch, scratch_n, &rq) : REQUEST_E_TOO_LONG;
  if (rerr != REQUEST_OK) {
    out->status = request_status(rerr);
    const char *body = request_message(rerr);
    if (!body)
      body = http_status_reason(out->status);
    size_t bl = strlen(body);
    while (bl > 0 && body[bl - 1] == '\n')
      bl--;
    out->error = dup_slice(slice_make(body, bl));
    rc = out->error ? 0 : -1;
    goto done;
  }

  struct route_query rqy = {router_host_strip_port(rq.host), rq.norm, method, &hl};
  const struct cfg_route *route = router_match(router, &rqy);
  size_t upto = route ? route->index : cfg->nroutes;
  out->skipped = calloc(upto ? upto : 1, sizeof *out->skipped);
  if (!out->skipped)
    goto done;
  for (size_t i = 0; i < upto; i++) {
    size_t hi;
    enum router_skip why = router_route_check(&cfg->routes[i], &rqy, &hi);
    if (add_skip(out, &cfg->routes[i], &rqy, why, hi) != 0)
      goto done;
  }
  if (!route) {
    out->status = 404;
    rc = 0;
    goto done;
  }
  out->matched = true;
  out->route = route;
  switch (route->action) {
  case ACTION_RESPOND:
    out->action = "respond";
    out->status = route->respond_status;
    rc = 0;
    goto done;
  case ACTION_REDIRECT: {
    out->action = "redirect";
    out->status = route->redirect_status;
    struct slice loc;
    if (request_redirect_location(route, rq.path, &arena, &loc) != 0 ||
        !(out->location = dup_slice(loc)))
      goto done;
    rc = 0;
    goto done;
  }
  case ACTION_UPSTREAM:
    out->action = "upstream";
    break;
  }
  struct slice send_target;
  if (request_upstream_target(route, rq.path, rq.norm, &arena, &send_target) != 0)
    goto done;
  char rid[24];
  const struct hdr *crid = http_head_find_tok(&hl, HDR_X_REQUEST_ID);
  struct slice request_id;
  if (crid && http_head_request_id_sane(crid->value)) {
    request_id = crid->value;
  } else if (q->request_id) {
    request_id = slice_cstr(q->request_id);
  } else {
    make_request_id(rid);
    request_id = slice_cstr(rid);
  }
  const struct cfg_upstream *up = &cfg->upstreams[route->upstream_index];
  struct fwd_request fr;
  request_fwd_init(
      &fr, route, &rh, send_target, rq.host, slice_cstr(up->nservers ? up->servers[0].address : ""),
      slice_cstr(q->client_ip ? q->client_ip : "127.0.0.1"), request_id, length, upgrade, false);
  /* traceparent as ferry makes it: the client's trace kept, a span of its own */
  char trace_id[32], flags[2] = {'0', '0'}, traceparent[TRACE_PARENT_LEN];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
  const struct hdr *ctp = http_head_find_tok(&hl, HDR_TRACEPARENT);
  if (!ctp || !trace_parse(ctp->value, trace_id, flags)) {
    trace_hex64(trace_id, trace_random(&seed));
    trace_hex64(trace_id + 16, trace_random(&seed));
  }
  trace_format(traceparent, trace_id, trace_random(&seed), flags);
  fr.traceparent = slice_make(traceparent, TRACE_PARENT_LEN);
  size_t need = http_head_build_request(NULL, 0, &fr);
  head = malloc(need + 1);
  if (!head)
    goto done;
  http_head_build_request(head, need, &fr);
  if (split_head(out, head, need) != 0)
    goto done;
  rc = 0;

done:
  free(head);
  arena_reset(&arena);
  bufpool_destroy(&pool);
  if (rc != 0)
    explain_result_free(out);
  return rc;
}

const char *explain_forwarded_header(const struct explain_result *r, const char *name, char **buf) {
  *buf = NULL;
  const char *first = NULL;
  size_t count = 0, len = 0;
  for (size_t i = 0; i < r->nheaders; i++)
    if (slice_ieq(slice_cstr(r->headers[i].name), slice_cstr(name))) {
      if (!first)
        first = r->headers[i].value;
      count++;
      len += strlen(r->headers[i].value) + 2;
    }
  if (count <= 1)
    return first;
  char *b = malloc(len + 1);
  if (!b)
    return first;
  size_t n = 0;
  for (size_t i = 0; i < r->nheaders; i++)
    if (slice_ieq(slice_cstr(r->headers[i].name), slice_cstr(name)))
      n += (size_t)sprintf(b + n, "%s%s", n ? ", " : "", r->headers[i].value);
  *buf = b;
  return b;
}

/* --- rendering ---------------------------------------------------------------- */

static void put_str(struct inspect_out *o, const char *s) {
  inspect_json_str(o, slice_cstr(s ? s : ""));
}

void explain_render_json(struct inspect_out *o, const struct explain_result *r) {
  char num[64];
  inspect_out_puts(o, r->matched ? "{\"matched\":true" : "{\"matched\":false");
  if (r->route) {
    snprintf(num, sizeof num, ",\"route\":{\"index\":%zu,\"line\":%d}", r->route->index,
             r->route->line);
    inspect_out_puts(o, num);
    inspect_out_puts(o, ",\"action\":");
    put_str(o, r->action);
    inspect_out_puts(o, ",\"upstream\":");
    if (r->route->action == ACTION_UPSTREAM)
      put_str(o, r->route->upstream);
    else
      inspect_out_puts(o, "null");
  } else {
    inspect_out_puts(o, ",\"route\":null,\"action\":null,\"upstream\":null");
  }
  if (r->status) {
    snprintf(num, sizeof num, ",\"status\":%d", r->status);
    inspect_out_puts(o, num);
  }
  if (r->location) {
    inspect_out_puts(o, ",\"location\":");
    put_str(o, r->location);
  }
  if (r->error) {
    inspect_out_puts(o, ",\"error\":");
    put_str(o, r->error);
  }
  inspect_out_puts(o, ",\"request_line\":");
  if (r->request_line)
    put_str(o, r->request_line);
  else
    inspect_out_puts(o, "null");
  inspect_out_puts(o, ",\"headers\":[");
  for (size_t i = 0; i < r->nheaders; i++) {
    inspect_out_puts(o, i ? ",[" : "[");
    put_str(o, r->headers[i].name);
    inspect_out_puts(o, ",");
    put_str(o, r->headers[i].value);
    inspect_out_puts(o, "]");
  }
  inspect_out_puts(o, "],\"skipped\":[");
  for (size_t i = 0; i < r->nskipped; i++) {
    snprintf(num, sizeof num, "%s{\"index\":%zu,\"line\":%d,\"reason\":", i ? "," : "",
             r->skipped[i].index, r->skipped[i].line);
    inspect_out_puts(o, num);
    put_str(o, r->skipped[i].reason);
    inspect_out_puts(o, "}");
  }
  inspect_out_puts(o, "]}\n");
}

void explain_render_text(FILE *out, const struct config *cfg, const struct explain_query *q,
                         const struct explain_result *r) {
  const char *file = cfg->file ? cfg->file : "proxy.yaml";
  fprintf(out, "%s %s\n", q->method, q->url);
  if (r->error) {
    fprintf(out, "  ferry refuses it before routing: %d %s\n  no route matches\n", r->status,
            r->error);
    return;
  }
  for (size_t i = 0; i < r->nskipped; i++)
    fprintf(out, "  routes[%zu] (%s line %d) skipped: %s\n", r->skipped[i].index, file,
            r->skipped[i].line, r->skipped[i].reason);
  if (!r->matched) {
    fprintf(out, "  no route matches: ferry answers 404 \"no route\"\n");
    return;
  }
  char label[512];
  router_route_label(r->route, label, sizeof label);
  fprintf(out, "  routes[%zu] (%s line %d) matches: %s\n", r->route->index, file, r->route->line,
          label);
  switch (r->route->action) {
  case ACTION_RESPOND:
    fprintf(out, "  action: respond %d (answered by ferry, nothing is forwarded)\n", r->status);
    return;
  case ACTION_REDIRECT:
    fprintf(out, "  action: redirect %d to %s\n", r->status, r->location);
    return;
  case ACTION_UPSTREAM:
    break;
  }
  const struct cfg_upstream *up = &cfg->upstreams[r->route->upstream_index];
  fprintf(out, "  action: upstream %s (", up->name);
  for (size_t i = 0; i < up->nservers; i++)
    fprintf(out, "%s%s", i ? ", " : "", up->servers[i].address);
  fprintf(out, ")\n  forwarded as:\n    %s\n", r->request_line);
  for (size_t i = 0; i < r->nheaders; i++)
    fprintf(out, "    %s: %s\n", r->headers[i].name, r->headers[i].value);
}

/* --- the command -------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: ferry explain [-c FILE] [--json] METHOD URL [-H \"Name: value\"]... [--from IP]\n"
          "\n"
          "  Which route of FILE (default proxy.yaml) a request goes to, why each earlier route\n"
          "  did not match, and the request exactly as ferry would forward it. Nothing is sent.\n"
          "\n"
          "  METHOD     GET, POST, ... (as sent, in capitals)\n"
          "  URL        http://host/path?query, or /path?query with -H \"Host: name\"\n"
          "  -H LINE    a request header, e.g. -H \"X-Canary: 1\" (repeatable)\n"
          "  --from IP  the client address (X-Forwarded-For; default 127.0.0.1)\n"
          "  --json     one JSON object instead of text\n"
          "\n"
          "  exit 0: a route matches; 3: none does (ferry answers 404 or refuses the request);\n"
          "  1: usage or configuration error\n");
}

/* "Name: value" -> h (pointers into a copy the caller frees). */
static int parse_header_arg(const char *arg, struct explain_header *h) {
  const char *colon = strchr(arg, ':');
  if (!colon || colon == arg)
    return -1;
  for (const char *c = arg; c < colon; c++)
    if (*c == ' ' || *c == '\t' || (unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
      return -1;
  h->name = dup_slice(slice_make(arg, (size_t)(colon - arg)));
  const char *v = colon + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  size_t vl = strlen(v);
  while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
    vl--;
  h->value = dup_slice(slice_make(v, vl));
  return h->name && h->value ? 0 : -1;
}

int explain_main(int argc, char **argv) {
  const char *file = "proxy.yaml", *from = NULL, *pos[2] = {NULL, NULL};
  bool json = false;
  size_t npos = 0, nh = 0;
  int rc = 1;
  struct explain_header *hs = calloc((size_t)argc, sizeof *hs);
  if (!hs)
    return 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      rc = 0;
      goto out;
    } else if (strcmp(a, "--json") == 0) {
      json = true;
    } else if ((strcmp(a, "-c") == 0 || strcmp(a, "-H") == 0 || strcmp(a, "--from") == 0)) {
      if (i + 1 >= argc) {
        fprintf(stderr, "ferry explain: %s needs a value\n", a);
        usage(stderr);
        goto out;
      }
      const char *v = argv[++i];
      if (a[1] == 'c') {
        file = v;
      } else if (a[1] == '-') {
        from = v;
      } else if (parse_header_arg(v, &hs[nh]) != 0) {
        fprintf(stderr,
                "ferry explain: -H \"%s\": expected \"Name: value\" with a name of "
                "visible characters\n",
                v);
        free(hs[nh].name);
        free(hs[nh].value);
        goto out;
      } else {
        nh++;
      }
    } else if (a[0] == '-' && a[1] != '\0' && a[1] != '/') {
      fprintf(stderr, "ferry explain: unknown option \"%s\"\n", a);
      usage(stderr);
      goto out;
    } else if (npos < 2) {
      pos[npos++] = a;
    } else {
      fprintf(stderr, "ferry explain: unexpected argument \"%s\" (METHOD and URL come once)\n", a);
      usage(stderr);
      goto out;
    }
  }
  if (npos < 2) {
    fprintf(stderr, "ferry explain: expected METHOD and URL, e.g. ferry explain GET "
                    "http://api.example.com/users/7\n");
    usage(stderr);
    goto out;
  }
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  int lr = config_load_file(file, &cfg, &diag);
  for (size_t i = 0; i < diag.n; i++)
    if (lr != 0)
      fprintf(stderr, "%s\n", diag.msgs[i]);
  config_diag_free(&diag);
  if (lr != 0) {
    fprintf(stderr, "ferry explain: %s has errors: fix them (ferry -t -c %s) and try again\n", file,
            file);
    goto out;
  }
  struct router *router = router_new(cfg);
  if (!router) {
    fprintf(stderr, "ferry explain: out of memory compiling routes\n");
    config_free(cfg);
    goto out;
  }
  struct explain_query q = {pos[0], pos[1], hs, nh, from, NULL};
  struct explain_result res;
  char err[512];
  if (explain_run(cfg, router, &q, &res, err, sizeof err) != 0) {
    fprintf(stderr, "ferry explain: %s\n", err);
  } else {
    if (json) {
      struct inspect_out o = {0};
      explain_render_json(&o, &res);
      if (!o.oom)
        fwrite(o.p, 1, o.n, stdout);
      free(o.p);
    } else {
      explain_render_text(stdout, cfg, &q, &res);
    }
    rc = res.matched ? 0 : 3;
    explain_result_free(&res);
  }
  router_free(router);
  config_free(cfg);
out:
  for (size_t i = 0; i < nh; i++) {
    free(hs[i].name);
    free(hs[i].value);
  }
  free(hs);
  return rc;
}
