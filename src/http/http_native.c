/*
 * Plain-HTTP/1.1 upstream client (the fast path for local models on loopback).
 *
 * Why not libcurl here: profiling the proxy benchmark showed libcurl's per-transfer work
 * (two poll() liveness/readiness checks, socket (de)registration, its own parsing and
 * allocations) at about half of the gateway's CPU per request. This client writes the
 * request with one writev, reads with one recv per wake-up, and keeps idle connections
 * registered for reading so a peer's close is noticed and the connection dropped.
 *
 * A connection is idle (in its pool's idle list, read event armed to catch a close) or
 * busy with exactly one request. A request on a reused connection that sees the
 * connection closed before any response byte is retried once on a new connection: the
 * peer closed an idle keep-alive connection as we reused it, so it never saw the request.
 *
 * Re-entrancy: callbacks may cancel their own request; the parser notices after each
 * callback and stops. Nothing is freed while a callback of the same request is running.
 */
#include "http_native.h"
#include "http_head.h"
#include "ig_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RESPONSE_HEAD (64u << 10)
#define READ_CHUNK (64u << 10)
#define MAX_IDLE 1024
#define MAX_CONTENT_TYPE 128
#define MAX_STREAM_BUFFERED (64u << 20) /* a stream's answer not yet taken by the client */

enum nreq_state {
    NR_CONNECTING,
    NR_HEAD,
    NR_LENGTH,     /* Content-Length body */
    NR_CHUNK_SIZE, /* chunked: size line */
    NR_CHUNK_DATA,
    NR_CHUNK_CRLF,
    NR_TRAILER,
    NR_UNTIL_EOF, /* no length: body ends with the connection */
};

struct native_conn {
    struct native_pool *pool;
    evutil_socket_t fd;                     /* -1 for a stream */
    void *stream;                           /* set: an in-memory stream, not a socket */
    const struct http_stream_ops *sops;
    struct event *read_ev;
    struct event *write_ev;
    struct evbuffer *in;
    struct evbuffer *out;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct native_req *req; /* NULL while idle */
    bool is_idle;
    bool is_eof;
    struct native_conn *prev, *next; /* pool list: all connections */
};

struct native_req {
    struct native_pool *pool;
    struct native_conn *conn;
    struct native_callbacks cb;
    void *owner;
    struct event *timer;
    enum nreq_state state;
    size_t remaining;
    int status;
    char content_type[MAX_CONTENT_TYPE];
    char *head; /* request head text, kept for a retry */
    size_t head_len;
    const char *body;
    size_t body_len;
    bool is_head_method;
    bool is_keep_alive;
    bool is_paused;
    bool is_canceled;
    bool is_in_callback;
    bool is_reused;
    bool has_response_bytes;
    bool has_retried;
    int pending_rc; /* error to deliver from the timer (connect failed at once) */
    long timeout_ms;         /* whole transfer, 0 = none */
    long connect_timeout_ms; /* while connecting, 0 = the whole-transfer timeout */
    uint64_t started_ms;
    char message[160];
    struct sockaddr_storage addr;
    socklen_t addr_len;
    upstream_open_stream_fn open_stream; /* set: the connection is a stream, used once */
    void *open_stream_arg;
};

struct native_pool {
    struct event_base *base;
    struct native_conn *conns;
    size_t n_idle;
};

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static bool process(struct native_req *req);
static void req_fail(struct native_req *req, int rc, const char *message);

