/* tls: OpenSSL contexts built from listeners[].tls, and the TLS transport
 * under a stream (see transport.h).
 *
 * A tls_server is what one listener's `tls` block becomes: one SSL_CTX per
 * certificate (the first is the default; SNI picks another by its
 * subjectAltName DNS names, wildcards as in RFC 6125). It is built when
 * the configuration is loaded (so `ferry -t` and a reload check the same
 * files), reference-counted (atomics), and shared read-only by workers.
 *
 * A tls_conn is one connection's TLS state; it lives beside the stream it
 * serves (the stream's class names its offset). Ciphertext never touches
 * a socket here except through the stream: records read land in the
 * conn's own block and are decrypted into the stream's read block; a
 * batch of application bytes is encrypted into one block and written in
 * one write. Nothing here parses HTTP or knows the stream's owner. */
#ifndef FERRY_TLS_H
#define FERRY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "ferry/slice.h"
#include "ferry/transport.h"

struct cfg_tls;
struct bufpool;
struct iobuf;
struct tls_server;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

/* Which key of the configuration a problem is about. */
enum tls_field { TLS_F_CERT, TLS_F_KEY, TLS_F_CIPHERS, TLS_F_TICKET_KEYS, TLS_F_CLIENT_CA };

/* One problem found while building: index is the certificate's for
 * TLS_F_CERT/TLS_F_KEY. */
typedef void (*tls_diag_fn)(void *arg, enum tls_field f, size_t index, bool warning,
                            const char *msg);

/* Once per process, before any other call (idempotent, not thread-safe). */
void tls_global_init(void);

/* Build the contexts of one listener's tls block; every problem goes to
 * diag (errors and warnings: a certificate expiring within 14 days).
 * NULL when there was an error. now: the time expiry is checked against. */
struct tls_server *tls_server_new(const struct cfg_tls *t, const char *label, time_t now,
                                  tls_diag_fn diag, void *arg);
void tls_server_ref(struct tls_server *srv);
void tls_server_unref(struct tls_server *srv);
/* Index of the certificate SNI name picks (0: no match / no name). */
size_t tls_server_pick(const struct tls_server *srv, const char *name);
/* How many certificates srv serves (0 for NULL). */
size_t tls_server_count(const struct tls_server *srv);
/* Certificate i's name for /metrics into name (cap bytes, printable
 * ASCII): the subject's common name, else the first subjectAltName DNS
 * entry, else "". Returns its notAfter as Unix time (0: unreadable). Any
 * thread (the certificates are read-only once built). */
time_t tls_server_cert(const struct tls_server *srv, size_t i, char *name, size_t cap);

/* The client context of one upstream's tls block (verification against
 * `ca` or the system store, client certificate). NULL with msg and *field
 * (an enum tls_field: TLS_F_CLIENT_CA for `ca`) on an error. */
struct cfg_upstream_tls;
struct tls_client *tls_client_new(const struct cfg_upstream_tls *t, char *msg, size_t msglen,
                                  int *field);
void tls_client_unref(struct tls_client *cli);

/* One connection's TLS state. */
struct tls_conn {
  SSL *ssl;
  struct tls_client *cli; /* a reference, for upstream connections */
  struct tls_server *srv; /* a reference, for server connections */
  struct bufpool *pool;
  struct iobuf *cin;  /* ciphertext read, not yet consumed by OpenSSL */
  struct iobuf *cout; /* ciphertext produced, not yet written */
  uint32_t cin_off;
  bool hs_done;
  bool failed;
  char err[120];  /* why it failed, for logs */
  uv_idle_t kick; /* delivers decrypted bytes held back by a full read block */
};

extern const struct transport transport_tls;

/* Set tc up as the server side of a connection on srv, before the stream
 * reads (loop: the stream's). 0, or -1 (out of memory). tc must then be
 * closed with its stream (transport_tls.closed). */
int tls_conn_accept(struct tls_conn *tc, struct tls_server *srv, uv_loop_t *loop);

/* Set tc up as the client side of a connection with cli; name (not NULL)
 * is sent as SNI and verified (an IP literal is verified as an address,
 * without SNI). 0, or -1. Closed with its stream like a server conn. */
int tls_conn_connect(struct tls_conn *tc, struct tls_client *cli, const char *name,
                     uv_loop_t *loop);
/* The socket connected: send the ClientHello. The stream's class
 * `handshake` callback tells how it ended. 0 or a uv error. */
int tls_conn_start(struct stream *st);
/* Why the handshake failed, for logs ("" when it did not). */
const char *tls_conn_error(const struct tls_conn *tc);

/* What the handshake settled ("" before it completed). */
const char *tls_conn_version(const struct tls_conn *tc);
const char *tls_conn_cipher(const struct tls_conn *tc);
const char *tls_conn_sni(const struct tls_conn *tc);
/* The ALPN protocol agreed ("" none); points into the SSL object. */
struct slice tls_conn_alpn(const struct tls_conn *tc);
/* The verified client certificate's subject (RFC 4514, control bytes
 * dropped) into out; its length, 0 when there is none. */
size_t tls_conn_client_subject(const struct tls_conn *tc, char *out, size_t cap);
/* What the observers (access log, inspector) show of one TLS connection,
 * taken once when its handshake completes (tls_info_take): version,
 * cipher and SNI point into OpenSSL's tables or the connection's SSL
 * object, alpn too (valid while the connection lives); client_subject
 * (the verified client certificate's RFC 4514 subject, NULL without one)
 * is the info's own memory, freed by tls_info_release. */
struct tls_info {
  const char *version, *cipher, *sni; /* "" for none */
  struct slice alpn;                  /* n == 0: none */
  char *client_subject;
};
void tls_info_take(struct tls_info *ti, const struct tls_conn *tc);
void tls_info_release(struct tls_info *ti);

/* The verified client certificate as X-Forwarded-Client-Cert's value
 * (SPEC §7: Hash=<sha256 hex>;Subject="<RFC 4514>";URI=<first SAN URI>)
 * into out; its length, 0 when there is none (or cap is too small). */
#define TLS_XFCC_MAX 2048
size_t tls_conn_client_cert(const struct tls_conn *tc, char *out, size_t cap);
/* The same, copied into arena a (empty without a verified certificate). */
struct arena;
struct slice tls_conn_xfcc(const struct tls_conn *tc, struct arena *a);

#endif
