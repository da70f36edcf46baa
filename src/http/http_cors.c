/*
 * CORS policy and its headers.
 *
 * Defaults follow llama-swap, whose users expect browser front-ends on other origins to
 * work out of the box: every origin is allowed, a preflight gets 204 with
 * "GET, POST, PUT, PATCH, DELETE, OPTIONS", the requested headers echoed back (only the
 * names that are HTTP tokens, so nothing can be injected into our response) and a one-day
 * Max-Age. Unlike llama-swap, the actual responses carry Access-Control-Allow-Origin on
 * every route, so a browser can read errors and streams, not only what the model server
 * happened to add.
 *
 * Origins are compared the way browsers serialise them: "scheme://host[:port]", scheme and
 * host without case, default ports (80 for http, 443 for https) left out.
 */
#include "http_cors.h"
#include "http_server.h"
#include "ig_errbody.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define METHODS "GET, POST, PUT, PATCH, DELETE, OPTIONS"
#define DEFAULT_HEADERS "Content-Type, Authorization, Accept, X-Requested-With"
#define MAX_ECHO_HEADERS_BYTES 1024
#define MAX_ORIGIN_BYTES 512

struct http_cors {
    bool is_any_origin;
    char **origins;
    size_t n_origins;
    char *headers; /* joined Access-Control-Allow-Headers value, or NULL: echo */
    int max_age_s;
    bool allow_credentials;
};

/* An origin split into spans of its text. */
struct origin_parts {
    const char *scheme;
    size_t scheme_len;
    const char *host;
    size_t host_len;
    const char *port; /* after ':', or NULL (also for a default port) */
    size_t port_len;
};

/* Returns whether C may appear in a host name or an IPv6 literal. */
static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '*' || c == '[' || c == ']' || c == ':';
}

/* Splits TEXT ("scheme://host[:port]") into P; returns false when it is not of that form. */
static bool split_origin(const char *text, struct origin_parts *p)
{
    const char *sep = strstr(text, "://");
    const char *host, *end, *colon = NULL;

    memset(p, 0, sizeof(*p));
    if (sep == NULL || sep == text)
        return false;
    for (const char *s = text; s < sep; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (s > text && ((*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == '.'))))
            return false;
    host = sep + 3;
    end = host + strlen(host);
    if (host == end)
        return false;
    for (const char *s = host; s < end; s++)
        if (!is_host_char(*s))
            return false;
    if (host[0] == '[') { /* IPv6 literal */
        const char *close = strchr(host, ']');
        if (close == NULL)
            return false;
        if (close[1] == ':')
            colon = close + 1;
        else if (close[1] != '\0')
            return false;
    } else {
        colon = strchr(host, ':');
    }
    p->scheme = text;
    p->scheme_len = (size_t)(sep - text);
    p->host = host;
    p->host_len = (size_t)((colon != NULL ? colon : end) - host);
    if (colon != NULL) {
        p->port = colon + 1;
        p->port_len = (size_t)(end - p->port);
        if (p->port_len == 0 || p->port_len > 5 || strspn(p->port, "0123456789") != p->port_len)
            return false;
        if ((p->scheme_len == 4 && strncasecmp(text, "http", 4) == 0 && p->port_len == 2 &&
             strncmp(p->port, "80", 2) == 0) ||
            (p->scheme_len == 5 && strncasecmp(text, "https", 5) == 0 && p->port_len == 3 &&
             strncmp(p->port, "443", 3) == 0))
            p->port = NULL, p->port_len = 0;
    }
    return p->host_len > 0;
}

bool http_cors_pattern_is_valid(const char *text)
{
    struct origin_parts p;

    if (strcmp(text, "null") == 0)
        return true;
    if (strlen(text) > MAX_ORIGIN_BYTES || !split_origin(text, &p))
        return false;
    /* A '*' only as the whole first label: "*.example.com". */
    for (size_t i = 0; i < p.host_len; i++)
        if (p.host[i] == '*' && !(i == 0 && p.host_len > 2 && p.host[1] == '.'))
            return false;
    return true;
}

