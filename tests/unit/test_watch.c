/* watch: the content hash, and a change seen on a real loop. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/watch.h"

static char dir[64];
static char path[128];

static void put(const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  strcpy(dir, "/tmp/ferry-watch-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/proxy.yaml", dir);
}

static void teardown(void) {
  unlink(path);
  rmdir(dir);
}

TestSuite(watch, .init = setup, .fini = teardown);

Test(watch, hash_follows_the_content_only) {
  uint64_t a, b, c;
  put("workers: 1\n");
  cr_assert_eq(watch_file_hash(path, &a), 0);
  put("workers: 1\n");
  cr_assert_eq(watch_file_hash(path, &b), 0);
  cr_assert_eq(a, b, "same content, same hash");
  put("workers: 2\n");
  cr_assert_eq(watch_file_hash(path, &c), 0);
  cr_assert_neq(a, c, "one byte changed");
}

Test(watch, hash_of_a_missing_file_is_an_error) {
  uint64_t h;
  cr_assert_eq(watch_file_hash("/nonexistent-dir/proxy.yaml", &h), UV_ENOENT);
}

struct run {
  struct watch w;
  uv_timer_t guard, step;
  int steps;      /* writes done */
  int changes;    /* changed() calls */
  int steps_seen; /* steps when changed() was called */
};

static void on_changed(struct watch *w) {
  struct run *r = w->data;
  r->changes++;
  r->steps_seen = r->steps;
  watch_close(&r->w);
  uv_close((uv_handle_t *)&r->guard, NULL);
  uv_close((uv_handle_t *)&r->step, NULL);
}

static void on_guard(uv_timer_t *t) {
  struct run *r = t->data;
  watch_close(&r->w);
  uv_close((uv_handle_t *)&r->guard, NULL);
  uv_close((uv_handle_t *)&r->step, NULL);
}

/* first a touch (same content), then a real change */
static void on_step(uv_timer_t *t) {
  struct run *r = t->data;
  if (r->steps++ == 0) {
    put("workers: 1\n");
    uv_timer_start(t, on_step, 3 * WATCH_SETTLE_MS, 0);
  } else {
    put("workers: 3\n");
  }
}

Test(watch, a_rewrite_with_the_same_content_is_ignored_and_a_change_is_reported) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  put("workers: 1\n");
  struct run r = {0};
  char err[256];
  cr_assert_eq(watch_start(&r.w, &loop, path, on_changed, &r, err, sizeof(err)), 0, "%s", err);
  uv_timer_init(&loop, &r.guard);
  uv_timer_init(&loop, &r.step);
  r.guard.data = r.step.data = &r;
  uv_timer_start(&r.guard, on_guard, 5000, 0);
  uv_timer_start(&r.step, on_step, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(r.changes, 1, "one change reported");
  cr_assert_eq(r.steps_seen, 2, "reported after the real change, not the same-content rewrite");
  cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}
