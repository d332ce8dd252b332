/* cfgroute: the `routes` section of the configuration (SPEC §2), read from
 * ydoc nodes into struct cfg_route. Only config.c calls it. */
#ifndef FERRY_CFGROUTE_H
#define FERRY_CFGROUTE_H

#include <stdbool.h>

#include "ferry/config.h"
#include "ferry/ydoc.h"

/* Reads routes (n: the value of `routes`, NULL when absent) into
 * cfg->routes, resolving each `upstream:` against cfg->upstreams, which must
 * already be loaded; upstreams_bad: the upstreams section was unreadable, so
 * unknown upstream names are not reported. Problems go to y. */
void cfgroute_load(struct ydoc *y, struct config *cfg, bool upstreams_bad, const struct ynode *n);

#endif
