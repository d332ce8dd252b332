/* inspect_cli: `ferry inspect [-c FILE] [--admin ADDR] [--route R]
 * [--filter EXPR] [--har FILE [--limit N]]`.
 *
 * Owns: one blocking socket to the admin listener, a small JSON reader for
 * the events it receives, and the terminal rendering. Runs in its own
 * process (main dispatches to it before loading anything else); shares no
 * state with the proxy. */
#include "ferry/inspect_cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/config.h"
#include "ferry/filter.h"

/* --- a small JSON reader ---------------------------------------------------- */

enum jkind { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
  enum jkind kind;
  double num;
  char *str; /* J_STR: decoded, NUL-terminated; J_OBJ members: their key */
  size_t len;
  struct jval *kids; /* J_ARR items / J_OBJ members */
  size_t n;
};

struct jparser {
  const char *p, *end;
  int depth;
};

static void jfree(struct jval *v) {
  for (size_t i = 0; i < v->n; i++)
    jfree(&v->kids[i]);
  free(v->kids);
  free(v->str);
}

static void jws(struct jparser *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
    j->p++;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return -1;
  }
  return v;
}

/* A string at j->p (on the opening quote); \u00XX below 0x100 becomes that
 * byte (ferry writes header bytes that way), higher code points UTF-8. */
static int jstring(struct jparser *j, char **out, size_t *outlen) {
  j->p++;
  size_t cap = 16, n = 0;
  char *s = malloc(cap);
  if (!s)
    return -1;
  while (j->p < j->end && *j->p != '"') {
    char c = *j->p++;
    char enc[4];
    size_t k = 1;
    enc[0] = c;
    if (c == '\\') {
      if (j->p >= j->end)
        break;
      char e = *j->p++;
      switch (e) {
      case 'n':
        enc[0] = '\n';
        break;
      case 't':
        enc[0] = '\t';
        break;
      case 'r':
        enc[0] = '\r';
        break;
      case 'b':
        enc[0] = '\b';
        break;
      case 'f':
        enc[0] = '\f';
        break;
      case 'u': {
        int cp = j->end - j->p >= 4 ? hex4(j->p) : -1;
        if (cp < 0) {
          free(s);
          return -1;
        }
        j->p += 4;
        if (cp < 0x100) {
          enc[0] = (char)cp;
        } else if (cp < 0x800) {
          enc[0] = (char)(0xc0 | (cp >> 6));
          enc[1] = (char)(0x80 | (cp & 0x3f));
          k = 2;
        } else {
          enc[0] = (char)(0xe0 | (cp >> 12));
          enc[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
          enc[2] = (char)(0x80 | (cp & 0x3f));
          k = 3;
        }
        break;
      }
      default:
        enc[0] = e; /* \" \\ \/ */
      }
    }
    if (n + k + 1 > cap) {
      cap = cap * 2 + k;
      char *ns = realloc(s, cap);
      if (!ns) {
        free(s);
        return -1;
      }
      s = ns;
    }
    memcpy(s + n, enc, k);
    n += k;
  }
  if (j->p >= j->end) {
    free(s);
    return -1;
  }
  j->p++;
  s[n] = '\0';
  *out = s;
  *outlen = n;
  return 0;
}

static int jvalue(struct jparser *j, struct jval *v);

static int jpush(struct jval *v, size_t *cap, struct jval item) {
  if (v->n == *cap) {
    *cap = *cap ? *cap * 2 : 8;
    struct jval *nk = realloc(v->kids, *cap * sizeof *nk);
    if (!nk)
      return -1;
    v->kids = nk;
  }
  v->kids[v->n++] = item;
  return 0;
}

static int jcontainer(struct jparser *j, struct jval *v, bool obj) {
  size_t cap = 0;
  char close = obj ? '}' : ']';
  v->kind = obj ? J_OBJ : J_ARR;
  j->p++;
  jws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return 0;
  }
  for (;;) {
    struct jval item = {0};
    char *key = NULL;
    size_t klen = 0;
    jws(j);
    if (obj) {
      if (j->p >= j->end || *j->p != '"' || jstring(j, &key, &klen) != 0)
        return -1;
      jws(j);
      if (j->p >= j->end || *j->p != ':') {
        free(key);
        return -1;
      }
      j->p++;
    }
    if (jvalue(j, &item) != 0) {
      free(key);
      jfree(&item);
      return -1;
    }
    if (obj) {
      /* members keep their key in a one-item wrapper */
      struct jval m = {.kind = J_OBJ, .str = key, .len = klen};
      m.kids = malloc(sizeof *m.kids);
      if (!m.kids) {
        free(key);
        jfree(&item);
        return -1;
      }
      m.kids[0] = item;
      m.n = 1;
      item = m;
    }
    if (jpush(v, &cap, item) != 0) {
      jfree(&item);
      return -1;
    }
    jws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == close) {
      j->p++;
      return 0;
    }
    return -1;
  }
}

