/* deadline: one worker's deadlines, a list per kind under one timer.
 *
 * Owns the lists' order and the timer; the objects with deadlines (client
 * sessions) own their links and say what an expiry means through the
 * expire callback. Every member of one kind has the same duration, so a
 * new deadline normally goes at its list's tail and arming is O(1); a
 * reload that shortens a kind's duration is the only case that inserts
 * inside a list. The timer re-arms lazily: one already due no later than
 * a new deadline stays armed. Kind 0 means "no deadline": its list holds
 * the members that have none (so every member is in exactly one list).
 * Must not know what a member is. Worker thread only. */
#ifndef FERRY_DEADLINE_H
#define FERRY_DEADLINE_H

#include <stdint.h>
#include <uv.h>

#define DEADLINE_MAX_KINDS 12

struct deadline_link {
  struct deadline_link *next, *prev;
  uint64_t due; /* loop ms; the list heads have 0 */
};

struct deadlines;
/* l's deadline of kind passed; l is already on the kind-0 list. The
 * callback may set any deadline, on l or others, or unlink l. */
typedef void (*deadline_expire_fn)(struct deadlines *d, struct deadline_link *l, unsigned kind);

struct deadlines {
  uv_loop_t *loop;
  struct deadline_link lists[DEADLINE_MAX_KINDS]; /* circular, through the head */
  uint64_t ms[DEADLINE_MAX_KINDS];                /* each kind's duration */
  unsigned nkinds;
  uv_timer_t timer;
  uint64_t fire; /* when the armed timer fires (UINT64_MAX: not armed) */
  deadline_expire_fn expire;
};

/* Set up d on loop (the timer handle is initialised); durations set
 * with deadlines_configure before or after are kept. */
void deadlines_init(struct deadlines *d, uv_loop_t *loop, unsigned nkinds, deadline_expire_fn fn);
/* A kind's duration (ms, >= 1 for kinds > 0). Deadlines already set keep
 * their time. */
static inline void deadlines_configure(struct deadlines *d, unsigned kind, uint64_t ms) {
  d->ms[kind] = ms;
}
/* Add l, not yet in any list, with no deadline (kind 0). */
void deadline_add(struct deadlines *d, struct deadline_link *l);
/* The rare paths of deadline_set_ms, out of line (deadline.c): insert n
 * (due set) in order inside list l; arm the timer for due, ms from now,
 * earlier than it was. */
void deadline_insert_inside(struct deadline_link *l, struct deadline_link *n);
void deadline_arm(struct deadlines *d, uint64_t due, uint64_t ms);

static inline void deadline_link_after(struct deadline_link *at, struct deadline_link *n) {
  n->prev = at;
  n->next = at->next;
  at->next->prev = n;
  at->next = n;
}

/* Move l to kind's list, due ms from now (kind 0: none): a member due
 * before the list's tail (a route's `timeout`) is inserted in order,
 * O(list) then. Inline: every request moves through several deadlines,
 * and the common case is an unlink and an append. */
static inline void deadline_set_ms(struct deadlines *d, struct deadline_link *n, unsigned kind,
                                   uint64_t ms) {
  struct deadline_link *l = &d->lists[kind];
  n->prev->next = n->next;
  n->next->prev = n->prev;
  if (kind == 0) { /* an armed timer fires and finds nothing to do */
    deadline_link_after(l->prev, n);
    return;
  }
  /* The loop's cached time, read as uv_now() returns it without a call. */
  uint64_t due = d->loop->time + ms;
  n->due = due;
  if (l->prev->due <= due)
    deadline_link_after(l->prev, n);
  else
    deadline_insert_inside(l, n);
  if (due < d->fire)
    deadline_arm(d, due, ms);
}
/* The same with kind's duration. */
static inline void deadline_set(struct deadlines *d, struct deadline_link *l, unsigned kind) {
  deadline_set_ms(d, l, kind, d->ms[kind]);
}
/* Take l out of every list (the member is going away). */
void deadline_remove(struct deadline_link *l);
/* Stop the timer when no deadline is left (a stopping worker's loop must
 * not be kept alive by it). */
void deadlines_quiesce(struct deadlines *d);
/* Close the timer handle (after the loop stopped serving). */
void deadlines_close(struct deadlines *d);

#endif
