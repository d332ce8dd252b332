/* Unit tests for src/inspect_cli.c: the terminal rendering of one
 * /inspect/stream event (header lists with +/-/~ marks, colour or not). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/inspect_cli.h"

static const char event[] =
    "{\"id\":7,\"request_id\":\"r1\",\"time\":\"2026-11-25T19:35:18.464Z\",\"method\":\"GET\","
    "\"target\":\"/api/u\",\"host\":\"shop.test\",\"route\":{\"index\":0,\"line\":12,\"label\":"
    "\"path_prefix "
    "/api\",\"file\":\"edge.yaml\"},\"upstream\":\"api\",\"server\":\"127.0.0.1:9001\","
    "\"attempts\":1,"
    "\"status\":200,\"error\":null,\"timings_ms\":{\"queue\":0.010,\"connect\":0.080,"
    "\"ttfb\":0.250,\"total\":0.350},"
    "\"request_client\":{\"line\":\"GET /api/u HTTP/1.1\",\"headers\":[[\"Host\",\"shop.test\"],"
    "[\"Connection\",\"keep-alive\"],[\"X-Note\",\"caf\\u00e9 \\\"q\\\"\"],[\"Via\",\"1.0 x\"]]},"
    "\"request_upstream\":{\"line\":\"GET /api/u HTTP/1.1\",\"headers\":[[\"Host\",\"shop.test\"],"
    "[\"X-Note\",\"caf\\u00e9 \\\"q\\\"\"],[\"Via\",\"1.0 x, 1.1 ferry\"],"
    "[\"X-Forwarded-For\",\"127.0.0.1\"]]},"
    "\"response_upstream\":null,"
    "\"response_client\":{\"line\":\"HTTP/1.1 200 OK\",\"headers\":[[\"X-Request-Id\",\"r1\"]]}}";

static char *render(bool colour) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  cr_assert_eq(inspect_cli_print(f, event, strlen(event), colour), 0);
  fclose(f);
  return buf;
}

Test(inspect_cli, marks_what_ferry_changed) {
  char *out = render(false);
  cr_assert_not_null(strstr(out, "#7 19:35:18.464Z GET shop.test/api/u -> 200  upstream api "
                                 "(127.0.0.1:9001)  route #0 (edge.yaml line 12)"),
                     "%s", out);
  cr_assert_not_null(strstr(out, "- > Connection: keep-alive\n"), "%s", out);
  cr_assert_not_null(strstr(out, "+ > X-Forwarded-For: 127.0.0.1\n"), "%s", out);
  cr_assert_not_null(strstr(out, "~ > Via: 1.0 x, 1.1 ferry\n"), "%s", out);
  cr_assert_not_null(strstr(out, "  > X-Note: caf\xe9 \"q\"\n"), "%s", out);
  /* no upstream response: only the returned head, unmarked */
  cr_assert_null(strstr(out, "as the upstream sent it"));
  cr_assert_not_null(strstr(out, "  < X-Request-Id: r1\n"), "%s", out);
  cr_assert_null(strchr(out, '\x1b'));
  cr_assert_not_null(strstr(out, "  > GET /api/u HTTP/1.1\n"), "same line: unmarked: %s", out);
  cr_assert_null(strstr(out, "cut short"), "%s", out);
  free(out);
}

/* A rewritten request line is marked as changed; a response the client
 * cut short says so. */
Test(inspect_cli, rewritten_line_and_cut_short_response) {
  static const char ev[] =
      "{\"id\":8,\"time\":\"2026-11-25T19:35:18.464Z\",\"method\":\"GET\",\"target\":\"/api/u\","
      "\"host\":\"h\",\"route\":{\"index\":1,\"line\":3,\"label\":\"x\",\"file\":\"p.yaml\"},"
      "\"upstream\":\"api\",\"server\":\"s\",\"status\":200,\"complete\":false,"
      "\"error\":\"client closed the connection\",\"timings_ms\":{},"
      "\"request_client\":{\"line\":\"GET /api/u HTTP/1.1\",\"headers\":[]},"
      "\"request_upstream\":{\"line\":\"GET /v2/u HTTP/1.1\",\"headers\":[]},"
      "\"response_upstream\":null,\"response_client\":null}";
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  cr_assert_eq(inspect_cli_print(f, ev, strlen(ev), false), 0);
  fclose(f);
  cr_assert_not_null(strstr(buf, "~ > GET /api/u HTTP/1.1\n"), "%s", buf);
  cr_assert_not_null(strstr(buf, "~ > GET /v2/u HTTP/1.1\n"), "%s", buf);
  cr_assert_not_null(strstr(buf, "-> 200 (cut short)"), "%s", buf);
  cr_assert_not_null(strstr(buf, "client closed the connection"), "%s", buf);
  free(buf);
}

