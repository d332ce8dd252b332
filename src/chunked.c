/* chunked: the strict chunked-framing validator (see the header). */
#include "ferry/chunked.h"

#include "ferry/http_head.h"

enum {
  CS_SIZE0,    /* first hex digit of a chunk-size */
  CS_SIZE,     /* more hex digits, or what follows them */
  CS_SIZE_WS,  /* BWS after the size: only ';' may follow */
  CS_EXT,      /* inside chunk extensions, up to CR */
  CS_SIZE_LF,  /* LF ending the chunk-size line */
  CS_DATA,     /* left data bytes to skip */
  CS_DATA_CR,  /* CR after the data */
  CS_DATA_LF,  /* LF after the data */
  CS_TRAILER0, /* first byte of a trailer line, or CR of the final empty line */
  CS_TNAME,    /* inside a trailer field name */
  CS_TVALUE,   /* inside a trailer field value, up to CR */
  CS_TLF,      /* LF ending a trailer line */
  CS_END_LF,   /* LF of the final empty line */
  CS_DONE
};

void chunked_check_begin(struct chunked_check *c, bool active) {
  c->left = 0;
  c->state = CS_SIZE0;
  c->active = active;
}

static int hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (unsigned char)(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A byte allowed inside an extension or a trailer value: visible ASCII,
 * SP, HTAB and obs-text; not CR, LF, other controls or DEL. */
static bool line_byte(unsigned char c) {
  return (c >= 0x20 && c != 0x7f) || c == '\t';
}

int chunked_check(struct chunked_check *c, const char *p, size_t n, size_t *used) {
  unsigned st = c->state;
  size_t i = 0;
  int err = 0;
  while (i < n) {
    if (st == CS_DATA) {
      size_t take = (uint64_t)(n - i) < c->left ? n - i : (size_t)c->left;
      i += take;
      c->left -= take;
      if (c->left == 0)
        st = CS_DATA_CR;
      continue;
    }
    unsigned char ch = (unsigned char)p[i];
    switch (st) {
    case CS_SIZE0: {
      int d = hex_digit(ch);
      if (d < 0) {
        err = CHUNKED_E_SIZE;
        goto fail;
      }
      c->left = (uint64_t)d;
      st = CS_SIZE;
      break;
    }
    case CS_SIZE: {
      int d = hex_digit(ch);
      if (d >= 0) {
        if (c->left >> 60) {
          err = CHUNKED_E_SIZE; /* over 64 bits */
          goto fail;
        }
        c->left = c->left << 4 | (uint64_t)d;
      } else if (ch == '\r') {
        st = CS_SIZE_LF;
      } else if (ch == ';') {
        st = CS_EXT;
      } else if (ch == ' ' || ch == '\t') {
        st = CS_SIZE_WS;
      } else {
        err = ch == '\n' ? CHUNKED_E_LINE_END : CHUNKED_E_SIZE;
        goto fail;
      }
      break;
    }
    case CS_SIZE_WS:
      if (ch == ';') {
        st = CS_EXT;
      } else if (ch != ' ' && ch != '\t') {
        err = ch == '\r' || ch == '\n' ? CHUNKED_E_LINE_END : CHUNKED_E_SIZE;
        goto fail;
      }
      break;
    case CS_EXT:
      if (ch == '\r') {
        st = CS_SIZE_LF;
      } else if (!line_byte(ch)) {
        err = ch == '\n' ? CHUNKED_E_LINE_END : CHUNKED_E_EXT;
        goto fail;
      }
      break;
    case CS_SIZE_LF:
      if (ch != '\n') {
        err = CHUNKED_E_LINE_END;
        goto fail;
      }
      st = c->left == 0 ? CS_TRAILER0 : CS_DATA;
      break;
    case CS_DATA_CR:
    case CS_DATA_LF:
      if (ch != (st == CS_DATA_CR ? '\r' : '\n')) {
        err = CHUNKED_E_DATA_END;
        goto fail;
      }
      st = st == CS_DATA_CR ? CS_DATA_LF : CS_SIZE0;
      break;
    case CS_TRAILER0:
      if (ch == '\r') {
        st = CS_END_LF;
      } else if (http_is_tchar(ch)) {
        st = CS_TNAME;
      } else {
        err = CHUNKED_E_TRAILER; /* obs-fold, bare LF, empty name, junk */
        goto fail;
      }
      break;
    case CS_TNAME:
      if (ch == ':') {
        st = CS_TVALUE;
      } else if (!http_is_tchar(ch)) {
        err = CHUNKED_E_TRAILER;
        goto fail;
      }
      break;
    case CS_TVALUE:
      if (ch == '\r') {
        st = CS_TLF;
      } else if (!line_byte(ch)) {
        err = CHUNKED_E_TRAILER;
        goto fail;
      }
      break;
    case CS_TLF:
    case CS_END_LF:
      if (ch != '\n') {
        err = CHUNKED_E_TRAILER;
        goto fail;
      }
      if (st == CS_END_LF) {
        c->state = CS_DONE;
        c->active = false;
        *used = i + 1;
        return CHUNKED_DONE;
      }
      st = CS_TRAILER0;
      break;
    default: /* CS_DONE: nothing more belongs to this body */
      c->active = false;
      *used = 0;
      return CHUNKED_DONE;
    }
    i++;
  }
  c->state = (uint8_t)st;
  *used = n;
  return CHUNKED_MORE;
fail:
  *used = i;
  return err;
}

const char *chunked_strerror(int err) {
  switch (err) {
  case CHUNKED_E_SIZE:
    return "chunk size is not hex digits or overflows";
  case CHUNKED_E_EXT:
    return "control character in a chunk extension";
  case CHUNKED_E_LINE_END:
    return "chunk size line not ended by CRLF";
  case CHUNKED_E_DATA_END:
    return "chunk data not followed by CRLF";
  case CHUNKED_E_TRAILER:
    return "trailer line malformed or not ended by CRLF";
  default:
    return "ok";
  }
}
