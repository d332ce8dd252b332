/* h1parse: the one-pass parser for plain HTTP/1.x heads (see the header
 * for what it accepts; everything else is the caller's slow path). */
#include "ferry/h1parse.h"

#include <llhttp.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static bool ieq_lit(const char *p, size_t n, const char *lit, size_t litn) {
  if (n != litn)
    return false;
  for (size_t i = 0; i < n; i++)
    if (ascii_lower(p[i]) != lit[i])
      return false;
  return true;
}

/* Index of the first byte at or after i that is not SP or visible ASCII
 * (0x20..0x7e), or n: the end of a field value, or a byte to look at. */
static inline size_t skip_text(const char *p, size_t n, size_t i) {
#if defined(__SSE2__)
  const __m128i lo = _mm_set1_epi8(0x1f), hi = _mm_set1_epi8(0x7f);
  while (i + 16 <= n) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
    /* Signed compares: bytes >= 0x80 are negative and fail the first. */
    __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi));
    unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
    if (bad)
      return i + (size_t)__builtin_ctz(bad);
    i += 16;
  }
#endif
  while (i < n && (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f)
    i++;
  return i;
}

/* Index of the first byte at or after i that is not a tchar: the end of
 * a field name. Letters, digits and '-' (every name seen in practice) are
 * skipped 16 at a time; any other byte is judged by the table. */
static inline size_t skip_name(const char *p, size_t n, size_t i) {
#if defined(__SSE2__)
  const __m128i bit5 = _mm_set1_epi8(0x20), a1 = _mm_set1_epi8('a' - 1),
                z1 = _mm_set1_epi8('z' + 1), d0 = _mm_set1_epi8('0' - 1),
                d9 = _mm_set1_epi8('9' + 1), dash = _mm_set1_epi8('-');
  while (i + 16 <= n) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
    __m128i lc = _mm_or_si128(x, bit5); /* signed: bytes >= 0x80 fail every range */
    __m128i ok =
        _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi8(lc, a1), _mm_cmplt_epi8(lc, z1)),
                     _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi8(x, d0), _mm_cmplt_epi8(x, d9)),
                                  _mm_cmpeq_epi8(x, dash)));
    unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
    if (bad) {
      i += (size_t)__builtin_ctz(bad);
      break;
    }
    i += 16;
  }
#endif
  while (i < n && (http_char[(unsigned char)p[i]] & HC_TCHAR))
    i++;
  return i;
}

/* Content-Length: 1 to 15 digits (no sign, no list, no whitespace inside). */
static bool parse_length(struct slice v, uint64_t *out) {
  if (v.n == 0 || v.n > 15)
    return false;
  uint64_t x = 0;
  for (size_t i = 0; i < v.n; i++) {
    unsigned d = (unsigned)(unsigned char)v.p[i] - '0';
    if (d > 9)
      return false;
    x = x * 10 + d;
  }
  *out = x;
  return true;
}

