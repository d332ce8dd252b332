/* reply: the bytes of ferry's own responses. */
#include <criterion/criterion.h>
#include <string.h>

#include "ferry/reply.h"

static char *build(const struct reply *r) {
  size_t n = reply_build(NULL, 0, r);
  char *out = calloc(1, n + 1);
  cr_assert_eq(reply_build(out, n, r), n, "the same length both passes");
  return out;
}

Test(reply, extra_lines_follow_the_status_line_and_the_body_its_length) {
  struct cfg_kv set[] = {{"X-Frame-Options", "DENY"}};
  struct cfg_kv add[] = {{"X-Via-Route", "ping"}};
  struct cfg_header_ops ops = {.set = set, .nset = 1, .add = add, .nadd = 1};
  struct reply r = {.status = 503,
                    .content_type = SLICE_LIT("text/plain"),
                    .body = slice_cstr(reply_default_body(503)),
                    .request_id = SLICE_LIT("abc"),
                    .date = SLICE_LIT("Sun, 06 Dec 2026 05:00:00 GMT"),
                    .minor = 1,
                    .keep_alive = false,
                    .retry_after = 7,
                    .route_hdrs = &ops};
  char *out = build(&r);
  const char *want = "HTTP/1.1 503 Service Unavailable\r\n"
                     "Date: Sun, 06 Dec 2026 05:00:00 GMT\r\n"
                     "Retry-After: 7\r\n"
                     "X-Frame-Options: DENY\r\n"
                     "X-Via-Route: ping\r\n";
  cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
  cr_assert(strstr(out, "Connection: close\r\n"), "%s", out);
  cr_assert(strstr(out, "X-Request-Id: abc\r\n"), "%s", out);
  const char *body = strstr(out, "\r\n\r\n");
  cr_assert_str_eq(body + 4, "service unavailable\n");
  free(out);
}

Test(reply, head_only_announces_the_length_without_the_body) {
  struct reply r = {.status = 200,
                    .content_type = SLICE_LIT("text/plain"),
                    .body = SLICE_LIT("pong\n"),
                    .request_id = SLICE_LIT("r1"),
                    .minor = 1,
                    .keep_alive = true,
                    .head_only = true};
  char *out = build(&r);
  cr_assert(strstr(out, "Content-Length: 5\r\n"), "%s", out);
  cr_assert(strstr(out, "\r\n\r\n")[4] == '\0', "no body after the head: %s", out);
  cr_assert(!strstr(out, "Date:"), "no Date line when none is given");
  free(out);
}

Test(reply, every_error_status_has_a_body_that_says_what_happened) {
  int statuses[] = {400, 404, 408, 413, 414, 431, 501, 502, 503, 504, 505};
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
    cr_assert(strlen(reply_default_body(statuses[i])) > 1, "status %d", statuses[i]);
  cr_assert_str_eq(reply_default_body(299), "");
}
