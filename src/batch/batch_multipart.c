/* multipart/form-data (see batch_multipart.h). */
#include "batch_multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 70 /* RFC 2046 */

/* Sets *CAUSE to MSG. */
static void fail(char **cause, const char *msg)
{
    if (cause != NULL)
        *cause = strdup(msg);
}

/* Reads parameter NAME (e.g. "boundary") of a header value TEXT (";"-separated, the value a
 * token or a quoted string without escapes) into OUT; returns 1 when found, 0 when absent,
 * -1 when malformed or longer than SIZE - 1. */
static int header_param(const char *text, size_t text_len, const char *name, char *out,
                        size_t size)
{
    const char *p = text, *end = text + text_len;
    size_t name_len = strlen(name);

    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (semi == NULL)
            return 0;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) <= name_len || strncasecmp(p, name, name_len) != 0 ||
            p[name_len] != '=')
            continue;
        p += name_len + 1;
        const char *v = p, *v_end;
        if (p < end && *p == '"') {
            v = p + 1;
            v_end = memchr(v, '"', (size_t)(end - v));
            if (v_end == NULL)
                return -1;
        } else {
            v_end = v;
            while (v_end < end && *v_end != ';' && *v_end != ' ' && *v_end != '\t')
                v_end++;
        }
        if ((size_t)(v_end - v) >= size)
            return -1;
        memcpy(out, v, (size_t)(v_end - v));
        out[v_end - v] = '\0';
        return 1;
    }
    return 0;
}

/* Parses the headers of one part (HEAD, LEN bytes, CRLF-separated lines) into PART;
 * returns 0 or -1 with *CAUSE. */
static int parse_part_head(const char *head, size_t len, struct batch_mp_part *part,
                           char **cause)
{
    const char *p = head, *end = head + len;
    bool has_disposition = false;

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *line_end = eol != NULL ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));

        if (colon == NULL) {
            fail(cause, "multipart: a part header without ':'");
            return -1;
        }
        if ((size_t)(colon - p) == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
            const char *v = colon + 1;
            while (v < line_end && *v == ' ')
                v++;
            if ((size_t)(line_end - v) < 9 || strncasecmp(v, "form-data", 9) != 0) {
                fail(cause, "multipart: a part is not form-data");
                return -1;
            }
            int got = header_param(v, (size_t)(line_end - v), "name", part->name,
                                   sizeof(part->name));
            int has_file = header_param(v, (size_t)(line_end - v), "filename", part->filename,
                                        sizeof(part->filename));
            if (got != 1 || part->name[0] == '\0' || has_file < 0) {
                fail(cause, "multipart: a part without a valid name (or with a file name "
                            "over 255 bytes)");
                return -1;
            }
            part->has_filename = has_file == 1;
            has_disposition = true;
        }
        p = eol != NULL ? eol + 2 : end;
    }
    if (!has_disposition) {
        fail(cause, "multipart: a part without Content-Disposition");
        return -1;
    }
    return 0;
}

int batch_multipart_parse(const char *content_type, const char *body, size_t len,
                          struct batch_mp_part *parts, size_t max, size_t *n, char **cause)
{
    char boundary[BOUNDARY_MAX + 1], delim[BOUNDARY_MAX + 5];
    const char *p = body, *end = body + len;
    size_t delim_len;
    int got;

    *n = 0;
    if (content_type == NULL || strncasecmp(content_type, "multipart/form-data", 19) != 0) {
        fail(cause, "expected a multipart/form-data body (fields purpose and file)");
        return IG_EINVAL;
    }
    got = header_param(content_type, strlen(content_type), "boundary", boundary,
                       sizeof(boundary));
    if (got != 1 || boundary[0] == '\0') {
        fail(cause, "multipart: missing or invalid boundary (1 to 70 characters)");
        return IG_EINVAL;
    }
    delim_len = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    /* The body starts with the first delimiter (without its CRLF). */
    if (len < delim_len - 2 || memcmp(p, delim + 2, delim_len - 2) != 0) {
        fail(cause, "multipart: the body does not start with the boundary");
        return IG_EINVAL;
    }
    p += delim_len - 2;
    for (;;) {
        if (end - p >= 2 && memcmp(p, "--", 2) == 0)
            break; /* the closing delimiter; an epilogue after it is ignored */
        if (end - p < 2 || memcmp(p, "\r\n", 2) != 0) {
            fail(cause, "multipart: a boundary not followed by CRLF");
            return IG_EINVAL;
        }
        p += 2;
        if (*n == max) {
            fail(cause, "multipart: too many parts");
            return IG_EINVAL;
        }
        size_t room = (size_t)(end - p) < BATCH_MP_MAX_HEAD + 4 ? (size_t)(end - p)
                                                                 : BATCH_MP_MAX_HEAD + 4;
        const char *head_end = memmem(p, room, "\r\n\r\n", 4);
        struct batch_mp_part *part = &parts[*n];
        memset(part, 0, sizeof(*part));
        if (head_end == NULL) {
            fail(cause, room == (size_t)(end - p) ? "multipart: truncated part headers"
                                                  : "multipart: part headers too long");
            return IG_EINVAL;
        }
        if (parse_part_head(p, (size_t)(head_end - p), part, cause) != 0)
            return IG_EINVAL;
        p = head_end + 4;
        const char *data_end = memmem(p, (size_t)(end - p), delim, delim_len);
        if (data_end == NULL) {
            fail(cause, "multipart: missing closing boundary");
            return IG_EINVAL;
        }
        part->data = p;
        part->len = (size_t)(data_end - p);
        (*n)++;
        p = data_end + delim_len;
    }
    return 0;
}

const struct batch_mp_part *batch_mp_find(const struct batch_mp_part *parts, size_t n,
                                          const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0)
            return &parts[i];
    return NULL;
}
