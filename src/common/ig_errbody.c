/* OpenAI-shaped error bodies. */
#include "ig_errbody.h"

#include <jansson.h>

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

char *ig_error_body(int status, const char *message, const char *code)
{
    json_t *root = json_pack("{s:{s:s, s:s, s:s?}}", "error", "message", message, "type",
                             ig_error_type(status), "code", code);
    char *text = NULL;

    if (root == NULL)
        return NULL;
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}
