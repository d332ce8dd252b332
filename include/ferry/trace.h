/* trace: W3C Trace Context `traceparent` values (SPEC §3).
 *
 * Pure: parsing a client's traceparent and writing the one ferry sends,
 * with ferry's own span id as the new parent id. Ids are lower-case hex
 * text. No state: the caller supplies the random bits. */
#ifndef FERRY_TRACE_H
#define FERRY_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry/slice.h"

#define TRACE_PARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

/* A valid traceparent (version 00 exactly 55 characters; a later version
 * at least that, followed by "-" when longer; never version ff; trace id
 * and parent id not all zero; lower-case hex only): true and its trace id
 * (32 characters) and flags (2) copied out. */
bool trace_parse(struct slice v, char trace_id[32], char flags[2]);

/* Writes the traceparent ferry sends ("00-TRACE-SPAN-FLAGS", 55 bytes,
 * not NUL-terminated) into out. trace_id: 32 hex; span and flags are
 * from the numbers given. */
void trace_format(char out[TRACE_PARENT_LEN], const char trace_id[32], uint64_t span,
                  const char flags[2]);

/* 16 hex digits of v into out (not NUL-terminated). */
void trace_hex64(char out[16], uint64_t v);

/* The next value of a splitmix64 sequence (never 0). */
uint64_t trace_random(uint64_t *state);

#endif
