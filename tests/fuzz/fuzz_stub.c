/* A loopback HTTP upstream for fuzz harnesses; see fuzz_stub.h. */
#include "fuzz_stub.h"
#include "fuzz_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PIECES 64
#define MAX_REQUEST_BYTES (32u << 20)

struct fuzz_stub_conn {
    struct fuzz_stub *stub;
    evutil_socket_t fd;
    struct event *read_ev;
    struct event *write_ev;
    struct evbuffer *in;
    struct evbuffer *out;
    size_t piece_ends[MAX_PIECES]; /* offsets in OUT, from the bytes already written */
    size_t n_pieces;
    size_t written;
    bool is_ending;
    struct fuzz_stub_conn *next;
};

struct fuzz_stub {
    struct event_base *base;
    evutil_socket_t listen_fd;
    struct event *accept_ev;
    fuzz_stub_request_fn fn;
    void *arg;
    struct fuzz_stub_conn *conns;
    size_t n_requests;
    int port;
};

/* Ends CONN's answer: the client reads what was sent, then the end of the stream. A close
 * with a reset instead of a FIN: http_native.c takes both as the end of the body, but a FIN
 * sent first would leave this side in TIME_WAIT once the client closes, one per run. */
static void conn_end(struct fuzz_stub_conn *conn)
{
    event_del(conn->read_ev);
    event_del(conn->write_ev);
    fuzz_net_close_reset(conn->fd);
    conn->fd = -1;
}

/* Frees one connection. */
static void conn_free(struct fuzz_stub_conn *conn)
{
    if (conn->read_ev != NULL)
        event_free(conn->read_ev);
    if (conn->write_ev != NULL)
        event_free(conn->write_ev);
    if (conn->in != NULL)
        evbuffer_free(conn->in);
    if (conn->out != NULL)
        evbuffer_free(conn->out);
    if (conn->fd >= 0)
        fuzz_net_close_reset(conn->fd);
    free(conn);
}

/* Returns the Content-Length of the request head HEAD (LEN bytes), 0 when absent. */
static size_t content_length(const char *head, size_t len)
{
    static const char name[] = "\r\ncontent-length:";
    size_t n = sizeof(name) - 1;

    for (size_t i = 0; i + n <= len; i++) {
        if (strncasecmp(head + i, name, n) != 0)
            continue;
        size_t value = 0;
        for (i += n; i < len && head[i] == ' '; i++)
            ;
        for (; i < len && head[i] >= '0' && head[i] <= '9' && value < MAX_REQUEST_BYTES; i++)
            value = value * 10 + (size_t)(head[i] - '0');
        return value;
    }
    return 0;
}

/* Hands every complete request buffered on CONN to the callback. */
static void parse_requests(struct fuzz_stub_conn *conn)
{
    for (;;) {
        struct evbuffer_ptr end = evbuffer_search(conn->in, "\r\n\r\n", 4, NULL);
        size_t head_len, body_len;
        char *text;

        if (end.pos < 0)
            return;
        head_len = (size_t)end.pos;
        text = (char *)evbuffer_pullup(conn->in, (ev_ssize_t)head_len + 4);
        body_len = content_length(text, head_len);
        if (evbuffer_get_length(conn->in) < head_len + 4 + body_len)
            return;
        text = (char *)evbuffer_pullup(conn->in, (ev_ssize_t)(head_len + 4 + body_len));
        conn->stub->n_requests++;
        conn->stub->fn(conn, text, head_len, text + head_len + 4, body_len, conn->stub->arg);
        evbuffer_drain(conn->in, head_len + 4 + body_len);
    }
}

/* Reads what the client sent. */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fuzz_stub_conn *conn = arg;
    (void)what;

    if (fuzz_net_recv(fd, conn->in) != 0)
        event_del(conn->read_ev); /* the client is gone; reset at the end */
    parse_requests(conn);
}

