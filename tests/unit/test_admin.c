/* admin: the registration API, streaming, the event queue and the
 * slow-client bound, driven through a real admin listener on loopback. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/admin.h"

struct fixture {
  struct admin *a;
  uint16_t port;
  struct admin_stream *stream;
  _Atomic int closed;
  _Atomic int events;
  char seen_query[64];
  char seen_header[64];
};

static struct fixture fx;

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&sa, sizeof(sa));
  socklen_t len = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd);
  return ntohs(sa.sin_port);
}

static int connect_admin(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons(fx.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

/* Read until the peer closes (or 10 s); returns bytes read. */
static size_t read_all(int fd, char *buf, size_t cap) {
  size_t n = 0;
  for (;;) {
    ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
    if (r <= 0)
      break;
    n += (size_t)r;
    if (n + 1 >= cap)
      break;
  }
  buf[n] = 0;
  return n;
}

/* Read until needle appears (or 10 s). */
static bool read_until(int fd, char *buf, size_t cap, size_t *n, const char *needle) {
  while (!strstr(buf, needle)) {
    ssize_t r = recv(fd, buf + *n, cap - 1 - *n, 0);
    if (r <= 0)
      return false;
    *n += (size_t)r;
    buf[*n] = 0;
  }
  return true;
}

static void hello(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  (void)ud;
  bool found;
  struct slice q = admin_request_param(req, "name", &found);
  struct slice h = admin_request_header(req, "x-test");
  snprintf(fx.seen_query, sizeof(fx.seen_query), "%.*s", (int)q.n, q.p ? q.p : "");
  snprintf(fx.seen_header, sizeof(fx.seen_header), "%.*s", (int)h.n, h.p ? h.p : "");
  admin_reply_status(rep, 201, "application/json");
  admin_reply_header(rep, "X-Extra: 1");
  admin_reply_printf(rep, "{\"path\":\"%.*s\"}", (int)req->path.n, req->path.p);
}

static void on_stream_closed(void *ud, struct admin_stream *s) {
  (void)ud;
  (void)s;
  fx.stream = NULL;
  atomic_fetch_add(&fx.closed, 1);
}

static void sse(void *ud, const struct admin_request *req, struct admin_reply *rep) {
  (void)ud;
  (void)req;
  bool found;
  admin_request_param(req, "small", &found);
  fx.stream =
      admin_reply_stream(rep, "text/event-stream", found ? 262144 : 0, on_stream_closed, NULL);
  cr_assert_not_null(fx.stream);
  admin_stream_write(fx.stream, ": hello\n\n", 9);
}

/* Runs on the admin thread: write one event to the stream. */
static void push_event(void *arg) {
  atomic_fetch_add(&fx.events, 1);
  if (fx.stream)
    admin_stream_write(fx.stream, arg, strlen(arg));
}

static void setup(void) {
  memset(&fx, 0, sizeof(fx));
  fx.port = free_port();
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons(fx.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  memcpy(&ss, &sa, sizeof(sa));
  fx.a = admin_new(&ss, "127.0.0.1:test");
  cr_assert_not_null(fx.a);
  cr_assert_eq(admin_route(fx.a, "/hello", true, hello, NULL), 0);
  cr_assert_eq(admin_route(fx.a, "/stream", false, sse, NULL), 0);
  char msg[256];
  cr_assert_eq(admin_start(fx.a, msg, sizeof(msg)), 0, "%s", msg);
}

static void teardown(void) {
  admin_stop(fx.a);
  admin_join(fx.a);
  admin_free(fx.a);
}

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 30);

static void get(const char *req, char *buf, size_t cap) {
  int fd = connect_admin();
  send(fd, req, strlen(req), 0);
  read_all(fd, buf, cap);
  close(fd);
}

Test(admin, builtin_endpoints_and_404) {
  char buf[4096];
  get("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf, "%s", buf);
  cr_assert(strstr(buf, "\r\n\r\nok\n"), "%s", buf);
  get("GET /readyz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 200 ") == buf, "%s", buf);
  admin_set_ready(fx.a, false);
  get("GET /readyz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 503 ") == buf, "%s", buf);
  get("HEAD /healthz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "Content-Length: 3\r\n"), "%s", buf);
  cr_assert(strlen(buf) > 4 && strcmp(buf + strlen(buf) - 4, "\r\n\r\n") == 0,
            "HEAD answer has no body: %s", buf);
  get("GET /unknown HTTP/1.1\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 404 ") == buf, "%s", buf);
  get("garbage\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 400 ") == buf, "%s", buf);
}

Test(admin, registered_handler_gets_path_query_headers) {
  char buf[4096];
  get("GET /hello/there?x=1&name=ferry HTTP/1.1\r\nX-Test:  yes \r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 201 ") == buf, "%s", buf);
  cr_assert(strstr(buf, "Content-Type: application/json\r\n"), "%s", buf);
  cr_assert(strstr(buf, "X-Extra: 1\r\n"), "%s", buf);
  cr_assert(strstr(buf, "Content-Length: 23\r\n"), "%s", buf);
  cr_assert(strstr(buf, "\r\n\r\n{\"path\":\"/hello/there\"}"), "%s", buf);
  cr_assert_str_eq(fx.seen_query, "ferry");
  cr_assert_str_eq(fx.seen_header, "yes");
  /* prefix registrations match on segment boundaries only */
  get("GET /hellothere HTTP/1.1\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 404 ") == buf, "%s", buf);
}