/* Closes and frees a connection. */
static void conn_free(struct native_conn *conn)
{
    struct native_pool *pool = conn->pool;

    if (conn->is_idle)
        pool->n_idle--;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        pool->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
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

/* Stream: bytes of the answer (queued; parsed on the next loop turn, outside the stream's
 * own callback). */
static int stream_on_data(void *client, const void *data, size_t len)
{
    struct native_conn *conn = client;

    if (evbuffer_get_length(conn->in) + len > MAX_STREAM_BUFFERED ||
        evbuffer_add(conn->in, data, len) != 0)
        return -1;
    event_active(conn->read_ev, EV_READ, 0);
    return 0;
}

/* Stream: the other side ended; the stream is gone. */
static void stream_on_end(void *client)
{
    struct native_conn *conn = client;

    conn->stream = NULL;
    conn->is_eof = true;
    event_active(conn->read_ev, EV_READ, 0);
}

static const struct http_stream_sink stream_sink = {stream_on_data, stream_on_end};

/* Opens REQ's stream as CONN's connection; returns 0 or -1. */
static int conn_open_stream(struct native_conn *conn, const struct native_req *req)
{
    conn->fd = -1;
    conn->stream = req->open_stream(req->open_stream_arg, &stream_sink, conn, &conn->sops);
    return conn->stream != NULL ? 0 : -1;
}

/* Opens a non-blocking connection to ADDR; returns it (busy) or NULL with errno set. */
static struct native_conn *conn_open(struct native_pool *pool, const struct native_req *req,
                                     const struct sockaddr_storage *addr, socklen_t addr_len,
                                     bool *is_connected)
{
    struct native_conn *conn = calloc(1, sizeof(*conn));
    int one = 1, err;

    if (conn == NULL)
        return NULL;
    if (req->open_stream != NULL) { /* events with no fd: only ever activated by hand */
        *is_connected = true;
        conn->fd = -1;
    } else {
        conn->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (conn->fd < 0) {
            free(conn);
            return NULL;
        }
        setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        *is_connected = connect(conn->fd, (const struct sockaddr *)addr, addr_len) == 0;
        if (!*is_connected && errno != EINPROGRESS) {
            err = errno;
            close(conn->fd);
            free(conn);
            errno = err;
            return NULL;
        }
    }
    conn->pool = pool;
    conn->addr = *addr;
    conn->addr_len = addr_len;
    conn->read_ev = event_new(pool->base, conn->fd, conn->fd >= 0 ? EV_READ | EV_PERSIST : 0,
                              conn_read_cb, conn);
    conn->write_ev = event_new(pool->base, conn->fd, conn->fd >= 0 ? EV_WRITE | EV_PERSIST : 0,
                               conn_write_cb, conn);
    conn->in = evbuffer_new();
    conn->out = evbuffer_new();
    conn->next = pool->conns;
    if (pool->conns != NULL)
        pool->conns->prev = conn;
    pool->conns = conn;
    if (conn->read_ev == NULL || conn->write_ev == NULL || conn->in == NULL || conn->out == NULL) {
        conn_free(conn);
        errno = ENOMEM;
        return NULL;
    }
    if (req->open_stream != NULL && conn_open_stream(conn, req) != 0) {
        conn_free(conn);
        errno = ECONNREFUSED;
        return NULL;
    }
    return conn;
}

/* Writes what the socket takes; arms the write event for the rest. */
static void conn_flush(struct native_conn *conn)
{
    if (conn->fd < 0) { /* a stream takes everything, or is gone */
        if (conn->stream == NULL || conn->sops->send(conn->stream, conn->out) != 0) {
            evbuffer_drain(conn->out, evbuffer_get_length(conn->out));
            conn->is_eof = true;
            event_active(conn->read_ev, EV_READ, 0);
        }
        return;
    }
    while (evbuffer_get_length(conn->out) > 0) {
        int n = evbuffer_write(conn->out, conn->fd);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            evbuffer_drain(conn->out, evbuffer_get_length(conn->out));
            conn->is_eof = true;
            event_active(conn->read_ev, EV_READ, 0);
        }
        break;
    }
    if (evbuffer_get_length(conn->out) > 0)
        event_add(conn->write_ev, NULL);
    else
        event_del(conn->write_ev);
}

/* Takes an idle connection to ADDR from the pool, or NULL. */
static struct native_conn *pool_take_idle(struct native_pool *pool,
                                          const struct sockaddr_storage *addr, socklen_t len)
{
    for (struct native_conn *c = pool->conns; c != NULL; c = c->next) {
        if (!c->is_idle || c->is_eof || c->addr_len != len || memcmp(&c->addr, addr, len) != 0)
            continue;
        c->is_idle = false;
        pool->n_idle--;
        return c;
    }
    return NULL;
}

