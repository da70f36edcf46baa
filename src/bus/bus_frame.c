/* The framing of bus messages (bus_frame.h). */
#include "bus_frame.h"

#include <string.h>
#include <strings.h>

#define MAGIC "IG/1\r\n" /* a header block starts with it */
#define MAGIC_LEN 6

void bus_frame_parse(struct bus_frame *f, const char *p, size_t len)
{
    const char *end, *line;
    size_t used = 0;

    f->data = p;
    f->len = len;
    f->n_headers = 0;
    if (p == NULL || len < MAGIC_LEN + 2 || memcmp(p, MAGIC, MAGIC_LEN) != 0)
        return;
    /* The block ends at the first empty line; the magic's own CRLF may start it. */
    end = memmem(p + MAGIC_LEN - 2, len - (MAGIC_LEN - 2), "\r\n\r\n", 4);
    if (end == NULL)
        return;
    for (line = p + MAGIC_LEN; line < end + 2 && f->n_headers < BUS_FRAME_MAX_HEADERS;) {
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        const char *colon = eol != NULL ? memchr(line, ':', (size_t)(eol - line)) : NULL;

        if (eol == NULL)
            break;
        if (colon != NULL) {
            size_t name_len = (size_t)(colon - line);
            const char *value = colon + 1 + (colon + 1 < eol && colon[1] == ' ');
            size_t value_len = (size_t)(eol - value);

            if (used + name_len + value_len + 2 <= sizeof(f->space)) {
                char *n = f->space + used;

                memcpy(n, line, name_len);
                n[name_len] = '\0';
                memcpy(n + name_len + 1, value, value_len);
                n[name_len + 1 + value_len] = '\0';
                f->names[f->n_headers] = n;
                f->values[f->n_headers++] = n + name_len + 1;
                used += name_len + value_len + 2;
            }
        }
        line = eol + 2;
    }
    f->data = end + 4;
    f->len = len - (size_t)(end + 4 - p);
}

const char *bus_frame_header(const struct bus_frame *f, const char *name)
{
    for (size_t i = 0; i < f->n_headers; i++)
        if (strcasecmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

size_t bus_frame_head_size(const struct bus_header *headers, size_t n)
{
    size_t size = n > 0 ? MAGIC_LEN + 2 : 0;

    for (size_t i = 0; i < n; i++)
        size += strlen(headers[i].name) + strlen(headers[i].value) + 4;
    return size;
}

/* Copies TEXT into OUT at AT; returns the offset after it. */
static size_t append(char *out, size_t at, const char *text)
{
    size_t n = strlen(text);

    memcpy(out + at, text, n);
    return at + n;
}

size_t bus_frame_write_head(char *out, const struct bus_header *headers, size_t n)
{
    size_t at = 0;

    if (n == 0)
        return 0;
    at = append(out, at, MAGIC);
    for (size_t i = 0; i < n; i++) {
        at = append(out, at, headers[i].name);
        at = append(out, at, ": ");
        at = append(out, at, headers[i].value);
        at = append(out, at, "\r\n");
    }
    return append(out, at, "\r\n");
}
