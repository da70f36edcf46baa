/*
 * The fields of a model in the `models:` section: one handler per key that needs more than
 * a plain string, number or list (commands with their comment lines, macros and line
 * joins; env; checkEndpoint; a provider's apiKey and caFile; filters; metadata; sizes),
 * and the table cfg_walk() reads a model with. The passes over the models, the ports and
 * the checks across models are cfg_model.c's.
 */
#include "cfg_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_API_KEY_BYTES 4096

/* Removes lines whose first non-blank character is '#' (llama-swap's StripComments). */
static void strip_comment_lines(char *text)
{
    char *out = text, *line = text;

    while (*line != '\0') {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) + 1 : strlen(line);
        const char *t = line + strspn(line, " \t\r");

        if (*t != '#') {
            memmove(out, line, len);
            out += len;
        }
        line += len;
    }
    *out = '\0';
}

/* Joins a multi-line command: trims each line, drops blank and '#' lines and trailing '\'. */
static void join_lines(char *text)
{
    char *out = text, *line = text;

    while (*line != '\0') {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char *next = end != NULL ? end + 1 : line + len;
        size_t lead = strspn(line, " \t\r");

        line += lead;
        len = len > lead ? len - lead : 0;
        while (len > 0 && strchr(" \t\r", line[len - 1]) != NULL)
            len--;
        if (len > 0 && line[len - 1] == '\\') {
            len--;
            while (len > 0 && strchr(" \t", line[len - 1]) != NULL)
                len--;
        }
        if (len > 0 && line[0] != '#') {
            if (out != text)
                *out++ = ' ';
            memmove(out, line, len);
            out += len;
        }
        line = next;
    }
    *out = '\0';
}

/* Reads cmd or cmdStop: env, comment lines removed, macros, lines joined. NULL if absent. */
char *cfg_read_command(struct cfg_ctx *ctx, yaml_node_t *node, const char *what)
{
    struct cfg_scalar s;

    if (node->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, node, "%s: expected a string, got a collection", what);
        return NULL;
    }
    if (cfg_read_raw(ctx, node, &s) != 0)
        return NULL;
    if (s.kind == CFG_NULL) {
        cfg_scalar_clear(&s);
        return NULL;
    }
    s.kind = CFG_STR;
    strip_comment_lines(s.text);
    if (cfg_expand(ctx, node, &s) != 0) {
        cfg_scalar_clear(&s);
        return NULL;
    }
    join_lines(s.text);
    return s.text;
}

/* Field handler: cmd. */
static void field_cmd(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;

    (void)key;
    free(m->cmd);
    m->cmd = cfg_read_command(ctx, value, "cmd");
    if (m->cmd != NULL && m->cmd[0] == '\0') {
        cfg_error(ctx, value, "cmd is empty");
        free(m->cmd);
        m->cmd = NULL;
    }
}

/* Field handler: cmdStop (${PID} stays for the supervisor). */
static void field_cmd_stop(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    struct cfg_scope scope = *ctx->scope;
    const struct cfg_scope *saved = ctx->scope;

    (void)key;
    scope.allow_pid = true;
    ctx->scope = &scope;
    free(m->cmd_stop);
    m->cmd_stop = cfg_read_command(ctx, value, "cmdStop");
    if (m->cmd_stop != NULL && m->cmd_stop[0] == '\0') {
        free(m->cmd_stop);
        m->cmd_stop = NULL;
    }
    ctx->scope = saved;
}

/* Field handler: env, a list of "KEY=VALUE". */
static void field_env(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    size_t first = m->env.len;

    (void)key;
    if (cfg_get_strv(ctx, value, "env", &m->env) < 0)
        return;
    for (size_t i = first; i < m->env.len; i++) {
        const char *eq = strchr(m->env.items[i], '=');
        if (eq == NULL || eq == m->env.items[i])
            cfg_error(ctx, cfg_node(ctx, value->data.sequence.items.start[i - first]),
                      "env: entry '%s' is not KEY=VALUE", m->env.items[i]);
    }
}

