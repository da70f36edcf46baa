/* `infergate serve` and `infergate check`. */
#include "model_catalog.h"
#include "cfg.h"
#include "cli.h"
#include "batch.h"
#include "bus.h"
#include "gw_app.h"
#include "http_front.h"
#include "http_tls.h"
#include "ig_log.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* State of a running server for the signal handlers. */
struct serve_ctx {
    struct event_base *base;
    struct gw_app *app;
    int n_signals;
};

int cli_parse_listen(const char *text, char *host, unsigned long host_size, int *port)
{
    const char *colon;
    char *end = NULL;
    long value;
    size_t host_len;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host_len = (size_t)(close - text - 1);
        text++;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        host_len = (size_t)(colon - text);
    }
    if (host_len + 1 > host_size)
        return -1;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    if (host_len == 0)
        snprintf(host, host_size, "0.0.0.0");
    value = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || value < 0 || value > 65535)
        return -1;
    *port = (int)value;
    return 0;
}

/* The command line of `serve` and `check`. */
struct serve_args {
    const char *config;
    const char *listen;   /* --listen HOST:PORT, or NULL */
    const char *tls_cert; /* --tls-cert-file FILE (llama-swap's name), or NULL */
    const char *tls_key;  /* --tls-key-file FILE, or NULL */
    bool is_insecure;     /* --insecure-no-auth */
};

/* Returns the value of option NAME at ARGV[*I] ("NAME VALUE" or "NAME=VALUE", moving *I past
 * it), or NULL when ARGV[*I] is not that option. */
static const char *option_value(const char *name, int argc, char **argv, int *i)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* Parses the arguments of `serve` (IS_SERVE) or `check` into A: "-c FILE", "--config FILE"
 * or "--config=FILE"; serve also takes --listen, --tls-cert-file, --tls-key-file and
 * --insecure-no-auth. Returns -1 on a bad argument, after saying why. */
static int parse_args(int argc, char **argv, bool is_serve, struct serve_args *a)
{
    const char *v;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            a->config = argv[++i];
        else if ((v = option_value("--config", argc, argv, &i)) != NULL)
            a->config = v;
        else if (is_serve && (v = option_value("--listen", argc, argv, &i)) != NULL)
            a->listen = v;
        else if (is_serve && (v = option_value("--tls-cert-file", argc, argv, &i)) != NULL)
            a->tls_cert = v;
        else if (is_serve && (v = option_value("--tls-key-file", argc, argv, &i)) != NULL)
            a->tls_key = v;
        else if (is_serve && strcmp(argv[i], "--insecure-no-auth") == 0)
            a->is_insecure = true;
        else {
            fprintf(stderr, "infergate: unknown or incomplete argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (a->config == NULL) {
        fprintf(stderr, "infergate: missing -c FILE\n");
        return -1;
    }
    if ((a->tls_cert == NULL) != (a->tls_key == NULL) ||
        (a->tls_cert != NULL && (a->tls_cert[0] == '\0' || a->tls_key[0] == '\0'))) {
        fprintf(stderr, "infergate: both --tls-cert-file and --tls-key-file must be given "
                        "for TLS\n");
        return -1;
    }
    return 0;
}

struct cfg *cli_load_config(const char *path)
{
    struct cfg *cfg = NULL;
    char *cause = NULL;

    if (catalog_load(path, NULL, &cfg, &cause) != 0) {
        fprintf(stderr, "%s\n", cause != NULL ? cause : "cannot load config");
        free(cause);
        return NULL;
    }
    for (size_t i = 0; i < cfg->warnings.len; i++)
        fprintf(stderr, "warning: %s\n", cfg->warnings.items[i]);
    return cfg;
}

/* Loads CFG's certificate once to check it (the key matches, nothing is encrypted), printing
 * why not; returns 0 or -1 (infergate-net). */
static int check_tls(const struct cfg *cfg)
{
    char *cause = NULL;
    struct http_tls *tls;

    if (cfg->tls.cert_path == NULL)
        return 0;
    tls = http_tls_new(cfg->tls.cert_path, cfg->tls.key_path,
                       cfg->tls.min_version == 13 ? HTTP_TLS_1_3 : HTTP_TLS_1_2, &cause);
    if (tls == NULL) {
        fprintf(stderr, "%s: %s\n",
                cfg->tls.is_from_command_line ? "--tls-cert-file/--tls-key-file" : cfg->path,
                cause != NULL ? cause : "tls: cannot load");
        free(cause);
        return -1;
    }
    http_tls_free(tls);
    return 0;
}

int cli_check(int argc, char **argv)
{
    struct serve_args args = {0};
    struct cfg *cfg;
    char *cause = NULL;

    if (parse_args(argc, argv, false, &args) != 0)
        return 1;
    cfg = cli_load_config(args.config);
    if (cfg == NULL)
        return 1;
    if (check_tls(cfg) != 0) {
        cfg_free(cfg);
        return 1;
    }
    if (http_front_check_exposure(cfg->listen_host, cfg->listen_port, cfg, false, &cause) != 0) {
        fprintf(stderr, "warning: %s\n", cause != NULL ? cause : "listen is not loopback");
        free(cause);
    }
    for (size_t i = 0; i < cfg->inactive_keys.len; i++)
        fprintf(stderr, "accepted, not active yet: %s\n", cfg->inactive_keys.items[i]);
    printf("%s: OK, %zu model(s)\n", args.config, cfg->n_models);
    cfg_free(cfg);
    return 0;
}

/* Graceful shutdown finished. */
static void on_stopped(void *arg)
{
    struct serve_ctx *ctx = arg;
    event_base_loopexit(ctx->base, NULL);
}

/* SIGINT/SIGTERM: first one shuts down gracefully, a second one exits at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct serve_ctx *ctx = arg;
    (void)what;

    ctx->n_signals++;
    if (ctx->n_signals == 1) {
        ig_info("received signal %d, shutting down", (int)sig);
        gw_app_shutdown(ctx->app, on_stopped, ctx);
        return;
    }
    ig_warn("second signal: exiting now");
    event_base_loopbreak(ctx->base);
}

/* SIGHUP: reload the config file (the running one stays when the new one is invalid). */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct serve_ctx *ctx = arg;
    (void)sig;
    (void)what;

    ig_info("received SIGHUP, reloading the configuration");
    gw_app_request_reload(ctx->app);
}

