/*
 * The client side of the subcommands that talk to a running server (ps, models --url, chat,
 * top, bench): where the server is, its token, and blocking libcurl requests to it.
 */
#ifndef IG_CLI_HTTP_H
#define IG_CLI_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ig_error.h"

/* The usage lines of the options cli_server_option() takes. */
#define CLI_SERVER_USAGE "[--url URL] [--token-env NAME] [--cacert FILE]"

/* Largest JSON document read from the server (16 MiB). */
#define CLI_MAX_JSON_BYTES (16u << 20)

/* A growing byte buffer with a hard cap; a small value type, its fields are public. */
struct cli_buf {
    char *data; /* NUL-terminated when not NULL; owned, freed by cli_buf_free() */
    size_t len;
    size_t cap;
    size_t max; /* appending past this many bytes fails */
};

/* Appends N bytes of BYTES to B; returns 0, IG_ETOOBIG past B->max, or IG_ENOMEM. */
int cli_buf_append(struct cli_buf *b, const void *bytes, size_t n) IG_WUR;

/* Releases B's bytes and empties it (B->max is kept). */
void cli_buf_free(struct cli_buf *b);

/* Where a running server is and how to authenticate to it. */
struct cli_server;

/* Returns a server description with the defaults: INFERGATE_URL, else http://127.0.0.1:8080;
 * the token from INFERGATE_TOKEN. Caller frees with cli_server_free(); NULL when out of
 * memory. */
struct cli_server *cli_server_new(void);

/* Frees S (NULL is a no-op); the token is wiped first. */
void cli_server_free(struct cli_server *s);

/* Takes the option at ARGV[*I] when it is one of CLI_SERVER_USAGE, advancing *I past its
 * value. Returns 1 when taken, 0 when ARGV[*I] is not one of them, -1 (message printed) when
 * its value is missing or wrong. */
int cli_server_option(struct cli_server *s, int argc, char **argv, int *i);

/* Returns whether --url was given or INFERGATE_URL is set. */
bool cli_server_is_explicit(const struct cli_server *s);

/* Returns the base URL (no trailing slash); borrowed from S. */
const char *cli_server_url(const struct cli_server *s);

/* Returns a new easy handle for METHOD PATH on S (URL, token, CA file, connect timeout, no
 * signals), with the request headers in *HEADERS (caller frees both: curl_easy_cleanup(),
 * curl_slist_free_all()), or NULL. BODY, when not NULL, is sent as JSON and copied. */
CURL *cli_server_easy(const struct cli_server *s, const char *method, const char *path,
                      const char *body, struct curl_slist **headers);

/* GETs PATH from S and parses the answer as JSON. Returns 0 with *OUT (caller decrefs) for
 * a 2xx answer; otherwise -1 with *STATUS the HTTP status (0 when no answer came) and
 * *CAUSE a readable reason (caller frees). TIMEOUT_MS bounds the whole request. */
int cli_server_get_json(const struct cli_server *s, const char *path, long timeout_ms,
                        json_t **out, long *status, char **cause) IG_WUR;

/* Returns a readable reason for an HTTP error answer: the message and code of an OpenAI error
 * body, else the body's start; a hint to set the token for 401 and 403. STATUS 0 is an error
 * event inside a stream (no status shown). Caller frees; NULL when out of memory. */
char *cli_error_text(long status, const char *body, size_t len);

/* Returns the message for a failed transfer to S ("cannot reach URL: reason"); caller frees. */
char *cli_transport_text(const struct cli_server *s, CURLcode code, const char *detail);

#endif