static int jvalue(struct jparser *j, struct jval *v) {
  jws(j);
  if (j->p >= j->end || ++j->depth > 32)
    return -1;
  int r = 0;
  char c = *j->p;
  if (c == '{' || c == '[') {
    r = jcontainer(j, v, c == '{');
  } else if (c == '"') {
    v->kind = J_STR;
    r = jstring(j, &v->str, &v->len);
  } else if (c == 't' && j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
    v->kind = J_BOOL;
    v->num = 1;
    j->p += 4;
  } else if (c == 'f' && j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
    v->kind = J_BOOL;
    j->p += 5;
  } else if (c == 'n' && j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
    v->kind = J_NULL;
    j->p += 4;
  } else {
    char buf[64];
    size_t k = 0;
    while (j->p < j->end && k + 1 < sizeof buf && strchr("+-0123456789.eE", *j->p))
      buf[k++] = *j->p++;
    buf[k] = '\0';
    char *e;
    v->kind = J_NUM;
    v->num = strtod(buf, &e);
    r = (k == 0 || *e) ? -1 : 0;
  }
  j->depth--;
  return r;
}

static const struct jval *jget(const struct jval *obj, const char *key) {
  if (!obj || obj->kind != J_OBJ)
    return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (obj->kids[i].str && strcmp(obj->kids[i].str, key) == 0)
      return &obj->kids[i].kids[0];
  return NULL;
}

static const char *jstr(const struct jval *obj, const char *key) {
  const struct jval *v = jget(obj, key);
  return v && v->kind == J_STR ? v->str : "";
}

static double jnum(const struct jval *obj, const char *key, double dflt) {
  const struct jval *v = jget(obj, key);
  return v && (v->kind == J_NUM || v->kind == J_BOOL) ? v->num : dflt;
}

/* --- printing ----------------------------------------------------------------- */

struct style {
  const char *bold, *dim, *red, *green, *yellow, *cyan, *off;
};

static const struct style plain = {"", "", "", "", "", "", ""};
static const struct style ansi = {"\x1b[1m",  "\x1b[2m",  "\x1b[31m", "\x1b[32m",
                                  "\x1b[33m", "\x1b[36m", "\x1b[0m"};

/* Values of every header named like name (case-insensitive), joined. */
static void joined_values(const struct jval *hs, const char *name, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (size_t i = 0; hs && i < hs->n; i++) {
    const struct jval *h = &hs->kids[i];
    if (h->kind != J_ARR || h->n != 2 || strcasecmp(h->kids[0].str, name) != 0)
      continue;
    int k = snprintf(out + n, cap - n, "%s%s", n ? "\n" : "", h->kids[1].str);
    if (k < 0 || (size_t)k >= cap - n)
      return;
    n += (size_t)k;
  }
}

static bool has_header(const struct jval *hs, const char *name) {
  for (size_t i = 0; hs && i < hs->n; i++)
    if (hs->kids[i].kind == J_ARR && hs->kids[i].n == 2 &&
        strcasecmp(hs->kids[i].kids[0].str, name) == 0)
      return true;
  return false;
}

/* Print head with arrow; other: the head on the other side of ferry (NULL:
 * no marks); before: head is the earlier one (marks removals) or the later
 * one (marks additions). */
