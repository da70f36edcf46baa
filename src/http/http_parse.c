/*
 * HTTP/1.x request head parser. The head is copied into one buffer and split in place:
 * request line "METHOD SP target SP HTTP/1.x", then "Name: value" lines. Obsolete line
 * folding, control characters and header names outside the token set are rejected, so
 * that nothing ambiguous is forwarded (request smuggling).
 */
#include "http_parse.h"

#include <event2/buffer.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Returns whether C is a token character (RFC 9110). */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Sets *CAUSE to a copy of MSG and returns IG_EPROTO. */
static int fail(char **cause, const char *msg)
{
    if (cause != NULL)
        *cause = strdup(msg);
    return IG_EPROTO;
}

/* Splits the request line LINE into method, target and version. */
static int parse_request_line(struct http_head *head, char *line, char **cause)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    char *q;

    if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1)
        return fail(cause, "malformed request line");
    *sp1 = '\0';
    *sp2 = '\0';
    for (const char *m = line; *m != '\0'; m++)
        if (!is_tchar((unsigned char)*m))
            return fail(cause, "malformed request method");
    head->method = line;
    if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1') ||
        sp2[9] != '\0') {
        head->minor = -1;
        return fail(cause, "unsupported HTTP version");
    }
    head->minor = sp2[8] - '0';
    for (const char *t = sp1 + 1; *t != '\0'; t++)
        if ((unsigned char)*t <= 0x20 || *t == 0x7f)
            return fail(cause, "malformed request target");
    head->path = sp1 + 1;
    q = strchr(sp1 + 1, '?');
    if (q != NULL) {
        *q = '\0';
        head->query = q + 1;
    } else {
        head->query = "";
    }
    return 0;
}

/* Parses one header line LINE into the next slot. */
static int parse_header_line(struct http_head *head, char *line, char **cause)
{
    char *colon = strchr(line, ':');
    char *value, *end;

    if (line[0] == ' ' || line[0] == '\t')
        return fail(cause, "obsolete header line folding");
    if (colon == NULL || colon == line)
        return fail(cause, "malformed header line");
    for (char *n = line; n < colon; n++)
        if (!is_tchar((unsigned char)*n))
            return fail(cause, "malformed header name");
    *colon = '\0';
    value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    end = value + strlen(value);
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    for (const char *v = value; *v != '\0'; v++)
        if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
            return fail(cause, "control character in header value");
    if (head->n_headers == HTTP_MAX_HEADERS)
        return fail(cause, "too many headers");
    head->headers[head->n_headers].name = line;
    head->headers[head->n_headers].value = value;
    head->n_headers++;
    return 0;
}

/* Decides keep-alive from the version and the Connection header. */
static void decide_keep_alive(struct http_head *head)
{
    const char *connection = http_head_get(head, "connection");

    head->keep_alive = head->minor == 1;
    if (connection == NULL)
        return;
    if (strcasestr(connection, "close") != NULL)
        head->keep_alive = false;
    else if (strcasestr(connection, "keep-alive") != NULL)
        head->keep_alive = true;
}

/* Parses the NUL-terminated head already in HEAD->buf. */
static int parse_buffer(struct http_head *head, size_t len, char **cause)
{
    char *line = head->buf, *end = head->buf + len;
    int rc;

    head->minor = 1;
    for (char *p = head->buf; p < end; p++)
        if (*p == '\0')
            return fail(cause, "NUL byte in request head");
    for (bool is_first = true; line < end; is_first = false) {
        char *eol = strstr(line, "\r\n");
        if (eol == NULL)
            return fail(cause, "malformed request head");
        *eol = '\0';
        if (eol == line)
            break;
        rc = is_first ? parse_request_line(head, line, cause)
                      : parse_header_line(head, line, cause);
        if (rc != 0)
            return rc;
        line = eol + 2;
    }
    if (head->method == NULL)
        return fail(cause, "empty request");
    if (head->minor == 1 && http_head_get(head, "host") == NULL)
        return fail(cause, "missing Host header");
    decide_keep_alive(head);
    return 0;
}

int http_head_parse_text(struct http_head *head, const char *text, size_t head_len,
                         char **cause)
{
    memset(head, 0, sizeof(*head));
    head->buf = malloc(head_len + 1);
    if (head->buf == NULL)
        return fail(cause, "out of memory");
    memcpy(head->buf, text, head_len);
    head->buf[head_len] = '\0';
    return parse_buffer(head, head_len, cause);
}

int http_head_parse(struct http_head *head, struct evbuffer *in, size_t head_len, char **cause)
{
    memset(head, 0, sizeof(*head));
    head->buf = malloc(head_len + 1);
    if (head->buf == NULL)
        return fail(cause, "out of memory");
    evbuffer_remove(in, head->buf, head_len);
    head->buf[head_len] = '\0';
    return parse_buffer(head, head_len, cause);
}

const char *http_head_get(const struct http_head *head, const char *name)
{
    for (size_t i = 0; i < head->n_headers; i++)
        if (strcasecmp(head->headers[i].name, name) == 0)
            return head->headers[i].value;
    return NULL;
}

int http_head_content_length(const struct http_head *head, long long *out)
{
    long long value = -1;

    for (size_t i = 0; i < head->n_headers; i++) {
        const char *v = head->headers[i].value;
        char *end = NULL;
        long long n;
        if (strcasecmp(head->headers[i].name, "content-length") != 0)
            continue;
        if (*v < '0' || *v > '9')
            return IG_EPROTO;
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno != 0 || *end != '\0' || (value >= 0 && n != value))
            return IG_EPROTO;
        value = n;
    }
    *out = value;
    return 0;
}

void http_head_release(struct http_head *head)
{
    free(head->buf);
    head->buf = NULL;
}