/* Puts a finished connection back as idle, or closes it when the pool is full. */
static void pool_put_idle(struct native_pool *pool, struct native_conn *conn)
{
    conn->req = NULL;
    event_del(conn->write_ev);
    if (pool->n_idle >= MAX_IDLE) {
        conn_free(conn);
        return;
    }
    conn->is_idle = true;
    pool->n_idle++;
    event_add(conn->read_ev, NULL);
}

/* Attaches REQ to a connection (idle or new) and sends its request. */
static int req_connect(struct native_req *req, bool may_reuse)
{
    struct native_conn *conn = may_reuse && req->open_stream == NULL
                                   ? pool_take_idle(req->pool, &req->addr, req->addr_len)
                                   : NULL;
    bool is_connected = true;

    req->is_reused = conn != NULL;
    if (conn == NULL) {
        conn = conn_open(req->pool, req, &req->addr, req->addr_len, &is_connected);
        if (conn == NULL)
            return -errno;
    }
    conn->req = req;
    req->conn = conn;
    evbuffer_add(conn->out, req->head, req->head_len);
    if (req->body_len > 0)
        evbuffer_add_reference(conn->out, req->body, req->body_len, NULL, NULL);
    event_add(conn->read_ev, NULL);
    if (!is_connected) {
        req->state = NR_CONNECTING;
        event_add(conn->write_ev, NULL);
        return 0;
    }
    req->state = NR_HEAD;
    conn_flush(conn);
    return 0;
}

/* Detaches REQ from its connection: reuse it when the exchange ended cleanly. */
static void req_release_conn(struct native_req *req, bool is_clean)
{
    struct native_conn *conn = req->conn;

    if (conn == NULL)
        return;
    req->conn = NULL;
    if (is_clean && req->is_keep_alive && req->open_stream == NULL && !conn->is_eof &&
        evbuffer_get_length(conn->in) == 0) {
        pool_put_idle(req->pool, conn);
        return;
    }
    conn_free(conn);
}

/* Frees a request. */
static void req_free(struct native_req *req)
{
    if (req->timer != NULL)
        event_free(req->timer);
    if (req->head != NULL)
        explicit_bzero(req->head, req->head_len); /* it may carry an api_key */
    free(req->head);
    free(req);
}

/* Ends REQ: report (unless cancelled) and free. */
static void req_finish(struct native_req *req, int rc, const char *message)
{
    req_release_conn(req, rc == 0);
    if (!req->is_canceled && req->cb.on_done != NULL) {
        req->is_in_callback = true;
        req->is_canceled = true; /* nothing after on_done */
        req->cb.on_done(req->owner, rc, message);
    }
    req_free(req);
}

/* Fails REQ with RC and MESSAGE. */
static void req_fail(struct native_req *req, int rc, const char *message)
{
    req_finish(req, rc, message);
}

/* Runs a user callback; returns false when the request was cancelled inside it. */
static bool after_callback(struct native_req *req)
{
    req->is_in_callback = false;
    if (!req->is_canceled)
        return true;
    req_release_conn(req, false);
    req_free(req);
    return false;
}

/* Delivers up to LIMIT buffered body bytes; returns false when REQ went away. */
static bool deliver(struct native_req *req, size_t limit, size_t *delivered)
{
    struct evbuffer *in = req->conn->in;
    struct evbuffer_iovec vec[8];
    size_t total = 0;
    int n = evbuffer_peek(in, (ev_ssize_t)limit, NULL, vec, 8);

    for (int i = 0; i < n && i < 8 && total < limit; i++) {
        size_t len = vec[i].iov_len < limit - total ? vec[i].iov_len : limit - total;
        int rc = 0;
        if (len == 0)
            continue;
        req->is_in_callback = true;
        if (req->cb.on_data != NULL)
            rc = req->cb.on_data(req->owner, vec[i].iov_base, len);
        total += len;
        if (!after_callback(req))
            return false;
        if (rc == 1) {
            req->is_paused = true;
            break;
        }
    }
    evbuffer_drain(in, total);
    *delivered = total;
    return true;
}

