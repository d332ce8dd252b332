/* chunked: an incremental validator of chunked message framing (RFC 9112
 * 7.1), run over the same body bytes the HTTP parser consumes.
 *
 * llhttp 8.1.0 (Debian 12) accepts some framings other parsers read
 * differently: any two bytes after a chunk's data stand for its CRLF, and
 * a bare LF ends the trailer section. A peer that reads those bytes
 * another way sees different messages in the same stream ("funky chunks",
 * the 2025 chunk-terminator desyncs). This validator is strict where the
 * grammar is: after each chunk's data exactly CRLF, chunk-size lines and
 * trailer lines ended by CRLF, no control bytes, no obs-fold in trailers.
 * It does not copy or deliver data; the parser does that.
 *
 * Pure: no allocation, no I/O, state in the caller's struct. Data bytes
 * are skipped in O(1) per call, so the cost is in the size and trailer
 * lines only. */
#ifndef FERRY_CHUNKED_H
#define FERRY_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chunked_result {
  CHUNKED_MORE = 0, /* every byte given was valid; the body is not over */
  CHUNKED_DONE = 1  /* the body ended (*used: through the final LF) */
};

enum chunked_error {
  CHUNKED_E_SIZE = -1,     /* a chunk-size that is not hex digits, or overflows */
  CHUNKED_E_EXT = -2,      /* a control byte in a chunk extension */
  CHUNKED_E_LINE_END = -3, /* a chunk-size line not ended by CRLF */
  CHUNKED_E_DATA_END = -4, /* the bytes after a chunk's data are not CRLF */
  CHUNKED_E_TRAILER = -5   /* a trailer line malformed or not ended by CRLF */
};

struct chunked_check {
  uint64_t left; /* chunk-size being read, then data bytes still to come */
  uint8_t state;
  bool active; /* set by chunked_check_begin(.., true); cleared when the body ends */
};

/* Start on a new message body; active is the message's chunked flag (a
 * message that is not chunked leaves the validator inactive). */
void chunked_check_begin(struct chunked_check *c, bool active);

/* Validates p[0..n) as the continuation of the body. Returns CHUNKED_MORE
 * (*used = n), CHUNKED_DONE (*used = bytes through the last LF of the
 * body; bytes after it belong to the next message and were not looked at;
 * the validator is then inactive), or a negative enum chunked_error
 * (*used = offset of the offending byte; the state is then undefined). */
int chunked_check(struct chunked_check *c, const char *p, size_t n, size_t *used);

/* Words for an enum chunked_error, for logs. */
const char *chunked_strerror(int err);

#endif
