/*
 * Internals shared by the front server's files: http_server.c (listener, connections and
 * their events), http_request.c (reading requests, deadlines, protocol errors),
 * http_conn_io.c (socket and TLS reads and writes) and http_response.c (request accessors,
 * response writing). Not for use outside src/http.
 */
#ifndef IG_HTTP_CONN_H
#define IG_HTTP_CONN_H

#include "http_parse.h"
#include "http_peers.h"
#include "http_server.h"
#include "http_stream.h"
#include "http_tls.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#define STREAM_HIGH_WATER_BYTES (1u << 20)

enum conn_state {
    CONN_READING_HEAD, /* waiting for (the rest of) a request head */
    CONN_READING_BODY, /* head parsed, body incomplete */
    CONN_HANDLING,     /* request given to the handler, response not complete */
    CONN_DISCARDING,   /* error sent; draining input until EOF or the linger timer */
    CONN_CLOSING,      /* last response queued; close once written */
};

struct http_conn;

struct http_request {
    struct http_conn *conn;
    struct http_head head;
    struct evbuffer *body;
    char *body_flat;
    size_t body_len;
    bool keep_alive;
    bool is_chunked_out;
    bool is_streaming;
    bool is_paused;
    bool has_nosniff; /* the handler set X-Content-Type-Options itself */
    struct evbuffer *extra_headers;
    http_cancel_fn cancel_cb;
    void *cancel_arg;
    http_drain_fn drain_cb;
    void *drain_arg;
    uint64_t start_us;
};

struct http_conn {
    struct http_server *srv;
    evutil_socket_t fd;                     /* -1 for a stream */
    void *stream;                           /* set: an in-memory stream, not a socket */
    const struct http_stream_ops *sops;
    bool has_stream_data;                   /* the stream brought bytes not yet reported */
    bool is_stream_eof;                     /* the stream's other side ended */
    struct event *read_ev;
    struct event *write_ev; /* pending only while output waits for the socket */
    struct evbuffer *in;
    struct evbuffer *out;
    struct event *timer;
    struct http_conn *prev, *next;
    enum conn_state state;
    struct http_request *req;
    /* Body reading state. */
    bool body_chunked;
    size_t body_need;      /* Content-Length bytes still expected, or current chunk bytes */
    bool chunk_in_data;    /* inside a chunk's data (plus its CRLF) */
    bool chunk_in_trailer; /* after the last chunk, reading trailers */
    bool is_processing;    /* process_input() is on the stack */
    bool is_timer_for_request;
    uint64_t request_start_ms; /* first byte of the request being read (or the accept) */
    size_t discarded_bytes;
    char peer[64];
    struct http_peer_key peer_key;
    bool is_peer_counted; /* counted in srv->peers */
    bool is_refused;      /* over a connection cap: answered 503, counted in n_refusing */
    /* TLS (NULL on plain HTTP). */
    SSL *ssl;
    bool is_ssl_eof;          /* the peer closed; report it after the data read with it */
    bool is_ssl_failed;       /* fatal TLS error: no close_notify may be sent */
    bool is_read_wanting_write; /* SSL_read needs the socket writable */
    bool is_write_wanting_read; /* SSL_write needs the socket readable */
};

struct http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *accept_pause; /* re-enables accepting after running out of descriptors */
    struct http_server_options opt;
    http_handler_fn handler;
    void *handler_arg;
    struct http_conn *conns;
    size_t n_conns;    /* open connections, refused ones not counted */
    size_t n_refusing; /* connections being answered 503 */
    size_t n_busy;
    struct http_peers *peers;
    struct http_tls *tls;
    struct http_cors *cors;
    bool is_stopping;
    int port;
    /* Exposure, recorded by http_front_listen() for checks at reload. */
    bool is_exposed;    /* listening on a non-loopback address */
    bool allow_no_auth; /* serve --insecure-no-auth */
    char listen_addr[300];
};

/* Writes what the socket takes now; arms the write event only when something is left. */
void http_conn_flush(struct http_conn *conn);

/* Reads what the socket has into conn->in (decrypting over TLS). Returns 1 on data, 0 when
 * nothing was there, -1 at EOF or on an error (the peer is gone). */
int http_conn_recv(struct http_conn *conn);

/* Runs the request state machine over buffered input until it needs more. */
void http_conn_process_input(struct http_conn *conn);

/* Answers STATUS in OpenAI's error shape from the protocol layer (the request, if any, is
 * freed) and stops reading requests: closes after the write, or with LINGER reads and
 * drops input for a short while first. */
void http_conn_send_error(struct http_conn *conn, int status, const char *message,
                          const char *code, bool linger);

/* Arms the connection timer for SECONDS; FOR_REQUEST tells a request deadline from idle. */
void http_conn_arm_timer(struct http_conn *conn, int seconds, bool for_request);

/* Starts the deadlines of a request whose first byte (or connection) is here now. */
void http_conn_start_request_timer(struct http_conn *conn);

/* Closes the connection once the output buffer is written. */
void http_conn_close_after_write(struct http_conn *conn);

/* Frees a connection, cancelling its request if the handler still holds it. */
void http_conn_free(struct http_conn *conn);

/* Frees a request and everything it owns; NULL is a no-op. */
void http_request_free(struct http_request *req);

/* Called after a response completed: next request on the connection, or close. */
void http_request_finished(struct http_request *req);

#endif
