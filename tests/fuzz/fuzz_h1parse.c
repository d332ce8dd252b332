/* libFuzzer target: the fast head parser (src/h1parse.c) against the slow
 * path it stands in for.
 *
 * Input: byte 0 bit 0 picks a request (0) or a response (1) head; the rest
 * is the bytes. Whenever h1_parse_* accepts a head, the slow path must
 * accept the same bytes and read them the same way:
 *  - requests: http_head_scan finds the head's end at the same byte, and
 *    llhttp (ferry's settings, never lenient) completes the head there
 *    with the same method, target, version, fields (names and trimmed
 *    values, in order), Content-Length and keep-alive decision, and no
 *    chunked or upgrade flag;
 *  - responses: llhttp completes the head at the same byte with the same
 *    status, reason, version, fields, Content-Length and keep-alive.
 * When the fast parser declines, the header list must be left as it was. */
#include <assert.h>
#include <llhttp.h>
#include <stdint.h>
#include <string.h>

#include "ferry/h1parse.h"
#include "ferry/http_head.h"
#include "fuzz_common.h"

#define MAXH 64

struct slow {
  struct fz_arena arena;
  struct hdr hv[MAXH];
  struct hdr_list l;
  struct slice url, reason, name, value;
  bool head_done, overflow;
};

static struct slow *S(llhttp_t *p) {
  return p->data;
}
static int on_url(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(&S(p)->arena, &S(p)->url, a, n);
}
static int on_status(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(&S(p)->arena, &S(p)->reason, a, n);
}
static int on_field(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(&S(p)->arena, &S(p)->name, a, n);
}
static int on_value(llhttp_t *p, const char *a, size_t n) {
  return fz_extend(&S(p)->arena, &S(p)->value, a, n);
}
static int on_value_complete(llhttp_t *p) {
  struct slow *s = S(p);
  if (http_head_push(&s->l, s->name, s->value) != 0) {
    s->overflow = true;
    return -1;
  }
  s->name = s->value = (struct slice){NULL, 0};
  return 0;
}
static int on_headers_complete(llhttp_t *p) {
  S(p)->head_done = true;
  return HPE_PAUSED;
}
static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
};

static struct slow slow;
static struct hdr fast_hv[MAXH];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  bool response = data[0] & 1;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;

  struct hdr_list fl = {.v = fast_hv, .cap = MAXH};
  struct h1_head h;
  int r = response ? h1_parse_response(p, n, &fl, &h) : h1_parse_request(p, n, &fl, &h);
  if (r != H1_OK) {
    assert(fl.n == 0);
    return 0;
  }
  assert(h.len > 0 && h.len <= n);

  if (!response) {
    struct head_scan sc;
    http_head_scan_reset(&sc);
    size_t used = 0;
    int sr = http_head_scan(&sc, p, n, &used);
    assert(sr == 1 && used == h.len);
  }

  memset(&slow, 0, sizeof(slow));
  slow.l = (struct hdr_list){.v = slow.hv, .cap = MAXH};
  llhttp_t parser;
  llhttp_init(&parser, response ? HTTP_RESPONSE : HTTP_REQUEST, &settings);
  parser.data = &slow;
  llhttp_errno_t err = llhttp_execute(&parser, p, h.len);
  assert(err == HPE_PAUSED && slow.head_done);
  assert((size_t)(llhttp_get_error_pos(&parser) - p) == h.len);
  assert(parser.http_major == 1 && parser.http_minor == h.minor);
  if (response) {
    assert(parser.status_code == h.status);
    assert(slice_eq(slow.reason, h.reason));
  } else {
    assert(parser.method == h.method);
    assert(slice_eq(slow.url, h.target));
    assert(!parser.upgrade);
  }
  assert(!(parser.flags & F_CHUNKED));
  assert(((parser.flags & F_CONTENT_LENGTH) != 0) == h.has_length);
  if (h.has_length)
    assert(parser.content_length == h.length);
  assert(slow.l.n == fl.n);
  for (uint32_t i = 0; i < fl.n; i++) {
    assert(slice_eq(slow.l.v[i].name, fl.v[i].name));
    assert(slice_eq(slow.l.v[i].value, fl.v[i].value));
    assert(slow.l.v[i].tok == fl.v[i].tok);
  }
  /* Keep-alive is decided at the end of a message whose length is known. */
  if (!response || h.has_length || h.status == 204 || h.status == 304)
    assert((llhttp_should_keep_alive(&parser) != 0) == h1_keep_alive(&h));
  return 0;
}
