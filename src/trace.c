/* trace: W3C Trace Context traceparent parsing and writing
 * (include/ferry/trace.h). Owns the format rules; must not touch headers
 * lists, the exchange or any I/O. */
#include "ferry/trace.h"

#include <string.h>

static bool lhex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool hex_run(const char *p, size_t n, bool *all_zero) {
  *all_zero = true;
  for (size_t i = 0; i < n; i++) {
    if (!lhex(p[i]))
      return false;
    if (p[i] != '0')
      *all_zero = false;
  }
  return true;
}

bool trace_parse(struct slice v, char trace_id[32], char flags[2]) {
  const char *p = v.p;
  bool zero;
  if (v.n < TRACE_PARENT_LEN || !hex_run(p, 2, &zero) || p[2] != '-' || p[35] != '-' ||
      p[52] != '-')
    return false;
  if (memcmp(p, "ff", 2) == 0)
    return false;
  if (memcmp(p, "00", 2) == 0 ? v.n != TRACE_PARENT_LEN
                              : v.n > TRACE_PARENT_LEN && p[TRACE_PARENT_LEN] != '-')
    return false;
  if (!hex_run(p + 3, 32, &zero) || zero)
    return false;
  if (!hex_run(p + 36, 16, &zero) || zero)
    return false;
  if (!hex_run(p + 53, 2, &zero))
    return false;
  memcpy(trace_id, p + 3, 32);
  memcpy(flags, p + 53, 2);
  return true;
}

void trace_hex64(char out[16], uint64_t v) {
  static const char hx[] = "0123456789abcdef";
  for (int i = 14; i >= 0; i -= 2, v >>= 8) { /* a byte per step */
    out[i] = hx[(v >> 4) & 15];
    out[i + 1] = hx[v & 15];
  }
}

void trace_format(char out[TRACE_PARENT_LEN], const char trace_id[32], uint64_t span,
                  const char flags[2]) {
  memcpy(out, "00-", 3);
  memcpy(out + 3, trace_id, 32);
  out[35] = '-';
  trace_hex64(out + 36, span);
  out[52] = '-';
  memcpy(out + 53, flags, 2);
}

uint64_t trace_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return z ? z : 1;
}