/* Creates the loop. With epoll's changelist, the add/remove/modify churn of curl's socket
 * callbacks within one loop iteration costs one epoll_ctl per socket, not one per change. */
static struct event_base *new_event_base(void)
{
    struct event_config *config = event_config_new();
    struct event_base *base;

    if (config == NULL)
        return NULL;
    event_config_set_flag(config, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(config);
    event_config_free(config);
    return base;
}

/* `worker` mode: serves over the bus instead of listening. */
struct worker_opts {
    const char *name;  /* --name, or NULL */
    size_t capacity;   /* --capacity */
};

/* Runs the loop until shutdown: listening on HOST:PORT, or as the worker WORKER. */
static int run(struct cfg *cfg, const char *host, int port, const struct worker_opts *worker)
{
    struct serve_ctx ctx = {0};
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    char *cause = NULL;
    int rc = 1;
    bool cfg_tls_on = cfg->tls.cert_path != NULL; /* cfg belongs to the app once it exists */
    bool has_bus = false;

    ctx.base = new_event_base();
    if (ctx.base == NULL) {
        cfg_free(cfg);
        goto out;
    }
    ctx.app = gw_app_new(ctx.base, cfg, &cause);
    if (ctx.app == NULL)
        goto out;
    has_bus = cfg->nats.urls != NULL;
    if (worker != NULL ? gw_bus_serve(ctx.app, worker->name, worker->capacity, &cause) != 0
                       : gw_app_listen(ctx.app, host, port, &cause) != 0)
        goto out;
    if (worker == NULL && has_bus && gw_bus_join(ctx.app, &cause) != 0)
        goto out;
    if (worker == NULL && batch_svc_start(ctx.app, &cause) != 0)
        goto out;
    sigterm = evsignal_new(ctx.base, SIGTERM, on_signal, &ctx);
    sigint = evsignal_new(ctx.base, SIGINT, on_signal, &ctx);
    sighup = evsignal_new(ctx.base, SIGHUP, on_sighup, &ctx);
    if (sigterm == NULL || sigint == NULL || sighup == NULL)
        goto out;
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sighup, NULL);
    if (worker == NULL)
        ig_info("infergate %s listening on %s://%s%s%s:%d", IG_VERSION,
                cfg_tls_on ? "https" : "http", strchr(host, ':') != NULL ? "[" : "", host,
                strchr(host, ':') != NULL ? "]" : "", gw_app_port(ctx.app));
    event_base_dispatch(ctx.base);
    rc = 0;
out:
    if (cause != NULL) {
        ig_error("%s", cause);
        free(cause);
    }
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (sighup != NULL)
        event_free(sighup);
    gw_app_free(ctx.app);
    if (ctx.base != NULL)
        event_base_free(ctx.base);
    if (has_bus)
        bus_library_close(); /* cnats's threads and memory */
    return rc;
}

