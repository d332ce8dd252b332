/* accesslog: one line per finished request, SPEC §6, written off the
 * event loops.
 *
 * `combined`: the Apache/nginx combined format followed by the request id,
 * the upstream server(s) and the total time in ms:
 *   127.0.0.1 - - [25/Nov/2026:08:00:00 +0000] "GET /api HTTP/1.1" 200 12 "-" "curl/7.88.1"
 * rid=0f3a... upstream=127.0.0.1:9001 ms=1 `json`: one object per line with the same fields,
 * valid JSON whatever bytes the client sent (accesslog_json_escape). A
 * rejected head shows its request line as far as it arrived, "-" for the
 * parts that did not (exchange.method_known, version_known).
 *
 * A worker formats the line on its own stack and copies it into its own
 * ring (single producer, single consumer, ACCESSLOG_RING_BYTES): no lock,
 * no system call, never blocks. A writer thread drains every ring and
 * writes whole batches of lines to the file. When a worker's ring is full
 * the line is dropped and counted (ferry_access_log_dropped_total).
 * accesslog_reopen (SIGUSR1, logrotate) and accesslog_configure (reload)
 * are carried out by the writer thread between batches. */
#ifndef FERRY_ACCESSLOG_H
#define FERRY_ACCESSLOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "ferry/config.h"

struct exchange;

#define ACCESSLOG_RING_BYTES (256u * 1024u) /* per worker */

struct accesslog_ring;

struct accesslog {
  _Atomic int format; /* enum cfg_log_format; reload may change it */
  _Atomic bool off;   /* access_log.path: off */
  _Atomic uint64_t dropped;
  struct accesslog_ring *rings; /* one per worker */
  unsigned nrings;
  /* writer thread */
  uv_thread_t thread;
  bool started;
  _Atomic bool stop, reopen;
  uv_mutex_t mu; /* path below: main thread and writer only */
  char *path;    /* NULL off, "-" stdout, else a file; the writer's fd follows it */
  bool path_changed;
  int fd;
  bool own_fd;
};

/* Open per cfg->access_log (the file is opened here so a bad path fails
 * start-up) and start the writer thread with one ring per worker.
 * Returns 0 or -1 with a message in err. */
int accesslog_open(struct accesslog *log, const struct config *cfg, unsigned nworkers, char *err,
                   size_t errlen);
/* Drain every ring, stop the writer, close. Workers must have stopped. */
void accesslog_close(struct accesslog *log);
/* Any thread: reopen the file by its path (after logrotate moved it). */
void accesslog_reopen(struct accesslog *log);
/* Main thread (reload): follow cfg->access_log's path and format. */
void accesslog_configure(struct accesslog *log, const struct config *cfg);
/* Lines dropped because the writer could not keep up (any thread). */
uint64_t accesslog_dropped(const struct accesslog *log);
/* Write in[0..n) into out as the inside of a JSON string (RFC 8259):
 * well-formed UTF-8 is kept as it is; '"' and '\\' are escaped; control
 * characters, DEL and each byte that is not part of well-formed UTF-8
 * (overlong forms, surrogates, stray continuation bytes) become \u00XX.
 * Stops before an escape or character that would pass cap; returns the
 * bytes written. */
size_t accesslog_json_escape(char *out, size_t cap, const char *in, size_t n);
/* Worker thread: queue the line for a finished (or aborted) exchange. */
void accesslog_write(const struct accesslog *log, const struct exchange *ex, uint64_t now_ms);

#endif
