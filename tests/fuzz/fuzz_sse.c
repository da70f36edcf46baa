/*
 * Fuzz harness: what the gateway does with the bytes a model server sends back.
 *
 * infergate has no parser of the SSE events themselves: gw_proxy.c passes a streamed body
 * ("text/event-stream") to the client byte for byte, as the upstream wrote it, and the
 * watchdog only notices that bytes arrive. The code that consumes an upstream's response
 * is the upstream client, so that is what is fuzzed here: upstream_start() on an
 * http://127.0.0.1 URL, i.e. http_upstream.c over http_native.c's response parser (status
 * line, headers, 1xx heads, Content-Length, chunked and until-EOF bodies, HEAD, 204/304),
 * with callbacks that pause, resume and cancel the transfer as gw_proxy.c's do.
 *
 * The input: byte 0 splits the response into 1 to 8 pieces (bits 0-2), picks HEAD instead
 * of POST (bit 3) and a data callback that cancels the transfer (bits 4-7, 0: none); byte 1
 * pauses the transfer after every data callback (bit 0), resuming it on the next loop turn
 * as a drained client does. The rest is the response, written by a loopback upstream
 * (fuzz_stub.c) that ends the connection once everything is written.
 */
#include "fuzz_net.h"
#include "fuzz_stub.h"
#include "http_upstream.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEADLINE_S 5
#define REQUEST_BODY "{\"model\":\"m\",\"stream\":true}"

struct run {
    struct event_base *base;
    struct fuzz_stub *stub;
    struct upstream_pool *pool;
    struct upstream_req *ureq; /* NULL once done or cancelled */
    struct event *resume_ev;
    struct event *deadline_ev;
    const uint8_t *response;
    size_t response_len;
    unsigned n_pieces;
    unsigned cancel_at; /* data callback that cancels; 0: none */
    bool is_pausing;
    bool is_streaming; /* text/event-stream: streamed to the client as it comes */
    unsigned n_headers;
    unsigned n_data;
    unsigned n_done;
    size_t n_bytes;
};

/* The upstream stub got the request: answer with the input, in pieces, then EOF. */
static void on_request(struct fuzz_stub_conn *conn, const char *head, size_t head_len,
                       const char *body, size_t body_len, void *arg)
{
    struct run *r = arg;
    size_t piece = r->response_len / r->n_pieces + 1;
    (void)head;
    (void)head_len;
    (void)body;
    (void)body_len;

    for (size_t at = 0; at < r->response_len; at += piece)
        fuzz_stub_write(conn, r->response + at,
                        r->response_len - at < piece ? r->response_len - at : piece);
    fuzz_stub_end(conn);
}

/* Upstream head: as gw_proxy.c's on_up_headers(), tell a stream from a whole response. */
static void on_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct run *r = arg;

    if (ureq != r->ureq || r->n_headers > 0 || r->n_data > 0 || r->n_done > 0)
        abort(); /* once, before any body byte, never after the end */
    if (status < 200 || status > 999)
        abort();
    r->n_headers++;
    r->is_streaming = ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0;
}

/* Upstream body bytes: count them; pause or cancel as the input says. */
static int on_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct run *r = arg;

    if (ureq != r->ureq || r->n_headers != 1 || r->n_done > 0 || len == 0)
        abort();
    (void)data[0];
    (void)data[len - 1];
    r->n_data++;
    r->n_bytes += len;
    if (r->cancel_at != 0 && r->n_data == r->cancel_at) {
        upstream_cancel(ureq); /* as gw_proxy.c does for a response over its cap */
        r->ureq = NULL;
        event_base_loopbreak(r->base);
        return 0;
    }
    if (r->is_pausing) {
        event_active(r->resume_ev, EV_TIMEOUT, 0);
        return 1;
    }
    return 0;
}

/* The transfer ended. */
static void on_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct run *r = arg;

    if (ureq != r->ureq || r->n_done > 0)
        abort();
    if (rc == 0 && r->n_headers != 1)
        abort(); /* a complete response had a head */
    if (rc != 0 && (message == NULL || message[0] == '\0'))
        abort(); /* a failure says why */
    r->n_done++;
    r->ureq = NULL;
    event_base_loopbreak(r->base);
}

/* The consumer drained: resume the paused transfer. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    (void)fd;
    (void)what;

    if (r->ureq != NULL)
        upstream_resume(r->ureq);
}

/* Nothing may take this long: the client must end every transfer the stub ends. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fprintf(stderr, "fuzz_sse: the transfer did not end within %d s\n", DEADLINE_S);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct upstream_callbacks callbacks = {on_headers, on_data, on_done};
    const char *headers[] = {"Content-Type: application/json", "Accept: text/event-stream", NULL};
    struct timeval deadline = {DEADLINE_S, 0};
    struct upstream_spec spec = {0};
    struct run r = {0};
    char url[64];
    bool is_head;

    if (size < 2)
        return 0;
    r.n_pieces = (data[0] & 7u) + 1;
    is_head = (data[0] & 8u) != 0;
    r.cancel_at = data[0] >> 4;
    r.is_pausing = (data[1] & 1u) != 0;
    r.response = data + 2;
    r.response_len = size - 2;
    r.base = event_base_new();
    if (r.base == NULL)
        abort();
    r.stub = fuzz_stub_new(r.base, on_request, &r);
    r.pool = upstream_pool_new(r.base);
    r.resume_ev = event_new(r.base, -1, 0, on_resume, &r);
    r.deadline_ev = evtimer_new(r.base, on_deadline, &r);
    if (r.stub == NULL || r.pool == NULL || r.resume_ev == NULL || r.deadline_ev == NULL)
        abort();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", fuzz_stub_port(r.stub));
    spec.method = is_head ? "HEAD" : "POST";
    spec.url = url;
    spec.headers = headers;
    spec.body = is_head ? NULL : REQUEST_BODY;
    spec.body_len = is_head ? 0 : strlen(REQUEST_BODY);
    spec.timeout_ms = 2L * DEADLINE_S * 1000;
    spec.connect_timeout_ms = 1000;
    r.ureq = upstream_start(r.pool, &spec, &callbacks, &r);
    if (r.ureq == NULL)
        abort();
    evtimer_add(r.deadline_ev, &deadline);
    event_base_dispatch(r.base);
    if (getenv("IG_FUZZ_VERBOSE") != NULL) /* for reading what a saved input does */
        fprintf(stderr, "fuzz_sse: %u head(s), %u data callback(s), %zu byte(s), %u end(s)%s\n",
                r.n_headers, r.n_data, r.n_bytes, r.n_done, r.is_streaming ? ", streaming" : "");
    /* The loop ran dry with the transfer still open: a callback was lost. */
    if (r.ureq != NULL)
        abort();
    fuzz_stub_free(r.stub); /* first: its resets also end the client's sockets */
    upstream_pool_free(r.pool);
    event_free(r.resume_ev);
    event_free(r.deadline_ev);
    event_base_free(r.base);
    return 0;
}
