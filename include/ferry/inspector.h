/* inspector: the inspector's surfaces on the admin listener.
 *
 *   GET  /inspect                      the page (self-contained HTML)
 *   GET  /inspect/requests?limit=N&route=R&status=S&path=P&filter=EXPR
 *                                      JSON, newest first (EXPR: src/filter.h;
 *                                      every surface below takes the same)
 *   GET  /inspect/requests/ID          one exchange as JSON
 *   POST /inspect/requests/ID/replay[?method=&target=&h=&body=]
 *                                      resend a captured request (edited) through
 *                                      ferry's listener (admin.replay only)
 *   GET  /inspect/stream[?route=&status=&path=&heartbeat=MS]  Server-Sent Events
 *   GET  /inspect/har?limit=N&route=R&status=S&path=P  HAR 1.2 (src/har.c)
 *
 * Owns the record store (src/inspect.c), the stream clients and replay
 * connections, all on the admin thread. Workers only call inspector_post.
 *
 * Lifetime (main thread): inspector_new after admin_new and before
 * admin_start; inspector_free after admin_join. */
#ifndef FERRY_INSPECTOR_H
#define FERRY_INSPECTOR_H

#include "ferry/admin.h"
#include "ferry/config.h"

struct inspector;
struct inspect_rec;

/* Registers the routes and a stop hook on a. NULL on out of memory. cfg
 * must outlive the inspector. */
struct inspector *inspector_new(const struct config *cfg, struct admin *a);
/* Any thread: hand over a list of records linked by rec->next (ownership
 * passes, even on failure: then they are freed). */
void inspector_post(struct inspector *in, struct inspect_rec *list);
/* Whether workers get the inspector (admin on and inspect_keep > 0). Which
 * exchanges are captured is decided per exchange (inspect_wanted), so a
 * reload that sets inspect: true on a route takes effect. */
bool inspector_wanted(const struct config *cfg);
void inspector_free(struct inspector *in);

#endif
