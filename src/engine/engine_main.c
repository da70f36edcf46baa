/* infergate-engine: flags, start-up checks, the event loop and shutdown. */
#include "engine_internal.h"

#include "http_server.h"
#include "ig_log.h"
#include "ig_time.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENG_MAX_PARALLEL 256

static const char usage_text[] =
    "usage: infergate-engine -m FILE [options]\n"
    "  -m, --model FILE          GGUF model to serve (required)\n"
    "  --host HOST               address to bind (default 127.0.0.1)\n"
    "  --port PORT               port to listen on (default 8080; 0 picks one)\n"
    "  -c, --ctx-size N          KV cache size in tokens, split across slots (default 4096\n"
    "                            or the model's training context if smaller)\n"
    "  -np, --parallel N         slots decoded together (default 4)\n"
    "  -t, --threads N           CPU threads (default: half the online CPUs)\n"
    "  -ngl, --n-gpu-layers N    layers to offload (accepted; CPU backends only)\n"
    "  -b, --batch-size N        tokens per decode step (default 2048)\n"
    "  --poll N                  how hard idle CPU workers poll for work, 0-100 (default 0:\n"
    "                            they sleep)\n"
    "  --embeddings              serve /v1/embeddings (and no completions)\n"
    "  -a, --alias NAME          model name reported in responses\n"
    "  --chat-template NAME      builtin template name for llama_chat_apply_template\n"
    "  -v, --verbose             show libllama's log\n"
    "  --metrics                 serve /metrics (Prometheus text)\n"
    "  --no-mmap                 read the model into memory instead of mapping it\n"
    "  -kvu, --kv-unified        one KV buffer shared by the slots (default)\n"
    "  -no-kvu, --no-kv-unified  one KV buffer per slot\n"
    "  accepted and ignored: --jinja --no-webui --cont-batching --mlock,\n"
    "  and with a value: -tb -ub --threads-http --pooling -ctk -ctv --timeout --poll-batch\n"
    "  -h, --help                this text\n";

/* Parses a decimal int in [MIN, MAX] from S into *OUT; 0 or -1. */
static int parse_int(const char *s, int min, int max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* llama-server flags accepted and ignored, so a cmd written for llama-server runs here. */
static const char *const ignored_with_value[] = {
    "-tb",  "--threads-batch", "-ub",  "--ubatch-size",  "--threads-http", "--pooling",
    "-ctk", "--cache-type-k",  "-ctv", "--cache-type-v", "--timeout",      "--poll-batch",
    NULL};
static const char *const ignored_switches[] = {"--jinja", "--no-webui", "--cont-batching",
                                               "--mlock", NULL};

/* Returns whether ARG is in the NULL-terminated LIST. */
static bool in_list(const char *arg, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(arg, list[i]) == 0)
            return true;
    }
    return false;
}

/* Returns whether ARG is one of the spellings A or B (B may be NULL). */
static bool is_flag(const char *arg, const char *a, const char *b)
{
    return strcmp(arg, a) == 0 || (b != NULL && strcmp(arg, b) == 0);
}

/* Parses argv into O; 0, 1 for --help, or -1 after printing the problem. */
static int parse_args(int argc, char **argv, struct eng_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *num = NULL;
        int min = 0, max = INT_MAX;
        if (is_flag(a, "-h", "--help"))
            return 1;
        if (is_flag(a, "--embeddings", "--embedding")) {
            o->has_embeddings = true;
            continue;
        }
        if (is_flag(a, "--metrics", NULL)) {
            o->has_metrics = true;
            continue;
        }
        if (is_flag(a, "-kvu", "--kv-unified") || is_flag(a, "-no-kvu", "--no-kv-unified")) {
            o->is_kv_per_slot = is_flag(a, "-no-kvu", "--no-kv-unified");
            continue;
        }
        if (is_flag(a, "--no-mmap", NULL)) {
            o->is_no_mmap = true;
            continue;
        }
        if (in_list(a, ignored_switches))
            continue;
        if (is_flag(a, "-v", "--verbose")) {
            o->is_verbose = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "infergate-engine: unknown flag or missing value: %s\n", a);
            return -1;
        }
        i++;
        if (is_flag(a, "-m", "--model"))
            o->model_path = v;
        else if (is_flag(a, "--host", NULL))
            o->host = v;
        else if (is_flag(a, "-a", "--alias"))
            o->alias = v;
        else if (is_flag(a, "--chat-template", NULL))
            o->chat_template = v;
        else if (is_flag(a, "--port", NULL))
            num = &o->port, max = 65535;
        else if (is_flag(a, "-c", "--ctx-size"))
            num = &o->n_ctx;
        else if (is_flag(a, "-np", "--parallel"))
            num = &o->n_parallel, min = 1, max = ENG_MAX_PARALLEL;
        else if (is_flag(a, "-t", "--threads"))
            num = &o->n_threads, min = -1, max = 1024;
        else if (is_flag(a, "-ngl", "--n-gpu-layers") || is_flag(a, "--gpu-layers", NULL))
            num = &o->n_gpu_layers, min = -1;
        else if (is_flag(a, "--poll", NULL))
            num = &o->poll, max = 100;
        else if (is_flag(a, "-b", "--batch-size"))
            num = &o->n_batch, min = 1, max = 1 << 20;
        else if (!in_list(a, ignored_with_value)) {
            fprintf(stderr, "infergate-engine: unknown flag: %s\n", a);
            return -1;
        }
        if (num != NULL && parse_int(v, min, max, num) != 0) {
            fprintf(stderr, "infergate-engine: bad value for %s: %s\n", a, v);
            return -1;
        }
    }
    if (o->model_path == NULL) {
        fprintf(stderr, "infergate-engine: -m FILE is required\n");
        return -1;
    }
    return 0;
}

