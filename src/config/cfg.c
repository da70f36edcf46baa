/*
 * Config loading: reads the file (capped), checks the YAML event stream (syntax, depth,
 * string sizes), loads the first document with libyaml so every node has its line and
 * column, then reads the top level. Order matters: global macros first (every other value
 * may use them), then plain top-level keys (startPort, globalTTL, healthCheckTimeout), then
 * models, limits, and the sections that refer to models. Every problem is collected.
 */
#include "cfg_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Records an error at a raw mark (for errors found before nodes exist). */
static void error_at(struct cfg_ctx *ctx, yaml_mark_t mark, const char *what, const char *detail)
{
    yaml_node_t at;

    memset(&at, 0, sizeof(at));
    at.start_mark = mark;
    cfg_error(ctx, &at, "%s%s%s", what, detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

/* Records a libyaml parser error with its position. */
static void parser_error(struct cfg_ctx *ctx, const yaml_parser_t *parser)
{
    char detail[512];

    if (parser->error == YAML_MEMORY_ERROR) {
        ctx->is_oom = true;
        return;
    }
    snprintf(detail, sizeof(detail), "%s%s%s", parser->problem ? parser->problem : "error",
             parser->context ? " " : "", parser->context ? parser->context : "");
    error_at(ctx, parser->problem_mark, "YAML syntax error", detail);
}

/* Walks the first document's events: syntax errors, nesting depth and string size caps. */
static int check_events(struct cfg_ctx *ctx, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, rc = -1;
    bool is_done = false;

    if (!yaml_parser_initialize(&parser)) {
        ctx->is_oom = true;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!is_done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(ctx, &parser);
            goto out;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > CFG_MAX_DEPTH) {
                error_at(ctx, ev.start_mark, "nesting deeper than 64 levels", NULL);
                yaml_event_delete(&ev);
                goto out;
            }
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.length > CFG_MAX_STRING_BYTES) {
            error_at(ctx, ev.start_mark, "string longer than 65536 bytes", NULL);
            yaml_event_delete(&ev);
            goto out;
        }
        is_done = ev.type == YAML_DOCUMENT_END_EVENT || ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    rc = 0;
out:
    yaml_parser_delete(&parser);
    return rc;
}

/* Loads the first document into ctx->doc. */
static int load_document(struct cfg_ctx *ctx, const char *text, size_t len)
{
    yaml_parser_t parser;
    int rc = -1;

    if (!yaml_parser_initialize(&parser)) {
        ctx->is_oom = true;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &ctx->doc))
        parser_error(ctx, &parser);
    else
        rc = 0;
    yaml_parser_delete(&parser);
    return rc;
}

/* Field handler: healthCheckTimeout; values under 15 become 15, as in llama-swap. */
static void top_health(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    long long v;

    (void)key;
    (void)obj;
    if (cfg_get_int(ctx, value, "healthCheckTimeout", -CFG_MAX_SECONDS, CFG_MAX_SECONDS, &v) == 0)
        ctx->cfg->health_check_timeout_s = v < 15 ? 15 : (int)v;
}

/* Field handler: logLevel; unknown levels fall back to info with a warning. */
static void top_log_level(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char *s = NULL;

    (void)key;
    (void)obj;
    if (cfg_get_str(ctx, value, "logLevel", &s) != 0)
        return;
    for (char *p = s; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, levels[i]) == 0) {
            free(ctx->cfg->log_level);
            ctx->cfg->log_level = s;
            return;
        }
    }
    cfg_warn(ctx, value, "logLevel: unknown level '%s', using 'info'", s);
    free(s);
}

/* Field handler: logFormat (text, json). */
static void top_log_format(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    char *s = NULL;

    (void)key;
    (void)obj;
    if (cfg_get_str(ctx, value, "logFormat", &s) != 0)
        return;
    if (strcmp(s, "json") == 0 || strcmp(s, "text") == 0)
        ctx->cfg->is_log_json = strcmp(s, "json") == 0;
    else
        cfg_error(ctx, value, "logFormat: must be text or json");
    free(s);
}

