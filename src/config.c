/* config: proxy.yaml -> an immutable struct config (include/ferry/config.h).
 *
 * Owns: reading the file, the schema of SPEC §2 for every section but
 * `routes` (listeners, workers, admin, access_log, limits, timeouts,
 * upstreams), the defaults, the checks that span sections, and the
 * snapshot's memory (config_free). Must not touch: sockets, name resolution
 * (server names are resolved by the upstream runtime), the event loop, the
 * router's compiled form, or any state outside the snapshot it returns.
 * Nothing here is global, so several loads (a reload while serving) may run
 * on different threads.
 *
 * The load is split in three parts: ydoc.c reads the text into a syntax
 * tree and collects diagnostics, cfgval.c reads typed values from tree
 * nodes, and the schema loaders here and in cfgroute.c (routes) walk the
 * tree in a fixed order (timeouts before upstreams, upstreams before routes,
 * so defaults and references resolve in one walk), reporting every problem
 * they find and continuing past each one. Diagnostics are sorted into file
 * order before they reach the caller.
 *
 * Running out of memory while loading is reported as an error, never an
 * abort: a reload must not take a serving process down. */
#include "ferry/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/cfgroute.h"
#include "ferry/cfgtls.h"
#include "ferry/cfgval.h"
#include "ferry/router.h"
#include "ferry/tls.h"
#include "ferry/ydoc.h"

#define MAX_FILE_BYTES (16u << 20)

/* The schema walk's context. */
struct ctx {
  struct ydoc *y;
  struct config *cfg;
  bool upstreams_bad; /* `upstreams` unreadable: do not report routes' references */
};

/* ---- sections ---------------------------------------------------------- */

static void load_listeners(struct ctx *c, const struct ynode *top, const struct ynode *n) {
  static const char *const keys[] = {
      "address", "proxy_protocol", "trusted_proxies", "redirect_https", "tls", NULL};
  enum { K_ADDRESS, K_PROXY_PROTOCOL, K_TRUSTED, K_REDIRECT, K_TLS, K_N };
  struct config *cfg = c->cfg;
  size_t count;
  if (n == NULL) {
    ydoc_err(c->y, top->mark, "", "at least one listener is required");
    return;
  }
  if (!cfgval_seq(c->y, n, "listeners", &count))
    return;
  if (count == 0) {
    ydoc_err(c->y, n->mark, "listeners", "at least one listener is required");
    return;
  }
  if ((cfg->listeners = ydoc_calloc(c->y, count, sizeof *cfg->listeners)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i], *v[K_N], *k[K_N];
    char path[YDOC_KEYPATH_MAX], sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
    ydoc_kp_index(path, "listeners", i);
    if (!cfgval_fields(c->y, item, path, keys, v, k))
      continue;
    struct cfg_listener *l = &cfg->listeners[cfg->nlisteners++];
    l->line = ydoc_line(item->mark);
    cfgval_bool(c->y, v[K_PROXY_PROTOCOL], ydoc_kp_key(sub, path, "proxy_protocol"),
                &l->proxy_protocol);
    if (v[K_TRUSTED] != NULL)
      cfgval_cidrs(c->y, v[K_TRUSTED], ydoc_kp_key(sub, path, "trusted_proxies"),
                   &l->trusted_proxies, &l->ntrusted_proxies);
    if (v[K_ADDRESS] == NULL) {
      ydoc_err(c->y, item->mark, path, "missing required key \"address\"");
      continue;
    }
    if (!cfgval_listen_address(c->y, v[K_ADDRESS], ydoc_kp_key(sub, path, "address"), &l->address,
                               &l->addr))
      continue;
    if (v[K_REDIRECT] != NULL) {
      uint32_t port = 0;
      if (cfgval_u32(c->y, v[K_REDIRECT], ydoc_kp_key(sub, path, "redirect_https"), 0, 65535,
                     &port))
        l->redirect_https = (uint16_t)port;
    }
    if (v[K_TLS] != NULL) {
      char tpath[YDOC_KEYPATH_MAX];
      cfgtls_listener(c->y, v[K_TLS], ydoc_kp_key(tpath, path, "tls"), l);
      if (l->redirect_https && l->tls) {
        ydoc_err(c->y, v[K_REDIRECT]->mark, ydoc_kp_key(sub, path, "redirect_https"),
                 "a TLS listener cannot redirect to https (remove one of the two)");
      }
    }
    for (size_t j = 0; j + 1 < cfg->nlisteners; j++) {
      if (cfgval_same_sockaddr(&cfg->listeners[j].addr, &l->addr)) {
        ydoc_err(c->y, v[K_ADDRESS]->mark, sub, "duplicate listener %s (also at line %d)",
                 ydoc_quote(l->address, qb, sizeof qb), cfg->listeners[j].line);
        break;
      }
    }
  }
}

