/* tlsinfo: what a connection's finished TLS handshake tells the
 * observers and the forwarded request: version, cipher, SNI, ALPN, the
 * verified client certificate's subject and X-Forwarded-Client-Cert
 * (declared in tls.h). Reads the connection's SSL object only; must not
 * read or write the socket, change the connection's state or know the
 * stream's owner. */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/buf.h"
#include "ferry/tls.h"

const char *tls_conn_version(const struct tls_conn *tc) {
  return tc->ssl && tc->hs_done ? SSL_get_version(tc->ssl) : "";
}

const char *tls_conn_cipher(const struct tls_conn *tc) {
  return tc->ssl && tc->hs_done ? SSL_get_cipher_name(tc->ssl) : "";
}

const char *tls_conn_sni(const struct tls_conn *tc) {
  const char *s = tc->ssl ? SSL_get_servername(tc->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
  return s ? s : "";
}

size_t tls_conn_client_cert(const struct tls_conn *tc, char *out, size_t cap) {
  X509 *x = tc->ssl && tc->hs_done ? SSL_get0_peer_certificate(tc->ssl) : NULL;
  if (!x || SSL_get_verify_result(tc->ssl) != X509_V_OK)
    return 0;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdn = 0;
  if (X509_digest(x, EVP_sha256(), md, &mdn) != 1)
    return 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < mdn; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  char subj[512] = "";
  BIO *b = BIO_new(BIO_s_mem());
  if (b) {
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(b, subj, (int)sizeof subj - 1);
    subj[n > 0 ? n : 0] = '\0';
    BIO_free(b);
  }
  /* the Subject is quoted: its quotes and backslashes are escaped, and
   * control bytes (none should be there) dropped */
  char qsubj[1024];
  size_t q = 0;
  for (const char *p = subj; *p && q + 2 < sizeof qsubj; p++) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      continue;
    if (*p == '"' || *p == '\\')
      qsubj[q++] = '\\';
    qsubj[q++] = *p;
  }
  qsubj[q] = '\0';
  const char *uri = "";
  GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  char ubuf[512] = "";
  for (int i = 0; san && i < sk_GENERAL_NAME_num(san); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
    if (g->type == GEN_URI) {
      const unsigned char *d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
      int n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
      size_t k = 0;
      for (int j = 0; j < n && k + 1 < sizeof ubuf; j++)
        if (d[j] > 0x20 && d[j] < 0x7f && d[j] != ';' && d[j] != ',')
          ubuf[k++] = (char)d[j];
      ubuf[k] = '\0';
      uri = ubuf;
      break;
    }
  }
  GENERAL_NAMES_free(san);
  int n = *uri ? snprintf(out, cap, "Hash=%s;Subject=\"%s\";URI=%s", hex, qsubj, uri)
               : snprintf(out, cap, "Hash=%s;Subject=\"%s\"", hex, qsubj);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

struct slice tls_conn_xfcc(const struct tls_conn *tc, struct arena *a) {
  char xfcc[TLS_XFCC_MAX];
  size_t xn = tls_conn_client_cert(tc, xfcc, sizeof xfcc);
  char *xp = xn ? arena_alloc(a, xn) : NULL;
  if (!xp)
    return (struct slice){NULL, 0};
  memcpy(xp, xfcc, xn);
  return (struct slice){xp, xn};
}

struct slice tls_conn_alpn(const struct tls_conn *tc) {
  const unsigned char *p = NULL;
  unsigned int n = 0;
  if (tc->ssl && tc->hs_done)
    SSL_get0_alpn_selected(tc->ssl, &p, &n);
  return p && n ? (struct slice){(const char *)p, n} : (struct slice){"", 0};
}

size_t tls_conn_client_subject(const struct tls_conn *tc, char *out, size_t cap) {
  X509 *x = tc->ssl && tc->hs_done ? SSL_get0_peer_certificate(tc->ssl) : NULL;
  if (!x || cap == 0 || SSL_get_verify_result(tc->ssl) != X509_V_OK)
    return 0;
  BIO *b = BIO_new(BIO_s_mem());
  if (!b)
    return 0;
  X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  int n = BIO_read(b, out, (int)(cap > INT_MAX ? INT_MAX : cap - 1));
  BIO_free(b);
  size_t k = 0;
  for (int j = 0; j < n; j++) /* no control bytes: it goes to logs and pages */
    if ((unsigned char)out[j] >= 0x20 && out[j] != 0x7f)
      out[k++] = out[j];
  out[k] = '\0';
  return k;
}

void tls_info_take(struct tls_info *ti, const struct tls_conn *tc) {
  ti->version = tls_conn_version(tc);
  ti->cipher = tls_conn_cipher(tc);
  ti->sni = tls_conn_sni(tc);
  ti->alpn = tls_conn_alpn(tc);
  char subj[512];
  size_t n = tls_conn_client_subject(tc, subj, sizeof subj);
  ti->client_subject = n ? strdup(subj) : NULL;
}

void tls_info_release(struct tls_info *ti) {
  free(ti->client_subject);
  ti->client_subject = NULL;
}
