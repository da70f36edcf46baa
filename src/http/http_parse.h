/* HTTP/1.x request head parsing (request line + headers), in place, with caps. */
#ifndef IG_HTTP_PARSE_H
#define IG_HTTP_PARSE_H

#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

#define HTTP_MAX_HEADERS 100

/* One header; name and value point into the head's buffer. */
struct http_header {
    const char *name;
    const char *value;
};

/* A parsed request head. Strings point into BUF, owned by the struct. */
struct http_head {
    char *buf;
    const char *method;
    const char *path;  /* target up to '?' */
    const char *query; /* after '?', or "" */
    int minor;         /* 0 or 1 for HTTP/1.0 or 1.1; -1 for other versions */
    bool keep_alive;
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
};

/*
 * Removes HEAD_LEN bytes (a head ending in a blank line) from IN and parses them into HEAD.
 * Returns 0, or IG_EPROTO with a reason in *CAUSE (caller frees); HEAD must be released
 * with http_head_release() either way.
 */
int http_head_parse(struct http_head *head, struct evbuffer *in, size_t head_len,
                    char **cause) IG_WUR;

/* Parses HEAD_LEN bytes of TEXT (a copy is taken); same contract as http_head_parse(). */
int http_head_parse_text(struct http_head *head, const char *text, size_t head_len,
                         char **cause) IG_WUR;

/* Returns the value of header NAME (case-insensitive) or NULL; borrowed. */
const char *http_head_get(const struct http_head *head, const char *name);

/* Reads Content-Length into *OUT (-1 when absent); returns IG_EPROTO when malformed or
 * given twice with different values. */
int http_head_content_length(const struct http_head *head, long long *out) IG_WUR;

/* Frees the buffer of HEAD. */
void http_head_release(struct http_head *head);

#endif
