/*
 * Loop tests: the front server and the upstream client talking to each other over
 * loopback in one event loop. Each test counts callbacks and ends with a clean teardown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_server.h"
#include "http_upstream.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
    struct event_base *base;
    struct http_server *srv;
    struct upstream_pool *pool;
    struct http_request *streaming; /* request being streamed by the handler */
    struct event *tick;
    int ticks;
    int n_cancelled;
    int n_done;
    int status;
    int rc;
    char content_type[64];
    struct evbuffer *received;
    char url[128];
};

/* Server side: answers by path. */
static void handler(struct http_request *req, void *arg);

/* Sends one more SSE event each tick; three in all. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *f = arg;
    struct timeval tv = {0, 1000};
    char event[32];
    (void)fd;
    (void)what;
    if (f->streaming == NULL)
        return;
    int n = snprintf(event, sizeof(event), "data: %d\n\n", f->ticks);
    http_stream_write(f->streaming, event, (size_t)n);
    if (++f->ticks == 3) {
        http_stream_end(f->streaming);
        f->streaming = NULL;
        return;
    }
    evtimer_add(f->tick, &tv);
}

static void on_cancel(struct http_request *req, void *arg)
{
    struct fixture *f = arg;
    (void)req;
    f->n_cancelled++;
    f->streaming = NULL;
    evtimer_del(f->tick);
}

static void handler(struct http_request *req, void *arg)
{
    struct fixture *f = arg;
    size_t len = 0;
    const char *body = http_request_body(req, &len);

    if (strcmp(http_request_path(req), "/echo") == 0) {
        http_respond(req, 200, "application/json", body, len);
    } else if (strcmp(http_request_path(req), "/stream") == 0) {
        struct timeval tv = {0, 1000};
        f->streaming = req;
        http_request_set_cancel_cb(req, on_cancel, f);
        http_stream_start(req, 200, "text/event-stream");
        evtimer_add(f->tick, &tv);
    } else {
        http_respond(req, 404, "text/plain", "no", 2);
    }
}

static void on_headers(struct upstream_req *u, int status, const char *ct, void *arg)
{
    struct fixture *f = arg;
    (void)u;
    f->status = status;
    snprintf(f->content_type, sizeof(f->content_type), "%s", ct != NULL ? ct : "");
}

static int on_data(struct upstream_req *u, const char *data, size_t len, void *arg)
{
    struct fixture *f = arg;
    (void)u;
    evbuffer_add(f->received, data, len);
    return 0;
}

static void on_done(struct upstream_req *u, int rc, const char *msg, void *arg)
{
    struct fixture *f = arg;
    (void)u;
    (void)msg;
    f->rc = rc;
    f->n_done++;
    event_base_loopexit(f->base, NULL);
}

static const struct upstream_callbacks callbacks = {on_headers, on_data, on_done};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct http_server_options opt = {.max_body_bytes = 1024};
    f->base = event_base_new();
    f->srv = http_server_new(f->base, &opt, handler, f);
    f->pool = upstream_pool_new(f->base);
    f->tick = evtimer_new(f->base, tick_cb, f);
    f->received = evbuffer_new();
    assert_int_equal(http_server_listen(f->srv, "127.0.0.1", 0, NULL), 0);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", http_server_port(f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    upstream_pool_free(f->pool);
    http_server_free(f->srv);
    event_free(f->tick);
    evbuffer_free(f->received);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Runs one request to PATH with BODY and waits for it. */
static struct upstream_req *send_request(struct fixture *f, const char *path, const char *body,
                                         size_t len)
{
    char url[256];
    struct upstream_spec spec = {.method = "POST", .url = url, .body = body, .body_len = len,
                                 .timeout_ms = 5000};
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    evbuffer_drain(f->received, evbuffer_get_length(f->received));
    return upstream_start(f->pool, &spec, &callbacks, f);
}

static void test_loop_echo_keeps_connection(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        assert_non_null(send_request(f, "/echo", "{\"a\":1}", 7));
        event_base_dispatch(f->base);
        assert_int_equal(f->rc, 0);
        assert_int_equal(f->status, 200);
        assert_string_equal(f->content_type, "application/json");
        assert_int_equal(evbuffer_get_length(f->received), 7);
    }
    assert_int_equal(f->n_done, 3);
    assert_int_equal(http_server_busy_requests(f->srv), 0);
}