Test(admin, stream_gets_posted_events_and_reports_client_gone) {
  int fd = connect_admin();
  const char *req = "GET /stream HTTP/1.1\r\n\r\n";
  send(fd, req, strlen(req), 0);
  char buf[8192] = {0};
  size_t n = 0;
  cr_assert(read_until(fd, buf, sizeof(buf), &n, ": hello\n\n"), "%s", buf);
  cr_assert(strstr(buf, "Content-Type: text/event-stream\r\n"), "%s", buf);
  cr_assert_eq(admin_post(fx.a, push_event, "data: one\n\n"), 0);
  cr_assert_eq(admin_post(fx.a, push_event, "data: two\n\n"), 0);
  cr_assert(read_until(fd, buf, sizeof(buf), &n, "data: two\n\n"), "%s", buf);
  cr_assert(strstr(buf, "data: one\n\ndata: two\n\n"), "%s", buf);
  cr_assert_eq(atomic_load(&fx.closed), 0);
  close(fd);
  /* the client went away: on_closed runs once, on the admin loop */
  for (int i = 0; i < 1000 && atomic_load(&fx.closed) == 0; i++)
    poll(NULL, 0, 10);
  cr_assert_eq(atomic_load(&fx.closed), 1);
}

Test(admin, slow_stream_client_is_dropped_at_the_bound) {
  int fd = connect_admin();
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  const char *req = "GET /stream?small=1 HTTP/1.1\r\n\r\n";
  send(fd, req, strlen(req), 0);
  char buf[8192] = {0};
  size_t n = 0;
  cr_assert(read_until(fd, buf, sizeof(buf), &n, ": hello\n\n"), "%s", buf);
  /* never read again: the queue passes 256 KiB once the socket buffers fill */
  static char big[65536];
  memset(big, 'x', sizeof(big) - 1);
  for (int i = 0; i < 200 && atomic_load(&fx.closed) == 0; i++) {
    admin_post(fx.a, push_event, big);
    poll(NULL, 0, 5);
  }
  cr_assert_eq(atomic_load(&fx.closed), 1, "the slow client was not dropped");
  close(fd);
}

Test(admin, post_reports_full_queue_without_blocking) {
  /* The admin loop is busy in no handler, so fill faster than it drains:
   * post from this thread until a post fails or the capacity is exceeded
   * many times over; either way nothing blocks and drops are counted. */
  static char msg[] = "";
  uint64_t failed = 0;
  for (unsigned i = 0; i < ADMIN_QUEUE_CAP * 64u; i++)
    if (admin_post(fx.a, push_event, msg) == ADMIN_EFULL)
      failed++;
  cr_assert_eq(admin_events_dropped(fx.a), failed);
}

Test(admin, silent_client_is_closed_after_the_head_timeout) {
  int fd = connect_admin();
  struct timeval tv = {20, 0}; /* the admin gives a request head 10 s */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  send(fd, "GET /healthz HTTP/1.1\r\n", 23, 0); /* never finished */
  char buf[64];
  ssize_t r = recv(fd, buf, sizeof(buf), 0);
  cr_assert_eq(r, 0, "expected the admin to close the connection (recv returned %zd)", r);
  close(fd);
}

/* ---- Host guard (DNS rebinding) ----------------------------------------- */

static bool host_ok(const char *host, const char *const *allowed, size_t n) {
  return admin_host_allowed(slice_cstr(host), allowed, n);
}

Test(admin_host, ip_literals_with_and_without_port_are_allowed) {
  cr_assert(host_ok("127.0.0.1", NULL, 0));
  cr_assert(host_ok("127.0.0.1:9901", NULL, 0));
  cr_assert(host_ok("10.1.2.3:80", NULL, 0));
  cr_assert(host_ok("[::1]", NULL, 0));
  cr_assert(host_ok("[::1]:9901", NULL, 0));
  cr_assert(host_ok("[::ffff:127.0.0.1]:9901", NULL, 0));
}

Test(admin_host, localhost_in_any_case_is_allowed) {
  cr_assert(host_ok("localhost", NULL, 0));
  cr_assert(host_ok("localhost:9901", NULL, 0));
  cr_assert(host_ok("LOCALHOST:9901", NULL, 0));
  cr_assert(host_ok("LocalHost", NULL, 0));
}

Test(admin_host, listed_names_are_allowed_in_any_case_others_refused) {
  const char *const allowed[] = {"ferry.internal", "admin.example"};
  cr_assert(host_ok("ferry.internal", allowed, 2));
  cr_assert(host_ok("FERRY.Internal:9901", allowed, 2));
  cr_assert(host_ok("admin.example", allowed, 2));
  cr_assert_not(host_ok("evil.example", allowed, 2));
  cr_assert_not(host_ok("evil.example", NULL, 0));
  cr_assert_not(host_ok("evil.example:9901", NULL, 0));
  cr_assert_not(host_ok("ferry.internal.evil.example", allowed, 2));
  cr_assert_not(host_ok("localhost.evil.example", NULL, 0));
}