int cli_serve(int argc, char **argv)
{
    struct serve_args args = {0};
    char host[256];
    int port = 0;
    enum ig_log_level level = IG_LOG_INFO;
    struct cfg *cfg;
    char *cause = NULL;
    size_t n_warnings;

    if (parse_args(argc, argv, true, &args) != 0)
        return 2;
    cfg = cli_load_config(args.config);
    if (cfg == NULL)
        return 1;
    if (cfg->log_level != NULL && ig_log_parse_level(cfg->log_level, &level) == 0)
        ig_log_set_level(level);
    ig_log_set_json(cfg->is_log_json);
    for (size_t i = 0; i < cfg->inactive_keys.len; i++)
        ig_warn("accepted, not active yet: %s", cfg->inactive_keys.items[i]);
    snprintf(host, sizeof(host), "%s", cfg->listen_host);
    port = cfg->listen_port;
    if (args.listen != NULL && cli_parse_listen(args.listen, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "infergate: invalid --listen '%s' (want HOST:PORT)\n", args.listen);
        cfg_free(cfg);
        return 2;
    }
    /* llama-swap's TLS flags win over the file's tls section, on every reload too. */
    n_warnings = cfg->warnings.len;
    if (args.tls_cert != NULL && cfg_set_tls_files(cfg, args.tls_cert, args.tls_key) != 0) {
        fprintf(stderr, "infergate: out of memory\n");
        cfg_free(cfg);
        return 1;
    }
    for (size_t i = n_warnings; i < cfg->warnings.len; i++)
        fprintf(stderr, "warning: %s\n", cfg->warnings.items[i]);
    /* infergate-net: no listening beyond loopback without auth unless told so; a certificate
     * that cannot be used fails before any model starts. */
    cfg->is_insecure_no_auth = args.is_insecure;
    if (http_front_check_exposure(host, port, cfg, args.is_insecure, &cause) != 0) {
        fprintf(stderr, "infergate: %s\n", cause != NULL ? cause : "refusing to listen");
        free(cause);
        cfg_free(cfg);
        return 1;
    }
    if (check_tls(cfg) != 0) {
        cfg_free(cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    return run(cfg, host, port, NULL);
}

/* Parses a count of at least 1 from TEXT into *OUT; returns 0 or -1. */
static int parse_count(const char *text, size_t *out)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < 1 || value > 100000)
        return -1;
    *out = (size_t)value;
    return 0;
}

int cli_worker(int argc, char **argv)
{
    struct worker_opts opts = {NULL, 64};
    const char *config = NULL, *models_dir = NULL, *nats = NULL, *v;
    struct cfg *cfg = NULL;
    char *cause = NULL, *text = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            config = argv[++i];
        else if ((v = option_value("--config", argc, argv, &i)) != NULL)
            config = v;
        else if ((v = option_value("--nats", argc, argv, &i)) != NULL)
            nats = v;
        else if ((v = option_value("--models-dir", argc, argv, &i)) != NULL)
            models_dir = v;
        else if ((v = option_value("--name", argc, argv, &i)) != NULL)
            opts.name = v;
        else if ((v = option_value("--capacity", argc, argv, &i)) != NULL &&
                 parse_count(v, &opts.capacity) == 0)
            continue;
        else {
            fprintf(stderr, "infergate worker: unknown or incomplete argument '%s'\n"
                            "usage: infergate worker --nats URL[,URL...] [--models-dir DIR] "
                            "[-c worker.yaml] [--name NAME] [--capacity N]\n", argv[i]);
            return 2;
        }
    }
    if (config == NULL && models_dir == NULL) {
        fprintf(stderr, "infergate worker: give -c FILE or --models-dir DIR\n");
        return 2;
    }
    if (config != NULL) {
        cfg = cli_load_config(config);
    } else if (asprintf(&text, "models_dir: \"%s\"\n", models_dir) >= 0) {
        if (strchr(models_dir, '"') != NULL || strchr(models_dir, '\\') != NULL ||
            cfg_load_string(text, strlen(text), "--models-dir", &cfg, &cause) != 0 ||
            catalog_apply(cfg, NULL) != 0) {
            fprintf(stderr, "infergate worker: --models-dir %s: %s\n", models_dir,
                    cause != NULL ? cause : "unusable");
            cfg_free(cfg);
            cfg = NULL;
        }
        free(text);
        free(cause);
    }
    if (cfg == NULL)
        return 1;
    if (nats != NULL && cfg_nats_set_urls(cfg, nats) != 0) {
        fprintf(stderr, "infergate worker: --nats '%s': expected nats://HOST:PORT or "
                        "tls://HOST:PORT URLs, comma-separated\n", nats);
        cfg_free(cfg);
        return 2;
    }
    if (cfg->nats.urls == NULL) {
        fprintf(stderr, "infergate worker: no NATS server: give --nats URL (or nats: in the "
                        "config)\n");
        cfg_free(cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return run(cfg, NULL, 0, &opts);
}
