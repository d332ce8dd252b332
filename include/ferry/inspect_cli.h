/* inspect_cli: `ferry inspect`, the inspector in a terminal.
 *
 * Follows a running ferry's /inspect/stream on its admin listener and
 * prints each captured exchange: the request as the client sent it and as
 * ferry forwarded it, the response as the upstream sent it and as ferry
 * returned it, with what ferry added (+), removed (-) or changed (~)
 * marked, in colour when stdout is a terminal (NO_COLOR turns colour off).
 * With --har FILE it saves the captured exchanges as HAR 1.2 instead.
 * A plain blocking client: it runs in its own process, never in a worker. */
#ifndef FERRY_INSPECT_CLI_H
#define FERRY_INSPECT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* argv[0] is "inspect". Returns the process exit code: 1 for usage or a
 * configuration error (including a --route that names no route or
 * upstream of the configuration), 2 when the admin listener cannot be
 * reached or refuses; with --har FILE, 0 once the file is written;
 * following the stream never returns 0 (it runs until interrupted or the
 * stream ends, which is 2). */
int inspect_cli_main(int argc, char **argv);

/* Print one exchange given as the JSON text of an /inspect/stream event.
 * Returns 0, or -1 when json is not an exchange object. Exposed for tests. */
int inspect_cli_print(FILE *out, const char *json, size_t len, bool colour);

#endif