static void print_head(FILE *out, const struct style *st, const char *arrow, const char *title,
                       const struct jval *head, const struct jval *other, bool before) {
  if (!head || head->kind != J_OBJ) {
    return;
  }
  const struct jval *hs = jget(head, "headers");
  const struct jval *ohs = other && other->kind == J_OBJ ? jget(other, "headers") : NULL;
  fprintf(out, "  %s%s%s\n", st->dim, title, st->off);
  /* The start line: a rewritten target or another version is a change. */
  bool line_changed =
      other && other->kind == J_OBJ && strcmp(jstr(head, "line"), jstr(other, "line")) != 0;
  fprintf(out, "%c %s %s%s%s%s\n", line_changed ? '~' : ' ', arrow, line_changed ? st->yellow : "",
          st->bold, jstr(head, "line"), st->off);
  for (size_t i = 0; hs && i < hs->n; i++) {
    const struct jval *h = &hs->kids[i];
    if (h->kind != J_ARR || h->n != 2 || h->kids[0].kind != J_STR || h->kids[1].kind != J_STR)
      continue;
    const char *name = h->kids[0].str, *val = h->kids[1].str;
    char mark = ' ';
    const char *colour = "";
    if (ohs || (other && other->kind == J_OBJ)) {
      if (!has_header(ohs, name)) {
        mark = before ? '-' : '+';
        colour = before ? st->red : st->green;
      } else {
        char a[4096], b[4096];
        joined_values(hs, name, a, sizeof a);
        joined_values(ohs, name, b, sizeof b);
        if (strcmp(a, b) != 0) {
          mark = '~';
          colour = st->yellow;
        }
      }
    }
    fprintf(out, "%c %s %s%s%s: %s%s\n", mark, arrow, colour, st->bold, name, val, st->off);
  }
}

static void ms_text(const struct jval *t, const char *key, char *buf, size_t cap) {
  const struct jval *v = jget(t, key);
  if (v && v->kind == J_NUM)
    snprintf(buf, cap, "%.2f", v->num);
  else
    snprintf(buf, cap, "-");
}

