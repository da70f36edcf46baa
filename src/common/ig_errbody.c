/* OpenAI-shaped error bodies. */
#include "ig_errbody.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *ig_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* Returns a copy of TEXT with its non-ASCII bytes replaced by '?' (caller frees), or NULL. */
static char *ascii_copy(const char *text)
{
    char *copy = strdup(text);

    for (char *c = copy; c != NULL && *c != '\0'; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    return copy;
}

char *ig_error_body(int status, const char *message, const char *code)
{
    json_t *root = json_pack("{s:{s:s, s:s, s:s?}}", "error", "message", message, "type",
                             ig_error_type(status), "code", code);
    char *ascii, *text = NULL;

    /* A message may quote what a client sent (a JSON parser's error, a model name cut to
     * length) and so not be valid UTF-8, which a JSON string cannot hold: the client still
     * gets its error, with those bytes as '?'. */
    if (root == NULL && message != NULL) {
        ascii = ascii_copy(message);
        if (ascii != NULL)
            root = json_pack("{s:{s:s, s:s, s:s?}}", "error", "message", ascii, "type",
                             ig_error_type(status), "code", code);
        free(ascii);
    }
    if (root == NULL)
        return NULL;
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}
