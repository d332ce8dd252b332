/* watch: `ferry --watch`: notice when the configuration file's content
 * changes.
 *
 * Watches the directory of the path as given (where a Kubernetes ConfigMap
 * volume swaps its `..data` symlink atomically, and where editors rename a
 * new file over the old one) and, when the path is a symlink, the directory
 * of the file it resolves to (an edit in place there). Events are settled
 * for WATCH_SETTLE_MS (a swap is several steps), then the file's content is
 * hashed; only a hash different from the last one calls changed(). A touch,
 * or a swap to identical content, calls nothing.
 *
 * Owns its two fs-event handles and its timer. Must not touch the
 * configuration or the workers: the caller's changed() reloads. Main
 * thread (the loop given) only. */
#ifndef FERRY_WATCH_H
#define FERRY_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define WATCH_SETTLE_MS 100u

struct watch;
typedef void (*watch_fn)(struct watch *w);

struct watch {
  uv_loop_t *loop;
  char *path;   /* as given */
  char *dir;    /* its directory */
  char *target; /* the directory of what it resolves to, when elsewhere; else NULL */
  uv_fs_event_t ev_dir, ev_target;
  uv_timer_t settle;
  bool target_on;
  uint64_t hash; /* of the content last seen (0 with have_hash false: unreadable) */
  bool have_hash;
  watch_fn changed;
  void *data;
};

/* FNV-1a (64 bits) of the file's content, following symlinks. 0, or a
 * negative uv error (missing, unreadable). */
int watch_file_hash(const char *path, uint64_t *out);
/* Start watching path; the current content is the baseline. 0, or a
 * negative uv error with a sentence in err. */
int watch_start(struct watch *w, uv_loop_t *loop, const char *path, watch_fn changed, void *data,
                char *err, size_t errlen);
/* Close the handles (uv_close; the loop finishes it). */
void watch_close(struct watch *w);

#endif
