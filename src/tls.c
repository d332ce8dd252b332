/* tls: listeners' OpenSSL contexts and the TLS transport (see tls.h).
 *
 * Owns the SSL_CTXs of each tls_server and, per connection, the SSL
 * object, its ciphertext blocks and its kick handle. What a finished
 * handshake tells the observers (version, cipher, SNI, ALPN, the client
 * certificate) is read by src/tlsinfo.c. Reads and writes the
 * socket only through the stream (stream_write_raw, stream_write_queue);
 * must not parse HTTP nor know the stream's owner. */
#include "ferry/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/buf.h"
#include "ferry/config.h"
#include "ferry/log.h"
#include "ferry/stream.h"

#define EXPIRY_WARN_SECONDS (14 * 86400)
#define DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* One session ticket key in nginx's 80-byte layout. */
struct ticket_key {
  unsigned char name[16];
  unsigned char hmac[32];
  unsigned char aes[32];
};

struct tls_server {
  _Atomic unsigned refs;
  struct ticket_key *keys; /* from ticket_keys: [0] encrypts, all decrypt */
  size_t nkeys;
  size_t nctx;
  SSL_CTX **ctx; /* one per certificate; [0] is the default */
  X509 **leaf;   /* each context's certificate (a reference) */
};

struct tls_client {
  _Atomic unsigned refs;
  SSL_CTX *ctx;
  char *server_name; /* NULL: each server's host */
};

/* Set once by tls_global_init, read-only after. */
static BIO_METHOD *conn_bio_method;

/* --- contexts ----------------------------------------------------------- */

static const char *ssl_err_text(char *buf, size_t n) {
  unsigned long e = ERR_peek_last_error();
  if (e == 0)
    snprintf(buf, n, "unknown OpenSSL error");
  else
    ERR_error_string_n(e, buf, n);
  ERR_clear_error();
  return buf;
}

size_t tls_server_pick(const struct tls_server *srv, const char *name) {
  if (!name || !*name)
    return 0;
  for (size_t i = 0; i < srv->nctx; i++) {
    if (X509_check_host(srv->leaf[i], name, 0,
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                        NULL) == 1)
      return i;
  }
  return 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)alert;
  const struct tls_server *srv = arg;
  size_t i = tls_server_pick(srv, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  if (i != 0)
    SSL_set_SSL_CTX(ssl, srv->ctx[i]);
  return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no http/1.1 offered: go on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static int on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char iv[16],
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc) {
  const struct tls_server *srv = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  const struct ticket_key *k = NULL;
  int ret = 1;
  if (enc) {
    k = &srv->keys[0];
    if (RAND_bytes(iv, 16) != 1)
      return -1;
    memcpy(name, k->name, 16);
  } else {
    for (size_t i = 0; i < srv->nkeys && !k; i++)
      if (memcmp(name, srv->keys[i].name, 16) == 0) {
        k = &srv->keys[i];
        ret = i == 0 ? 1 : 2; /* 2: renew the ticket under the current key */
      }
    if (!k)
      return 0; /* unknown key: a full handshake */
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(uintptr_t)k->hmac,
                                        sizeof k->hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)(uintptr_t) "sha256", 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(hctx, params) != 1)
    return -1;
  int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv)
               : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv);
  return ok == 1 ? ret : -1;
}

/* ticket_keys: a file of whole 80-byte keys. */
static bool load_ticket_keys(struct tls_server *srv, const char *path, tls_diag_fn diag,
                             void *arg) {
  char msg[512];
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, sizeof msg, "cannot read %s: %s (check the path and its permissions)", path,
             strerror(errno));
    diag(arg, TLS_F_TICKET_KEYS, 0, false, msg);
    return false;
  }
  unsigned char buf[80 * 16 + 1];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (n == 0 || n % 80 != 0 || n > 80 * 16) {
    snprintf(msg, sizeof msg,
             "%s holds %zu bytes: expected 1 to 16 keys of 80 bytes (make one with "
             "`openssl rand 80 > FILE`)",
             path, n);
    diag(arg, TLS_F_TICKET_KEYS, 0, false, msg);
    return false;
  }
  srv->nkeys = n / 80;
  srv->keys = calloc(srv->nkeys, sizeof *srv->keys);
  if (!srv->keys)
    return false;
  for (size_t i = 0; i < srv->nkeys; i++) {
    memcpy(srv->keys[i].name, buf + 80 * i, 16);
    memcpy(srv->keys[i].hmac, buf + 80 * i + 16, 32);
    memcpy(srv->keys[i].aes, buf + 80 * i + 48, 32);
  }
  OPENSSL_cleanse(buf, sizeof buf);
  return true;
}

