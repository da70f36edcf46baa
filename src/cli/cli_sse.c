/*
 * Server-sent events as the WHATWG spec frames them: lines end with CRLF, LF or CR (a CRLF
 * split across two reads is one line end); "data:" lines of one event are joined with '\n';
 * a blank line dispatches the event; lines starting with ':' are comments; other fields
 * (event, id, retry) are ignored, as the OpenAI streams carry everything in data. An event
 * the stream leaves unfinished at its end is dropped, as the spec says.
 */
#include "cli_sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cli_sse {
    cli_sse_event_fn fn;
    void *arg;
    size_t max_bytes;
    char *line; /* the line being read, max_bytes + 8 bytes (room for "data: ") */
    size_t line_len;
    char *data; /* the event's data so far, max_bytes + 1 bytes */
    size_t data_len;
    bool has_data;
    bool is_after_cr; /* the last byte was a CR: a LF right after it ends nothing */
};

struct cli_sse *cli_sse_new(size_t max_event_bytes, cli_sse_event_fn fn, void *arg)
{
    struct cli_sse *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->fn = fn;
    p->arg = arg;
    p->max_bytes = max_event_bytes;
    p->line = malloc(max_event_bytes + 8);
    p->data = malloc(max_event_bytes + 1);
    if (p->line == NULL || p->data == NULL) {
        cli_sse_free(p);
        return NULL;
    }
    return p;
}

void cli_sse_free(struct cli_sse *p)
{
    if (p == NULL)
        return;
    free(p->line);
    free(p->data);
    free(p);
}

/* Handles the complete line in P->line; returns 0 or what cli_sse_feed() returns. */
static int end_line(struct cli_sse *p)
{
    const char *value, *colon;
    size_t name_len, value_len;
    int rc = 0;

    if (p->line_len == 0) {
        if (p->has_data) {
            p->data[p->data_len] = '\0';
            rc = p->fn(p->data, p->data_len, p->arg);
        }
        p->data_len = 0;
        p->has_data = false;
        return rc;
    }
    if (p->line[0] == ':')
        goto out;
    colon = memchr(p->line, ':', p->line_len);
    name_len = colon != NULL ? (size_t)(colon - p->line) : p->line_len;
    if (name_len != 4 || memcmp(p->line, "data", 4) != 0)
        goto out;
    value = colon != NULL ? colon + 1 : p->line + p->line_len;
    value_len = (size_t)(p->line + p->line_len - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (p->data_len + (p->has_data ? 1 : 0) + value_len > p->max_bytes) {
        rc = IG_ETOOBIG;
        goto out;
    }
    if (p->has_data)
        p->data[p->data_len++] = '\n';
    memcpy(p->data + p->data_len, value, value_len);
    p->data_len += value_len;
    p->has_data = true;
out:
    p->line_len = 0;
    return rc;
}

int cli_sse_feed(struct cli_sse *p, const char *bytes, size_t n)
{
    size_t i = 0;
    int rc = 0;

    while (i < n && rc == 0) {
        if (p->is_after_cr && bytes[i] == '\n') {
            p->is_after_cr = false;
            i++;
            continue;
        }
        p->is_after_cr = false;
        size_t run = i;
        while (run < n && bytes[run] != '\n' && bytes[run] != '\r')
            run++;
        if (run - i > p->max_bytes + 8 - p->line_len)
            return IG_ETOOBIG;
        memcpy(p->line + p->line_len, bytes + i, run - i);
        p->line_len += run - i;
        i = run;
        if (i < n) {
            p->is_after_cr = bytes[i] == '\r';
            i++;
            rc = end_line(p);
        }
    }
    return rc;
}
