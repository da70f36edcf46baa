/*
 * HTTP/1.1 front server on raw non-blocking sockets with libevent events and evbuffers.
 *
 * A connection reads one request at a time: the head (request line + headers) is searched
 * for its blank line, copied and parsed in place; the body follows by Content-Length or
 * chunked encoding. While a request is handled, reading continues only to notice the client
 * going away (EOF), which cancels the request. Pipelined input waits in the buffer, capped.
 *
 * Errors found here (bad request line, URL, head or body too large, timeouts) are answered
 * in OpenAI's error shape and close the connection. A too-large body is answered at once
 * and the rest of it is read and thrown away for a short while ("lingering close"), so the
 * client sees the 413 rather than a reset.
 *
 * Deadlines (slowloris): a request head must be complete within header_timeout_s of its
 * first byte, and the whole request within read_timeout_s; a new connection gets the head
 * deadline from its accept, so one that sends nothing (or trickles a TLS handshake) is
 * closed by then too. Between requests, idle_timeout_s applies. Nothing a client sends
 * extends a deadline.
 *
 * Connection caps: beyond max_connections (in all) or max_connections_per_ip, a plain
 * HTTP connection gets a 503 in OpenAI's shape at once and is closed after a short
 * lingering read (so the client reads the answer instead of a reset); at most
 * MAX_REFUSING of those at a time, beyond that (and always over TLS, where answering
 * would cost a handshake) the connection is closed at once.
 *
 * TLS: the same state machine over SSL_read/SSL_write on the non-blocking socket. The
 * handshake runs inside the first reads. SSL_read may need the socket writable and
 * SSL_write readable (TLS 1.3 key updates); each case waits on the other event once.
 */
#include "http_server.h"
#include "http_cors.h"
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#define DISCARD_LINGER_S 2
#define DISCARD_MAX_BYTES (64u << 20)
#define READ_CHUNK_BYTES (64u << 10)
#define TLS_READ_BUDGET_BYTES (256u << 10) /* per wake-up, then yield to other connections */
#define TLS_RECORD_BYTES 16384
#define MAX_REFUSING 64
#define REFUSE_LINGER_S 1
#define ACCEPT_PAUSE_MS 100
#define REQUEST_LINE_SLACK_BYTES 64 /* method, spaces and version around the URL */

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

/* Arms the connection timer for SECONDS; FOR_REQUEST tells a request deadline from idle. */
static void conn_arm_timer(struct http_conn *conn, int seconds, bool for_request)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    conn->is_timer_for_request = for_request;
    evtimer_add(conn->timer, &tv);
}

/* Starts the deadlines of a request whose first byte (or connection) is here now. */
static void conn_start_request_timer(struct http_conn *conn)
{
    conn->request_start_ms = ig_now_ms();
    conn_arm_timer(conn, conn->srv->opt.header_timeout_s, true);
}

/* Re-arms the timer for what is left of the whole-request deadline (read_timeout_s). */
static void conn_arm_read_deadline(struct http_conn *conn)
{
    uint64_t end_ms = conn->request_start_ms + (uint64_t)conn->srv->opt.read_timeout_s * 1000u;
    uint64_t now_ms = ig_now_ms();
    uint64_t left_ms = end_ms > now_ms ? end_ms - now_ms : 1;
    struct timeval tv = {.tv_sec = (time_t)(left_ms / 1000),
                         .tv_usec = (suseconds_t)(left_ms % 1000) * 1000};

    conn->is_timer_for_request = true;
    evtimer_add(conn->timer, &tv);
}

/* Closes the connection once the output buffer is written. */
static void conn_close_after_write(struct http_conn *conn)
{
    conn->state = CONN_CLOSING;
    event_active(conn->write_ev, EV_WRITE, 0);
}

/* Writes one TLS record's worth of CONN's output. Returns 1 when bytes were written, 0 when
 * the socket is full, -2 when TLS needs to read first, -1 after a fatal error (the output is
 * dropped and the read side notices the connection is gone). */
