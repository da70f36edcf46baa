/*
 * Moving a connection's bytes between its socket and its buffers, over plain TCP or TLS
 * (see http_conn.h).
 *
 * TLS: SSL_read/SSL_write on the non-blocking socket. The handshake runs inside the first
 * reads. SSL_read may need the socket writable and SSL_write readable (TLS 1.3 key
 * updates); each case waits on the other event once.
 */
#include "http_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define READ_CHUNK_BYTES (64u << 10)
#define TLS_READ_BUDGET_BYTES (256u << 10) /* per wake-up, then yield to other connections */
#define TLS_RECORD_BYTES 16384

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

/* Writes what the socket takes now; waits for writability only when something is left.
 * Writing at once (not on the next loop turn) saves a wake-up and two epoll_ctl calls per
 * response, and sends each streamed chunk without delay. */
void http_conn_flush(struct http_conn *conn)
{
    bool is_waiting_read = false;

    if (conn->fd < 0) { /* a stream takes everything, or is gone */
        if (evbuffer_get_length(conn->out) > 0 &&
            (conn->stream == NULL || conn->sops->send(conn->stream, conn->out) != 0)) {
            evbuffer_drain(conn->out, evbuffer_get_length(conn->out));
            conn->is_stream_eof = true;
            event_active(conn->read_ev, EV_READ, 0);
        }
        return;
    }
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

/* http_conn_recv() over TLS: decrypts what arrived (the handshake runs in here too). Reads until
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
int http_conn_recv(struct http_conn *conn)
{
    char buf[READ_CHUNK_BYTES];
    int got = 0;

    if (conn->ssl != NULL)
        return conn_ssl_recv(conn);
    if (conn->fd < 0) { /* a stream: its bytes are in IN already; the end after them */
        if (!conn->has_stream_data)
            return conn->is_stream_eof ? -1 : 0;
        conn->has_stream_data = false;
        if (conn->is_stream_eof)
            event_active(conn->read_ev, EV_READ, 0);
        return 1;
    }
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