static bool file_readable(const char *path, char *msg, size_t n) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(msg, n, "cannot read %s: %s (check the path and its permissions)", path,
             strerror(errno));
    return false;
  }
  fclose(f);
  return true;
}

/* The certificate's notAfter as a time_t (0 when unreadable). */
static time_t cert_not_after(const X509 *x) {
  struct tm tm;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
    return 0;
  return timegm(&tm);
}

/* Load certificate i into ctx and check it; false after reporting. */
static bool load_cert(SSL_CTX *ctx, const struct cfg_tls_cert *c, size_t i, time_t now,
                      tls_diag_fn diag, void *arg) {
  char msg[512], eb[256];
  if (!file_readable(c->cert, msg, sizeof msg)) {
    diag(arg, TLS_F_CERT, i, false, msg);
    return false;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
    snprintf(msg, sizeof msg, "%s is not a PEM certificate chain: %s", c->cert,
             ssl_err_text(eb, sizeof eb));
    diag(arg, TLS_F_CERT, i, false, msg);
    return false;
  }
  X509 *leaf = SSL_CTX_get0_certificate(ctx);
  STACK_OF(X509) *chain = NULL;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  X509 *prev = leaf;
  for (int k = 0; chain && k < sk_X509_num(chain); k++) {
    X509 *next = sk_X509_value(chain, k);
    if (X509_check_issued(next, prev) != X509_V_OK) {
      snprintf(msg, sizeof msg,
               "%s: the chain is out of order: certificate %d did not issue certificate %d "
               "(put the leaf first, then each issuer after what it signed)",
               c->cert, k + 2, k + 1);
      diag(arg, TLS_F_CERT, i, false, msg);
      return false;
    }
    prev = next;
  }
  time_t na = cert_not_after(leaf);
  if (na != 0 && na < now) {
    snprintf(msg, sizeof msg, "%s: the certificate expired (renew it)", c->cert);
    diag(arg, TLS_F_CERT, i, false, msg);
    return false;
  }
  if (na != 0 && na - now < EXPIRY_WARN_SECONDS) {
    snprintf(msg, sizeof msg, "%s: the certificate expires in %lld days (renew it)", c->cert,
             (long long)((na - now) / 86400));
    diag(arg, TLS_F_CERT, i, true, msg);
  }
  if (!file_readable(c->key, msg, sizeof msg)) {
    diag(arg, TLS_F_KEY, i, false, msg);
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
    ERR_clear_error();
    snprintf(msg, sizeof msg,
             "%s does not match the certificate %s, or is not a PEM private key (use the key "
             "the certificate was made for)",
             c->key, c->cert);
    diag(arg, TLS_F_KEY, i, false, msg);
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    snprintf(msg, sizeof msg, "%s does not match the certificate %s (use the key it was made for)",
             c->key, c->cert);
    diag(arg, TLS_F_KEY, i, false, msg);
    return false;
  }
  return true;
}

