/* log: the error log, one line per event on stderr:
 *   2026-11-25T08:00:00.123Z error ferry: message
 * The level is chosen once at start (log_set_level) before any worker
 * thread runs; each line is written with a single write(2). */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

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

#endif
