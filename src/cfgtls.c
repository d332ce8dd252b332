/* cfgtls: the `tls` sections of proxy.yaml (a listener's and an
 * upstream's): their keys, and the OpenSSL contexts built from them
 * (src/tls.c), whose problems are reported at the file:line:col of the
 * key that names the file. Part of the configuration loader
 * (src/config.c calls it); must not touch sockets or the snapshot. */
#include "ferry/cfgtls.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/cfgval.h"
#include "ferry/tls.h"

/* Where each problem tls_server_new finds is reported. */
struct tls_marks {
  struct ydoc *y;
  const char *path;
  const struct ynode *cert[64], *key[64], *ciphers, *ticket_keys, *client_ca, *tls;
};

static void tls_diag(void *arg, enum tls_field f, size_t i, bool warning, const char *msg) {
  struct tls_marks *m = arg;
  const struct ynode *n = f == TLS_F_CERT          ? m->cert[i]
                          : f == TLS_F_KEY         ? m->key[i]
                          : f == TLS_F_CIPHERS     ? m->ciphers
                          : f == TLS_F_TICKET_KEYS ? m->ticket_keys
                                                   : m->client_ca;
  char sub[YDOC_KEYPATH_MAX], sub2[YDOC_KEYPATH_MAX], sub3[YDOC_KEYPATH_MAX];
  const char *path = m->path;
  if (f == TLS_F_CERT || f == TLS_F_KEY)
    path = ydoc_kp_key(sub3, ydoc_kp_index(sub2, ydoc_kp_key(sub, m->path, "certificates"), i),
                       f == TLS_F_CERT ? "cert" : "key");
  else if (n)
    path = ydoc_kp_key(sub, m->path,
                       f == TLS_F_CIPHERS       ? "ciphers"
                       : f == TLS_F_TICKET_KEYS ? "ticket_keys"
                                                : "client_ca");
  if (!n)
    n = m->tls;
  if (warning)
    ydoc_warn(m->y, n->mark, path, "%s", msg);
  else
    ydoc_err(m->y, n->mark, path, "%s", msg);
}

/* listeners[i].tls: read the keys, then build the contexts (which reads
 * and checks every file, so `ferry -t` and a reload see the same). */
void cfgtls_listener(struct ydoc *y, const struct ynode *n, const char *path,
                     struct cfg_listener *l) {
  static const char *const keys[] = {"certificates",    "min_version", "ciphers",
                                     "session_tickets", "ticket_keys", "client_ca",
                                     "client_verify",   NULL};
  enum { K_CERTS, K_MIN, K_CIPHERS, K_TICKETS, K_TICKET_KEYS, K_CLIENT_CA, K_VERIFY, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], sub2[YDOC_KEYPATH_MAX], sub3[YDOC_KEYPATH_MAX];
  if (!cfgval_fields(y, n, path, keys, v, k))
    return;
  struct cfg_tls *t = calloc(1, sizeof *t);
  struct tls_marks *m = calloc(1, sizeof *m);
  if (!t || !m) {
    free(t);
    free(m);
    ydoc_err(y, n->mark, path, "out of memory");
    return;
  }
  l->tls = t;
  t->min_version = 12;
  t->session_tickets = true;
  m->y = y;
  m->path = path;
  m->tls = n;
  bool ok = true;
  size_t count = 0;
  if (v[K_CERTS] == NULL) {
    ydoc_err(y, n->mark, path, "missing required key \"certificates\" (a list of cert/key)");
    ok = false;
  } else if (!cfgval_seq(y, v[K_CERTS], ydoc_kp_key(sub, path, "certificates"), &count)) {
    ok = false;
  } else if (count == 0 || count > 64) {
    ydoc_err(y, v[K_CERTS]->mark, sub, "expected 1 to 64 certificates, found %zu", count);
    ok = false;
  } else if ((t->certs = calloc(count, sizeof *t->certs)) == NULL) {
    ok = false;
  }
  for (size_t i = 0; ok && i < count; i++) {
    static const char *const ckeys[] = {"cert", "key", NULL};
    const struct ynode *cv[2], *ck[2];
    ydoc_kp_index(sub2, ydoc_kp_key(sub, path, "certificates"), i);
    if (!cfgval_fields(y, v[K_CERTS]->kids[i], sub2, ckeys, cv, ck)) {
      ok = false;
      continue;
    }
    struct cfg_tls_cert *tc = &t->certs[t->ncerts++];
    for (int j = 0; j < 2; j++) {
      if (cv[j] == NULL) {
        ydoc_err(y, v[K_CERTS]->kids[i]->mark, sub2, "missing required key \"%s\"", ckeys[j]);
        ok = false;
      } else if (!cfgval_str(y, cv[j], ydoc_kp_key(sub3, sub2, ckeys[j]),
                             j == 0 ? &tc->cert : &tc->key)) {
        ok = false;
      }
    }
    m->cert[i] = cv[0];
    m->key[i] = cv[1];
  }
  if (v[K_MIN]) {
    static const char *const vers[] = {"1.2", "1.3"};
    int idx = 0;
    if (cfgval_enum(y, v[K_MIN], ydoc_kp_key(sub, path, "min_version"), vers, 2, &idx))
      t->min_version = idx == 0 ? 12 : 13;
    else
      ok = false;
  }
  if (v[K_CIPHERS] && v[K_CIPHERS]->kind == Y_SCALAR && v[K_CIPHERS]->s[0] != '\0' &&
      !cfgval_str(y, v[K_CIPHERS], ydoc_kp_key(sub, path, "ciphers"), &t->ciphers))
    ok = false;
  m->ciphers = v[K_CIPHERS];
  if (v[K_TICKETS] &&
      !cfgval_bool(y, v[K_TICKETS], ydoc_kp_key(sub, path, "session_tickets"), &t->session_tickets))
    ok = false;
  if (v[K_TICKET_KEYS] && v[K_TICKET_KEYS]->kind == Y_SCALAR && v[K_TICKET_KEYS]->s[0] != '\0' &&
      !cfgval_str(y, v[K_TICKET_KEYS], ydoc_kp_key(sub, path, "ticket_keys"), &t->ticket_keys))
    ok = false;
  m->ticket_keys = v[K_TICKET_KEYS];
  if (v[K_CLIENT_CA] && v[K_CLIENT_CA]->kind == Y_SCALAR && v[K_CLIENT_CA]->s[0] != '\0' &&
      !cfgval_str(y, v[K_CLIENT_CA], ydoc_kp_key(sub, path, "client_ca"), &t->client_ca))
    ok = false;
  m->client_ca = v[K_CLIENT_CA];
  if (v[K_VERIFY]) {
    static const char *const modes[] = {"off", "optional", "require"};
    const struct ynode *vn = v[K_VERIFY];
    /* YAML 1.1 readers take a bare off as false: accept it as "off" */
    if (vn->kind == Y_SCALAR && vn->plain && strcmp(vn->s, "false") == 0)
      t->client_verify = CLIENT_VERIFY_OFF;
    else if (!cfgval_enum(y, vn, ydoc_kp_key(sub, path, "client_verify"), modes, 3,
                          &t->client_verify))
      ok = false;
    if (t->client_verify != CLIENT_VERIFY_OFF && !t->client_ca) {
      ydoc_err(y, vn->mark, sub, "client_verify: %s needs client_ca (a PEM file of CAs)",
               modes[t->client_verify]);
      ok = false;
    }
  }
  if (ok)
    l->tls_srv = tls_server_new(t, l->address ? l->address : "", time(NULL), tls_diag, m);
  free(m);
}

