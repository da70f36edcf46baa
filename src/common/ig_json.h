/* JSON helpers on jansson with caps for input from outside. */
#ifndef IG_JSON_H
#define IG_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Returns whether TEXT (LEN bytes) nests arrays/objects at most MAX_DEPTH deep; strings are
 * skipped correctly. It does not validate the JSON otherwise. */
int ig_json_depth_ok(const char *text, size_t len, int max_depth);

/*
 * Parses LEN bytes of TEXT as JSON, refusing nesting deeper than MAX_DEPTH. Returns a new
 * reference (caller decrefs) or NULL with a message in ERR (ERR_SIZE bytes).
 */
json_t *ig_json_parse(const char *text, size_t len, int max_depth, char *err, size_t err_size);

#endif
