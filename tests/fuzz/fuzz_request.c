/* libFuzzer target: the request path as a chain of ferry's pure pieces.
 *
 * Input: bytes a client sends (one or more pipelined requests). Covered:
 * the strict head scanner (http_head_scan), llhttp in request mode with
 * ferry's settings (lenient only in versions, as src/session.c; pause at
 * the end of each head and message; chunk-extension bound), header lists
 * and hop-by-hop marking, ferry's request checks (src/request.c), the
 * strict chunk-framing validator (src/chunked.c), path normalisation,
 * routing against a fixed configuration, target rewriting, the upstream
 * head builder and body re-framing (Content-Length as is, chunked
 * re-chunked with trailers).
 * Not covered: sockets, timers and the session/exchange state machine.
 *
 * Property checked for every request ferry would forward: the bytes sent
 * upstream pass the same scanner and parse with llhttp as exactly one
 * message with the same method and body, so no accepted input can make
 * ferry emit something the upstream would frame differently. */
#include <assert.h>
#include <llhttp.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/chunked.h"
#include "ferry/config.h"
#include "ferry/http_head.h"
#include "ferry/http_head_build.h"
#include "ferry/request.h"
#include "ferry/router.h"
#include "fuzz_common.h"

#define MAXH 128
#define MAX_CHUNK_EXT 1024
#define OUT_CAP (1u << 20)

static const char CONFIG[] = "listeners: [{address: 127.0.0.1:1}]\n"
                             "upstreams:\n"
                             "  a: {servers: [{address: 127.0.0.1:2}]}\n"
                             "routes:\n"
                             "  - {host: api.example.com, path_prefix: /users, upstream: a,\n"
                             "     rewrite_prefix: /v2/users, set_host: users.internal,\n"
                             "     request_headers: {set: {X-Env: prod}, add: {X-R: u},\n"
                             "                       remove: [X-Debug]}}\n"
                             "  - {path_regex: '^/v[0-9]+/', methods: [GET, POST], upstream: a}\n"
                             "  - {host: '*.example.com', headers: {X-Canary: '1'}, upstream: a}\n"
                             "  - {path_prefix: /strip, rewrite_prefix: /, upstream: a}\n"
                             "  - {path: /ping, respond: {status: 200, body: pong}}\n"
                             "  - {upstream: a}\n";

static struct config *g_cfg;
static struct router *g_router;

/* Never resolve names while fuzzing. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  (void)node, (void)service, (void)hints, (void)res;
  return EAI_NONAME;
}

struct req {
  struct fz_arena *arena;
  struct hdr hv[MAXH];
  struct hdr_list l;
  struct slice url, name, value;
  uint32_t trailers_from;
  bool head_done, msg_done, failed;
  size_t ext_bytes;
  /* body as received and as re-framed upstream */
  char *body;
  size_t body_n;
};

static struct req *R(llhttp_t *p) {
  return p->data;
}

