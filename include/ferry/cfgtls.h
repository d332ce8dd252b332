/* cfgtls: the `tls` sections of proxy.yaml (see src/cfgtls.c). */
#ifndef FERRY_CFGTLS_H
#define FERRY_CFGTLS_H

#include "ferry/config.h"
#include "ferry/ydoc.h"

/* listeners[i].tls at n: the keys, then the server contexts (files read);
 * problems reported at their keys. */
void cfgtls_listener(struct ydoc *y, const struct ynode *n, const char *path,
                     struct cfg_listener *l);
/* upstreams.NAME.tls at n: the keys, then the client context. */
void cfgtls_upstream(struct ydoc *y, const struct ynode *n, const char *path,
                     struct cfg_upstream *up);
/* Free what cfgtls_listener allocated (NULL is fine). */
void cfgtls_free(struct cfg_tls *t);

#endif
