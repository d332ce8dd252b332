/* libFuzzer target: the response path as a chain of ferry's pure pieces.
 *
 * Input: byte 0 picks the client (bit 0: HTTP/1.0 or 1.1; bit 1: the
 * request was HEAD), the rest is what the upstream sends. Covered: llhttp
 * in response mode with ferry's settings (never lenient), interim 1xx
 * responses (relayed to HTTP/1.1 clients only), header lists, hop-by-hop
 * marking, the Transfer-Encoding check, the framing decision
 * (http_head_response_framing), the response head builder with route
 * response_headers operations, body re-framing and trailers.
 * Not covered: sockets, timers, backpressure.
 *
 * Property: what the client receives parses with llhttp as the same
 * status with the same body (none for HEAD/204/304), and a chunked or
 * length-framed response ends exactly where ferry says it does. */
#include <assert.h>
#include <llhttp.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/http_head.h"
#include "ferry/http_head_build.h"
#include "fuzz_common.h"

#define MAXH 128
#define OUT_CAP (1u << 20)

struct resp {
  struct fz_arena *arena;
  struct hdr hv[MAXH];
  struct hdr_list l;
  struct slice reason, name, value;
  uint32_t trailers_from;
  bool head_request;
  int minor;
  bool head_done, done, interim;
  enum body_framing framing;
  char *body;
  size_t body_n;
  int status;
  uint64_t content_length; /* at the end of the head (llhttp counts it down) */
};

static struct resp *R(llhttp_t *p) {
  return p->data;
}
static int on_message_begin(llhttp_t *p) {
  struct resp *r = R(p);
  r->l = (struct hdr_list){.v = r->hv, .cap = MAXH};
  r->reason = r->name = r->value = (struct slice){NULL, 0};
  r->head_done = r->done = r->interim = false;
  r->body_n = 0;
  return 0;
}
static int on_status(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(R(p)->arena, &R(p)->reason, a, n);
}
static int on_field(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(R(p)->arena, &R(p)->name, a, n);
}
static int on_value(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(R(p)->arena, &R(p)->value, a, n);
}
static int on_value_complete(llhttp_t *p) {
  struct resp *r = R(p);
  if (r->name.n == 0)
    return -1; /* ferry answers 502 for an empty field name */
  if (http_head_push(&r->l, r->name, r->value) != 0)
    return -1;
  r->name = r->value = (struct slice){NULL, 0};
  return 0;
}
static int on_headers_complete(llhttp_t *p) {
  struct resp *r = R(p);
  r->head_done = true;
  r->status = p->status_code;
  r->content_length = p->content_length;
  r->trailers_from = r->l.n;
  if (p->status_code < 100 || p->status_code > 599)
    return -1; /* ferry answers 502: not a three-digit status RFC 9110 defines */
  http_head_mark_hop(&r->l);
  r->interim = p->status_code >= 100 && p->status_code < 200;
  if (r->interim)
    return 1; /* 1xx never has a body, whatever it declares (llhttp would read one) */
  r->framing =
      http_head_response_framing(r->head_request, p->status_code, (p->flags & F_CHUNKED) != 0,
                                 (p->flags & F_CONTENT_LENGTH) != 0, r->minor);
  /* No body for HEAD, 204 and 304, whatever the head declares (llhttp
   * would read a chunked body after a 304). */
  return r->framing == FRAMING_NONE || r->head_request ? 1 : 0;
}
static int on_body(llhttp_t *p, const char *a, size_t n) {
  struct resp *r = R(p);
  if (r->body_n + n > OUT_CAP)
    return -1;
  memcpy(r->body + r->body_n, a, n);
  r->body_n += n;
  return 0;
}
static int on_message_complete(llhttp_t *p) {
  R(p)->done = true;
  return HPE_PAUSED;
}
static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The client's view. */
struct cl {
  char *body;
  size_t body_n;
  bool head_request, done;
  int status;
};
static int cl_headers(llhttp_t *p) {
  struct cl *c = p->data;
  c->status = p->status_code;
  if (p->status_code >= 100 && p->status_code < 200)
    return 0;
  return c->head_request || p->status_code == 204 || p->status_code == 304 ? 1 : 0;
}
static int cl_body(llhttp_t *p, const char *a, size_t n) {
  struct cl *c = p->data;
  assert(c->body_n + n <= OUT_CAP);
  memcpy(c->body + c->body_n, a, n);
  c->body_n += n;
  return 0;
}
static int cl_done(llhttp_t *p) {
  struct cl *c = p->data;
  if (c->status >= 200)
    c->done = true;
  return 0;
}
static const llhttp_settings_t cl_settings = {
    .on_headers_complete = cl_headers, .on_body = cl_body, .on_message_complete = cl_done};

static char *g_out, *g_body, *g_clbody;
static struct fz_arena *g_arena;