static int on_message_begin(llhttp_t *p) {
  struct req *r = R(p);
  r->l = (struct hdr_list){.v = r->hv, .cap = MAXH};
  r->url = r->name = r->value = (struct slice){NULL, 0};
  r->head_done = r->msg_done = false;
  r->trailers_from = 0;
  r->ext_bytes = 0;
  r->body_n = 0;
  return 0;
}
static int on_url(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(R(p)->arena, &R(p)->url, a, n);
}
static int on_field(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(R(p)->arena, &R(p)->name, a, n);
}
static int on_value(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(R(p)->arena, &R(p)->value, a, n);
}
static int on_value_complete(llhttp_t *p) {
  struct req *r = R(p);
  if (http_head_push(&r->l, r->name, r->value) != 0)
    return -1;
  r->name = r->value = (struct slice){NULL, 0};
  return 0;
}
static int on_headers_complete(llhttp_t *p) {
  struct req *r = R(p);
  r->head_done = true;
  r->trailers_from = r->l.n;
  http_head_mark_hop(&r->l);
  return HPE_PAUSED;
}
static int on_ext(llhttp_t *p, const char *a, size_t n) {
  (void)a;
  struct req *r = R(p);
  r->ext_bytes += n;
  return r->ext_bytes > MAX_CHUNK_EXT ? -1 : 0;
}
static int on_chunk_complete(llhttp_t *p) {
  R(p)->ext_bytes = 0;
  return 0;
}
static int on_body(llhttp_t *p, const char *a, size_t n) {
  struct req *r = R(p);
  if (r->body_n + n > OUT_CAP)
    return -1;
  memcpy(r->body + r->body_n, a, n);
  r->body_n += n;
  return 0;
}
static int on_message_complete(llhttp_t *p) {
  R(p)->msg_done = true;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_chunk_extension_name = on_ext,
    .on_chunk_extension_value = on_ext,
    .on_chunk_complete = on_chunk_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- the upstream's view ------------------------------------------------- */

struct up {
  char *body;
  size_t body_n;
  bool head, done;
  uint8_t method;
};
static int up_headers(llhttp_t *p) {
  struct up *u = p->data;
  u->head = true;
  u->method = p->method;
  return 0;
}
static int up_body(llhttp_t *p, const char *a, size_t n) {
  struct up *u = p->data;
  assert(u->body_n + n <= OUT_CAP);
  memcpy(u->body + u->body_n, a, n);
  u->body_n += n;
  return 0;
}
static int up_done(llhttp_t *p) {
  ((struct up *)p->data)->done = true;
  return HPE_PAUSED;
}
static const llhttp_settings_t up_settings = {
    .on_headers_complete = up_headers, .on_body = up_body, .on_message_complete = up_done};

static char *g_out, *g_body, *g_upbody;
static struct fz_arena *g_arena;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  struct config_diag d = {0};
  if (config_load_string("fuzz.yaml", CONFIG, sizeof CONFIG - 1, &g_cfg, &d) != 0) {
    for (size_t i = 0; i < d.n; i++)
      fprintf(stderr, "%s\n", d.msgs[i]);
    abort();
  }
  config_diag_free(&d);
  g_router = router_new(g_cfg);
  g_out = malloc(OUT_CAP * 3);
  g_body = malloc(OUT_CAP);
  g_upbody = malloc(OUT_CAP);
  g_arena = malloc(sizeof *g_arena);
  return 0;
}

/* Appends to the upstream byte stream. */
struct outbuf {
  char *p;
  size_t n, cap;
};
static void out_put(struct outbuf *o, const char *p, size_t n) {
  assert(o->n + n <= o->cap);
  memcpy(o->p + o->n, p, n);
  o->n += n;
}

/* Builds what ferry sends upstream for a routed request; returns false when
 * ferry would answer the request itself. */