/* Parses the response head; returns 1 when parsed, 0 when more input is needed, -1 after
 * failing the request. */
static int parse_head(struct native_req *req)
{
    struct evbuffer *in = req->conn->in;
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    long long length = -1;
    bool is_chunked = false;
    char *head, *line, *save = NULL;
    int minor = 1;

    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_RESPONSE_HEAD) {
            req_fail(req, IG_EPROTO, "upstream response head too large");
            return -1;
        }
        return 0;
    }
    head = malloc((size_t)end.pos + 5);
    if (head == NULL) {
        req_fail(req, IG_ENOMEM, "out of memory");
        return -1;
    }
    evbuffer_remove(in, head, (size_t)end.pos + 4);
    head[end.pos + 4] = '\0';
    if (!http_head_status(head, &minor, &req->status)) {
        free(head);
        req_fail(req, IG_EPROTO, "malformed upstream status line");
        return -1;
    }
    req->is_keep_alive = minor >= 1;
    for (line = strtok_r(head, "\r\n", &save); line != NULL; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        char *value = colon != NULL ? colon + 1 : NULL;
        if (value == NULL)
            continue;
        *colon = '\0';
        while (*value == ' ' || *value == '\t')
            value++;
        if (strcasecmp(line, "content-type") == 0)
            snprintf(req->content_type, sizeof(req->content_type), "%s", value);
        else if (strcasecmp(line, "content-length") == 0)
            length = strtoll(value, NULL, 10);
        else if (strcasecmp(line, "transfer-encoding") == 0)
            is_chunked = strcasestr(value, "chunked") != NULL;
        else if (strcasecmp(line, "connection") == 0)
            req->is_keep_alive = strcasestr(value, "close") == NULL &&
                                 (minor >= 1 || strcasestr(value, "keep-alive") != NULL);
    }
    free(head);
    if (req->status < 200) /* 1xx: another head follows */
        return parse_head(req);
    if (req->is_head_method || req->status == 204 || req->status == 304)
        length = 0;
    if (is_chunked) {
        req->state = NR_CHUNK_SIZE;
    } else if (length >= 0) {
        req->state = NR_LENGTH;
        req->remaining = (size_t)length;
    } else {
        req->state = NR_UNTIL_EOF;
        req->is_keep_alive = false;
    }
    return 1;
}

/* One step of the chunked decoder; returns 1 to go on, 0 for more input, -1 when gone. */
static int step_chunked(struct native_req *req)
{
    struct evbuffer *in = req->conn->in;
    size_t len = 0, got = 0;
    char *line, *end = NULL;

    switch (req->state) {
    case NR_CHUNK_SIZE:
    case NR_TRAILER:
        line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (evbuffer_get_length(in) <= 4096)
                return 0;
            req_fail(req, IG_EPROTO, "malformed upstream chunk line");
            return -1;
        }
        if (req->state == NR_TRAILER) {
            free(line);
            if (len > 0)
                return 1;
            req_finish(req, 0, NULL);
            return -1;
        }
        req->remaining = (size_t)strtoull(line, &end, 16);
        if (end == line) {
            free(line);
            req_fail(req, IG_EPROTO, "malformed upstream chunk size");
            return -1;
        }
        free(line);
        req->state = req->remaining == 0 ? NR_TRAILER : NR_CHUNK_DATA;
        return 1;
    case NR_CHUNK_DATA:
        if (evbuffer_get_length(in) == 0)
            return 0;
        if (!deliver(req, req->remaining, &got))
            return -1;
        req->remaining -= got;
        if (req->remaining == 0)
            req->state = NR_CHUNK_CRLF;
        return 1;
    default: /* NR_CHUNK_CRLF */
        if (evbuffer_get_length(in) < 2)
            return 0;
        evbuffer_drain(in, 2);
        req->state = NR_CHUNK_SIZE;
        return 1;
    }
}