/* Writes the next piece of the answer (one piece per loop turn). */
static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fuzz_stub_conn *conn = arg;
    (void)what;

    while (conn->n_pieces > 0) {
        size_t want = conn->piece_ends[0] - conn->written;
        int n = want > 0 ? evbuffer_write_atmost(conn->out, fd, (ev_ssize_t)want) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) { /* the client is gone */
            evbuffer_drain(conn->out, evbuffer_get_length(conn->out));
            conn->n_pieces = 0;
            break;
        }
        conn->written += (size_t)n;
        if (conn->written < conn->piece_ends[0])
            return;
        conn->n_pieces--;
        memmove(conn->piece_ends, conn->piece_ends + 1, conn->n_pieces * sizeof(size_t));
        if (conn->n_pieces > 0)
            return; /* the next piece on the next turn */
    }
    if (conn->is_ending) {
        int unsent = 0;
        /* Everything written must have reached the client before the reset, which would
         * drop what is still in the send queue (loopback: sent is received). */
        if (ioctl(fd, SIOCOUTQ, &unsent) == 0 && unsent > 0)
            return;
        conn_end(conn);
        return;
    }
    event_del(conn->write_ev);
}

/* Accepts a connection. */
static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fuzz_stub *stub = arg;
    struct fuzz_stub_conn *conn;
    evutil_socket_t cfd;
    (void)what;

    cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        fuzz_net_close_reset(cfd);
        return;
    }
    conn->stub = stub;
    conn->fd = cfd;
    conn->read_ev = event_new(stub->base, cfd, EV_READ | EV_PERSIST, conn_read_cb, conn);
    conn->write_ev = event_new(stub->base, cfd, EV_WRITE | EV_PERSIST, conn_write_cb, conn);
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    if (conn->read_ev == NULL || conn->write_ev == NULL || conn->in == NULL || conn->out == NULL) {
        conn_free(conn);
        return;
    }
    conn->next = stub->conns;
    stub->conns = conn;
    event_add(conn->read_ev, NULL);
}

void fuzz_stub_write(struct fuzz_stub_conn *conn, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (conn->n_pieces == MAX_PIECES) { /* grow the last piece instead */
        conn->piece_ends[MAX_PIECES - 1] += len;
    } else {
        conn->piece_ends[conn->n_pieces] = conn->written + evbuffer_get_length(conn->out) + len;
        conn->n_pieces++;
    }
    evbuffer_add(conn->out, data, len);
    event_add(conn->write_ev, NULL);
}

void fuzz_stub_end(struct fuzz_stub_conn *conn)
{
    conn->is_ending = true;
    event_add(conn->write_ev, NULL);
}

struct fuzz_stub *fuzz_stub_new(struct event_base *base, fuzz_stub_request_fn fn, void *arg)
{
    struct fuzz_stub *stub = calloc(1, sizeof(*stub));
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof(addr);

    if (stub == NULL)
        return NULL;
    stub->base = base;
    stub->fn = fn;
    stub->arg = arg;
    stub->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (stub->listen_fd < 0 || bind(stub->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(stub->listen_fd, 16) != 0 ||
        getsockname(stub->listen_fd, (struct sockaddr *)&addr, &len) != 0)
        goto fail;
    stub->port = ntohs(addr.sin_port);
    stub->accept_ev = event_new(base, stub->listen_fd, EV_READ | EV_PERSIST, accept_cb, stub);
    if (stub->accept_ev == NULL || event_add(stub->accept_ev, NULL) != 0)
        goto fail;
    return stub;
fail:
    fuzz_stub_free(stub);
    return NULL;
}

int fuzz_stub_port(const struct fuzz_stub *stub)
{
    return stub->port;
}

size_t fuzz_stub_requests(const struct fuzz_stub *stub)
{
    return stub->n_requests;
}

void fuzz_stub_free(struct fuzz_stub *stub)
{
    if (stub == NULL)
        return;
    while (stub->conns != NULL) {
        struct fuzz_stub_conn *next = stub->conns->next;
        conn_free(stub->conns);
        stub->conns = next;
    }
    if (stub->accept_ev != NULL)
        event_free(stub->accept_ev);
    if (stub->listen_fd >= 0)
        close(stub->listen_fd);
    free(stub);
}
