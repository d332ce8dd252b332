/* insprec: the inspector's records and everything done with them off the
 * worker: building a record from what a capture collected (one
 * allocation owning all its bytes), WebSocket frame logs, the store (the
 * ring of the last admin.inspect_keep records, bounded in bytes by
 * admin.inspect_max_bytes), filters, and the JSON / Server-Sent Events /
 * replay renderings.
 *
 * Pure over records; the store is the admin thread's. Must not touch
 * exchanges, sessions, sockets or pools: the capture side (src/inspect.c)
 * hands it plain data. Its symbols keep the inspect_ prefix of the
 * records they serve. */
#include "ferry/insprec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/filter.h"
#include "ferry/http_head.h"

static const char redacted_text[] = "[redacted]";

/* --- building a record ---------------------------------------------------- */

/* Copying into the record's allocation: a bump pointer over its tail. */
struct fill {
  char *p, *end;
};

static struct slice fill_copy(struct fill *f, struct slice s) {
  if (s.n == 0)
    return (struct slice){"", 0};
  char *d = f->p;
  memcpy(d, s.p, s.n);
  f->p += s.n;
  return (struct slice){d, s.n};
}

static bool is_redacted(const struct inspect_src *src, struct slice name) {
  for (size_t i = 0; i < src->nredact; i++)
    if (slice_ieq(name, slice_cstr(src->redact[i])))
      return true;
  return false;
}

/* Walks a serialised head: calls back for the start line (name.p == NULL)
 * and each header line. Returns the number of header lines. A NULL
 * callback only counts. */
typedef void (*head_cb)(void *arg, struct slice name, struct slice value);

static uint32_t walk_head(struct slice head, head_cb cb, void *arg) {
  const char *p = head.p, *end = head.p + head.n;
  uint32_t n = 0;
  bool first = true;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    size_t len = (size_t)(le - p);
    if (len > 0 && p[len - 1] == '\r')
      len--;
    if (len == 0)
      break; /* end of head */
    if (first) {
      if (cb)
        cb(arg, (struct slice){NULL, 0}, (struct slice){p, len});
      first = false;
    } else {
      const char *colon = memchr(p, ':', len);
      struct slice name = {p, colon ? (size_t)(colon - p) : len};
      struct slice value = {NULL, 0};
      if (colon) {
        const char *v = colon + 1, *ve = p + len;
        while (v < ve && (*v == ' ' || *v == '\t'))
          v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
          ve--;
        value = (struct slice){v, (size_t)(ve - v)};
      }
      if (cb)
        cb(arg, name, value);
      n++;
    }
    if (!eol)
      break;
    p = eol + 1;
  }
  return n;
}

/* Bytes of the head up to and including its blank line. */
static size_t head_length(struct slice head) {
  for (size_t i = 0; i + 3 < head.n; i++)
    if (memcmp(head.p + i, "\r\n\r\n", 4) == 0)
      return i + 4;
  return head.n;
}

struct head_fill {
  struct inspect_head *h;
  struct fill *f;
  const struct inspect_src *src;
  bool *redacted;
};

static void add_kv(struct head_fill *hf, struct slice name, struct slice value) {
  struct inspect_kv *kv = &hf->h->h[hf->h->n++];
  kv->name = fill_copy(hf->f, name);
  if (is_redacted(hf->src, name)) {
    kv->value = fill_copy(hf->f, SLICE_LIT(redacted_text));
    *hf->redacted = true;
  } else {
    kv->value = fill_copy(hf->f, value);
  }
}

static void fill_cb(void *arg, struct slice name, struct slice value) {
  struct head_fill *hf = arg;
  if (!name.p) {
    hf->h->line = fill_copy(hf->f, value);
    return;
  }
  add_kv(hf, name, value);
}

static void fill_serialised(struct inspect_head *h, struct fill *f, const struct inspect_src *src,
                            struct slice head, bool *redacted) {
  if (head.n == 0)
    return;
  h->present = true;
  struct head_fill hf = {h, f, src, redacted};
  walk_head(head, fill_cb, &hf);
}

static void fill_list(struct inspect_head *h, struct fill *f, const struct inspect_src *src,
                      struct slice line, const struct inspect_kv *kv, uint32_t n, bool *redacted) {
  h->present = true;
  h->line = fill_copy(f, line);
  struct head_fill hf = {h, f, src, redacted};
  for (uint32_t i = 0; i < n; i++)
    add_kv(&hf, kv[i].name, kv[i].value);
}

/* Upper bound of the bytes a list needs (values may grow to "[redacted]"). */
static size_t list_bytes(const struct inspect_kv *kv, uint32_t n) {
  size_t b = 0;
  for (uint32_t i = 0; i < n; i++)
    b += kv[i].name.n + kv[i].value.n + sizeof(redacted_text);
  return b;
}

