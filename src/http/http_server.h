/*
 * HTTP/1.1 front server on libevent: keep-alive, Content-Length and chunked request bodies,
 * hard caps on URLs, headers, bodies and connections (in all and per client address), head
 * and read deadlines, idle timeouts, optional TLS, CORS applied to every route, and
 * responses either whole (Content-Length) or streamed (chunked, flushed per write).
 * Every response carries X-Content-Type-Options: nosniff.
 *
 * A request object belongs to its connection. The handler answers it with http_respond()
 * or http_stream_start()/http_stream_write()/http_stream_end(); after the answer is
 * complete, or after the cancel callback ran (client gone), the handler must not touch it.
 */
#ifndef IG_HTTP_SERVER_H
#define IG_HTTP_SERVER_H

#include "http_stream.h"
#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct evbuffer;
struct http_server;
struct http_request;
struct http_tls;
struct http_cors;

/* Called once per complete request (headers and body read). */
typedef void (*http_handler_fn)(struct http_request *req, void *arg);

/* Called when the client disconnects before the response completed; REQ dies after it. */
typedef void (*http_cancel_fn)(struct http_request *req, void *arg);

/* Called when a streamed response's output buffer drained below the low mark. */
typedef void (*http_drain_fn)(struct http_request *req, void *arg);

/* Server limits; zero fields take the defaults named in the comments. */
struct http_server_options {
    size_t max_body_bytes;   /* 16 MiB; larger bodies get 413 */
    size_t max_header_bytes; /* 64 KiB; larger request heads get 431 */
    size_t max_url_bytes;    /* 8 KiB; longer request targets get 414 */
    int idle_timeout_s;      /* 60; keep-alive connection with no request */
    int header_timeout_s;    /* 10; a request head must arrive within this from its first byte
                              * (from the accept for a new connection), else 408 */
    int read_timeout_s;      /* 60; a whole request (head and body) must arrive within this
                              * from its first byte, else 408 */
    size_t max_connections;  /* 4096; further connections get a 503 (plain HTTP) or are
                              * closed at once (TLS) */
    size_t max_connections_per_ip; /* 0: no per-address cap; beyond it as max_connections */
};

/* Creates a server on BASE calling HANDLER(req, ARG); caller frees with http_server_free(). */
struct http_server *http_server_new(struct event_base *base, const struct http_server_options *o,
                                    http_handler_fn handler, void *arg);

/* Binds and listens on HOST:PORT (IPv4 or IPv6 literal or name). Returns 0 or IG_EIO with
 * *CAUSE set (caller frees). PORT 0 picks a free port, readable with http_server_port(). */
int http_server_listen(struct http_server *srv, const char *host, int port, char **cause) IG_WUR;

/* Serves the in-memory stream STREAM (driven through OPS; http_stream.h) like an accepted
 * client named PEER, in plain HTTP; returns 0 with the connection's *SINK and *END for the
 * stream to feed, or -1 when stopping, at max_connections or out of memory. */
int http_server_adopt(struct http_server *srv, void *stream, const struct http_stream_ops *ops,
                      const char *peer, const struct http_stream_sink **sink, void **end) IG_WUR;
/* Returns the bound port. */
int http_server_port(const struct http_server *srv);

/* Replaces the limits (zero fields: defaults); new connections and requests use them. */
void http_server_set_options(struct http_server *srv, const struct http_server_options *o);

/* Copies the limits in use into *O. */
void http_server_get_options(const struct http_server *srv, struct http_server_options *o);

/* Makes new connections speak TLS with TLS (taken; NULL: plain HTTP). Existing connections
 * keep the certificate they started with. */
void http_server_set_tls(struct http_server *srv, struct http_tls *tls);

/* Returns the certificate in use (borrowed) or NULL for plain HTTP. */
const struct http_tls *http_server_tls(const struct http_server *srv);

/* Sets the CORS policy (taken; NULL: none, preflights reach the handler). */
void http_server_set_cors(struct http_server *srv, struct http_cors *cors);

/* Returns the number of open connections (those being refused not counted). */
size_t http_server_connections(const struct http_server *srv);

/* Stops accepting and closes idle keep-alive connections; busy ones close after their
 * response. */
void http_server_stop_accepting(struct http_server *srv);

/* Returns the number of requests being handled (read, not yet fully answered). */
size_t http_server_busy_requests(const struct http_server *srv);

/* Closes every connection (cancelling their requests) and frees; NULL is a no-op. */
void http_server_free(struct http_server *srv);

/* Request accessors; returned strings are borrowed and live as long as REQ. */
const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);  /* without the query */
const char *http_request_query(const struct http_request *req); /* after '?', or "" */
const char *http_request_header(const struct http_request *req, const char *name);
const char *http_request_body(const struct http_request *req, size_t *len);
const char *http_request_peer(const struct http_request *req);
/* Returns the microsecond monotonic time the request was fully read. */
unsigned long long http_request_start_us(const struct http_request *req);

/* Sets the callback run if the client goes away before the answer completes. */
void http_request_set_cancel_cb(struct http_request *req, http_cancel_fn cb, void *arg);

/* Adds a response header (copied); call before http_respond()/http_stream_start(). */
void http_response_add_header(struct http_request *req, const char *name, const char *value);

/* Adds the headers for an HTML page (the UI): X-Frame-Options: DENY, Referrer-Policy:
 * no-referrer and a Content-Security-Policy allowing only same-origin scripts, styles,
 * images (and data: images), fonts and connections, no plugins, no framing. */
void http_response_add_security_headers(struct http_request *req);

/* Sends a whole response (BODY copied) and completes REQ. */
void http_respond(struct http_request *req, int status, const char *content_type,
                  const char *body, size_t len);

/* Sends a whole response taking the contents of BODY (drained, still caller's to free) and
 * completes REQ. */
void http_respond_buffer(struct http_request *req, int status, const char *content_type,
                         struct evbuffer *body);

/* Starts a streamed response (chunked on HTTP/1.1). */
void http_stream_start(struct http_request *req, int status, const char *content_type);

/* Appends DATA to a streamed response; returns 1 when the client is slow and the caller
 * should pause until the drain callback, else 0. */
int http_stream_write(struct http_request *req, const void *data, size_t len);

/* Sets the drain callback for a paused stream. */
void http_request_set_drain_cb(struct http_request *req, http_drain_fn cb, void *arg);

/* Ends a streamed response and completes REQ. */
void http_stream_end(struct http_request *req);

/* Ends a streamed response abruptly (connection closed without the final chunk). */
void http_stream_abort(struct http_request *req);

/* Returns the reason phrase for an HTTP status. */
const char *http_status_text(int status);

#endif
