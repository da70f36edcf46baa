/*
 * In-memory byte streams that stand in for a connected socket: a bus tunnel is the
 * upstream connection of the gateway's HTTP client (http_upstream.h) and a client
 * connection of the worker's HTTP server (http_server.h). Each side has an end: the
 * provider of the stream calls the sink of the end that uses it, and that end calls the
 * stream's ops. No call is made from inside another: a sink only queues what it is given
 * and handles it on a later turn of the loop.
 */
#ifndef IG_HTTP_STREAM_H
#define IG_HTTP_STREAM_H

#include <stddef.h>

struct evbuffer;

/* How a stream hands its user (END) what the other side sends. */
struct http_stream_sink {
    /* Bytes from the other side; returns -1 when END takes no more (the stream ends). */
    int (*on_data)(void *end, const void *data, size_t len);
    /* The other side ended, cleanly or not; the stream is released: no call on it after
     * this one. */
    void (*on_end)(void *end);
};

/* What the user of a stream does with it (STREAM). */
struct http_stream_ops {
    /* Sends every byte of OUT (which it drains); returns 0, or -1 when the stream is gone. */
    int (*send)(void *stream, struct evbuffer *out);
    /* Nothing more will be sent (a half close, like shutdown(SHUT_WR)); NULL when the
     * stream has none. */
    void (*finish)(void *stream);
    /* The user is done with it: the stream is released, the exchange cancelled if it was
     * not complete. */
    void (*close)(void *stream);
};

#endif
