/* libFuzzer target: ferry's TLS transport (src/tls.c under src/stream.c)
 * on the server side, driven with arbitrary bytes after a real handshake.
 *
 * Once per process: an EC P-256 key and a self-signed certificate are made
 * with OpenSSL (nothing secret is kept in the repository), written to a
 * private temporary directory for tls_server_new (the listener code path,
 * with client_verify: optional against that same certificate) and removed.
 *
 * Each input: a socketpair; one end is a ferry stream with the TLS
 * transport (tls_conn_accept), the other is driven by an OpenSSL client
 * over memory BIOs, which completes a handshake with it (TLS 1.2 or 1.3,
 * with or without a client certificate and SNI). Then the input goes in as
 *   - raw bytes on the wire (records, or anything), or
 *   - application data the client encrypts (the transport decrypts it into
 *     the read block and the owner echoes part of it back, encrypted), or
 *   - application data, then raw bytes after it, or a close_notify,
 * with the owner sometimes slow (it takes half of each read and stops
 * reading when its block is full), so decrypted bytes wait in the
 * transport (the kick and resume paths). Every connection ends through the stream's one
 * close path, and the loop must run dry: a handle or block left over is a
 * leak the sanitizer reports.
 *
 * Input layout: byte 0 flags (bits 0-1 mode, 2 TLS 1.2, 3 client
 * certificate, 4 no SNI, 5 slow owner, 6 echo), byte 1 the size of the
 * chunks written to the socket (low 4 bits; 0: all at once), how many
 * times the application data is sent (high 2 bits: 1 to 4) and, in the
 * mixed mode, where the application data ends; the rest is the payload. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/stream.h"
#include "ferry/tls.h"

static uv_loop_t loop;
static struct bufpool pool;
static struct tls_server *srv;
static SSL_CTX *cli_ctx;
static X509 *cert;
static EVP_PKEY *pkey;

/* The server side: a stream and its TLS state right after it. */
struct conn {
  struct stream st;
  struct tls_conn tc;
  bool closed, hs_ok, hold, echo;
};

static void die(const char *what) {
  fprintf(stderr, "fuzz_tls: %s\n", what);
  ERR_print_errors_fp(stderr);
  abort();
}

static void make_identity(void) {
  pkey = EVP_EC_gen("P-256");
  cert = X509_new();
  if (!pkey || !cert)
    die("cannot make a key");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 86400);
  X509_set_pubkey(cert, pkey);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz.test", -1, -1,
                             0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *ext[2] = {
      X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:fuzz.test,URI:spiffe://fuzz/a"),
      X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE")};
  for (int i = 0; i < 2; i++) {
    if (!ext[i] || !X509_add_ext(cert, ext[i], -1))
      die("cannot add an extension");
    X509_EXTENSION_free(ext[i]);
  }
  if (!X509_sign(cert, pkey, EVP_sha256()))
    die("cannot sign");
}

static void no_diag(void *arg, enum tls_field f, size_t index, bool warning, const char *msg) {
  (void)arg, (void)f, (void)index;
  if (!warning)
    die(msg);
}

