/* accesslog: formats and writes access log lines. Owns the log file
 * descriptor; reads exchanges but never changes them. */
#include "ferry/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/exchange.h"
#include "ferry/log.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

/* --- per-worker rings ---------------------------------------------------- */

/* Records are [uint32 length][bytes], padded to 4 bytes; a length of
 * RING_WRAP means "continue at offset 0". head and tail count bytes since
 * the start (never wrap in practice), so used = head - tail. */
#define RING_WRAP 0xffffffffu

struct accesslog_ring {
  _Atomic uint64_t head; /* written by the worker */
  char pad1[56];
  _Atomic uint64_t tail; /* written by the writer thread */
  char pad2[56];
  char data[ACCESSLOG_RING_BYTES];
};

static size_t rec_size(size_t n) {
  return 4 + ((n + 3) & ~(size_t)3);
}

/* Worker thread. False when there is no room (the line is dropped). */
static bool ring_put(struct accesslog_ring *r, const char *p, size_t n) {
  uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  size_t need = rec_size(n);
  size_t off = (size_t)(head % ACCESSLOG_RING_BYTES);
  size_t to_end = ACCESSLOG_RING_BYTES - off;
  size_t total = need <= to_end ? need : to_end + need; /* wrap: skip the end */
  if (head + total - tail > ACCESSLOG_RING_BYTES)
    return false;
  if (need > to_end) {
    uint32_t wrap = RING_WRAP;
    if (to_end >= 4)
      memcpy(r->data + off, &wrap, 4);
    head += to_end;
    off = 0;
  }
  uint32_t len = (uint32_t)n;
  memcpy(r->data + off, &len, 4);
  memcpy(r->data + off + 4, p, n);
  atomic_store_explicit(&r->head, head + need, memory_order_release);
  return true;
}

/* Writer thread: append up to cap bytes of lines to out; returns bytes. */
static size_t ring_take(struct accesslog_ring *r, char *out, size_t cap) {
  uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  size_t n = 0;
  while (tail < head) {
    size_t off = (size_t)(tail % ACCESSLOG_RING_BYTES);
    size_t to_end = ACCESSLOG_RING_BYTES - off;
    uint32_t len = RING_WRAP;
    if (to_end >= 4)
      memcpy(&len, r->data + off, 4);
    if (len == RING_WRAP) {
      tail += to_end;
      continue;
    }
    if (n + len > cap)
      break;
    memcpy(out + n, r->data + off + 4, len);
    n += len;
    tail += rec_size(len);
  }
  atomic_store_explicit(&r->tail, tail, memory_order_release);
  return n;
}

/* --- the writer thread ------------------------------------------------------ */

