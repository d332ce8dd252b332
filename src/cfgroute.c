/* cfgroute: the `routes` section of proxy.yaml (include/ferry/cfgroute.h).
 *
 * Owns: the schema of one route (match conditions, exactly one action,
 * what is rewritten on the way up and down), its defaults, and the checks
 * that need route knowledge (a path written in the normalised form the
 * router compares with, header names ferry manages itself, HTTP method
 * names). Must not touch: other sections of the configuration (config.c;
 * it only reads cfg->upstreams to resolve names), the router's compiled
 * form, sockets or the event loop. Memory it allocates belongs to the
 * struct config and is freed by config_free(). */
#include "ferry/cfgroute.h"

#include <ctype.h>
#include <llhttp.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/cfgval.h"
#include "ferry/router.h"

struct ctx {
  struct ydoc *y;
  struct config *cfg;
  bool upstreams_bad;
};

static const struct {
  const char *name;
  int method;
} http_methods[] = {
#define XX(num, name, string) {#string, HTTP_##name},
    HTTP_METHOD_MAP(XX)
#undef XX
};

static void load_methods(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                         const char *path) {
  size_t count;
  char qb[YDOC_QBUF];
  if (!cfgval_seq(c->y, n, path, &count))
    return;
  if (count == 0) {
    ydoc_err(c->y, n->mark, path, "at least one method is required (omit methods to allow any)");
    return;
  }
  for (size_t i = 0; i < count; i++) {
    const struct ynode *m = n->kids[i];
    char ipath[YDOC_KEYPATH_MAX];
    const char *s;
    size_t j, nm = sizeof http_methods / sizeof http_methods[0];
    if (!cfgval_text(c->y, m, ydoc_kp_index(ipath, path, i), &s))
      continue;
    struct ydoc_suggest sg = {s, NULL, 0};
    for (j = 0; j < nm && strcmp(http_methods[j].name, s) != 0; j++)
      ydoc_suggest_try(&sg, http_methods[j].name);
    if (j < nm) {
      r->methods |= 1ull << http_methods[j].method;
      continue;
    }
    const char *best = ydoc_suggest_get(&sg);
    if (best != NULL)
      ydoc_err(c->y, m->mark, ipath, "unknown method %s (did you mean \"%s\"?)",
               ydoc_quote(s, qb, sizeof qb), best);
    else
      ydoc_err(c->y, m->mark, ipath,
               "unknown method %s (expected an HTTP method such as GET, HEAD, "
               "POST, PUT, DELETE, PATCH or OPTIONS)",
               ydoc_quote(s, qb, sizeof qb));
  }
}

/* What load_kvs() refuses: nothing (match conditions), or the headers
 * ferry manages itself (framing, hop-by-hop, and Host on requests). */
enum managed { MANAGED_NONE, MANAGED_REQUEST, MANAGED_RESPONSE };

static bool is_managed_header(const char *name, enum managed m) {
  static const char *const managed[] = {"connection", "keep-alive",    "proxy-connection",
                                        "te",         "trailer",       "transfer-encoding",
                                        "upgrade",    "content-length"};
  if (m == MANAGED_NONE)
    return false;
  if (m == MANAGED_REQUEST && ydoc_streq_nocase(name, "host"))
    return true;
  for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++)
    if (ydoc_streq_nocase(name, managed[i]))
      return true;
  return false;
}

/* Reads a mapping of header name -> value into kvs. nocase: names that
 * differ only in case are duplicates. */