static int conn_ssl_write(struct http_conn *conn)
{
    size_t len = evbuffer_get_length(conn->out);
    size_t n = len < TLS_RECORD_BYTES ? len : TLS_RECORD_BYTES;
    unsigned char *data = evbuffer_pullup(conn->out, (ev_ssize_t)n);
    int written, err;

    if (conn->is_ssl_failed || data == NULL) {
        evbuffer_drain(conn->out, len);
        return -1;
    }
    ERR_clear_error();
    written = SSL_write(conn->ssl, data, (int)n);
    if (written > 0) {
        evbuffer_drain(conn->out, (size_t)written);
        return 1;
    }
    err = SSL_get_error(conn->ssl, written);
    if (err == SSL_ERROR_WANT_WRITE)
        return 0;
    if (err == SSL_ERROR_WANT_READ) {
        conn->is_write_wanting_read = true;
        return -2;
    }
    conn->is_ssl_failed = true;
    ERR_clear_error();
    evbuffer_drain(conn->out, len);
    event_active(conn->read_ev, EV_READ, 0);
    return -1;
}

/* Writes what the socket takes now (see http_conn.h); waits for writability only when something is left.
 * Writing at once (not on the next loop turn) saves a wake-up and two epoll_ctl calls per
 * response, and sends each streamed chunk without delay. */
