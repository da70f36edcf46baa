/* OpenAI-shaped error bodies: {"error":{"message","type","code"}}. */
#ifndef IG_ERRBODY_H
#define IG_ERRBODY_H

/*
 * Returns a malloc'd JSON error body for STATUS with MESSAGE and CODE (CODE may be NULL,
 * giving "code": null); caller frees with free(). Returns NULL only when out of memory.
 * The "type" follows OpenAI: invalid_request_error for 4xx, authentication_error (401),
 * permission_error (403), rate_limit_error (429), server_error for 5xx.
 */
char *ig_error_body(int status, const char *message, const char *code);

/* Returns the OpenAI error type for an HTTP status (static string). */
const char *ig_error_type(int status);

#endif