static void test_loop_streams_events(void **state)
{
    struct fixture *f = *state;
    assert_non_null(send_request(f, "/stream", "{}", 2));
    event_base_dispatch(f->base);
    assert_int_equal(f->rc, 0);
    assert_string_equal(f->content_type, "text/event-stream");
    size_t n = evbuffer_get_length(f->received);
    assert_memory_equal(evbuffer_pullup(f->received, -1), "data: 0\n\ndata: 1\n\ndata: 2\n\n", n);
    assert_int_equal(f->n_cancelled, 0);
}

static void test_loop_rejects_large_body_with_413(void **state)
{
    struct fixture *f = *state;
    char *big = malloc(4096);
    memset(big, 'x', 4096);
    assert_non_null(send_request(f, "/echo", big, 4096));
    event_base_dispatch(f->base);
    assert_int_equal(f->status, 413);
    evbuffer_add(f->received, "", 1);
    assert_non_null(strstr((char *)evbuffer_pullup(f->received, -1), "request_too_large"));
    free(big);
}

/* Cancels the client side once the first event arrived. */
static int cancel_on_data(struct upstream_req *u, const char *data, size_t len, void *arg)
{
    struct fixture *f = arg;
    (void)data;
    (void)len;
    upstream_cancel(u);
    f->n_done++;
    return 0;
}

/* Stops the loop once the server saw the cancel. */
static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *f = arg;
    (void)fd;
    (void)what;
    if (f->n_cancelled > 0)
        event_base_loopexit(f->base, NULL);
}

static void test_loop_client_cancel_reaches_server(void **state)
{
    struct fixture *f = *state;
    static const struct upstream_callbacks cancel_cb = {on_headers, cancel_on_data, on_done};
    char url[256];
    struct upstream_spec spec = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    struct timeval every = {0, 2000}, limit = {5, 0};
    struct event *watch = event_new(f->base, -1, EV_PERSIST, watch_cb, f);
    snprintf(url, sizeof(url), "%s/stream", f->url);
    assert_non_null(upstream_start(f->pool, &spec, &cancel_cb, f));
    event_add(watch, &every);
    event_base_loopexit(f->base, &limit);
    event_base_dispatch(f->base);
    event_free(watch);
    assert_int_equal(f->n_cancelled, 1);
    assert_int_equal(http_server_busy_requests(f->srv), 0);
    assert_int_equal(upstream_pool_active(f->pool), 0);
}

static void test_loop_connect_refused_reports_error(void **state)
{
    struct fixture *f = *state;
    struct upstream_spec spec = {.method = "POST", .url = "http://127.0.0.1:1/x", .body = "{}",
                                 .body_len = 2, .timeout_ms = 5000};
    assert_non_null(upstream_start(f->pool, &spec, &callbacks, f));
    event_base_dispatch(f->base);
    assert_int_equal(f->n_done, 1);
    assert_int_equal(f->rc, IG_EIO);
    assert_int_equal(upstream_pool_active(f->pool), 0);
}

/* Resumes the paused transfer from a timer. */
static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upstream_resume(arg);
}

static struct event *resume_ev;

/* Pauses after every event and resumes 2 ms later. */
static int pause_on_data(struct upstream_req *u, const char *data, size_t len, void *arg)
{
    struct fixture *f = arg;
    struct timeval tv = {0, 2000};
    evbuffer_add(f->received, data, len);
    if (resume_ev != NULL)
        event_free(resume_ev);
    resume_ev = evtimer_new(f->base, resume_cb, u);
    evtimer_add(resume_ev, &tv);
    return 1;
}

static void test_loop_pause_and_resume_deliver_everything(void **state)
{
    struct fixture *f = *state;
    static const struct upstream_callbacks pausing = {on_headers, pause_on_data, on_done};
    char url[256];
    struct upstream_spec spec = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    snprintf(url, sizeof(url), "%s/stream", f->url);
    assert_non_null(upstream_start(f->pool, &spec, &pausing, f));
    event_base_dispatch(f->base);
    if (resume_ev != NULL)
        event_free(resume_ev);
    resume_ev = NULL;
    assert_int_equal(f->rc, 0);
    size_t n = evbuffer_get_length(f->received);
    assert_memory_equal(evbuffer_pullup(f->received, -1), "data: 0\n\ndata: 1\n\ndata: 2\n\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_echo_keeps_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_streams_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_rejects_large_body_with_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_client_cancel_reaches_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_connect_refused_reports_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_pause_and_resume_deliver_everything, setup,
                                        teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
