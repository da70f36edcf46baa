/*
 * Fuzz harness: what the gateway does with a client's JSON body before proxying it.
 *
 * The body handling lives in static functions of src/gateway (gw_proxy.c's prepare_call():
 * ig_json_parse() with its depth cap, the "model" lookup through aliases and profile pins,
 * lacks_capability(), apply_filters() with stripParams, setParams and useModelName, then
 * the re-serialisation; gw_models.c's model_from_body(); gw_profiles.c's activation). So
 * rather than exporting them, the harness runs the real gateway in-process: a gw_app on a
 * fixed config, its front server on a loopback port, and a loopback upstream (fuzz_stub.c)
 * standing in for the models. Each run sends the input as the body of one request and
 * checks what reaches the upstream.
 *
 * The input: byte 0 picks the endpoint (bits 0-3), activates the "coding" profile with a
 * pipelined PUT first (bit 4) and sends the body chunked instead of with a Content-Length
 * (bit 5). The rest is the body.
 *
 * What is checked: every answer is a well-formed HTTP response without a 5xx status (the
 * upstream always answers 200, so a 5xx is a gateway fault); a body forwarded to a model
 * with filters is a JSON object with the stripped keys gone, the set keys set and the
 * useModelName in "model"; a body forwarded to a model without filters is the client's
 * body unchanged unless a profile pin rewrote its "model".
 */
#include "cfg.h"
#include "fuzz_net.h"
#include "fuzz_stub.h"
#include "gguf_meta.h"
#include "gw_app.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEADLINE_S 5

/* Three proxy-only models (no process to start) on the stub, one path prefix each; the
 * database (keys, usage) in the run's own directory. */
static const char config_fmt[] =
    "storage:\n"
    "  path: %s/infergate.db\n"
    "healthCheckTimeout: 15\n"
    "logLevel: error\n"
    "limits:\n"
    "  max_body_bytes: 1MiB\n"
    "  request_timeout_s: 10\n"
    "  queue_timeout_s: 5\n"
    "models:\n"
    "  chat:\n"
    "    proxy: http://127.0.0.1:%d/chat\n"
    "    checkEndpoint: none\n"
    "    aliases: [gpt-4o-mini, chat-alias]\n"
    "    filters:\n"
    "      stripParams: \"top_k, min_p, model, stream_options, temperature\"\n"
    "      setParams:\n"
    "        temperature: 0.5\n"
    "        max_tokens: 64\n"
    "        stop: [\"\\n\\n\"]\n"
    "        response_format: {type: json_object}\n"
    "  embed:\n"
    "    proxy: http://127.0.0.1:%d/embed/\n"
    "    checkEndpoint: none\n"
    "    useModelName: text-embedding-upstream\n"
    "    aliases: [text-embedding-3-small]\n"
    "  plain:\n"
    "    proxy: http://127.0.0.1:%d/plain\n"
    "    checkEndpoint: none\n"
    "    concurrencyLimit: 1\n"
    "profiles:\n"
    "  coding:\n"
    "    pins:\n"
    "      code: plain\n"
    "      gpt-4o: chat-alias\n"
    "      embed: plain\n"
    "      images: ~\n";

/* Endpoints the body may go to (byte 0, bits 0-3, modulo their number). */
static const struct {
    const char *method;
    const char *path;
} endpoints[] = {
    {"POST", "/v1/chat/completions"}, {"POST", "/v1/completions"},     {"POST", "/v1/embeddings"},
    {"POST", "/v1/rerank"},           {"POST", "/completion"},         {"POST", "/infill"},
    {"POST", "/embedding"},           {"PUT", "/api/profiles/active"}, {"POST", "/models/load"},
    {"POST", "/models/unload"},
};

struct run {
    struct event_base *base;
    struct fuzz_stub *stub;
    struct gw_app *app;
    const struct cfg_model *chat;
    const struct cfg_model *embed;
    const uint8_t *body;
    size_t body_len;
    evutil_socket_t fd; /* the client's socket */
    struct event *read_ev;
    struct event *write_ev;
    struct event *deadline_ev;
    struct evbuffer *out;
    struct evbuffer *in;
    bool is_pinning;    /* the "coding" profile was activated first */
    char state_dir[64]; /* the run's database and secret; "" until made */
};

/* Removes the run's state directory DIR and the files in it. */
static void state_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* Fails run R (NULL before it has a state directory): prints why, removes the directory,
 * then aborts so that libFuzzer keeps the input. */
static void fail(const struct run *r, const char *what, const char *detail, size_t len)
{
    fprintf(stderr, "fuzz_request_json: %s: %.*s\n", what, (int)(len < 400 ? len : 400),
            detail != NULL ? detail : "");
    if (r != NULL && r->state_dir[0] != '\0')
        state_dir_remove(r->state_dir);
    abort();
}

