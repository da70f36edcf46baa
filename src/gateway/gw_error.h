/* OpenAI-shaped error bodies: {"error":{"message","type","code"}}. */
#ifndef IG_GW_ERROR_H
#define IG_GW_ERROR_H

#include <stddef.h>

/*
 * Returns a malloc'd JSON error body for STATUS with MESSAGE and CODE (caller frees with
 * free()); the "type" follows OpenAI: invalid_request_error for 4xx, server_error for 5xx,
 * authentication_error for 401, permission_error for 403, rate_limit_error for 429.
 */
char *gw_error_json(int status, const char *message, const char *code);

/* Returns the OpenAI error type for an HTTP status (static string). */
const char *gw_error_type(int status);

#endif