struct inspect_rec *inspect_rec_build(const struct inspect_src *src) {
  uint32_t nfwd = src->fwd_head.n ? walk_head(src->fwd_head, NULL, NULL) : 0;
  uint32_t ncli = src->client_head.n ? walk_head(src->client_head, NULL, NULL) : 0;
  size_t nkv = (size_t)src->nreq + nfwd + src->nup + ncli;
  struct slice strs[] = {src->request_id, src->client,      src->listener, src->method,
                         src->target,     src->host,        src->version,  src->route_label,
                         src->upstream,   src->server,      src->error,    src->body[0],
                         src->body[1],    src->req_line,    src->up_line,  src->config_file,
                         src->skipped,    src->frames_json, src->trace_id, src->tls_version,
                         src->tls_cipher, src->tls_sni,     src->tls_alpn, src->tls_client_subject,
                         src->tries,      src->auth,        src->mirror};
  size_t text = 0;
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    text += strs[i].n;
  /* Serialised heads: every byte at most once, plus room for redaction. */
  text += head_length(src->fwd_head) + (size_t)nfwd * sizeof(redacted_text);
  text += head_length(src->client_head) + (size_t)ncli * sizeof(redacted_text);
  text += list_bytes(src->req, src->nreq) + list_bytes(src->up, src->nup);
  size_t size = sizeof(struct inspect_rec) + nkv * sizeof(struct inspect_kv) + text;
  struct inspect_rec *r = malloc(size);
  if (!r)
    return NULL;
  memset(r, 0, sizeof *r);
  r->size = size;
  struct inspect_kv *kvs = (struct inspect_kv *)(void *)(r + 1);
  struct fill f = {(char *)(kvs + nkv), (char *)r + size};
  r->time_us = src->time_us;
  r->request_id = fill_copy(&f, src->request_id);
  r->trace_id = fill_copy(&f, src->trace_id);
  r->tls = src->tls;
  r->tls_version = fill_copy(&f, src->tls_version);
  r->tls_cipher = fill_copy(&f, src->tls_cipher);
  r->tls_sni = fill_copy(&f, src->tls_sni);
  r->tls_alpn = fill_copy(&f, src->tls_alpn);
  r->tls_client_subject = fill_copy(&f, src->tls_client_subject);
  r->auth = fill_copy(&f, src->auth);
  r->mirror = fill_copy(&f, src->mirror);
  r->client = fill_copy(&f, src->client);
  r->listener = fill_copy(&f, src->listener);
  r->method = fill_copy(&f, src->method);
  r->target = fill_copy(&f, src->target);
  r->host = fill_copy(&f, src->host);
  r->version = fill_copy(&f, src->version);
  r->route_index = src->route_index;
  r->route_line = src->route_line;
  r->route_label = fill_copy(&f, src->route_label);
  r->config_file = fill_copy(&f, src->config_file);
  r->skipped = fill_copy(&f, src->skipped);
  r->frames_json = fill_copy(&f, src->frames_json);
  r->skipped_more = src->skipped_more;
  r->upstream = fill_copy(&f, src->upstream);
  r->server = fill_copy(&f, src->server);
  r->error = fill_copy(&f, src->error);
  r->attempts = src->attempts;
  r->tries = fill_copy(&f, src->tries);
  r->status = src->status;
  r->complete = src->complete;
  r->req_head_bytes = src->req_head_bytes;
  r->req_body_bytes = src->req_body_bytes;
  r->resp_head_bytes = head_length(src->client_head);
  r->resp_body_bytes = src->resp_body_bytes;
  r->queue_us = src->queue_us;
  r->connect_us = src->connect_us;
  r->ttfb_us = src->ttfb_us;
  r->total_us = src->total_us;
  r->has_body = src->has_body;
  r->body[0] = fill_copy(&f, src->body[0]);
  r->body[1] = fill_copy(&f, src->body[1]);

  struct inspect_head *h = r->heads;
  h[INSPECT_REQUEST_CLIENT].h = kvs;
  fill_list(&h[INSPECT_REQUEST_CLIENT], &f, src, src->req_line, src->req, src->nreq, &r->redacted);
  h[INSPECT_REQUEST_UPSTREAM].h = kvs + src->nreq;
  fill_serialised(&h[INSPECT_REQUEST_UPSTREAM], &f, src, src->fwd_head, &r->redacted);
  h[INSPECT_RESPONSE_UPSTREAM].h = kvs + src->nreq + nfwd;
  if (src->up_present)
    fill_list(&h[INSPECT_RESPONSE_UPSTREAM], &f, src, src->up_line, src->up, src->nup,
              &r->redacted);
  h[INSPECT_RESPONSE_CLIENT].h = kvs + src->nreq + nfwd + src->nup;
  fill_serialised(&h[INSPECT_RESPONSE_CLIENT], &f, src, src->client_head, &r->redacted);
  return r;
}

/* --- WebSocket frames -------------------------------------------------------- */

/* The header's length once its first two bytes are known (RFC 6455 5.2). */
static uint8_t ws_header_need(const uint8_t *h) {
  uint8_t len7 = h[1] & 0x7f;
  return (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0));
}

