/*
 * Plain-HTTP/1.1 upstream client for http:// URLs with a literal address or "localhost":
 * the fast path under http_upstream.c (which keeps libcurl for everything else, e.g. TLS
 * and host names). Keep-alive connections are pooled per address. Internal to src/http.
 */
#ifndef IG_HTTP_NATIVE_H
#define IG_HTTP_NATIVE_H

#include "http_upstream.h"

#include <stdbool.h>
#include <sys/socket.h>

struct native_pool;
struct native_req;

/* What the native client reports; OWNER is the caller's handle. */
struct native_callbacks {
    void (*on_headers)(void *owner, int status, const char *content_type);
    int (*on_data)(void *owner, const char *data, size_t len);
    void (*on_done)(void *owner, int rc, const char *message);
};

/* Creates a connection pool on BASE; free with native_pool_free(). */
struct native_pool *native_pool_new(struct event_base *base);

/* Closes every connection and frees; no callbacks run. NULL is a no-op. */
void native_pool_free(struct native_pool *pool);

/* Returns whether URL is one the native client serves (http://IP[:port]/..., or
 * http://localhost[:port]/...). */
bool native_can_serve(const char *url);

/* Parses URL, http:// with a literal address or "localhost", into *ADDR and *LEN and sets
 * *HOST_END to the end of its authority; returns false for any other URL. */
bool native_literal_url(const char *url, struct sockaddr_storage *addr, socklen_t *len,
                        const char **host_end);

/* Starts a transfer; callbacks run later, never before this returns. Returns NULL when
 * out of memory. */
struct native_req *native_start(struct native_pool *pool, const struct upstream_spec *spec,
                                const struct native_callbacks *cb, void *owner);

/* Aborts a transfer (its connection is closed); no callback runs after. Safe from inside
 * its own callbacks. */
void native_cancel(struct native_req *req);

/* Resumes a transfer whose on_data returned 1. */
void native_resume(struct native_req *req);

#endif
