/* accesslog: formats and writes access log lines. Owns the log file
 * descriptor; reads exchanges but never changes them. */
#include "ferry/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/exchange.h"
#include "ferry/session.h"
#include "ferry/upstream.h"

int accesslog_open(struct accesslog *log, const struct config *cfg, char *err, size_t errlen) {
  log->fd = -1;
  log->own_fd = 0;
  atomic_init(&log->dropped, 0);
  log->format = cfg->access_log.format;
  const char *path = cfg->access_log.path;
  if (!path)
    return 0;
  if (strcmp(path, "-") == 0) {
    log->fd = STDOUT_FILENO;
    return 0;
  }
  log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log->fd < 0) {
    snprintf(err, errlen,
             "access_log: cannot open \"%s\": %s (check the directory exists and is writable)",
             path, strerror(errno));
    return -1;
  }
  log->own_fd = 1;
  return 0;
}

uint64_t accesslog_dropped(const struct accesslog *log) {
  return atomic_load(&((struct accesslog *)(uintptr_t)log)->dropped);
}

void accesslog_close(struct accesslog *log) {
  if (log->own_fd && log->fd >= 0)
    close(log->fd);
  log->fd = -1;
}

/* Append s to buf (bounded), escaping for the chosen format. */
struct out {
  char *p;
  size_t n, cap;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->n + n > o->cap)
    n = o->cap - o->n;
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void puts_(struct out *o, const char *s) {
  put(o, s, strlen(s));
}

static void put_escaped(struct out *o, struct slice s, int json) {
  if (s.n == 0 && !json) {
    put(o, "-", 1);
    return;
  }
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      char esc[8];
      int k = json && c < 0x80 ? snprintf(esc, sizeof(esc), "\\u%04x", c)
                               : snprintf(esc, sizeof(esc), "\\x%02X", c);
      if (json && (c == '"' || c == '\\'))
        k = snprintf(esc, sizeof(esc), "\\%c", c);
      put(o, esc, (size_t)k);
    } else {
      put(o, (const char *)&s.p[i], 1);
    }
  }
}

static struct slice header_value(const struct exchange *ex, const char *name) {
  const struct hdr *h = http_head_find(&ex->req_hdrs, slice_cstr(name));
  return h ? h->value : (struct slice){NULL, 0};
}

void accesslog_write(const struct accesslog *log, const struct exchange *ex, uint64_t now_ms) {
  if (log->fd < 0)
    return;
  char buf[4096];
  struct out o = {buf, 0, sizeof(buf) - 1};
  char tmp[128];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  const char *method = llhttp_method_name((llhttp_method_t)ex->method);
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
  if (log->format == LOG_FORMAT_JSON) {
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    puts_(&o, "{\"time\":\"");
    puts_(&o, tmp);
    puts_(&o, "\",\"client\":\"");
    puts_(&o, ex->s->client_ip);
    puts_(&o, "\",\"method\":\"");
    puts_(&o, method);
    puts_(&o, "\",\"target\":\"");
    put_escaped(&o, ex->url, 1);
    snprintf(tmp, sizeof(tmp), "\",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"bytes\":%llu",
             ex->minor, status, (unsigned long long)ex->resp_body_bytes);
    puts_(&o, tmp);
    puts_(&o, ",\"host\":\"");
    put_escaped(&o, ex->host, 1);
    puts_(&o, "\",\"referer\":\"");
    put_escaped(&o, header_value(ex, "Referer"), 1);
    puts_(&o, "\",\"user_agent\":\"");
    put_escaped(&o, header_value(ex, "User-Agent"), 1);
    puts_(&o, "\",\"request_id\":\"");
    put_escaped(&o, ex->rid, 1);
    puts_(&o, "\",\"upstream\":\"");
    puts_(&o, ex->srv ? server : "");
    snprintf(tmp, sizeof(tmp), "\",\"ms\":%llu", (unsigned long long)ms);
    puts_(&o, tmp);
    if (ex->error_note) {
      puts_(&o, ",\"error\":\"");
      puts_(&o, ex->error_note);
      puts_(&o, "\"");
    }
    puts_(&o, "}");
  } else {
    strftime(tmp, sizeof(tmp), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    puts_(&o, ex->s->client_ip);
    puts_(&o, " - - [");
    puts_(&o, tmp);
    puts_(&o, "] \"");
    puts_(&o, method);
    puts_(&o, " ");
    put_escaped(&o, ex->url, 0);
    snprintf(tmp, sizeof(tmp), " HTTP/1.%d\" %d %llu \"", ex->minor, status,
             (unsigned long long)ex->resp_body_bytes);
    puts_(&o, tmp);
    put_escaped(&o, header_value(ex, "Referer"), 0);
    puts_(&o, "\" \"");
    put_escaped(&o, header_value(ex, "User-Agent"), 0);
    puts_(&o, "\" rid=");
    put_escaped(&o, ex->rid, 0);
    puts_(&o, ex->ntried > 1 ? " upstream=\"" : " upstream=");
    puts_(&o, server);
    if (ex->ntried > 1)
      puts_(&o, "\"");
    snprintf(tmp, sizeof(tmp), " ms=%llu", (unsigned long long)ms);
    puts_(&o, tmp);
    if (ex->error_note) {
      puts_(&o, " error=\"");
      puts_(&o, ex->error_note);
      puts_(&o, "\"");
    }
  }
  buf[o.n++] = '\n';
  ssize_t w = write(log->fd, buf, o.n);
  (void)w;
}