/* The header in d->hdr is complete: note the frame. */
static void ws_frame_begin(struct inspect_ws_log *log, struct inspect_ws_dir *d, int dir) {
  const uint8_t *h = d->hdr;
  uint8_t len7 = h[1] & 0x7f;
  uint64_t size = len7;
  if (len7 == 126)
    size = (uint64_t)h[2] << 8 | h[3];
  else if (len7 == 127)
    for (int i = 0; i < 8; i++)
      size = size << 8 | h[2 + i];
  uint8_t opcode = h[0] & 0x0f;
  if ((h[0] & 0x70) || (opcode > 2 && opcode < 8) || opcode > 10 || (size >> 62)) {
    d->broken = true; /* reserved bits or opcodes: not a WebSocket stream we can follow */
    return;
  }
  d->in_payload = size > 0;
  d->left = size;
  d->done = 0;
  d->frame = -1;
  if (log->nframes == INSPECT_WS_MAX_FRAMES) {
    log->dropped++;
    return;
  }
  struct inspect_ws_frame *fr = &log->frames[log->nframes];
  *fr = (struct inspect_ws_frame){(uint8_t)dir, opcode, (h[0] & 0x80) != 0, 0, size, {0}};
  if (opcode == 1 && log->preview_left > 0)
    d->frame = (int32_t)log->nframes;
  log->nframes++;
}

void inspect_ws_feed(struct inspect_ws_log *log, int dir, const char *p, size_t n) {
  struct inspect_ws_dir *d = &log->dir[dir ? 1 : 0];
  const uint8_t *u = (const uint8_t *)p;
  size_t i = 0;
  while (i < n && !d->broken) {
    if (d->in_payload) {
      size_t k = n - i < d->left ? n - i : (size_t)d->left;
      if (d->frame >= 0) {
        struct inspect_ws_frame *fr = &log->frames[d->frame];
        bool masked = (d->hdr[1] & 0x80) != 0;
        const uint8_t *mask = d->hdr + d->need - 4;
        for (size_t j = 0; j < k && fr->npreview < INSPECT_WS_PREVIEW && log->preview_left > 0;
             j++) {
          uint8_t c = u[i + j];
          if (masked)
            c ^= mask[(d->done + j) & 3];
          fr->preview[fr->npreview++] = (char)c;
          log->preview_left--;
        }
      }
      i += k;
      d->left -= k;
      d->done += k;
      if (d->left == 0) {
        d->in_payload = false;
        d->hlen = d->need = 0;
      }
      continue;
    }
    d->hdr[d->hlen++] = u[i++];
    if (d->hlen == 2)
      d->need = ws_header_need(d->hdr);
    if (d->hlen >= 2 && d->hlen == d->need) {
      ws_frame_begin(log, d, dir);
      if (!d->in_payload)
        d->hlen = d->need = 0;
    }
  }
}

void inspect_ws_render(struct inspect_out *o, const struct inspect_ws_log *log) {
  static const char *const names[] = {"continuation", "text", "binary", "", "", "", "", "",
                                      "close",        "ping", "pong"};
  inspect_out_puts(o, "[");
  for (uint32_t i = 0; i < log->nframes; i++) {
    const struct inspect_ws_frame *fr = &log->frames[i];
    char head[160];
    snprintf(head, sizeof head,
             "%s{\"dir\":\"%s\",\"opcode\":%u,\"type\":\"%s\",\"fin\":%s,\"size\":%" PRIu64,
             i ? "," : "", fr->dir ? "upstream" : "client", (unsigned)fr->opcode,
             fr->opcode <= 10 ? names[fr->opcode] : "", fr->fin ? "true" : "false", fr->size);
    inspect_out_puts(o, head);
    if (fr->opcode == 1) {
      inspect_out_puts(o, ",\"preview\":");
      inspect_json_str(o, (struct slice){fr->preview, fr->npreview});
    }
    inspect_out_puts(o, "}");
  }
  inspect_out_puts(o, "]");
}

/* --- store ------------------------------------------------------------------- */

int inspect_store_init(struct inspect_store *st, uint32_t keep, uint64_t max_bytes) {
  memset(st, 0, sizeof *st);
  st->cap = keep;
  st->max_bytes = max_bytes;
  st->next_id = 1;
  if (keep == 0)
    return 0;
  st->ring = calloc(keep, sizeof *st->ring);
  return st->ring ? 0 : -1;
}

static void store_drop_oldest(struct inspect_store *st) {
  struct inspect_rec *old = st->ring[st->first];
  st->ring[st->first] = NULL;
  st->first = (st->first + 1) % st->cap;
  st->n--;
  st->bytes -= old->size;
  st->evicted++;
  free(old);
}

bool inspect_store_push(struct inspect_store *st, struct inspect_rec *rec) {
  rec->id = st->next_id++;
  rec->next = NULL;
  if (st->cap == 0 || rec->size > st->max_bytes) {
    st->evicted++;
    free(rec);
    return false;
  }
  while (st->n > 0 && (st->n == st->cap || st->bytes + rec->size > st->max_bytes))
    store_drop_oldest(st);
  st->ring[(st->first + st->n) % st->cap] = rec;
  st->n++;
  st->bytes += rec->size;
  return true;
}

const struct inspect_rec *inspect_store_newest(const struct inspect_store *st, uint32_t i) {
  if (i >= st->n)
    return NULL;
  return st->ring[(st->first + st->n - 1 - i) % st->cap];
}