/* Field handler: checkEndpoint ("/path" or "none"). */
static void field_check_endpoint(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value,
                                 void *obj)
{
    struct cfg_model *m = obj;
    char *s = NULL;

    (void)key;
    if (cfg_get_str(ctx, value, "checkEndpoint", &s) != 0)
        return;
    if (s[0] != '/' && strcmp(s, "none") != 0) {
        cfg_error(ctx, value, "checkEndpoint: must start with '/' or be \"none\", got '%s'", s);
        free(s);
        return;
    }
    free(m->check_endpoint);
    m->check_endpoint = s;
}

/*
 * Field handler: apiKey, a provider's secret. Read as written (${env.X} and macros
 * expanded, never converted to a number), so a key of digits stays as it is. Errors name
 * the key's position, never its text: config errors are printed and returned by
 * /admin/reload. Empty means no key, as for llama-swap's peers.
 */
static void field_api_key(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    struct cfg_scalar s = {0};

    (void)key;
    if (cfg_is_null(value))
        return;
    if (value->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, value, "apiKey: expected a string");
        return;
    }
    if (value->data.scalar.length > CFG_MAX_STRING_BYTES ||
        strlen((const char *)value->data.scalar.value) != value->data.scalar.length) {
        cfg_error(ctx, value, "apiKey: longer than %u bytes or contains a NUL character",
                  MAX_API_KEY_BYTES);
        return;
    }
    s.kind = CFG_STR;
    s.text = strdup((const char *)value->data.scalar.value);
    if (s.text == NULL) {
        ctx->is_oom = true;
        return;
    }
    if (cfg_env_substitute(ctx, value, &s.text) != 0 || cfg_expand(ctx, value, &s) != 0)
        goto out;
    if (strlen(s.text) > MAX_API_KEY_BYTES) {
        cfg_error(ctx, value, "apiKey: longer than %u bytes", MAX_API_KEY_BYTES);
        goto out;
    }
    for (size_t i = 0; s.text[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s.text[i];
        if (c <= ' ' || c >= 0x7f) {
            cfg_error(ctx, value,
                      "apiKey: character %zu is a space, a control character or not ASCII", i + 1);
            goto out;
        }
    }
    if (m->api_key != NULL)
        explicit_bzero(m->api_key, strlen(m->api_key));
    free(m->api_key);
    m->api_key = s.text[0] != '\0' ? s.text : NULL;
    if (m->api_key != NULL)
        s.text = NULL;
out:
    if (s.text != NULL)
        explicit_bzero(s.text, strlen(s.text));
    cfg_scalar_clear(&s);
}

/* Field handler: caFile, a PEM file of CA certificates; it must be readable at load. */
static void field_ca_file(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    char *s = NULL;

    (void)key;
    if (cfg_get_str(ctx, value, "caFile", &s) != 0)
        return;
    if (s[0] == '\0') {
        free(s);
        return;
    }
    if (access(s, R_OK) != 0) {
        cfg_error(ctx, value, "caFile: cannot read '%s': %s", s, strerror(errno));
        free(s);
        return;
    }
    free(m->ca_file);
    m->ca_file = s;
}

/* Field handler: api, what the model's upstream speaks: "openai" (default) or "ollama". */
static void field_api(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    char *s = NULL;

    (void)key;
    if (cfg_get_str(ctx, value, "api", &s) != 0)
        return;
    if (strcmp(s, "openai") == 0)
        m->api = CFG_API_OPENAI;
    else if (strcmp(s, "ollama") == 0)
        m->api = CFG_API_OLLAMA;
    else
        cfg_error(ctx, value, "api: must be \"openai\" or \"ollama\", got '%s'", s);
    free(s);
}