/* Field handler: logToStdout (proxy, upstream, both, none). */
static void top_log_stdout(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    char *s = NULL;

    (void)key;
    (void)obj;
    if (cfg_get_str(ctx, value, "logToStdout", &s) == 0 && strcmp(s, "proxy") != 0 &&
        strcmp(s, "upstream") != 0 && strcmp(s, "both") != 0 && strcmp(s, "none") != 0)
        cfg_error(ctx, value, "logToStdout: must be one of proxy, upstream, both, none");
    free(s);
}

/* Field handler: apiKeys; keys must be non-empty and contain no spaces. */
static void top_api_keys(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_strv keys = {0};

    (void)key;
    (void)obj;
    if (cfg_get_strv(ctx, value, "apiKeys", &keys) != 0)
        goto out;
    for (size_t i = 0; i < keys.len; i++) {
        yaml_node_t *at = cfg_node(ctx, value->data.sequence.items.start[i]);
        if (keys.items[i][0] == '\0')
            cfg_error(ctx, at, "apiKeys[%zu]: empty api key", i);
        else if (strchr(keys.items[i], ' ') != NULL)
            cfg_error(ctx, at, "apiKeys[%zu]: api key cannot contain spaces", i);
    }
    cfg_strv_clear(&ctx->cfg->api_keys);
    ctx->cfg->api_keys = keys;
    keys = (struct cfg_strv){0};
out:
    cfg_strv_clear(&keys);
}