Test(admin_host, star_allows_any_host) {
  const char *const star[] = {"ferry.internal", "*"};
  cr_assert(host_ok("evil.example", star, 2));
  cr_assert(host_ok("evil.example:abc", star, 2));
  cr_assert(host_ok("", star, 2));
}

Test(admin_host, names_that_only_look_like_ips_are_refused) {
  cr_assert_not(host_ok("127.0.0.1.evil.example", NULL, 0));
  cr_assert_not(host_ok("127.0.0.1.evil.example:9901", NULL, 0));
  cr_assert_not(host_ok("0x7f.1", NULL, 0));
  cr_assert_not(host_ok("0x7f000001", NULL, 0));
  cr_assert_not(host_ok("2130706433", NULL, 0));
  cr_assert_not(host_ok("127.1", NULL, 0));
  cr_assert_not(host_ok("[::1].evil.example", NULL, 0));
  cr_assert_not(host_ok("[evil.example]", NULL, 0));
  cr_assert_not(host_ok("::1", NULL, 0)); /* IPv6 only in brackets */
}

Test(admin_host, empty_value_and_odd_ports_are_refused) {
  cr_assert_not(host_ok("", NULL, 0));
  cr_assert_not(host_ok(":9901", NULL, 0));
  cr_assert_not(host_ok("localhost:", NULL, 0));
  cr_assert_not(host_ok("127.0.0.1:", NULL, 0));
  cr_assert_not(host_ok("localhost:abc", NULL, 0));
  cr_assert_not(host_ok("127.0.0.1:99a", NULL, 0));
  cr_assert_not(host_ok("127.0.0.1:65536", NULL, 0));
  cr_assert_not(host_ok("127.0.0.1:123456", NULL, 0));
  cr_assert_not(host_ok("[::1]:", NULL, 0));
  cr_assert_not(host_ok("[::1]x", NULL, 0));
  cr_assert_not(host_ok("[::1", NULL, 0));
  cr_assert(host_ok("127.0.0.1:65535", NULL, 0));
}

Test(admin_host, no_host_header_is_allowed) {
  cr_assert(admin_host_allowed((struct slice){NULL, 0}, NULL, 0));
}

Test(admin, refused_host_gets_403_before_any_route) {
  char buf[4096];
  get("GET /hello/x HTTP/1.1\r\nHost: evil.example:9901\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 403 Forbidden\r\n") == buf, "%s", buf);
  cr_assert(strstr(buf, "\r\n\r\nadmin: Host \"evil.example:9901\" is not allowed (a guard "
                        "against DNS rebinding); use the IP address or localhost, or list the "
                        "name in admin.allowed_hosts\n"),
            "%s", buf);
  cr_assert_str_eq(fx.seen_query, "", "the handler must not have run");
  get("GET /healthz HTTP/1.0\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf, "no Host: %s", buf);
  get("GET /healthz HTTP/1.1\r\nHost: [::1]:9901\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf, "%s", buf);
}

Test(admin, refused_host_is_echoed_bounded_without_control_bytes) {
  char buf[4096], req[512];
  snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: a\x1b[2J\"\\b.%0100d\r\n\r\n", 7);
  get(req, buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 403 ") == buf, "%s", buf);
  const char *body = strstr(buf, "\r\n\r\n");
  cr_assert_not_null(body);
  body += 4;
  for (const char *p = body; *p; p++)
    cr_assert(*p == '\n' || ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f),
              "control byte 0x%02x in the body", (unsigned char)*p);
  cr_assert(strstr(body, "admin: Host \"a\\x1b[2J\\x22\\x5cb.000"), "%s", body);
  cr_assert(strstr(body, "...\" is not allowed"), "long value cut: %s", body);
  cr_assert_lt(strlen(body), 300u, "%s", body);
}

Test(admin_host, listener_serves_listed_names_from_its_own_copy, .timeout = 30) {
  memset(&fx, 0, sizeof(fx));
  fx.port = free_port();
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons(fx.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  memcpy(&ss, &sa, sizeof(sa));
  fx.a = admin_new(&ss, "127.0.0.1:test");
  cr_assert_not_null(fx.a);
  char *names[] = {strdup("ferry.internal")};
  cr_assert_eq(admin_set_allowed_hosts(fx.a, names, 1), 0);
  memset(names[0], 'x', strlen(names[0])); /* the admin must not read the caller's copy */
  free(names[0]);
  char msg[256];
  cr_assert_eq(admin_start(fx.a, msg, sizeof(msg)), 0, "%s", msg);
  char buf[4096];
  get("GET /healthz HTTP/1.1\r\nHost: Ferry.Internal:9901\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf, "%s", buf);
  get("GET /healthz HTTP/1.1\r\nHost: other.internal\r\n\r\n", buf, sizeof(buf));
  cr_assert(strstr(buf, "HTTP/1.1 403 ") == buf, "%s", buf);
  teardown();
}