/* Orders strings for qsort. */
static int str_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Field handler: filters.stripParams, sanitized like llama-swap (trimmed, sorted, unique). */
static void field_strip_params(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    char *s = NULL, *p;

    (void)key;
    if (cfg_get_str(ctx, value, "stripParams", &s) != 0)
        return;
    cfg_strv_clear(&m->strip_params);
    for (p = s; p != NULL && *p != '\0';) {
        char *comma = strchr(p, ',');
        char *end = comma != NULL ? comma : p + strlen(p);
        char *next = comma != NULL ? comma + 1 : end;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        if (*p != '\0' && strcmp(p, "model") != 0 && !cfg_strv_has(&m->strip_params, p) &&
            cfg_strv_push(&m->strip_params, p) != 0)
            ctx->is_oom = true;
        p = next;
    }
    if (m->strip_params.len > 1)
        qsort(m->strip_params.items, m->strip_params.len, sizeof(char *), str_order);
    free(s);
}

/* Field handler: filters.strip_params, the legacy spelling (used when stripParams is unset). */
static void field_strip_legacy(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    struct cfg_strv saved = m->strip_params;

    m->strip_params = (struct cfg_strv){0};
    field_strip_params(ctx, key, value, obj);
    if (saved.len > 0) {
        cfg_strv_clear(&m->strip_params);
        m->strip_params = saved;
    } else {
        cfg_strv_clear(&saved);
    }
}

/* Field handler: filters.setParams, an object; the protected "model" key is dropped. */
static void field_set_params(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    json_t *v;

    (void)key;
    if (cfg_is_null(value) || !cfg_expect(ctx, value, YAML_MAPPING_NODE, "setParams"))
        return;
    v = cfg_get_json(ctx, value, 0);
    if (v == NULL)
        return;
    json_object_del(v, "model");
    json_decref(m->set_params);
    m->set_params = v;
}

/* Field handler: filters.setParamsByID: keys are macro-expanded; values must be objects. */
static void field_set_params_by_id(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value,
                                   void *obj)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    (void)key;
    (void)obj;
    if (cfg_is_null(value) || !cfg_expect(ctx, value, YAML_MAPPING_NODE, "setParamsByID") ||
        cfg_map_pairs(ctx, value, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = cfg_node(ctx, pairs[i].key), *v = cfg_node(ctx, pairs[i].value);
        struct cfg_scalar s = {CFG_STR, strdup(cfg_key_text(k)), 0, 0, false};
        json_t *j;

        if (s.text == NULL || cfg_expand(ctx, k, &s) != 0) {
            cfg_scalar_clear(&s);
            continue;
        }
        if (s.text[0] == '\0')
            cfg_error(ctx, k, "setParamsByID: empty model id");
        cfg_scalar_clear(&s);
        if (!cfg_expect(ctx, v, YAML_MAPPING_NODE, "setParamsByID entry"))
            continue;
        j = cfg_get_json(ctx, v, 1);
        json_decref(j);
    }
out:
    free(pairs);
}

/* Field handler: metadata, any mapping, converted to JSON with macros expanded. */
static void field_metadata(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    json_t *v;

    (void)key;
    if (cfg_is_null(value) || !cfg_expect(ctx, value, YAML_MAPPING_NODE, "metadata"))
        return;
    v = cfg_get_json(ctx, value, 0);
    if (v == NULL)
        return;
    json_decref(m->metadata);
    m->metadata = v;
}

/* Field handler: capabilities.in / capabilities.out (text, audio, image). */
static void field_modalities(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_strv v = {0};

    (void)obj;
    if (cfg_get_strv(ctx, value, cfg_key_text(key), &v) == 0) {
        for (size_t i = 0; i < v.len; i++)
            if (strcmp(v.items[i], "text") != 0 && strcmp(v.items[i], "audio") != 0 &&
                strcmp(v.items[i], "image") != 0)
                cfg_error(ctx, cfg_node(ctx, value->data.sequence.items.start[i]),
                          "capabilities.%s: invalid modality '%s' (valid: text, audio, image)",
                          cfg_key_text(key), v.items[i]);
    }
    cfg_strv_clear(&v);
}

