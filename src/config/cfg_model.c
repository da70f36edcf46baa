/*
 * The `models:` section. Models are read in three passes: their macros (file order), their
 * ${PORT} (sorted model-id order, as llama-swap assigns ports: startPort, startPort+1, ...
 * to each model whose cmd uses ${PORT} after macro expansion), then every field with the
 * model's scope (file order, which is the order of cfg->models), after which each model is
 * completed and checked (cmd or proxy, defaults) and aliases are checked across models.
 * The fields themselves are read by cfg_model_fields.c.
 */
#include "cfg_internal.h"
#include "ig_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BACKENDS 8        /* a request chooses among at most 16, workers included */
#define MAX_BACKEND_URL 1024  /* base URL; the request path is appended to it */

/* Per-model loading state. */
struct model_work {
    yaml_node_t *key, *map;
    struct cfg_macros macros;
    struct cfg_scalar id_value;
    struct cfg_scope scope;
};

/* An alias occurrence, for the cross-model uniqueness check. */
struct alias_ref {
    const char *name;
    size_t model;
    size_t order;
    yaml_node_t *node;
};

/* Releases every field of a model. */
void cfg_model_clear(struct cfg_model *m)
{
    free(m->id);
    free(m->name);
    free(m->description);
    free(m->cmd);
    free(m->cmd_stop);
    free(m->proxy);
    free(m->check_endpoint);
    free(m->use_model_name);
    if (m->api_key != NULL)
        explicit_bzero(m->api_key, strlen(m->api_key));
    free(m->api_key);
    free(m->ca_file);
    free(m->peer);
    cfg_strv_clear(&m->aliases);
    cfg_strv_clear(&m->backends);
    free(m->strategy);
    cfg_strv_clear(&m->env);
    cfg_strv_clear(&m->strip_params);
    json_decref(m->set_params);
    json_decref(m->metadata);
    free(m->gguf_path);
    json_decref(m->details);
    memset(m, 0, sizeof(*m));
}

/* Orders model indexes by id (llama-swap assigns ports in sorted id order). */
static int id_order(const void *a, const void *b, void *arg)
{
    const struct cfg_model *models = arg;
    return strcmp(models[*(const size_t *)a].id, models[*(const size_t *)b].id);
}

/* Finds W's cmd, expands it quietly with ${PORT} literal, and assigns a port if it uses it. */
static void assign_port(struct cfg_ctx *ctx, struct cfg_model *m, struct model_work *w,
                        int *next_port)
{
    yaml_node_t *cmd = cfg_map_get(ctx, w->map, "cmd");
    char *text;

    if (cmd == NULL || cmd->type != YAML_SCALAR_NODE)
        return;
    w->scope.port = -1;
    ctx->scope = &w->scope;
    ctx->quiet++;
    text = cfg_read_command(ctx, cmd, "cmd");
    ctx->quiet--;
    w->scope.port = 0;
    if (text != NULL && cfg_has_macro(text, "PORT")) {
        if (*next_port > 65535)
            cfg_error(ctx, w->key, "model '%s': no port left for ${PORT} (startPort %d)", m->id,
                      ctx->cfg->start_port);
        else
            w->scope.port = m->port = (*next_port)++;
    }
    free(text);
}