const struct inspect_rec *inspect_store_find(const struct inspect_store *st, uint64_t id) {
  if (st->n == 0)
    return NULL;
  uint64_t oldest = st->ring[st->first]->id;
  /* ids are consecutive except where a too-large record was refused, so
   * look from the expected slot backwards. */
  if (id < oldest)
    return NULL;
  for (uint32_t i = 0; i < st->n; i++) {
    const struct inspect_rec *r = inspect_store_newest(st, i);
    if (r->id == id)
      return r;
    if (r->id < id)
      return NULL;
  }
  return NULL;
}

void inspect_store_destroy(struct inspect_store *st) {
  while (st->n > 0)
    store_drop_oldest(st);
  free(st->ring);
  st->ring = NULL;
}

/* --- filters ----------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = ascii_lower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Percent-decode (and '+' as space) into out; false when it does not fit. */
static bool query_decode(struct slice v, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < v.n; i++) {
    char c = v.p[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < v.n + 0 && hexval(v.p[i + 1]) >= 0 && hexval(v.p[i + 2]) >= 0) {
      c = (char)(hexval(v.p[i + 1]) * 16 + hexval(v.p[i + 2]));
      i += 2;
    }
    if (k + 1 >= cap)
      return false;
    out[k++] = c;
  }
  out[k] = '\0';
  return true;
}

/* The next "key=value" pair of the query q (split at '&'), taken off q;
 * value raw (still percent-encoded), "" without '='. False when q is
 * used up. */
static bool query_next(struct slice *q, struct slice *key, struct slice *val) {
  if (q->n == 0)
    return false;
  const char *amp = memchr(q->p, '&', q->n);
  struct slice pair = {q->p, amp ? (size_t)(amp - q->p) : q->n};
  q->p += pair.n + (amp ? 1 : 0);
  q->n -= pair.n + (amp ? 1 : 0);
  const char *eq = memchr(pair.p, '=', pair.n);
  *key = (struct slice){pair.p, eq ? (size_t)(eq - pair.p) : pair.n};
  *val = eq ? (struct slice){eq + 1, pair.n - key->n - 1} : (struct slice){"", 0};
  return true;
}

static int parse_query(struct slice q, struct inspect_filter *f, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  f->limit = 100;
  if (q.n && q.p[0] == '?') {
    q.p++;
    q.n--;
  }
  struct slice key, val;
  while (query_next(&q, &key, &val)) {
    char buf[1024];
    if (!query_decode(val, buf, slice_eq(key, SLICE_LIT("filter")) ? sizeof buf : 256)) {
      snprintf(err, errlen, "query parameter \"%.*s\" is too long (at most 255 bytes)", (int)key.n,
               key.p);
      return -1;
    }
    if (slice_eq(key, SLICE_LIT("limit")) || slice_eq(key, SLICE_LIT("after"))) {
      char *end;
      unsigned long long v = strtoull(buf, &end, 10);
      if (!buf[0] || *end || buf[0] == '-') {
        snprintf(err, errlen, "%.*s=%s: expected a whole number", (int)key.n, key.p, buf);
        return -1;
      }
      if (key.p[0] == 'l')
        f->limit = v > 100000 ? 100000 : (uint32_t)v;
      else
        f->after = (uint64_t)v;
    } else if (slice_eq(key, SLICE_LIT("route"))) {
      if (strlen(buf) >= sizeof f->route) {
        snprintf(err, errlen, "route=: too long (a route index or an upstream name)");
        return -1;
      }
      memcpy(f->route, buf, strlen(buf) + 1);
    } else if (slice_eq(key, SLICE_LIT("status"))) {
      size_t n = strlen(buf);
      bool ok = n >= 1 && n <= 3 && buf[0] >= '1' && buf[0] <= '5';
      for (size_t i = 1; ok && i < n; i++)
        ok = (buf[i] >= '0' && buf[i] <= '9') || buf[i] == 'x' || buf[i] == 'X';
      if (!ok) {
        snprintf(err, errlen, "status=%s: expected a status (404) or a class (4xx)", buf);
        return -1;
      }
      memcpy(f->status, buf, n + 1);
    } else if (slice_eq(key, SLICE_LIT("path"))) {
      memcpy(f->path, buf, sizeof f->path); /* buf holds at most 255 bytes and a NUL */
    } else if (slice_eq(key, SLICE_LIT("filter")) && buf[0]) {
      char why[256];
      filter_free(f->expr);
      f->expr = filter_compile(buf, why, sizeof why);
      if (!f->expr) {
        snprintf(err, errlen, "filter=%.200s: %s", buf, why);
        return -1;
      }
    }
  }
  return 0;
}

int inspect_filter_parse(struct slice q, struct inspect_filter *f, char *err, size_t errlen) {
  if (parse_query(q, f, err, errlen) == 0)
    return 0;
  inspect_filter_release(f);
  return -1;
}

void inspect_filter_release(struct inspect_filter *f) {
  filter_free(f->expr);
  f->expr = NULL;
}

