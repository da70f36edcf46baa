/* Request heads for upstream HTTP/1.1 requests, written without printf (a hot path), and the
 * status lines of their responses, read without sscanf. */
#ifndef IG_HTTP_HEAD_H
#define IG_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Returns a malloc'd request head (caller frees; not NUL-terminated, *LEN bytes):
 * "METHOD PATH HTTP/1.1", "Host: HOST" (HOST_LEN bytes), each of the NULL-terminated
 * "Name: value" HEADERS (may be NULL), "Content-Length: N" when CONTENT_LENGTH >= 0, and the
 * blank line. NULL when out of memory.
 */
char *http_head_build(const char *method, const char *path, const char *host, size_t host_len,
                      const char *const *headers, long long content_length, size_t *len);

/* Reads the status line "HTTP/1.<minor> <status>" at the start of HEAD into *MINOR (one digit)
 * and *STATUS (three digits). Returns whether it is one, with a status from 100. */
bool http_head_status(const char *head, int *minor, int *status);

#endif
