/* har: HAR 1.2 rendering of captured exchanges (/inspect/har).
 *
 * Owns nothing but its output buffer's contents. Reads struct inspect_rec
 * only (admin thread); must not touch workers, the store's ring or any
 * socket. Field names and meanings follow the HAR 1.2 specification
 * (log, creator, entries[].request/response/cache/timings); ferry's own
 * extras live under "_ferry", as HAR allows for custom fields. */
#include "ferry/har.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void put(struct inspect_out *o, const char *s) {
  inspect_out_puts(o, s);
}

static void str(struct inspect_out *o, struct slice s) {
  inspect_json_str(o, s);
}

/* s as a JSON string, or null when empty. */
static void opt(struct inspect_out *o, struct slice s) {
  if (s.n)
    str(o, s);
  else
    put(o, "null");
}

/* Milliseconds as a JSON number with three decimals. */
static void ms(struct inspect_out *o, int64_t us) {
  if (us < 0)
    put(o, "-1");
  else
    inspect_out_printf(o, "%" PRId64 ".%03" PRId64, us / 1000, us % 1000);
}

static struct slice header(const struct inspect_head *h, const char *name) {
  for (uint32_t i = 0; h->present && i < h->n; i++)
    if (slice_ieq(h->h[i].name, slice_cstr(name)))
      return h->h[i].value;
  return (struct slice){"", 0};
}

static void headers(struct inspect_out *o, const struct inspect_head *h) {
  put(o, "[");
  for (uint32_t i = 0; h->present && i < h->n; i++) {
    put(o, i ? ",{\"name\":" : "{\"name\":");
    str(o, h->h[i].name);
    put(o, ",\"value\":");
    str(o, h->h[i].value);
    put(o, "}");
  }
  put(o, "]");
}

static struct slice trim(struct slice s) {
  while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
    s.p++;
    s.n--;
  }
  while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
    s.n--;
  return s;
}

/* Splits s at the first sep: *head before it, s after it (empty when
 * there is none). */
static struct slice cut(struct slice *s, char sep) {
  const char *at = s->n ? memchr(s->p, sep, s->n) : NULL;
  struct slice head = {s->p, at ? (size_t)(at - s->p) : s->n};
  if (at) {
    s->p = at + 1;
    s->n -= head.n + 1;
  } else {
    s->p += s->n;
    s->n = 0;
  }
  return head;
}

/* {"name":..,"value":..} for each "name=value" in list (split at sep);
 * items without '=' are skipped (a redacted value has none). With
 * only_first, each item is cut at its first ';' (Set-Cookie attributes). */
static bool name_values(struct inspect_out *o, struct slice list, char sep, bool only_first,
                        bool first) {
  while (list.n) {
    struct slice item = cut(&list, sep);
    if (only_first)
      item = cut(&item, ';');
    item = trim(item);
    const char *eq = item.n ? memchr(item.p, '=', item.n) : NULL;
    if (!eq)
      continue;
    put(o, first ? "{\"name\":" : ",{\"name\":");
    first = false;
    str(o, trim((struct slice){item.p, (size_t)(eq - item.p)}));
    put(o, ",\"value\":");
    str(o, trim((struct slice){eq + 1, (size_t)(item.p + item.n - eq - 1)}));
    put(o, "}");
  }
  return first;
}

static void cookies(struct inspect_out *o, const struct inspect_head *h, const char *name,
                    bool set_cookie) {
  put(o, "[");
  bool first = true;
  for (uint32_t i = 0; h->present && i < h->n; i++)
    if (slice_ieq(h->h[i].name, slice_cstr(name)))
      first = name_values(o, h->h[i].value, set_cookie ? '\0' : ';', set_cookie, first);
  put(o, "]");
}

