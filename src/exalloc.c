/* exalloc: where exchanges come from: each worker's free list of them,
 * and the reference each one holds on the configuration generation it
 * began on (wctx_gen_hold / wctx_gen_drop). Owns only the free list; the
 * exchange's contents are src/exchange.c's. Its functions keep the
 * exchange_ names they are declared under in exchange.h. */
#include <stdlib.h>

#include "ferry/exchange.h"
#include "ferry/wctx.h"

/* Free exchanges kept per worker; more are freed. */
#define EXCHANGE_FREE_MAX 64u

struct exchange *exchange_new(struct worker *w) {
  struct exchange *ex = w->free_ex;
  if (ex) {
    w->free_ex = *(struct exchange **)(void *)ex;
    w->nfree_ex--;
  } else {
    ex = malloc(sizeof(struct exchange));
    if (!ex)
      return NULL;
  }
  ex->gen = wctx_gen_hold(w);
  return ex;
}

void exchange_free(struct worker *w, struct exchange *ex) {
  struct worker_gen *g = ex->gen;
  ex->gen = NULL;
  if (w->nfree_ex >= EXCHANGE_FREE_MAX) {
    free(ex);
  } else {
    *(struct exchange **)(void *)ex = w->free_ex;
    w->free_ex = ex;
    w->nfree_ex++;
  }
  if (g)
    wctx_gen_drop(w, g); /* may retire a generation: last */
}

void exchange_free_all(struct worker *w) {
  while (w->free_ex) {
    struct exchange *ex = w->free_ex;
    w->free_ex = *(struct exchange **)(void *)ex;
    free(ex);
  }
  w->nfree_ex = 0;
}
