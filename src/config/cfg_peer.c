/*
 * llama-swap's `peers:`: remote OpenAI-compatible servers and the models they serve. Each
 * peer model becomes a proxy-only model "<peer>/<model>" at load time (the peer's proxy,
 * apiKey and filters, no cmd, the peer's own model name sent upstream), so routing, keys'
 * allow-lists, metering, the request log and reloads treat it like any other model. The
 * plain model name is an alias of it when exactly one peer serves that name and no model
 * id or alias of the file already has it (local models win, as in llama-swap).
 */
#include "cfg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends a zeroed model to CFG; returns it, or NULL when out of memory. */
static struct cfg_model *append_blank(struct cfg *cfg)
{
    struct cfg_model *models = realloc(cfg->models, (cfg->n_models + 1) * sizeof(*models));

    if (models == NULL)
        return NULL;
    cfg->models = models;
    memset(&models[cfg->n_models], 0, sizeof(*models));
    return &models[cfg->n_models++];
}

/* Copies strings DST from SRC; returns 0 or -1 when out of memory. */
static int copy_strv(struct cfg_strv *dst, const struct cfg_strv *src)
{
    for (size_t i = 0; i < src->len; i++)
        if (cfg_strv_push(dst, src->items[i]) != 0)
            return -1;
    return 0;
}

/* Fills M, model NAME of peer PEER, from the peer's fields in TMPL; returns 0 or -1 (OOM). */
static int fill_model(struct cfg_ctx *ctx, struct cfg_model *m, const struct cfg_model *tmpl,
                      const char *peer, const char *name)
{
    if (asprintf(&m->id, "%s/%s", peer, name) < 0) {
        m->id = NULL;
        return -1;
    }
    if (asprintf(&m->name, "%s: %s", peer, name) < 0) {
        m->name = NULL;
        return -1;
    }
    m->peer = strdup(peer);
    m->use_model_name = strdup(name);
    m->proxy = strdup(tmpl->proxy);
    m->check_endpoint = strdup("none");
    m->api_key = tmpl->api_key != NULL ? strdup(tmpl->api_key) : NULL;
    m->set_params = tmpl->set_params != NULL ? json_deep_copy(tmpl->set_params) : NULL;
    m->unload_timeout_s = ctx->cfg->unload_timeout_s > 0 ? ctx->cfg->unload_timeout_s : 10;
    m->line = tmpl->line;
    if (m->peer == NULL || m->use_model_name == NULL || m->proxy == NULL ||
        m->check_endpoint == NULL || (tmpl->api_key != NULL && m->api_key == NULL) ||
        (tmpl->set_params != NULL && m->set_params == NULL) ||
        copy_strv(&m->strip_params, &tmpl->strip_params) != 0)
        return -1;
    return 0;
}

/* Adds peer PEER's model NAME unless its full name is taken (an error at KEY). */
static void add_model(struct cfg_ctx *ctx, yaml_node_t *key, const struct cfg_model *tmpl,
                      const char *peer, const char *name)
{
    char *fqn = NULL;
    struct cfg_model *m;

    if (asprintf(&fqn, "%s/%s", peer, name) < 0) {
        ctx->is_oom = true;
        return;
    }
    if (cfg_find_model(ctx->cfg, fqn) != NULL) {
        cfg_error(ctx, key, "peer model name '%s' conflicts with a model id or alias", fqn);
    } else if (ctx->cfg->n_models >= CFG_MAX_MODELS) {
        cfg_error(ctx, key, "peer '%s': more than %u models in all", peer, CFG_MAX_MODELS);
    } else if ((m = append_blank(ctx->cfg)) == NULL || fill_model(ctx, m, tmpl, peer, name) != 0) {
        ctx->is_oom = true;
    }
    free(fqn);
}

/* Checks one peer (proxy: an http(s) URL, models: not empty) and adds its models. */
static void expand_peer(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value)
{
    const char *id = cfg_key_text(key);
    yaml_node_t *models = cfg_map_get(ctx, value, "models");
    struct cfg_model tmpl = {0};
    struct cfg_strv names = {0};
    char *prefix = NULL;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "peer"))
        return;
    if (asprintf(&prefix, "peers.%s.", id) < 0) {
        ctx->is_oom = true;
        return;
    }
    tmpl.line = (int)key->start_mark.line + 1;
    cfg_walk(ctx, value, cfg_peer_fields, &tmpl, prefix);
    if (cfg_map_get(ctx, value, "proxy") == NULL)
        cfg_error(ctx, key, "peer '%s': proxy is required", id);
    else if (tmpl.proxy != NULL && strncmp(tmpl.proxy, "http://", 7) != 0 &&
             strncmp(tmpl.proxy, "https://", 8) != 0)
        cfg_error(ctx, cfg_map_get(ctx, value, "proxy"),
                  "peer '%s': proxy must be an http:// or https:// URL", id);
    if (models == NULL || models->type != YAML_SEQUENCE_NODE ||
        cfg_get_strv(ctx, models, "models", &names) != 0 || names.len == 0)
        cfg_error(ctx, key, "peer '%s': models can not be empty", id);
    for (size_t i = 0; tmpl.proxy != NULL && i < names.len && !ctx->is_oom; i++) {
        bool is_dup = false;
        for (size_t j = 0; j < i && !is_dup; j++)
            is_dup = strcmp(names.items[j], names.items[i]) == 0;
        if (!is_dup)
            add_model(ctx, key, &tmpl, id, names.items[i]);
    }
    cfg_strv_clear(&names);
    cfg_model_clear(&tmpl);
    free(prefix);
}

/* Makes each plain peer model name served by exactly one peer an alias of its model, unless a
 * model id or alias already has that name (llama-swap: local names win, ambiguous ones need
 * the full "<peer>/<model>" name). */
static void add_plain_names(struct cfg_ctx *ctx, size_t first)
{
    struct cfg *cfg = ctx->cfg;

    for (size_t i = first; i < cfg->n_models && !ctx->is_oom; i++) {
        const char *name = cfg->models[i].use_model_name;
        size_t n_same = 0;

        for (size_t j = first; j < cfg->n_models; j++)
            n_same += strcmp(cfg->models[j].use_model_name, name) == 0;
        if (n_same == 1 && cfg_find_model(cfg, name) == NULL &&
            cfg_strv_push(&cfg->models[i].aliases, name) != 0)
            ctx->is_oom = true;
    }
}

void cfg_peers_expand(struct cfg_ctx *ctx)
{
    yaml_node_t *node = ctx->peers_node;
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0, first = ctx->cfg->n_models;

    if (node == NULL || cfg_is_null(node) || !cfg_expect(ctx, node, YAML_MAPPING_NODE, "peers") ||
        cfg_map_pairs(ctx, node, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n && !ctx->is_oom; i++)
        expand_peer(ctx, cfg_node(ctx, pairs[i].key), cfg_node(ctx, pairs[i].value));
    if (ctx->errors.len == 0)
        add_plain_names(ctx, first);
out:
    free(pairs);
}

struct cfg_model *cfg_model_new_remote(const char *id, unsigned caps)
{
    struct cfg_model *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->id = strdup(id);
    if (m->id == NULL) {
        free(m);
        return NULL;
    }
    m->caps = caps;
    return m;
}

void cfg_model_free_remote(struct cfg_model *m)
{
    if (m == NULL)
        return;
    cfg_model_clear(m);
    free(m);
}