/* Parses a Go duration ("1h30m", "15s", "500ms") into seconds; returns -1 if invalid. */
static int parse_duration(const char *p, double *out_s)
{
    static const struct {
        const char *unit;
        double s;
    } units[] = {{"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
                 {"s", 1.0},   {"m", 60.0},  {"h", 3600.0}};
    double total = 0, sign = 1;

    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (strcmp(p, "0") == 0) {
        *out_s = 0;
        return 0;
    }
    if (*p == '\0')
        return -1;
    while (*p != '\0') {
        char *end = NULL;
        double v;
        size_t u = 0;

        if (!isdigit((unsigned char)*p) && *p != '.')
            return -1;
        v = strtod(p, &end);
        if (end == p)
            return -1;
        while (u < 7 && strncmp(end, units[u].unit, strlen(units[u].unit)) != 0)
            u++; /* "ms" is tried before "m" */
        if (u == 7)
            return -1;
        total += v * units[u].s;
        p = end + strlen(units[u].unit);
    }
    *out_s = sign * total;
    return 0;
}

/* Field handler: performance.every, a duration of at least 5s. */
static void perf_every(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_scalar s;
    double secs = 0;

    (void)key;
    (void)obj;
    if (value->type != YAML_SCALAR_NODE || cfg_read_scalar(ctx, value, &s) != 0) {
        if (value->type != YAML_SCALAR_NODE)
            cfg_error(ctx, value, "performance.every: expected a duration like 15s");
        return;
    }
    if (s.kind == CFG_INT)
        secs = (double)s.i / 1e9;
    else if (s.kind != CFG_NULL && parse_duration(s.text, &secs) != 0)
        cfg_error(ctx, value, "performance.every: invalid duration '%s'", s.text);
    if (s.kind != CFG_NULL && secs != 0 && secs < 5)
        cfg_error(ctx, value, "performance.every: must be at least 5s, got '%s'", s.text);
    cfg_scalar_clear(&s);
}

/* Field handlers for small inactive sections: store, ui, performance, hooks, upstream. */
static void top_store(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field f[] = {{"path", CFG_F_STR, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    (void)key;
    cfg_walk(ctx, value, f, obj, NULL);
}

static void top_ui(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field f[] = {{"activity", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field a[] = {{"session_id", CFG_F_STRV, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    (void)key;
    cfg_walk(ctx, value, f, obj, NULL);
    cfg_walk(ctx, cfg_map_get(ctx, value, "activity"), a, obj, NULL);
}

static void top_performance(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field f[] = {{"disabled", CFG_F_BOOL, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {"every", CFG_F_FN, CFG_NO_STORE, 0, 0, perf_every, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    (void)key;
    cfg_walk(ctx, value, f, obj, NULL);
}

static void top_hooks(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field f[] = {{"on_startup", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field s[] = {{"preload", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    yaml_node_t *startup = cfg_map_get(ctx, value, "on_startup");

    (void)key;
    cfg_walk(ctx, value, f, obj, NULL);
    cfg_walk(ctx, startup, s, obj, NULL);
    ctx->preload_node = cfg_map_get(ctx, startup, "preload");
}

static void top_upstream(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field f[] = {{"ignorePaths", CFG_F_STRV, CFG_NO_STORE, 0, 0, NULL, 0},
                                         {NULL, 0, 0, 0, 0, NULL, 0}};
    (void)key;
    cfg_walk(ctx, value, f, obj, NULL);
}

/* Field handler: sections read later; remembers their node. */
static void top_stash(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    const char *k = cfg_key_text(key);

    (void)obj;
    if (strcmp(k, "models") == 0)
        return;
    else if (strcmp(k, "groups") == 0)
        ctx->groups_node = value;
    else if (strcmp(k, "matrix") == 0)
        ctx->matrix_node = value;
    else if (strcmp(k, "routing") == 0)
        ctx->routing_node = value;
    else if (strcmp(k, "peers") == 0)
        ctx->peers_node = value;
    else if (strcmp(k, "profiles") == 0)
        ctx->profiles_node = value;
    else if (strcmp(k, "selectors") == 0)
        ctx->selectors_node = value;
    else if (strcmp(k, "limits") == 0)
        ctx->limits_node = value;
}

/* Parses "host:port", "[v6]:port" or ":port" (all interfaces) into the config. */
static void top_listen(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    char *s = NULL, *host, *colon, *end = NULL;
    long port;

    (void)key;
    (void)obj;
    if (cfg_get_str(ctx, value, "listen", &s) != 0)
        return;
    host = s;
    if (s[0] == '[') {
        colon = strchr(s, ']');
        host = s + 1;
        if (colon != NULL) {
            *colon++ = '\0';
            if (*colon != ':')
                colon = NULL;
        }
    } else {
        colon = strrchr(s, ':');
    }
    if (colon != NULL)
        *colon = '\0';
    errno = 0;
    port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || end == colon + 1 || *end != '\0' || errno != 0 || port < 0 ||
        port > 65535) {
        cfg_error(ctx, value,
                  "listen: expected HOST:PORT, [IPv6]:PORT or :PORT with a port "
                  "0-65535");
    } else {
        free(ctx->cfg->listen_host);
        ctx->cfg->listen_host = strdup(host[0] != '\0' ? host : "0.0.0.0");
        ctx->cfg->listen_port = (int)port;
        if (ctx->cfg->listen_host == NULL)
            ctx->is_oom = true;
    }
    free(s);
}

int cfg_parse_size(const char *text, unsigned long long *out)
{
    static const struct {
        const char *unit;
        unsigned long long mul;
    } units[] = {{"", 1},         {"b", 1},           {"k", 1024},       {"kib", 1024},
                 {"kb", 1000},    {"m", 1024 * 1024}, {"mib", 1u << 20}, {"mb", 1000000},
                 {"g", 1u << 30}, {"gib", 1u << 30},  {"gb", 1000000000},
                 {"t", 1ull << 40}, {"tib", 1ull << 40}, {"tb", 1000000000000ull}};
    char *end = NULL;
    unsigned long long v;

    if (!isdigit((unsigned char)text[0]))
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            if (v > (1ull << 50) / units[i].mul)
                return -1;
            *out = v * units[i].mul;
            return 0;
        }
    }
    return -1;
}

/* Field handler: a byte size in limits: max_body_bytes (1 KiB - 1 GiB), max_header_bytes
 * (1 KiB - 16 MiB) or max_url_bytes (256 B - 1 MiB). */
static void limit_size(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    const char *k = cfg_key_text(key);
    bool is_body = strcmp(k, "max_body_bytes") == 0;
    bool is_url = strcmp(k, "max_url_bytes") == 0;
    unsigned long long min = is_url ? 256 : 1024, v = 0;
    unsigned long long max = is_body ? 1ull << 30 : is_url ? 1ull << 20 : 16ull << 20;
    struct cfg_scalar s;
    struct cfg_limits *l = obj;

    if (value->type != YAML_SCALAR_NODE || cfg_read_scalar(ctx, value, &s) != 0) {
        if (value->type != YAML_SCALAR_NODE)
            cfg_error(ctx, value, "%s: expected a size like 16MiB", k);
        return;
    }
    if (s.kind == CFG_INT && s.i >= 0)
        v = (unsigned long long)s.i;
    else if (s.kind == CFG_NULL || (s.kind == CFG_STR && cfg_parse_size(s.text, &v) == 0))
        (void)0;
    else
        cfg_error(ctx, value, "%s: expected a size like 16MiB, got '%s'", k, s.text), v = 0;
    if (s.kind != CFG_NULL && v != 0 && (v < min || v > max))
        cfg_error(ctx, value, "%s: must be between %llu and %llu bytes", k, min, max);
    else if (v != 0)
        *(is_body ? &l->max_body_bytes : is_url ? &l->max_url_bytes : &l->max_header_bytes) =
            (size_t)v;
    cfg_scalar_clear(&s);
}

/* Field handler: limits.swap_wait_s, seconds (fractions allowed) from 0 to 3600. */
static void limit_swap_wait(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value,
                            void *obj)
{
    struct cfg_limits *l = obj;
    struct cfg_scalar s;
    double v = -1;

    (void)key;
    if (value->type != YAML_SCALAR_NODE || cfg_read_scalar(ctx, value, &s) != 0) {
        if (value->type != YAML_SCALAR_NODE)
            cfg_error(ctx, value, "swap_wait_s: expected seconds");
        return;
    }
    if (s.kind == CFG_INT)
        v = (double)s.i;
    else if (s.kind == CFG_FLOAT)
        v = s.f;
    if (s.kind != CFG_NULL && !(v >= 0 && v <= 3600))
        cfg_error(ctx, value, "swap_wait_s: expected seconds between 0 and 3600, got '%s'",
                  s.text != NULL ? s.text : "?");
    else if (s.kind != CFG_NULL)
        l->swap_wait_ms = (int)(v * 1000 + 0.5);
    cfg_scalar_clear(&s);
}

#define LIMIT_INT(key, field, min)                                                                 \
    {                                                                                              \
        key, CFG_F_INT, offsetof(struct cfg_limits, field), min, CFG_MAX_SECONDS, NULL, 0          \
    }

static const struct cfg_field limits_fields[] = {
    {"max_body_bytes", CFG_F_FN, CFG_NO_STORE, 0, 0, limit_size, 0},
    {"max_header_bytes", CFG_F_FN, CFG_NO_STORE, 0, 0, limit_size, 0},
    LIMIT_INT("request_timeout_s", request_timeout_s, 1),
    LIMIT_INT("idle_timeout_s", idle_timeout_s, 1),
    {"queue_length", CFG_F_INT, offsetof(struct cfg_limits, queue_length), 0, 1000000, NULL, 0},
    LIMIT_INT("queue_timeout_s", queue_timeout_s, 0),
    LIMIT_INT("shutdown_grace_s", shutdown_grace_s, 0),
    LIMIT_INT("watchdog_s", watchdog_s, 0),
    {"swap_wait_s", CFG_F_FN, CFG_NO_STORE, 0, 0, limit_swap_wait, 0},
    /* Front server (infergate-net). */
    {"max_connections", CFG_F_INT, offsetof(struct cfg_limits, max_connections), 1, 1000000,
     NULL, 0},
    {"max_connections_per_ip", CFG_F_INT, offsetof(struct cfg_limits, max_connections_per_ip), 0,
     1000000, NULL, 0},
    {"max_url_bytes", CFG_F_FN, CFG_NO_STORE, 0, 0, limit_size, 0},
    {"header_timeout_s", CFG_F_INT, offsetof(struct cfg_limits, header_timeout_s), 1, 3600, NULL,
     0},
    LIMIT_INT("read_timeout_s", read_timeout_s, 1),
    {NULL, 0, 0, 0, 0, NULL, 0},
};

#define TOP(key, type, field, min, max, fn, flags)                                                 \
    {                                                                                              \
        key, type, offsetof(struct cfg, field), min, max, fn, flags                                \
    }
#define TOP_FN(key, fn, flags)                                                                     \
    {                                                                                              \
        key, CFG_F_FN, CFG_NO_STORE, 0, 0, fn, flags                                               \
    }
#define TOP_CHECK(key, type, min, max, flags)                                                      \
    {                                                                                              \
        key, type, CFG_NO_STORE, min, max, NULL, flags                                             \
    }

static const struct cfg_field top_fields[] = {
    TOP_FN("healthCheckTimeout", top_health, 0),
    TOP_CHECK("logRequests", CFG_F_BOOL, 0, 0, CFG_F_INACTIVE),
    TOP_FN("logLevel", top_log_level, 0),
    TOP_FN("logFormat", top_log_format, 0),
    TOP_CHECK("logTimeFormat", CFG_F_STR, 0, 0, CFG_F_INACTIVE),
    TOP_FN("logToStdout", top_log_stdout, CFG_F_INACTIVE),
    TOP_CHECK("metricsMaxInMemory", CFG_F_INT, 0, 2147483647, CFG_F_INACTIVE),
    TOP_CHECK("captureBuffer", CFG_F_INT, 0, 1000000, CFG_F_INACTIVE),
    TOP_FN("store", top_store, CFG_F_INACTIVE),
    TOP_FN("ui", top_ui, CFG_F_INACTIVE),
    TOP_FN("performance", top_performance, CFG_F_INACTIVE),
    TOP("globalTTL", CFG_F_INT, global_ttl_s, 0, CFG_MAX_SECONDS, NULL, 0),
    TOP("unloadTimeout", CFG_F_INT, unload_timeout_s, 0, CFG_MAX_SECONDS, NULL, 0),
    TOP_FN("models", top_stash, 0),
    TOP_FN("profiles", top_stash, 0),
    TOP_FN("selectors", top_stash, 0),
    TOP_FN("routing", top_stash, 0),
    TOP_FN("groups", top_stash, 0),
    TOP_FN("matrix", top_stash, 0),
    TOP_FN("macros", top_stash, 0),
    TOP("startPort", CFG_F_INT, start_port, 1, 65535, NULL, 0),
    TOP_FN("hooks", top_hooks, 0),
    TOP_CHECK("sendLoadingState", CFG_F_BOOL, 0, 0, CFG_F_INACTIVE),
    TOP("includeAliasesInList", CFG_F_BOOL, include_aliases_in_list, 0, 0, NULL, 0),
    TOP_FN("apiKeys", top_api_keys, 0),
    TOP_FN("peers", top_stash, 0),
    TOP_FN("upstream", top_upstream, CFG_F_INACTIVE),
    TOP_FN("listen", top_listen, 0),
    TOP_FN("limits", top_stash, 0),
    TOP_FN("models_dir", cfg_top_models_dir, 0),
    TOP_FN("engine", cfg_top_engine, 0),
    TOP_FN("auth", cfg_top_auth, 0),
    TOP_FN("storage", cfg_top_storage, 0),
    TOP_FN("budget", cfg_top_budget, 0),
    TOP_FN("nats", cfg_top_nats, 0),
    TOP_FN("batches", cfg_top_batches, 0),
    TOP_FN("cors", cfg_top_cors, 0),
    TOP_FN("tls", cfg_top_tls, 0),
    {NULL, 0, 0, 0, 0, NULL, 0},
};

/* Returns a config with every default set, or NULL. */
static struct cfg *cfg_defaults(const char *name)
{
    struct cfg *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    cfg->path = strdup(name);
    cfg->listen_host = strdup("127.0.0.1");
    cfg->log_level = strdup("info");
    cfg->listen_port = 8080;
    cfg->health_check_timeout_s = 120;
    cfg->start_port = 5800;
    cfg->unload_timeout_s = 10;
    cfg->batches = (struct cfg_batches){.concurrency = 8, .max_file_bytes = 16 << 20};
    cfg->discovery.ctx_size = 4096;
    cfg->discovery.parallel = 4;
    cfg->limits = (struct cfg_limits){.max_body_bytes = 16u << 20,
                                      .max_header_bytes = 64u << 10,
                                      .request_timeout_s = 600,
                                      .idle_timeout_s = 60,
                                      .queue_length = 64,
                                      .shutdown_grace_s = 10,
                                      .watchdog_s = 120,
                                      .swap_wait_ms = 5000,
                                      .max_connections = 4096,
                                      .max_connections_per_ip = 512,
                                      .max_url_bytes = 8u << 10,
                                      .header_timeout_s = 10,
                                      .read_timeout_s = 60};
    cfg->storage.retention_days = 30;
    cfg->storage.max_log_rows = 1000000;
    cfg_net_defaults(cfg);
    cfg_nats_defaults(cfg);
    if (cfg->path == NULL || cfg->listen_host == NULL || cfg->log_level == NULL) {
        cfg_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Reads the whole document into ctx->cfg. */
static void read_document(struct cfg_ctx *ctx)
{
    yaml_node_t *root = yaml_document_get_root_node(&ctx->doc);

    if (root == NULL || cfg_is_null(root))
        goto limits;
    if (!cfg_expect(ctx, root, YAML_MAPPING_NODE, "config"))
        return;
    cfg_macros_parse(ctx, cfg_map_get(ctx, root, "macros"), &ctx->globals);
    if (cfg_scope_init(&ctx->global_scope, &ctx->globals, NULL, NULL, NULL) != 0) {
        ctx->is_oom = true;
        return;
    }
    ctx->scope = &ctx->global_scope;
    cfg_walk(ctx, root, top_fields, ctx->cfg, NULL);
    cfg_models_parse(ctx, cfg_map_get(ctx, root, "models"));
    cfg_walk(ctx, ctx->limits_node, limits_fields, &ctx->cfg->limits, NULL);
    cfg_routes_check(ctx);
limits:
    if (ctx->cfg->limits.queue_timeout_s == 0)
        ctx->cfg->limits.queue_timeout_s = ctx->cfg->health_check_timeout_s;
}

/* Joins the collected errors into one malloc'ed string. */
static char *join_errors(const struct cfg_strv *errors)
{
    size_t len = 1;
    char *out, *p;

    for (size_t i = 0; i < errors->len; i++)
        len += strlen(errors->items[i]) + 1;
    out = malloc(len);
    if (out == NULL)
        return NULL;
    p = out;
    for (size_t i = 0; i < errors->len; i++) {
        size_t n = strlen(errors->items[i]);
        memcpy(p, errors->items[i], n);
        p += n;
        if (i + 1 < errors->len)
            *p++ = '\n';
    }
    *p = '\0';
    return out;
}

/* Parses TEXT into CTX; returns 0 or an IG_E* code. */
static int load_into(struct cfg_ctx *ctx, const char *text, size_t len)
{
    bool has_doc = false;

    if (len > CFG_MAX_FILE_BYTES) {
        cfg_error(ctx, NULL, "file larger than %u bytes", CFG_MAX_FILE_BYTES);
        return IG_ECONFIG;
    }
    if (check_events(ctx, text, len) == 0 && load_document(ctx, text, len) == 0) {
        has_doc = true;
        read_document(ctx);
    }
    if (has_doc)
        yaml_document_delete(&ctx->doc);
    if (ctx->is_oom)
        return IG_ENOMEM;
    return ctx->errors.len > 0 ? IG_ECONFIG : 0;
}

/* Loads and validates a config from TEXT; see cfg.h. */
int cfg_load_string(const char *text, size_t len, const char *name, struct cfg **out, char **cause)
{
    struct cfg_ctx ctx;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    *out = NULL;
    *cause = NULL;
    ctx.name = name != NULL ? name : "config";
    ctx.visits_left = CFG_MAX_VISITS;
    ctx.cfg = cfg_defaults(ctx.name);
    if (ctx.cfg == NULL)
        return IG_ENOMEM;
    rc = load_into(&ctx, text, len);
    if (rc == IG_ENOMEM) {
        *cause = strdup("out of memory while loading the config");
    } else if (rc != 0) {
        *cause = join_errors(&ctx.errors);
        if (*cause == NULL)
            rc = IG_ENOMEM;
    } else {
        *out = ctx.cfg;
        ctx.cfg = NULL;
    }
    cfg_free(ctx.cfg);
    cfg_strv_clear(&ctx.errors);
    cfg_strv_clear(&ctx.selector_ids);
    cfg_macros_clear(&ctx.globals);
    cfg_scope_clear(&ctx.global_scope);
    return rc;
}

/* Loads and validates PATH; see cfg.h. */
int cfg_load(const char *path, struct cfg **out, char **cause)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int rc = IG_EIO;

    *out = NULL;
    *cause = NULL;
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        if (asprintf(cause, "%s: %s", path, strerror(errno)) < 0)
            *cause = NULL;
        goto out;
    }
    if (st.st_size > (off_t)CFG_MAX_FILE_BYTES) {
        rc = IG_ECONFIG;
        if (asprintf(cause, "%s: file larger than %u bytes", path, CFG_MAX_FILE_BYTES) < 0)
            *cause = NULL;
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        rc = IG_ENOMEM;
        goto out;
    }
    len = fread(text, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        if (asprintf(cause, "%s: read error", path) < 0)
            *cause = NULL;
        goto out;
    }
    rc = cfg_load_string(text, len, path, out, cause);
out:
    free(text);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Releases a config; NULL is a no-op. */
void cfg_free(struct cfg *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_models; i++)
        cfg_model_clear(&cfg->models[i]);
    for (size_t i = 0; i < cfg->n_groups; i++)
        cfg_group_clear(&cfg->groups[i]);
    free(cfg->models);
    free(cfg->groups);
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->log_level);
    cfg_strv_clear(&cfg->api_keys);
    cfg_auth_clear(&cfg->auth);
    free(cfg->auth.admin_token);
    free(cfg->storage.path);
    cfg_strv_clear(&cfg->preload);
    cfg_net_clear(cfg);
    cfg_nats_clear(cfg);
    cfg_matrix_clear(&cfg->matrix);
    cfg_routes_clear(cfg);
    cfg_strv_clear(&cfg->discovery.dirs);
    free(cfg->discovery.engine_bin);
    free(cfg->discovery.args);
    cfg_strv_clear(&cfg->inactive_keys);
    cfg_strv_clear(&cfg->warnings);
    free(cfg);
}

/* Finds a model by id, then by alias; borrowed pointer or NULL. */
const struct cfg_profile *cfg_find_profile(const struct cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_profiles; i++)
        if (strcmp(cfg->profiles[i].id, id) == 0)
            return &cfg->profiles[i];
    return NULL;
}

const struct cfg_model *cfg_find_model(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg->models[i].id != NULL && strcmp(cfg->models[i].id, name) == 0)
            return &cfg->models[i];
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg_strv_has(&cfg->models[i].aliases, name))
            return &cfg->models[i];
    return NULL;
}

/* Returns the group listing MODEL_ID as a member (borrowed), or NULL (llama-swap's default
 * group: ungrouped models swap with each other). */
const struct cfg_group *cfg_model_group(const struct cfg *cfg, const char *model_id)
{
    for (size_t i = 0; i < cfg->n_groups; i++)
        if (cfg_strv_has(&cfg->groups[i].members, model_id))
            return &cfg->groups[i];
    return NULL;
}