/* Runs the response parser over buffered input. Returns false when REQ was finished,
 * failed or cancelled (it is freed then; so may be its connection). */
static bool process(struct native_req *req)
{
    for (;;) {
        struct evbuffer *in = req->conn->in;
        size_t got = 0;
        int rc;

        if (req->is_paused)
            return true;
        if (req->state == NR_HEAD) {
            rc = parse_head(req);
            if (rc <= 0)
                return rc == 0;
            req->is_in_callback = true;
            if (req->cb.on_headers != NULL)
                req->cb.on_headers(req->owner, req->status,
                                   req->content_type[0] != '\0' ? req->content_type : NULL);
            if (!after_callback(req))
                return false;
            continue;
        }
        if (req->state == NR_LENGTH) {
            if (req->remaining == 0) {
                req_finish(req, 0, NULL);
                return false;
            }
            if (evbuffer_get_length(in) == 0)
                return true;
            if (!deliver(req, req->remaining, &got))
                return false;
            req->remaining -= got;
            continue;
        }
        if (req->state == NR_UNTIL_EOF) {
            if (evbuffer_get_length(in) == 0) {
                if (!req->conn->is_eof)
                    return true;
                req_finish(req, 0, NULL);
                return false;
            }
            if (!deliver(req, evbuffer_get_length(in), &got))
                return false;
            continue;
        }
        rc = step_chunked(req);
        if (rc <= 0)
            return rc == 0;
    }
}

/* The connection closed or failed under REQ (all its buffered input consumed). */
static void on_conn_eof(struct native_req *req)
{
    if (req->state == NR_UNTIL_EOF) {
        process(req);
        return;
    }
    if (req->is_reused && !req->has_response_bytes && !req->has_retried) {
        req->has_retried = true;
        req_release_conn(req, false);
        if (req_connect(req, false) == 0)
            return;
    }
    req_fail(req, IG_EIO, "upstream closed the connection before the response was complete");
}

/* Parses what arrived for REQ and handles a closed connection; pauses reading while the
 * consumer is slow. */
static void feed(struct native_req *req)
{
    struct native_conn *conn = req->conn;
    bool is_eof = conn->is_eof;

    if (evbuffer_get_length(conn->in) > 0)
        req->has_response_bytes = true;
    if (!process(req))
        return;
    if (req->is_paused) {
        event_del(conn->read_ev);
        return;
    }
    if (is_eof)
        on_conn_eof(req);
}

/* Reads from the socket. */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct native_conn *conn = arg;
    char buf[READ_CHUNK];
    ssize_t n;
    (void)what;

    for (; conn->fd >= 0;) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            evbuffer_add(conn->in, buf, (size_t)n);
            if ((size_t)n == sizeof(buf))
                continue;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn->is_eof = true;
            event_del(conn->read_ev);
        }
        break;
    }
    if (conn->is_idle || conn->req == NULL) { /* the peer closed it or sent junk */
        if (conn->is_eof || evbuffer_get_length(conn->in) > 0)
            conn_free(conn);
        return;
    }
    feed(conn->req);
}

/* Arms the request timer: the connect timeout while connecting, then what is left of the
 * whole-transfer timeout. */
static void arm_timer(struct native_req *req)
{
    long ms = req->timeout_ms;
    struct timeval tv;

    if (req->state == NR_CONNECTING && req->connect_timeout_ms > 0 &&
        (ms == 0 || req->connect_timeout_ms < ms))
        ms = req->connect_timeout_ms;
    else if (ms > 0)
        ms -= (long)(ig_now_ms() - req->started_ms);
    if (ms == 0 && req->timeout_ms == 0) {
        evtimer_del(req->timer);
        return;
    }
    if (ms < 1)
        ms = 1;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(req->timer, &tv);
}