/* Checks a body the gateway sent to model MC after applying its filters. */
static void check_filtered(const struct run *r, const struct cfg_model *mc, const char *body,
                           size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    const char *key;
    json_t *value;

    if (!json_is_object(doc))
        fail(r, "forwarded body is not a JSON object", body, len);
    for (size_t i = 0; i < mc->strip_params.len; i++) {
        key = mc->strip_params.items[i];
        if (strcmp(key, "model") != 0 && json_object_get(mc->set_params, key) == NULL &&
            json_object_get(doc, key) != NULL)
            fail(r, "stripped key still forwarded", body, len);
    }
    json_object_foreach(mc->set_params, key, value)
    {
        if (!json_equal(json_object_get(doc, key), value))
            fail(r, "setParams key not forwarded as set", body, len);
    }
    value = json_object_get(doc, "model");
    if (mc->use_model_name != NULL &&
        (!json_is_string(value) || strcmp(json_string_value(value), mc->use_model_name) != 0))
        fail(r, "useModelName not forwarded", body, len);
    json_decref(doc);
}

/* A request reached the upstream stub: check the body, answer 200. */
static void on_upstream_request(struct fuzz_stub_conn *conn, const char *head, size_t head_len,
                                const char *body, size_t body_len, void *arg)
{
    static const char answer[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    struct run *r = arg;
    const char *path = memchr(head, ' ', head_len);

    if (path == NULL)
        fail(r, "malformed upstream request", head, head_len);
    path++;
    if (strncmp(path, "/chat/", 6) == 0) {
        check_filtered(r, r->chat, body, body_len);
    } else if (strncmp(path, "/embed/", 7) == 0) {
        check_filtered(r, r->embed, body, body_len);
    } else if (strncmp(path, "/plain/", 7) == 0) {
        bool is_same = body_len == r->body_len && memcmp(body, r->body, body_len) == 0;
        if (!is_same && !r->is_pinning)
            fail(r, "body changed on its way to a model without filters", body, body_len);
    } else {
        fail(r, "request for an unknown upstream path", head, head_len);
    }
    fuzz_stub_write(conn, answer, sizeof(answer) - 1);
}

/* Checks the responses the client read: well-formed, no 5xx. */
static void check_responses(const struct run *r)
{
    size_t len = evbuffer_get_length(r->in);
    const char *text = (const char *)evbuffer_pullup(r->in, -1);
    size_t at = 0;

    if (len == 0)
        fail(r, "no response", NULL, 0);
    while (at < len) {
        const char *head = text + at, *end, *cl;
        int status = 0;
        size_t head_len, body_len = 0;

        end = memmem(head, len - at, "\r\n\r\n", 4);
        if (end == NULL || len - at < 12 || strncmp(head, "HTTP/1.1 ", 9) != 0)
            fail(r, "malformed response", head, len - at);
        head_len = (size_t)(end - head) + 4;
        status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
        if (status < 200 || status >= 500)
            fail(r, "unexpected status", head, head_len);
        cl = memmem(head, head_len, "Content-Length: ", 16);
        if (cl != NULL)
            body_len = strtoul(cl + 16, NULL, 10);
        else
            body_len = len - at - head_len;
        at += head_len + body_len;
    }
}

/* The client's socket is readable: collect the responses until the server closes. */
static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    (void)what;

    if (fuzz_net_recv(fd, r->in) == 0)
        return;
    event_del(r->read_ev); /* EOF or error: the exchange is over */
    event_base_loopbreak(r->base);
}

/* The client's socket takes more of the requests. */
static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    (void)what;

    while (evbuffer_get_length(r->out) > 0) {
        int n = evbuffer_write(r->out, fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) { /* the server closed early, e.g. after a 413 */
            evbuffer_drain(r->out, evbuffer_get_length(r->out));
            break;
        }
    }
    event_del(r->write_ev);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    const struct run *r = arg;
    (void)fd;
    (void)what;
    fail(r, "no complete answer in time", NULL, 0);
}

/* Queues the requests: the profile activation if asked, then the input as a body. */
static void queue_requests(struct run *r, unsigned endpoint, bool is_chunked)
{
    static const char activate[] = "{\"name\":\"coding\"}";
    struct evbuffer *out = r->out;

    if (r->is_pinning)
        evbuffer_add_printf(out,
                            "PUT /api/profiles/active HTTP/1.1\r\nHost: fuzz\r\n"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                            sizeof(activate) - 1, activate);
    evbuffer_add_printf(out,
                        "%s %s HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
                        "Accept: application/json\r\nConnection: close\r\n",
                        endpoints[endpoint].method, endpoints[endpoint].path);
    if (!is_chunked) {
        evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", r->body_len);
        evbuffer_add(out, r->body, r->body_len);
        return;
    }
    evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t at = 0, piece = r->body_len / 3 + 1; at < r->body_len; at += piece) {
        size_t n = r->body_len - at < piece ? r->body_len - at : piece;
        evbuffer_add_printf(out, "%zx\r\n", n);
        evbuffer_add(out, r->body + at, n);
        evbuffer_add(out, "\r\n", 2);
    }
    evbuffer_add(out, "0\r\n\r\n", 5);
}