static void load_kvs(struct ctx *c, const struct ynode *n, const char *path, struct cfg_kv **kvs,
                     size_t *count, bool nocase, enum managed managed) {
  size_t pairs;
  char qb[YDOC_QBUF];
  if (!cfgval_map(c->y, n, path, &pairs) || pairs == 0)
    return;
  if ((*kvs = ydoc_calloc(c->y, pairs, sizeof **kvs)) == NULL)
    return;
  for (size_t i = 0; i < pairs; i++) {
    const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
    char sub[YDOC_KEYPATH_MAX];
    const char *s;
    if (!cfgval_key_ok(c->y, n, i, path, nocase, "header"))
      continue;
    if (!cfgval_is_token(k->s) || strlen(k->s) != k->len) {
      ydoc_err(c->y, k->mark, path, "invalid header name %s",
               ydoc_quote_n(k->s, k->len, qb, sizeof qb));
      continue;
    }
    if (is_managed_header(k->s, managed)) {
      if (ydoc_streq_nocase(k->s, "host"))
        ydoc_err(c->y, k->mark, path, "cannot change \"%s\" here (use set_host)", k->s);
      else
        ydoc_err(c->y, k->mark, path,
                 "cannot change \"%s\": ferry manages framing and hop-by-hop "
                 "headers",
                 k->s);
      continue;
    }
    if (!cfgval_text(c->y, v, ydoc_kp_key(sub, path, k->s), &s))
      continue;
    if (!cfgval_is_field_value(s)) {
      ydoc_err(c->y, v->mark, sub, "header value must not contain control characters, found %s",
               ydoc_quote(s, qb, sizeof qb));
      continue;
    }
    struct cfg_kv *kv = &(*kvs)[*count];
    kv->name = ydoc_strdup(c->y, k->s);
    kv->value = ydoc_strdup(c->y, s);
    (*count)++;
  }
}

