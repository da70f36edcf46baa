/*
 * An in-memory connection from the gateway's HTTP client to its own HTTP server: the client
 * end is an upstream stream (http_upstream.h, open_stream), the server end a connection
 * adopted by the server (http_server_adopt()). Bytes go straight into the other end's sink,
 * which only queues them (http_stream.h), so no socket and no extra loop turn is involved.
 */
#ifndef IG_BATCH_PIPE_H
#define IG_BATCH_PIPE_H

#include "http_stream.h"

struct http_server;

/* Opens a pipe into SRV as a client connection named PEER, for the HTTP client CLIENT fed
 * through SINK; returns the client's stream with *OPS (an upstream_open_stream_fn result),
 * or NULL when SRV refuses (stopping, at max_connections) or out of memory. The pipe frees
 * itself once both ends are done with it. */
void *batch_pipe_open(struct http_server *srv, const char *peer,
                      const struct http_stream_sink *sink, void *client,
                      const struct http_stream_ops **ops);

#endif