Test(inspect_cli, colour_on_a_terminal) {
  char *out = render(true);
  cr_assert_not_null(strstr(out, "+ > \x1b[32m\x1b[1mX-Forwarded-For: 127.0.0.1\x1b[0m"), "%s",
                     out);
  cr_assert_not_null(strstr(out, "- > \x1b[31m\x1b[1mConnection"), "%s", out);
  free(out);
}

Test(inspect_cli, rejects_what_is_not_an_exchange) {
  cr_assert_eq(inspect_cli_print(stdout, "[1,2]", 5, false), -1);
  cr_assert_eq(inspect_cli_print(stdout, "{\"id\":", 6, false), -1);
  cr_assert_eq(inspect_cli_print(stdout, "{\"x\":1}", 7, false), -1);
}

/* WebSocket frames of an upgraded exchange, each way. */
Test(inspect_cli, websocket_frames) {
  static const char ev[] =
      "{\"id\":9,\"time\":\"2026-11-25T19:35:18.464Z\",\"method\":\"GET\",\"target\":\"/ws\","
      "\"host\":\"h\",\"route\":null,\"upstream\":\"api\",\"server\":\"s\",\"status\":101,"
      "\"complete\":true,\"error\":null,\"timings_ms\":{},\"frames\":[{\"dir\":\"client\","
      "\"opcode\":1,\"type\":\"text\",\"fin\":true,\"size\":5,\"preview\":\"hello\"},"
      "{\"dir\":\"upstream\",\"opcode\":2,\"type\":\"binary\",\"fin\":false,\"size\":300}],"
      "\"request_client\":null,\"request_upstream\":null,\"response_upstream\":null,"
      "\"response_client\":null}";
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  cr_assert_eq(inspect_cli_print(f, ev, strlen(ev), false), 0);
  fclose(f);
  cr_assert_not_null(strstr(buf, "  => text 5 bytes: \"hello\"\n"), "%s", buf);
  cr_assert_not_null(strstr(buf, "  <= binary 300 bytes (more)\n"), "%s", buf);
  free(buf);
}

/* An exchange on a TLS listener gets a line with the connection's TLS. */
Test(inspect_cli, tls_details_line) {
  static const char ev[] =
      "{\"id\":9,\"time\":\"2026-11-25T19:35:18.464Z\",\"method\":\"GET\",\"target\":\"/\","
      "\"host\":\"a.test\",\"route\":null,\"upstream\":\"\",\"status\":200,\"error\":null,"
      "\"timings_ms\":{},\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_128_GCM_SHA256\","
      "\"sni\":\"a.test\",\"alpn\":\"http/1.1\",\"client_subject\":\"O=Ferry Test,CN=client "
      "one\"},\"request_client\":null,\"request_upstream\":null,\"response_upstream\":null,"
      "\"response_client\":null}";
  char *out = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&out, &n);
  cr_assert_eq(inspect_cli_print(f, ev, strlen(ev), false), 0);
  fclose(f);
  cr_assert_not_null(strstr(out,
                            "\n  tls TLSv1.3 TLS_AES_128_GCM_SHA256  sni a.test  alpn http/1.1  "
                            "client certificate O=Ferry Test,CN=client one\n"),
                     "%s", out);
  free(out);
  static const char plain[] = "{\"id\":10,\"time\":\"t\",\"method\":\"GET\",\"target\":\"/\","
                              "\"status\":200,\"tls\":null}";
  f = open_memstream(&out, &n);
  cr_assert_eq(inspect_cli_print(f, plain, strlen(plain), false), 0);
  fclose(f);
  cr_assert_null(strstr(out, "tls "), "%s", out);
  free(out);
}
