/*
 * A strict multipart/form-data parser (RFC 7578) for uploads held whole in memory: CRLF
 * line ends, the body starting at its first boundary and ending with the closing one, at
 * most BATCH_MP_MAX_PARTS parts of at most BATCH_MP_MAX_HEAD bytes of headers each.
 */
#ifndef IG_BATCH_MULTIPART_H
#define IG_BATCH_MULTIPART_H

#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

#define BATCH_MP_MAX_PARTS 16
#define BATCH_MP_MAX_HEAD 4096
#define BATCH_MP_NAME_MAX 128     /* longest field name */
#define BATCH_MP_FILENAME_MAX 256 /* longest file name */

/* One part: its field name, its file name (has_filename: the parameter was given), and its
 * content, borrowed from the parsed body. */
struct batch_mp_part {
    char name[BATCH_MP_NAME_MAX];
    char filename[BATCH_MP_FILENAME_MAX];
    bool has_filename;
    const char *data;
    size_t len;
};

/*
 * Parses BODY (LEN bytes, borrowed by the parts) sent with CONTENT_TYPE into PARTS (room
 * for MAX), setting *N. Returns 0, or IG_EINVAL with *CAUSE (caller frees) saying what is
 * malformed: not multipart/form-data, no or a bad boundary, a part without a name, too
 * many parts, headers too long, a missing closing boundary.
 */
int batch_multipart_parse(const char *content_type, const char *body, size_t len,
                          struct batch_mp_part *parts, size_t max, size_t *n,
                          char **cause) IG_WUR;

/* Returns the first part of PARTS (N) named NAME, or NULL. */
const struct batch_mp_part *batch_mp_find(const struct batch_mp_part *parts, size_t n,
                                          const char *name);

#endif
