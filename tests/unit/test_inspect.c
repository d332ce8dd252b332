/* Unit tests for src/inspect.c: building capture records (copies, the four
 * header lists, redaction), the bounded store, query filters and the JSON /
 * Server-Sent Event / replay renderings. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/inspect.h"

static char *redact_default[] = {"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"};

static const struct inspect_kv client_req[] = {
    {SLICE_LIT("Host"), SLICE_LIT("api.example.com")},
    {SLICE_LIT("Connection"), SLICE_LIT("keep-alive")},
    {SLICE_LIT("Authorization"), SLICE_LIT("Bearer secret")},
    {SLICE_LIT("X-Trace"), SLICE_LIT("a\"b\\c<d")},
};
static const struct inspect_kv up_resp[] = {
    {SLICE_LIT("Content-Length"), SLICE_LIT("2")},
    {SLICE_LIT("Set-Cookie"), SLICE_LIT("sid=1")},
    {SLICE_LIT("Server"), SLICE_LIT("app")},
};
static const char fwd[] = "GET /users HTTP/1.1\r\n"
                          "Host: api.example.com\r\n"
                          "Authorization: Bearer secret\r\n"
                          "X-Trace: a\"b\\c<d\r\n"
                          "X-Forwarded-For: 127.0.0.1\r\n"
                          "Via: 1.1 ferry\r\n"
                          "\r\n";
static const char cli[] = "HTTP/1.1 200 OK\r\n"
                          "Set-Cookie: sid=1\r\n"
                          "Server: app\r\n"
                          "Content-Length: 2\r\n"
                          "X-Request-Id: r1\r\n"
                          "\r\nok";

static struct inspect_src sample(void) {
  struct inspect_src s = {
      .time_us = 1764097200123456,
      .request_id = SLICE_LIT("r1"),
      .trace_id = SLICE_LIT("4bf92f3577b34da6a3ce929d0e0e4736"),
      .client = SLICE_LIT("127.0.0.1:5000"),
      .listener = SLICE_LIT("127.0.0.1:8080"),
      .method = SLICE_LIT("GET"),
      .target = SLICE_LIT("/users"),
      .host = SLICE_LIT("api.example.com"),
      .version = SLICE_LIT("HTTP/1.1"),
      .route_index = 2,
      .route_line = 14,
      .route_label = SLICE_LIT("path_prefix /users"),
      .config_file = SLICE_LIT("conf/edge.yaml"),
      .upstream = SLICE_LIT("api"),
      .server = SLICE_LIT("127.0.0.1:9001"),
      .attempts = 1,
      .status = 200,
      .complete = true,
      .req_head_bytes = 90,
      .resp_body_bytes = 2,
      .queue_us = 5,
      .connect_us = 1500,
      .ttfb_us = 2000,
      .total_us = 4000,
      .req_line = SLICE_LIT("GET /users HTTP/1.1"),
      .req = client_req,
      .nreq = 4,
      .fwd_head = {fwd, sizeof fwd - 1},
      .up_line = SLICE_LIT("HTTP/1.1 200 OK"),
      .up = up_resp,
      .nup = 3,
      .up_present = true,
      .client_head = {cli, sizeof cli - 1},
      .redact = redact_default,
      .nredact = 4,
  };
  return s;
}

static bool kv_is(const struct inspect_head *h, uint32_t i, const char *name, const char *value) {
  return i < h->n && slice_eq(h->h[i].name, slice_cstr(name)) &&
         slice_eq(h->h[i].value, slice_cstr(value));
}

Test(inspect, record_copies_all_four_heads) {
  struct inspect_src src = sample();
  struct inspect_rec *r = inspect_rec_build(&src);
  cr_assert_not_null(r);
  const struct inspect_head *h = r->heads;
  cr_assert(h[INSPECT_REQUEST_CLIENT].present);
  cr_assert(slice_eq(h[INSPECT_REQUEST_CLIENT].line, SLICE_LIT("GET /users HTTP/1.1")));
  cr_assert_eq(h[INSPECT_REQUEST_CLIENT].n, 4);
  cr_assert(kv_is(&h[INSPECT_REQUEST_CLIENT], 1, "Connection", "keep-alive"));
  cr_assert_eq(h[INSPECT_REQUEST_UPSTREAM].n, 5);
  cr_assert(kv_is(&h[INSPECT_REQUEST_UPSTREAM], 3, "X-Forwarded-For", "127.0.0.1"));
  cr_assert(slice_eq(h[INSPECT_RESPONSE_UPSTREAM].line, SLICE_LIT("HTTP/1.1 200 OK")));
  cr_assert_eq(h[INSPECT_RESPONSE_UPSTREAM].n, 3);
  /* the body after the client head is not a header */
  cr_assert_eq(h[INSPECT_RESPONSE_CLIENT].n, 4);
  cr_assert(kv_is(&h[INSPECT_RESPONSE_CLIENT], 3, "X-Request-Id", "r1"));
  cr_assert_eq(r->resp_head_bytes, sizeof cli - 1 - 2);
  /* copies, not views: the record owns every byte */
  cr_assert(h[INSPECT_REQUEST_UPSTREAM].h[0].name.p < (const char *)r + r->size &&
            h[INSPECT_REQUEST_UPSTREAM].h[0].name.p > (const char *)r);
  cr_assert(r->target.p > (const char *)r && r->target.p < (const char *)r + r->size);
  free(r);
}

