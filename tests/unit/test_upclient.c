/* upclient: one upstream connection against a scripted server. Each test
 * connects a real upclient on a loop, sends a request through its stream,
 * lets a server thread answer with scripted bytes, and checks what the
 * owner's callbacks were told (head, de-framed body, done or error) and
 * whether the connection may be reused. Every test ends with the
 * connection closed, no handle left (uv_loop_close() == 0) and every
 * block back in the pool. */
#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/http_head.h"
#include "ferry/slice.h"
#include "ferry/upclient.h"
#include "leak_check.h"
#include "loop_fixture.h"
#include "script_server.h"

TestSuite(upclient, .timeout = 60, .fini = abort_on_leaks);

/* The holder of the upclient: records every callback. */
struct holder {
  struct loop_fixture fx;
  struct script_server srv;
  struct upclient uc;
  const char *request;
  bool head_request;
  /* the response head goes here */
  struct arena arena;
  struct iobuf *pin;
  struct hdr hv[32];
  struct hdr_list hdrs;
  struct slice reason;
  /* what the callbacks said */
  bool connected;
  int connect_status;
  int heads;
  struct upclient_head head;
  char body[1024];
  size_t nbody;
  int dones, errors, err;
  bool finished; /* done and its read handed over, or error */
  bool reusable; /* upclient_reusable when finished */
  bool closed;
};

static void h_connected(void *owner, int status) {
  struct holder *h = owner;
  h->connected = true;
  h->connect_status = status;
  if (status != 0) {
    h->finished = true;
    return;
  }
  /* static bytes: referenced, not copied */
  cr_assert_eq(stream_add(&h->uc.st, h->request, strlen(h->request), NULL), 0);
  cr_assert_eq(stream_flush(&h->uc.st), 0);
}

static int h_head(void *owner, const struct upclient_head *hd) {
  struct holder *h = owner;
  h->heads++;
  h->head = *hd;
  return h->head_request ? 1 : 0; /* as the exchange does: HEAD has no body */
}

static int h_body(void *owner, const char *p, size_t n, struct iobuf *b) {
  struct holder *h = owner;
  cr_assert_not_null(b);
  cr_assert(p >= b->data && p + n <= b->data + b->len, "body bytes lie in the read block");
  cr_assert_leq(h->nbody + n, sizeof(h->body));
  memcpy(h->body + h->nbody, p, n);
  h->nbody += n;
  return 0;
}

static int h_done(void *owner) {
  struct holder *h = owner;
  h->dones++;
  return 1; /* the final response */
}

static void h_read_done(void *owner) {
  struct holder *h = owner;
  if (h->dones > 0 && !h->finished) {
    h->finished = true;
    h->reusable = upclient_reusable(&h->uc, true);
  }
}

static void h_error(void *owner, int err) {
  struct holder *h = owner;
  h->errors++;
  h->err = err;
  h->finished = true;
  h->reusable = upclient_reusable(&h->uc, true);
}

static const struct upclient_cbs holder_cbs = {
    .connected = h_connected,
    .head = h_head,
    .body = h_body,
    .done = h_done,
    .read_done = h_read_done,
    .error = h_error,
};

static void on_uc_closed(struct upclient *uc) {
  struct holder *h = container_of(uc, struct holder, uc);
  h->closed = true;
}

#define GET "GET /x HTTP/1.1\r\nHost: up\r\n\r\n"
#define HEAD "HEAD /x HTTP/1.1\r\nHost: up\r\n\r\n"

/* Start the server with `response`, connect, send `request` and run the
 * loop until the holder was told the response ended or failed. */
static void exchange(struct holder *h, const char *request, const char *response,
                     bool close_after) {
  memset(h, 0, sizeof(*h));
  loop_fixture_init(&h->fx);
  script_server_start(&h->srv, response, strlen(response), close_after);
  h->request = request;
  h->head_request = strncmp(request, "HEAD ", 5) == 0;
  arena_init(&h->arena, &h->fx.pool, 64 * 1024);
  h->hdrs = (struct hdr_list){.v = h->hv, .cap = 32};
  struct upclient_sink sink = {&h->arena, &h->pin, &h->hdrs, &h->reason};
  cr_assert_eq(upclient_init(&h->uc, &h->fx.loop, "scripted", on_uc_closed), 0);
  upclient_begin(&h->uc, &holder_cbs, h, &sink, h->head_request);
  struct sockaddr_in a;
  script_server_addr(&h->srv, &a);
  cr_assert_eq(upclient_connect(&h->uc, (const struct sockaddr *)&a), 0);
  LOOP_WAIT(&h->fx, h->finished);
  cr_assert(h->connected);
  cr_assert_eq(h->connect_status, 0);
}

static bool has_header(struct holder *h, const char *name, const char *value) {
  const struct hdr *x = http_head_find(&h->hdrs, slice_cstr(name));
  return x && slice_eq(x->value, slice_cstr(value));
}

/* Close the connection, check the server saw exactly the request, give
 * back the head's memory and check the loop ends clean. */