bool http_cors_origin_matches(const char *pattern, const char *origin)
{
    struct origin_parts a, b;

    if (strcmp(pattern, "null") == 0 || strcmp(origin, "null") == 0)
        return strcmp(pattern, origin) == 0;
    if (!split_origin(pattern, &a) || !split_origin(origin, &b))
        return false;
    if (a.scheme_len != b.scheme_len || strncasecmp(a.scheme, b.scheme, a.scheme_len) != 0)
        return false;
    if (a.port_len != b.port_len || (a.port_len > 0 && strncmp(a.port, b.port, a.port_len) != 0))
        return false;
    if (memchr(b.host, '*', b.host_len) != NULL)
        return false;
    if (a.host_len > 2 && a.host[0] == '*' && a.host[1] == '.') {
        size_t suffix = a.host_len - 1; /* ".example.com" */
        return b.host_len > suffix &&
               strncasecmp(b.host + b.host_len - suffix, a.host + 1, suffix) == 0;
    }
    return a.host_len == b.host_len && strncasecmp(a.host, b.host, a.host_len) == 0;
}

/* Returns whether C is a token character (RFC 9110). */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

size_t http_cors_sanitize_headers(const char *requested, char *out, size_t size)
{
    size_t len = 0;
    const char *p = requested;

    if (size == 0)
        return 0;
    out[0] = '\0';
    while (*p != '\0') {
        const char *start, *end;
        size_t n;
        bool is_token = true;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        n = (size_t)(end - start);
        if (n == 0)
            continue;
        for (const char *c = start; c < end; c++)
            if (!is_tchar((unsigned char)*c))
                is_token = false;
        if (!is_token)
            continue;
        if (len + (len > 0 ? 2 : 0) + n + 1 > size)
            break;
        if (len > 0) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, start, n);
        len += n;
        out[len] = '\0';
    }
    return len;
}

/* Copies N strings of SRC into a new array at *DST; returns 0 or -1 (out of memory). */
static int copy_strings(char ***dst, const char *const *src, size_t n)
{
    *dst = calloc(n > 0 ? n : 1, sizeof(**dst));
    if (*dst == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        (*dst)[i] = strdup(src[i]);
        if ((*dst)[i] == NULL)
            return -1;
    }
    return 0;
}

struct http_cors *http_cors_new(const struct http_cors_options *o)
{
    struct http_cors *cors = calloc(1, sizeof(*cors));
    bool is_echo = o->n_headers == 0;
    size_t len = 1;

    if (cors == NULL)
        return NULL;
    cors->is_any_origin = o->is_any_origin;
    cors->max_age_s = o->max_age_s;
    cors->allow_credentials = o->allow_credentials;
    cors->n_origins = o->n_origins;
    if (copy_strings(&cors->origins, o->origins, o->n_origins) != 0)
        goto fail;
    for (size_t i = 0; i < o->n_headers; i++) {
        if (strcmp(o->headers[i], "*") == 0)
            is_echo = true;
        len += strlen(o->headers[i]) + 2;
    }
    if (!is_echo) {
        cors->headers = malloc(len);
        if (cors->headers == NULL)
            goto fail;
        cors->headers[0] = '\0';
        for (size_t i = 0, at = 0; i < o->n_headers; i++)
            at += (size_t)snprintf(cors->headers + at, len - at, "%s%s", i > 0 ? ", " : "",
                                   o->headers[i]);
    }
    return cors;
fail:
    http_cors_free(cors);
    return NULL;
}

void http_cors_free(struct http_cors *cors)
{
    if (cors == NULL)
        return;
    for (size_t i = 0; cors->origins != NULL && i < cors->n_origins; i++)
        free(cors->origins[i]);
    free(cors->origins);
    free(cors->headers);
    free(cors);
}

bool http_cors_origin_allowed(const struct http_cors *cors, const char *origin)
{
    if (origin == NULL || origin[0] == '\0' || strlen(origin) > MAX_ORIGIN_BYTES)
        return false;
    if (cors->is_any_origin)
        return true;
    for (size_t i = 0; i < cors->n_origins; i++)
        if (http_cors_origin_matches(cors->origins[i], origin))
            return true;
    return false;
}