static SSL_CTX *server_ctx(const struct cfg_tls *t, tls_diag_fn diag, void *arg) {
  char msg[512], eb[256];
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, t->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION | (t->session_tickets ? 0 : SSL_OP_NO_TICKET));
  /* An idle connection holds no record buffers. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ferry", 5);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  if (t->client_ca && t->client_verify != CLIENT_VERIFY_OFF) {
    STACK_OF(X509_NAME) *names = NULL;
    if (!file_readable(t->client_ca, msg, sizeof msg)) {
      diag(arg, TLS_F_CLIENT_CA, 0, false, msg);
      SSL_CTX_free(ctx);
      return NULL;
    }
    if (SSL_CTX_load_verify_locations(ctx, t->client_ca, NULL) != 1 ||
        (names = SSL_load_client_CA_file(t->client_ca)) == NULL) {
      snprintf(msg, sizeof msg, "%s holds no PEM CA certificate: %s", t->client_ca,
               ssl_err_text(eb, sizeof eb));
      diag(arg, TLS_F_CLIENT_CA, 0, false, msg);
      SSL_CTX_free(ctx);
      return NULL;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER |
            (t->client_verify == CLIENT_VERIFY_REQUIRE ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        NULL);
  }
  if (SSL_CTX_set_cipher_list(ctx, t->ciphers && *t->ciphers ? t->ciphers : DEFAULT_CIPHERS) != 1) {
    snprintf(msg, sizeof msg, "no usable cipher in \"%s\": %s (use OpenSSL cipher list syntax)",
             t->ciphers ? t->ciphers : "", ssl_err_text(eb, sizeof eb));
    diag(arg, TLS_F_CIPHERS, 0, false, msg);
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

struct tls_server *tls_server_new(const struct cfg_tls *t, const char *label, time_t now,
                                  tls_diag_fn diag, void *arg) {
  (void)label;
  tls_global_init();
  struct tls_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return NULL;
  atomic_init(&srv->refs, 1);
  srv->ctx = calloc(t->ncerts, sizeof *srv->ctx);
  srv->leaf = calloc(t->ncerts, sizeof *srv->leaf);
  bool ok = srv->ctx && srv->leaf;
  if (ok && t->ticket_keys && t->session_tickets)
    ok = load_ticket_keys(srv, t->ticket_keys, diag, arg);
  for (size_t i = 0; ok && i < t->ncerts; i++) {
    SSL_CTX *ctx = server_ctx(t, diag, arg);
    if (!ctx) {
      ok = false;
      break;
    }
    srv->ctx[srv->nctx++] = ctx;
    if (!load_cert(ctx, &t->certs[i], i, now, diag, arg)) {
      ok = false;
      continue; /* report every certificate's problems */
    }
    srv->leaf[i] = SSL_CTX_get0_certificate(ctx);
    X509_up_ref(srv->leaf[i]);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, srv);
    SSL_CTX_set_app_data(ctx, srv);
    if (srv->nkeys)
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
  }
  if (!ok) {
    tls_server_unref(srv);
    return NULL;
  }
  return srv;
}

void tls_server_ref(struct tls_server *srv) {
  atomic_fetch_add_explicit(&srv->refs, 1, memory_order_relaxed);
}

