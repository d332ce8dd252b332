/* watch: reload-on-change for `ferry --watch` (see include/ferry/watch.h).
 * libuv fs events (inotify) on directories, a settle timer, and a content
 * hash; nothing else. */
#include "ferry/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/log.h"

int watch_file_hash(const char *path, uint64_t *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  uint64_t h = 14695981039346656037ull;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int e = errno;
      close(fd);
      return -e;
    }
    for (ssize_t i = 0; i < n; i++) {
      h ^= (unsigned char)buf[i];
      h *= 1099511628211ull;
    }
  }
  close(fd);
  *out = h;
  return 0;
}

/* The directory part of p ("." when there is none), malloc'd. */
static char *dir_of(const char *p) {
  const char *slash = strrchr(p, '/');
  if (!slash)
    return strdup(".");
  if (slash == p)
    return strdup("/");
  return strndup(p, (size_t)(slash - p));
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status);

/* Watch the directory of what path resolves to, when it is not dir. */
static void retarget(struct watch *w) {
  char real[PATH_MAX];
  char *t = realpath(w->path, real) ? dir_of(real) : NULL;
  char dreal[PATH_MAX];
  bool same = t && realpath(w->dir, dreal) && strcmp(dreal, t) == 0;
  if (t && !same && w->target && strcmp(t, w->target) == 0) {
    free(t);
    return; /* unchanged */
  }
  if (w->target_on) {
    uv_fs_event_stop(&w->ev_target);
    w->target_on = false;
  }
  free(w->target);
  w->target = NULL;
  if (!t || same) {
    free(t);
    return;
  }
  w->target = t;
  if (uv_fs_event_start(&w->ev_target, on_event, w->target, 0) == 0)
    w->target_on = true;
}

static void on_settled(uv_timer_t *t) {
  struct watch *w = t->data;
  retarget(w);
  uint64_t h;
  int r = watch_file_hash(w->path, &h);
  if (r < 0) {
    log_debug("watch: %s: %s; waiting for it to come back", w->path, uv_strerror(r));
    return;
  }
  if (w->have_hash && h == w->hash) {
    log_debug("watch: %s: content unchanged, not reloading", w->path);
    return;
  }
  w->hash = h;
  w->have_hash = true;
  w->changed(w);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  (void)filename;
  (void)events;
  struct watch *w = h->data;
  if (status < 0) {
    log_warn("watch: %s: %s (changes may go unnoticed; send SIGHUP to reload)", w->path,
             uv_strerror(status));
    return;
  }
  uv_timer_start(&w->settle, on_settled, WATCH_SETTLE_MS, 0);
}

int watch_start(struct watch *w, uv_loop_t *loop, const char *path, watch_fn changed, void *data,
                char *err, size_t errlen) {
  memset(w, 0, sizeof(*w));
  w->loop = loop;
  w->changed = changed;
  w->data = data;
  w->path = strdup(path);
  w->dir = dir_of(path);
  if (!w->path || !w->dir) {
    free(w->path);
    free(w->dir);
    snprintf(err, errlen, "out of memory");
    return UV_ENOMEM;
  }
  w->have_hash = watch_file_hash(path, &w->hash) == 0;
  uv_fs_event_init(loop, &w->ev_dir);
  uv_fs_event_init(loop, &w->ev_target);
  uv_timer_init(loop, &w->settle);
  w->ev_dir.data = w->ev_target.data = w->settle.data = w;
  int r = uv_fs_event_start(&w->ev_dir, on_event, w->dir, 0);
  if (r < 0) {
    snprintf(err, errlen,
             "--watch: cannot watch %s: %s (check the directory exists; with many watches, raise "
             "fs.inotify.max_user_watches)",
             w->dir, uv_strerror(r));
    watch_close(w);
    return r;
  }
  retarget(w);
  return 0;
}

void watch_close(struct watch *w) {
  if (!w->path)
    return;
  uv_close((uv_handle_t *)&w->ev_dir, NULL);
  uv_close((uv_handle_t *)&w->ev_target, NULL);
  uv_close((uv_handle_t *)&w->settle, NULL);
  free(w->path);
  free(w->dir);
  free(w->target);
  w->path = w->dir = w->target = NULL;
}