static int open_path(const char *path, int *fd, bool *own, char *err, size_t errlen) {
  *fd = -1;
  *own = false;
  if (!path)
    return 0;
  if (strcmp(path, "-") == 0) {
    *fd = STDOUT_FILENO;
    return 0;
  }
  *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (*fd < 0) {
    snprintf(err, errlen,
             "access_log: cannot open \"%s\": %s (check the directory exists and is writable)",
             path, strerror(errno));
    return -1;
  }
  *own = true;
  return 0;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0 && fd >= 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return; /* a full disk or closed stdout: the lines are lost, the proxy goes on */
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Reopen (SIGUSR1) or follow a new path (reload). Writer thread. */
static void writer_reopen(struct accesslog *log) {
  uv_mutex_lock(&log->mu);
  char *path = log->path ? strdup(log->path) : NULL;
  bool had_path = log->path != NULL;
  log->path_changed = false;
  uv_mutex_unlock(&log->mu);
  if (had_path && !path)
    return; /* out of memory: keep writing where we were */
  int fd;
  bool own;
  char err[512];
  if (open_path(path, &fd, &own, err, sizeof(err)) != 0) {
    log_error("%s; access log lines go to the previous file until the next SIGUSR1 or reload", err);
    free(path);
    return;
  }
  if (log->own_fd && log->fd >= 0)
    close(log->fd);
  log->fd = fd;
  log->own_fd = own;
  log_info("access log %s", path ? path : "off");
  free(path);
}

static void writer_thread(void *arg) {
  struct accesslog *log = arg;
  static const size_t cap = 64 * 1024;
  char *batch = malloc(cap);
  unsigned idle_ms = 1;
  for (;;) {
    bool stop = atomic_load(&log->stop);
    if (atomic_exchange(&log->reopen, false))
      writer_reopen(log);
    size_t total = 0;
    for (unsigned i = 0; i < log->nrings && batch; i++) {
      size_t n;
      while ((n = ring_take(&log->rings[i], batch, cap)) > 0) {
        write_all(log->fd, batch, n);
        total += n;
      }
    }
    if (stop)
      break;
    /* Nothing signals this thread (that would cost workers a system
     * call): it polls, every millisecond while lines flow, backing off to
     * every 16 ms when idle. A ring (256 KiB, over 1,000 lines) holds more
     * than 16 ms of lines at any rate one worker sustains. */
    idle_ms = total ? 1 : (idle_ms * 2 > 16 ? 16 : idle_ms * 2);
    uv_sleep(idle_ms);
  }
  free(batch);
}

int accesslog_open(struct accesslog *log, const struct config *cfg, unsigned nworkers, char *err,
                   size_t errlen) {
  memset(log, 0, sizeof(*log));
  log->fd = -1;
  atomic_init(&log->dropped, 0);
  atomic_init(&log->format, (int)cfg->access_log.format);
  atomic_init(&log->off, cfg->access_log.path == NULL);
  atomic_init(&log->stop, false);
  atomic_init(&log->reopen, false);
  if (uv_mutex_init(&log->mu) != 0) {
    snprintf(err, errlen, "access_log: cannot create a mutex");
    return -1;
  }
  if (cfg->access_log.path && !(log->path = strdup(cfg->access_log.path))) {
    snprintf(err, errlen, "out of memory");
    uv_mutex_destroy(&log->mu);
    return -1;
  }
  if (open_path(log->path, &log->fd, &log->own_fd, err, errlen) != 0) {
    free(log->path);
    uv_mutex_destroy(&log->mu);
    return -1;
  }
  log->nrings = nworkers;
  log->rings = calloc(nworkers ? nworkers : 1, sizeof(*log->rings));
  if (!log->rings || uv_thread_create(&log->thread, writer_thread, log) != 0) {
    snprintf(err, errlen, "access_log: cannot start the writer thread (out of memory?)");
    free(log->rings);
    log->rings = NULL;
    if (log->own_fd)
      close(log->fd);
    free(log->path);
    uv_mutex_destroy(&log->mu);
    return -1;
  }
  log->started = true;
  return 0;
}

uint64_t accesslog_dropped(const struct accesslog *log) {
  return atomic_load(&((struct accesslog *)(uintptr_t)log)->dropped);
}

void accesslog_reopen(struct accesslog *log) {
  atomic_store(&log->reopen, true);
}

void accesslog_configure(struct accesslog *log, const struct config *cfg) {
  atomic_store(&log->format, (int)cfg->access_log.format);
  const char *np = cfg->access_log.path;
  uv_mutex_lock(&log->mu);
  bool same = (!np && !log->path) || (np && log->path && strcmp(np, log->path) == 0);
  if (!same) {
    char *dup = np ? strdup(np) : NULL;
    if (!np || dup) {
      free(log->path);
      log->path = dup;
      log->path_changed = true;
    }
  }
  uv_mutex_unlock(&log->mu);
  if (!same) {
    atomic_store(&log->off, np == NULL);
    atomic_store(&log->reopen, true);
  }
}

void accesslog_close(struct accesslog *log) {
  if (log->started) {
    atomic_store(&log->stop, true);
    uv_thread_join(&log->thread);
    log->started = false;
    uv_mutex_destroy(&log->mu);
  }
  if (log->own_fd && log->fd >= 0)
    close(log->fd);
  log->fd = -1;
  free(log->rings);
  log->rings = NULL;
  free(log->path);
  log->path = NULL;
}

/* A line is built in a fixed buffer: every escaped field is cut at a
 * bound of its own (whole characters and escapes only), so the fixed
 * parts always fit and a JSON line is always complete. */
#define LINE_MAX_BYTES 8192
#define CAP_TARGET 3072
#define CAP_HOST 256
#define CAP_HEADER 1024 /* Referer, User-Agent */
#define CAP_RID 256

struct out {
  char *p;
  size_t n, cap;
};

static void put(struct out *o, const char *s, size_t n) {
  size_t room = o->n < o->cap ? o->cap - o->n : 0;
  if (n > room)
    n = room;
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void puts_(struct out *o, const char *s) {
  put(o, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF) starting at p[0] (>= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0)
      lo = 0xa0; /* overlong */
    else if (c == 0xed)
      hi = 0x9f; /* UTF-16 surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0)
      lo = 0x90; /* overlong */
    else if (c == 0xf4)
      hi = 0x8f; /* over U+10FFFF */
  } else {
    return 0;
  }
  if (n < len || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (p[i] < 0x80 || p[i] > 0xbf)
      return 0;
  return len;
}

size_t accesslog_json_escape(char *out, size_t cap, const char *in, size_t n) {
  const unsigned char *p = (const unsigned char *)in;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    char esc[6];
    const char *w = esc;
    size_t k, adv = 1;
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      k = 2;
    } else if (c >= 0x20 && c < 0x7f) {
      w = (const char *)&p[i];
      k = 1;
    } else if (c >= 0x80 && (k = utf8_len(p + i, n - i)) > 0) {
      w = (const char *)&p[i];
      adv = k;
    } else {
      static const char hex[] = "0123456789abcdef";
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      k = 6;
    }
    if (o + k > cap)
      break;
    memcpy(out + o, w, k);
    o += k;
    i += adv;
  }
  return o;
}