static void load_header_ops(struct ctx *c, struct cfg_header_ops *ops, const struct ynode *n,
                            const char *path, bool request) {
  enum managed m = request ? MANAGED_REQUEST : MANAGED_RESPONSE;
  static const char *const keys[] = {"set", "add", "remove", NULL};
  enum { K_SET, K_ADD, K_REMOVE, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  size_t count;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  load_kvs(c, v[K_SET], ydoc_kp_key(sub, path, "set"), &ops->set, &ops->nset, true, m);
  load_kvs(c, v[K_ADD], ydoc_kp_key(sub, path, "add"), &ops->add, &ops->nadd, false, m);
  ydoc_kp_key(sub, path, "remove");
  if (!cfgval_seq(c->y, v[K_REMOVE], sub, &count) || count == 0)
    return;
  if ((ops->remove = ydoc_calloc(c->y, count, sizeof *ops->remove)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = v[K_REMOVE]->kids[i];
    char ipath[YDOC_KEYPATH_MAX];
    const char *s;
    if (!cfgval_text(c->y, item, ydoc_kp_index(ipath, sub, i), &s))
      continue;
    if (!cfgval_is_token(s)) {
      ydoc_err(c->y, item->mark, ipath, "invalid header name %s", ydoc_quote(s, qb, sizeof qb));
      continue;
    }
    if ((request && ydoc_streq_nocase(s, "host")) || ydoc_streq_nocase(s, "content-length") ||
        ydoc_streq_nocase(s, "transfer-encoding")) {
      ydoc_err(c->y, item->mark, ipath, "cannot remove \"%s\": ferry needs it to frame the message",
               s);
      continue;
    }
    if ((ops->remove[ops->nremove] = ydoc_strdup(c->y, s)) != NULL)
      ops->nremove++;
  }
}

/* Route host: lower-cased; "*.example.com" -> wildcard ".example.com". */
static void load_route_host(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                            const char *path) {
  const char *s;
  char qb[YDOC_QBUF];
  if (!cfgval_text(c->y, n, path, &s))
    return;
  bool wild = strncmp(s, "*.", 2) == 0;
  const char *name = wild ? s + 1 : s;
  if (!cfgval_is_host_name(wild ? name + 1 : name) || strlen(name) >= CFGVAL_HOST_MAX) {
    ydoc_err(c->y, n->mark, path,
             "invalid host %s (expected a host name without port or path, e.g. "
             "api.example.com or *.example.com)",
             ydoc_quote(s, qb, sizeof qb));
    return;
  }
  if ((r->host = ydoc_strdup(c->y, name)) == NULL)
    return;
  for (char *p = r->host; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  r->host_wildcard = wild;
}

static void load_redirect(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                          const char *path) {
  static const char *const keys[] = {"location", "status", NULL};
  const struct ynode *v[2], *k[2];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  const char *s;
  int64_t status;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  if (v[0] == NULL)
    ydoc_err(c->y, n->mark, path, "missing required key \"location\"");
  else if (cfgval_text(c->y, v[0], ydoc_kp_key(sub, path, "location"), &s)) {
    if (s[0] == '\0' || !cfgval_is_field_value(s))
      ydoc_err(c->y, v[0]->mark, sub, "expected a URL or path without control characters, found %s",
               ydoc_quote(s, qb, sizeof qb));
    else
      ydoc_set_str(c->y, &r->redirect_location, s);
  }
  if (cfgval_int(c->y, v[1], ydoc_kp_key(sub, path, "status"), INT64_MIN, INT64_MAX, &status)) {
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)
      r->redirect_status = (int)status;
    else
      ydoc_err(c->y, v[1]->mark, sub,
               "%s is not a redirect status (expected 301, 302, 303, 307 or 308)", v[1]->s);
  }
}

static void load_respond(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                         const char *path) {
  static const char *const keys[] = {"status", "body", "content_type", NULL};
  enum { K_STATUS, K_BODY, K_CTYPE, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  const char *s;
  int64_t status;
  ydoc_set_str(c->y, &r->respond_body, "");
  ydoc_set_str(c->y, &r->respond_content_type, "text/plain");
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  if (cfgval_int(c->y, v[K_STATUS], ydoc_kp_key(sub, path, "status"), 100, 599, &status))
    r->respond_status = (int)status;
  if (v[K_BODY] != NULL && v[K_BODY]->kind == Y_NULL) /* `body:` alone: empty */
    ydoc_set_str(c->y, &r->respond_body, "");
  else
    cfgval_str(c->y, v[K_BODY], ydoc_kp_key(sub, path, "body"), &r->respond_body);
  if (cfgval_text(c->y, v[K_CTYPE], ydoc_kp_key(sub, path, "content_type"), &s)) {
    if (s[0] == '\0' || !cfgval_is_field_value(s))
      ydoc_err(c->y, v[K_CTYPE]->mark, sub, "expected a media type, found %s",
               ydoc_quote(s, qb, sizeof qb));
    else
      ydoc_set_str(c->y, &r->respond_content_type, s);
  }
}

/* path and path_prefix are compared with the normalised request path
 * (router_normalize_path: unreserved escapes decoded, other escapes in
 * upper case, dot-segments resolved), so a value not written in that form
 * could never match: an error that shows the form to write. */
static bool check_normal_path(struct ctx *c, const struct ynode *n, const char *path,
                              const char *s) {
  size_t len = strlen(s), nlen = 0;
  char qb[YDOC_QBUF], qn[YDOC_QBUF];
  char *norm = ydoc_calloc(c->y, len + 1, 1);
  if (norm == NULL)
    return false;
  bool ok = true;
  if (router_normalize_path(slice_make(s, len), norm, len + 1, &nlen) != 0) {
    ydoc_err(c->y, n->mark, path,
             "invalid path %s (a \"%%\" must be followed by two hex digits, and \"..\" must not "
             "go above \"/\")",
             ydoc_quote(s, qb, sizeof qb));
    ok = false;
  } else if (nlen != len || memcmp(norm, s, len) != 0) {
    ydoc_err(c->y, n->mark, path,
             "%s can never match: requests are matched on the normalised path (escapes of "
             "letters, digits and -._~ decoded, other escapes in upper case, \".\" and \"..\" "
             "resolved); write %s",
             ydoc_quote(s, qb, sizeof qb), ydoc_quote_n(norm, nlen, qn, sizeof qn));
    ok = false;
  }
  free(norm);
  return ok;
}

static const struct ynode *earliest(const struct ynode *a, const struct ynode *b) {
  if (a == NULL)
    return b;
  if (b == NULL)
    return a;
  return b->mark.index < a->mark.index ? b : a;
}

/* name -> index in cfg->upstreams; an unknown name is an error with a
 * did-you-mean (unless the upstreams section itself was bad). Returns
 * cfg->nupstreams when unknown. */
static size_t find_upstream(struct ctx *c, const struct ynode *n, const char *path, const char *s) {
  struct config *cfg = c->cfg;
  struct ydoc_suggest sg = {s, NULL, 0};
  char qb[YDOC_QBUF];
  size_t j;
  for (j = 0; j < cfg->nupstreams; j++) {
    if (cfg->upstreams[j].name != NULL && strcmp(cfg->upstreams[j].name, s) == 0)
      return j;
    if (cfg->upstreams[j].name != NULL)
      ydoc_suggest_try(&sg, cfg->upstreams[j].name);
  }
  if (c->upstreams_bad)
    return j;
  const char *best = ydoc_suggest_get(&sg);
  if (best != NULL)
    ydoc_err(c->y, n->mark, path, "unknown upstream %s (did you mean \"%s\"?)",
             ydoc_quote(s, qb, sizeof qb), best);
  else if (cfg->nupstreams == 0)
    ydoc_err(c->y, n->mark, path, "unknown upstream %s (no upstreams are defined)",
             ydoc_quote(s, qb, sizeof qb));
  else
    ydoc_err(c->y, n->mark, path, "unknown upstream %s", ydoc_quote(s, qb, sizeof qb));
  return j;
}

/* `upstreams: [{name, weight}]`: a weighted split (SPEC §8). */
#define SPLIT_MAX 64
static void load_split(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                       const char *path) {
  static const char *const keys[] = {"name", "weight", NULL};
  size_t count;
  char qb[YDOC_QBUF];
  if (!cfgval_seq(c->y, n, path, &count))
    return;
  if (count == 0 || count > SPLIT_MAX) {
    ydoc_err(c->y, n->mark, path, "expected 1 to %d upstreams, each {name: NAME, weight: 1..1000}",
             SPLIT_MAX);
    return;
  }
  if ((r->split = ydoc_calloc(c->y, count, sizeof *r->split)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i], *v[2], *k[2];
    char ipath[YDOC_KEYPATH_MAX], sub[YDOC_KEYPATH_MAX];
    const char *s;
    ydoc_kp_index(ipath, path, i);
    if (!cfgval_fields(c->y, item, ipath, keys, v, k))
      continue;
    struct cfg_split *sp = &r->split[r->nsplit];
    sp->weight = 1;
    if (v[0] == NULL) {
      ydoc_err(c->y, item->mark, ipath, "missing required key \"name\" (an upstream's name)");
      continue;
    }
    if (!cfgval_text(c->y, v[0], ydoc_kp_key(sub, ipath, "name"), &s))
      continue;
    size_t j = find_upstream(c, v[0], sub, s);
    for (size_t d = 0; d < r->nsplit; d++)
      if (strcmp(r->split[d].name, s) == 0) {
        ydoc_err(c->y, v[0]->mark, sub, "upstream %s is listed twice (add up the weights)",
                 ydoc_quote(s, qb, sizeof qb));
        j = SIZE_MAX;
      }
    cfgval_u32(c->y, v[1], ydoc_kp_key(sub, ipath, "weight"), 1, 1000, &sp->weight);
    if (j >= c->cfg->nupstreams)
      continue;
    sp->name = ydoc_strdup(c->y, s);
    sp->upstream_index = j;
    r->nsplit++;
  }
  if (r->nsplit > 0) {
    ydoc_set_str(c->y, &r->upstream, r->split[0].name);
    r->upstream_index = r->split[0].upstream_index;
  }
}

/* `rate_limit: {requests, per, burst, key}`. */
static void load_rate_limit(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                            const char *path) {
  static const char *const keys[] = {"requests", "per", "burst", "key", NULL};
  enum { K_REQ, K_PER, K_BURST, K_KEY, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  const char *s;
  struct cfg_rate_limit *rl = &r->rate_limit;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  rl->enabled = true;
  rl->per_ms = 1000;
  rl->key = RATE_KEY_CLIENT_IP;
  if (v[K_REQ] == NULL)
    ydoc_err(c->y, n->mark, path, "missing required key \"requests\" (e.g. requests: 100)");
  else
    cfgval_u32(c->y, v[K_REQ], ydoc_kp_key(sub, path, "requests"), 1, 100000000, &rl->requests);
  cfgval_duration(c->y, v[K_PER], ydoc_kp_key(sub, path, "per"), 1, &rl->per_ms);
  rl->burst = rl->requests;
  cfgval_u32(c->y, v[K_BURST], ydoc_kp_key(sub, path, "burst"), 1, 100000000, &rl->burst);
  if (cfgval_text(c->y, v[K_KEY], ydoc_kp_key(sub, path, "key"), &s)) {
    if (strcmp(s, "client_ip") == 0)
      rl->key = RATE_KEY_CLIENT_IP;
    else if (strcmp(s, "route") == 0)
      rl->key = RATE_KEY_ROUTE;
    else if (strncmp(s, "header:", 7) == 0 && cfgval_is_token(s + 7)) {
      rl->key = RATE_KEY_HEADER;
      ydoc_set_str(c->y, &rl->header, s + 7);
    } else
      ydoc_err(c->y, v[K_KEY]->mark, sub,
               "invalid key %s (expected client_ip, header:NAME or route)",
               ydoc_quote(s, qb, sizeof qb));
  }
}

/* One `retry.on` item: connect-failure, reset, or a 5xx status. */
static void load_retry_on(struct ctx *c, struct cfg_retry *rt, const struct ynode *m,
                          const char *ipath) {
  static const char *const words[] = {"connect-failure", "reset"};
  char qb[YDOC_QBUF];
  const char *s;
  int64_t st;
  if (!cfgval_text(c->y, m, ipath, &s))
    return;
  if (strcmp(s, words[0]) == 0) {
    rt->on_connect_failure = true;
    return;
  }
  if (strcmp(s, words[1]) == 0) {
    rt->on_reset = true;
    return;
  }
  if (cfgval_parse_int(s, &st) == 1 && s[0] != '+' && s[0] != '-') {
    if (st >= 500 && st <= 599)
      rt->on_status[(st - 500) / 64] |= 1ull << ((st - 500) % 64);
    else
      ydoc_err(c->y, m->mark, ipath,
               "status %s cannot be retried (only 500 to 599: a 2xx, 3xx or 4xx is the "
               "server's answer, not a failure)",
               ydoc_quote(s, qb, sizeof qb));
    return;
  }
  struct ydoc_suggest sg = {s, NULL, 0};
  ydoc_suggest_try(&sg, words[0]);
  ydoc_suggest_try(&sg, words[1]);
  const char *best = ydoc_suggest_get(&sg);
  if (best != NULL)
    ydoc_err(c->y, m->mark, ipath, "unknown retry condition %s (did you mean \"%s\"?)",
             ydoc_quote(s, qb, sizeof qb), best);
  else
    ydoc_err(c->y, m->mark, ipath,
             "unknown retry condition %s (expected connect-failure, reset, or a status from "
             "\"500\" to \"599\")",
             ydoc_quote(s, qb, sizeof qb));
}

/* `retry: {attempts, on, budget}` (SPEC §8). */
static void load_retry(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                       const char *path) {
  static const char *const keys[] = {"attempts", "on", "budget", NULL};
  enum { K_ATT, K_ON, K_BUDGET, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  const char *s;
  size_t count;
  struct cfg_retry *rt = &r->retry;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  rt->enabled = true;
  rt->attempts = 2;
  rt->budget_percent = 20;
  cfgval_u32(c->y, v[K_ATT], ydoc_kp_key(sub, path, "attempts"), 1, CFG_RETRY_MAX_ATTEMPTS,
             &rt->attempts);
  if (v[K_ON] == NULL) {
    rt->on_connect_failure = rt->on_reset = true;
  } else if (cfgval_seq(c->y, v[K_ON], ydoc_kp_key(sub, path, "on"), &count)) {
    if (count == 0)
      ydoc_err(c->y, v[K_ON]->mark, sub,
               "at least one condition is required (connect-failure, reset, or a status such "
               "as \"503\"); to turn retries off, remove retry");
    for (size_t i = 0; i < count; i++) {
      char ipath[YDOC_KEYPATH_MAX];
      load_retry_on(c, rt, v[K_ON]->kids[i], ydoc_kp_index(ipath, sub, i));
    }
  }
  if (cfgval_text(c->y, v[K_BUDGET], ydoc_kp_key(sub, path, "budget"), &s)) {
    int64_t pct;
    size_t len = strlen(s);
    char num[16];
    bool ok = len > 0 && len < sizeof num;
    if (ok) {
      memcpy(num, s, len + 1);
      if (num[len - 1] == '%')
        num[--len] = '\0';
      ok = len > 0 && isdigit((unsigned char)num[0]) && cfgval_parse_int(num, &pct) == 1 &&
           pct >= 0 && pct <= 100;
    }
    if (ok)
      rt->budget_percent = (uint32_t)pct;
    else
      ydoc_err(c->y, v[K_BUDGET]->mark, sub,
               "invalid budget %s (expected a share of the route's requests from 0%% to 100%%, "
               "e.g. 20%%)",
               ydoc_quote(s, qb, sizeof qb));
  }
}

/* `auth_request: {upstream, path, pass_headers}` (SPEC §8). */
static void load_auth_request(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                              const char *path) {
  static const char *const keys[] = {"upstream", "path", "pass_headers", NULL};
  enum { K_UP, K_PATH, K_PASS, K_N };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  const char *s;
  size_t count;
  struct cfg_auth_request *a = &r->auth;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  if (v[K_UP] == NULL)
    ydoc_err(c->y, n->mark, path,
             "missing required key \"upstream\" (the auth service's upstream)");
  else if (cfgval_text(c->y, v[K_UP], ydoc_kp_key(sub, path, "upstream"), &s) &&
           (a->upstream_index = find_upstream(c, v[K_UP], sub, s)) < c->cfg->nupstreams)
    ydoc_set_str(c->y, &a->upstream, s);
  if (v[K_PATH] == NULL)
    ydoc_err(c->y, n->mark, path, "missing required key \"path\" (e.g. path: /check)");
  else if (cfgval_text(c->y, v[K_PATH], ydoc_kp_key(sub, path, "path"), &s) &&
           cfgval_path(c->y, v[K_PATH], sub, s, false)) {
    if (strchr(s, '#') != NULL)
      ydoc_err(c->y, v[K_PATH]->mark, sub,
               "must not contain \"#\" (a request target has no "
               "fragment), found %s",
               ydoc_quote(s, qb, sizeof qb));
    else
      ydoc_set_str(c->y, &a->path, s);
  }
  ydoc_kp_key(sub, path, "pass_headers");
  if (!cfgval_seq(c->y, v[K_PASS], sub, &count) || count == 0)
    return;
  if ((a->pass_headers = ydoc_calloc(c->y, count, sizeof *a->pass_headers)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = v[K_PASS]->kids[i];
    char ipath[YDOC_KEYPATH_MAX];
    if (!cfgval_text(c->y, item, ydoc_kp_index(ipath, sub, i), &s))
      continue;
    if (!cfgval_is_token(s)) {
      ydoc_err(c->y, item->mark, ipath, "invalid header name %s", ydoc_quote(s, qb, sizeof qb));
      continue;
    }
    if (is_managed_header(s, MANAGED_REQUEST)) {
      ydoc_err(c->y, item->mark, ipath,
               "cannot pass \"%s\": ferry manages Host, framing and hop-by-hop headers", s);
      continue;
    }
    if ((a->pass_headers[a->npass_headers] = ydoc_strdup(c->y, s)) != NULL)
      a->npass_headers++;
  }
}

/* `mirror: {upstream, percent}` (SPEC §8). */
static void load_mirror(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                        const char *path) {
  static const char *const keys[] = {"upstream", "percent", NULL};
  const struct ynode *v[2], *k[2];
  char sub[YDOC_KEYPATH_MAX];
  const char *s;
  struct cfg_mirror *m = &r->mirror;
  m->percent = 100;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;
  if (v[0] == NULL)
    ydoc_err(c->y, n->mark, path, "missing required key \"upstream\" (where the copies go)");
  else if (cfgval_text(c->y, v[0], ydoc_kp_key(sub, path, "upstream"), &s) &&
           (m->upstream_index = find_upstream(c, v[0], sub, s)) < c->cfg->nupstreams)
    ydoc_set_str(c->y, &m->upstream, s);
  cfgval_u32(c->y, v[1], ydoc_kp_key(sub, path, "percent"), 0, 100, &m->percent);
}

static void load_route(struct ctx *c, struct cfg_route *r, const struct ynode *n,
                       const char *path) {
  static const char *const keys[] = {"host",
                                     "path",
                                     "path_prefix",
                                     "path_regex",
                                     "methods",
                                     "headers",
                                     "upstream",
                                     "redirect",
                                     "respond",
                                     "rewrite_prefix",
                                     "set_host",
                                     "request_headers",
                                     "response_headers",
                                     "inspect",
                                     "upstreams",
                                     "allow",
                                     "deny",
                                     "rate_limit",
                                     "timeout",
                                     "retry",
                                     "auth_request",
                                     "mirror",
                                     NULL};
  enum {
    K_HOST,
    K_PATH,
    K_PREFIX,
    K_REGEX,
    K_METHODS,
    K_HEADERS,
    K_UPSTREAM,
    K_REDIRECT,
    K_RESPOND,
    K_REWRITE,
    K_SET_HOST,
    K_REQ_HEADERS,
    K_RESP_HEADERS,
    K_INSPECT,
    K_SPLIT,
    K_ALLOW,
    K_DENY,
    K_RATE,
    K_TIMEOUT,
    K_RETRY,
    K_AUTH,
    K_MIRROR,
    K_N
  };
  const struct ynode *v[K_N], *k[K_N];
  char sub[YDOC_KEYPATH_MAX], qb[YDOC_QBUF];
  const char *s;
  if (!cfgval_fields(c->y, n, path, keys, v, k))
    return;

  load_route_host(c, r, v[K_HOST], ydoc_kp_key(sub, path, "host"));

  /* path, path_prefix, path_regex: the first one in the file counts */
  const struct ynode *first = earliest(earliest(k[K_PATH], k[K_PREFIX]), k[K_REGEX]);
  for (int i = K_PATH; i <= K_REGEX; i++) {
    if (k[i] == NULL)
      continue;
    if (k[i] != first) {
      ydoc_err(c->y, k[i]->mark, path,
               "%s conflicts with %s (use only one of path, path_prefix, "
               "path_regex)",
               keys[i], first->s);
      continue;
    }
    if (!cfgval_text(c->y, v[i], ydoc_kp_key(sub, path, keys[i]), &s))
      continue;
    if (i == K_REGEX) {
      regex_t *re = ydoc_calloc(c->y, 1, sizeof *re);
      int rc;
      if (re == NULL)
        continue;
      if (s[0] == '\0') {
        ydoc_err(c->y, v[i]->mark, sub, "must not be empty");
        free(re);
      } else if ((rc = regcomp(re, s, REG_EXTENDED | REG_NOSUB)) != 0) {
        char why[256];
        regerror(rc, re, why, sizeof why);
        ydoc_err(c->y, v[i]->mark, sub, "invalid regular expression %s: %s",
                 ydoc_quote(s, qb, sizeof qb), why);
        free(re);
      } else {
        r->regex = re;
        r->path_kind = PATH_REGEX;
        ydoc_set_str(c->y, &r->path, s);
      }
    } else if (cfgval_path(c->y, v[i], sub, s, true) && check_normal_path(c, v[i], sub, s)) {
      r->path_kind = i == K_PATH ? PATH_EXACT : PATH_PREFIX;
      ydoc_set_str(c->y, &r->path, s);
    }
  }

  if (v[K_METHODS] != NULL)
    load_methods(c, r, v[K_METHODS], ydoc_kp_key(sub, path, "methods"));
  load_kvs(c, v[K_HEADERS], ydoc_kp_key(sub, path, "headers"), &r->headers, &r->nheaders, true,
           MANAGED_NONE);

  /* exactly one action; with several, the first one in the file counts */
  const struct ynode *act =
      earliest(earliest(earliest(k[K_UPSTREAM], k[K_REDIRECT]), k[K_RESPOND]), k[K_SPLIT]);
  if (act == NULL) {
    ydoc_err(c->y, n->mark, path,
             "no action (expected exactly one of upstream, upstreams, redirect or respond)");
    return;
  }
  for (int i = K_UPSTREAM; i <= K_SPLIT; i++)
    if ((i <= K_RESPOND || i == K_SPLIT) && k[i] != NULL && k[i] != act)
      ydoc_err(c->y, k[i]->mark, path,
               "%s conflicts with %s (a route has exactly one of upstream, upstreams, "
               "redirect or respond)",
               keys[i], act->s);
  if (act == k[K_SPLIT]) {
    r->action = ACTION_UPSTREAM;
    load_split(c, r, v[K_SPLIT], ydoc_kp_key(sub, path, "upstreams"));
  } else if (act == k[K_UPSTREAM]) {
    r->action = ACTION_UPSTREAM;
    if (cfgval_text(c->y, v[K_UPSTREAM], ydoc_kp_key(sub, path, "upstream"), &s)) {
      ydoc_set_str(c->y, &r->upstream, s);
      r->upstream_index = find_upstream(c, v[K_UPSTREAM], sub, s);
    }
  } else if (act == k[K_REDIRECT]) {
    r->action = ACTION_REDIRECT;
    load_redirect(c, r, v[K_REDIRECT], ydoc_kp_key(sub, path, "redirect"));
  } else {
    r->action = ACTION_RESPOND;
    load_respond(c, r, v[K_RESPOND], ydoc_kp_key(sub, path, "respond"));
  }

  /* what is sent upstream: only for upstream routes */
  if (r->action != ACTION_UPSTREAM) {
    for (int i = K_REWRITE; i <= K_REQ_HEADERS; i++)
      if (k[i] != NULL)
        ydoc_err(c->y, k[i]->mark, path, "%s only applies to routes with upstream", keys[i]);
  } else {
    if (v[K_REWRITE] != NULL && (k[K_PREFIX] == NULL || first != k[K_PREFIX]))
      ydoc_err(c->y, k[K_REWRITE]->mark, path, "rewrite_prefix is only allowed with path_prefix");
    else if (cfgval_text(c->y, v[K_REWRITE], ydoc_kp_key(sub, path, "rewrite_prefix"), &s) &&
             cfgval_path(c->y, v[K_REWRITE], sub, s, true))
      ydoc_set_str(c->y, &r->rewrite_prefix, s);
    if (cfgval_text(c->y, v[K_SET_HOST], ydoc_kp_key(sub, path, "set_host"), &s)) {
      if (s[0] == '\0' || cfgval_has_space_or_ctl(s) || strpbrk(s, "/?#@") != NULL)
        ydoc_err(c->y, v[K_SET_HOST]->mark, sub,
                 "invalid host %s (expected e.g. users.internal or "
                 "users.internal:8080)",
                 ydoc_quote(s, qb, sizeof qb));
      else
        ydoc_set_str(c->y, &r->set_host, s);
    }
    load_header_ops(c, &r->request_headers, v[K_REQ_HEADERS],
                    ydoc_kp_key(sub, path, "request_headers"), true);
  }
  load_header_ops(c, &r->response_headers, v[K_RESP_HEADERS],
                  ydoc_kp_key(sub, path, "response_headers"), false);
  cfgval_bool(c->y, v[K_INSPECT], ydoc_kp_key(sub, path, "inspect"), &r->inspect);

  /* traffic control: only where a request goes upstream */
  for (int i = K_ALLOW; i <= K_MIRROR; i++)
    if (k[i] != NULL && r->action != ACTION_UPSTREAM)
      ydoc_err(c->y, k[i]->mark, path, "%s only applies to routes with upstream or upstreams",
               keys[i]);
  if (r->action != ACTION_UPSTREAM)
    return;
  cfgval_cidrs(c->y, v[K_ALLOW], ydoc_kp_key(sub, path, "allow"), &r->allow, &r->nallow);
  cfgval_cidrs(c->y, v[K_DENY], ydoc_kp_key(sub, path, "deny"), &r->deny, &r->ndeny);
  if (v[K_RATE] != NULL)
    load_rate_limit(c, r, v[K_RATE], ydoc_kp_key(sub, path, "rate_limit"));
  cfgval_duration(c->y, v[K_TIMEOUT], ydoc_kp_key(sub, path, "timeout"), 1, &r->timeout_ms);
  if (v[K_RETRY] != NULL)
    load_retry(c, r, v[K_RETRY], ydoc_kp_key(sub, path, "retry"));
  if (v[K_AUTH] != NULL)
    load_auth_request(c, r, v[K_AUTH], ydoc_kp_key(sub, path, "auth_request"));
  if (v[K_MIRROR] != NULL)
    load_mirror(c, r, v[K_MIRROR], ydoc_kp_key(sub, path, "mirror"));
}

void cfgroute_load(struct ydoc *y, struct config *cfg, bool upstreams_bad, const struct ynode *n) {
  struct ctx ctx = {y, cfg, upstreams_bad}, *c = &ctx;
  size_t count;
  if (n == NULL || !cfgval_seq(c->y, n, "routes", &count) || count == 0)
    return;
  if ((cfg->routes = ydoc_calloc(c->y, count, sizeof *cfg->routes)) == NULL)
    return;
  for (size_t i = 0; i < count; i++) {
    const struct ynode *item = n->kids[i];
    struct cfg_route *r = &cfg->routes[cfg->nroutes++];
    char path[YDOC_KEYPATH_MAX];
    r->index = i;
    r->line = ydoc_line(item->mark);
    r->col = (int)(item->mark.column + 1);
    r->path_kind = PATH_ANY;
    r->redirect_status = 302;
    r->respond_status = 200;
    load_route(c, r, item, ydoc_kp_index(path, "routes", i));
  }
}