Test(inspect, redacts_listed_headers_everywhere) {
  struct inspect_src src = sample();
  struct inspect_rec *r = inspect_rec_build(&src);
  cr_assert(r->redacted);
  cr_assert(kv_is(&r->heads[INSPECT_REQUEST_CLIENT], 2, "Authorization", "[redacted]"));
  cr_assert(kv_is(&r->heads[INSPECT_REQUEST_UPSTREAM], 1, "Authorization", "[redacted]"));
  cr_assert(kv_is(&r->heads[INSPECT_RESPONSE_UPSTREAM], 1, "Set-Cookie", "[redacted]"));
  cr_assert(kv_is(&r->heads[INSPECT_RESPONSE_CLIENT], 0, "Set-Cookie", "[redacted]"));
  cr_assert_not(inspect_replayable(r));
  free(r);

  src.nredact = 0; /* admin.redact: false */
  r = inspect_rec_build(&src);
  cr_assert_not(r->redacted);
  cr_assert(kv_is(&r->heads[INSPECT_REQUEST_CLIENT], 2, "Authorization", "Bearer secret"));
  cr_assert(inspect_replayable(r));
  free(r);
}

Test(inspect, absent_heads_render_as_null) {
  struct inspect_src src = sample();
  src.fwd_head = (struct slice){NULL, 0};
  src.up_present = false;
  src.nup = 0;
  src.route_index = -1;
  struct inspect_rec *r = inspect_rec_build(&src);
  struct inspect_out o = {0};
  inspect_render_json(&o, r, false);
  cr_assert_not(o.oom);
  cr_assert_not_null(strstr(o.p, "\"request_upstream\":null"));
  cr_assert_not_null(strstr(o.p, "\"response_upstream\":null"));
  cr_assert_not_null(strstr(o.p, "\"route\":null"));
  free(o.p);
  free(r);
}

Test(inspect, a_response_cut_short_is_not_complete) {
  struct inspect_src src = sample();
  src.complete = false;
  src.error = SLICE_LIT("client closed the connection");
  struct inspect_rec *r = inspect_rec_build(&src);
  struct inspect_out o = {0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p, "\"status\":200,\"complete\":false"), "%s", o.p);
  cr_assert_not_null(strstr(o.p, "\"error\":\"client closed the connection\""), "%s", o.p);
  free(o.p);
  free(r);
}

Test(inspect, why_this_route_renders_as_explain_does) {
  struct inspect_src src = sample();
  src.skipped = SLICE_LIT("0 9 host: a.test is not b.test\n1 12 header: X-A is missing \"q\"\n");
  src.skipped_more = 3;
  struct inspect_rec *r = inspect_rec_build(&src);
  struct inspect_out o = {0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p,
                            "\"skipped\":[{\"index\":0,\"line\":9,\"reason\":\"host: a.test is not "
                            "b.test\"},{\"index\":1,\"line\":12,\"reason\":\"header: X-A is "
                            "missing \\\"q\\\"\"}],\"skipped_more\":3"),
                     "%s", o.p);
  free(o.p);
  free(r);
  src.skipped = (struct slice){NULL, 0};
  src.skipped_more = 0;
  r = inspect_rec_build(&src);
  o = (struct inspect_out){0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p, "\"skipped\":[],\"upstream\""), "%s", o.p);
  free(o.p);
  free(r);
}