static bool contains(struct slice hay, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0)
    return true;
  for (size_t i = 0; i + n <= hay.n; i++)
    if (memcmp(hay.p + i, needle, n) == 0)
      return true;
  return false;
}

bool inspect_filter_match(const struct inspect_filter *f, const struct inspect_rec *r) {
  if (f->after && r->id <= f->after)
    return false;
  if (f->route[0]) {
    char idx[16];
    snprintf(idx, sizeof idx, "%d", r->route_index);
    if (strcmp(f->route, idx) != 0 && !slice_eq(r->upstream, slice_cstr(f->route)))
      return false;
  }
  if (f->status[0]) {
    char st[16];
    snprintf(st, sizeof st, "%d", r->status);
    for (size_t i = 0; f->status[i]; i++)
      if (f->status[i] != 'x' && f->status[i] != 'X' && f->status[i] != st[i])
        return false;
  }
  if (f->path[0] && !contains(r->target, f->path))
    return false;
  return !f->expr || filter_match(f->expr, r);
}

/* --- rendering --------------------------------------------------------------- */

void inspect_out_put(struct inspect_out *o, const char *p, size_t n) {
  if (o->oom)
    return;
  if (o->n + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->n + n + 1)
      cap *= 2;
    char *np = realloc(o->p, cap);
    if (!np) {
      o->oom = true;
      return;
    }
    o->p = np;
    o->cap = cap;
  }
  memcpy(o->p + o->n, p, n);
  o->n += n;
  o->p[o->n] = '\0';
}

void inspect_out_puts(struct inspect_out *o, const char *s) {
  inspect_out_put(o, s, strlen(s));
}

void inspect_out_printf(struct inspect_out *o, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (k > 0)
    inspect_out_put(o, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
}

/* A JSON string. Bytes >= 0x80 are written as \u00XX (header bytes are
 * Latin-1 in HTTP/1.1), so the output is ASCII and always valid JSON. */
static void json_str(struct inspect_out *o, struct slice s) {
  static const char hex[] = "0123456789abcdef";
  inspect_out_put(o, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<') {
      run++;
      continue;
    }
    inspect_out_put(o, s.p + i - run, run);
    run = 0;
    char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    if (c == '"' || c == '\\') {
      e[1] = (char)c;
      inspect_out_put(o, e, 2);
    } else {
      inspect_out_put(o, e, 6); /* '<' too, so the JSON is safe inside HTML */
    }
  }
  inspect_out_put(o, s.p + s.n - run, run);
  inspect_out_put(o, "\"", 1);
}

void inspect_json_str(struct inspect_out *o, struct slice s) {
  json_str(o, s);
}

static void json_key_str(struct inspect_out *o, const char *key, struct slice v) {
  inspect_out_printf(o, ",\"%s\":", key);
  json_str(o, v);
}

/* ,"key":"v", or ,"key":null when v is empty. */
static void json_key_opt(struct inspect_out *o, const char *key, struct slice v) {
  if (v.n) {
    json_key_str(o, key, v);
    return;
  }
  inspect_out_printf(o, ",\"%s\":null", key);
}

/* ,"tries":[{"server":S,"result":R}, ...],"answered_by":N|null from
 * "SERVER RESULT\n" lines; N is the 1-based attempt whose answer went to
 * the client. */
static void render_tries(struct inspect_out *o, struct slice t) {
  unsigned k = 0, answered = 0;
  inspect_out_puts(o, ",\"tries\":[");
  while (t.n) {
    const char *nl = memchr(t.p, '\n', t.n);
    size_t len = nl ? (size_t)(nl - t.p) : t.n;
    const char *sp = memchr(t.p, ' ', len);
    size_t sn = sp ? (size_t)(sp - t.p) : len;
    struct slice result = sp ? (struct slice){sp + 1, len - sn - 1} : SLICE_LIT("");
    inspect_out_printf(o, "%s{\"server\":", k++ ? "," : "");
    json_str(o, (struct slice){t.p, sn});
    inspect_out_puts(o, ",\"result\":");
    json_str(o, result);
    inspect_out_put(o, "}", 1);
    if (result.n == 8 && memcmp(result.p, "answered", 8) == 0)
      answered = k;
    t = nl ? (struct slice){nl + 1, t.n - len - 1} : (struct slice){NULL, 0};
  }
  if (answered)
    inspect_out_printf(o, "],\"answered_by\":%u", answered);
  else
    inspect_out_puts(o, "],\"answered_by\":null");
}

/* "key":milliseconds with three decimals, or null; sep is "" or ",". */
static void json_ms(struct inspect_out *o, const char *sep, const char *key, int64_t us) {
  if (us < 0)
    inspect_out_printf(o, "%s\"%s\":null", sep, key);
  else
    inspect_out_printf(o, "%s\"%s\":%" PRId64 ".%03" PRId64, sep, key, us / 1000, us % 1000);
}

