/* snapshot: one published configuration, shared read-only by every worker.
 *
 * A snapshot bundles what a reload replaces at once: the configuration,
 * its compiled router and the process-wide upstream pools. It is
 * reference-counted with atomics: main holds one reference on the current
 * snapshot, each worker one per configuration generation it still uses
 * (held while any exchange may use it). The last unref does not free:
 * it pushes the snapshot on the reaper's lock-free stack and wakes main,
 * which frees it (joining the upstream monitor thread is not for a worker
 * thread to do).
 *
 * When a reload leaves every upstream definition unchanged, the new
 * snapshot shares the old one's pools (keep-alive connections, health and
 * ejection state survive the reload): ups_owner then points at the
 * snapshot whose configuration the pools were built from, and holds a
 * reference on it. */
#ifndef FERRY_SNAPSHOT_H
#define FERRY_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct config;
struct router;
struct upstreams;
struct traffic;

struct snapshot_reaper {
  _Atomic(struct snapshot *) head; /* snapshots whose count reached 0 */
  uv_async_t *wake;                /* main loop; NULL: free at once */
};

struct snapshot {
  _Atomic unsigned refs;
  uint64_t gen; /* 1 for the configuration ferry started with, +1 per reload */
  struct config *cfg;
  bool owns_cfg; /* false for the start-up configuration: main frees it last */
  struct router *router;
  struct upstreams *ups;      /* owned unless ups_owner is set */
  struct snapshot *ups_owner; /* the snapshot the shared pools belong to */
  struct traffic *traffic;    /* routes' split order and rate buckets (src/traffic.c) */
  struct snapshot_reaper *reaper;
  struct snapshot *reap_next;
};

/* Take ownership of cfg, router and (when owner is NULL) ups; with an
 * owner, ups is owner's and a reference on owner is taken. refs starts at
 * 1. NULL on out of memory (nothing is taken then). The start-up snapshot
 * is then marked owns_cfg = false by main, which keeps that configuration
 * (the admin listener and inspector use it) until exit. */
struct snapshot *snapshot_new(struct config *cfg, struct router *router, struct upstreams *ups,
                              struct snapshot *owner, struct snapshot_reaper *reaper, uint64_t gen);
/* Main thread, at start (prev NULL) and on every reload: compile cfg's
 * router and build its upstream pools, or share prev's when
 * snapshot_upstreams_equal(prev->cfg, cfg) (keep-alive connections, health
 * and ejections survive); rebuilt pools inherit prev's health and ejection
 * state of addresses they keep. Returns the snapshot (refs 1, generation
 * gen) owning cfg, or NULL with a message in err (what failed and what to
 * do) and cfg still the caller's. */
struct snapshot *snapshot_build(struct config *cfg, struct snapshot *prev,
                                struct snapshot_reaper *reaper, uint64_t gen, char *err,
                                size_t errlen);
/* Any thread. */
void snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);
/* Main thread: free every snapshot handed to the reaper. */
void snapshot_reap(struct snapshot_reaper *r);

/* True when the two configurations define the same upstreams in the same
 * order with the same settings, so their pools may be shared. Pure. */
bool snapshot_upstreams_equal(const struct config *a, const struct config *b);

#endif
