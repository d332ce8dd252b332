/* trace: W3C Trace Context traceparent parsing and writing
 * (include/ferry/trace.h). Owns the format rules; must not touch headers
 * lists, the exchange or any I/O. */
#include "ferry/trace.h"

#include <string.h>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

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

#if defined(__SSE2__) && defined(__x86_64__)
/* 16 hex digits of v, most significant first, in about a dozen vector
 * instructions: this runs three times for every proxied request. */
void trace_hex64(char out[16], uint64_t v) {
  __m128i x = _mm_cvtsi64_si128((long long)__builtin_bswap64(v));
  const __m128i low4 = _mm_set1_epi8(0x0f);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4), lo = _mm_and_si128(x, low4);
  __m128i d = _mm_unpacklo_epi8(hi, lo); /* one nibble a byte, in print order */
  __m128i letter =
      _mm_and_si128(_mm_cmpgt_epi8(d, _mm_set1_epi8(9)), _mm_set1_epi8('a' - '0' - 10));
  _mm_storeu_si128((__m128i *)(void *)out,
                   _mm_add_epi8(_mm_add_epi8(d, _mm_set1_epi8('0')), letter));
}
#else
/* "00".."ff": the two digits of every byte value */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void trace_hex64(char out[16], uint64_t v) {
  for (int i = 14; i >= 0; i -= 2, v >>= 8)
    memcpy(out + i, hex_pairs + 2 * (v & 0xff), 2);
}
#endif

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
