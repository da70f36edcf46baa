/*
 * HTTP/1.1 front server on raw non-blocking sockets with libevent events and evbuffers:
 * the listener, accepting and refusing connections, and each connection's events and
 * lifecycle. Reading requests is http_request.c's, writing responses http_response.c's,
 * moving bytes (plain or TLS) http_conn_io.c's; they share http_conn.h.
 *
 * A connection reads one request at a time. While a request is handled, reading continues
 * only to notice the client going away (EOF), which cancels the request. Pipelined input
 * waits in the buffer, capped.
 *
 * Connection caps: beyond max_connections (in all) or max_connections_per_ip, a plain
 * HTTP connection gets a 503 in OpenAI's shape at once and is closed after a short
 * lingering read (so the client reads the answer instead of a reset); at most
 * MAX_REFUSING of those at a time, beyond that (and always over TLS, where answering
 * would cost a handshake) the connection is closed at once.
 */
#include "http_server.h"
#include "http_conn.h"
#include "http_cors.h"
#include "ig_errbody.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define DISCARD_MAX_BYTES (64u << 20)
#define MAX_REFUSING 64
#define REFUSE_LINGER_S 1
#define ACCEPT_PAUSE_MS 100

/* Closes the connection once the output buffer is written. */
void http_conn_close_after_write(struct http_conn *conn)
{
    conn->state = CONN_CLOSING;
    if (conn->stream != NULL && conn->sops->finish != NULL &&
        evbuffer_get_length(conn->out) == 0)
        conn->sops->finish(conn->stream); /* the answer is out: tell the client now */
    event_active(conn->write_ev, EV_WRITE, 0);
}

/* Frees a connection, cancelling its request if the handler still holds it. */
void http_conn_free(struct http_conn *conn)
{
    struct http_server *srv = conn->srv;
    struct http_request *req = conn->req;

    conn->req = NULL;
    if (req != NULL && conn->state == CONN_HANDLING) {
        srv->n_busy--;
        if (req->cancel_cb != NULL)
            req->cancel_cb(req, req->cancel_arg);
    }
    http_request_free(req);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    if (conn->is_refused)
        srv->n_refusing--;
    else
        srv->n_conns--;
    if (conn->is_peer_counted)
        http_peers_remove(srv->peers, &conn->peer_key);
    if (conn->ssl != NULL) {
        /* One close_notify, best effort (the socket is non-blocking). */
        if (!conn->is_ssl_failed && SSL_is_init_finished(conn->ssl))
            SSL_shutdown(conn->ssl);
        SSL_free(conn->ssl);
        ERR_clear_error();
    }
    event_free(conn->timer);
    event_free(conn->read_ev);
    event_free(conn->write_ev);
    evbuffer_free(conn->in);
    evbuffer_free(conn->out);
    if (conn->stream != NULL)
        conn->sops->close(conn->stream);
    if (conn->fd >= 0)
        evutil_closesocket(conn->fd);
    free(conn);
}

/* The socket is readable: read, then act according to the connection state. */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    struct evbuffer *in = conn->in;
    size_t cap = conn->srv->opt.max_header_bytes + conn->srv->opt.max_body_bytes;
    (void)fd;
    (void)what;

    if (conn->is_write_wanting_read) {
        conn->is_write_wanting_read = false;
        event_active(conn->write_ev, EV_WRITE, 0);
    }
    if (http_conn_recv(conn) < 0) {
        /* A connection finishing its last answer still gets it written. */
        if ((conn->state == CONN_DISCARDING || conn->state == CONN_CLOSING) &&
            evbuffer_get_length(conn->out) > 0) {
            event_del(conn->read_ev);
            http_conn_close_after_write(conn);
        } else {
            http_conn_free(conn);
        }
        return;
    }
    switch (conn->state) {
    case CONN_DISCARDING:
        conn->discarded_bytes += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (conn->discarded_bytes > DISCARD_MAX_BYTES)
            http_conn_close_after_write(conn);
        return;
    case CONN_CLOSING:
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    case CONN_HANDLING:
        /* Pipelined input waits for the current answer, within a cap. */
        if (evbuffer_get_length(in) > cap)
            http_conn_free(conn);
        return;
    default:
        http_conn_process_input(conn);
    }
}

/* The socket is writable (or a close was requested): write, finish closing, or wake a
 * paused stream. */
