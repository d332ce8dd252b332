/* filter: mitmproxy-like filter expressions over captured exchanges, for
 * the inspector page, the filter= parameter of /inspect/requests, /stream and /har, and `ferry
 * inspect --filter`.
 *
 *   ~h REGEX    a header line "Name: value" of any of the four heads
 *               (~h X-Env: prod needs no quotes: a word ending in ':'
 *               takes the next word with it)
 *   ~hq REGEX   a request header line (as sent or as forwarded)
 *   ~hs REGEX   a response header line (as the upstream sent it or as
 *               ferry returned it)
 *   ~c REGEX    the status, whole ("~c 404", "~c 5..", "~c 30[12]")
 *   ~m REGEX    the method, whole ("~m POST", "~m (PUT|PATCH)")
 *   ~u REGEX    the URL "http://host/target"
 *   ~d REGEX    the host
 *   ~t REGEX    the response Content-Type
 *   ~b REGEX    a captured body (admin.inspect_body_bytes); ~bq / ~bs
 *   ~r NAME     the route: its index or its upstream's name, whole
 *   ~e          the exchange ended with an error or was cut short
 *   ~s          an upstream answered (not one of ferry's own replies)
 *   !X  X & Y  X Y (also "and")  X | Y  ( X )
 * Precedence: ! binds tightest, then &, then |. Regexes are POSIX extended
 * and case-insensitive; ~c, ~m and ~r match the whole value, the others
 * anywhere in it. A regex with spaces, or with | & ) outside parentheses
 * of its own, is quoted: "..." or '...' (backslash escapes the quote);
 * "~m (PUT|POST)" needs no quotes.
 *
 * Pure: compiling allocates one tree; matching allocates nothing and only
 * reads the record. */
#ifndef FERRY_FILTER_H
#define FERRY_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "ferry/inspect.h"

struct filter;

/* Compile expr. NULL with a sentence in err ("at column 4: ...") for a
 * malformed expression, an unknown ~ operator or a bad regex, or when out
 * of memory. */
struct filter *filter_compile(const char *expr, char *err, size_t errlen);
bool filter_match(const struct filter *f, const struct inspect_rec *r);
void filter_free(struct filter *f);

#endif