/* The field lines from p[i] through the empty line. */
static int parse_fields(const char *p, size_t n, size_t i, struct hdr_list *l, struct h1_head *h) {
  bool seen_connection = false;
  uint32_t n0 = l->n;
  for (;;) {
    if (i + 2 > n)
      return H1_SLOW;
    if (p[i] == '\r') {
      if (p[i + 1] != '\n')
        return H1_SLOW;
      h->len = i + 2;
      if (l->toks_n == n0)
        l->toks_n = l->n; /* toks was kept (struct hdr_list) */
      return H1_OK;
    }
    size_t ns = i;
    i = skip_name(p, n, i);
    if (i == ns || i >= n || p[i] != ':')
      return H1_SLOW;
    size_t ne = i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
      i++;
    size_t vs = i;
    for (;;) {
      i = skip_text(p, n, i);
      if (i < n && p[i] == '\t') {
        i++;
        continue;
      }
      break;
    }
    if (i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n')
      return H1_SLOW;
    size_t ve = i;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
      ve--;
    bool trailing_ows = ve != i;
    i += 2;
    if (l->n >= l->cap)
      return H1_SLOW; /* the slow path answers 431 */
    struct hdr *f = &l->v[l->n++];
    f->name = slice_make(p + ns, ne - ns);
    f->value = slice_make(p + vs, ve - vs);
    f->tok = (uint8_t)http_head_token(f->name.p, f->name.n);
    f->flags = 0;
    l->toks |= 1u << f->tok;
    switch (f->tok) {
    case HDR_CONTENT_LENGTH:
      /* llhttp refuses whitespace after the digits but for SP; take none */
      if (h->has_length || trailing_ows || !parse_length(f->value, &h->length))
        return H1_SLOW;
      h->has_length = true;
      break;
    case HDR_CONNECTION:
      if (seen_connection || trailing_ows)
        return H1_SLOW;
      seen_connection = true;
      if (ieq_lit(f->value.p, f->value.n, "close", 5))
        h->conn_close = true;
      else if (ieq_lit(f->value.p, f->value.n, "keep-alive", 10))
        h->conn_keep_alive = true;
      else
        return H1_SLOW;
      break;
    case HDR_TRANSFER_ENCODING:
    case HDR_UPGRADE:
    case HDR_PROXY_CONNECTION:
      return H1_SLOW;
    default:
      break;
    }
  }
}

/* "HTTP/1.0" or "HTTP/1.1" at p[i]; the minor version, or -1. */
static int parse_version(const char *p, size_t n, size_t i) {
  if (i + 8 > n || memcmp(p + i, "HTTP/1.", 7) != 0)
    return -1;
  if (p[i + 7] == '0')
    return 0;
  return p[i + 7] == '1' ? 1 : -1;
}

static void head_clear(struct h1_head *h) {
  memset(h, 0, sizeof(*h));
}

int h1_parse_request(const char *p, size_t n, struct hdr_list *hdrs, struct h1_head *h) {
  head_clear(h);
  if (n < 16)
    return H1_SLOW;
  size_t i;
  switch (p[0]) {
  case 'G':
    if (memcmp(p, "GET ", 4) != 0)
      return H1_SLOW;
    h->method = HTTP_GET;
    i = 4;
    break;
  case 'H':
    if (memcmp(p, "HEAD ", 5) != 0)
      return H1_SLOW;
    h->method = HTTP_HEAD;
    i = 5;
    break;
  case 'P':
    if (memcmp(p, "POST ", 5) == 0) {
      h->method = HTTP_POST;
      i = 5;
    } else if (memcmp(p, "PUT ", 4) == 0) {
      h->method = HTTP_PUT;
      i = 4;
    } else if (memcmp(p, "PATCH ", 6) == 0) {
      h->method = HTTP_PATCH;
      i = 6;
    } else {
      return H1_SLOW;
    }
    break;
  case 'D':
    if (memcmp(p, "DELETE ", 7) != 0)
      return H1_SLOW;
    h->method = HTTP_DELETE;
    i = 7;
    break;
  case 'O':
    if (n < 8 || memcmp(p, "OPTIONS ", 8) != 0)
      return H1_SLOW;
    h->method = HTTP_OPTIONS;
    i = 8;
    break;
  default:
    return H1_SLOW;
  }
  size_t ts = i;
  if (p[i] != '/')
    return H1_SLOW; /* absolute-form, asterisk-form: the slow path */
  while (i < n && (http_char[(unsigned char)p[i]] & HC_TARGET))
    i++;
  if (i >= n || p[i] != ' ')
    return H1_SLOW;
  h->target = slice_make(p + ts, i - ts);
  int minor = parse_version(p, n, i + 1);
  i += 9;
  if (minor < 0 || i + 2 > n || p[i] != '\r' || p[i + 1] != '\n')
    return H1_SLOW;
  h->minor = (uint8_t)minor;
  struct hdr_list saved = *hdrs;
  if (parse_fields(p, n, i + 2, hdrs, h) != H1_OK) {
    *hdrs = saved;
    return H1_SLOW;
  }
  return H1_OK;
}

int h1_parse_response(const char *p, size_t n, struct hdr_list *hdrs, struct h1_head *h) {
  head_clear(h);
  int minor = parse_version(p, n, 0);
  /* "HTTP/1.x 200" then CRLF or a space and a reason */
  if (minor < 0 || n < 14 || p[8] != ' ')
    return H1_SLOW;
  unsigned d0 = (unsigned)(unsigned char)p[9] - '0', d1 = (unsigned)(unsigned char)p[10] - '0',
           d2 = (unsigned)(unsigned char)p[11] - '0';
  if (d0 < 1 || d0 > 5 || d1 > 9 || d2 > 9)
    return H1_SLOW;
  h->status = (int)(d0 * 100 + d1 * 10 + d2);
  h->minor = (uint8_t)minor;
  size_t i = 12;
  if (p[i] == ' ') {
    size_t rs = ++i;
    while (i < n && ((unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f))
      i++;
    h->reason = slice_make(p + rs, i - rs);
  }
  if (i + 2 > n || p[i] != '\r' || p[i + 1] != '\n')
    return H1_SLOW;
  struct hdr_list saved = *hdrs;
  if (parse_fields(p, n, i + 2, hdrs, h) != H1_OK) {
    *hdrs = saved;
    return H1_SLOW;
  }
  return H1_OK;
}