static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    (void)fd;
    (void)what;

    if (conn->is_read_wanting_write) {
        conn->is_read_wanting_write = false;
        event_active(conn->read_ev, EV_READ, 0);
    }
    http_conn_flush(conn);
    if (evbuffer_get_length(conn->out) > 0)
        return;
    if (conn->state == CONN_CLOSING) {
        http_conn_free(conn);
        return;
    }
    if (conn->state == CONN_HANDLING && conn->req != NULL && conn->req->is_paused) {
        conn->req->is_paused = false;
        if (conn->req->drain_cb != NULL)
            conn->req->drain_cb(conn->req, conn->req->drain_arg);
    }
}

/* Idle or request timer: close idle connections, answer 408 to slow requests. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    char message[96];
    (void)fd;
    (void)what;

    if (conn->state == CONN_DISCARDING || conn->state == CONN_CLOSING) {
        http_conn_free(conn);
        return;
    }
    if (conn->state == CONN_READING_BODY) {
        snprintf(message, sizeof(message), "request body not received within %d s",
                 conn->srv->opt.read_timeout_s);
        http_conn_send_error(conn, 408, message, "request_timeout", false);
    } else if (conn->state == CONN_READING_HEAD && conn->is_timer_for_request &&
               evbuffer_get_length(conn->in) > 0) {
        snprintf(message, sizeof(message), "request head not received within %d s",
                 conn->srv->opt.header_timeout_s);
        http_conn_send_error(conn, 408, message, "request_timeout", false);
    } else if (conn->state == CONN_READING_HEAD) {
        http_conn_free(conn); /* idle, or nothing of a request arrived in time */
    }
}

/* Formats the peer address of SA into BUF. */
static void format_peer(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, size, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, size, "[%s]:%d", host, port);
    } else {
        snprintf(buf, size, "unknown");
    }
}

/* Creates a connection for an accepted FD (read event not yet added); NULL when out of
 * memory (FD is then still the caller's). */
static struct http_conn *conn_new(struct http_server *srv, evutil_socket_t fd,
                                  const struct sockaddr *sa)
{
    struct http_conn *conn = calloc(1, sizeof(*conn));

    if (conn == NULL)
        return NULL;
    conn->srv = srv;
    conn->fd = fd;
    /* A stream's events have no descriptor: they are only ever activated by hand. */
    conn->read_ev = event_new(srv->base, fd, fd >= 0 ? EV_READ | EV_PERSIST : 0, conn_read_cb,
                              conn);
    conn->write_ev = event_new(srv->base, fd, fd >= 0 ? EV_WRITE | EV_PERSIST : 0,
                               conn_write_cb, conn);
    conn->timer = evtimer_new(srv->base, conn_timer_cb, conn);
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    if (conn->read_ev == NULL || conn->write_ev == NULL || conn->timer == NULL ||
        conn->in == NULL || conn->out == NULL) {
        if (conn->read_ev != NULL)
            event_free(conn->read_ev);
        if (conn->write_ev != NULL)
            event_free(conn->write_ev);
        if (conn->timer != NULL)
            event_free(conn->timer);
        if (conn->in != NULL)
            evbuffer_free(conn->in);
        if (conn->out != NULL)
            evbuffer_free(conn->out);
        free(conn);
        return NULL;
    }
    format_peer(sa, conn->peer, sizeof(conn->peer));
    conn->state = CONN_READING_HEAD;
    conn->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = conn;
    srv->conns = conn;
    return conn;
}

/* Answers a connection over a cap with 503 and closes it after a short lingering read; or
 * closes it at once over TLS, or when too many are being refused already. */
static void refuse(struct http_server *srv, evutil_socket_t fd, const struct sockaddr *sa,
                   bool is_per_ip)
{
    struct http_conn *conn;
    char message[160];
    char *body;
    size_t len;

    if (srv->tls != NULL || srv->n_refusing >= MAX_REFUSING) {
        evutil_closesocket(fd);
        return;
    }
    conn = conn_new(srv, fd, sa);
    if (conn == NULL) {
        evutil_closesocket(fd);
        return;
    }
    conn->is_refused = true;
    srv->n_refusing++;
    if (is_per_ip)
        snprintf(message, sizeof(message),
                 "too many connections from %s (limits.max_connections_per_ip: %zu)",
                 conn->peer, srv->opt.max_connections_per_ip);
    else
        snprintf(message, sizeof(message), "too many connections (limits.max_connections: %zu)",
                 srv->opt.max_connections);
    body = ig_error_body(503, message, "too_many_connections");
    len = body != NULL ? strlen(body) : 0;
    evbuffer_add_printf(conn->out,
                        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\nRetry-After: 1\r\n"
                        "X-Content-Type-Options: nosniff\r\n\r\n",
                        len);
    if (body != NULL)
        evbuffer_add(conn->out, body, len);
    free(body);
    conn->state = CONN_DISCARDING;
    event_add(conn->read_ev, NULL);
    http_conn_arm_timer(conn, REFUSE_LINGER_S, true);
    http_conn_flush(conn);
    if (evbuffer_get_length(conn->out) == 0)
        shutdown(fd, SHUT_WR); /* the answer is out: tell the client now */
}

