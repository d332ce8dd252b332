/* bench-tlsload: TLS handshakes per second against one HTTPS listener, a
 * new connection for every request (bench/run.sh, https section).
 *
 * Keeps CONNS connections in flight on one thread (epoll, non-blocking):
 * each connects, completes a TLS handshake, sends one
 * `GET PATH HTTP/1.1` with `Connection: close`, reads the response to the
 * server's close and starts over. In `resume` mode each of the CONNS
 * slots offers the session its previous connection got (a TLS 1.3 ticket
 * is used once, as RFC 8446 advises clients; a 1.2 ticket or session id),
 * after one untimed full handshake per slot, so every timed handshake can
 * resume; the client counts what the server did with
 * SSL_session_reused, so the figure shows whether resumption happened. Certificates are not
 * verified (the cost measured is the server's).
 *
 * usage: bench-tlsload HOST PORT full|resume CONNS SECONDS [PATH [TLSVER]]
 * TLSVER: 1.2 or 1.3 (default: the highest both sides speak).
 * Prints one line: "tlsload MODE done N full F resumed R errors E
 * seconds S rate N/S version V cipher C group G". Bounded by SECONDS
 * (plus 10 s for connections in flight). Loopback only by intent: no
 * name resolution, HOST is an IPv4 literal. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct slot {
  SSL_SESSION *sess; /* the newest session this slot's connections got */
  int fd;
  SSL *ssl;
  bool got_200;
  bool counted_hs;
  size_t got;
  char head[16];
};

static char req[512];
static size_t reqlen;
static struct sockaddr_in addr;
static SSL_CTX *ctx;
static bool resume;
static int ep;
static unsigned long done, full, resumed, errors, unclean;
static char version[32], cipher[64], group[32];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  struct slot *s = SSL_get_app_data(ssl);
  if (s->sess)
    SSL_SESSION_free(s->sess);
  s->sess = sess;
  return 1; /* we keep the reference */
}

static void slot_close(struct slot *s) {
  if (s->ssl)
    SSL_free(s->ssl);
  if (s->fd >= 0)
    close(s->fd);
  s->ssl = NULL;
  s->fd = -1;
}

static int slot_open(struct slot *s) {
  SSL_SESSION *sess = s->sess;
  memset(s, 0, sizeof *s);
  s->sess = sess;
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0)
    return -1;
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    close(s->fd);
    s->fd = -1;
    return -1;
  }
  s->ssl = SSL_new(ctx);
  SSL_set_fd(s->ssl, s->fd);
  SSL_set_connect_state(s->ssl);
  SSL_set_app_data(s->ssl, s);
  if (resume && s->sess)
    SSL_set_session(s->ssl, s->sess);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
  epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
  return 0;
}

static void want(struct slot *s, int err) {
  struct epoll_event ev = {.events = err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN,
                           .data.ptr = s};
  epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Drive one connection; true when it ended (done or failed). */
static bool step(struct slot *s) {
  if (!s->counted_hs) {
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r != 1) {
      int e = SSL_get_error(s->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        want(s, e);
        return false;
      }
      errors++;
      return true;
    }
    s->counted_hs = true;
    if (SSL_session_reused(s->ssl))
      resumed++;
    else
      full++;
    if (!version[0]) {
      snprintf(version, sizeof version, "%s", SSL_get_version(s->ssl));
      snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(s->ssl));
      int g = (int)SSL_get_negotiated_group(s->ssl);
      const char *gn = g ? SSL_group_to_name(s->ssl, g) : NULL;
      snprintf(group, sizeof group, "%s", gn ? gn : "-");
    }
    if (SSL_write(s->ssl, req, (int)reqlen) != (int)reqlen) {
      errors++;
      return true;
    }
  }
  char buf[16384];
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(s->ssl, buf, sizeof buf);
    if (n > 0) {
      if (s->got < sizeof s->head) {
        size_t k = sizeof s->head - s->got < (size_t)n ? sizeof s->head - s->got : (size_t)n;
        memcpy(s->head + s->got, buf, k);
        if (s->got + k >= 12)
          s->got_200 = memcmp(s->head + 9, "200", 3) == 0;
      }
      s->got += (size_t)n;
      continue;
    }
    int e = SSL_get_error(s->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      want(s, e);
      return false;
    }
    /* close_notify or the socket's end: the response is complete */
    if (s->got_200) {
      done++;
      if (e != SSL_ERROR_ZERO_RETURN)
        unclean++; /* no close_notify: OpenSSL will not resume its session */
      /* ended cleanly: freeing it must not mark its session unresumable */
      SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    } else {
      errors++;
    }
    return true;
  }
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: bench-tlsload HOST PORT full|resume CONNS SECONDS [PATH [1.2|1.3]]\n");
    return 2;
  }
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "bench-tlsload: %s is not an IPv4 address (give a literal)\n", argv[1]);
    return 2;
  }
  resume = strcmp(argv[3], "resume") == 0;
  int conns = atoi(argv[4]);
  double secs = atof(argv[5]);
  const char *path = argc > 6 ? argv[6] : "/";
  const char *ver = argc > 7 ? argv[7] : "";
  if (conns < 1 || conns > 4096 || secs <= 0 || secs > 600) {
    fprintf(stderr, "bench-tlsload: CONNS must be 1-4096 and SECONDS 0-600\n");
    return 2;
  }
  reqlen = (size_t)snprintf(req, sizeof req,
                            "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", path);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (strcmp(ver, "1.2") == 0)
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  else if (strcmp(ver, "1.3") == 0)
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct slot *slots = calloc((size_t)conns, sizeof *slots);
  if (!ctx || ep < 0 || !slots)
    return 1;

  /* In resume mode each slot first makes one untimed connection, so
   * every timed one has a session of its own to offer. */
  for (int i = 0; i < conns; i++)
    if (slot_open(&slots[i]) < 0)
      errors++;
  double t0 = now(), t_end = t0 + secs, t_hard = t_end + 10;
  unsigned long base_full = 0, base_resumed = 0;
  bool timing = !resume;
  int open = conns;
  struct epoll_event evs[256];
  while (open > 0 && now() < t_hard) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      struct slot *s = evs[i].data.ptr;
      if (!step(s))
        continue;
      slot_close(s);
      open--;
      if (timing && now() < t_end && slot_open(s) == 0)
        open++;
    }
    if (!timing && open == 0) { /* every slot primed: start the clock */
      timing = true;
      base_full = full;
      base_resumed = resumed;
      done = errors = unclean = 0;
      t0 = now();
      t_end = t0 + secs;
      t_hard = t_end + 10;
      for (int k = 0; k < conns; k++)
        if (slot_open(&slots[k]) == 0)
          open++;
    }
  }
  double el = now() - t0;
  for (int i = 0; i < conns; i++)
    slot_close(&slots[i]);
  printf("tlsload %s done %lu full %lu resumed %lu errors %lu seconds %.2f rate %.0f version %s "
         "cipher %s group %s no_close_notify %lu\n",
         resume ? "resume" : "full", done, full - base_full, resumed - base_resumed, errors, el,
         el > 0 ? (double)done / el : 0.0, version[0] ? version : "-", cipher[0] ? cipher : "-",
         group[0] ? group : "-", unclean);
  return errors > done / 100 ? 1 : 0;
}
