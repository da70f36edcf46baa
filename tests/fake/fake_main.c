/* fake-llama-server: a deterministic llama-server look-alike with fault knobs, for tests. */
#include "fake.h"

#include "ig_time.h"

#include <errno.h>
#include <event2/buffer.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: fake-llama-server --port P [options]\n"
    "\n"
    "A deterministic llama-server look-alike for tests and proxy benchmarks.\n"
    "\n"
    "  --port P                  port to listen on (required; 0 picks a free one)\n"
    "  --host H                  address to bind (default 127.0.0.1)\n"
    "  -m, --model NAME          model name reported (default \"fake\")\n"
    "  -a, --alias NAME          model name reported; wins over --model\n"
    "  --startup-ms N            answer 503 \"Loading model\" (with its progress) for N ms\n"
    "  --token-us N              delay between streamed tokens in microseconds (default 0);\n"
    "                            non-streamed replies wait N * tokens\n"
    "  --crash-after-tokens N    _exit(1) after emitting N tokens of a longer response\n"
    "  --hang-after-tokens N     stop sending after N tokens, keep the connection open\n"
    "  --fail-health             /health always answers 500\n"
    "  --bad-json-rate F         fraction 0..1 of responses whose JSON is broken\n"
    "  --embedding-dim N         embedding size (default 16)\n"
    "  --events-file PATH        append one JSON line per request/done/cancel/crash/hang\n"
    "  -h, --help                print this help\n"
    "\n"
    "Accepted and ignored, as llama-server takes them: -c/--ctx-size, -np/--parallel,\n"
    "-t/--threads, -tb/--threads-batch, -ngl/--n-gpu-layers/--gpu-layers, -b/--batch-size,\n"
    "-ub/--ubatch-size, --threads-http, --pooling, --chat-template, -ctk/--cache-type-k,\n"
    "-ctv/--cache-type-v, --timeout (with a value); --embeddings, --embedding, --jinja,\n"
    "--no-webui, --metrics, --cont-batching, --no-mmap, --mlock (without).\n";

/* llama-server flags accepted for compatibility; they take one value each. */
static const char *const ignored_with_value[] = {
    "-c",
    "--ctx-size",
    "-np",
    "--parallel",
    "-t",
    "--threads",
    "-tb",
    "--threads-batch",
    "-ngl",
    "--n-gpu-layers",
    "--gpu-layers",
    "-b",
    "--batch-size",
    "-ub",
    "--ubatch-size",
    "--threads-http",
    "--pooling",
    "--chat-template",
    "-ctk",
    "--cache-type-k",
    "-ctv",
    "--cache-type-v",
    "--timeout",
};

/* llama-server flags accepted for compatibility that take no value. */
static const char *const ignored_bare[] = {
    "--embeddings", "--embedding",     "--jinja",   "--no-webui",
    "--metrics",    "--cont-batching", "--no-mmap", "--mlock",
};

/* Returns whether NAME is in the N-entry LIST. */
static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, list[i]) == 0)
            return true;
    }
    return false;
}

/* Parses S as a base-10 integer in [LO, HI]; 0 or -1. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Parses S as a real number in [LO, HI]; 0 or -1. */
static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* Returns the field of O that numeric option NAME sets, with its bounds, or NULL. */
static long *number_slot(struct fake_opts *o, const char *name, long *lo, long *hi)
{
    const struct {
        const char *name;
        long *slot;
        long lo;
        long hi;
    } table[] = {
        {"--port", &o->port, 0, 65535},
        {"--startup-ms", &o->startup_ms, 0, 3600000},
        {"--token-us", &o->token_us, 0, 60000000},
        {"--crash-after-tokens", &o->crash_after_tokens, 0, 1000000},
        {"--hang-after-tokens", &o->hang_after_tokens, 0, 1000000},
        {"--embedding-dim", &o->embedding_dim, 1, FAKE_MAX_EMBED_DIM},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(name, table[i].name) == 0) {
            *lo = table[i].lo;
            *hi = table[i].hi;
            return table[i].slot;
        }
    }
    return NULL;
}

/* Applies the numeric option NAME=VALUE to O; 0, 1 if NAME is not numeric, -1 if invalid. */
static int set_number(struct fake_opts *o, const char *name, const char *value)
{
    long lo = 0;
    long hi = 0;
    long *slot;

    if (strcmp(name, "--bad-json-rate") == 0)
        return parse_double(value, 0.0, 1.0, &o->bad_json_rate);
    slot = number_slot(o, name, &lo, &hi);
    if (slot == NULL)
        return 1;
    return parse_long(value, lo, hi, slot);
}

/* Applies option NAME with VALUE to O; 0, 1 if NAME is unknown, -1 if VALUE is invalid. */
static int set_option(struct fake_opts *o, const char *name, const char *value, const char **alias)
{
    if (strcmp(name, "--host") == 0)
        o->host = value;
    else if (strcmp(name, "--model") == 0 || strcmp(name, "-m") == 0)
        o->model = value;
    else if (strcmp(name, "--alias") == 0 || strcmp(name, "-a") == 0)
        *alias = value;
    else if (strcmp(name, "--events-file") == 0)
        o->events_path = value;
    else if (!in_list(name, ignored_with_value, sizeof(ignored_with_value) / sizeof(char *)))
        return set_number(o, name, value);
    return 0;
}

/* Our own options that take a value. */
static const char *const own_with_value[] = {
    "--port",
    "--host",
    "--model",
    "-m",
    "--alias",
    "-a",
    "--startup-ms",
    "--token-us",
    "--crash-after-tokens",
    "--hang-after-tokens",
    "--bad-json-rate",
    "--embedding-dim",
    "--events-file",
};

