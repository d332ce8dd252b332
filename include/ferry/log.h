/* log: the error log, one line per event on stderr:
 *   2026-11-25T08:00:00.123Z error ferry: message
 * The level is chosen once at start (log_set_level) before any worker
 * thread runs; each line is written with a single write(2). */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                             \
  do {                                                                                             \
    if (log_enabled(LOG_DEBUG))                                                                    \
      log_msg(LOG_DEBUG, __VA_ARGS__);                                                             \
  } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* A line that may repeat under a flood (fd exhaustion: once per request
 * or accept) is written at most once per `every` ms; the events between
 * are counted and reported with the next line. Owned by one thread. */
struct log_rate {
  uint64_t last_ms; /* when the last line was written; 0: never */
  uint64_t skipped; /* events since then */
};

/* True when a line is due at now_ms; *skipped gets the count of events
 * not reported since the last line (this one excluded). */
static inline bool log_rate_due(struct log_rate *r, uint64_t now_ms, uint64_t every,
                                uint64_t *skipped) {
  if (r->last_ms != 0 && now_ms - r->last_ms < every) {
    r->skipped++;
    return false;
  }
  *skipped = r->skipped;
  r->skipped = 0;
  r->last_ms = now_ms ? now_ms : 1;
  return true;
}

#endif
