/*
 * HTTP/1.1 front server on raw non-blocking sockets with libevent events and evbuffers.
 *
 * A connection reads one request at a time: the head (request line + headers) is searched
 * for its blank line, copied and parsed in place; the body follows by Content-Length or
 * chunked encoding. While a request is handled, reading continues only to notice the client
 * going away (EOF), which cancels the request. Pipelined input waits in the buffer, capped.
 *
 * Errors found here (bad request line, head or body too large, timeouts) are answered in
 * OpenAI's error shape and close the connection. A too-large body is answered at once and
 * the rest of it is read and thrown away for a short while ("lingering close"), so the
 * client sees the 413 rather than a reset.
 */
#include "http_server.h"
#include "http_parse.h"
#include "ig_errbody.h"
#include "ig_time.h"

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
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define DISCARD_LINGER_S 2
#define DISCARD_MAX_BYTES (64u << 20)
#define READ_CHUNK_BYTES (64u << 10)

#include "http_conn.h"

static void process_input(struct http_conn *conn);
static void conn_free(struct http_conn *conn);

/* Frees a request and everything it owns. */
static void request_free(struct http_request *req)
{
    if (req == NULL)
        return;
    http_head_release(&req->head);
    if (req->body != NULL)
        evbuffer_free(req->body);
    if (req->extra_headers != NULL)
        evbuffer_free(req->extra_headers);
    free(req);
}

/* Arms the connection timer for SECONDS; FOR_REQUEST tells a header timeout from idle. */
static void conn_arm_timer(struct http_conn *conn, int seconds, bool for_request)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    conn->is_timer_for_request = for_request;
    evtimer_add(conn->timer, &tv);
}

/* Closes the connection once the output buffer is written. */
static void conn_close_after_write(struct http_conn *conn)
{
    conn->state = CONN_CLOSING;
    event_active(conn->write_ev, EV_WRITE, 0);
}

/* Writes what the socket takes now (see http_conn.h); waits for writability only when something is left.
 * Writing at once (not on the next loop turn) saves a wake-up and two epoll_ctl calls per
 * response, and sends each streamed chunk without delay. */
void http_conn_flush(struct http_conn *conn)
{
    while (evbuffer_get_length(conn->out) > 0) {
        int n = evbuffer_write(conn->out, conn->fd);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EINTR))
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            /* The peer is gone; the read side notices and closes the connection. */
            evbuffer_drain(conn->out, evbuffer_get_length(conn->out));
            event_active(conn->read_ev, EV_READ, 0);
        }
        break;
    }
    if (evbuffer_get_length(conn->out) > 0) {
        if (!event_pending(conn->write_ev, EV_WRITE, NULL))
            event_add(conn->write_ev, NULL);
    } else if (event_pending(conn->write_ev, EV_WRITE, NULL)) {
        event_del(conn->write_ev);
    }
}

/* Writes a complete error response from the protocol layer and stops reading requests. */
static void conn_send_error(struct http_conn *conn, int status, const char *message,
                            const char *code, bool linger)
{
    struct evbuffer *out = conn->out;
    char *body = ig_error_body(status, message, code);
    size_t len = body != NULL ? strlen(body) : 0;

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        status, http_status_text(status), len);
    if (body != NULL)
        evbuffer_add(out, body, len);
    free(body);
    http_conn_flush(conn);
    request_free(conn->req);
    conn->req = NULL;
    if (linger) {
        conn->state = CONN_DISCARDING;
        conn_arm_timer(conn, DISCARD_LINGER_S, true);
        evbuffer_drain(conn->in,
                       evbuffer_get_length(conn->in));
    } else {
        evtimer_del(conn->timer);
        conn_close_after_write(conn);
    }
}

