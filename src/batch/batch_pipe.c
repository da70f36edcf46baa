/*
 * The in-memory client-to-server pipe (see batch_pipe.h).
 *
 * Each end is "done" once it closed the pipe or was told the end (its sink's on_end): after
 * either, it makes no more calls on its stream. The pipe is freed when both ends are done.
 * A server that finishes (half close after its answer) or closes ends the client's side
 * after the bytes it sent; a client that closes first cancels the server's request.
 */
#include "batch_pipe.h"
#include "http_server.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdlib.h>

struct batch_pipe;

/* One end's stream handle. */
struct pipe_side {
    struct batch_pipe *pipe;
    bool is_server;
};

struct batch_pipe {
    struct pipe_side client_side, server_side;
    const struct http_stream_sink *client_sink, *server_sink; /* NULL once that end is done */
    void *client, *server;
    bool is_client_done, is_server_done;
};

/* Frees PIPE once both ends are done. */
static void maybe_free(struct batch_pipe *pipe)
{
    if (pipe->is_client_done && pipe->is_server_done)
        free(pipe);
}

/* Tells the client end (when not done) that the stream ended. */
static void end_client(struct batch_pipe *pipe)
{
    const struct http_stream_sink *sink = pipe->client_sink;

    if (sink == NULL)
        return;
    pipe->client_sink = NULL;
    pipe->is_client_done = true;
    sink->on_end(pipe->client);
}

/* Tells the server end (when not done) that the stream ended. */
static void end_server(struct batch_pipe *pipe)
{
    const struct http_stream_sink *sink = pipe->server_sink;

    if (sink == NULL)
        return;
    pipe->server_sink = NULL;
    pipe->is_server_done = true;
    sink->on_end(pipe->server);
}

/* Stream op: bytes from one end go to the other end's sink. */
static int pipe_send(void *stream, struct evbuffer *out)
{
    struct pipe_side *side = stream;
    struct batch_pipe *pipe = side->pipe;
    const struct http_stream_sink *to = side->is_server ? pipe->client_sink : pipe->server_sink;
    size_t len = evbuffer_get_length(out);
    int rc = -1;

    if (to != NULL && len > 0) {
        const unsigned char *data = evbuffer_pullup(out, -1);
        rc = data != NULL ? to->on_data(side->is_server ? pipe->client : pipe->server, data, len)
                          : -1;
        if (rc != 0) { /* that end takes no more: it ends */
            if (side->is_server)
                end_client(pipe);
            else
                end_server(pipe);
        }
    } else if (to != NULL) {
        rc = 0;
    }
    evbuffer_drain(out, len);
    return rc;
}

/* Stream op: the server sent its whole answer; the client sees the end after it. A client's
 * half close changes nothing (the server still answers). */
static void pipe_finish(void *stream)
{
    struct pipe_side *side = stream;

    if (side->is_server)
        end_client(side->pipe);
}

/* Stream op: one end is done with the pipe; the other sees the end. */
static void pipe_close(void *stream)
{
    struct pipe_side *side = stream;
    struct batch_pipe *pipe = side->pipe;

    if (side->is_server) {
        pipe->server_sink = NULL;
        pipe->is_server_done = true;
        end_client(pipe);
    } else {
        pipe->client_sink = NULL;
        pipe->is_client_done = true;
        end_server(pipe);
    }
    maybe_free(pipe);
}

static const struct http_stream_ops pipe_ops = {pipe_send, pipe_finish, pipe_close};

void *batch_pipe_open(struct http_server *srv, const char *peer,
                      const struct http_stream_sink *sink, void *client,
                      const struct http_stream_ops **ops)
{
    struct batch_pipe *pipe = calloc(1, sizeof(*pipe));

    if (pipe == NULL)
        return NULL;
    pipe->client_side = (struct pipe_side){pipe, false};
    pipe->server_side = (struct pipe_side){pipe, true};
    pipe->client_sink = sink;
    pipe->client = client;
    if (http_server_adopt(srv, &pipe->server_side, &pipe_ops, peer, &pipe->server_sink,
                          &pipe->server) != 0) {
        free(pipe);
        return NULL;
    }
    *ops = &pipe_ops;
    return &pipe->client_side;
}
