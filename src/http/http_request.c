/*
 * Reading requests on a connection (see http_conn.h): the head (request line + headers) is
 * searched for its blank line, copied and parsed in place; the body follows by
 * Content-Length or chunked encoding; the complete request goes to the handler, and once
 * its response is complete the connection reads the next one or closes.
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
 */
#include "http_conn.h"
#include "http_cors.h"
#include "http_parse.h"
#include "ig_errbody.h"
#include "ig_time.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DISCARD_LINGER_S 2
#define REQUEST_LINE_SLACK_BYTES 64 /* method, spaces and version around the URL */

/* Frees a request and everything it owns. */
void http_request_free(struct http_request *req)
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
void http_conn_arm_timer(struct http_conn *conn, int seconds, bool for_request)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    conn->is_timer_for_request = for_request;
    evtimer_add(conn->timer, &tv);
}

/* Starts the deadlines of a request whose first byte (or connection) is here now. */
void http_conn_start_request_timer(struct http_conn *conn)
{
    conn->request_start_ms = ig_now_ms();
    http_conn_arm_timer(conn, conn->srv->opt.header_timeout_s, true);
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

/* Writes a complete error response from the protocol layer and stops reading requests. */
void http_conn_send_error(struct http_conn *conn, int status, const char *message,
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
    http_request_free(conn->req);
    conn->req = NULL;
    if (linger) {
        conn->state = CONN_DISCARDING;
        http_conn_arm_timer(conn, DISCARD_LINGER_S, true);
        evbuffer_drain(conn->in,
                       evbuffer_get_length(conn->in));
    } else {
        evtimer_del(conn->timer);
        http_conn_close_after_write(conn);
    }
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
        http_conn_send_error(conn, 400, "invalid Content-Length header", "invalid_request", false);
        return false;
    }
    if (te != NULL) {
        if (strcasecmp(te, "chunked") != 0) {
            http_conn_send_error(conn, 501, "unsupported Transfer-Encoding", "invalid_request",
                            false);
            return false;
        }
        if (content_length >= 0) {
            http_conn_send_error(conn, 400, "both Content-Length and Transfer-Encoding given",
                            "invalid_request", false);
            return false;
        }
        conn->body_chunked = true;
    } else {
        conn->body_chunked = false;
        conn->body_need = content_length > 0 ? (size_t)content_length : 0;
    }
    if (content_length > (long long)conn->srv->opt.max_body_bytes) {
        http_conn_send_error(conn, 413, "request body too large", "request_too_large", true);
        return false;
    }
    conn->chunk_in_data = false;
    conn->chunk_in_trailer = false;
    req->body = evbuffer_new();
    if (req->body == NULL) {
        http_conn_send_error(conn, 500, "out of memory", "internal_error", true);
        return false;
    }
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
                http_conn_send_error(conn, 400, "malformed chunked body", "invalid_request", false);
                return -1;
            }
            conn->chunk_in_data = false;
            continue;
        }
        size_t line_len = 0;
        char *line = evbuffer_readln(in, &line_len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (evbuffer_get_length(in) > 1024) {
                http_conn_send_error(conn, 400, "malformed chunked body", "invalid_request", false);
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
            http_conn_send_error(conn, 400, "malformed chunk size", "invalid_request", false);
            return -1;
        }
        if (size > max || evbuffer_get_length(req->body) + size > max) {
            http_conn_send_error(conn, 413, "request body too large", "request_too_large", true);
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
    http_conn_send_error(conn, 414, message, "url_too_long", false);
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
            http_conn_send_error(conn, 431, "request header too large", "header_too_large", false);
        return false;
    }
    head_len = (size_t)end.pos + 4;
    if (head_len > max) {
        http_conn_send_error(conn, 431, "request header too large", "header_too_large", false);
        return false;
    }
    conn->req = calloc(1, sizeof(*conn->req));
    if (conn->req == NULL) {
        http_conn_send_error(conn, 500, "out of memory", "internal_error", false);
        return false;
    }
    conn->req->conn = conn;
    if (http_head_parse(&conn->req->head, in, head_len, &cause) != 0) {
        int status = conn->req->head.minor < 0 ? 505 : 400;
        http_conn_send_error(conn, status, cause != NULL ? cause : "bad request", "invalid_request",
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
void http_conn_process_input(struct http_conn *conn)
{
    struct evbuffer *in = conn->in;

    conn->is_processing = true;
    for (;;) {
        if (conn->state == CONN_READING_HEAD) {
            if (evbuffer_get_length(in) == 0)
                break;
            if (!conn->is_timer_for_request)
                http_conn_start_request_timer(conn);
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
    http_request_free(req);
    conn->req = NULL;
    if (!keep_alive) {
        http_conn_close_after_write(conn);
        return;
    }
    conn->state = CONN_READING_HEAD;
    http_conn_arm_timer(conn, srv->opt.idle_timeout_s, false);
    if (!conn->is_processing && evbuffer_get_length(conn->in) > 0)
        http_conn_process_input(conn);
}