/* Accepts a connection; refuses it beyond max_connections or max_connections_per_ip. */
static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct http_server *srv = arg;
    struct http_conn *conn;
    struct http_peer_key key;
    bool has_key;
    int one = 1;
    (void)listener;
    (void)socklen;

    if (srv->is_stopping) {
        evutil_closesocket(fd);
        return;
    }
    has_key = http_peer_key_from(sa, &key);
    if (srv->n_conns >= srv->opt.max_connections) {
        refuse(srv, fd, sa, false);
        return;
    }
    if (has_key && srv->opt.max_connections_per_ip > 0 &&
        http_peers_count(srv->peers, &key) >= srv->opt.max_connections_per_ip) {
        refuse(srv, fd, sa, true);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn = conn_new(srv, fd, sa);
    if (conn == NULL) {
        evutil_closesocket(fd);
        return;
    }
    srv->n_conns++;
    if (has_key && http_peers_add(srv->peers, &key) == 0) {
        conn->peer_key = key;
        conn->is_peer_counted = true;
    }
    if (srv->tls != NULL) {
        conn->ssl = http_tls_accept(srv->tls, fd);
        if (conn->ssl == NULL) {
            http_conn_free(conn);
            return;
        }
    }
    event_add(conn->read_ev, NULL);
    http_conn_start_request_timer(conn);
}

/* Stream sink: bytes from the client (queued; read on the next loop turn). */
static int stream_on_data(void *end, const void *data, size_t len)
{
    struct http_conn *conn = end;
    const struct http_server_options *opt = &conn->srv->opt;

    if (evbuffer_get_length(conn->in) + len > opt->max_header_bytes + opt->max_body_bytes ||
        evbuffer_add(conn->in, data, len) != 0)
        return -1;
    conn->has_stream_data = true;
    event_active(conn->read_ev, EV_READ, 0);
    return 0;
}

/* Stream sink: the client is gone; the stream with it. */
static void stream_on_end(void *end)
{
    struct http_conn *conn = end;

    conn->stream = NULL;
    conn->is_stream_eof = true;
    event_active(conn->read_ev, EV_READ, 0);
}

static const struct http_stream_sink stream_sink = {stream_on_data, stream_on_end};

int http_server_adopt(struct http_server *srv, void *stream, const struct http_stream_ops *ops,
                      const char *peer, const struct http_stream_sink **sink, void **end)
{
    struct sockaddr_storage none = {0};
    struct http_conn *conn;

    if (srv->is_stopping || srv->n_conns >= srv->opt.max_connections)
        return -1;
    conn = conn_new(srv, -1, (const struct sockaddr *)&none);
    if (conn == NULL)
        return -1;
    conn->stream = stream;
    conn->sops = ops;
    snprintf(conn->peer, sizeof(conn->peer), "%s", peer);
    srv->n_conns++;
    http_conn_start_request_timer(conn);
    *sink = &stream_sink;
    *end = conn;
    return 0;
}

/* Accepting again after a pause for lack of descriptors. */
static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *srv = arg;
    (void)fd;
    (void)what;

    if (srv->listener != NULL)
        evconnlistener_enable(srv->listener);
}

/* accept() failed. Out of descriptors (or kernel memory) the pending connection stays in
 * the queue and the socket stays readable: pause accepting for a moment instead of
 * spinning. */
static void accept_error_cb(struct evconnlistener *listener, void *arg)
{
    struct http_server *srv = arg;
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    int err = EVUTIL_SOCKET_ERROR();

    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return;
    evconnlistener_disable(listener);
    if (srv->accept_pause != NULL)
        evtimer_add(srv->accept_pause, &tv);
}