static void setup(void) {
  make_identity();
  char dir[] = "/tmp/fuzz_tls.XXXXXX";
  if (!mkdtemp(dir))
    die("mkdtemp");
  char certp[64], keyp[64];
  snprintf(certp, sizeof certp, "%s/cert.pem", dir);
  snprintf(keyp, sizeof keyp, "%s/key.pem", dir);
  FILE *f = fopen(certp, "w");
  if (!f || !PEM_write_X509(f, cert) || fclose(f) != 0)
    die("cannot write the certificate");
  f = fopen(keyp, "w");
  if (!f || !PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0)
    die("cannot write the key");
  struct cfg_tls_cert c = {certp, keyp};
  struct cfg_tls t = {.certs = &c,
                      .ncerts = 1,
                      .min_version = 12,
                      .session_tickets = true,
                      .client_ca = certp,
                      .client_verify = CLIENT_VERIFY_OPTIONAL};
  srv = tls_server_new(&t, "fuzz", time(NULL), no_diag, NULL);
  unlink(certp);
  unlink(keyp);
  rmdir(dir);
  if (!srv)
    die("tls_server_new failed");
  cli_ctx = SSL_CTX_new(TLS_client_method());
  if (!cli_ctx)
    die("client context");
  SSL_CTX_set_verify(cli_ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_alpn_protos(cli_ctx, (const unsigned char *)"\x08http/1.1", 9);
  uv_loop_init(&loop);
  bufpool_init(&pool);
  loop.data = &pool;
}

/* --- the stream's owner ---------------------------------------------------- */

static void on_read(struct stream *st, ssize_t nread) {
  struct conn *c = container_of(st, struct conn, st);
  if (nread < 0) {
    stream_close(st);
    return;
  }
  struct iobuf *in = st->in;
  uint32_t avail = in->len - st->in_off;
  if (c->echo) { /* a reply: one encrypted batch */
    uint32_t k = avail < 200 ? avail : 200;
    if (stream_add_copy(st, in->data + st->in_off, k) == 0)
      stream_flush(st);
  }
  if (c->hold) {
    /* a slow owner: it takes half of what came; once the read block is
     * full it stops reading, and decrypted bytes wait in the transport
     * until it catches up (turn) */
    st->in_off += avail / 2;
    if (in->len == in->cap)
      stream_hold(st, STREAM_HOLD_OWNER, true);
    return;
  }
  st->in_off = in->len;
}

static void on_written(struct stream *st, int status, size_t bytes) {
  (void)bytes;
  if (status < 0)
    stream_close(st);
}

static void on_handshake(struct stream *st, bool ok) {
  struct conn *c = container_of(st, struct conn, st);
  c->hs_ok = ok;
  if (!ok)
    return;
  /* what the observers and X-Forwarded-Client-Cert read of it */
  struct tls_info ti;
  tls_info_take(&ti, &c->tc);
  char xfcc[TLS_XFCC_MAX];
  size_t n = tls_conn_client_cert(&c->tc, xfcc, sizeof xfcc);
  if (!*ti.version || !*ti.cipher || (n != 0) != (ti.client_subject != NULL))
    abort();
  tls_info_release(&ti);
}

static void on_closed(struct stream *st) {
  container_of(st, struct conn, st)->closed = true;
}

static const struct stream_class conn_class = {
    .tr = &transport_tls,
    .tr_off = offsetof(struct conn, tc) - offsetof(struct conn, st),
    .read = on_read,
    .written = on_written,
    .handshake = on_handshake,
    .closed = on_closed,
};

/* --- the client side --------------------------------------------------------- */

static void turn(struct conn *c) {
  for (int i = 0; i < 4; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  if ((c->st.hold & STREAM_HOLD_OWNER) && !c->st.closing) {
    /* the slow owner catches up: what the transport held back follows */
    if (c->st.in)
      c->st.in_off = c->st.in->len;
    stream_hold(&c->st, STREAM_HOLD_OWNER, false);
  }
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* Write (p, n) to the socket in chunks of `chunk` (0: at once), letting
 * ferry's loop read between them. */
static void put(int fd, struct conn *c, const uint8_t *p, size_t n, size_t chunk) {
  int stalls = 0;
  while (n > 0 && !c->closed) {
    size_t k = chunk && chunk < n ? chunk : n;
    ssize_t w = write(fd, p, k);
    if (w <= 0) {
      if (w < 0 && errno == EAGAIN && ++stalls < 1000) { /* let ferry read */
        turn(c);
        continue;
      }
      return;
    }
    p += w;
    n -= (size_t)w;
    turn(c);
  }
}

/* The client's output to the socket; the socket's bytes to the client. */
static void shuttle(int fd, struct conn *c, SSL *ssl, BIO *net_in, BIO *net_out, size_t chunk) {
  char buf[16384];
  int n;
  while ((n = BIO_read(net_out, buf, sizeof buf)) > 0)
    put(fd, c, (const uint8_t *)buf, (size_t)n, chunk);
  turn(c);
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0)
    BIO_write(net_in, buf, (int)r);
  /* consume what ferry sent (echoes, tickets, alerts) */
  while (SSL_is_init_finished(ssl) && SSL_read(ssl, buf, sizeof buf) > 0)
    ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv)
    setup();
  if (size < 2)
    return 0;
  uint8_t flags = data[0], b1 = data[1];
  data += 2;
  size -= 2;
  int mode = flags & 3;
  size_t chunk = b1 & 0x0f ? (size_t)(b1 & 0x0f) * 37 : 0;

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    die("socketpair");
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  struct conn *c = calloc(1, sizeof *c);
  if (!c)
    die("out of memory");
  c->hold = flags & 0x20;
  c->echo = flags & 0x40;
  stream_init(&c->st, &loop, &conn_class);
  if (tls_conn_accept(&c->tc, srv, &loop) != 0 || stream_open(&c->st, sv[0]) != 0)
    die("cannot set up the server side");
  stream_update_reading(&c->st);

  SSL *ssl = SSL_new(cli_ctx);
  BIO *net_in = BIO_new(BIO_s_mem()), *net_out = BIO_new(BIO_s_mem());
  if (!ssl || !net_in || !net_out)
    die("client");
  SSL_set_bio(ssl, net_in, net_out);
  SSL_set_connect_state(ssl);
  if (flags & 0x04)
    SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
  if (!(flags & 0x10))
    SSL_set_tlsext_host_name(ssl, "fuzz.test");
  if (flags & 0x08) {
    SSL_use_certificate(ssl, cert);
    SSL_use_PrivateKey(ssl, pkey);
  }
  for (int round = 0; round < 16 && !c->closed && !SSL_is_init_finished(ssl); round++) {
    SSL_do_handshake(ssl);
    shuttle(sv[1], c, ssl, net_in, net_out, 0);
  }
  ERR_clear_error();
  if (!SSL_is_init_finished(ssl) || !c->hs_ok)
    die("the handshake did not complete");

  size_t split = mode == 2 ? (size_t)b1 * size / 255 : size;
  if (mode == 0) {
    put(sv[1], c, data, size, chunk); /* raw bytes after the handshake */
  } else {
    /* application data, encrypted; repeated so that it can outgrow a
     * read block */
    for (int rep = 0; rep <= b1 >> 6; rep++)
      for (size_t off = 0; off < split && !c->closed;) {
        size_t k = split - off < 4096 ? split - off : 4096;
        if (SSL_write(ssl, data + off, (int)k) <= 0)
          break;
        off += k;
        shuttle(sv[1], c, ssl, net_in, net_out, chunk);
      }
    if (mode == 2)
      put(sv[1], c, data + split, size - split, chunk); /* then raw bytes */
    if (mode == 3 && SSL_shutdown(ssl) >= 0)
      shuttle(sv[1], c, ssl, net_in, net_out, chunk);
  }
  shuttle(sv[1], c, ssl, net_in, net_out, 0);
  ERR_clear_error();

  stream_close(&c->st);
  close(sv[1]);
  for (int i = 0; i < 100 && !c->closed; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  if (!c->closed)
    die("the stream did not close");
  free(c);
  SSL_free(ssl);
  return 0;
}
