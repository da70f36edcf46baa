/* Request accessors and response writing (whole, or streamed with chunked encoding). */
#include "http_conn.h"
#include "ig_text.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* For HTML pages: same-origin everything, data: images, no plugins, no framing, no base
 * or form targets elsewhere. */
#define CONTENT_SECURITY_POLICY                                                                    \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "            \
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "                  \
    "form-action 'self'; frame-ancestors 'none'"

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

const char *http_request_method(const struct http_request *req)
{
    return req->head.method;
}

const char *http_request_path(const struct http_request *req)
{
    return req->head.path;
}

const char *http_request_query(const struct http_request *req)
{
    return req->head.query;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return http_head_get(&req->head, name);
}

const char *http_request_body(const struct http_request *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body_flat != NULL ? req->body_flat : "";
}

const char *http_request_peer(const struct http_request *req)
{
    return req->conn->peer;
}

unsigned long long http_request_start_us(const struct http_request *req)
{
    return req->start_us;
}

void http_request_set_cancel_cb(struct http_request *req, http_cancel_fn cb, void *arg)
{
    req->cancel_cb = cb;
    req->cancel_arg = arg;
}

void http_request_set_drain_cb(struct http_request *req, http_drain_fn cb, void *arg)
{
    req->drain_cb = cb;
    req->drain_arg = arg;
}

void http_response_add_header(struct http_request *req, const char *name, const char *value)
{
    if (strcasecmp(name, "X-Content-Type-Options") == 0)
        req->has_nosniff = true; /* then write_head() does not add its own */
    if (req->extra_headers == NULL)
        req->extra_headers = evbuffer_new();
    if (req->extra_headers != NULL) {
        evbuffer_add(req->extra_headers, name, strlen(name));
        evbuffer_add(req->extra_headers, ": ", 2);
        evbuffer_add(req->extra_headers, value, strlen(value));
        evbuffer_add(req->extra_headers, "\r\n", 2);
    }
}

/* Appends "Content-Length: LEN" and the blank line ending the head (no printf: hot path). */
static void add_content_length(struct evbuffer *out, size_t len)
{
    char num[24];
    size_t n = ig_format_u64(num, len);

    evbuffer_add(out, "Content-Length: ", 16);
    evbuffer_add(out, num, n);
    evbuffer_add(out, "\r\n\r\n", 4);
}

void http_response_add_security_headers(struct http_request *req)
{
    http_response_add_header(req, "X-Frame-Options", "DENY");
    http_response_add_header(req, "Referrer-Policy", "no-referrer");
    http_response_add_header(req, "Content-Security-Policy", CONTENT_SECURITY_POLICY);
}

/* Writes the status line and common headers of a response. */
static void write_head(struct http_request *req, struct evbuffer *out, int status,
                       const char *content_type)
{
    if (req->conn->srv->is_stopping)
        req->keep_alive = false;
    char line[64];
    const char *reason = http_status_text(status);
    size_t n = 9;

    memcpy(line, req->head.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    n += ig_format_u64(line + n, (uint64_t)(status >= 0 ? status : 0));
    line[n++] = ' ';
    evbuffer_add(out, line, n);
    evbuffer_add(out, reason, strlen(reason));
    evbuffer_add(out, "\r\n", 2);
    if (content_type != NULL) {
        evbuffer_add(out, "Content-Type: ", 14);
        evbuffer_add(out, content_type, strlen(content_type));
        evbuffer_add(out, "\r\n", 2);
    }
    if (!req->keep_alive)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (req->head.minor == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    if (!req->has_nosniff)
        evbuffer_add(out, "X-Content-Type-Options: nosniff\r\n", 33);
    if (req->extra_headers != NULL)
        evbuffer_add_buffer(out, req->extra_headers);
}

void http_respond(struct http_request *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    struct evbuffer *out = req->conn->out;

    write_head(req, out, status, content_type);
    if (status == 204 || status == 304) { /* no body, and no Content-Length (RFC 9110) */
        len = 0;
        evbuffer_add(out, "\r\n", 2);
    } else {
        add_content_length(out, len);
    }
    if (len > 0 && strcmp(req->head.method, "HEAD") != 0)
        evbuffer_add(out, body, len);
    http_request_finished(req);
}

void http_respond_buffer(struct http_request *req, int status, const char *content_type,
                         struct evbuffer *body)
{
    struct evbuffer *out = req->conn->out;

    write_head(req, out, status, content_type);
    add_content_length(out, evbuffer_get_length(body));
    if (strcmp(req->head.method, "HEAD") != 0)
        evbuffer_add_buffer(out, body);
    else
        evbuffer_drain(body, evbuffer_get_length(body));
    http_request_finished(req);
}

void http_stream_start(struct http_request *req, int status, const char *content_type)
{
    struct evbuffer *out = req->conn->out;

    req->is_streaming = true;
    req->is_chunked_out = req->head.minor == 1;
    if (!req->is_chunked_out)
        req->keep_alive = false;
    write_head(req, out, status, content_type);
    if (req->is_chunked_out)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    evbuffer_add(out, "Cache-Control: no-cache\r\n\r\n", 27);
    http_conn_flush(req->conn);
}

int http_stream_write(struct http_request *req, const void *data, size_t len)
{
    struct evbuffer *out = req->conn->out;

    if (len == 0)
        return 0;
    if (req->is_chunked_out) {
        evbuffer_add_printf(out, "%zx\r\n", len);
        evbuffer_add(out, data, len);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, data, len);
    }
    http_conn_flush(req->conn);
    if (evbuffer_get_length(out) > STREAM_HIGH_WATER_BYTES) {
        req->is_paused = true;
        return 1;
    }
    return 0;
}

void http_stream_end(struct http_request *req)
{
    if (req->is_chunked_out)
        evbuffer_add(req->conn->out, "0\r\n\r\n", 5);
    http_request_finished(req);
}

void http_stream_abort(struct http_request *req)
{
    req->keep_alive = false;
    http_request_finished(req);
}