struct http_server *http_server_new(struct event_base *base, const struct http_server_options *o,
                                    http_handler_fn handler, void *arg)
{
    struct http_server *srv = calloc(1, sizeof(*srv));

    if (srv == NULL)
        return NULL;
    srv->base = base;
    http_server_set_options(srv, o);
    srv->peers = http_peers_new();
    srv->accept_pause = evtimer_new(base, accept_resume_cb, srv);
    if (srv->peers == NULL || srv->accept_pause == NULL) {
        http_server_free(srv);
        return NULL;
    }
    srv->handler = handler;
    srv->handler_arg = arg;
    return srv;
}

void http_server_set_options(struct http_server *srv, const struct http_server_options *o)
{
    struct http_server_options opt = {0};

    if (o != NULL)
        opt = *o;
    if (opt.max_body_bytes == 0)
        opt.max_body_bytes = 16u << 20;
    if (opt.max_header_bytes == 0)
        opt.max_header_bytes = 64u << 10;
    if (opt.max_url_bytes == 0)
        opt.max_url_bytes = 8u << 10;
    if (opt.idle_timeout_s <= 0)
        opt.idle_timeout_s = 60;
    if (opt.header_timeout_s <= 0)
        opt.header_timeout_s = 10;
    if (opt.read_timeout_s <= 0)
        opt.read_timeout_s = 60;
    if (opt.max_connections == 0)
        opt.max_connections = 4096;
    srv->opt = opt;
}

void http_server_get_options(const struct http_server *srv, struct http_server_options *o)
{
    *o = srv->opt;
}

void http_server_set_tls(struct http_server *srv, struct http_tls *tls)
{
    http_tls_free(srv->tls);
    srv->tls = tls;
}

const struct http_tls *http_server_tls(const struct http_server *srv)
{
    return srv->tls;
}

void http_server_set_cors(struct http_server *srv, struct http_cors *cors)
{
    http_cors_free(srv->cors);
    srv->cors = cors;
}

size_t http_server_connections(const struct http_server *srv)
{
    return srv->n_conns;
}

int http_server_listen(struct http_server *srv, const char *host, int port, char **cause)
{
    struct addrinfo hints = {0}, *res = NULL;
    char port_text[16];
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    int rc = IG_EIO;
    int gai;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port_text, sizeof(port_text), "%d", port);
    gai = getaddrinfo(host, port_text, &hints, &res);
    if (gai != 0) {
        if (cause != NULL && asprintf(cause, "cannot resolve %s: %s", host, gai_strerror(gai)) < 0)
            *cause = NULL;
        goto out;
    }
    srv->listener = evconnlistener_new_bind(
        srv->base, accept_cb, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        1024, res->ai_addr, (int)res->ai_addrlen);
    if (srv->listener == NULL) {
        if (cause != NULL &&
            asprintf(cause, "cannot listen on %s:%d: %s", host, port, strerror(errno)) < 0)
            *cause = NULL;
        goto out;
    }
    evconnlistener_set_error_cb(srv->listener, accept_error_cb);
    if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound,
                    &bound_len) == 0)
        srv->port = ntohs(bound.ss_family == AF_INET6
                              ? ((struct sockaddr_in6 *)&bound)->sin6_port
                              : ((struct sockaddr_in *)&bound)->sin_port);
    rc = 0;
out:
    if (res != NULL)
        freeaddrinfo(res);
    return rc;
}

int http_server_port(const struct http_server *srv)
{
    return srv->port;
}

void http_server_stop_accepting(struct http_server *srv)
{
    struct http_conn *conn = srv->conns, *next;

    srv->is_stopping = true;
    if (srv->listener != NULL) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    for (; conn != NULL; conn = next) {
        next = conn->next;
        if (conn->state == CONN_READING_HEAD &&
            evbuffer_get_length(conn->in) == 0)
            http_conn_free(conn);
    }
}

size_t http_server_busy_requests(const struct http_server *srv)
{
    return srv->n_busy;
}

void http_server_free(struct http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->listener != NULL)
        evconnlistener_free(srv->listener);
    while (srv->conns != NULL)
        http_conn_free(srv->conns);
    if (srv->accept_pause != NULL)
        event_free(srv->accept_pause);
    http_peers_free(srv->peers);
    http_tls_free(srv->tls);
    http_cors_free(srv->cors);
    free(srv);
}