/* Checks that PATH is a readable file starting with the GGUF magic; 0, or -1 after printing. */
static int check_model_file(const char *path)
{
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "infergate-engine: cannot open model %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(magic, 1, sizeof(magic), fp);
    fclose(fp);
    if (n != sizeof(magic) || memcmp(magic, "GGUF", 4) != 0) {
        fprintf(stderr, "infergate-engine: cannot load model %s: not a GGUF file\n", path);
        return -1;
    }
    return 0;
}

/* SIGTERM/SIGINT: leave the loop; shutdown continues in main(). */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct engine *e = arg;
    (void)what;
    ig_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(e->base);
}

/* Sets up the loop, the server and the inference thread, runs, and tears down; exit code. */
static int run(struct engine *e)
{
    const struct eng_options *o = e->opts;
    struct event *sigterm = NULL, *sigint = NULL;
    char *cause = NULL;
    int rc = 1;

    if (evthread_use_pthreads() != 0 || pthread_mutex_init(&e->mu, NULL) != 0 ||
        pthread_cond_init(&e->cond, NULL) != 0)
        return 1;
    e->base = event_base_new();
    e->slot_busy = calloc((size_t)o->n_parallel, sizeof(bool));
    e->slot_n_decoded = calloc((size_t)o->n_parallel, sizeof(int));
    if (e->base == NULL || e->slot_busy == NULL || e->slot_n_decoded == NULL)
        goto out;
    e->notify = event_new(e->base, -1, 0, eng_on_notify, e);
    sigterm = evsignal_new(e->base, SIGTERM, on_signal, e);
    sigint = evsignal_new(e->base, SIGINT, on_signal, e);
    e->srv = http_server_new(e->base, NULL, eng_http_handle, e);
    if (e->notify == NULL || sigterm == NULL || sigint == NULL || e->srv == NULL ||
        evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0)
        goto out;
    if (http_server_listen(e->srv, o->host, o->port, &cause) != 0) {
        fprintf(stderr, "infergate-engine: cannot listen on %s:%d: %s\n", o->host, o->port,
                cause != NULL ? cause : "error");
        goto out;
    }
    fprintf(stderr, "infergate-engine: listening on %s:%d, loading %s\n", o->host,
            http_server_port(e->srv), o->model_path);
    if (eng_infer_start(e) != 0)
        goto out;
    event_base_dispatch(e->base);
    if (e->exit_code != 0) {
        fprintf(stderr, "infergate-engine: %s\n", e->load_cause);
        goto out;
    }
    rc = 0;
out:
    /* Cancel the requests first, then stop the thread, then free what it handed back. */
    http_server_free(e->srv);
    e->srv = NULL;
    eng_infer_stop(e);
    if (e->notify != NULL)
        eng_on_notify(-1, 0, e);
    free(cause);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (e->notify != NULL)
        event_free(e->notify);
    if (e->base != NULL)
        event_base_free(e->base);
    free(e->slot_busy);
    free(e->slot_n_decoded);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->mu);
    return rc;
}

int main(int argc, char **argv)
{
    /* --poll 0 measured best on a shared 2-core machine (docs/BENCHMARKS.md, Engine). */
    struct eng_options o = {
        .host = "127.0.0.1", .port = 8080, .n_parallel = 4, .n_batch = 2048, .poll = 0};
    struct engine e = {.opts = &o};

    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        fputs(usage_text, rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    if (check_model_file(o.model_path) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    e.id_state = ig_now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    return run(&e);
}