static void json_escape(struct out *o, struct slice s, size_t max) {
  size_t room = o->cap - o->n;
  o->n += accesslog_json_escape(o->p + o->n, max < room ? max : room, s.p, s.n);
}

/* Append s for the combined format, nginx-style: '"', '\\', control
 * characters and bytes >= 0x7f as \xXX; "-" when empty. At most max
 * bytes are added. */
static void combined_escape(struct out *o, struct slice s, size_t max) {
  if (s.n == 0) {
    put(o, "-", 1);
    return;
  }
  size_t end = o->n + max < o->cap ? o->n + max : o->cap;
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789ABCDEF";
      if (o->n + 4 > end)
        return;
      o->p[o->n++] = '\\';
      o->p[o->n++] = 'x';
      o->p[o->n++] = hex[c >> 4];
      o->p[o->n++] = hex[c & 15];
    } else {
      if (o->n + 1 > end)
        return;
      o->p[o->n++] = (char)c;
    }
  }
}

static struct slice header_value(const struct exchange *ex, const char *name) {
  const struct hdr *h = http_head_find(&ex->req_hdrs, slice_cstr(name));
  return h ? h->value : (struct slice){NULL, 0};
}

void accesslog_write(const struct accesslog *log, const struct exchange *ex, uint64_t now_ms) {
  if (atomic_load_explicit(&((struct accesslog *)(uintptr_t)log)->off, memory_order_relaxed) ||
      !log->rings || ex->w->id >= log->nrings)
    return;
  enum cfg_log_format format = (enum cfg_log_format)atomic_load_explicit(
      &((struct accesslog *)(uintptr_t)log)->format, memory_order_relaxed);
  char buf[LINE_MAX_BYTES];
  struct out o = {buf, 0, sizeof(buf) - 1};
  char tmp[128];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  /* The request line as far as it was received: a head rejected early
   * may lack any part of it; "-" stands for a missing part. */
  const char *method = ex->method_known ? llhttp_method_name((llhttp_method_t)ex->method) : "-";
  char proto[16] = "-";
  if (ex->version_known)
    snprintf(proto, sizeof(proto), "HTTP/%u.%d", ex->major, ex->minor);
  uint64_t ms = now_ms >= ex->t_start_ms ? now_ms - ex->t_start_ms : 0;
  /* Every server tried, in order: "127.0.0.1:9001, 127.0.0.1:9002". */
  char server[EX_MAX_TRIED * 66 + 8] = "-";
  size_t sn = 0;
  for (uint32_t i = 0; i < ex->ntried && i < EX_MAX_TRIED; i++)
    sn += (size_t)snprintf(server + sn, sizeof(server) - sn, "%s%s", i ? ", " : "",
                           ex->tried[i]->name);
  if (sn == 0 && ex->srv)
    snprintf(server, sizeof(server), "%s", ex->srv->name);
  int status = ex->status ? ex->status : 499;
  /* behind a trusted proxy, the client it names; before a head was
   * complete, the peer */
  const char *client = ex->client_ip ? ex->client_ip : ex->peer_ip;
  if (format == LOG_FORMAT_JSON) {
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    puts_(&o, "{\"time\":\"");
    puts_(&o, tmp);
    puts_(&o, "\",\"client\":\"");
    puts_(&o, client);
    puts_(&o, "\",\"method\":\"");
    puts_(&o, method);
    puts_(&o, "\",\"target\":\"");
    if (ex->url.n)
      json_escape(&o, ex->url, CAP_TARGET);
    else
      puts_(&o, "-");
    puts_(&o, "\",\"protocol\":\"");
    puts_(&o, proto);
    snprintf(tmp, sizeof(tmp), "\",\"status\":%d,\"bytes\":%llu", status,
             (unsigned long long)ex->resp_body_bytes);
    puts_(&o, tmp);
    puts_(&o, ",\"host\":\"");
    json_escape(&o, ex->host, CAP_HOST);
    puts_(&o, "\",\"referer\":\"");
    json_escape(&o, header_value(ex, "Referer"), CAP_HEADER);
    puts_(&o, "\",\"user_agent\":\"");
    json_escape(&o, header_value(ex, "User-Agent"), CAP_HEADER);
    puts_(&o, "\",\"request_id\":\"");
    json_escape(&o, ex->rid, CAP_RID);
    puts_(&o, "\",\"trace_id\":\"");
    puts_(&o, ex->trace_id);
    puts_(&o, "\",\"upstream\":\"");
    puts_(&o, ex->srv ? server : "");
    snprintf(tmp, sizeof(tmp), "\",\"ms\":%llu", (unsigned long long)ms);
    puts_(&o, tmp);
    const struct tls_info *ti = ex->tls_info;
    if (ti) {
      puts_(&o, ",\"tls_version\":\"");
      puts_(&o, ti->version);
      puts_(&o, "\",\"tls_cipher\":\"");
      puts_(&o, ti->cipher);
      puts_(&o, "\",\"sni\":\"");
      json_escape(&o, slice_cstr(ti->sni), CAP_HOST);
      puts_(&o, "\"");
    }
    if (ex->auth_note) {
      puts_(&o, ",\"auth\":\"");
      puts_(&o, ex->auth_note);
      puts_(&o, "\"");
    }
    if (ex->mirror_note) {
      puts_(&o, ",\"mirror\":\"");
      puts_(&o, ex->mirror_note);
      puts_(&o, "\"");
    }
    if (ex->error_note) {
      puts_(&o, ",\"error\":\"");
      json_escape(&o, slice_cstr(ex->error_note), CAP_RID);
      puts_(&o, "\"");
    }
    puts_(&o, "}");
  } else {
    strftime(tmp, sizeof(tmp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    puts_(&o, client);
    puts_(&o, " - - [");
    puts_(&o, tmp);
    puts_(&o, "] \"");
    if (!ex->method_known && !ex->url.n && !ex->version_known) {
      puts_(&o, "-"); /* nothing of a request line arrived */
    } else {
      puts_(&o, method);
      puts_(&o, " ");
      combined_escape(&o, ex->url, CAP_TARGET);
      puts_(&o, " ");
      puts_(&o, proto);
    }
    snprintf(tmp, sizeof(tmp), "\" %d %llu \"", status, (unsigned long long)ex->resp_body_bytes);
    puts_(&o, tmp);
    combined_escape(&o, header_value(ex, "Referer"), CAP_HEADER);
    puts_(&o, "\" \"");
    combined_escape(&o, header_value(ex, "User-Agent"), CAP_HEADER);
    puts_(&o, "\" rid=");
    combined_escape(&o, ex->rid, CAP_RID);
    puts_(&o, ex->ntried > 1 ? " upstream=\"" : " upstream=");
    puts_(&o, server);
    if (ex->ntried > 1)
      puts_(&o, "\"");
    snprintf(tmp, sizeof(tmp), " ms=%llu", (unsigned long long)ms);
    puts_(&o, tmp);
    const struct tls_info *ti = ex->tls_info;
    if (ti) { /* on a TLS listener; sni=- when the client sent none */
      puts_(&o, " tls_version=");
      puts_(&o, ti->version);
      puts_(&o, " tls_cipher=");
      puts_(&o, ti->cipher);
      puts_(&o, " sni=");
      combined_escape(&o, slice_cstr(ti->sni), CAP_HOST);
    }
    if (ex->auth_note) {
      puts_(&o, " auth=");
      puts_(&o, ex->auth_note);
    }
    if (ex->mirror_note) {
      puts_(&o, " mirror=");
      puts_(&o, ex->mirror_note);
    }
    if (ex->error_note) {
      puts_(&o, " error=\"");
      puts_(&o, ex->error_note);
      puts_(&o, "\"");
    }
  }
  buf[o.n++] = '\n';
  struct accesslog *l = (struct accesslog *)(uintptr_t)log;
  if (!ring_put(&l->rings[ex->w->id], buf, o.n))
    atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
}