int inspect_cli_print(FILE *out, const char *json, size_t len, bool colour) {
  struct jparser j = {json, json + len, 0};
  struct jval root = {0};
  if (jvalue(&j, &root) != 0 || root.kind != J_OBJ || !jget(&root, "id")) {
    jfree(&root);
    return -1;
  }
  const struct style *st = colour ? &ansi : &plain;
  int status = (int)jnum(&root, "status", 0);
  const char *sc = status >= 500 || status == 0 ? st->red : status >= 400 ? st->yellow : st->green;
  const struct jval *route = jget(&root, "route");
  const struct jval *t = jget(&root, "timings_ms");
  char total[32], ttfb[32], connect[32];
  ms_text(t, "total", total, sizeof total);
  ms_text(t, "ttfb", ttfb, sizeof ttfb);
  ms_text(t, "connect", connect, sizeof connect);
  const char *time = jstr(&root, "time");
  fprintf(out, "%s#%.0f%s %s %s%s %s%s%s -> %s%d%s", st->cyan, jnum(&root, "id", 0), st->off,
          strlen(time) >= 23 ? time + 11 : time, st->bold, jstr(&root, "method"),
          jstr(&root, "host"), jstr(&root, "target"), st->off, sc, status, st->off);
  const struct jval *complete = jget(&root, "complete");
  if (status && complete && complete->kind == J_BOOL && !complete->num)
    fprintf(out, " %s(cut short)%s", st->red, st->off);
  if (*jstr(&root, "upstream"))
    fprintf(out, "  upstream %s (%s)", jstr(&root, "upstream"), jstr(&root, "server"));
  else
    fprintf(out, "  answered by ferry");
  if (route && route->kind == J_OBJ)
    fprintf(out, "  route #%.0f (%s%sline %.0f)", jnum(route, "index", 0), jstr(route, "file"),
            *jstr(route, "file") ? " " : "", jnum(route, "line", 0));
  fprintf(out, "  %s ms (connect %s, first byte %s)  id %s", total, connect, ttfb,
          jstr(&root, "request_id"));
  if (*jstr(&root, "error"))
    fprintf(out, "  %s%s%s", st->red, jstr(&root, "error"), st->off);
  fprintf(out, "\n");
  /* The client connection's TLS, on a TLS listener. */
  const struct jval *tls = jget(&root, "tls");
  if (tls && tls->kind == J_OBJ) {
    fprintf(out, "  %stls %s %s", st->dim, jstr(tls, "version"), jstr(tls, "cipher"));
    if (*jstr(tls, "sni"))
      fprintf(out, "  sni %s", jstr(tls, "sni"));
    if (*jstr(tls, "alpn"))
      fprintf(out, "  alpn %s", jstr(tls, "alpn"));
    if (*jstr(tls, "client_subject"))
      fprintf(out, "  client certificate %s", jstr(tls, "client_subject"));
    fprintf(out, "%s\n", st->off);
  }
  /* Why this route: each earlier route and the condition it failed. */
  const struct jval *sk = jget(&root, "skipped");
  for (size_t i = 0; sk && sk->kind == J_ARR && i < sk->n; i++)
    fprintf(out, "  %sroutes[%.0f] (line %.0f) skipped: %s%s\n", st->dim,
            jnum(&sk->kids[i], "index", 0), jnum(&sk->kids[i], "line", 0),
            jstr(&sk->kids[i], "reason"), st->off);
  if (jnum(&root, "skipped_more", 0) > 0)
    fprintf(out, "  %s... and %.0f more routes before it%s\n", st->dim,
            jnum(&root, "skipped_more", 0), st->off);
  const struct jval *rc = jget(&root, "request_client"), *ru = jget(&root, "request_upstream");
  const struct jval *pu = jget(&root, "response_upstream"), *pc = jget(&root, "response_client");
  print_head(out, st, ">", "request as the client sent it", rc, ru, true);
  print_head(out, st, ">", "request as ferry forwarded it", ru, rc, false);
  print_head(out, st, "<", "response as the upstream sent it", pu, pc, true);
  print_head(out, st, "<", "response as ferry returned it", pc, pu, false);
  const struct jval *fr = jget(&root, "frames");
  for (size_t i = 0; fr && fr->kind == J_ARR && i < fr->n; i++) {
    const struct jval *x = &fr->kids[i];
    bool client = strcmp(jstr(x, "dir"), "client") == 0;
    fprintf(out, "  %s %s%s%s %.0f bytes%s%s%s%s\n", client ? "=>" : "<=", st->bold,
            jstr(x, "type"), st->off, jnum(x, "size", 0), jnum(x, "fin", 1) ? "" : " (more)",
            *jstr(x, "preview") ? ": \"" : "", jstr(x, "preview"), *jstr(x, "preview") ? "\"" : "");
  }
  fprintf(out, "\n");
  fflush(out);
  jfree(&root);
  return 0;
}

/* --- the stream --------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f, "usage: ferry inspect [-c FILE] [--admin ADDR] [--route R] [--filter EXPR]\n"
             "                     [--har FILE [--limit N]]\n"
             "\n"
             "  Follows the inspector of a running ferry and prints each captured exchange's\n"
             "  request and response headers (routes with inspect: true, or all routes with\n"
             "  admin: {inspect_all: true}).\n"
             "\n"
             "  --admin ADDR  the admin listener, e.g. 127.0.0.1:9901 (default: admin.address\n"
             "                from FILE, else 127.0.0.1:9901)\n"
             "  --route R     only this route: its index in routes[] or its upstream's name\n"
             "  --filter EXPR only exchanges EXPR matches, e.g. '~c 5..', '~m POST & ~u /api',\n"
             "                '~h X-Env: prod', '!~s' (mitmproxy-like; README \"Debugging\")\n"
             "  --har FILE    save the captured exchanges as HAR 1.2 to FILE (\"-\": stdout) and\n"
             "                exit, instead of following; --limit N keeps the newest N\n"
             "  -c FILE       configuration to read admin.address from (default proxy.yaml)\n");
}

/* Connect to the admin listener at addr; hostbuf gets the Host to send:
 * the numeric address connected to, which the admin's DNS-rebinding guard
 * always accepts (addr itself may be ":9901" or a name). */
