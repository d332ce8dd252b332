/* deadline: per-kind lists under one timer. Each test runs a real loop,
 * checks what expired and in which order, and ends with every handle
 * closed (uv_loop_close() == 0). */
#include <criterion/criterion.h>
#include <uv.h>

#include "ferry/deadline.h"
#include "ferry/slice.h"

struct member {
  struct deadline_link l;
  int id;
};

struct run {
  struct deadlines d;
  int order[16];
  unsigned kinds[16];
  int n;
  struct member *rearm; /* expire sets this one to kind 2 once */
};

static void on_expire(struct deadlines *d, struct deadline_link *l, unsigned kind) {
  struct run *r = container_of(d, struct run, d);
  struct member *m = container_of(l, struct member, l);
  r->kinds[r->n] = kind;
  r->order[r->n++] = m->id;
  if (r->rearm == m) {
    r->rearm = NULL;
    deadline_set(d, l, 2);
  }
}

static void finish(uv_loop_t *loop, struct run *r) {
  deadlines_close(&r->d);
  uv_run(loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(loop), 0, "no handle left behind");
}

Test(deadline, members_expire_in_deadline_order_across_kinds) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct run r = {0};
  deadlines_init(&r.d, &loop, 3, on_expire);
  deadlines_configure(&r.d, 1, 30);
  deadlines_configure(&r.d, 2, 5);
  struct member m[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
  for (int i = 0; i < 4; i++)
    deadline_add(&r.d, &m[i].l);
  deadline_set(&r.d, &m[0].l, 1); /* 30 ms */
  deadline_set(&r.d, &m[1].l, 2); /* 5 ms */
  deadline_set(&r.d, &m[2].l, 1); /* 30 ms, after m0 */
  /* m3 stays without a deadline */
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.order[0], 1);
  cr_assert_eq(r.kinds[0], 2u);
  cr_assert_eq(r.order[1], 0);
  cr_assert_eq(r.order[2], 2);
  for (int i = 0; i < 4; i++)
    deadline_remove(&m[i].l);
  finish(&loop, &r);
}

Test(deadline, a_shortened_duration_inserts_inside_the_list_in_order) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct run r = {0};
  deadlines_init(&r.d, &loop, 2, on_expire);
  deadlines_configure(&r.d, 1, 60);
  struct member a = {.id = 0}, b = {.id = 1};
  deadline_add(&r.d, &a.l);
  deadline_add(&r.d, &b.l);
  deadline_set(&r.d, &a.l, 1);
  deadlines_configure(&r.d, 1, 5); /* a reload shortens the kind */
  deadline_set(&r.d, &b.l, 1);
  cr_assert_eq(r.d.lists[1].next, &b.l, "b, due first, is first");
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.order[0], 1);
  cr_assert_eq(r.order[1], 0);
  deadline_remove(&a.l);
  deadline_remove(&b.l);
  finish(&loop, &r);
}

Test(deadline, a_duration_of_its_own_expires_in_order_within_its_kind) {
  /* a route's timeout: one kind, members with different durations */
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct run r = {0};
  deadlines_init(&r.d, &loop, 2, on_expire);
  deadlines_configure(&r.d, 1, 60);
  struct member a = {.id = 0}, b = {.id = 1}, c = {.id = 2};
  deadline_add(&r.d, &a.l);
  deadline_add(&r.d, &b.l);
  deadline_add(&r.d, &c.l);
  deadline_set(&r.d, &a.l, 1);        /* 60 ms, the kind's */
  deadline_set_ms(&r.d, &b.l, 1, 5);  /* 5 ms, its own */
  deadline_set_ms(&r.d, &c.l, 1, 20); /* 20 ms */
  cr_assert_eq(r.d.lists[1].next, &b.l, "the shortest is first");
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(r.order[0], 1);
  cr_assert_eq(r.order[1], 2);
  cr_assert_eq(r.order[2], 0);
  deadline_remove(&a.l);
  deadline_remove(&b.l);
  deadline_remove(&c.l);
  finish(&loop, &r);
}

Test(deadline, a_cleared_deadline_never_fires_and_expire_may_set_a_new_one) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct run r = {0};
  deadlines_init(&r.d, &loop, 3, on_expire);
  deadlines_configure(&r.d, 1, 5);
  deadlines_configure(&r.d, 2, 5);
  struct member a = {.id = 0}, b = {.id = 1};
  deadline_add(&r.d, &a.l);
  deadline_add(&r.d, &b.l);
  deadline_set(&r.d, &a.l, 1);
  deadline_set(&r.d, &b.l, 1);
  deadline_set(&r.d, &b.l, 0); /* cleared: the armed timer finds nothing for it */
  r.rearm = &a;
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(r.n, 2, "a expired twice (kind 1, then kind 2), b never");
  cr_assert_eq(r.order[0], 0);
  cr_assert_eq(r.kinds[0], 1u);
  cr_assert_eq(r.order[1], 0);
  cr_assert_eq(r.kinds[1], 2u);
  deadline_remove(&a.l);
  deadline_remove(&b.l);
  deadlines_quiesce(&r.d);
  cr_assert(!uv_is_active((uv_handle_t *)&r.d.timer), "quiesced timer is stopped");
  finish(&loop, &r);
}