static void load_workers(struct ctx *c, const struct ynode *n) {
  int64_t v;
  if (n == NULL || n->kind == Y_BAD)
    return;
  if (n->kind == Y_SCALAR && strcmp(n->s, "auto") == 0) {
    c->cfg->workers = 0;
    return;
  }
  if (n->kind != Y_SCALAR || !n->plain || cfgval_parse_int(n->s, &v) != 1) {
    cfgval_err_type(c->y, n, "workers", "\"auto\" or an integer 1..256");
    return;
  }
  if (v < 1 || v > 256) {
    ydoc_err(c->y, n->mark, "workers", "%s is out of range (expected \"auto\" or 1..256)", n->s);
    return;
  }
  c->cfg->workers = (uint32_t)v;
}

/* A YAML list of names into a fresh array that replaces *list; an item
 * that ok() refuses is an error "invalid WHAT \"item\"HINT". */
static void load_name_list(struct ctx *c, const struct ynode *n, const char *path, char ***list,
                           size_t *count, bool (*ok)(const char *), const char *what,
                           const char *hint) {
  size_t items;
  char qb[YDOC_QBUF];
  if (!cfgval_seq(c->y, n, path, &items))
    return;
  for (size_t i = 0; i < *count; i++)
    free((*list)[i]);
  free(*list);
  *list = NULL;
  *count = 0;
  if (items == 0 || (*list = ydoc_calloc(c->y, items, sizeof(char *))) == NULL)
    return;
  for (size_t i = 0; i < items; i++) {
    const struct ynode *item = n->kids[i];
    char ipath[YDOC_KEYPATH_MAX];
    const char *s;
    if (!cfgval_text(c->y, item, ydoc_kp_index(ipath, path, i), &s))
      continue;
    if (!ok(s)) {
      ydoc_err(c->y, item->mark, ipath, "invalid %s %s%s", what, ydoc_quote(s, qb, sizeof qb),
               hint);
      continue;
    }
    if (((*list)[*count] = ydoc_strdup(c->y, s)) != NULL)
      (*count)++;
  }
}

/* admin.allowed_hosts: host names (no port) the admin listener serves
 * besides IP literals and localhost, or "*" for any Host. */