/* Frees a connection, cancelling its request if the handler still holds it. */
static void conn_free(struct http_conn *conn)
{
    struct http_server *srv = conn->srv;
    struct http_request *req = conn->req;

    conn->req = NULL;
    if (req != NULL && conn->state == CONN_HANDLING) {
        srv->n_busy--;
        if (req->cancel_cb != NULL)
            req->cancel_cb(req, req->cancel_arg);
    }
    request_free(req);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    srv->n_conns--;
    event_free(conn->timer);
    event_free(conn->read_ev);
    event_free(conn->write_ev);
    evbuffer_free(conn->in);
    evbuffer_free(conn->out);
    evutil_closesocket(conn->fd);
    free(conn);
}

/* Starts the body reader after a parsed head; returns false when the connection was
 * answered with an error. */
static bool start_body(struct http_conn *conn)
{
    struct http_request *req = conn->req;
    const char *te = http_head_get(&req->head, "transfer-encoding");
    const char *expect = http_head_get(&req->head, "expect");
    long long content_length = -1;
    int rc;

    rc = http_head_content_length(&req->head, &content_length);
    if (rc != 0) {
        conn_send_error(conn, 400, "invalid Content-Length header", "invalid_request", false);
        return false;
    }
    if (te != NULL) {
        if (strcasecmp(te, "chunked") != 0) {
            conn_send_error(conn, 501, "unsupported Transfer-Encoding", "invalid_request",
                            false);
            return false;
        }
        if (content_length >= 0) {
            conn_send_error(conn, 400, "both Content-Length and Transfer-Encoding given",
                            "invalid_request", false);
            return false;
        }
        conn->body_chunked = true;
    } else {
        conn->body_chunked = false;
        conn->body_need = content_length > 0 ? (size_t)content_length : 0;
    }
    if (content_length > (long long)conn->srv->opt.max_body_bytes) {
        conn_send_error(conn, 413, "request body too large", "request_too_large", true);
        return false;
    }
    conn->chunk_in_data = false;
    conn->chunk_in_trailer = false;
    req->body = evbuffer_new();
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && req->head.minor == 1 &&
        (conn->body_chunked || conn->body_need > 0))
    {
        evbuffer_add(conn->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        http_conn_flush(conn);
    }
    conn->state = CONN_READING_BODY;
    return true;
}

/* Parses as much of a chunked body as the input holds. Returns 1 when the body is complete,
 * 0 when more input is needed, -1 after answering an error. */
static int read_chunked(struct http_conn *conn, struct evbuffer *in)
{
    struct http_request *req = conn->req;
    size_t max = conn->srv->opt.max_body_bytes;

    for (;;) {
        if (conn->chunk_in_data) {
            size_t want = conn->body_need + 2;
            char crlf[2];
            if (evbuffer_get_length(in) < want)
                return 0;
            evbuffer_remove_buffer(in, req->body, conn->body_need);
            evbuffer_remove(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n') {
                conn_send_error(conn, 400, "malformed chunked body", "invalid_request", false);
                return -1;
            }
            conn->chunk_in_data = false;
            continue;
        }
        size_t line_len = 0;
        char *line = evbuffer_readln(in, &line_len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (evbuffer_get_length(in) > 1024) {
                conn_send_error(conn, 400, "malformed chunked body", "invalid_request", false);
                return -1;
            }
            return 0;
        }
        if (conn->chunk_in_trailer) {
            bool is_end = line_len == 0;
            free(line);
            if (is_end)
                return 1;
            continue;
        }
        char *end = NULL;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        bool is_bad = end == line || errno != 0 || (*end != '\0' && *end != ';');
        free(line);
        if (is_bad) {
            conn_send_error(conn, 400, "malformed chunk size", "invalid_request", false);
            return -1;
        }
        if (size > max || evbuffer_get_length(req->body) + size > max) {
            conn_send_error(conn, 413, "request body too large", "request_too_large", true);
            return -1;
        }
        if (size == 0) {
            conn->chunk_in_trailer = true;
            continue;
        }
        conn->body_need = (size_t)size;
        conn->chunk_in_data = true;
    }
}