/* Connected, or the socket can take more output. */
static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct native_conn *conn = arg;
    struct native_req *req = conn->req;
    int err = 0;
    socklen_t len = sizeof(err);
    (void)what;

    if (req != NULL && req->state == NR_CONNECTING) {
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            snprintf(req->message, sizeof(req->message), "cannot connect to upstream: %s",
                     strerror(err));
            req_fail(req, IG_EIO, req->message);
            return;
        }
        req->state = NR_HEAD;
        arm_timer(req);
    }
    conn_flush(conn);
}

/* Whole-request timeout, or an error to deliver on the first loop turn. */
static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct native_req *req = arg;
    (void)fd;
    (void)what;

    if (req->pending_rc != 0) {
        req_fail(req, req->pending_rc, req->message);
        return;
    }
    req_fail(req, IG_ETIMEDOUT, req->state == NR_CONNECTING ? "upstream connect timed out"
                                                             : "upstream request timed out");
}

/* Parses URL into REQ's address (none for a stream of SPEC's open_stream, whose URL may
 * name any host); returns the path and sets HOST_END to the end of the authority. */
static const char *parse_url(struct native_req *req, const char *url, const char **host_end)
{
    if (!native_literal_url(url, &req->addr, &req->addr_len, host_end))
        *host_end = url + 7 + strcspn(url + 7, "/");
    return **host_end == '/' ? *host_end : "/";
}

/* Builds the request head for SPEC into REQ->head. */
static int build_head(struct native_req *req, const struct upstream_spec *spec)
{
    const char *host_end = NULL;
    const char *path = parse_url(req, spec->url, &host_end);
    bool has_length = spec->body != NULL || strcmp(spec->method, "POST") == 0;

    req->head = http_head_build(spec->method, path, spec->url + 7,
                                (size_t)(host_end - (spec->url + 7)), spec->headers,
                                has_length ? (long long)spec->body_len : -1, &req->head_len);
    return req->head != NULL ? 0 : IG_ENOMEM;
}

struct native_req *native_start(struct native_pool *pool, const struct upstream_spec *spec,
                                const struct native_callbacks *cb, void *owner)
{
    struct native_req *req = calloc(1, sizeof(*req));
    struct timeval tv = {0, 0};
    int rc;

    if (req == NULL)
        return NULL;
    req->pool = pool;
    req->cb = *cb;
    req->owner = owner;
    req->body = spec->body;
    req->body_len = spec->body != NULL ? spec->body_len : 0;
    req->is_head_method = strcmp(spec->method, "HEAD") == 0;
    req->open_stream = spec->open_stream;
    req->open_stream_arg = spec->open_stream_arg;
    req->timer = evtimer_new(pool->base, req_timer_cb, req);
    if (req->timer == NULL || build_head(req, spec) != 0) {
        req_free(req);
        return NULL;
    }
    req->timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : 0;
    req->connect_timeout_ms = spec->connect_timeout_ms > 0 ? spec->connect_timeout_ms : 0;
    req->started_ms = ig_now_ms();
    rc = req_connect(req, true);
    if (rc != 0) {
        req->pending_rc = IG_EIO;
        snprintf(req->message, sizeof(req->message), "cannot connect to upstream: %s",
                 strerror(-rc));
        evtimer_add(req->timer, &tv);
    } else {
        arm_timer(req);
    }
    return req;
}

void native_cancel(struct native_req *req)
{
    if (req->is_canceled)
        return;
    req->is_canceled = true;
    if (req->is_in_callback)
        return; /* after_callback() frees it */
    req_release_conn(req, false);
    req_free(req);
}

void native_resume(struct native_req *req)
{
    if (!req->is_paused || req->is_canceled || req->conn == NULL)
        return;
    req->is_paused = false;
    if (!req->conn->is_eof)
        event_add(req->conn->read_ev, NULL);
    feed(req);
}

struct native_pool *native_pool_new(struct event_base *base)
{
    struct native_pool *pool = calloc(1, sizeof(*pool));

    if (pool != NULL)
        pool->base = base;
    return pool;
}

void native_pool_free(struct native_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->conns != NULL) {
        struct native_conn *conn = pool->conns;
        if (conn->req != NULL)
            conn->req->conn = NULL;
        conn_free(conn);
    }
    free(pool);
}