static void json_head(struct inspect_out *o, const char *key, const struct inspect_head *h) {
  inspect_out_printf(o, ",\"%s\":", key);
  if (!h->present) {
    inspect_out_puts(o, "null");
    return;
  }
  inspect_out_puts(o, "{\"line\":");
  json_str(o, h->line);
  inspect_out_puts(o, ",\"headers\":[");
  for (uint32_t i = 0; i < h->n; i++) {
    inspect_out_puts(o, i ? ",[" : "[");
    json_str(o, h->h[i].name);
    inspect_out_put(o, ",", 1);
    json_str(o, h->h[i].value);
    inspect_out_put(o, "]", 1);
  }
  inspect_out_puts(o, "]}");
}

bool inspect_replayable(const struct inspect_rec *r) {
  return !r->redacted && !r->has_body && r->heads[INSPECT_REQUEST_CLIENT].present;
}

void inspect_render_json(struct inspect_out *o, const struct inspect_rec *r, bool replay) {
  time_t secs = (time_t)(r->time_us / 1000000);
  struct tm tm;
  char when[40];
  gmtime_r(&secs, &tm);
  size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + k, sizeof when - k, ".%03dZ", (int)((r->time_us / 1000) % 1000));

  inspect_out_printf(o, "{\"id\":%" PRIu64, r->id);
  json_key_str(o, "request_id", r->request_id);
  json_key_str(o, "time", slice_cstr(when));
  inspect_out_printf(o, ",\"time_us\":%" PRId64, r->time_us);
  json_key_str(o, "client", r->client);
  json_key_str(o, "listener", r->listener);
  json_key_str(o, "method", r->method);
  json_key_str(o, "target", r->target);
  json_key_str(o, "host", r->host);
  json_key_str(o, "version", r->version);
  if (r->route_index < 0) {
    inspect_out_puts(o, ",\"route\":null");
  } else {
    inspect_out_printf(o, ",\"route\":{\"index\":%d,\"line\":%d,\"label\":", r->route_index,
                       r->route_line);
    json_str(o, r->route_label);
    inspect_out_puts(o, ",\"file\":");
    json_str(o, r->config_file);
    inspect_out_put(o, "}", 1);
  }
  inspect_out_puts(o, ",\"skipped\":[");
  struct slice sk = r->skipped;
  for (bool first = true; sk.n > 0; first = false) {
    const char *nl = memchr(sk.p, '\n', sk.n);
    struct slice line = {sk.p, nl ? (size_t)(nl - sk.p) : sk.n};
    sk.p += line.n + (nl ? 1 : 0);
    sk.n -= line.n + (nl ? 1 : 0);
    char *end;
    unsigned long idx = strtoul(line.p, &end, 10);
    long ln = strtol(end, &end, 10);
    size_t skip = (size_t)(end - line.p) + 1;
    inspect_out_printf(o, "%s{\"index\":%lu,\"line\":%ld,\"reason\":", first ? "" : ",", idx, ln);
    json_str(o, skip < line.n ? (struct slice){line.p + skip, line.n - skip} : SLICE_LIT(""));
    inspect_out_put(o, "}", 1);
  }
  inspect_out_put(o, "]", 1);
  if (r->skipped_more)
    inspect_out_printf(o, ",\"skipped_more\":%u", (unsigned)r->skipped_more);
  json_key_str(o, "upstream", r->upstream);
  json_key_str(o, "server", r->server);
  json_key_str(o, "trace_id", r->trace_id);
  if (r->tls) {
    inspect_out_puts(o, ",\"tls\":{");
    json_str(o, SLICE_LIT("version"));
    inspect_out_put(o, ":", 1);
    json_str(o, r->tls_version);
    json_key_str(o, "cipher", r->tls_cipher);
    json_key_opt(o, "sni", r->tls_sni);
    json_key_opt(o, "alpn", r->tls_alpn);
    json_key_opt(o, "client_subject", r->tls_client_subject);
    inspect_out_put(o, "}", 1);
  } else {
    inspect_out_puts(o, ",\"tls\":null");
  }
  if (r->auth.n)
    json_key_str(o, "auth", r->auth);
  else
    inspect_out_puts(o, ",\"auth\":null");
  if (r->mirror.n)
    json_key_str(o, "mirror", r->mirror);
  else
    inspect_out_puts(o, ",\"mirror\":null");
  inspect_out_printf(o, ",\"attempts\":%u,\"status\":%d,\"complete\":%s", (unsigned)r->attempts,
                     r->status, r->complete ? "true" : "false");
  render_tries(o, r->tries);
  if (r->error.n)
    json_key_str(o, "error", r->error);
  else
    inspect_out_puts(o, ",\"error\":null");
  inspect_out_printf(o,
                     ",\"bytes\":{\"request_head\":%" PRIu64 ",\"request_body\":%" PRIu64
                     ",\"response_head\":%" PRIu64 ",\"response_body\":%" PRIu64 "}",
                     r->req_head_bytes, r->req_body_bytes, r->resp_head_bytes, r->resp_body_bytes);
  inspect_out_puts(o, ",\"timings_ms\":{");
  json_ms(o, "", "queue", r->queue_us);
  json_ms(o, ",", "connect", r->connect_us);
  json_ms(o, ",", "ttfb", r->ttfb_us);
  json_ms(o, ",", "total", r->total_us);
  inspect_out_puts(o, "}");
  inspect_out_printf(o, ",\"redacted\":%s,\"has_body\":%s,\"replayable\":%s,\"editable\":%s",
                     r->redacted ? "true" : "false", r->has_body ? "true" : "false",
                     replay && inspect_replayable(r) ? "true" : "false",
                     replay && r->heads[INSPECT_REQUEST_CLIENT].present ? "true" : "false");
  /* A replay names its original: the page links the two. */
  const struct inspect_head *ch = &r->heads[INSPECT_REQUEST_CLIENT];
  for (uint32_t i = 0; i < ch->n; i++)
    if (slice_ieq(ch->h[i].name, SLICE_LIT("x-ferry-replay-of")) && ch->h[i].value.n > 0 &&
        ch->h[i].value.n < 20) {
      uint64_t of = 0;
      size_t d = 0;
      while (d < ch->h[i].value.n && ch->h[i].value.p[d] >= '0' && ch->h[i].value.p[d] <= '9')
        of = of * 10 + (uint64_t)(ch->h[i].value.p[d++] - '0');
      if (d == ch->h[i].value.n)
        inspect_out_printf(o, ",\"replay_of\":%" PRIu64, of);
      break;
    }
  if (r->body[0].n || r->body[1].n) {
    inspect_out_puts(o, ",\"body\":{\"request\":");
    json_str(o, r->body[0]);
    inspect_out_puts(o, ",\"response\":");
    json_str(o, r->body[1]);
    inspect_out_puts(o, "}");
  }
  if (r->frames_json.n) {
    inspect_out_puts(o, ",\"frames\":");
    inspect_out_put(o, r->frames_json.p, r->frames_json.n); /* rendered JSON (inspect_ws_render) */
  }
  json_head(o, "request_client", &r->heads[INSPECT_REQUEST_CLIENT]);
  json_head(o, "request_upstream", &r->heads[INSPECT_REQUEST_UPSTREAM]);
  json_head(o, "response_upstream", &r->heads[INSPECT_RESPONSE_UPSTREAM]);
  json_head(o, "response_client", &r->heads[INSPECT_RESPONSE_CLIENT]);
  inspect_out_puts(o, "}");
}