void http_conn_flush(struct http_conn *conn)
{
    bool is_waiting_read = false;

    while (evbuffer_get_length(conn->out) > 0) {
        if (conn->ssl != NULL) {
            int rc = conn_ssl_write(conn);
            if (rc > 0)
                continue;
            is_waiting_read = rc == -2;
            break;
        }
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
    if (evbuffer_get_length(conn->out) > 0 && !is_waiting_read) {
        if (!event_pending(conn->write_ev, EV_WRITE, NULL))
            event_add(conn->write_ev, NULL);
    } else if (event_pending(conn->write_ev, EV_WRITE, NULL) && !conn->is_read_wanting_write) {
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
                        "Content-Length: %zu\r\nConnection: close\r\n"
                        "X-Content-Type-Options: nosniff\r\n",
                        status, http_status_text(status), len);
    if (conn->req != NULL && conn->req->head.method != NULL && conn->srv->cors != NULL)
        http_cors_add_response_headers(conn->srv->cors,
                                       http_head_get(&conn->req->head, "origin"), out);
    evbuffer_add(out, "\r\n", 2);
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
    if (conn->body_chunked || conn->body_need > 0)
        conn_arm_read_deadline(conn);
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
    if (srv->cors != NULL && http_cors_handle(srv->cors, req))
        return; /* a preflight, answered */
    srv->handler(req, srv->handler_arg);
}

/* Returns the length of the request target in the parsed HEAD. */
static size_t target_length(const struct http_head *head)
{
    size_t n = strlen(head->path);

    if (head->query[0] != '\0')
        n += 1 + strlen(head->query);
    return n;
}

/* Answers 414 for a request target longer than the cap. */
static void send_url_too_long(struct http_conn *conn)
{
    char message[96];

    snprintf(message, sizeof(message), "request URL longer than %zu bytes",
             conn->srv->opt.max_url_bytes);
    conn_send_error(conn, 414, message, "url_too_long", false);
}

/* Reads and parses a request head from IN; returns false when waiting or after an error. */
static bool read_head(struct http_conn *conn, struct evbuffer *in)
{
    size_t max = conn->srv->opt.max_header_bytes;
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    size_t head_len;
    char *cause = NULL;

    if (end.pos < 0) {
        size_t line_cap = conn->srv->opt.max_url_bytes + REQUEST_LINE_SLACK_BYTES;
        if (evbuffer_get_length(in) > line_cap) {
            struct evbuffer_ptr eol = evbuffer_search(in, "\r\n", 2, NULL);
            if (eol.pos < 0 || (size_t)eol.pos > line_cap) {
                send_url_too_long(conn);
                return false;
            }
        }
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
    if (target_length(&conn->req->head) > conn->srv->opt.max_url_bytes) {
        send_url_too_long(conn);
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
                conn_start_request_timer(conn);
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

/* conn_recv() over TLS: decrypts what arrived (the handshake runs in here too). Reads until
 * TLS wants more from the socket, since a record OpenSSL already buffered would not wake the
 * loop again, but no more than a budget per wake-up (the rest is read on the next turn). */
static int conn_ssl_recv(struct http_conn *conn)
{
    char buf[TLS_RECORD_BYTES];
    size_t total = 0;
    int got = 0;

    if (conn->is_ssl_eof || conn->is_ssl_failed)
        return -1;
    for (;;) {
        int n, err;

        if (total >= TLS_READ_BUDGET_BYTES) {
            event_active(conn->read_ev, EV_READ, 0);
            return got;
        }
        ERR_clear_error();
        n = SSL_read(conn->ssl, buf, sizeof(buf));
        if (n > 0) {
            evbuffer_add(conn->in, buf, (size_t)n);
            total += (size_t)n;
            got = 1;
            continue;
        }
        err = SSL_get_error(conn->ssl, n);
        if (err == SSL_ERROR_WANT_READ)
            return got;
        if (err == SSL_ERROR_WANT_WRITE) {
            conn->is_read_wanting_write = true;
            if (!event_pending(conn->write_ev, EV_WRITE, NULL))
                event_add(conn->write_ev, NULL);
            return got;
        }
        /* Closed (close_notify or not) or failed: report it after the data read with it. */
        if (err != SSL_ERROR_ZERO_RETURN)
            conn->is_ssl_failed = true;
        conn->is_ssl_eof = true;
        ERR_clear_error();
        if (got)
            event_active(conn->read_ev, EV_READ, 0);
        return got ? 1 : -1;
    }
}

/* Reads what the socket has into IN. Returns 1 on data, 0 when nothing was there, -1 at
 * EOF or on an error (the peer is gone). One recv() per wake-up unless the buffer filled. */
static int conn_recv(struct http_conn *conn)
{
    char buf[READ_CHUNK_BYTES];
    int got = 0;

    if (conn->ssl != NULL)
        return conn_ssl_recv(conn);
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

    if (conn->is_write_wanting_read) {
        conn->is_write_wanting_read = false;
        event_active(conn->write_ev, EV_WRITE, 0);
    }
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

    if (conn->is_read_wanting_write) {
        conn->is_read_wanting_write = false;
        event_active(conn->read_ev, EV_READ, 0);
    }
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

/* Idle or request timer: close idle connections, answer 408 to slow requests. */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *conn = arg;
    char message[96];
    (void)fd;
    (void)what;

    if (conn->state == CONN_DISCARDING || conn->state == CONN_CLOSING) {
        conn_free(conn);
        return;
    }
    if (conn->state == CONN_READING_BODY) {
        snprintf(message, sizeof(message), "request body not received within %d s",
                 conn->srv->opt.read_timeout_s);
        conn_send_error(conn, 408, message, "request_timeout", false);
    } else if (conn->state == CONN_READING_HEAD && conn->is_timer_for_request &&
               evbuffer_get_length(conn->in) > 0) {
        snprintf(message, sizeof(message), "request head not received within %d s",
                 conn->srv->opt.header_timeout_s);
        conn_send_error(conn, 408, message, "request_timeout", false);
    } else if (conn->state == CONN_READING_HEAD) {
        conn_free(conn); /* idle, or nothing of a request arrived in time */
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
    conn_arm_timer(conn, REFUSE_LINGER_S, true);
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
            conn_free(conn);
            return;
        }
    }
    event_add(conn->read_ev, NULL);
    conn_start_request_timer(conn);
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
    if (srv->accept_pause != NULL)
        event_free(srv->accept_pause);
    http_peers_free(srv->peers);
    http_tls_free(srv->tls);
    http_cors_free(srv->cors);
    free(srv);
}
