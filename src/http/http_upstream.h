/*
 * Upstream HTTP client: libcurl multi driven by the caller's libevent loop. Connections are
 * kept alive and reused per upstream host by curl's connection cache. Response bodies are
 * delivered chunk by chunk as they arrive, with no buffering.
 */
#ifndef IG_HTTP_UPSTREAM_H
#define IG_HTTP_UPSTREAM_H

#include "http_stream.h"
#include "ig_error.h"

#include <stddef.h>

struct event_base;
struct upstream_pool;
struct upstream_req;

/* Callbacks of one transfer; ARG is the caller's. */
struct upstream_callbacks {
    /* Called once before the first body byte (or before on_done when there is no body). */
    void (*on_headers)(struct upstream_req *ureq, int status, const char *content_type,
                       void *arg);
    /* Called per received chunk; return 1 to pause (resume with upstream_resume()). */
    int (*on_data)(struct upstream_req *ureq, const char *data, size_t len, void *arg);
    /* Called once at the end: RC 0 on a complete response, else IG_E* with MESSAGE
     * (borrowed). The transfer is freed right after it returns. */
    void (*on_done)(struct upstream_req *ureq, int rc, const char *message, void *arg);
};

/* Opens an in-memory stream (http_stream.h) for the HTTP client's end CLIENT, fed through
 * SINK (callbacks never run before this returns); returns it with *OPS, or NULL when
 * refused. */
typedef void *(*upstream_open_stream_fn)(void *arg, const struct http_stream_sink *sink,
                                         void *client, const struct http_stream_ops **ops);

/* One request to send. */
struct upstream_spec {
    const char *method;  /* "GET", "POST", ... */
    const char *url;     /* absolute http(s) URL */
    const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
    const char *body;    /* borrowed; must live until on_done */
    size_t body_len;
    long timeout_ms;         /* whole transfer; 0 = none */
    long connect_timeout_ms; /* 0 = curl's default */
    /* A secret for the upstream (a model's apiKey), or NULL. It is sent as
     * "Authorization: Bearer KEY" and "x-api-key: KEY" (any Authorization, x-api-key or
     * api-key entry of HEADERS is dropped), and every occurrence of it in the response body
     * is replaced by "[redacted]" before on_data sees it. Copied by upstream_start(). */
    const char *api_key;
    /* PEM file of the CAs trusted for an https URL instead of the system's, or NULL.
     * Certificate and host name verification are always on. */
    const char *ca_file;
    /* Set for an upstream reached through something else than the network (a bus tunnel):
     * the connection is the in-memory stream it opens, used for this one transfer; the
     * URL's host is then only the Host header. */
    upstream_open_stream_fn open_stream;
    void *open_stream_arg;
};

/* Creates a pool on BASE; caller frees with upstream_pool_free(). */
struct upstream_pool *upstream_pool_new(struct event_base *base);

/* Cancels every transfer (no callbacks) and frees the pool; NULL is a no-op. */
void upstream_pool_free(struct upstream_pool *pool);

/* Starts a transfer; returns it (owned by the pool until on_done or upstream_cancel()) or
 * NULL when out of memory. Callbacks never run before this returns. */
struct upstream_req *upstream_start(struct upstream_pool *pool, const struct upstream_spec *spec,
                                    const struct upstream_callbacks *cb, void *arg);

/* Aborts a transfer; no callback runs after this. Safe from inside its own callbacks. */
void upstream_cancel(struct upstream_req *ureq);

/* Resumes a transfer paused by on_data returning 1. */
void upstream_resume(struct upstream_req *ureq);

/* Returns how many transfers are running. */
size_t upstream_pool_active(const struct upstream_pool *pool);

#endif