void inspect_render_list(struct inspect_out *o, const struct inspect_store *st,
                         const struct inspect_filter *f, bool replay) {
  uint32_t count = 0;
  inspect_out_puts(o, "{\"requests\":[");
  for (uint32_t i = 0; count < f->limit; i++) {
    const struct inspect_rec *r = inspect_store_newest(st, i);
    if (!r)
      break;
    if (!inspect_filter_match(f, r))
      continue;
    if (count++)
      inspect_out_put(o, ",", 1);
    inspect_render_json(o, r, replay);
  }
  inspect_out_printf(o, "],\"count\":%u,\"kept\":%u,\"evicted\":%" PRIu64 "}", (unsigned)count,
                     (unsigned)st->n, st->evicted);
}

void inspect_render_event(struct inspect_out *o, const struct inspect_rec *r, bool replay) {
  inspect_out_printf(o, "id: %" PRIu64 "\nevent: exchange\ndata: ", r->id);
  inspect_render_json(o, r, replay); /* one line: the JSON has no raw newline */
  inspect_out_puts(o, "\n\n");
}

static bool all_tchar(struct slice s) {
  for (size_t i = 0; i < s.n; i++)
    if (!http_is_tchar((unsigned char)s.p[i]))
      return false;
  return s.n > 0;
}