static int hexv(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = ascii_lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes (and '+' as space) into out (at least s.n bytes). */
static struct slice decode(struct slice s, char *out) {
  size_t k = 0;
  for (size_t i = 0; i < s.n; i++) {
    char c = s.p[i];
    if (c == '+')
      c = ' ';
    else if (c == '%' && i + 2 < s.n && hexv(s.p[i + 1]) >= 0 && hexv(s.p[i + 2]) >= 0) {
      c = (char)(hexv(s.p[i + 1]) * 16 + hexv(s.p[i + 2]));
      i += 2;
    }
    out[k++] = c;
  }
  return (struct slice){out, k};
}

static void query_string(struct inspect_out *o, struct slice target) {
  const char *q = target.n ? memchr(target.p, '?', target.n) : NULL;
  put(o, "[");
  if (q) {
    struct slice list = {q + 1, (size_t)(target.p + target.n - q - 1)};
    list = cut(&list, '#');
    char *buf = malloc(list.n + 1);
    bool first = true;
    while (buf && list.n) {
      struct slice item = cut(&list, '&');
      if (!item.n)
        continue;
      struct slice name = cut(&item, '=');
      put(o, first ? "{\"name\":" : ",{\"name\":");
      first = false;
      str(o, decode(name, buf));
      put(o, ",\"value\":");
      str(o, decode(item, buf));
      put(o, "}");
    }
    free(buf);
  }
  put(o, "]");
}

/* "HTTP/1.1" of a start line: the first word of a status line, the last
 * of a request line. */
static struct slice version_of(const struct inspect_head *h, bool status_line) {
  struct slice l = h->line;
  if (!h->present || !l.n)
    return SLICE_LIT("HTTP/1.1");
  if (status_line) {
    const char *sp = memchr(l.p, ' ', l.n);
    return (struct slice){l.p, sp ? (size_t)(sp - l.p) : l.n};
  }
  size_t i = l.n;
  while (i > 0 && l.p[i - 1] != ' ')
    i--;
  return (struct slice){l.p + i, l.n - i};
}

/* The reason phrase of a status line ("OK"), or "". */
static struct slice reason_of(const struct inspect_head *h) {
  struct slice l = h->line;
  if (!h->present)
    return (struct slice){"", 0};
  cut(&l, ' ');
  cut(&l, ' ');
  return l;
}

void har_render_entry(struct inspect_out *o, const struct inspect_rec *r) {
  const struct inspect_head *rq = &r->heads[INSPECT_REQUEST_CLIENT];
  const struct inspect_head *rs = &r->heads[INSPECT_RESPONSE_CLIENT];
  time_t secs = (time_t)(r->time_us / 1000000);
  struct tm tm;
  char when[48];
  gmtime_r(&secs, &tm);
  size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + k, sizeof when - k, ".%03dZ", (int)((r->time_us / 1000) % 1000));

  /* Timings: HAR's time is the sum of the phases that happened. */
  int64_t total = r->total_us > 0 ? r->total_us : 0;
  int64_t blocked = r->queue_us, connect = r->connect_us;
  int64_t wait = r->ttfb_us >= 0 ? r->ttfb_us : total;
  int64_t used = (blocked > 0 ? blocked : 0) + (connect > 0 ? connect : 0) + wait;
  int64_t receive = total > used ? total - used : 0;
  int64_t time = used + receive;

  put(o, "{\"startedDateTime\":");
  str(o, slice_cstr(when));
  put(o, ",\"time\":");
  ms(o, time);

  /* request, as the client sent it */
  put(o, ",\"request\":{\"method\":");
  str(o, r->method);
  put(o, ",\"url\":");
  {
    struct inspect_out u = {0};
    bool absolute =
        r->target.n > 7 && (slice_ieq((struct slice){r->target.p, 7}, SLICE_LIT("http://")) ||
                            slice_ieq((struct slice){r->target.p, 8}, SLICE_LIT("https://")));
    if (!absolute) {
      inspect_out_puts(&u, r->tls ? "https://" : "http://");
      if (r->host.n)
        inspect_out_put(&u, r->host.p, r->host.n);
      else
        inspect_out_put(&u, r->listener.p, r->listener.n);
    }
    inspect_out_put(&u, r->target.p, r->target.n);
    str(o, (struct slice){u.p ? u.p : "", u.n});
    free(u.p);
  }
  put(o, ",\"httpVersion\":");
  str(o, r->version.n ? r->version : SLICE_LIT("HTTP/1.1"));
  put(o, ",\"cookies\":");
  cookies(o, rq, "cookie", false);
  put(o, ",\"headers\":");
  headers(o, rq);
  put(o, ",\"queryString\":");
  query_string(o, r->target);
  if (r->has_body) {
    put(o, ",\"postData\":{\"mimeType\":");
    str(o, header(rq, "content-type"));
    put(o, ",\"text\":");
    str(o, r->body[0]);
    put(o, "}");
  }
  inspect_out_printf(o, ",\"headersSize\":%" PRIu64 ",\"bodySize\":%" PRIu64 "}", r->req_head_bytes,
                     r->req_body_bytes);

  /* response, as ferry returned it */
  inspect_out_printf(o, ",\"response\":{\"status\":%d,\"statusText\":", r->status);
  str(o, reason_of(rs));
  put(o, ",\"httpVersion\":");
  str(o, version_of(rs, true));
  put(o, ",\"cookies\":");
  cookies(o, rs, "set-cookie", true);
  put(o, ",\"headers\":");
  headers(o, rs);
  inspect_out_printf(o, ",\"content\":{\"size\":%" PRIu64 ",\"mimeType\":", r->resp_body_bytes);
  str(o, header(rs, "content-type"));
  if (r->body[1].n) {
    put(o, ",\"text\":");
    str(o, r->body[1]);
  }
  put(o, "},\"redirectURL\":");
  str(o, header(rs, "location"));
  inspect_out_printf(o, ",\"headersSize\":%" PRIu64 ",\"bodySize\":%" PRIu64 "}",
                     rs->present ? r->resp_head_bytes : (uint64_t)0, r->resp_body_bytes);

  put(o, ",\"cache\":{},\"timings\":{\"blocked\":");
  ms(o, blocked);
  put(o, ",\"dns\":-1,\"connect\":");
  ms(o, connect);
  put(o, ",\"send\":0,\"wait\":");
  ms(o, wait);
  put(o, ",\"receive\":");
  ms(o, receive);
  put(o, ",\"ssl\":-1}");
  if (r->server.n) {
    struct slice host = r->server;
    const char *colon = memchr(host.p, ':', host.n);
    if (colon && !memchr(colon + 1, ':', host.n - (size_t)(colon - host.p) - 1))
      host.n = (size_t)(colon - host.p);
    put(o, ",\"serverIPAddress\":");
    str(o, host);
  }

  /* ferry's view: the route and the upstream side of the exchange */
  inspect_out_printf(o, ",\"_ferry\":{\"id\":%" PRIu64 ",\"request_id\":", r->id);
  str(o, r->request_id);
  if (r->route_index < 0) {
    put(o, ",\"route\":null");
  } else {
    inspect_out_printf(o, ",\"route\":{\"index\":%d,\"line\":%d,\"label\":", r->route_index,
                       r->route_line);
    str(o, r->route_label);
    put(o, "}");
  }
  put(o, ",\"upstream\":");
  str(o, r->upstream);
  put(o, ",\"server\":");
  str(o, r->server);
  /* the client connection's TLS, as the JSON record shows it */
  put(o, ",\"tls\":");
  if (r->tls) {
    put(o, "{\"version\":");
    str(o, r->tls_version);
    put(o, ",\"cipher\":");
    str(o, r->tls_cipher);
    put(o, ",\"sni\":");
    opt(o, r->tls_sni);
    put(o, ",\"alpn\":");
    opt(o, r->tls_alpn);
    put(o, ",\"client_subject\":");
    opt(o, r->tls_client_subject);
    put(o, "}");
  } else {
    put(o, "null");
  }
  inspect_out_printf(o, ",\"complete\":%s,\"error\":", r->complete ? "true" : "false");
  if (r->error.n)
    str(o, r->error);
  else
    put(o, "null");
  put(o, ",\"request_upstream\":");
  if (r->heads[INSPECT_REQUEST_UPSTREAM].present) {
    put(o, "{\"line\":");
    str(o, r->heads[INSPECT_REQUEST_UPSTREAM].line);
    put(o, ",\"headers\":");
    headers(o, &r->heads[INSPECT_REQUEST_UPSTREAM]);
    put(o, "}");
  } else {
    put(o, "null");
  }
  put(o, ",\"response_upstream\":");
  if (r->heads[INSPECT_RESPONSE_UPSTREAM].present) {
    put(o, "{\"line\":");
    str(o, r->heads[INSPECT_RESPONSE_UPSTREAM].line);
    put(o, ",\"headers\":");
    headers(o, &r->heads[INSPECT_RESPONSE_UPSTREAM]);
    put(o, "}");
  } else {
    put(o, "null");
  }
  put(o, "}}");
}

void har_render(struct inspect_out *o, const struct inspect_store *st,
                const struct inspect_filter *f) {
  /* The newest matches, written oldest first. */
  uint32_t n = 0, cap = f->limit < st->n ? f->limit : st->n;
  const struct inspect_rec **pick = calloc(cap ? cap : 1, sizeof *pick);
  if (!pick) {
    o->oom = true;
    return;
  }
  for (uint32_t i = 0; n < cap; i++) {
    const struct inspect_rec *r = inspect_store_newest(st, i);
    if (!r)
      break;
    if (inspect_filter_match(f, r))
      pick[n++] = r;
  }
  put(o,
      "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"ferry\",\"version\":\"" FERRY_VERSION
      "\"},\"pages\":[],\"entries\":[");
  for (uint32_t i = n; i-- > 0;) {
    har_render_entry(o, pick[i]);
    if (i)
      put(o, ",");
  }
  put(o, "]}}\n");
  free(pick);
}