static bool allowed_host_ok(const char *s) {
  return strcmp(s, "*") == 0 || (cfgval_is_host_name(s) && strlen(s) < CFGVAL_HOST_MAX);
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

static void load_admin(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {
      "address",           "redact",         "inspect_keep", "inspect_all",   "inspect_body_bytes",
      "inspect_max_bytes", "redact_headers", "replay",       "allowed_hosts", NULL};
  enum {
    K_ADDRESS,
    K_REDACT,
    K_INSPECT_KEEP,
    K_INSPECT_ALL,
    K_INSPECT_BODY_BYTES,
    K_INSPECT_MAX_BYTES,
    K_REDACT_HEADERS,
    K_REPLAY,
    K_ALLOWED_HOSTS,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  char sub[YDOC_KEYPATH_MAX];
  if (!cfgval_fields(c->y, n, "admin", keys, v, k))
    return;
  cfg->admin.enabled = true;
  if (v[K_ADDRESS] != NULL) {
    cfgval_listen_address(c->y, v[K_ADDRESS], ydoc_kp_key(sub, "admin", "address"),
                          &cfg->admin.address, &cfg->admin.addr);
  } else {
    char e[128];
    ydoc_set_str(c->y, &cfg->admin.address, "127.0.0.1:9901");
    config_parse_listen_address("127.0.0.1:9901", &cfg->admin.addr, e, sizeof e);
  }
  cfgval_bool(c->y, v[K_REDACT], ydoc_kp_key(sub, "admin", "redact"), &cfg->admin.redact);
  cfgval_u32(c->y, v[K_INSPECT_KEEP], ydoc_kp_key(sub, "admin", "inspect_keep"), 0, 100000,
             &cfg->admin.inspect_keep);
  cfgval_bool(c->y, v[K_INSPECT_ALL], ydoc_kp_key(sub, "admin", "inspect_all"),
              &cfg->admin.inspect_all);
  cfgval_size(c->y, v[K_INSPECT_BODY_BYTES], ydoc_kp_key(sub, "admin", "inspect_body_bytes"), 0,
              65536, &cfg->admin.inspect_body_bytes);
  cfgval_size(c->y, v[K_INSPECT_MAX_BYTES], ydoc_kp_key(sub, "admin", "inspect_max_bytes"), 65536,
              (uint64_t)1 << 32, &cfg->admin.inspect_max_bytes);
  if (v[K_REDACT_HEADERS] != NULL)
    load_name_list(c, v[K_REDACT_HEADERS], ydoc_kp_key(sub, "admin", "redact_headers"),
                   &cfg->admin.redact_headers, &cfg->admin.nredact_headers, cfgval_is_token,
                   "header name", "");
  if (cfgval_bool(c->y, v[K_REPLAY], ydoc_kp_key(sub, "admin", "replay"), &cfg->admin.replay) &&
      cfg->admin.replay && !is_loopback(&cfg->admin.addr))
    ydoc_warn(c->y, v[K_REPLAY]->mark, sub,
              "replay is on while admin.address %s is not a loopback address: anyone who can "
              "reach it can make ferry resend captured requests; listen on 127.0.0.1 or [::1] "
              "(or set replay: false)",
              cfg->admin.address != NULL ? cfg->admin.address : "(unset)");
  if (v[K_ALLOWED_HOSTS] != NULL)
    load_name_list(c, v[K_ALLOWED_HOSTS], ydoc_kp_key(sub, "admin", "allowed_hosts"),
                   &cfg->admin.allowed_hosts, &cfg->admin.nallowed_hosts, allowed_host_ok, "host",
                   " (expected a host name without port, e.g. ferry.internal, or \"*\" to serve "
                   "any Host)");
}

static void load_access_log(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {"path", "format", NULL};
  static const char *const formats[] = {"combined", "json"};
  enum { K_PATH, K_FORMAT, K_N };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  int format;
  if (!cfgval_fields(c->y, n, "access_log", keys, v, k))
    return;
  const struct ynode *p = v[K_PATH];
  if (p != NULL && p->kind == Y_SCALAR &&
      (strcmp(p->s, "off") == 0 ||
       (p->plain && (ydoc_streq_nocase(p->s, "off") || ydoc_streq_nocase(p->s, "false") ||
                     ydoc_streq_nocase(p->s, "no"))))) {
    free(cfg->access_log.path);
    cfg->access_log.path = NULL;
  } else if (p != NULL && p->kind != Y_BAD) {
    const char *s;
    if (p->kind != Y_SCALAR || p->len == 0 ||
        (p->plain && (ydoc_streq_nocase(p->s, "true") || ydoc_streq_nocase(p->s, "yes") ||
                      ydoc_streq_nocase(p->s, "on"))))
      cfgval_err_type(c->y, p, "access_log.path", "\"-\", a file path or off");
    else if (cfgval_text(c->y, p, "access_log.path", &s))
      ydoc_set_str(c->y, &cfg->access_log.path, s);
  }
  if (cfgval_enum(c->y, v[K_FORMAT], "access_log.format", formats, 2, &format))
    cfg->access_log.format = (enum cfg_log_format)format;
}

static void load_limits(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {"max_request_header_bytes", "max_request_body_bytes",
                                     "max_connections", NULL};
  enum { K_HEADER, K_BODY, K_CONNS, K_N };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  if (!cfgval_fields(c->y, n, "limits", keys, v, k))
    return;
  cfgval_size(c->y, v[K_HEADER], "limits.max_request_header_bytes", 1024, 16ull << 20,
              &cfg->limits.max_request_header_bytes);
  cfgval_size(c->y, v[K_BODY], "limits.max_request_body_bytes", 0, UINT64_MAX,
              &cfg->limits.max_request_body_bytes);
  cfgval_u32(c->y, v[K_CONNS], "limits.max_connections", 1, 10000000, &cfg->limits.max_connections);
}

static void load_timeouts(struct ctx *c, const struct ynode *n) {
  static const char *const keys[] = {
      "client_header", "client_idle", "upstream_connect", "upstream_response",
      "upstream_idle", "drain",       "drain_grace",      NULL};
  const struct ynode *v[7], *k[7];
  struct config *cfg = c->cfg;
  uint64_t *dst[7] = {&cfg->timeouts.client_header_ms,    &cfg->timeouts.client_idle_ms,
                      &cfg->timeouts.upstream_connect_ms, &cfg->timeouts.upstream_response_ms,
                      &cfg->timeouts.upstream_idle_ms,    &cfg->timeouts.drain_ms,
                      &cfg->timeouts.drain_grace_ms};
  char sub[YDOC_KEYPATH_MAX];
  if (!cfgval_fields(c->y, n, "timeouts", keys, v, k))
    return;
  for (size_t i = 0; i < 7; i++) /* drain and drain_grace may be 0: no wait */
    cfgval_duration(c->y, v[i], ydoc_kp_key(sub, "timeouts", keys[i]), i >= 5 ? 0 : 1, dst[i]);
}

/* Server address: "host:port" or "[v6]:port"; names resolved now. */
static void load_server_address(struct ctx *c, const struct ynode *n, const char *path,
                                struct cfg_server *sv) {
  const char *s;
  char host[CFGVAL_HOST_MAX], e[256], qb[YDOC_QBUF], qh[YDOC_QBUF];
  bool bracketed;
  uint16_t port;
  struct sockaddr_storage ss;
  if (!cfgval_text(c->y, n, path, &s))
    return;
  if (cfgval_split_host_port(s, host, sizeof host, &port, &bracketed, e, sizeof e) != 0) {
    ydoc_err(c->y, n->mark, path, "invalid address %s: %s", ydoc_quote(s, qb, sizeof qb), e);
    return;
  }
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (bracketed) {
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
      ydoc_err(c->y, n->mark, path, "invalid address %s: %s is not an IPv6 address",
               ydoc_quote(s, qb, sizeof qb), ydoc_quote(host, qh, sizeof qh));
      return;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  } else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  } else if (!cfgval_is_host_name(host)) {
    ydoc_err(c->y, n->mark, path, "invalid address %s: %s is not a host name or IP address",
             ydoc_quote(s, qb, sizeof qb), ydoc_quote(host, qh, sizeof qh));
    return;
  } else {
    /* A name: resolved by the upstream runtime at start and every
     * resolve_interval, so it is not looked up here. */
    sv->resolve = true;
  }
  ydoc_set_str(c->y, &sv->address, s);
  ydoc_set_str(c->y, &sv->host, host);
  sv->port = port;
  sv->addr = ss;
}

static void load_servers(struct ctx *c, struct cfg_upstream *up, const struct ynode *n,
                         const char *path) {
  static const char *const keys[] = {"address", "weight", NULL};
  enum { K_ADDRESS, K_WEIGHT, K_N };
  size_t count;
  if (!cfgval_seq(c->y, n, path, &count))
    return;
  if (count == 0) {
    ydoc_err(c->y, n->mark, path, "at least one server is required");
    return;
  }
  if ((up->servers = ydoc_calloc(c->y, count, sizeof *up->servers)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i], *v[K_N], *k[K_N];
    char ipath[YDOC_KEYPATH_MAX], sub[YDOC_KEYPATH_MAX];
    ydoc_kp_index(ipath, path, i);
    if (!cfgval_fields(c->y, item, ipath, keys, v, k))
      continue;
    struct cfg_server *sv = &up->servers[up->nservers++];
    sv->weight = 1;
    sv->line = ydoc_line(item->mark);
    cfgval_u32(c->y, v[K_WEIGHT], ydoc_kp_key(sub, ipath, "weight"), 1, 1000, &sv->weight);
    if (v[K_ADDRESS] == NULL)
      ydoc_err(c->y, item->mark, ipath, "missing required key \"address\"");
    else
      load_server_address(c, v[K_ADDRESS], ydoc_kp_key(sub, ipath, "address"), sv);
  }
}

/* "client_ip", "header:NAME" or "cookie:NAME". */
static bool is_hash_key(const char *s) {
  if (strcmp(s, "client_ip") == 0)
    return true;
  if (strncmp(s, "header:", 7) == 0)
    return cfgval_is_token(s + 7);
  if (strncmp(s, "cookie:", 7) == 0)
    return cfgval_is_token(s + 7);
  return false;
}

static void load_health_check(struct ctx *c, struct cfg_health_check *hc, const struct ynode *n,
                              const char *path) {
  static const char *const keys[] = {
      "path", "interval", "timeout", "unhealthy_threshold", "healthy_threshold", NULL};
  enum { K_PATH, K_INTERVAL, K_TIMEOUT, K_UNHEALTHY, K_HEALTHY, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX];
  const char *s;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  hc->enabled = true;
  if (cfgval_text(c->y, v[K_PATH], ydoc_kp_key(sub, path, "path"), &s) &&
      cfgval_path(c->y, v[K_PATH], sub, s, false))
    ydoc_set_str(c->y, &hc->path, s);
  cfgval_duration(c->y, v[K_INTERVAL], ydoc_kp_key(sub, path, "interval"), 1, &hc->interval_ms);
  cfgval_duration(c->y, v[K_TIMEOUT], ydoc_kp_key(sub, path, "timeout"), 1, &hc->timeout_ms);
  cfgval_u32(c->y, v[K_UNHEALTHY], ydoc_kp_key(sub, path, "unhealthy_threshold"), 1, 1000,
             &hc->unhealthy_threshold);
  cfgval_u32(c->y, v[K_HEALTHY], ydoc_kp_key(sub, path, "healthy_threshold"), 1, 1000,
             &hc->healthy_threshold);
}

static void load_upstream(struct ctx *c, struct cfg_upstream *up, const struct ynode *n,
                          const char *path) {
  static const char *const keys[] = {"servers",      "balance", "hash_key", "keepalive",
                                     "health_check", "retries", "passive",  "resolve_interval",
                                     "max_requests", "tls",     NULL};
  static const char *const passive_keys[] = {"consecutive_failures", "eject_for", NULL};
  static const char *const balances[] = {"round_robin", "least_conn", "random2", "hash"};
  static const char *const ka_keys[] = {"max_idle", "idle_timeout", NULL};
  enum {
    K_SERVERS,
    K_BALANCE,
    K_HASH_KEY,
    K_KEEPALIVE,
    K_HEALTH,
    K_RETRIES,
    K_PASSIVE,
    K_RESOLVE,
    K_MAX_REQUESTS,
    K_TLS,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N], *kv[2], *kk[2];
  char sub[YDOC_KEYPATH_MAX], sub2[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  int balance;
  bool balance_ok = true;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  if (v[K_TLS] != NULL) {
    char tpath[YDOC_KEYPATH_MAX];
    cfgtls_upstream(c->y, v[K_TLS], ydoc_kp_key(tpath, path, "tls"), up);
  }

  if (v[K_SERVERS] == NULL)
    ydoc_err(c->y, n->mark, path, "missing required key \"servers\"");
  else
    load_servers(c, up, v[K_SERVERS], ydoc_kp_key(sub, path, "servers"));

  if (v[K_BALANCE] != NULL) {
    balance_ok =
        cfgval_enum(c->y, v[K_BALANCE], ydoc_kp_key(sub, path, "balance"), balances, 4, &balance);
    if (balance_ok)
      up->balance = (enum cfg_balance)balance;
  }
  if (balance_ok && up->balance == BALANCE_HASH) {
    const char *s;
    if (v[K_HASH_KEY] == NULL)
      ydoc_err(c->y, v[K_BALANCE]->mark, path,
               "balance: hash requires hash_key (client_ip, header:NAME or cookie:NAME)");
    else if (cfgval_text(c->y, v[K_HASH_KEY], ydoc_kp_key(sub, path, "hash_key"), &s)) {
      if (is_hash_key(s))
        ydoc_set_str(c->y, &up->hash_key, s);
      else
        ydoc_err(c->y, v[K_HASH_KEY]->mark, sub,
                 "invalid hash_key %s (expected client_ip, header:NAME or cookie:NAME)",
                 ydoc_quote(s, qb, sizeof qb));
    }
  } else if (balance_ok && v[K_HASH_KEY] != NULL) {
    ydoc_err(c->y, k[K_HASH_KEY]->mark, path,
             "hash_key is only allowed with balance: hash (balance "
             "is %s)",
             balances[up->balance]);
  }

  ydoc_kp_key(sub, path, "keepalive");
  if (cfgval_fields(c->y, v[K_KEEPALIVE], sub, ka_keys, kv, kk)) {
    cfgval_u32(c->y, kv[0], ydoc_kp_key(sub2, sub, "max_idle"), 0, 100000, &up->keepalive_max_idle);
    cfgval_duration(c->y, kv[1], ydoc_kp_key(sub2, sub, "idle_timeout"), 1,
                    &up->keepalive_idle_timeout_ms);
  }
  load_health_check(c, &up->health_check, v[K_HEALTH], ydoc_kp_key(sub, path, "health_check"));
  cfgval_u32(c->y, v[K_RETRIES], ydoc_kp_key(sub, path, "retries"), 0, 100, &up->retries);
  cfgval_u32(c->y, v[K_MAX_REQUESTS], ydoc_kp_key(sub, path, "max_requests"), 0, 10000000,
             &up->max_requests);
  ydoc_kp_key(sub, path, "passive");
  if (cfgval_fields(c->y, v[K_PASSIVE], sub, passive_keys, kv, kk)) {
    cfgval_u32(c->y, kv[0], ydoc_kp_key(sub2, sub, "consecutive_failures"), 0, 1000,
               &up->passive.consecutive_failures);
    cfgval_duration(c->y, kv[1], ydoc_kp_key(sub2, sub, "eject_for"), 1, &up->passive.eject_for_ms);
  }
  cfgval_duration(c->y, v[K_RESOLVE], ydoc_kp_key(sub, path, "resolve_interval"), 1,
                  &up->resolve_interval_ms);
}

static bool is_upstream_name(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
      return false;
  return true;
}

static void load_upstreams(struct ctx *c, const struct ynode *n) {
  struct config *cfg = c->cfg;
  size_t pairs;
  if (n == NULL)
    return;
  if (!cfgval_map(c->y, n, "upstreams", &pairs)) {
    c->upstreams_bad = true;
    return;
  }
  if (pairs == 0 || (cfg->upstreams = ydoc_calloc(c->y, pairs, sizeof *cfg->upstreams)) == NULL)
    return;
  for (size_t i = 0; i < pairs; i++) {
    const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
    char path[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
    if (!cfgval_key_ok(c->y, n, i, "upstreams", false, "upstream"))
      continue;
    if (!is_upstream_name(k->s))
      ydoc_err(c->y, k->mark, "upstreams",
               "invalid upstream name %s (use letters, digits, \"_\", \"-\" and \".\")",
               ydoc_quote_n(k->s, k->len, qb, sizeof qb));
    struct cfg_upstream *up = &cfg->upstreams[cfg->nupstreams++];
    up->name = ydoc_strdup(c->y, k->s);
    up->line = ydoc_line(k->mark);
    up->balance = BALANCE_ROUND_ROBIN;
    up->keepalive_max_idle = 32;
    up->keepalive_idle_timeout_ms = UINT64_MAX; /* resolved to timeouts.upstream_idle later */
    up->health_check.path = ydoc_strdup(c->y, "/healthz");
    up->health_check.interval_ms = 5000;
    up->health_check.timeout_ms = 1000;
    up->health_check.unhealthy_threshold = 3;
    up->health_check.healthy_threshold = 2;
    up->retries = 1;
    up->passive.consecutive_failures = 5;
    up->passive.eject_for_ms = 30 * 1000;
    up->resolve_interval_ms = 30 * 1000;
    load_upstream(c, up, v, ydoc_kp_key(path, "upstreams", k->s));
  }
}
/* pid_file: a file path; absent = no pid file. */
static void load_pid_file(struct ctx *c, const struct ynode *n) {
  const char *s;
  if (n == NULL || n->kind == Y_BAD)
    return;
  if (n->kind != Y_SCALAR || n->len == 0 || cfgval_has_space_or_ctl(n->s) ||
      n->s[n->len - 1] == '/')
    cfgval_err_type(c->y, n, "pid_file", "a file path such as /run/ferry.pid");
  else if (cfgval_text(c->y, n, "pid_file", &s))
    ydoc_set_str(c->y, &c->cfg->pid_file, s);
}

static void load_root(struct ctx *c, const struct ynode *root) {
  static const char *const keys[] = {"listeners", "workers",   "admin",  "access_log", "limits",
                                     "timeouts",  "upstreams", "routes", "pid_file",   NULL};
  enum {
    K_LISTENERS,
    K_WORKERS,
    K_ADMIN,
    K_ACCESS_LOG,
    K_LIMITS,
    K_TIMEOUTS,
    K_UPSTREAMS,
    K_ROUTES,
    K_PID_FILE,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N];
  struct config *cfg = c->cfg;
  yaml_mark_t start = {0, 0, 0};

  if (root == NULL || root->kind == Y_NULL) {
    ydoc_err(c->y, root ? root->mark : start, "", "at least one listener is required");
    return;
  }
  if (root->kind == Y_BAD)
    return;
  if (root->kind != Y_MAP) {
    cfgval_err_type(c->y, root, "", "a mapping at the top level");
    return;
  }
  cfgval_fields(c->y, root, "", keys, v, k);
  load_listeners(c, root, v[K_LISTENERS]);
  load_workers(c, v[K_WORKERS]);
  load_pid_file(c, v[K_PID_FILE]);
  if (v[K_ADMIN] != NULL)
    load_admin(c, v[K_ADMIN]);
  if (v[K_ACCESS_LOG] != NULL)
    load_access_log(c, v[K_ACCESS_LOG]);
  if (v[K_LIMITS] != NULL)
    load_limits(c, v[K_LIMITS]);
  if (v[K_TIMEOUTS] != NULL)
    load_timeouts(c, v[K_TIMEOUTS]);
  load_upstreams(c, v[K_UPSTREAMS]);
  cfgroute_load(c->y, c->cfg, c->upstreams_bad, v[K_ROUTES]);

  for (size_t i = 0; i < cfg->nupstreams; i++)
    if (cfg->upstreams[i].keepalive_idle_timeout_ms == UINT64_MAX)
      cfg->upstreams[i].keepalive_idle_timeout_ms = cfg->timeouts.upstream_idle_ms;

  if (cfg->admin.enabled && v[K_ADMIN] != NULL) {
    for (size_t i = 0; i < cfg->nlisteners; i++) {
      if (cfgval_same_sockaddr(&cfg->listeners[i].addr, &cfg->admin.addr)) {
        ydoc_err(c->y, v[K_ADMIN]->mark, "admin", "address %s is also a listener (line %d)",
                 cfg->admin.address, cfg->listeners[i].line);
        break;
      }
    }
  }
}

/* ---- public API -------------------------------------------------------- */

static void set_defaults(struct ctx *c, struct config *cfg) {
  cfg->workers = 0;
  cfg->admin.redact = true;
  cfg->admin.inspect_keep = 500;
  cfg->admin.inspect_max_bytes = 16 * 1024 * 1024;
  {
    static const char *const redact[] = {"Authorization", "Proxy-Authorization", "Cookie",
                                         "Set-Cookie"};
    cfg->admin.redact_headers = ydoc_calloc(c->y, 4, sizeof(char *));
    for (size_t i = 0; cfg->admin.redact_headers && i < 4; i++)
      if ((cfg->admin.redact_headers[i] = ydoc_strdup(c->y, redact[i])) != NULL)
        cfg->admin.nredact_headers++;
  }
  cfg->access_log.path = ydoc_strdup(c->y, "-");
  cfg->access_log.format = LOG_FORMAT_COMBINED;
  cfg->limits.max_request_header_bytes = 32 * 1024;
  cfg->limits.max_request_body_bytes = 0;
  cfg->limits.max_connections = 10000;
  cfg->timeouts.client_header_ms = 10 * 1000;
  cfg->timeouts.client_idle_ms = 60 * 1000;
  cfg->timeouts.upstream_connect_ms = 3 * 1000;
  cfg->timeouts.upstream_response_ms = 30 * 1000;
  cfg->timeouts.upstream_idle_ms = 60 * 1000;
  cfg->timeouts.drain_ms = 30 * 1000;
}

int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       struct config_diag *diag) {
  struct config_diag local = {0};
  struct ydoc y;
  struct ctx c = {&y, NULL, false};
  struct ynode *root = NULL;

  if (out != NULL)
    *out = NULL;
  if (diag == NULL)
    diag = &local;
  if (name == NULL)
    name = "(config)";
  if (text == NULL)
    len = 0;
  memset(&y, 0, sizeof y);
  y.file = name;
  y.text = text ? text : "";
  y.len = len;
  c.cfg = ydoc_calloc(&y, 1, sizeof *c.cfg);
  if (c.cfg != NULL) {
    c.cfg->file = ydoc_strdup(&y, name);
    set_defaults(&c, c.cfg);
    if (ydoc_parse(&y, y.text, len, &root))
      load_root(&c, root);
    ydoc_free_tree(root);
  }
  bool failed = y.nerrors > 0 || y.oom;
  ydoc_flush(&y, diag);
  if (!failed) /* warnings about routes that can never match */
    router_check_shadowed(c.cfg, diag);
  if (y.oom)
    ydoc_diag_error(diag, name, "out of memory while loading the configuration");
  if (diag == &local)
    config_diag_free(&local);
  if (failed || out == NULL) {
    config_free(c.cfg);
    return failed ? -1 : 0;
  }
  *out = c.cfg;
  return 0;
}

int config_load_file(const char *path, struct config **out, struct config_diag *diag) {
  struct config_diag local = {0};
  char msg[300];
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = -1;

  if (out != NULL)
    *out = NULL;
  if (diag == NULL)
    diag = &local;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(msg, sizeof msg, "cannot read: %s", strerror(errno));
    ydoc_diag_error(diag, path, msg);
    goto done;
  }
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 16384;
      char *nbuf = ncap <= MAX_FILE_BYTES ? realloc(buf, ncap) : NULL;
      if (nbuf == NULL) {
        ydoc_diag_error(diag, path,
                        ncap > MAX_FILE_BYTES ? "cannot read: file is larger than 16m"
                                              : "cannot read: out of memory");
        goto done;
      }
      buf = nbuf;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) {
        snprintf(msg, sizeof msg, "cannot read: %s", strerror(errno));
        ydoc_diag_error(diag, path, msg);
        goto done;
      }
      break;
    }
  }
  rc = config_load_string(path, buf, len, out, diag);
