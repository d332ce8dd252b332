/* accesslog: one line per finished request, SPEC §6.
 *
 * `combined`: the Apache/nginx combined format followed by the request id,
 * the upstream server(s) and the total time in ms:
 *   127.0.0.1 - - [25/Nov/2026:08:00:00 +0000] "GET /api HTTP/1.1" 200 12 "-" "curl/7.88.1"
 * rid=0f3a... upstream=127.0.0.1:9001 ms=1 `json`: one object per line with the same fields. The
 * log object is shared read-only by all workers; each line goes out in a single write(2) (atomic
 * for lines under PIPE_BUF on pipes). */
#ifndef FERRY_ACCESSLOG_H
#define FERRY_ACCESSLOG_H

#include <stdatomic.h>
#include <stdint.h>

#include "ferry/config.h"

struct exchange;

struct accesslog {
  int fd; /* -1: off */
  int own_fd;
  enum cfg_log_format format;
  _Atomic uint64_t dropped;
};

/* Open per cfg->access_log. Returns 0 or -1 with a message in err. */
int accesslog_open(struct accesslog *log, const struct config *cfg, char *err, size_t errlen);
void accesslog_close(struct accesslog *log);
/* Write the line for a finished (or aborted) exchange. */
/* Lines dropped because the writer could not keep up (any thread). */
uint64_t accesslog_dropped(const struct accesslog *log);
void accesslog_write(const struct accesslog *log, const struct exchange *ex, uint64_t now_ms);

#endif
