/*
 * Query-string helpers shared by the gateway's GET handlers (/v1/usage, /admin/audit,
 * /admin/requests, /admin/events, /events). Values are percent-decoded strictly (ig_text.h):
 * a malformed escape, %00 or a value longer than its buffer is a 400 naming the parameter,
 * never a value silently cut or passed through.
 */
#include "gw_internal.h"
#include "http_server.h"
#include "ig_text.h"
#include "ig_time.h"

#include <stdio.h>

int gw_query_param(struct http_request *req, const char *name, char *out, size_t size)
{
    int rc = ig_query_param(http_request_query(req), name, out, size);
    char msg[160];

    if (rc < 0) {
        snprintf(msg, sizeof(msg), "%s: a malformed percent escape, or longer than %zu characters",
                 name, size - 1);
        gw_reply_error(req, 400, msg, "invalid_request_error", 0);
    }
    return rc;
}

/* Answers 400: parameter NAME expected WHAT, got TEXT. Returns -1. */
static int refuse_value(struct http_request *req, const char *name, const char *what,
                        const char *text)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%s: expected %s, got '%s'", name, what, text);
    gw_reply_error(req, 400, msg, "invalid_request_error", 0);
    return -1;
}

int gw_query_time(struct http_request *req, const char *name, int64_t *out)
{
    char text[64];
    int64_t t;
    int rc = gw_query_param(req, name, text, sizeof(text));

    if (rc <= 0)
        return rc;
    t = ig_parse_time(text);
    if (t < 0)
        return refuse_value(
            req, name, "unix seconds or a UTC time like 2026-11-23 or 2026-11-23T10:00:00Z", text);
    *out = t;
    return 0;
}

int gw_query_int(struct http_request *req, const char *name, int64_t min, int64_t max,
                 const char *what, int64_t *out)
{
    char text[32], range[64];
    int64_t v;
    int rc = gw_query_param(req, name, text, sizeof(text));

    if (rc <= 0)
        return rc;
    v = ig_parse_int(text);
    if (v < min || v > max) {
        snprintf(range, sizeof(range), "an integer from %lld to %lld", (long long)min,
                 (long long)max);
        return refuse_value(req, name, what != NULL ? what : range, text);
    }
    *out = v;
    return 0;
}