static const struct cfg_kv set_kv[] = {{"X-Frame-Options", "DENY"}};
static const struct cfg_kv add_kv[] = {{"X-Added", "1"}, {"Content-Length", "9"}};
static char *rm[] = {"Server"};
static const struct cfg_header_ops ops = {
    (struct cfg_kv *)set_kv, 1, (struct cfg_kv *)add_kv, 2, rm, 1};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  g_out = malloc(OUT_CAP * 3);
  g_body = malloc(OUT_CAP);
  g_clbody = malloc(OUT_CAP);
  g_arena = malloc(sizeof *g_arena);
  return 0;
}

struct outbuf {
  char *p;
  size_t n, cap;
};
static void out_put(struct outbuf *o, const char *p, size_t n) {
  assert(o->n + n <= o->cap);
  memcpy(o->p + o->n, p, n);
  o->n += n;
}
static void out_head(struct outbuf *o, const struct fwd_response *fr) {
  size_t need = http_head_build_response(NULL, 0, fr);
  assert(o->n + need <= o->cap);
  assert(http_head_build_response(o->p + o->n, need, fr) == need);
  o->n += need;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  g_arena->used = 0;
  struct resp r = {.arena = g_arena, .body = g_body};
  r.minor = (data[0] & 1) ? 1 : 0;
  r.head_request = (data[0] & 2) != 0;
  const char *in = (const char *)data + 1;
  size_t n = size - 1, off = 0;
  llhttp_t p;
  llhttp_init(&p, HTTP_RESPONSE, &settings);
  p.data = &r;
  struct outbuf o = {g_out, 0, OUT_CAP * 3};
  bool eof = false;

  /* Interim responses, then the final head. */
  for (;;) {
    llhttp_errno_t e = llhttp_execute(&p, in + off, n - off);
    if (e == HPE_OK) {
      if (!r.head_done || r.framing != FRAMING_CLOSE || r.interim)
        return 0; /* truncated: ferry would answer 502 or cut the response */
      off = n;
      /* close-delimited body: EOF ends it */
      e = llhttp_finish(&p);
      if (e != HPE_OK || !r.done)
        return 0;
      eof = true;
      break;
    }
    if (e != HPE_PAUSED)
      return 0; /* 502 */
    off += (size_t)(llhttp_get_error_pos(&p) - (in + off));
    llhttp_resume(&p);
    if (r.interim) {
      if (r.status == 101)
        return 0; /* no upgrade was asked for: ferry answers 502 */
      if (r.minor >= 1) {
        struct fwd_response fr = {.status = r.status,
                                  .reason = r.reason,
                                  .headers = &r.l,
                                  .framing = FRAMING_NONE,
                                  .client_minor = 1,
                                  .keep_alive = true};
        out_head(&o, &fr);
      }
      g_arena->used = 0;
      continue;
    }
    break;
  }
  if (!r.done)
    return 0;
  if (http_head_check_transfer_encoding(&r.l) != 0)
    return 0; /* 502: unknown response transfer coding */
  struct hdr_list head_fields = {.v = r.l.v, .n = r.trailers_from, .cap = r.l.cap};
  struct fwd_response fr = {
      .status = r.status,
      .reason = r.reason,
      .headers = &head_fields,
      .framing = r.framing,
      .content_length = r.content_length,
      .request_id = SLICE_LIT("rid"),
      .client_minor = r.minor,
      .keep_alive = r.framing != FRAMING_CLOSE,
      .ops = &ops,
  };
  (void)eof;
  size_t head_start = o.n;
  (void)head_start;
  out_head(&o, &fr);
  if (r.framing == FRAMING_CHUNKED) {
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
  } else if (r.framing == FRAMING_LENGTH || r.framing == FRAMING_CLOSE) {
    if (!r.head_request)
      out_put(&o, r.body, r.body_n);
  }

  /* The client's parser agrees. */
  struct cl c = {.body = g_clbody, .head_request = r.head_request};
  llhttp_t cp;
  llhttp_init(&cp, HTTP_RESPONSE, &cl_settings);
  cp.data = &c;
  llhttp_errno_t e = llhttp_execute(&cp, o.p, o.n);
  if (e == HPE_OK && r.framing == FRAMING_CLOSE)
    e = llhttp_finish(&cp);
  bool no_body = r.head_request || r.status == 204 || r.status == 304;
  if (e != HPE_OK || !c.done || c.status != r.status || c.body_n != (no_body ? 0 : r.body_n) ||
      (!no_body && memcmp(c.body, r.body, r.body_n) != 0)) {
    fprintf(stderr, "client view differs: %s (%s) status %d/%d body %zu/%zu\n%.*s\n",
            llhttp_errno_name(e), llhttp_get_error_reason(&cp) ? llhttp_get_error_reason(&cp) : "",
            c.status, r.status, c.body_n, r.body_n, (int)(o.n < 2000 ? o.n : 2000), o.p);
    abort();
  }
  return 0;
}
