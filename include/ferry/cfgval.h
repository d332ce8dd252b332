/* cfgval: typed values of the configuration, read from ydoc nodes.
 *
 * Each cfgval_* reader takes the value node of a key (NULL when the key is
 * absent) and its key path. Absent: returns false and leaves *out alone.
 * Present and valid: stores *out and returns true. Present and invalid:
 * reports an error at the node's FILE:LINE:COL and returns false, *out
 * untouched. Y_BAD nodes return false silently.
 *
 * Only the configuration loader (config.c, cfgroute.c) uses it. The public
 * parsers config_parse_duration_ms, config_parse_size and
 * config_parse_listen_address (declared in config.h) are defined in
 * cfgval.c too. */
#ifndef FERRY_CFGVAL_H
#define FERRY_CFGVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ferry/ydoc.h"

#define CFGVAL_HOST_MAX 256 /* bytes of a host name, with its NUL */

/* "expected EXPECTED, found ..." at n. */
void cfgval_err_type(struct ydoc *c, const struct ynode *n, const char *path, const char *expected);

/* Any non-empty scalar, as text (owned by the node). NUL bytes are refused. */
bool cfgval_text(struct ydoc *c, const struct ynode *n, const char *path, const char **out);
/* The same, copied into *out (the old value freed). */
bool cfgval_str(struct ydoc *c, const struct ynode *n, const char *path, char **out);
bool cfgval_bool(struct ydoc *c, const struct ynode *n, const char *path, bool *out);
bool cfgval_int(struct ydoc *c, const struct ynode *n, const char *path, int64_t min, int64_t max,
                int64_t *out);
bool cfgval_u32(struct ydoc *c, const struct ynode *n, const char *path, uint32_t min, uint32_t max,
                uint32_t *out);
/* Milliseconds, at least min_ms. */
bool cfgval_duration(struct ydoc *c, const struct ynode *n, const char *path, uint64_t min_ms,
                     uint64_t *out);
/* Bytes in min..max. */
bool cfgval_size(struct ydoc *c, const struct ynode *n, const char *path, uint64_t min,
                 uint64_t max, uint64_t *out);
/* One of names[0..count), stored as its index. */
bool cfgval_enum(struct ydoc *c, const struct ynode *n, const char *path, const char *const *names,
                 size_t count, int *out);
/* A list: true with its item count (0 for an empty value). */
bool cfgval_seq(struct ydoc *c, const struct ynode *n, const char *path, size_t *count);
/* A mapping: true with its number of pairs (0 for an empty value). */
bool cfgval_map(struct ydoc *c, const struct ynode *n, const char *path, size_t *pairs);
/* Checks key i of a mapping: a scalar, not equal to an earlier key (ASCII
 * case ignored when nocase). noun names the key in messages. Returns true
 * when the pair should be used; false (reported) otherwise. */
bool cfgval_key_ok(struct ydoc *c, const struct ynode *map, size_t i, const char *path, bool nocase,
                   const char *noun);
/* Reads a mapping with a fixed set of keys. keys[] is NULL-terminated;
 * vals[i] and knodes[i] receive the value and key node of keys[i], or NULL.
 * Unknown and duplicate keys are reported (with a suggestion) and skipped;
 * an empty value is read as an empty mapping. Returns false when n is not a
 * mapping (reported unless n is Y_BAD). */
bool cfgval_fields(struct ydoc *c, const struct ynode *n, const char *path, const char *const *keys,
                   const struct ynode **vals, const struct ynode **knodes);
/* Path-like values: must start with '/', no spaces or control characters;
 * with no_query also no '?' or '#'. Reports and returns false otherwise. */
bool cfgval_path(struct ydoc *c, const struct ynode *n, const char *path, const char *s,
                 bool no_query);
/* A listener or admin address value: copied to *text, parsed into *addr. */
bool cfgval_listen_address(struct ydoc *c, const struct ynode *n, const char *path, char **text,
                           struct sockaddr_storage *addr);

/* Value syntax, no diagnostics. */
/* Decimal integer with an optional sign. 1: ok; 0: not an integer;
 * -1: an integer too large for int64_t. */
int cfgval_parse_int(const char *s, int64_t *out);
bool cfgval_is_token(const char *s);
/* No control characters but HTAB: safe inside a header line. */
bool cfgval_is_field_value(const char *s);
bool cfgval_has_space_or_ctl(const char *s);
/* Letters, digits, '-', '.', '_'; not empty. */
bool cfgval_is_host_name(const char *s);
/* Splits "host:port", "[v6]:port" or ":port". host receives the host
 * without brackets (possibly empty), *bracketed whether it had them. Returns
 * 0, or -1 with a reason in err. */
int cfgval_split_host_port(const char *s, char *host, size_t hostsize, uint16_t *port,
                           bool *bracketed, char *err, size_t errlen);
bool cfgval_same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

struct cidr;
/* A sequence of address ranges ("10.0.0.0/8", "::1") into *list
 * (allocated, *count parsed); each bad one is an error. */
void cfgval_cidrs(struct ydoc *c, const struct ynode *n, const char *path, struct cidr **list,
                  size_t *count);

#endif
