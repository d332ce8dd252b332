/* deadline: per-kind deadline lists under one timer (see deadline.h).
 *
 * Owns only the list order and the timer; what expires is the owner's
 * business (the expire callback). */
#include "ferry/deadline.h"

#include "ferry/slice.h"

void deadline_remove(struct deadline_link *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

/* Insert n (due set) into list l in deadline order when the tail is due
 * later than n (a reload shortened the kind's duration). The place is
 * searched from both ends at once; equal deadlines keep their order. */
__attribute__((noinline)) void deadline_insert_inside(struct deadline_link *l,
                                                      struct deadline_link *n) {
  uint64_t due = n->due;
  struct deadline_link *after = l->prev->prev; /* from the tail: n goes after it... */
  struct deadline_link *before = l->next;      /* from the head: ...or before it */
  /* The head has due 0 and the tail is due later than n: both walks stop. */
  while (after->due > due && before->due <= due) {
    after = after->prev;
    before = before->next;
  }
  if (after->due > due)
    after = before->prev;
  deadline_link_after(after, n);
}

static void on_timer(uv_timer_t *t);

/* Arm the timer for due (ms from now), earlier than it was. */
__attribute__((noinline)) void deadline_arm(struct deadlines *d, uint64_t due, uint64_t ms) {
  d->fire = due;
  uv_timer_start(&d->timer, on_timer, ms, 0);
}

/* Arm for the earliest deadline unless the timer is already due by then. */
static void rearm(struct deadlines *d, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (unsigned k = 1; k < d->nkinds; k++) {
    const struct deadline_link *l = &d->lists[k];
    if (l->next != l && l->next->due < next)
      next = l->next->due;
  }
  if (next < d->fire)
    deadline_arm(d, next, next > now ? next - now : 0);
}

static void on_timer(uv_timer_t *t) {
  struct deadlines *d = container_of(t, struct deadlines, timer);
  uint64_t now = uv_now(d->loop);
  d->fire = UINT64_MAX;
  /* Callbacks only add deadlines at least 1 ms ahead (durations are
   * >= 1 ms), so each list drains. */
  for (unsigned k = 1; k < d->nkinds; k++) {
    struct deadline_link *l = &d->lists[k];
    while (l->next != l && l->next->due <= now) {
      struct deadline_link *n = l->next;
      deadline_remove(n);
      deadline_link_after(d->lists[0].prev, n);
      d->expire(d, n, k);
    }
  }
  rearm(d, now);
}

void deadlines_init(struct deadlines *d, uv_loop_t *loop, unsigned nkinds, deadline_expire_fn fn) {
  d->loop = loop;
  d->nkinds = nkinds;
  d->expire = fn;
  for (unsigned k = 0; k < DEADLINE_MAX_KINDS; k++)
    d->lists[k] = (struct deadline_link){&d->lists[k], &d->lists[k], 0};
  d->fire = UINT64_MAX;
  uv_timer_init(loop, &d->timer);
}

void deadline_add(struct deadlines *d, struct deadline_link *l) {
  deadline_link_after(d->lists[0].prev, l);
}

void deadlines_quiesce(struct deadlines *d) {
  for (unsigned k = 1; k < d->nkinds; k++)
    if (d->lists[k].next != &d->lists[k])
      return;
  uv_timer_stop(&d->timer);
  d->fire = UINT64_MAX;
}

void deadlines_close(struct deadlines *d) {
  if (!uv_is_closing((uv_handle_t *)&d->timer))
    uv_close((uv_handle_t *)&d->timer, NULL);
}
