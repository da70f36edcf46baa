/*
 * Loop tests of the upstream client's api_key handling, on both of its paths (the native
 * client for http://127.0.0.1, libcurl for a host it does not serve): the key goes out as
 * "Authorization: Bearer" and x-api-key instead of any credential the caller passed, and it
 * never comes back in a response body, even split across reads.
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

#define KEY "sk-test-0123456789"

/* The pieces /split writes, one per tick: the key whole, split in two, and prefixes of it
 * that are not the key (one at the very end of the body). */
static const char *const pieces[] = {
    "data: {\"error\":\"Incorrect API key provided: " KEY "\"}\n\n",
    "data: sk-test-01",
    "23456789 again\n\n",
    "data: sk-test-0 is not it\n\n",
    "data: " KEY KEY "\n\n",
    "data: tail sk-te",
};

static const char expected_split[] =
    "data: {\"error\":\"Incorrect API key provided: [redacted]\"}\n\n"
    "data: [redacted] again\n\n"
    "data: sk-test-0 is not it\n\n"
    "data: [redacted][redacted]\n\n"
    "data: tail sk-te";

struct fixture {
    struct event_base *base;
    struct http_server *srv;
    struct upstream_pool *pool;
    struct http_request *streaming;
    struct event *tick;
    size_t next_piece;
    int n_done;
    int rc;
    int n_chunks;
    struct evbuffer *received;
    int port;
};

/* Writes the next piece of /split; ends the stream after the last. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *f = arg;
    struct timeval tv = {0, 2000};
    (void)fd;
    (void)what;

    if (f->streaming == NULL)
        return;
    http_stream_write(f->streaming, pieces[f->next_piece], strlen(pieces[f->next_piece]));
    if (++f->next_piece == sizeof(pieces) / sizeof(pieces[0])) {
        http_stream_end(f->streaming);
        f->streaming = NULL;
        return;
    }
    evtimer_add(f->tick, &tv);
}

/* Server side: /headers echoes the credentials it got, /split streams the pieces. */
static void handler(struct http_request *req, void *arg)
{
    struct fixture *f = arg;
    const char *auth = http_request_header(req, "authorization");
    const char *x_api_key = http_request_header(req, "x-api-key");
    const char *api_key = http_request_header(req, "api-key");
    char body[512];
    int n;

    if (strcmp(http_request_path(req), "/headers") == 0) {
        /* The key is echoed too, as a provider's 401 does: it must come back redacted. */
        n = snprintf(body, sizeof(body), "authorization=%s|x-api-key=%s|api-key=%s",
                     auth != NULL ? auth : "-", x_api_key != NULL ? x_api_key : "-",
                     api_key != NULL ? api_key : "-");
        http_respond(req, 401, "text/plain", body, (size_t)n);
    } else if (strcmp(http_request_path(req), "/split") == 0) {
        struct timeval tv = {0, 1000};
        f->streaming = req;
        f->next_piece = 0;
        http_stream_start(req, 200, "text/event-stream");
        evtimer_add(f->tick, &tv);
    } else {
        http_respond(req, 404, "text/plain", "no", 2);
    }
}

static void on_headers(struct upstream_req *u, int status, const char *ct, void *arg)
{
    (void)u;
    (void)status;
    (void)ct;
    (void)arg;
}

static int on_data(struct upstream_req *u, const char *data, size_t len, void *arg)
{
    struct fixture *f = arg;
    (void)u;
    evbuffer_add(f->received, data, len);
    f->n_chunks++;
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
    f->port = http_server_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(upstream_pool_active(f->pool), 0);
    upstream_pool_free(f->pool);
    http_server_free(f->srv);
    event_free(f->tick);
    evbuffer_free(f->received);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Sends GET PATH to HOST with the api_key and the caller's own credentials, waits for the
 * end and returns the body received (NUL-terminated, borrowed from the fixture). */
static const char *fetch(struct fixture *f, const char *host, const char *path)
{
    static const char *const headers[] = {"Authorization: Bearer client-key",
                                          "X-Api-Key: client-key", "api-key: client-key",
                                          "Accept: */*", NULL};
    char url[256];
    struct upstream_spec spec = {
        .method = "GET", .url = url, .headers = headers, .timeout_ms = 5000, .api_key = KEY};

    snprintf(url, sizeof(url), "http://%s:%d%s", host, f->port, path);
    evbuffer_drain(f->received, evbuffer_get_length(f->received));
    f->n_done = 0;
    assert_non_null(upstream_start(f->pool, &spec, &callbacks, f));
    event_base_dispatch(f->base);
    assert_int_equal(f->n_done, 1);
    assert_int_equal(f->rc, 0);
    evbuffer_add(f->received, "", 1);
    return (const char *)evbuffer_pullup(f->received, -1);
}

/* The native client (a literal address) and libcurl (a name it does not serve). */
static const char *const hosts[] = {"127.0.0.1", "LOCALHOST"};

static void test_secret_replaces_caller_credentials(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < 2; i++) {
        const char *body = fetch(f, hosts[i], "/headers");
        assert_string_equal(body, "authorization=Bearer [redacted]|x-api-key=[redacted]|api-key=-");
        assert_null(strstr(body, "client-key"));
    }
}

static void test_secret_is_redacted_across_reads(void **state)
{
    struct fixture *f = *state;

    for (size_t i = 0; i < 2; i++) {
        const char *body = fetch(f, hosts[i], "/split");
        assert_string_equal(body, expected_split);
        assert_true(f->n_chunks > 1);
    }
}

static void test_no_secret_passes_bytes_and_credentials_unchanged(void **state)
{
    struct fixture *f = *state;
    static const char *const headers[] = {"Authorization: Bearer client-key", NULL};
    char url[256];
    struct upstream_spec spec = {
        .method = "GET", .url = url, .headers = headers, .timeout_ms = 5000};

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/headers", f->port);
    assert_non_null(upstream_start(f->pool, &spec, &callbacks, f));
    event_base_dispatch(f->base);
    assert_int_equal(f->rc, 0);
    evbuffer_add(f->received, "", 1);
    assert_string_equal((const char *)evbuffer_pullup(f->received, -1),
                        "authorization=Bearer client-key|x-api-key=-|api-key=-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_replaces_caller_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_is_redacted_across_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_passes_bytes_and_credentials_unchanged,
                                        setup, teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