static void finish(struct holder *h) {
  upclient_close(&h->uc);
  LOOP_WAIT(&h->fx, h->closed);
  script_server_join(&h->srv);
  cr_assert(h->srv.answered);
  cr_assert_eq(h->srv.req_len, strlen(h->request));
  cr_assert_str_eq(h->srv.req, h->request, "the server got the request as sent");
  if (h->pin)
    iobuf_unref(h->pin);
  arena_reset(&h->arena);
  loop_fixture_finish(&h->fx);
}

Test(upclient, a_content_length_response_is_read_whole_and_reusable) {
  struct holder h;
  exchange(&h, GET, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Test: one\r\n\r\nhello world",
           false);
  cr_assert_eq(h.heads, 1);
  cr_assert_eq(h.head.status, 200);
  cr_assert(h.head.has_length);
  cr_assert_eq(h.head.length, 11u);
  cr_assert_not(h.head.chunked);
  cr_assert(h.head.keep_alive);
  cr_assert(slice_eq(h.reason, slice_cstr("OK")));
  cr_assert(has_header(&h, "x-test", "one"));
  cr_assert_eq(h.nbody, 11u);
  cr_assert_arr_eq(h.body, "hello world", 11);
  cr_assert_eq(h.dones, 1);
  cr_assert_eq(h.errors, 0);
  cr_assert(h.reusable, "a whole response on an open keep-alive connection");
  cr_assert(upclient_reusable(&h.uc, true));
  cr_assert_not(upclient_reusable(&h.uc, false), "not when the request was not all sent");
  finish(&h);
  cr_assert(h.srv.peer_closed);
}

Test(upclient, a_chunked_response_is_dechunked_and_reusable) {
  struct holder h;
  exchange(&h, GET,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Test: two\r\n\r\n"
           "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
           false);
  cr_assert_eq(h.heads, 1);
  cr_assert_eq(h.head.status, 200);
  cr_assert(h.head.chunked);
  cr_assert_not(h.head.has_length);
  cr_assert(has_header(&h, "X-Test", "two"));
  cr_assert_eq(h.nbody, 11u, "framing removed: %zu bytes", h.nbody);
  cr_assert_arr_eq(h.body, "hello world", 11);
  cr_assert_eq(h.dones, 1);
  cr_assert_eq(h.errors, 0);
  cr_assert(h.reusable);
  finish(&h);
}

Test(upclient, a_close_delimited_response_ends_at_eof_and_is_not_reusable) {
  struct holder h;
  exchange(&h, GET, "HTTP/1.1 200 OK\r\nX-Test: three\r\n\r\nuntil the server closes", true);
  cr_assert_eq(h.heads, 1);
  cr_assert_not(h.head.has_length);
  cr_assert_not(h.head.chunked);
  cr_assert_eq(h.nbody, 23u);
  cr_assert_arr_eq(h.body, "until the server closes", 23);
  cr_assert_eq(h.dones, 1, "EOF ends the body: done, not an error");
  cr_assert_eq(h.errors, 0);
  cr_assert_not(h.reusable, "the server closed it");
  cr_assert(h.uc.eof);
  finish(&h);
}

Test(upclient, a_response_cut_short_fails_with_eof_and_is_not_reusable) {
  struct holder h;
  exchange(&h, GET, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", true);
  cr_assert_eq(h.heads, 1);
  cr_assert_eq(h.head.length, 100u);
  cr_assert_eq(h.nbody, 10u);
  cr_assert_arr_eq(h.body, "0123456789", 10);
  cr_assert_eq(h.dones, 0);
  cr_assert_eq(h.errors, 1);
  cr_assert_eq(h.err, UV_EOF);
  cr_assert_not(h.reusable);
  finish(&h);
}

Test(upclient, bytes_after_the_response_make_it_not_reusable) {
  struct holder h;
  /* one send(): the extra bytes come in the read that ends the response */
  exchange(&h, GET, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false);
  cr_assert_eq(h.heads, 1);
  cr_assert_eq(h.nbody, 2u);
  cr_assert_arr_eq(h.body, "ok", 2);
  cr_assert_eq(h.dones, 1);
  cr_assert_eq(h.errors, 0);
  cr_assert_not(h.reusable, "a server that says more than its response is not trusted again");
  finish(&h);
}

Test(upclient, a_head_response_declaring_a_length_has_no_body) {
  struct holder h;
  exchange(&h, HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", false);
  cr_assert_eq(h.heads, 1);
  cr_assert(h.head.has_length);
  cr_assert_eq(h.head.length, 1234u);
  cr_assert_eq(h.nbody, 0u);
  cr_assert_eq(h.dones, 1, "done without waiting for 1234 bytes");
  cr_assert_eq(h.errors, 0);
  cr_assert(h.reusable);
  finish(&h);
}

Test(upclient, a_head_response_without_a_length_ends_at_its_head) {
  struct holder h;
  exchange(&h, HEAD, "HTTP/1.1 200 OK\r\nX-Test: four\r\n\r\n", false);
  cr_assert_eq(h.heads, 1);
  cr_assert_not(h.head.has_length);
  cr_assert(has_header(&h, "X-Test", "four"));
  cr_assert_eq(h.nbody, 0u);
  cr_assert_eq(h.dones, 1, "not read until the server closes");
  cr_assert_eq(h.errors, 0);
  cr_assert(h.reusable);
  finish(&h);
}