/* Applies defaults and model-level checks after M's fields are read. */
static void finish_model(struct cfg_ctx *ctx, struct cfg_model *m, struct model_work *w)
{
    bool has_bad_cmd = m->cmd == NULL && cfg_map_get(ctx, w->map, "cmd") != NULL;

    for (size_t i = 0; i < m->backends.len; i++)
        if (strncmp(m->backends.items[i], "http://", 7) != 0 &&
            strncmp(m->backends.items[i], "https://", 8) != 0)
            cfg_error(ctx, cfg_map_get(ctx, w->map, "backends"),
                      "backends: must be http:// or https:// URLs, got '%s'",
                      m->backends.items[i]);
    if (m->backends.len > MAX_BACKENDS)
        cfg_error(ctx, cfg_map_get(ctx, w->map, "backends"),
                  "model '%s': at most %d backends", m->id, MAX_BACKENDS);
    for (size_t i = 0; i < m->backends.len; i++)
        if (strlen(m->backends.items[i]) > MAX_BACKEND_URL)
            cfg_error(ctx, cfg_map_get(ctx, w->map, "backends"),
                      "backends: a URL is at most %d characters", MAX_BACKEND_URL);
    if (m->backends.len > 0 && cfg_map_get(ctx, w->map, "cmd") != NULL)
        cfg_error(ctx, cfg_map_get(ctx, w->map, "backends"),
                  "model '%s': backends are servers of their own: no cmd with them", m->id);
    if (m->strategy != NULL && !cfg_strategy_valid(m->strategy))
        cfg_error(ctx, cfg_map_get(ctx, w->map, "strategy"),
                  "strategy: least-loaded, round-robin, priority or prefix-affinity, got '%s'",
                  m->strategy);
    if (m->backends.len > 0 && m->proxy == NULL &&
        (m->proxy = strdup(m->backends.items[0])) == NULL)
        ctx->is_oom = true;
    if (has_bad_cmd) {
        /* the cmd's own error is already recorded */
    } else if (m->proxy == NULL && m->cmd == NULL) {
        cfg_error(ctx, w->key, "model '%s' needs a cmd or a proxy", m->id);
    } else if (m->proxy == NULL && m->port == 0) {
        cfg_error(ctx, w->key, "model '%s': proxy is required when cmd does not use ${PORT}",
                  m->id);
    } else if (m->proxy == NULL) {
        if (asprintf(&m->proxy, "http://localhost:%d", m->port) < 0) {
            m->proxy = NULL;
            ctx->is_oom = true;
        }
    } else if (strncmp(m->proxy, "http://", 7) != 0 && strncmp(m->proxy, "https://", 8) != 0) {
        cfg_error(ctx, cfg_map_get(ctx, w->map, "proxy"),
                  "proxy: must be an http:// or https:// URL, got '%s'", m->proxy);
    }
    if (m->ca_file != NULL && m->proxy != NULL && strncmp(m->proxy, "https://", 8) != 0)
        cfg_warn(ctx, cfg_map_get(ctx, w->map, "caFile"),
                 "model '%s': caFile is only used with an https:// proxy", m->id);
    if (m->check_endpoint == NULL && (m->check_endpoint = strdup("/health")) == NULL)
        ctx->is_oom = true;
    if (m->ttl_s < 0)
        m->ttl_s = ctx->cfg->global_ttl_s;
    if (m->unload_timeout_s == 0) /* llama-swap: 0 means the global value, itself 0 → 10 */
        m->unload_timeout_s = ctx->cfg->unload_timeout_s > 0 ? ctx->cfg->unload_timeout_s : 10;
}

/* Reads model I's fields with its scope. */
static void parse_model(struct cfg_ctx *ctx, size_t i, struct model_work *w)
{
    struct cfg_model *m = &ctx->cfg->models[i];
    char *prefix = NULL;

    ctx->scope = &w->scope;
    if (asprintf(&prefix, "models.%s.", m->id) < 0) {
        ctx->is_oom = true;
        return;
    }
    if (cfg_is_null(w->map))
        cfg_error(ctx, w->key, "model '%s' needs a cmd or a proxy", m->id);
    else if (cfg_expect(ctx, w->map, YAML_MAPPING_NODE, m->id)) {
        cfg_walk(ctx, w->map, cfg_model_fields, m, prefix);
        finish_model(ctx, m, w);
    }
    free(prefix);
    ctx->scope = &ctx->global_scope;
}

/* Orders alias references by name, then occurrence. */
static int alias_order(const void *a, const void *b)
{
    const struct alias_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->order < y->order ? -1 : x->order > y->order);
}

