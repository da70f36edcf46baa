/*
 * CORS for the front server: which browser origins may call the API, the answer to
 * preflight requests, and the Access-Control-* headers of every other response.
 *
 * A policy is immutable once built; the server swaps it whole on a reload. The http layer
 * applies it at its one dispatch point, so every route, streamed or not, error or not,
 * gets the same headers.
 */
#ifndef IG_HTTP_CORS_H
#define IG_HTTP_CORS_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct http_cors;
struct http_request;

/* What a policy allows; strings are borrowed by http_cors_new(), which copies them. */
struct http_cors_options {
    bool is_any_origin;         /* every origin is allowed ("*") */
    const char *const *origins; /* else these: "scheme://host[:port]" (a host may start with
                                 * "*." for any subdomain), or "null" */
    size_t n_origins;
    const char *const *headers; /* Access-Control-Allow-Headers; none: echo what the browser
                                 * asks for (as llama-swap does) */
    size_t n_headers;
    int max_age_s;          /* Access-Control-Max-Age of preflights */
    bool allow_credentials; /* Access-Control-Allow-Credentials: true */
};

/* Builds a policy from O (copied). Returns NULL when out of memory; free with
 * http_cors_free(). */
struct http_cors *http_cors_new(const struct http_cors_options *o);

/* Frees a policy; NULL is a no-op. */
void http_cors_free(struct http_cors *cors);

/* Returns whether ORIGIN (the request's Origin header) is allowed by CORS. */
bool http_cors_origin_allowed(const struct http_cors *cors, const char *origin);

/* Returns whether ORIGIN matches PATTERN: equal (scheme and host compared without case), or
 * PATTERN's host is "*.domain" and ORIGIN's host is a subdomain of it with the same scheme
 * and port. */
bool http_cors_origin_matches(const char *pattern, const char *origin);

/* Returns whether TEXT is a valid origin pattern for the config: "null", or
 * "scheme://host[:port]" without path, query or fragment, where host may start with "*.". */
bool http_cors_pattern_is_valid(const char *text);

/* Writes into OUT (SIZE bytes, NUL-terminated) the header names of REQUESTED (an
 * Access-Control-Request-Headers value) that are HTTP tokens, joined with ", "; names that
 * are not tokens are dropped and a list that does not fit is cut at a name. Returns the
 * length written. */
size_t http_cors_sanitize_headers(const char *requested, char *out, size_t size);

/* Appends the headers of an actual (non-preflight) response for a request from ORIGIN
 * (may be NULL) to OUT as "Name: value\r\n" lines: nothing when ORIGIN is absent or not
 * allowed, else Access-Control-Allow-Origin, Vary: Origin and, when configured,
 * Access-Control-Allow-Credentials. */
void http_cors_add_response_headers(const struct http_cors *cors, const char *origin,
                                    struct evbuffer *out);

/* Answers REQ when it is a preflight (OPTIONS with Origin and Access-Control-Request-Method):
 * 204 with the Access-Control-Allow-* headers when the origin is allowed, a 403 JSON error
 * otherwise. For any other request, adds the response headers above to REQ. Returns true
 * when REQ was answered (the caller must not touch it any more). */
bool http_cors_handle(const struct http_cors *cors, struct http_request *req);

#endif