static const struct cfg_field timeouts_fields[] = {
    {"connect", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, 0},
    {"keepalive", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, 0},
    {"responseHeader", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, 0},
    {"tlsHandshake", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, 0},
    {"expectContinue", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, 0},
    {"idleConn", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, 0},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_field compat_fields[] = {
    {"ignoreWebsockets", CFG_F_BOOL, CFG_NO_STORE, 0, 0, NULL, 0},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

static const struct cfg_field capabilities_fields[] = {
    {"in", CFG_F_FN, CFG_NO_STORE, 0, 0, field_modalities, 0},
    {"out", CFG_F_FN, CFG_NO_STORE, 0, 0, field_modalities, 0},
    {"tools", CFG_F_BOOL, CFG_NO_STORE, 0, 0, NULL, 0},
    {"reranker", CFG_F_BOOL, CFG_NO_STORE, 0, 0, NULL, 0},
    {"context", CFG_F_INT, CFG_NO_STORE, 0, 1LL << 40, NULL, 0},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

/* Field handler: timeouts (peers and models). */
void cfg_field_timeouts(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    (void)key;
    cfg_walk(ctx, value, timeouts_fields, obj, NULL);
}

/* Field handler: compat. */
static void field_compat(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    (void)key;
    cfg_walk(ctx, value, compat_fields, obj, NULL);
}

/* Field handler: capabilities. */
static void field_capabilities(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    (void)key;
    cfg_walk(ctx, value, capabilities_fields, obj, NULL);
}

/* Field handler: a key already handled elsewhere (model macros). */
static void field_skip(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    (void)ctx;
    (void)key;
    (void)value;
    (void)obj;
}

static const struct cfg_field filters_fields[] = {
    {"stripParams", CFG_F_FN, CFG_NO_STORE, 0, 0, field_strip_params, 0},
    {"strip_params", CFG_F_FN, CFG_NO_STORE, 0, 0, field_strip_legacy, 0},
    {"setParams", CFG_F_FN, CFG_NO_STORE, 0, 0, field_set_params, 0},
    {"setParamsByID", CFG_F_FN, CFG_NO_STORE, 0, 0, field_set_params_by_id, CFG_F_INACTIVE},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

/* Field handler: filters. */
static void field_filters(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    char *prefix = NULL;

    (void)key;
    if (asprintf(&prefix, "models.%s.filters.", m->id) < 0) {
        ctx->is_oom = true;
        return;
    }
    cfg_walk(ctx, value, filters_fields, obj, prefix);
    free(prefix);
}

/* llama-swap's peer filters: stripParams and setParams (no setParamsByID). */
static const struct cfg_field peer_filters_fields[] = {
    {"stripParams", CFG_F_FN, CFG_NO_STORE, 0, 0, field_strip_params, 0},
    {"setParams", CFG_F_FN, CFG_NO_STORE, 0, 0, field_set_params, 0},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

/* Field handler: a peer's filters, read into the peer model. */
static void field_peer_filters(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value,
                               void *obj)
{
    (void)key;
    cfg_walk(ctx, value, peer_filters_fields, obj, NULL);
}

/* Reads VALUE, a size for model key NAME, into *OUT; returns whether it is one. */
static bool read_model_size(struct cfg_ctx *ctx, yaml_node_t *value, const char *name,
                            uint64_t *out)
{
    struct cfg_scalar sc;
    unsigned long long v = 0;

    if (value->type != YAML_SCALAR_NODE || cfg_read_scalar(ctx, value, &sc) != 0) {
        if (value->type != YAML_SCALAR_NODE)
            cfg_error(ctx, value, "%s: expected a size like 8GiB", name);
        return false;
    }
    if (sc.kind == CFG_INT && sc.i > 0)
        v = (unsigned long long)sc.i;
    else if (sc.kind != CFG_STR || cfg_parse_size(sc.text, &v) != 0 || v == 0)
        cfg_error(ctx, value, "%s: expected a size like 8GiB, got '%s'", name,
                  sc.text != NULL ? sc.text : "?");
    cfg_scalar_clear(&sc);
    *out = v;
    return v > 0;
}

/* Field handler: memory, the model's RAM when loaded (a size), overriding the estimate. */
static void field_memory(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    (void)key;

    if (read_model_size(ctx, value, "memory", &m->mem_bytes))
        m->is_memory_configured = true;
}

/* Field handler: vram, the model's GPU memory when loaded (a size), overriding the estimate. */
static void field_vram(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_model *m = obj;
    (void)key;

    if (read_model_size(ctx, value, "vram", &m->vram_bytes))
        m->is_vram_configured = true;
}

#define MODEL_STR(key, field)                                                                      \
    {                                                                                              \
        key, CFG_F_STR, offsetof(struct cfg_model, field), 0, 0, NULL, 0                           \
    }
#define MODEL_FN(key, fn, flags)                                                                   \
    {                                                                                              \
        key, CFG_F_FN, CFG_NO_STORE, 0, 0, fn, flags                                               \
    }

const struct cfg_field cfg_model_fields[] = {
    MODEL_FN("cmd", field_cmd, 0),
    MODEL_FN("cmdStop", field_cmd_stop, 0),
    MODEL_STR("proxy", proxy),
    {"aliases", CFG_F_STRV, offsetof(struct cfg_model, aliases), 0, 0, NULL, 0},
    {"backends", CFG_F_STRV, offsetof(struct cfg_model, backends), 0, 0, NULL, 0},
    MODEL_STR("strategy", strategy),
    MODEL_FN("env", field_env, 0),
    MODEL_FN("checkEndpoint", field_check_endpoint, 0),
    {"ttl", CFG_F_INT, offsetof(struct cfg_model, ttl_s), -1, CFG_MAX_SECONDS, NULL, 0},
    {"unloadTimeout", CFG_F_INT, offsetof(struct cfg_model, unload_timeout_s), 0, CFG_MAX_SECONDS, NULL, 0},
    {"unlisted", CFG_F_BOOL, offsetof(struct cfg_model, unlisted), 0, 0, NULL, 0},
    MODEL_STR("useModelName", use_model_name),
    MODEL_FN("apiKey", field_api_key, 0),
    MODEL_FN("caFile", field_ca_file, 0),
    MODEL_FN("api", field_api, 0),
    MODEL_STR("name", name),
    MODEL_STR("description", description),
    {"concurrencyLimit", CFG_F_INT, offsetof(struct cfg_model, concurrency_limit), 0, 1000000, NULL,
     0},
    MODEL_FN("filters", field_filters, 0),
    MODEL_FN("macros", field_skip, 0),
    MODEL_FN("metadata", field_metadata, 0),
    MODEL_FN("memory", field_memory, 0),
    MODEL_FN("vram", field_vram, 0),
    {"sendLoadingState", CFG_F_BOOL, CFG_NO_STORE, 0, 0, NULL, CFG_F_INACTIVE},
    MODEL_FN("timeouts", cfg_field_timeouts, CFG_F_INACTIVE),
    MODEL_FN("compat", field_compat, CFG_F_INACTIVE),
    MODEL_FN("capabilities", field_capabilities, CFG_F_INACTIVE),
    {"healthCheckTimeout", CFG_F_INT, CFG_NO_STORE, 0, CFG_MAX_SECONDS, NULL, CFG_F_INACTIVE},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

const struct cfg_field cfg_peer_fields[] = {
    MODEL_STR("proxy", proxy),
    MODEL_FN("apiKey", field_api_key, 0),
    {"models", CFG_F_STRV, CFG_NO_STORE, 0, 0, NULL, 0},
    MODEL_FN("filters", field_peer_filters, 0),
    MODEL_FN("timeouts", cfg_field_timeouts, CFG_F_INACTIVE),
    {NULL, 0, 0, 0, 0, NULL, 0},
};
