/* http_head: header lists over caller storage and their lookups, interned
 * header tokens, hop-by-hop marking, the names route operations may not
 * write and the fields a trailer may carry, the strict request-head
 * scanner, Transfer-Encoding and response-framing decisions, status reason
 * phrases, and the byte-class table (http_char) every scanner in ferry
 * shares.
 *
 * Owns no memory: every function works on slices supplied by the caller
 * and keeps nothing after it returns. Must not touch sockets, the event
 * loop, or allocate, and writes no head bytes: serialising is
 * http_head_build's, which asks this module what each header is and
 * whether it may be sent. */
#include "ferry/http_head.h"

#include <stdint.h>
#include <string.h>

/* ---- byte classes ---------------------------------------------------- */

const uint8_t http_char[256] = {
    ['!'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['"'] = HC_VCHAR,
    ['#'] = HC_TCHAR | HC_VCHAR,
    ['$'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['%'] = HC_TCHAR | HC_TARGET | HC_VCHAR,
    ['&'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['\''] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['('] = HC_TARGET | HC_HOST | HC_VCHAR,
    [')'] = HC_TARGET | HC_HOST | HC_VCHAR,
    ['*'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['+'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    [','] = HC_TARGET | HC_VCHAR,
    ['-'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['.'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['/'] = HC_TARGET | HC_VCHAR,
    ['0'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['1'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['2'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['3'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['4'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['5'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['6'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['7'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['8'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['9'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    [':'] = HC_TARGET | HC_VCHAR,
    [';'] = HC_TARGET | HC_HOST | HC_VCHAR,
    ['<'] = HC_VCHAR,
    ['='] = HC_TARGET | HC_HOST | HC_VCHAR,
    ['>'] = HC_VCHAR,
    ['?'] = HC_TARGET | HC_VCHAR,
    ['@'] = HC_TARGET | HC_VCHAR,
    ['A'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['B'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['C'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['D'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['E'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['F'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['G'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['H'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['I'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['J'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['K'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['L'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['M'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['N'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['O'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['P'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['Q'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['R'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['S'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['T'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['U'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['V'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['W'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['X'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['Y'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['Z'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['['] = HC_VCHAR,
    ['\\'] = HC_VCHAR,
    [']'] = HC_VCHAR,
    ['^'] = HC_TCHAR | HC_VCHAR,
    ['_'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['`'] = HC_TCHAR | HC_VCHAR,
    ['a'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['b'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['c'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['d'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['e'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['f'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['g'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['h'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['i'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['j'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['k'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['l'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['m'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['n'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['o'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['p'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['q'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['r'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['s'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['t'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['u'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['v'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['w'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['x'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['y'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['z'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
    ['{'] = HC_VCHAR,
    ['|'] = HC_TCHAR | HC_VCHAR,
    ['}'] = HC_VCHAR,
    ['~'] = HC_TCHAR | HC_TARGET | HC_HOST | HC_VCHAR,
};

/* ---- tokens ---------------------------------------------------------- */

/* Word-at-a-time case-insensitive compares against a literal made only of
 * lower-case letters, digits and '-': bit 0x20 is forced on in the bytes
 * where the literal has a letter (its bytes >= 0x40), so an upper-case
 * letter matches its lower-case form and nothing else changes. */
static inline uint64_t ld64(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline uint32_t ld32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static inline uint16_t ld16(const char *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
static inline bool ieq8(const char *a, const char *lit) {
  uint64_t l = ld64(lit);
  return (ld64(a) | (l & 0x4040404040404040ull) >> 1) == l;
}
static inline bool ieq4(const char *a, const char *lit) {
  uint32_t l = ld32(lit);
  return (ld32(a) | (l & 0x40404040u) >> 1) == l;
}
static inline bool ieq2(const char *a, const char *lit) {
  uint16_t l = ld16(lit);
  return (uint16_t)(ld16(a) | (l & 0x4040u) >> 1) == l;
}

/* True when name[0..n) equals lit case-insensitively; lit holds n bytes
 * of lower-case letters, digits and '-' only. The caller has already
 * checked that the lengths agree. Reads name[0..n) and lit[0..n) only. */
static inline bool lit_ieq(const char *name, const char *lit, size_t n) {
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      if (!ieq8(name + i, lit + i))
        return false;
    return i == n || ieq8(name + n - 8, lit + n - 8);
  }
  if (n >= 4)
    return ieq4(name, lit) && ieq4(name + n - 4, lit + n - 4);
  if (n >= 2)
    return ieq2(name, lit) && ieq2(name + n - 2, lit + n - 2);
  return n == 0 || ascii_lower(name[0]) == lit[0];
}

#define TOK_IS(lit) lit_ieq(name, lit, sizeof(lit) - 1)

enum hdr_token http_head_token(const char *name, size_t len) {
  switch (len) {
  case 2:
    return TOK_IS("te") ? HDR_TE : HDR_OTHER;
  case 3:
    return TOK_IS("via") ? HDR_VIA : HDR_OTHER;
  case 4: /* both on every request or response: one compare each */
    if ((name[0] | 0x20) == 'h')
      return TOK_IS("host") ? HDR_HOST : HDR_OTHER;
    return TOK_IS("date") ? HDR_DATE : HDR_OTHER;
  case 6:
    return TOK_IS("expect") ? HDR_EXPECT : HDR_OTHER;
  case 7:
    if (TOK_IS("upgrade"))
      return HDR_UPGRADE;
    return TOK_IS("trailer") ? HDR_TRAILER : HDR_OTHER;
  case 10:
    if (TOK_IS("connection"))
      return HDR_CONNECTION;
    return TOK_IS("keep-alive") ? HDR_KEEP_ALIVE : HDR_OTHER;
  case 11:
    return TOK_IS("traceparent") ? HDR_TRACEPARENT : HDR_OTHER;
  case 12:
    return TOK_IS("x-request-id") ? HDR_X_REQUEST_ID : HDR_OTHER;
  case 14:
    return TOK_IS("content-length") ? HDR_CONTENT_LENGTH : HDR_OTHER;
  case 15:
    return TOK_IS("x-forwarded-for") ? HDR_X_FORWARDED_FOR : HDR_OTHER;
  case 16:
    if (TOK_IS("x-forwarded-host"))
      return HDR_X_FORWARDED_HOST;
    return TOK_IS("proxy-connection") ? HDR_PROXY_CONNECTION : HDR_OTHER;
  case 17:
    if (TOK_IS("transfer-encoding"))
      return HDR_TRANSFER_ENCODING;
    return TOK_IS("x-forwarded-proto") ? HDR_X_FORWARDED_PROTO : HDR_OTHER;
  default:
    return HDR_OTHER;
  }
}

#undef TOK_IS

/* The fixed hop-by-hop set of SPEC §3. */
static bool tok_is_fixed_hop(unsigned tok) {
  switch (tok) {
  case HDR_CONNECTION:
  case HDR_KEEP_ALIVE:
  case HDR_PROXY_CONNECTION:
  case HDR_TE:
  case HDR_TRAILER:
  case HDR_TRANSFER_ENCODING:
  case HDR_UPGRADE:
    return true;
  default:
    return false;
  }
}

/* Names no route header operation may add, set or remove: hop-by-hop and
 * framing headers. Letting configuration write them would desynchronise the
 * framing ferry actually uses from what the peer is told. */
bool http_head_token_protected(unsigned tok) {
  return tok_is_fixed_hop(tok) || tok == HDR_CONTENT_LENGTH;
}

/* ---- lists ----------------------------------------------------------- */

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

static struct slice trim_ows(struct slice s) {
  while (s.n > 0 && is_ows(s.p[0])) {
    s.p++;
    s.n--;
  }
  while (s.n > 0 && is_ows(s.p[s.n - 1]))
    s.n--;
  return s;
}

int http_head_push(struct hdr_list *l, struct slice name, struct slice value) {
  if (l->n >= l->cap)
    return -1;
  bool summed = l->toks_n == l->n;
  struct hdr *h = &l->v[l->n++];
  h->name = name;
  h->value = trim_ows(value);
  h->tok = (uint8_t)http_head_token(name.p, name.n);
  h->flags = 0;
  if (summed) {
    l->toks |= 1u << h->tok;
    l->toks_n = l->n;
  }
  return 0;
}

/* Iterates the comma-separated list in a header value: sets *tok to the
 * next non-empty element with OWS trimmed and advances *rest past it.
 * Returns false when no element is left. */
static bool next_list_token(struct slice *rest, struct slice *tok) {
  while (rest->n > 0) {
    const char *comma = memchr(rest->p, ',', rest->n);
    size_t len = comma ? (size_t)(comma - rest->p) : rest->n;
    *tok = trim_ows(slice_make(rest->p, len));
    rest->p += comma ? len + 1 : len;
    rest->n -= comma ? len + 1 : len;
    if (tok->n > 0)
      return true;
  }
  return false;
}

#define FIXED_HOP_TOKS                                                                             \
  (1u << HDR_CONNECTION | 1u << HDR_KEEP_ALIVE | 1u << HDR_PROXY_CONNECTION | 1u << HDR_TE |       \
   1u << HDR_TRAILER | 1u << HDR_TRANSFER_ENCODING | 1u << HDR_UPGRADE)

void http_head_mark_hop(struct hdr_list *l) {
  bool summed = l->toks_n == l->n;
  if (summed && !(l->toks & FIXED_HOP_TOKS))
    return; /* no fixed hop-by-hop header, so no Connection header either */
  for (uint32_t i = 0; i < l->n; i++)
    if (tok_is_fixed_hop(l->v[i].tok))
      l->v[i].flags |= HDRF_HOP;
  if (!http_head_may_have(l, HDR_CONNECTION))
    return;

  for (uint32_t i = 0; i < l->n; i++) {
    if (l->v[i].tok != HDR_CONNECTION)
      continue;
    struct slice rest = l->v[i].value, opt;
    while (next_list_token(&rest, &opt)) {
      /* A fixed hop-by-hop name ("keep-alive", "close" is not one) is
       * marked already; the name of another well-known header is a
       * token compare. */
      unsigned tok = http_head_token(opt.p, opt.n);
      if (tok_is_fixed_hop(tok))
        continue;
      if (tok != HDR_OTHER && !http_head_may_have(l, tok))
        continue;
      for (uint32_t j = 0; j < l->n; j++)
        if (tok != HDR_OTHER ? l->v[j].tok == tok : slice_ieq(l->v[j].name, opt))
          l->v[j].flags |= HDRF_HOP;
    }
  }
}

const struct hdr *http_head_find(const struct hdr_list *l, struct slice name) {
  if (!l)
    return NULL;
  for (uint32_t i = 0; i < l->n; i++)
    if (slice_ieq(l->v[i].name, name))
      return &l->v[i];
  return NULL;
}

const struct hdr *http_head_find_tok(const struct hdr_list *l, enum hdr_token tok) {
  if (!l || !http_head_may_have(l, tok))
    return NULL;
  for (uint32_t i = 0; i < l->n; i++)
    if (l->v[i].tok == tok)
      return &l->v[i];
  return NULL;
}

/* True when a Connection header among l->v[0..upto) names `want`. */
static bool connection_names(const struct hdr_list *l, uint32_t upto, struct slice want) {
  if (!http_head_may_have(l, HDR_CONNECTION))
    return false;
  for (uint32_t i = 0; i < upto && i < l->n; i++) {
    if (l->v[i].tok != HDR_CONNECTION)
      continue;
    struct slice rest = l->v[i].value, t;
    while (next_list_token(&rest, &t))
      if (slice_ieq(t, want))
        return true;
  }
  return false;
}

bool http_head_connection_has(const struct hdr_list *l, const char *opt) {
  return l && connection_names(l, l->n, slice_cstr(opt));
}

bool http_head_request_id_sane(struct slice v) {
  if (v.n < 1 || v.n > 128)
    return false;
  for (size_t i = 0; i < v.n; i++) {
    char c = v.p[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '+' || c == '=' || c == '/' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

const char *http_status_reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 102:
    return "Processing";
  case 103:
    return "Early Hints";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 203:
    return "Non-Authoritative Information";
  case 204:
    return "No Content";
  case 205:
    return "Reset Content";
  case 206:
    return "Partial Content";
  case 207:
    return "Multi-Status";
  case 208:
    return "Already Reported";
  case 226:
    return "IM Used";
  case 300:
    return "Multiple Choices";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 305:
    return "Use Proxy";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 402:
    return "Payment Required";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 407:
    return "Proxy Authentication Required";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 417:
    return "Expectation Failed";
  case 421:
    return "Misdirected Request";
  case 422:
    return "Unprocessable Content";
  case 423:
    return "Locked";
  case 424:
    return "Failed Dependency";
  case 425:
    return "Too Early";
  case 426:
    return "Upgrade Required";
  case 428:
    return "Precondition Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 451:
    return "Unavailable For Legal Reasons";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  case 506:
    return "Variant Also Negotiates";
  case 507:
    return "Insufficient Storage";
  case 508:
    return "Loop Detected";
  case 511:
    return "Network Authentication Required";
  default:
    return "";
  }
}

/* ---- request head strictness ----------------------------------------- */

enum {
  SC_START,    /* before the request line (empty lines allowed) */
  SC_START_CR, /* CR of a leading empty line */
  SC_LINE,     /* inside the request line */
  SC_LINE_CR,  /* CR ending the request line or a field line */
  SC_NAME0,    /* first byte of a field line, or the empty line */
  SC_NAME,     /* inside a field name */
  SC_VALUE,    /* after the colon */
  SC_END_CR,   /* CR of the empty line */
  SC_DONE
};

/* Bytes that leave the scanner's state as it is: inside the request line or
 * a field value, anything but CR, LF and controls other than HTAB; inside a
 * field name, anything but ':', SP, HTAB, CR, LF and controls. */
static inline bool scan_line_plain(unsigned char c) {
  return (c >= 0x20 && c != 0x7f) || c == '\t';
}
static inline bool scan_name_plain(unsigned char c) {
  return c > 0x20 && c != ':' && c != 0x7f;
}

/* An error at offset i: where it is, for the caller. */
static inline int scan_fail(size_t *used, size_t i, int err) {
  *used = i;
  return err;
}

int http_head_scan(struct head_scan *sc, const char *p, size_t n, size_t *used) {
  unsigned st = sc->state;
  for (size_t i = 0; i < n; i++) {
    /* The bulk of a head: skip runs of plain bytes without the switch. */
    if (st == SC_LINE || st == SC_VALUE) {
      while (i < n && scan_line_plain((unsigned char)p[i]))
        i++;
    } else if (st == SC_NAME) {
      while (i < n && scan_name_plain((unsigned char)p[i]))
        i++;
    }
    if (i == n)
      break;
    unsigned char c = (unsigned char)p[i];
    switch (st) {
    case SC_START:
      if (c == '\r')
        st = SC_START_CR;
      else if (c == '\n')
        return scan_fail(used, i, HEAD_SCAN_BARE_LF);
      else if (c < 0x20 || c == 0x7f)
        return scan_fail(used, i, HEAD_SCAN_CTL);
      else
        st = SC_LINE;
      break;
    case SC_START_CR:
      if (c != '\n')
        return scan_fail(used, i, HEAD_SCAN_BARE_CR);
      st = SC_START;
      break;
    case SC_LINE:
    case SC_VALUE:
      if (c == '\r')
        st = SC_LINE_CR;
      else if (c == '\n')
        return scan_fail(used, i, HEAD_SCAN_BARE_LF);
      else if ((c < 0x20 && c != '\t') || c == 0x7f)
        return scan_fail(used, i, HEAD_SCAN_CTL);
      break;
    case SC_LINE_CR:
      if (c != '\n')
        return scan_fail(used, i, HEAD_SCAN_BARE_CR);
      st = SC_NAME0;
      break;
    case SC_NAME0:
      if (c == '\r')
        st = SC_END_CR;
      else if (c == '\n')
        return scan_fail(used, i, HEAD_SCAN_BARE_LF);
      else if (c == ' ' || c == '\t')
        return scan_fail(used, i, HEAD_SCAN_OBS_FOLD);
      else if (c == ':')
        return scan_fail(used, i, HEAD_SCAN_EMPTY_NAME);
      else if (c < 0x20 || c == 0x7f)
        return scan_fail(used, i, HEAD_SCAN_CTL);
      else
        st = SC_NAME;
      break;
    case SC_NAME:
      if (c == ':')
        st = SC_VALUE;
      else if (c == ' ' || c == '\t')
        return scan_fail(used, i, HEAD_SCAN_SPACE_IN_NAME);
      else if (c == '\r' || c == '\n')
        return scan_fail(used, i, HEAD_SCAN_NO_COLON);
      else if (c < 0x20 || c == 0x7f)
        return scan_fail(used, i, HEAD_SCAN_CTL);
      break;
    case SC_END_CR:
      if (c != '\n')
        return scan_fail(used, i, HEAD_SCAN_BARE_CR);
      sc->state = SC_DONE;
      *used = i + 1;
      return 1;
    default: /* SC_DONE: the caller resets before the next head */
      *used = 0;
      return 1;
    }
  }
  sc->state = (uint8_t)st;
  return 0;
}

const char *http_head_scan_strerror(int err) {
  switch (err) {
  case HEAD_SCAN_BARE_LF:
    return "bare LF line ending";
  case HEAD_SCAN_BARE_CR:
    return "CR not followed by LF";
  case HEAD_SCAN_OBS_FOLD:
    return "obsolete line folding";
  case HEAD_SCAN_SPACE_IN_NAME:
    return "whitespace in a field name or before its colon";
  case HEAD_SCAN_EMPTY_NAME:
    return "empty field name";
  case HEAD_SCAN_NO_COLON:
    return "field line without a colon";
  case HEAD_SCAN_CTL:
    return "control character in the head";
  default:
    return "ok";
  }
}

int http_head_check_transfer_encoding(const struct hdr_list *l) {
  unsigned nte = 0, nchunked = 0, nother = 0;
  bool last_chunked = false;
  if (!l || !http_head_may_have(l, HDR_TRANSFER_ENCODING))
    return 0;
  for (uint32_t i = 0; i < l->n; i++) {
    if (l->v[i].tok != HDR_TRANSFER_ENCODING)
      continue;
    nte++;
    struct slice rest = l->v[i].value, t;
    bool any = false;
    while (next_list_token(&rest, &t)) {
      any = true;
      last_chunked = slice_ieq(t, SLICE_LIT("chunked"));
      if (last_chunked)
        nchunked++;
      else
        nother++;
    }
    if (!any)
      return 400;
  }
  if (nte == 0)
    return 0;
  if (nte > 1 || nchunked > 1 || (nchunked == 1 && !last_chunked))
    return 400;
  return nother > 0 ? 501 : 0; /* "gzip" or "gzip, chunked": a coding ferry lacks */
}

/* ---- trailers -------------------------------------------------------- */

/* A field fit to be re-sent: a token name, a value without controls
 * (llhttp parses trailer sections more loosely than heads). */
static bool field_ok(const struct hdr *h) {
  if (h->name.n == 0)
    return false;
  for (size_t i = 0; i < h->name.n; i++)
    if (!http_is_tchar((unsigned char)h->name.p[i]))
      return false;
  for (size_t i = 0; i < h->value.n; i++) {
    unsigned char c = (unsigned char)h->value.p[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return false;
  }
  return true;
}

/* Names (lower case) never forwarded in trailers beyond the interned
 * ones: RFC 9110 6.5.1's routing, credentials, request modifiers,
 * response control data and content metadata. */
static const char *const trailer_refused[] = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "www-authenticate",
    "proxy-authenticate",
    "cache-control",
    "max-forwards",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "age",
    "expires",
    "location",
    "retry-after",
    "vary",
    "content-type",
    "content-encoding",
    "content-range",
    "content-location",
    "forwarded",
    "pragma",
};

bool http_head_trailer_allowed(const struct hdr_list *l, uint32_t from, const struct hdr *h) {
  if (h->tok != HDR_OTHER || (h->flags & HDRF_HOP) || !field_ok(h))
    return false;
  for (size_t k = 0; k < sizeof trailer_refused / sizeof trailer_refused[0]; k++) {
    size_t n = strlen(trailer_refused[k]);
    if (h->name.n == n && lit_ieq(h->name.p, trailer_refused[k], n))
      return false;
  }
  /* a field the head's Connection names is hop-by-hop; http_head_mark_hop
   * ran before the trailers arrived */
  return !connection_names(l, from, h->name);
}

enum body_framing http_head_response_framing(bool head_request, int status, bool upstream_chunked,
                                             bool upstream_length, int client_minor) {
  if (head_request)
    return upstream_length && !upstream_chunked ? FRAMING_LENGTH : FRAMING_NONE;
  if ((status >= 100 && status < 200) || status == 204 || status == 304)
    return FRAMING_NONE;
  if (upstream_length && !upstream_chunked)
    return FRAMING_LENGTH;
  return client_minor >= 1 ? FRAMING_CHUNKED : FRAMING_CLOSE;
}