Test(inspect, websocket_frames_are_copied_into_the_record) {
  struct inspect_src src = sample();
  src.frames_json = SLICE_LIT("[{\"dir\":\"client\",\"opcode\":1,\"type\":\"text\",\"fin\":true,"
                              "\"size\":2,\"preview\":\"hi\"}]");
  struct inspect_rec *r = inspect_rec_build(&src);
  cr_assert(r->frames_json.p > (const char *)r &&
            r->frames_json.p + r->frames_json.n <= (const char *)r + r->size);
  struct inspect_out o = {0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p, ",\"frames\":[{\"dir\":\"client\""), "%s", o.p);
  free(o.p);
  free(r);
}

Test(inspect, json_fields_and_escaping) {
  struct inspect_src src = sample();
  struct inspect_rec *r = inspect_rec_build(&src);
  r->id = 7;
  struct inspect_out o = {0};
  inspect_render_json(&o, r, true);
  cr_assert_not_null(
      strstr(o.p, "{\"id\":7,\"request_id\":\"r1\",\"time\":\"2025-11-25T19:00:00.123Z\""), "%s",
      o.p);
  cr_assert_not_null(strstr(o.p, "\"route\":{\"index\":2,\"line\":14,\"label\":\"path_prefix "
                                 "/users\",\"file\":\"conf/edge.yaml\"}"),
                     "the route names the configuration file it is in: %s", o.p);
  cr_assert_not_null(strstr(o.p, "\"status\":200,\"complete\":true"), "%s", o.p);
  cr_assert_not_null(strstr(o.p, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""), "%s", o.p);
  cr_assert_not_null(
      strstr(o.p, "\"timings_ms\":{\"queue\":0.005,\"connect\":1.500,\"ttfb\":2.000,\"total\":"
                  "4.000}"));
  cr_assert_not_null(strstr(o.p, "[\"X-Trace\",\"a\\\"b\\\\c\\u003cd\"]"), "%s", o.p);
  cr_assert_not_null(strstr(o.p, "\"replayable\":false")); /* redacted */
  cr_assert_null(strchr(o.p, '\n'));
  free(o.p);
  free(r);
}

/* An exchange on a TLS listener shows the connection's TLS; a plain one
 * says "tls":null. Absent SNI, ALPN or client certificate are null. */
Test(inspect, json_tls_details) {
  struct inspect_src src = sample();
  struct inspect_rec *r = inspect_rec_build(&src);
  struct inspect_out o = {0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p, ",\"tls\":null,"), "%s", o.p);
  free(o.p);
  free(r);
  src.tls = true;
  src.tls_version = SLICE_LIT("TLSv1.3");
  src.tls_cipher = SLICE_LIT("TLS_AES_128_GCM_SHA256");
  src.tls_sni = SLICE_LIT("a.test");
  src.tls_alpn = SLICE_LIT("http/1.1");
  src.tls_client_subject = SLICE_LIT("O=Ferry Test,CN=client \"one\"");
  r = inspect_rec_build(&src);
  o = (struct inspect_out){0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p, ",\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_128_"
                                 "GCM_SHA256\",\"sni\":\"a.test\",\"alpn\":\"http/1.1\","
                                 "\"client_subject\":\"O=Ferry Test,CN=client \\\"one\\\"\"}"),
                     "%s", o.p);
  free(o.p);
  free(r);
  src.tls_sni = src.tls_alpn = src.tls_client_subject = (struct slice){NULL, 0};
  r = inspect_rec_build(&src);
  o = (struct inspect_out){0};
  inspect_render_json(&o, r, false);
  cr_assert_not_null(strstr(o.p, "\"sni\":null,\"alpn\":null,\"client_subject\":null}"), "%s", o.p);
  free(o.p);
  free(r);
}

Test(inspect, sse_event_framing) {
  struct inspect_src src = sample();
  struct inspect_rec *r = inspect_rec_build(&src);
  r->id = 42;
  struct inspect_out o = {0};
  inspect_render_event(&o, r, false);
  cr_assert_eq(strncmp(o.p, "id: 42\nevent: exchange\ndata: {\"id\":42,", 38), 0, "%s", o.p);
  cr_assert_str_eq(o.p + o.n - 3, "}\n\n");
  free(o.p);
  free(r);
}

static struct inspect_rec *small_rec(int status, const char *target) {
  struct inspect_src src = sample();
  src.status = status;
  src.target = slice_cstr(target);
  return inspect_rec_build(&src);
}