/* Loads the config for the stub's PORT; the catalog's part (capabilities from GGUF files)
 * is filled in by hand: "chat" generates text and calls tools, "embed" only embeds, "plain"
 * is unknown. Returns the config (caller frees) or aborts. */
static struct cfg *load_config(const struct run *r, int port)
{
    char text[sizeof(config_fmt) + 4096];
    struct cfg *cfg = NULL;
    char *cause = NULL;
    int n = snprintf(text, sizeof(text), config_fmt, r->state_dir, port, port, port);

    if (n < 0 || (size_t)n >= sizeof(text) ||
        cfg_load_string(text, (size_t)n, "fuzz.yaml", &cfg, &cause) != 0)
        fail(r, "the harness's config does not load", cause, cause != NULL ? strlen(cause) : 0);
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (strcmp(cfg->models[i].id, "chat") == 0)
            cfg->models[i].caps = GGUF_CAP_COMPLETION | GGUF_CAP_TOOLS;
        else if (strcmp(cfg->models[i].id, "embed") == 0)
            cfg->models[i].caps = GGUF_CAP_EMBEDDINGS;
    }
    return cfg;
}

/* Makes the run's state directory (for the database and the server secret) into DIR: on
 * tmpfs when there is one, where SQLite's syncs cost nothing. */
static void state_dir_make(char *dir, size_t size)
{
    static const char *const parents[] = {"/dev/shm", "/tmp"};

    for (size_t i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
        snprintf(dir, size, "%s/ig-fuzz-XXXXXX", parents[i]);
        if (mkdtemp(dir) != NULL)
            return;
    }
    fail(NULL, "cannot make a state directory", strerror(errno), strlen(strerror(errno)));
}

/* Connects the client to the gateway on PORT; returns the socket or aborts. */
static evutil_socket_t client_connect(const struct run *r, int port)
{
    struct sockaddr_in addr = {0};
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        evutil_make_socket_nonblocking(fd) != 0)
        fail(r, "cannot connect to the gateway", strerror(errno), strlen(strerror(errno)));
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct timeval deadline = {DEADLINE_S, 0};
    struct run r = {0};
    char *cause = NULL;
    struct cfg *cfg;
    unsigned endpoint;

    if (size < 1)
        return 0;
    endpoint = (data[0] & 15u) % (sizeof(endpoints) / sizeof(endpoints[0]));
    r.is_pinning = (data[0] & 16u) != 0;
    r.body = data + 1;
    r.body_len = size - 1;
    r.base = event_base_new();
    if (r.base == NULL)
        abort();
    r.stub = fuzz_stub_new(r.base, on_upstream_request, &r);
    if (r.stub == NULL)
        abort();
    state_dir_make(r.state_dir, sizeof(r.state_dir));
    cfg = load_config(&r, fuzz_stub_port(r.stub));
    r.chat = cfg_find_model(cfg, "chat");
    r.embed = cfg_find_model(cfg, "embed");
    r.app = gw_app_new(r.base, cfg, &cause); /* takes cfg */
    if (r.app == NULL || gw_app_listen(r.app, "127.0.0.1", 0, &cause) != 0)
        fail(&r, "cannot start the gateway", cause, cause != NULL ? strlen(cause) : 0);
    r.fd = client_connect(&r, gw_app_port(r.app));
    r.out = evbuffer_new();
    r.in = evbuffer_new();
    r.read_ev = event_new(r.base, r.fd, EV_READ | EV_PERSIST, client_read_cb, &r);
    r.write_ev = event_new(r.base, r.fd, EV_WRITE | EV_PERSIST, client_write_cb, &r);
    r.deadline_ev = evtimer_new(r.base, on_deadline, &r);
    if (r.out == NULL || r.in == NULL || r.read_ev == NULL || r.write_ev == NULL ||
        r.deadline_ev == NULL)
        abort();
    queue_requests(&r, endpoint, (data[0] & 32u) != 0);
    event_add(r.read_ev, NULL);
    event_add(r.write_ev, NULL);
    evtimer_add(r.deadline_ev, &deadline);
    event_base_dispatch(r.base);
    if (getenv("IG_FUZZ_VERBOSE") != NULL) /* for reading what a saved input does */
        fprintf(stderr, "fuzz_request_json: %zu upstream request(s); client read:\n%.*s\n",
                fuzz_stub_requests(r.stub), (int)evbuffer_get_length(r.in),
                (const char *)evbuffer_pullup(r.in, -1));
    check_responses(&r);

    /* Resets first, so that no side keeps a TIME_WAIT connection. */
    event_free(r.read_ev);
    event_free(r.write_ev);
    event_free(r.deadline_ev);
    fuzz_net_close_reset(r.fd);
    fuzz_stub_free(r.stub);
    gw_app_free(r.app);
    state_dir_remove(r.state_dir);
    evbuffer_free(r.out);
    evbuffer_free(r.in);
    event_base_free(r.base);
    return 0;
}