/* The Access-Control-Allow-Origin value: "*" for any origin without credentials (cacheable
 * by shared caches), else the request's own origin. */
/* Response headers a browser page may read besides the safelisted ones: the request id (to
 * find a request in the log) and when to retry after a 429 or 503. */
#define EXPOSED_HEADERS "X-Request-Id, Retry-After"

static const char *allow_origin_value(const struct http_cors *cors, const char *origin)
{
    return cors->is_any_origin && !cors->allow_credentials ? "*" : origin;
}

void http_cors_add_response_headers(const struct http_cors *cors, const char *origin,
                                    struct evbuffer *out)
{
    if (cors == NULL || !http_cors_origin_allowed(cors, origin))
        return;
    evbuffer_add_printf(out, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
                             "Access-Control-Expose-Headers: " EXPOSED_HEADERS "\r\n",
                        allow_origin_value(cors, origin));
    if (cors->allow_credentials)
        evbuffer_add_printf(out, "Access-Control-Allow-Credentials: true\r\n");
}

/* Answers an allowed preflight with 204 and the Access-Control-Allow-* headers. */
static void answer_preflight(const struct http_cors *cors, struct http_request *req,
                             const char *origin)
{
    const char *requested = http_request_header(req, "access-control-request-headers");
    char headers[MAX_ECHO_HEADERS_BYTES];
    char age[16];

    http_response_add_header(req, "Access-Control-Allow-Origin", allow_origin_value(cors, origin));
    if (cors->allow_credentials)
        http_response_add_header(req, "Access-Control-Allow-Credentials", "true");
    http_response_add_header(req, "Access-Control-Allow-Methods", METHODS);
    if (cors->headers != NULL)
        http_response_add_header(req, "Access-Control-Allow-Headers", cors->headers);
    else if (requested != NULL &&
             http_cors_sanitize_headers(requested, headers, sizeof(headers)) > 0)
        http_response_add_header(req, "Access-Control-Allow-Headers", headers);
    else
        http_response_add_header(req, "Access-Control-Allow-Headers", DEFAULT_HEADERS);
    snprintf(age, sizeof(age), "%d", cors->max_age_s);
    http_response_add_header(req, "Access-Control-Max-Age", age);
    http_response_add_header(
        req, "Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    http_respond(req, 204, NULL, NULL, 0);
}

/* Answers a preflight from an origin the policy does not allow. */
static void deny_preflight(struct http_request *req, const char *origin)
{
    char message[MAX_ORIGIN_BYTES + 96];
    char *body;

    snprintf(message, sizeof(message), "origin '%.*s' is not allowed (cors.origins)",
             MAX_ORIGIN_BYTES, origin);
    body = ig_error_body(403, message, "origin_not_allowed");
    http_response_add_header(req, "Vary", "Origin");
    if (body == NULL) {
        http_respond(req, 500, "application/json", "{}", 2);
        return;
    }
    http_respond(req, 403, "application/json", body, strlen(body));
    free(body);
}

bool http_cors_handle(const struct http_cors *cors, struct http_request *req)
{
    const char *origin = http_request_header(req, "origin");

    if (origin == NULL)
        return false;
    if (strcmp(http_request_method(req), "OPTIONS") == 0 &&
        http_request_header(req, "access-control-request-method") != NULL) {
        if (http_cors_origin_allowed(cors, origin))
            answer_preflight(cors, req, origin);
        else
            deny_preflight(req, origin);
        return true;
    }
    if (!http_cors_origin_allowed(cors, origin))
        return false;
    http_response_add_header(req, "Access-Control-Allow-Origin", allow_origin_value(cors, origin));
    http_response_add_header(req, "Vary", "Origin");
    http_response_add_header(req, "Access-Control-Expose-Headers", EXPOSED_HEADERS);
    if (cors->allow_credentials)
        http_response_add_header(req, "Access-Control-Allow-Credentials", "true");
    return false;
}