Test(inspect, store_keeps_the_newest_n) {
  struct inspect_store st;
  cr_assert_eq(inspect_store_init(&st, 3, 1u << 30), 0);
  for (int i = 0; i < 5; i++)
    cr_assert(inspect_store_push(&st, small_rec(200, "/x")));
  cr_assert_eq(st.n, 3);
  cr_assert_eq(st.evicted, 2);
  cr_assert_eq(inspect_store_newest(&st, 0)->id, 5);
  cr_assert_eq(inspect_store_newest(&st, 2)->id, 3);
  cr_assert_null(inspect_store_newest(&st, 3));
  cr_assert_null(inspect_store_find(&st, 2));
  cr_assert_eq(inspect_store_find(&st, 4)->id, 4);
  inspect_store_destroy(&st);
}

Test(inspect, store_is_bounded_in_bytes) {
  struct inspect_rec *probe = small_rec(200, "/x");
  size_t one = probe->size;
  free(probe);
  struct inspect_store st;
  cr_assert_eq(inspect_store_init(&st, 100, one * 2 + one / 2), 0);
  for (int i = 0; i < 10; i++)
    inspect_store_push(&st, small_rec(200, "/x"));
  cr_assert_eq(st.n, 2);
  cr_assert(st.bytes <= st.max_bytes);
  cr_assert_eq(inspect_store_newest(&st, 0)->id, 10);
  inspect_store_destroy(&st);

  /* a record larger than the whole bound is refused */
  cr_assert_eq(inspect_store_init(&st, 100, one - 1), 0);
  cr_assert_not(inspect_store_push(&st, small_rec(200, "/x")));
  cr_assert_eq(st.n, 0);
  inspect_store_destroy(&st);
}

Test(inspect, filters) {
  struct inspect_filter f;
  char err[128];
  cr_assert_eq(inspect_filter_parse(SLICE_LIT("?limit=2&status=5xx&path=%2Fap&route=api&x=1"), &f,
                                    err, sizeof err),
               0);
  cr_assert_eq(f.limit, 2);
  cr_assert_str_eq(f.status, "5xx");
  cr_assert_str_eq(f.path, "/ap");
  cr_assert_str_eq(f.route, "api");
  struct inspect_rec *a = small_rec(502, "/api/x"), *b = small_rec(200, "/api/x"),
                     *c = small_rec(503, "/web");
  cr_assert(inspect_filter_match(&f, a));
  cr_assert_not(inspect_filter_match(&f, b));
  cr_assert_not(inspect_filter_match(&f, c));
  cr_assert_eq(inspect_filter_parse(SLICE_LIT("route=2&status=502"), &f, err, sizeof err), 0);
  cr_assert(inspect_filter_match(&f, a));
  cr_assert_eq(inspect_filter_parse(SLICE_LIT("route=3"), &f, err, sizeof err), 0);
  cr_assert_not(inspect_filter_match(&f, a));
  cr_assert_eq(inspect_filter_parse(SLICE_LIT("limit=-1"), &f, err, sizeof err), -1);
  cr_assert_str_eq(err, "limit=-1: expected a whole number");
  cr_assert_eq(inspect_filter_parse(SLICE_LIT("status=abc"), &f, err, sizeof err), -1);
  cr_assert_str_eq(err, "status=abc: expected a status (404) or a class (4xx)");
  free(a);
  free(b);
  free(c);
}

Test(inspect, list_is_newest_first_and_filtered) {
  struct inspect_store st;
  inspect_store_init(&st, 10, 1u << 30);
  inspect_store_push(&st, small_rec(200, "/a"));
  inspect_store_push(&st, small_rec(404, "/b"));
  inspect_store_push(&st, small_rec(200, "/c"));
  struct inspect_filter f;
  char err[64];
  inspect_filter_parse(SLICE_LIT("status=200"), &f, err, sizeof err);
  struct inspect_out o = {0};
  inspect_render_list(&o, &st, &f, false);
  const char *c = strstr(o.p, "\"target\":\"/c\""), *a = strstr(o.p, "\"target\":\"/a\"");
  cr_assert(c && a && c < a, "%s", o.p);
  cr_assert_null(strstr(o.p, "\"target\":\"/b\""));
  cr_assert_not_null(strstr(o.p, "],\"count\":2,\"kept\":3,\"evicted\":0}"));
  free(o.p);
  inspect_store_destroy(&st);
}

Test(inspect, replay_head) {
  struct inspect_src src = sample();
  src.nredact = 0;
  struct inspect_rec *r = inspect_rec_build(&src);
  r->id = 9;
  struct inspect_out o = {0};
  inspect_render_replay(&o, r);
  cr_assert_str_eq(o.p, "GET /users HTTP/1.1\r\n"
                        "Host: api.example.com\r\n"
                        "Authorization: Bearer secret\r\n"
                        "X-Trace: a\"b\\c<d\r\n"
                        "X-Ferry-Replay-Of: 9\r\n"
                        "Connection: close\r\n\r\n");
  free(o.p);
  free(r);
}