done:
  if (f != NULL)
    fclose(f);
  free(buf);
  if (diag == &local)
    config_diag_free(&local);
  return rc;
}

static void free_kvs(struct cfg_kv *kvs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(kvs[i].name);
    free(kvs[i].value);
  }
  free(kvs);
}

static void free_header_ops(struct cfg_header_ops *ops) {
  free_kvs(ops->set, ops->nset);
  free_kvs(ops->add, ops->nadd);
  for (size_t i = 0; i < ops->nremove; i++)
    free(ops->remove[i]);
  free(ops->remove);
}

void config_free(struct config *cfg) {
  if (cfg == NULL)
    return;
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    free(cfg->listeners[i].address);
    free(cfg->listeners[i].trusted_proxies);
    cfgtls_free(cfg->listeners[i].tls);
    tls_server_unref(cfg->listeners[i].tls_srv);
  }
  free(cfg->listeners);
  free(cfg->admin.address);
  for (size_t i = 0; i < cfg->admin.nredact_headers; i++)
    free(cfg->admin.redact_headers[i]);
  free(cfg->admin.redact_headers);
  for (size_t i = 0; i < cfg->admin.nallowed_hosts; i++)
    free(cfg->admin.allowed_hosts[i]);
  free(cfg->admin.allowed_hosts);
  free(cfg->access_log.path);
  free(cfg->pid_file);
  for (size_t i = 0; i < cfg->nupstreams; i++) {
    struct cfg_upstream *up = &cfg->upstreams[i];
    for (size_t j = 0; j < up->nservers; j++) {
      free(up->servers[j].address);
      free(up->servers[j].host);
    }
    free(up->servers);
    free(up->name);
    free(up->hash_key);
    if (up->tls) {
      free(up->tls->ca);
      free(up->tls->server_name);
      free(up->tls->cert);
      free(up->tls->key);
      free(up->tls);
    }
    tls_client_unref(up->tls_cli);
    free(up->health_check.path);
  }
  free(cfg->upstreams);
  for (size_t i = 0; i < cfg->nroutes; i++) {
    struct cfg_route *r = &cfg->routes[i];
    free(r->host);
    free(r->path);
    if (r->regex != NULL) {
      regfree(r->regex);
      free(r->regex);
    }
    free_kvs(r->headers, r->nheaders);
    free(r->upstream);
    free(r->redirect_location);
    free(r->respond_body);
    free(r->respond_content_type);
    free(r->rewrite_prefix);
    free(r->set_host);
    for (size_t j = 0; j < r->nsplit; j++)
      free(r->split[j].name);
    free(r->split);
    free(r->allow);
    free(r->deny);
    free(r->rate_limit.header);
    free(r->auth.upstream);
    free(r->auth.path);
    for (size_t j = 0; j < r->auth.npass_headers; j++)
      free(r->auth.pass_headers[j]);
    free(r->auth.pass_headers);
    free(r->mirror.upstream);
    free_header_ops(&r->request_headers);
    free_header_ops(&r->response_headers);
  }
  free(cfg->routes);
  free(cfg->file);
  free(cfg);
}

void config_diag_free(struct config_diag *diag) {
  if (diag == NULL)
    return;
  for (size_t i = 0; i < diag->n; i++)
    free(diag->msgs[i]);
  free(diag->msgs);
  memset(diag, 0, sizeof *diag);
}