int inspect_replay_edit_parse(struct slice q, struct inspect_replay_edit *e, char *err,
                              size_t errlen) {
  memset(e, 0, sizeof *e);
  size_t nh = 0;
  for (size_t i = 0; i < q.n; i++)
    nh += q.p[i] == '&';
  /* Every decoded value fits in the query's length; one buffer holds them all. */
  e->mem = malloc(q.n + 1);
  e->names = calloc(nh + 1, sizeof *e->names);
  e->values = calloc(nh + 1, sizeof *e->values);
  if (!e->mem || !e->names || !e->values) {
    snprintf(err, errlen, "out of memory");
    inspect_replay_edit_free(e);
    return -1;
  }
  char *m = e->mem;
  struct slice key, raw;
  while (query_next(&q, &key, &raw)) {
    query_decode(raw, m, raw.n + 1); /* never longer than raw */
    struct slice v = slice_cstr(m);
    m += v.n + 1;
    if (slice_eq(key, SLICE_LIT("method"))) {
      e->method = v;
    } else if (slice_eq(key, SLICE_LIT("target"))) {
      e->target = v;
    } else if (slice_eq(key, SLICE_LIT("headers"))) {
      e->headers_given = true; /* headers=replace: h= entries (maybe none) are the list */
    } else if (slice_eq(key, SLICE_LIT("h"))) {
      const char *colon = memchr(v.p, ':', v.n);
      struct slice name = {v.p, colon ? (size_t)(colon - v.p) : v.n};
      if (!colon || !all_tchar(name)) {
        snprintf(err, errlen,
                 "h=%.100s: expected \"Name: value\" with a header name of token "
                 "characters",
                 v.p);
        inspect_replay_edit_free(e);
        return -1;
      }
      struct slice val = {colon + 1, v.n - name.n - 1};
      while (val.n && (val.p[0] == ' ' || val.p[0] == '\t')) {
        val.p++;
        val.n--;
      }
      e->headers_given = true;
      e->names[e->nheaders] = name;
      e->values[e->nheaders++] = val;
    } else if (slice_eq(key, SLICE_LIT("body"))) {
      e->body_given = true;
      e->body = v;
    }
  }
  if (e->method.n && (!all_tchar(e->method) || e->method.n > 32)) {
    snprintf(err, errlen, "method=%.40s: expected an HTTP method such as GET or POST", e->method.p);
    inspect_replay_edit_free(e);
    return -1;
  }
  for (size_t i = 0; i < e->target.n; i++)
    if ((unsigned char)e->target.p[i] <= 0x20 || (unsigned char)e->target.p[i] >= 0x7f) {
      snprintf(err, errlen, "target: only visible ASCII, no spaces (percent-encode the rest)");
      inspect_replay_edit_free(e);
      return -1;
    }
  if (e->target.n && e->target.p[0] != '/') {
    snprintf(err, errlen, "target=%.100s: expected a path starting with /", e->target.p);
    inspect_replay_edit_free(e);
    return -1;
  }
  for (size_t i = 0; i < e->nheaders; i++)
    for (size_t k = 0; k < e->values[i].n; k++)
      if (e->values[i].p[k] == '\r' || e->values[i].p[k] == '\n' || e->values[i].p[k] == '\0') {
        snprintf(err, errlen, "header %.*s: a value may not hold CR, LF or NUL", (int)e->names[i].n,
                 e->names[i].p);
        inspect_replay_edit_free(e);
        return -1;
      }
  return 0;
}

void inspect_replay_edit_free(struct inspect_replay_edit *e) {
  free(e->mem);
  free(e->names);
  free(e->values);
  memset(e, 0, sizeof *e);
}

static bool replay_drops(struct slice name) {
  static const char *const drop[] = {
      "connection",     "keep-alive",        "proxy-connection", "te",
      "trailer",        "transfer-encoding", "upgrade",          "x-request-id",
      "content-length", "x-ferry-replay-of"};
  for (size_t d = 0; d < sizeof drop / sizeof drop[0]; d++)
    if (slice_ieq(name, slice_cstr(drop[d])))
      return true;
  return false;
}

int inspect_render_replay_edited(struct inspect_out *o, const struct inspect_rec *r,
                                 const struct inspect_replay_edit *e, char *err, size_t errlen) {
  const struct inspect_head *h = &r->heads[INSPECT_REQUEST_CLIENT];
  if (!h->present) {
    snprintf(err, errlen, "this exchange has no captured request to send again");
    return -1;
  }
  if (r->has_body && !e->body_given) {
    snprintf(err, errlen,
             "this request carried a body, which the inspector does not keep whole: "
             "give the body to send (body=...)");
    return -1;
  }
  size_t n = e->headers_given ? e->nheaders : h->n;
  for (size_t i = 0; i < n; i++) {
    struct slice name = e->headers_given ? e->names[i] : h->h[i].name;
    struct slice value = e->headers_given ? e->values[i] : h->h[i].value;
    if (!replay_drops(name) && slice_eq(value, SLICE_LIT(redacted_text))) {
      snprintf(err, errlen, "header %.*s has the redacted value: give its real value or remove it",
               (int)name.n, name.p);
      return -1;
    }
  }
  struct slice method = e->method.n ? e->method : r->method;
  struct slice target = e->target.n ? e->target : r->target;
  inspect_out_put(o, method.p, method.n);
  inspect_out_put(o, " ", 1);
  inspect_out_put(o, target.p, target.n);
  inspect_out_puts(o, " HTTP/1.1\r\n");
  bool host = false;
  for (size_t i = 0; i < n; i++) {
    struct slice name = e->headers_given ? e->names[i] : h->h[i].name;
    struct slice value = e->headers_given ? e->values[i] : h->h[i].value;
    if (replay_drops(name))
      continue;
    host = host || slice_ieq(name, SLICE_LIT("host"));
    inspect_out_put(o, name.p, name.n);
    inspect_out_puts(o, ": ");
    inspect_out_put(o, value.p, value.n);
    inspect_out_puts(o, "\r\n");
  }
  if (!host && r->host.n) {
    inspect_out_puts(o, "Host: ");
    inspect_out_put(o, r->host.p, r->host.n);
    inspect_out_puts(o, "\r\n");
  }
  if (e->body_given)
    inspect_out_printf(o, "Content-Length: %zu\r\n", e->body.n);
  inspect_out_printf(o, "X-Ferry-Replay-Of: %" PRIu64 "\r\nConnection: close\r\n\r\n", r->id);
  if (e->body_given)
    inspect_out_put(o, e->body.p, e->body.n);
  return 0;
}

void inspect_render_replay(struct inspect_out *o, const struct inspect_rec *r) {
  struct inspect_replay_edit none = {0};
  char err[256];
  inspect_render_replay_edited(o, r, &none, err, sizeof err);
}