void cfgtls_free(struct cfg_tls *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->ncerts; i++) {
    free(t->certs[i].cert);
    free(t->certs[i].key);
  }
  free(t->certs);
  free(t->ciphers);
  free(t->ticket_keys);
  free(t->client_ca);
  free(t);
}

/* upstreams.NAME.tls: the keys, then the client context (files read). */
void cfgtls_upstream(struct ydoc *y, const struct ynode *n, const char *path,
                     struct cfg_upstream *up) {
  static const char *const keys[] = {"verify", "ca", "server_name", "cert", "key", NULL};
  enum { K_VERIFY, K_CA, K_NAME, K_CERT, K_KEY, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX];
  if (!cfgval_fields(y, n, path, keys, v, k))
    return;
  struct cfg_upstream_tls *t = calloc(1, sizeof *t);
  if (!t) {
    ydoc_err(y, n->mark, path, "out of memory");
    return;
  }
  up->tls = t;
  t->verify = true;
  bool ok = true;
  if (v[K_VERIFY] && !cfgval_bool(y, v[K_VERIFY], ydoc_kp_key(sub, path, "verify"), &t->verify))
    ok = false;
  char **dst[] = {NULL, &t->ca, &t->server_name, &t->cert, &t->key};
  for (int i = K_CA; i < K_N; i++) {
    if (v[i] && v[i]->kind == Y_SCALAR && v[i]->s[0] != '\0' &&
        !cfgval_str(y, v[i], ydoc_kp_key(sub, path, keys[i]), dst[i]))
      ok = false;
  }
  if ((t->cert == NULL) != (t->key == NULL)) {
    ydoc_err(y, n->mark, path, "cert and key go together: give both or neither");
    ok = false;
  }
  if (!ok)
    return;
  char msg[512];
  int field = 0;
  up->tls_cli = tls_client_new(t, msg, sizeof msg, &field);
  if (!up->tls_cli) {
    const struct ynode *at = field == TLS_F_CLIENT_CA ? v[K_CA]
                             : field == TLS_F_CERT    ? v[K_CERT]
                             : field == TLS_F_KEY     ? v[K_KEY]
                                                      : NULL;
    const char *key = field == TLS_F_CLIENT_CA ? "ca"
                      : field == TLS_F_CERT    ? "cert"
                      : field == TLS_F_KEY     ? "key"
                                               : NULL;
    ydoc_err(y, at ? at->mark : n->mark, key ? ydoc_kp_key(sub, path, key) : path, "%s", msg);
  }
}