static bool forward_head(struct req *r, llhttp_t *p, struct outbuf *o) {
  /* ferry's own checks, as exchange_start runs them */
  static char scratch[2 * FZ_ARENA + 2], tbuf[FZ_ARENA + 64];
  struct request_head rh = {.method = p->method,
                            .major = p->http_major,
                            .minor = p->http_minor,
                            .target = r->url,
                            .headers = &r->l,
                            .chunked = (p->flags & F_CHUNKED) != 0,
                            .has_length = (p->flags & F_CONTENT_LENGTH) != 0};
  struct request_verdict v;
  if (request_check(&rh, scratch, sizeof scratch, &v) != REQUEST_OK)
    return false;
  struct slice host = v.host, target = v.path, norm = v.norm;
  /* What the checks promise: a visible-ASCII target, a host[:port] Host,
   * a version served as 1.0 or 1.1. */
  assert(request_check_target_bytes(r->url) == REQUEST_OK);
  assert(request_check_host(host, true) == REQUEST_OK);
  assert(v.minor == 0 || v.minor == 1);
  struct route_query q = {router_host_strip_port(host), norm, p->method, &r->l};
  const struct cfg_route *rt = router_match(g_router, &q);
  if (!rt || rt->action != ACTION_UPSTREAM)
    return false;
  struct slice send;
  if (router_target(rt, target, norm, tbuf, sizeof tbuf, &send) != 0)
    return false;
  bool chunked = (p->flags & F_CHUNKED) != 0;
  bool has_len = (p->flags & F_CONTENT_LENGTH) != 0;
  assert(!(chunked && has_len)); /* llhttp rejects both */
  struct fwd_request fr = {
      .method = slice_cstr(llhttp_method_name((llhttp_method_t)p->method)),
      .target = send,
      .headers = &r->l,
      .host = rt->set_host ? slice_cstr(rt->set_host) : (host.n ? host : SLICE_LIT("up")),
      .client_ip = SLICE_LIT("127.0.0.1"),
      .proto = SLICE_LIT("http"),
      .fwd_host = host,
      .request_id = SLICE_LIT("0123456789abcdef0123"),
      .client_minor = v.minor,
      .framing = chunked   ? FRAMING_CHUNKED
                 : has_len ? FRAMING_LENGTH
                           : FRAMING_NONE,
      .content_length = p->content_length,
      .ops = &rt->request_headers,
  };
  size_t need = http_head_build_request(NULL, 0, &fr);
  if (o->n + need > o->cap)
    return false;
  assert(http_head_build_request(o->p + o->n, need, &fr) == need);
  /* The head ferry writes passes ferry's own strictness. */
  struct head_scan sc = {0};
  size_t used = 0;
  int s = http_head_scan(&sc, o->p + o->n, need, &used);
  if (s != 1 || used != need) {
    fprintf(stderr, "upstream head rejected by the scanner (%d): %.*s\n", s, (int)need,
            o->p + o->n);
    abort();
  }
  o->n += need;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  g_arena->used = 0;
  struct req r = {.arena = g_arena, .body = g_body};
  llhttp_t p;
  llhttp_init(&p, HTTP_REQUEST, &settings);
  p.lenient_flags |= LENIENT_VERSION; /* as src/session.c: request_check judges versions */
  p.data = &r;
  struct outbuf o = {g_out, 0, OUT_CAP * 3};
  size_t off = 0;
  unsigned forwarded = 0;

  for (int msg = 0; msg < 8 && off < size; msg++) {
    /* Head: scanner first, then llhttp up to the end of the head. */
    struct head_scan sc = {0};
    size_t used = 0;
    if (http_head_scan(&sc, in + off, size - off, &used) != 1)
      break;
    llhttp_errno_t e = llhttp_execute(&p, in + off, size - off);
    if (e != HPE_PAUSED || !r.head_done)
      break;
    size_t consumed = (size_t)(llhttp_get_error_pos(&p) - (in + off));
    assert(consumed == used); /* scanner and parser agree where the head ends */
    off += consumed;
    llhttp_resume(&p);
    size_t out_start = o.n;
    if (!forward_head(&r, &p, &o))
      break;
    bool chunked = (p.flags & F_CHUNKED) != 0;
    /* Body and message end: a chunked body passes the strict validator
     * first, and llhttp must end it exactly where the validator does
     * (src/session.c refuses the request otherwise). */
    size_t feed = size - off;
    int ck = CHUNKED_MORE;
    if (chunked) {
      struct chunked_check cc;
      chunked_check_begin(&cc, true);
      ck = chunked_check(&cc, in + off, size - off, &feed);
      if (ck < 0)
        break; /* 400 */
    }
    e = llhttp_execute(&p, in + off, feed);
    bool ended = e == HPE_PAUSED && r.msg_done;
    if (chunked &&
        (ck == CHUNKED_DONE) != (ended && (size_t)(llhttp_get_error_pos(&p) - (in + off)) == feed))
      break; /* 400: framing read two ways */
    if (!ended) {
      if (e == HPE_OK)
        (void)0; /* the body is still arriving: forward what came */
      break;
    }
    off += (size_t)(llhttp_get_error_pos(&p) - (in + off));
    llhttp_resume(&p);
    if (chunked) {
      if (r.body_n) {
        char hx[24];
        int k = snprintf(hx, sizeof hx, "%zx\r\n", r.body_n);
        out_put(&o, hx, (size_t)k);
        out_put(&o, r.body, r.body_n);
        out_put(&o, "\r\n", 2);
      }
      size_t need = http_head_build_last_chunk(NULL, 0, &r.l, r.trailers_from);
      assert(o.n + need <= o.cap);
      http_head_build_last_chunk(o.p + o.n, need, &r.l, r.trailers_from);
      o.n += need;
    } else {
      out_put(&o, r.body, r.body_n);
    }
    forwarded++;

    /* The upstream sees exactly one message with the same body. */
    struct up u = {.body = g_upbody};
    llhttp_t up;
    llhttp_init(&up, HTTP_REQUEST, &up_settings);
    up.data = &u;
    e = llhttp_execute(&up, o.p + out_start, o.n - out_start);
    if (e != HPE_PAUSED || !u.done ||
        (size_t)(llhttp_get_error_pos(&up) - (o.p + out_start)) != o.n - out_start ||
        u.method != p.method || u.body_n != r.body_n || memcmp(u.body, r.body, r.body_n) != 0) {
      fprintf(stderr, "upstream framing differs: %s (%s)\n", llhttp_errno_name(e),
              llhttp_get_error_reason(&up) ? llhttp_get_error_reason(&up) : "");
      abort();
    }
    if (!llhttp_should_keep_alive(&p))
      break;
  }
  (void)forwarded;
  return 0;
}