/* Returns whether NAME is a model id (IDS holds indexes sorted by id). */
static long find_id(const struct cfg *cfg, const size_t *ids, const char *name)
{
    size_t lo = 0, hi = cfg->n_models;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(cfg->models[ids[mid]].id, name);
        if (c == 0)
            return (long)ids[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Collects every alias with its node for the uniqueness checks. */
static size_t collect_aliases(struct cfg_ctx *ctx, struct model_work *work, struct alias_ref *refs)
{
    size_t n = 0;

    for (size_t i = 0; i < ctx->cfg->n_models; i++) {
        const struct cfg_model *m = &ctx->cfg->models[i];
        yaml_node_t *list = m->aliases.len > 0 ? cfg_map_get(ctx, work[i].map, "aliases") : NULL;

        for (size_t a = 0; list != NULL && a < m->aliases.len; a++) {
            yaml_node_t *item = cfg_node(ctx, list->data.sequence.items.start[a]);
            refs[n] = (struct alias_ref){m->aliases.items[a], i, n, item};
            n++;
        }
    }
    return n;
}

/* Checks aliases: unique across all models and never another model's id. */
static void check_aliases(struct cfg_ctx *ctx, struct model_work *work, const size_t *ids)
{
    struct cfg *cfg = ctx->cfg;
    struct alias_ref *refs;
    size_t total = 0, n;

    for (size_t i = 0; i < cfg->n_models; i++)
        total += cfg->models[i].aliases.len;
    refs = calloc(total > 0 ? total : 1, sizeof(*refs));
    if (refs == NULL) {
        ctx->is_oom = true;
        return;
    }
    n = collect_aliases(ctx, work, refs);
    for (size_t i = 0; i < n; i++) {
        long owner = find_id(cfg, ids, refs[i].name);
        if (owner >= 0 && (size_t)owner != refs[i].model)
            cfg_error(ctx, refs[i].node, "alias '%s' of model '%s' is the id of another model",
                      refs[i].name, cfg->models[refs[i].model].id);
        else if (refs[i].name[0] == '\0')
            cfg_error(ctx, refs[i].node, "empty alias in model '%s'",
                      cfg->models[refs[i].model].id);
    }
    qsort(refs, n, sizeof(*refs), alias_order);
    for (size_t i = 1; i < n; i++)
        if (strcmp(refs[i].name, refs[i - 1].name) == 0)
            cfg_error(ctx, refs[i].node, "duplicate alias '%s' (already used by model '%s')",
                      refs[i].name, cfg->models[refs[i - 1].model].id);
    free(refs);
}

/* Sets up work item I: id, line, defaults, macros and scope. */
static void prepare_model(struct cfg_ctx *ctx, size_t i, struct model_work *w)
{
    struct cfg_model *m = &ctx->cfg->models[i];
    yaml_node_t *macros =
        w->map->type == YAML_MAPPING_NODE ? cfg_map_get(ctx, w->map, "macros") : NULL;

    m->line = (int)w->key->start_mark.line + 1;
    m->ttl_s = -1;
    m->id = strdup(cfg_key_text(w->key));
    w->id_value.kind = CFG_STR;
    w->id_value.text = strdup(cfg_key_text(w->key));
    if (m->id == NULL || w->id_value.text == NULL) {
        ctx->is_oom = true;
        return;
    }
    if (m->id[0] == '\0')
        cfg_error(ctx, w->key, "model id must not be empty");
    if (macros != NULL)
        cfg_macros_parse(ctx, macros, &w->macros);
    if (cfg_scope_init(&w->scope, &ctx->globals, &w->macros, m->id, &w->id_value) != 0)
        ctx->is_oom = true;
}

/* Runs the three passes over the models. */
static void parse_all(struct cfg_ctx *ctx, yaml_node_pair_t *pairs, struct model_work *work,
                      size_t *ids)
{
    struct cfg *cfg = ctx->cfg;
    int next_port = cfg->start_port;

    for (size_t i = 0; i < cfg->n_models; i++) {
        work[i].key = cfg_node(ctx, pairs[i].key);
        work[i].map = cfg_node(ctx, pairs[i].value);
        prepare_model(ctx, i, &work[i]);
        ids[i] = i;
    }
    if (ctx->is_oom)
        return;
    qsort_r(ids, cfg->n_models, sizeof(*ids), id_order, cfg->models);
    for (size_t k = 0; k < cfg->n_models; k++)
        assign_port(ctx, &cfg->models[ids[k]], &work[ids[k]], &next_port);
    for (size_t i = 0; i < cfg->n_models; i++)
        parse_model(ctx, i, &work[i]);
    check_aliases(ctx, work, ids);
}

/* Parses the `models:` mapping into cfg->models. */
void cfg_models_parse(struct cfg_ctx *ctx, yaml_node_t *models)
{
    yaml_node_pair_t *pairs = NULL;
    struct model_work *work = NULL;
    size_t n = 0, *ids = NULL;

    if (cfg_is_null(models) || !cfg_expect(ctx, models, YAML_MAPPING_NODE, "models") ||
        cfg_map_pairs(ctx, models, &pairs, &n) != 0 || n == 0)
        goto out;
    if (n > CFG_MAX_MODELS) {
        cfg_error(ctx, models, "more than %u models", CFG_MAX_MODELS);
        goto out;
    }
    ctx->cfg->models = calloc(n, sizeof(*ctx->cfg->models));
    work = calloc(n, sizeof(*work));
    ids = calloc(n, sizeof(*ids));
    if (ctx->cfg->models == NULL || work == NULL || ids == NULL) {
        ctx->is_oom = true;
        goto out;
    }
    ctx->cfg->n_models = n;
    parse_all(ctx, pairs, work, ids);
out:
    for (size_t i = 0; work != NULL && i < n; i++) {
        cfg_macros_clear(&work[i].macros);
        cfg_scalar_clear(&work[i].id_value);
        cfg_scope_clear(&work[i].scope);
    }
    ctx->scope = &ctx->global_scope;
    free(work);
    free(ids);
    free(pairs);
}

/* Returns whether two optional strings are equal (both NULL counts as equal). */
static bool same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool cfg_model_same_process(const struct cfg_model *a, const struct cfg_model *b)
{
    if (!same_str(a->cmd, b->cmd) || !same_str(a->cmd_stop, b->cmd_stop) ||
        !same_str(a->proxy, b->proxy) || !same_str(a->check_endpoint, b->check_endpoint) ||
        a->env.len != b->env.len || a->port != b->port)
        return false;
    for (size_t i = 0; i < a->env.len; i++)
        if (strcmp(a->env.items[i], b->env.items[i]) != 0)
            return false;
    return true;
}

struct cfg_model *cfg_append_model(struct cfg *cfg, const char *id, const char *cmd, int port)
{
    struct cfg_model *models = realloc(cfg->models, (cfg->n_models + 1) * sizeof(*models));
    struct cfg_model *m;
    int next = cfg->start_port;
    bool is_taken = port <= 0;
    char port_text[16];

    if (models == NULL)
        return NULL;
    cfg->models = models;
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (models[i].port >= next)
            next = models[i].port + 1;
        if (models[i].port == port)
            is_taken = true;
    }
    if (is_taken)
        port = next;
    m = &models[cfg->n_models];
    memset(m, 0, sizeof(*m));
    m->id = strdup(id);
    snprintf(port_text, sizeof(port_text), "%d", port);
    m->cmd = ig_replace_all(cmd, "${PORT}", port_text);
    m->port = port;
    m->ttl_s = cfg->global_ttl_s;
    m->unload_timeout_s = cfg->unload_timeout_s > 0 ? cfg->unload_timeout_s : 10;
    m->check_endpoint = strdup("/health");
    if (asprintf(&m->proxy, "http://localhost:%d", port) < 0)
        m->proxy = NULL;
    if (m->id == NULL || m->cmd == NULL || m->check_endpoint == NULL || m->proxy == NULL) {
        cfg_model_clear(m);
        return NULL;
    }
    cfg->n_models++;
    return m;
}

int cfg_add_warning(struct cfg *cfg, const char *text)
{
    return cfg_strv_push(&cfg->warnings, text) == 0 ? 0 : IG_ENOMEM;
}