/* --- WebSocket frames ---------------------------------------------------- */

static struct inspect_ws_frame ws_frames[INSPECT_WS_MAX_FRAMES];

static void ws_init(struct inspect_ws_log *log, uint64_t preview) {
  memset(log, 0, sizeof *log);
  log->frames = ws_frames;
  log->preview_left = preview;
  log->dir[0].frame = log->dir[1].frame = -1;
}

/* A frame as a client (masked) or a server (unmasked) sends it. */
static size_t ws_frame(char *out, uint8_t b0, const char *payload, size_t n, bool masked) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t k = 0;
  out[k++] = (char)b0;
  uint8_t m = masked ? 0x80 : 0;
  if (n < 126) {
    out[k++] = (char)(m | n);
  } else {
    out[k++] = (char)(m | 126);
    out[k++] = (char)(n >> 8);
    out[k++] = (char)(n & 0xff);
  }
  if (masked)
    for (int i = 0; i < 4; i++)
      out[k++] = (char)key[i];
  for (size_t i = 0; i < n; i++)
    out[k++] = (char)(payload[i] ^ (masked ? key[i & 3] : 0));
  return k;
}

Test(inspect, websocket_frames_each_way_split_anywhere) {
  char buf[1024], big[300];
  memset(big, 'b', sizeof big);
  size_t n = ws_frame(buf, 0x81, "Hello ferry", 11, true); /* client text */
  n += ws_frame(buf + n, 0x82, big, sizeof big, true);     /* client binary, 16-bit length */
  n += ws_frame(buf + n, 0x88, "\x03\xe8", 2, true);       /* close */
  struct inspect_ws_log log;
  ws_init(&log, 8);
  for (size_t i = 0; i < n; i++) /* one byte at a time: every split */
    inspect_ws_feed(&log, 0, buf + i, 1);
  char sb[64];
  size_t m = ws_frame(sb, 0x01, "part", 4, false); /* server text, not final */
  m += ws_frame(sb + m, 0x80, "!", 1, false);      /* continuation, final */
  inspect_ws_feed(&log, 1, sb, m);
  cr_assert_eq(log.nframes, 5);
  cr_assert_eq(log.frames[0].dir, 0);
  cr_assert_eq(log.frames[0].opcode, 1);
  cr_assert(log.frames[0].fin);
  cr_assert_eq(log.frames[0].size, 11);
  cr_assert_eq(log.frames[0].npreview, 8, "previews stay within inspect_body_bytes");
  cr_assert(memcmp(log.frames[0].preview, "Hello fe", 8) == 0, "unmasked");
  cr_assert_eq(log.frames[1].opcode, 2);
  cr_assert_eq(log.frames[1].size, 300);
  cr_assert_eq(log.frames[1].npreview, 0, "no preview of binary frames");
  cr_assert_eq(log.frames[2].opcode, 8);
  cr_assert_eq(log.frames[3].dir, 1);
  cr_assert_not(log.frames[3].fin);
  cr_assert_eq(log.frames[3].npreview, 0, "the preview budget is spent");
  cr_assert_eq(log.frames[4].opcode, 0);
  struct inspect_out o = {0};
  inspect_ws_render(&o, &log);
  cr_assert_not_null(strstr(o.p, "{\"dir\":\"client\",\"opcode\":1,\"type\":\"text\",\"fin\":true,"
                                 "\"size\":11,\"preview\":\"Hello fe\"}"),
                     "%s", o.p);
  cr_assert_not_null(strstr(o.p, "{\"dir\":\"upstream\",\"opcode\":0,\"type\":\"continuation\""),
                     "%s", o.p);
  free(o.p);
}

Test(inspect, websocket_frames_are_bounded_and_garbage_stops_the_parser) {
  struct inspect_ws_log log;
  ws_init(&log, 0);
  char f[8];
  size_t k = ws_frame(f, 0x89, "", 0, false); /* ping */
  for (int i = 0; i < INSPECT_WS_MAX_FRAMES + 5; i++)
    inspect_ws_feed(&log, 1, f, k);
  cr_assert_eq(log.nframes, INSPECT_WS_MAX_FRAMES);
  cr_assert_eq(log.dropped, 5);
  ws_init(&log, 100);
  inspect_ws_feed(&log, 0, "GET / HTTP/1.1\r\n", 16); /* reserved bits set: not framing */
  cr_assert(log.dir[0].broken);
  cr_assert_eq(log.nframes, 0);
}