/* Returns whether option NAME is known and takes a value. */
static bool takes_value(const char *name)
{
    return in_list(name, own_with_value, sizeof(own_with_value) / sizeof(char *)) ||
           in_list(name, ignored_with_value, sizeof(ignored_with_value) / sizeof(char *));
}

/* Parses ARGV into O; 0 to run, 1 for --help, -1 on error (message printed). */
static int parse_args(int argc, char **argv, struct fake_opts *o)
{
    const char *alias = NULL;
    bool has_port = false;

    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        int rc;

        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
            return 1;
        if (strcmp(name, "--fail-health") == 0) {
            o->fail_health = true;
            continue;
        }
        if (in_list(name, ignored_bare, sizeof(ignored_bare) / sizeof(char *)))
            continue;
        if (!takes_value(name)) {
            fprintf(stderr, "fake-llama-server: unknown option %s (see --help)\n", name);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fake-llama-server: %s needs a value\n", name);
            return -1;
        }
        rc = set_option(o, name, argv[++i], &alias);
        if (rc != 0) {
            fprintf(stderr, "fake-llama-server: invalid value for %s: '%s'\n", name, argv[i]);
            return -1;
        }
        has_port = has_port || strcmp(name, "--port") == 0;
    }
    if (alias != NULL)
        o->model = alias;
    if (!has_port) {
        fprintf(stderr, "fake-llama-server: --port is required (see --help)\n");
        return -1;
    }
    return 0;
}

void fake_event(struct fake_server *srv, const char *name, json_t *fields)
{
    json_t *line = NULL;
    char *text = NULL;

    if (srv->events == NULL || fields == NULL)
        goto out;
    line = json_pack("{s:s}", "event", name);
    if (line == NULL || json_object_update(line, fields) != 0)
        goto out;
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        fprintf(srv->events, "%s\n", text);
        fflush(srv->events);
    }
out:
    free(text);
    json_decref(line);
    json_decref(fields);
}

/* SIGTERM/SIGINT: leave the loop; main() then releases everything. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct fake_server *srv = arg;

    (void)sig;
    (void)what;
    event_base_loopexit(srv->base, NULL);
}

/* Returns NAME as a malloc'd quoted JSON string, or NULL. */
static char *quote_json(const char *name)
{
    struct evbuffer *b = evbuffer_new();
    char *out = NULL;
    size_t len;

    if (b == NULL)
        return NULL;
    fake_json_str(b, name, strlen(name));
    len = evbuffer_get_length(b);
    out = malloc(len + 1);
    if (out != NULL) {
        evbuffer_remove(b, out, len);
        out[len] = '\0';
    }
    evbuffer_free(b);
    return out;
}

/*
 * Returns a new event base. evhttp enables and disables reading and writing several times per
 * request; the epoll changelist folds those into one epoll_ctl per loop iteration, which is
 * most of the difference at benchmark request rates. (Its documented caveat, fds shared by
 * dup(), does not apply here.)
 */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base = NULL;

    /* Precise timers: --token-us pacing must not round to the coarse clock's 4 ms steps. */
    if (cfg != NULL && event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0 &&
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
        base = event_base_new_with_config(cfg);
    if (cfg != NULL)
        event_config_free(cfg);
    return base != NULL ? base : event_base_new();
}

/* Creates the loop, opens the events file and binds; 0 or -1 with a message printed. */
static int server_open(struct fake_server *srv, const struct fake_opts *opts)
{
    char *cause = NULL;

    srv->opts = opts;
    srv->start_ms = ig_now_ms();
    srv->id_state = ig_now_us() ^ ((uint64_t)getpid() << 32);
    srv->base = new_base();
    srv->model_json = quote_json(opts->model);
    if (srv->base == NULL || srv->model_json == NULL) {
        fprintf(stderr, "fake-llama-server: out of memory\n");
        return -1;
    }
    if (opts->events_path != NULL) {
        srv->events = fopen(opts->events_path, "a");
        if (srv->events == NULL) {
            fprintf(stderr, "fake-llama-server: cannot open %s: %s\n", opts->events_path,
                    strerror(errno));
            return -1;
        }
    }
    if (fake_http_start(srv, &cause) != 0) {
        fprintf(stderr, "fake-llama-server: %s\n", cause != NULL ? cause : "cannot listen");
        free(cause);
        return -1;
    }
    return 0;
}

/* Releases everything server_open() created (any subset of it). */
static void server_close(struct fake_server *srv)
{
    fake_http_stop(srv);
    if (srv->base != NULL)
        event_base_free(srv->base);
    if (srv->events != NULL)
        fclose(srv->events);
    free(srv->model_json);
}

int main(int argc, char **argv)
{
    struct fake_opts opts = {
        .host = "127.0.0.1",
        .model = "fake",
        .crash_after_tokens = -1,
        .hang_after_tokens = -1,
        .embedding_dim = 16,
    };
    struct fake_server srv = {0};
    struct event *sigterm = NULL;
    struct event *sigint = NULL;
    int rc = parse_args(argc, argv, &opts);

    if (rc != 0) {
        if (rc > 0)
            fputs(usage_text, stdout);
        return rc > 0 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = 1;
    if (server_open(&srv, &opts) != 0)
        goto out;
    sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
    sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
    if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) != 0 ||
        evsignal_add(sigint, NULL) != 0) {
        fprintf(stderr, "fake-llama-server: cannot install signal handlers\n");
        goto out;
    }
    event_base_dispatch(srv.base);
    rc = 0;
out:
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    server_close(&srv);
    libevent_global_shutdown();
    return rc;
}
