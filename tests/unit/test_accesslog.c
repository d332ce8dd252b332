/* accesslog: JSON string escaping (RFC 8259) of bytes from the wire. */
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/accesslog.h"

static const char *esc(const char *in, size_t n, size_t cap) {
  static char out[512];
  size_t k = accesslog_json_escape(out, cap, in, n);
  cr_assert_leq(k, cap);
  out[k] = '\0';
  return out;
}

#define ESC(lit) esc(lit, sizeof(lit) - 1, 500)

Test(accesslog, json_keeps_ascii_and_well_formed_utf8) {
  cr_assert_str_eq(ESC("curl/8.1 (x)"), "curl/8.1 (x)");
  cr_assert_str_eq(ESC("caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e"),
                   "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e");
  /* The edges of each length: U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF. */
  cr_assert_str_eq(ESC("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"),
                   "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
}

Test(accesslog, json_escapes_quote_backslash_and_controls) {
  cr_assert_str_eq(ESC("a\"b\\c"), "a\\\"b\\\\c");
  cr_assert_str_eq(ESC("\x01\t\n\x1f\x7f"), "\\u0001\\u0009\\u000a\\u001f\\u007f");
  cr_assert_str_eq(esc("a\0b", 3, 500), "a\\u0000b");
}

Test(accesslog, json_escapes_each_byte_that_is_not_utf8) {
  cr_assert_str_eq(ESC("\xff\xfe"), "\\u00ff\\u00fe");            /* never in UTF-8 */
  cr_assert_str_eq(ESC("\x80x"), "\\u0080x");                     /* stray continuation */
  cr_assert_str_eq(ESC("\xc3"), "\\u00c3");                       /* cut short at the end */
  cr_assert_str_eq(ESC("\xc3("), "\\u00c3(");                     /* cut short before ASCII */
  cr_assert_str_eq(ESC("\xc0\xaf"), "\\u00c0\\u00af");            /* overlong '/' */
  cr_assert_str_eq(ESC("\xe0\x80\xaf"), "\\u00e0\\u0080\\u00af"); /* overlong, 3 bytes */
  cr_assert_str_eq(ESC("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080"); /* a UTF-16 surrogate */
  cr_assert_str_eq(ESC("\xf4\x90\x80\x80"), "\\u00f4\\u0090\\u0080\\u0080"); /* > U+10FFFF */
  cr_assert_str_eq(ESC("\xe2\x82\xe2\x82\xac"),
                   "\\u00e2\\u0082\xe2\x82\xac"); /* then a valid one */
}

Test(accesslog, json_is_cut_only_between_characters) {
  /* "é" is 2 bytes, "\u00ff" 6: neither is split by the bound. */
  cr_assert_str_eq(esc("ab\xc3\xa9", 4, 3), "ab");
  cr_assert_str_eq(esc("a\xff", 2, 6), "a");
  cr_assert_str_eq(esc("a\xff", 2, 7), "a\\u00ff");
  cr_assert_str_eq(esc("a\"", 2, 2), "a");
}