void tls_server_unref(struct tls_server *srv) {
  if (!srv || atomic_fetch_sub_explicit(&srv->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; i < srv->nctx; i++) {
    SSL_CTX_free(srv->ctx[i]);
    if (srv->leaf && srv->leaf[i])
      X509_free(srv->leaf[i]);
  }
  free(srv->ctx);
  free(srv->leaf);
  if (srv->keys)
    OPENSSL_cleanse(srv->keys, srv->nkeys * sizeof *srv->keys);
  free(srv->keys);
  free(srv);
}

/* --- the BIO between OpenSSL and the conn's blocks ------------------------ */

static int bio_read(BIO *b, char *out, int n) {
  struct tls_conn *tc = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  struct iobuf *in = tc->cin;
  if (!in || tc->cin_off == in->len) {
    BIO_set_retry_read(b);
    return -1;
  }
  uint32_t avail = in->len - tc->cin_off;
  uint32_t k = (uint32_t)n < avail ? (uint32_t)n : avail;
  memcpy(out, in->data + tc->cin_off, k);
  tc->cin_off += k;
  return (int)k;
}

/* Appends to cout, growing it (records of one batch stay contiguous). */
static int bio_write(BIO *b, const char *p, int n) {
  struct tls_conn *tc = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  struct iobuf *o = tc->cout;
  size_t need = (o ? o->len : 0) + (size_t)n;
  if (!o || need > o->cap) {
    size_t cap = o ? (size_t)o->cap * 2 : IOBUF_SIZE;
    while (cap < need)
      cap *= 2;
    struct iobuf *nb = iobuf_get(tc->pool, cap);
    if (!nb)
      return -1;
    if (o) {
      memcpy(nb->data, o->data, o->len);
      nb->len = o->len;
      iobuf_unref(o);
    }
    tc->cout = o = nb;
  }
  memcpy(o->data + o->len, p, (size_t)n);
  o->len += (uint32_t)n;
  return n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

void tls_global_init(void) {
  if (conn_bio_method)
    return;
  OPENSSL_init_ssl(0, NULL);
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry stream");
  if (!m)
    return;
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  conn_bio_method = m;
}

/* --- the transport ------------------------------------------------------ */

static void on_kick(uv_idle_t *h);

static inline struct tls_conn *conn_of(struct stream *st) {
  return TRANSPORT_STATE(st, struct tls_conn);
}

/* tc's SSL object from ctx, over the custom BIO (kick handle initialised
 * on loop). 0, or -1 (out of memory: no SSL object left behind). */
static int conn_init(struct tls_conn *tc, SSL_CTX *ctx, uv_loop_t *loop) {
  memset(tc, 0, sizeof *tc);
  tc->pool = loop->data;
  uv_idle_init(loop, &tc->kick);
  tc->ssl = SSL_new(ctx);
  BIO *b = tc->ssl && conn_bio_method ? BIO_new(conn_bio_method) : NULL;
  if (!b) {
    SSL_free(tc->ssl);
    tc->ssl = NULL;
    return -1;
  }
  BIO_set_data(b, tc);
  SSL_set_bio(tc->ssl, b, b);
  return 0;
}

int tls_conn_accept(struct tls_conn *tc, struct tls_server *srv, uv_loop_t *loop) {
  if (conn_init(tc, srv->ctx[0], loop) != 0)
    return -1;
  SSL_set_accept_state(tc->ssl);
  tls_server_ref(srv);
  tc->srv = srv;
  return 0;
}

static void tls_alloc(struct stream *st, uv_buf_t *buf) {
  struct tls_conn *tc = conn_of(st);
  struct iobuf *in = tc->cin;
  if (!in) {
    tc->cin = in = iobuf_get(tc->pool, IOBUF_SIZE);
    tc->cin_off = 0;
    if (!in) {
      *buf = uv_buf_init(NULL, 0);
      return;
    }
  } else if (tc->cin_off == in->len) {
    in->len = tc->cin_off = 0;
  } else if (in->len == in->cap) { /* a partial record at the end: move it first */
    memmove(in->data, in->data + tc->cin_off, in->len - tc->cin_off);
    in->len -= tc->cin_off;
    tc->cin_off = 0;
  }
  *buf = uv_buf_init(in->data + in->len, in->cap - in->len);
}

/* Write the ciphertext OpenSSL produced outside a batch (handshake
 * messages, alerts, tickets). */
static int flush_cout(struct stream *st, struct tls_conn *tc) {
  struct iobuf *o = tc->cout;
  if (!o || o->len == 0)
    return 0;
  struct wreq *wr = wreq_get(tc->pool);
  if (!wr)
    return UV_ENOMEM;
  wreq_add(wr, o->data, o->len, o);
  iobuf_unref(o);
  tc->cout = NULL;
  return stream_write_raw(st, wr);
}

/* The read block the stream's owner reads from, with room; NULL when full
 * with bytes the owner has not consumed. Same recycling as plain TCP. */
static struct iobuf *app_block(struct stream *st) {
  struct iobuf *in = st->in;
  if (in && st->in_off == in->len) {
    if (in->refs == 1) {
      in->len = 0;
    } else {
      iobuf_unref(in);
      st->in = in = NULL;
    }
    st->in_off = 0;
  }
  if (!in)
    st->in = in = iobuf_get(conn_of(st)->pool, IOBUF_SIZE);
  return in && in->len < in->cap ? in : NULL;
}

/* Give back the ciphertext block once OpenSSL consumed all of it (an idle
 * connection holds none). */
static void release_cin(struct tls_conn *tc) {
  if (tc->cin && tc->cin_off == tc->cin->len) {
    iobuf_unref(tc->cin);
    tc->cin = NULL;
    tc->cin_off = 0;
  }
}

static void log_failure(struct tls_conn *tc, const char *what, int err) {
  char eb[256];
  unsigned long e = ERR_peek_last_error();
  long vr = tc->ssl ? SSL_get_verify_result(tc->ssl) : X509_V_OK;
  if (vr != X509_V_OK)
    snprintf(eb, sizeof eb, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
  else if (e)
    ERR_error_string_n(e, eb, sizeof eb);
  else
    snprintf(eb, sizeof eb, "%s", err == SSL_ERROR_SYSCALL ? "unexpected end" : "protocol error");
  ERR_clear_error();
  log_debug("tls: %s failed: %s", what, eb);
  size_t k = strnlen(eb, sizeof tc->err - 1); /* cut to fit: it is for a log line */
  memcpy(tc->err, eb, k);
  tc->err[k] = '\0';
  tc->failed = true;
}

/* SSL_get_error reads the thread's error queue, so it must be empty
 * before each call; clearing it costs hundreds of instructions even
 * when it is, so look first. */
static inline void errors_clear(void) {
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

/* Drive the handshake and decrypt what arrived into the stream's read
 * block. Returns the application bytes added, 0, or a uv error. */
static ssize_t pump(struct stream *st, struct tls_conn *tc) {
  if (tc->failed)
    return UV_EPROTO;
  if (!tc->hs_done) {
    ERR_clear_error();
    int r = SSL_do_handshake(tc->ssl);
    if (r != 1) {
      int e = SSL_get_error(tc->ssl, r);
      if (e == SSL_ERROR_WANT_READ) {
        release_cin(tc);
        return flush_cout(st, tc) < 0 ? UV_EPROTO : 0;
      }
      log_failure(tc, "handshake", e);
      flush_cout(st, tc); /* the alert, if any */
      if (st->cls->handshake)
        st->cls->handshake(st, false);
      return st->closing ? 0 : UV_EPROTO;
    }
    tc->hs_done = true;
    if (st->cls->handshake) {
      st->cls->handshake(st, true);
      if (st->closing)
        return 0;
    }
  }
  ssize_t total = 0;
  errors_clear(); /* once: an SSL_read that returns bytes adds no error */
  for (;;) {
    struct iobuf *in = app_block(st);
    if (!in) {
      /* The owner has not consumed the read block: the rest is delivered
       * from the next loop turn (or when reading resumes), since the
       * socket may have nothing more to wake us up with. */
      tc->kick.data = st;
      uv_idle_start(&tc->kick, on_kick);
      break;
    }
    int n = SSL_read(tc->ssl, in->data + in->len, (int)(in->cap - in->len));
    if (n > 0) {
      in->len += (uint32_t)n;
      total += n;
      continue;
    }
    int e = SSL_get_error(tc->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
      break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
      if (total == 0) {
        flush_cout(st, tc);
        return UV_EOF;
      }
      break;
    }
    log_failure(tc, "read", e);
    flush_cout(st, tc);
    return total > 0 ? total : UV_EPROTO;
  }
  /* a stream whose owner reads nothing gets no empty block */
  if (st->in && st->in->len == 0 && st->in_off == 0 && total == 0)
    stream_drop_in(st);
  release_cin(tc);
  if (flush_cout(st, tc) < 0)
    return UV_EPROTO;
  return total;
}

static ssize_t tls_input(struct stream *st, ssize_t nread) {
  struct tls_conn *tc = conn_of(st);
  if (nread < 0)
    return nread;
  tc->cin->len += (uint32_t)nread;
  return pump(st, tc);
}

static void on_kick(uv_idle_t *h) {
  uv_idle_stop(h);
  struct stream *st = h->data;
  if (!st->reading || st->closing)
    return;
  ssize_t n = pump(st, conn_of(st));
  if (n != 0)
    st->cls->read(st, n);
}

static void tls_resume(struct stream *st) {
  struct tls_conn *tc = conn_of(st);
  if (tc->ssl && tc->hs_done && !tc->failed &&
      (SSL_pending(tc->ssl) > 0 || (tc->cin && tc->cin_off < tc->cin->len))) {
    tc->kick.data = st;
    uv_idle_start(&tc->kick, on_kick);
  }
}

/* Pieces of a batch shorter than this are gathered into one record
 * (a response head and a small body: one record, one seal, not two);
 * longer ones are encrypted where they lie. */
#define TLS_GATHER_MAX 2048u

static bool seal(struct tls_conn *tc, const char *p, size_t n) {
  int r = SSL_write(tc->ssl, p, (int)n);
  if (r <= 0) {
    log_failure(tc, "write", SSL_get_error(tc->ssl, r));
    return false;
  }
  return true;
}

/* Encrypt the batch into one block and write that in its place: the
 * plaintext references go at once, the request completes as usual. */
static int tls_send(struct stream *st, struct wreq *wr) {
  struct tls_conn *tc = conn_of(st);
  if (tc->failed || !tc->hs_done)
    return UV_EPROTO;
  errors_clear();
  char gather[SSL3_RT_MAX_PLAIN_LENGTH]; /* at most one record's plaintext */
  size_t fill = 0;
  for (unsigned i = 0; i < wr->nbufs; i++) {
    const char *p = wr->bufs[i].base;
    size_t n = wr->bufs[i].len;
    if (n == 0)
      continue;
    if (fill > 0 && (n >= TLS_GATHER_MAX || fill + n > sizeof gather)) {
      if (!seal(tc, gather, fill))
        return UV_EPROTO;
      fill = 0;
    }
    if (n >= TLS_GATHER_MAX) {
      if (!seal(tc, p, n))
        return UV_EPROTO;
      continue;
    }
    memcpy(gather + fill, p, n);
    fill += n;
  }
  if (fill > 0 && !seal(tc, gather, fill))
    return UV_EPROTO;
  size_t bytes = wr->bytes;
  size_t cost = wr->cost;
  for (unsigned i = 0; i < wr->nrefs; i++)
    iobuf_unref(wr->refs[i]);
  wr->nrefs = 0;
  wr->nbufs = 0;
  wr->bytes = 0;
  struct iobuf *o = tc->cout;
  tc->cout = NULL;
  if (o) {
    wreq_add(wr, o->data, o->len, o);
    iobuf_unref(o);
  }
  wr->cost = cost; /* the stream counted this when it queued the batch */
  bool all = wr->nbufs == 0 || wreq_try_write(wr, (uv_stream_t *)&st->tcp);
  wr->bytes = bytes;
  if (all)
    return 1;
  return stream_write_queue(st, wr);
}

/* A connection that ends well ends with close_notify: without it an
 * OpenSSL client takes the end for a truncation and drops the session it
 * would have resumed. Written only if the socket takes it at once (libuv
 * refuses while earlier writes are queued, so it cannot overtake them). */
static void tls_close(struct stream *st) {
  struct tls_conn *tc = conn_of(st);
  if (!tc->ssl || !tc->hs_done || tc->failed || SSL_get_shutdown(tc->ssl) & SSL_SENT_SHUTDOWN)
    return;
  ERR_clear_error();
  SSL_shutdown(tc->ssl);
  ERR_clear_error();
  struct iobuf *o = tc->cout;
  if (o && o->len) {
    uv_buf_t b = uv_buf_init(o->data, o->len);
    (void)uv_try_write((uv_stream_t *)&st->tcp, &b, 1);
  }
}

static void on_kick_closed(uv_handle_t *h) {
  struct stream *st = h->data;
  st->cls->closed(st);
}

static void tls_closed(struct stream *st) {
  struct tls_conn *tc = conn_of(st);
  /* A connection that ended without a TLS error keeps its session in the
   * cache (OpenSSL drops sessions of connections not shut down). */
  if (tc->ssl && tc->hs_done && !tc->failed)
    SSL_set_shutdown(tc->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(tc->ssl); /* frees the BIO */
  tc->ssl = NULL;
  if (tc->cin)
    iobuf_unref(tc->cin);
  if (tc->cout)
    iobuf_unref(tc->cout);
  tc->cin = tc->cout = NULL;
  tls_server_unref(tc->srv);
  tc->srv = NULL;
  tls_client_unref(tc->cli);
  tc->cli = NULL;
  tc->kick.data = st;
  uv_close((uv_handle_t *)&tc->kick, on_kick_closed);
}

const struct transport transport_tls = {"tls",      tls_alloc,  tls_input, tls_send,
                                        tls_resume, tls_closed, tls_close};

/* --- upstream connections --------------------------------------------- */

struct tls_client *tls_client_new(const struct cfg_upstream_tls *t, char *msg, size_t msglen,
                                  int *field) {
  char eb[256];
  tls_global_init();
  struct tls_client *cli = calloc(1, sizeof *cli);
  if (!cli) {
    snprintf(msg, msglen, "out of memory");
    return NULL;
  }
  atomic_init(&cli->refs, 1);
  cli->ctx = SSL_CTX_new(TLS_client_method());
  if (!cli->ctx || (t->server_name && !(cli->server_name = strdup(t->server_name)))) {
    snprintf(msg, msglen, "out of memory");
    tls_client_unref(cli);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(cli->ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(cli->ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(cli->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_alpn_protos(cli->ctx, (const unsigned char *)"\x08http/1.1", 9);
  SSL_CTX_set_verify(cli->ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (t->ca) {
    if (!file_readable(t->ca, msg, msglen)) {
      *field = TLS_F_CLIENT_CA;
      tls_client_unref(cli);
      return NULL;
    }
    if (SSL_CTX_load_verify_locations(cli->ctx, t->ca, NULL) != 1) {
      snprintf(msg, msglen, "%s holds no PEM CA certificate: %s", t->ca,
               ssl_err_text(eb, sizeof eb));
      *field = TLS_F_CLIENT_CA;
      tls_client_unref(cli);
      return NULL;
    }
  } else {
    SSL_CTX_set_default_verify_paths(cli->ctx);
  }
  if (t->cert) {
    const char *bad = NULL;
    if (!file_readable(t->cert, msg, msglen)) {
      *field = TLS_F_CERT;
    } else if (!file_readable(t->key, msg, msglen)) {
      *field = TLS_F_KEY;
    } else if (SSL_CTX_use_certificate_chain_file(cli->ctx, t->cert) != 1) {
      *field = TLS_F_CERT;
      bad = "is not a PEM certificate chain";
    } else if (SSL_CTX_use_PrivateKey_file(cli->ctx, t->key, SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_check_private_key(cli->ctx) != 1) {
      *field = TLS_F_KEY;
      bad = "does not match the certificate, or is not a PEM private key";
    } else {
      return cli;
    }
    if (bad)
      snprintf(msg, msglen, "%s %s", *field == TLS_F_CERT ? t->cert : t->key, bad);
    ERR_clear_error();
    tls_client_unref(cli);
    return NULL;
  }
  return cli;
}

void tls_client_unref(struct tls_client *cli) {
  if (!cli || atomic_fetch_sub_explicit(&cli->refs, 1, memory_order_acq_rel) != 1)
    return;
  SSL_CTX_free(cli->ctx);
  free(cli->server_name);
  free(cli);
}

int tls_conn_connect(struct tls_conn *tc, struct tls_client *cli, const char *name,
                     uv_loop_t *loop) {
  if (cli->server_name)
    name = cli->server_name;
  if (conn_init(tc, cli->ctx, loop) != 0)
    return -1;
  SSL_set_connect_state(tc->ssl);
  unsigned char ip[16];
  if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tc->ssl), name);
  } else {
    SSL_set_tlsext_host_name(tc->ssl, name);
    SSL_set1_host(tc->ssl, name);
  }
  atomic_fetch_add_explicit(&cli->refs, 1, memory_order_relaxed);
  tc->cli = cli;
  return 0;
}

int tls_conn_start(struct stream *st) {
  ssize_t r = pump(st, conn_of(st));
  return r < 0 ? (int)r : 0;
}

const char *tls_conn_error(const struct tls_conn *tc) {
  return tc->err;
}

/* --- what the observers show ------------------------------------------- */

size_t tls_server_count(const struct tls_server *srv) {
  return srv ? srv->nctx : 0;
}

/* The subject's last CN, else the first subjectAltName DNS entry. */
static void cert_name(X509 *x, char *out, size_t cap) {
  out[0] = '\0';
  const X509_NAME *subj = X509_get_subject_name(x);
  int last = -1;
  for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;)
    last = i;
  const ASN1_STRING *s = NULL;
  GENERAL_NAMES *san = NULL;
  if (last >= 0) {
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, last));
  } else {
    san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; san && i < sk_GENERAL_NAME_num(san) && !s; i++) {
      const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
      if (g->type == GEN_DNS)
        s = g->d.dNSName;
    }
  }
  if (s) {
    /* printable ASCII only: it becomes a Prometheus label */
    const unsigned char *d = ASN1_STRING_get0_data(s);
    size_t k = 0;
    for (int j = 0; j < ASN1_STRING_length(s) && k + 1 < cap; j++)
      if (d[j] >= 0x20 && d[j] < 0x7f)
        out[k++] = (char)d[j];
    out[k] = '\0';
  }
  GENERAL_NAMES_free(san);
}

time_t tls_server_cert(const struct tls_server *srv, size_t i, char *name, size_t cap) {
  name[0] = '\0';
  if (i >= srv->nctx || !srv->leaf[i])
    return 0;
  cert_name(srv->leaf[i], name, cap);
  return cert_not_after(srv->leaf[i]);
}