/* Hands a complete request to the handler. */
static void dispatch(struct http_conn *conn)
{
    struct http_server *srv = conn->srv;
    struct http_request *req = conn->req;

    req->body_len = evbuffer_get_length(req->body);
    req->body_flat = (char *)evbuffer_pullup(req->body, -1);
    req->keep_alive = req->head.keep_alive && !srv->is_stopping;
    req->start_us = ig_now_us();
    conn->state = CONN_HANDLING;
    evtimer_del(conn->timer);
    srv->n_busy++;
    srv->handler(req, srv->handler_arg);
}

/* Reads and parses a request head from IN; returns false when waiting or after an error. */
static bool read_head(struct http_conn *conn, struct evbuffer *in)
{
    size_t max = conn->srv->opt.max_header_bytes;
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    size_t head_len;
    char *cause = NULL;

    if (end.pos < 0) {
        if (evbuffer_get_length(in) > max)
            conn_send_error(conn, 431, "request header too large", "header_too_large", false);
        return false;
    }
    head_len = (size_t)end.pos + 4;
    if (head_len > max) {
        conn_send_error(conn, 431, "request header too large", "header_too_large", false);
        return false;
    }
    conn->req = calloc(1, sizeof(*conn->req));
    if (conn->req == NULL) {
        conn_send_error(conn, 500, "out of memory", "internal_error", false);
        return false;
    }
    conn->req->conn = conn;
    if (http_head_parse(&conn->req->head, in, head_len, &cause) != 0) {
        int status = conn->req->head.minor < 0 ? 505 : 400;
        conn_send_error(conn, status, cause != NULL ? cause : "bad request", "invalid_request",
                        false);
        free(cause);
        return false;
    }
    return start_body(conn);
}

/* Runs the request state machine over buffered input until it needs more. */
static void process_input(struct http_conn *conn)
{
    struct evbuffer *in = conn->in;

    conn->is_processing = true;
    for (;;) {
        if (conn->state == CONN_READING_HEAD) {
            if (evbuffer_get_length(in) == 0)
                break;
            if (!conn->is_timer_for_request)
                conn_arm_timer(conn, conn->srv->opt.header_timeout_s, true);
            if (!read_head(conn, in))
                break;
        }
        if (conn->state == CONN_READING_BODY) {
            if (conn->body_chunked) {
                if (read_chunked(conn, in) != 1)
                    break;
            } else {
                if (evbuffer_get_length(in) < conn->body_need)
                    break;
                evbuffer_remove_buffer(in, conn->req->body, conn->body_need);
            }
            dispatch(conn);
        }
        if (conn->state != CONN_READING_HEAD)
            break;
    }
    conn->is_processing = false;
}

/* Called after a response completed: next request, or close. */
void http_request_finished(struct http_request *req)
{
    struct http_conn *conn = req->conn;
    struct http_server *srv = conn->srv;
    bool keep_alive = req->keep_alive && !srv->is_stopping;

    http_conn_flush(conn);
    srv->n_busy--;
    request_free(req);
    conn->req = NULL;
    if (!keep_alive) {
        conn_close_after_write(conn);
        return;
    }
    conn->state = CONN_READING_HEAD;
    conn_arm_timer(conn, srv->opt.idle_timeout_s, false);
    if (!conn->is_processing && evbuffer_get_length(conn->in) > 0)
        process_input(conn);
}

/* Reads what the socket has into IN. Returns 1 on data, 0 when nothing was there, -1 at
 * EOF or on an error (the peer is gone). One recv() per wake-up unless the buffer filled. */
