/* har: the inspector's captured exchanges as HAR 1.2 (HTTP Archive), the
 * format browsers' developer tools and other HTTP tools import.
 *
 * A pure renderer over struct inspect_rec (src/inspect.c): it runs on the
 * admin thread for /inspect/har and reads records only. Redaction already
 * happened when a record was captured, so the archive never holds a
 * redacted value. */
#ifndef FERRY_HAR_H
#define FERRY_HAR_H

#include "ferry/insprec.h"

/* {"log":{"version":"1.2","creator":{"name":"ferry","version":...},
 * "pages":[],"entries":[...]}}: the newest f->limit records that pass f,
 * oldest first. Each entry has the request as the client sent it and the
 * response as ferry returned it (HAR's view from the client), the
 * timings, and a "_ferry" object with the route, upstream, server and the
 * two heads on the upstream side. */
void har_render(struct inspect_out *o, const struct inspect_store *st,
                const struct inspect_filter *f);
/* One entry object. */
void har_render_entry(struct inspect_out *o, const struct inspect_rec *r);

#endif