static int connect_admin(const char *addr, char *hostbuf, size_t hostlen, char *err,
                         size_t errlen) {
  struct sockaddr_storage ss;
  char e[256];
  if (config_parse_listen_address(addr, &ss, e, sizeof e) != 0) {
    snprintf(err, errlen, "--admin %.200s: %.200s", addr, e);
    return -1;
  }
  if (ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_addr.s_addr == INADDR_ANY)
    ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len =
      ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) != 0) {
    snprintf(err, errlen,
             "cannot connect to the admin listener at %.200s: %s (is ferry running with an admin: "
             "section? pass its address with --admin)",
             addr, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  char ip[INET6_ADDRSTRLEN] = "127.0.0.1";
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    snprintf(hostbuf, hostlen, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    snprintf(hostbuf, hostlen, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
  }
  return fd;
}

/* Percent-encode a query value. */
static void qencode(const char *s, char *out, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (; *s && n + 4 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        strchr("-._~", c)) {
      out[n++] = (char)c;
    } else {
      out[n++] = '%';
      out[n++] = hex[c >> 4];
      out[n++] = hex[c & 15];
    }
  }
  out[n] = '\0';
}

/* Whether route (an index or an upstream name) names something in cfg. */
static bool route_known(const struct config *cfg, const char *route) {
  char *e;
  unsigned long idx = strtoul(route, &e, 10);
  if (route[0] >= '0' && route[0] <= '9' && !*e)
    return idx < cfg->nroutes;
  for (size_t i = 0; i < cfg->nupstreams; i++)
    if (strcmp(cfg->upstreams[i].name, route) == 0)
      return true;
  return false;
}

/* GET path from the admin listener and read the whole answer (the admin
 * closes after it). Returns the status, or -1 with a message in err;
 * *body (malloc'd, NUL-terminated) and *blen get the body. */
static int admin_get(const char *admin, const char *path, char **body, size_t *blen, char *err,
                     size_t errlen) {
  char host[INET6_ADDRSTRLEN + 16], req[4600];
  int fd = connect_admin(admin, host, sizeof host, err, errlen);
  if (fd < 0)
    return -1;
  int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                    path, host);
  if (rl < 0 || (size_t)rl >= sizeof req || write(fd, req, (size_t)rl) != rl) {
    snprintf(err, errlen, "cannot send the request to %s: %s", admin, strerror(errno));
    close(fd);
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  ssize_t k = 0;
  while (buf) {
    if (n + 1 >= cap) {
      char *nb = cap < (512u << 20) ? realloc(buf, cap * 2) : NULL;
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    k = read(fd, buf + n, cap - n - 1);
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  close(fd);
  if (!buf || k < 0) {
    snprintf(err, errlen, "reading the answer from %s failed: %s", admin,
             buf ? strerror(errno) : "out of memory");
    free(buf);
    return -1;
  }
  buf[n] = '\0';
  char *end = strstr(buf, "\r\n\r\n");
  int status = 0;
  if (!end || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
    snprintf(err, errlen, "%s did not answer with HTTP", admin);
    free(buf);
    return -1;
  }
  size_t off = (size_t)(end + 4 - buf);
  memmove(buf, buf + off, n - off + 1);
  *body = buf;
  *blen = n - off;
  return status;
}

/* --har FILE: save the captured exchanges as HAR 1.2. */
static int save_har(const char *admin, const char *query, const char *file) {
  char path[4096], err[512];
  char *body = NULL;
  size_t blen = 0;
  snprintf(path, sizeof path, "/inspect/har%s", query);
  int status = admin_get(admin, path, &body, &blen, err, sizeof err);
  if (status < 0) {
    fprintf(stderr, "ferry inspect: %s\n", err);
    return 2;
  }
  if (status != 200) {
    fprintf(stderr, "ferry inspect: %s answered %d for %s: %s", admin, status, path, body);
    free(body);
    return 2;
  }
  bool to_stdout = strcmp(file, "-") == 0;
  FILE *f = to_stdout ? stdout : fopen(file, "wb");
  if (!f) {
    fprintf(stderr, "ferry inspect: cannot write %s: %s\n", file, strerror(errno));
    free(body);
    return 1;
  }
  size_t entries = 0;
  for (const char *p = body; (p = strstr(p, "{\"startedDateTime\":")) != NULL; p++)
    entries++;
  bool ok = fwrite(body, 1, blen, f) == blen;
  if (!to_stdout)
    ok = fclose(f) == 0 && ok;
  free(body);
  if (!ok) {
    fprintf(stderr, "ferry inspect: writing %s failed: %s\n", file, strerror(errno));
    return 1;
  }
  if (!to_stdout)
    fprintf(stderr, "ferry inspect: wrote %zu exchange%s to %s (HAR 1.2)\n", entries,
            entries == 1 ? "" : "s", file);
  return 0;
}

int inspect_cli_main(int argc, char **argv) {
  const char *admin = NULL, *route = NULL, *file = "proxy.yaml", *har = NULL, *limit = NULL,
             *expr = NULL;
  bool file_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **opt = strcmp(a, "--admin") == 0    ? &admin
                       : strcmp(a, "--route") == 0  ? &route
                       : strcmp(a, "--har") == 0    ? &har
                       : strcmp(a, "--limit") == 0  ? &limit
                       : strcmp(a, "--filter") == 0 ? &expr
                       : strcmp(a, "-c") == 0       ? &file
                                                    : NULL;
    if (opt && i + 1 < argc) {
      *opt = argv[++i];
      file_given = file_given || opt == &file;
    } else if (opt) {
      fprintf(stderr, "ferry inspect: %s needs a value\n", a);
      usage(stderr);
      return 1;
    } else if (strncmp(a, "--admin=", 8) == 0) {
      admin = a + 8;
    } else if (strncmp(a, "--route=", 8) == 0) {
      route = a + 8;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "ferry inspect: unexpected argument \"%s\"\n", a);
      usage(stderr);
      return 1;
    }
  }
  if (limit) {
    char *e;
    unsigned long v = strtoul(limit, &e, 10);
    if (!limit[0] || *e || v == 0 || v > 100000) {
      fprintf(stderr, "ferry inspect: --limit %s: expected a number of exchanges, 1 to 100000\n",
              limit);
      return 1;
    }
  }
  char addrbuf[256];
  /* The configuration gives the admin address and the routes --route can
   * name; without one, --route cannot be checked here. */
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  if (access(file, R_OK) == 0 && config_load_file(file, &cfg, &diag) != 0)
    cfg = NULL;
  if (!cfg && file_given) {
    for (size_t i = 0; i < diag.n; i++)
      fprintf(stderr, "%s\n", diag.msgs[i]);
    fprintf(stderr, "ferry inspect: cannot use %s%s; fix it or pass --admin ADDR without -c\n",
            file, access(file, R_OK) == 0 ? "" : " (cannot read it)");
    config_diag_free(&diag);
    return 1;
  }
  config_diag_free(&diag);
  if (route && cfg && !route_known(cfg, route)) {
    fprintf(stderr,
            "ferry inspect: --route %s: %s has no route with that index and no upstream of that "
            "name (routes 0 to %zu; upstreams:",
            route, file, cfg->nroutes ? cfg->nroutes - 1 : 0);
    for (size_t i = 0; i < cfg->nupstreams; i++)
      fprintf(stderr, " %s", cfg->upstreams[i].name);
    fprintf(stderr, ")\n");
    config_free(cfg);
    return 1;
  }
  if (!admin) {
    if (cfg && cfg->admin.enabled) {
      snprintf(addrbuf, sizeof addrbuf, "%s", cfg->admin.address);
      admin = addrbuf;
    } else if (file_given) {
      fprintf(stderr, "ferry inspect: %s has no admin: section; pass --admin ADDR\n", file);
      config_free(cfg);
      return 1;
    } else {
      admin = "127.0.0.1:9901";
    }
  }
  bool route_checked = cfg != NULL;
  config_free(cfg);
  if (route && !route_checked)
    fprintf(stderr,
            "ferry inspect: note: no configuration to check --route %s against (pass -c FILE); "
            "nothing is shown if no route or upstream has that name\n",
            route);
  if (expr) {
    /* Checked here too, so a typo is an error at once rather than a 400 later. */
    char why[256];
    struct filter *fx = filter_compile(expr, why, sizeof why);
    if (!fx) {
      fprintf(stderr, "ferry inspect: --filter %s: %s\n", expr, why);
      return 1;
    }
    filter_free(fx);
    if (strlen(expr) > 1000) {
      fprintf(stderr, "ferry inspect: --filter: at most 1000 bytes\n");
      return 1;
    }
  }
  char q[3600] = "";
  {
    char enc[3100];
    size_t qn = 0;
    if (route) {
      qencode(route, enc, 180);
      qn += (size_t)snprintf(q + qn, sizeof q - qn, "%sroute=%s", qn ? "&" : "?", enc);
    }
    if (expr && qn < sizeof q) {
      qencode(expr, enc, sizeof enc);
      qn += (size_t)snprintf(q + qn, sizeof q - qn, "%sfilter=%s", qn ? "&" : "?", enc);
    }
    if (har && qn < sizeof q)
      qn += (size_t)snprintf(q + qn, sizeof q - qn, "%slimit=%s", qn ? "&" : "?",
                             limit ? limit : "100000");
  }
  if (har)
    return save_har(admin, q, har);
  signal(SIGPIPE, SIG_IGN);
  char err[512];
  char host[INET6_ADDRSTRLEN + 16];
  int fd = connect_admin(admin, host, sizeof host, err, sizeof err);
  if (fd < 0) {
    fprintf(stderr, "ferry inspect: %s\n", err);
    return 2;
  }
  char req[4000];
  int rl = snprintf(
      req, sizeof req,
      "GET /inspect/stream%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", q, host);
  if (rl < 0 || write(fd, req, (size_t)rl) != rl) {
    fprintf(stderr, "ferry inspect: cannot send the request to %s: %s\n", admin, strerror(errno));
    close(fd);
    return 2;
  }
  bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  bool head_done = false;
  int rc = 2;
  if (!buf) {
    close(fd);
    return 2;
  }
  for (;;) {
    if (n + 4096 > cap) {
      if (cap >= (64u << 20)) {
        fprintf(stderr, "ferry inspect: an event larger than 64 MiB: giving up\n");
        break;
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb)
        break;
      buf = nb;
      cap *= 2;
    }
    ssize_t k = read(fd, buf + n, cap - n - 1);
    if (k <= 0) {
      fprintf(stderr, "ferry inspect: the stream from %s ended%s%s\n", admin, k < 0 ? ": " : "",
              k < 0 ? strerror(errno) : " (ferry stopped?)");
      break;
    }
    n += (size_t)k;
    buf[n] = '\0';
    size_t off = 0;
    if (!head_done) {
      char *end = strstr(buf, "\r\n\r\n");
      if (!end)
        continue;
      if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        char *eol = strstr(buf, "\r\n");
        fprintf(stderr, "ferry inspect: %s answered \"%.*s\"%s%s\n", admin, (int)(eol - buf), buf,
                end[4] ? ": " : "", end + 4);
        break;
      }
      head_done = true;
      off = (size_t)(end + 4 - buf);
      printf("following http://%s/inspect/stream%s (Ctrl-C stops)\n\n", admin, q);
      fflush(stdout);
    }
    /* Events end with a blank line; "data: " lines carry the JSON. */
    for (;;) {
      char *blk_end = strstr(buf + off, "\n\n");
      if (!blk_end)
        break;
      *blk_end = '\0';
      for (char *line = buf + off; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
          *nl = '\0';
        if (strncmp(line, "data: ", 6) == 0)
          inspect_cli_print(stdout, line + 6, strlen(line + 6), colour);
        line = nl ? nl + 1 : NULL;
      }
      off = (size_t)(blk_end + 2 - buf);
    }
    memmove(buf, buf + off, n - off);
    n -= off;
  }
  free(buf);
  close(fd);
  return rc;
}