static int conn_recv(struct http_conn *conn)
{
    char buf[READ_CHUNK_BYTES];
    int got = 0;

    for (;;) {
        ssize_t n = recv(conn->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            evbuffer_add(conn->in, buf, (size_t)n);
            got = 1;
            if ((size_t)n < sizeof(buf))
                return got;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return got;
        return -1;
    }
}

/* The socket is readable: read, then act according to the connection state. */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    struct evbuffer *in = conn->in;
    size_t cap = conn->srv->opt.max_header_bytes + conn->srv->opt.max_body_bytes;
    (void)fd;
    (void)what;

    if (conn_recv(conn) < 0) {
        /* A connection finishing its last answer still gets it written. */
        if ((conn->state == CONN_DISCARDING || conn->state == CONN_CLOSING) &&
            evbuffer_get_length(conn->out) > 0) {
            event_del(conn->read_ev);
            conn_close_after_write(conn);
        } else {
            conn_free(conn);
        }
        return;
    }
    switch (conn->state) {
    case CONN_DISCARDING:
        conn->discarded_bytes += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (conn->discarded_bytes > DISCARD_MAX_BYTES)
            conn_close_after_write(conn);
        return;
    case CONN_CLOSING:
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    case CONN_HANDLING:
        /* Pipelined input waits for the current answer, within a cap. */
        if (evbuffer_get_length(in) > cap)
            conn_free(conn);
        return;
    default:
        process_input(conn);
    }
}

/* The socket is writable (or a close was requested): write, finish closing, or wake a
 * paused stream. */
static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    (void)fd;
    (void)what;

    http_conn_flush(conn);
    if (evbuffer_get_length(conn->out) > 0)
        return;
    if (conn->state == CONN_CLOSING) {
        conn_free(conn);
        return;
    }
    if (conn->state == CONN_HANDLING && conn->req != NULL && conn->req->is_paused) {
        conn->req->is_paused = false;
        if (conn->req->drain_cb != NULL)
            conn->req->drain_cb(conn->req, conn->req->drain_arg);
    }
}

/* Idle or header timer: close idle connections, answer 408 to slow requests. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    (void)fd;
    (void)what;

    if (conn->state == CONN_DISCARDING || conn->state == CONN_CLOSING) {
        conn_free(conn);
        return;
    }
    if (conn->is_timer_for_request && evbuffer_get_length(conn->in) > 0)
        conn_send_error(conn, 408, "request not received in time", "request_timeout", false);
    else if (conn->state == CONN_READING_HEAD || conn->state == CONN_READING_BODY)
        conn_free(conn);
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

/* Accepts a connection (or closes it at once beyond max_connections). */
static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct http_server *srv = arg;
    struct http_conn *conn;
    int one = 1;
    (void)listener;
    (void)socklen;

    if (srv->n_conns >= srv->opt.max_connections || srv->is_stopping) {
        evutil_closesocket(fd);
        return;
    }
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->srv = srv;
    conn->fd = fd;
    conn->read_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_read_cb, conn);
    conn->write_ev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, conn);
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
        evutil_closesocket(fd);
        free(conn);
        return;
    }
    format_peer(sa, conn->peer, sizeof(conn->peer));
    conn->state = CONN_READING_HEAD;
    conn->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->n_conns++;
    event_add(conn->read_ev, NULL);
    conn_arm_timer(conn, srv->opt.idle_timeout_s, false);
}

struct http_server *http_server_new(struct event_base *base, const struct http_server_options *o,
                                    http_handler_fn handler, void *arg)
{
    struct http_server *srv = calloc(1, sizeof(*srv));

    if (srv == NULL)
        return NULL;
    srv->base = base;
    if (o != NULL)
        srv->opt = *o;
    if (srv->opt.max_body_bytes == 0)
        srv->opt.max_body_bytes = 16u << 20;
    if (srv->opt.max_header_bytes == 0)
        srv->opt.max_header_bytes = 64u << 10;
    if (srv->opt.idle_timeout_s <= 0)
        srv->opt.idle_timeout_s = 60;
    if (srv->opt.header_timeout_s <= 0)
        srv->opt.header_timeout_s = 30;
    if (srv->opt.max_connections == 0)
        srv->opt.max_connections = 4096;
    srv->handler = handler;
    srv->handler_arg = arg;
    return srv;
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
            conn_free(conn);
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
        conn_free(srv->conns);
    free(srv);
}
