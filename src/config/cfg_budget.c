/*
 * The control-plane sections of the config: `models_dir` (where GGUF files are discovered),
 * `engine` (how discovered models are served) and `budget` (memory for loaded models).
 */
#include "cfg_internal.h"
#include "ig_sysmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CTX_SIZE (16 * 1024 * 1024)
#define MAX_PARALLEL 256

/* Detectors of the totals a percentage refers to (run only when one is written). */
static uint64_t detect_ram(void)
{
    return ig_ram_total_bytes();
}

static uint64_t detect_vram(void)
{
    return ig_vram_total_bytes(NULL);
}

void cfg_top_models_dir(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_strv dirs = {0};
    (void)key;
    (void)obj;

    if (value->type == YAML_SCALAR_NODE) { /* one directory */
        char *dir = NULL;
        if (cfg_get_str(ctx, value, "models_dir", &dir) != 0)
            return;
        if (cfg_strv_push_take(&dirs, dir) != 0) {
            ctx->is_oom = true;
            return;
        }
    } else if (cfg_get_strv(ctx, value, "models_dir", &dirs) != 0) {
        cfg_strv_clear(&dirs); /* the entries read before the bad one */
        return;
    }
    for (size_t i = 0; i < dirs.len; i++)
        if (dirs.items[i][0] == '\0')
            cfg_error(ctx, value, "models_dir: empty path");
    cfg_strv_clear(&ctx->cfg->discovery.dirs);
    ctx->cfg->discovery.dirs = dirs;
}

/* Reads an int field of `engine` into *OUT within [MIN, MAX]. */
static void engine_int(struct cfg_ctx *ctx, yaml_node_t *map, const char *name, long long min,
                       long long max, int *out)
{
    yaml_node_t *node = cfg_map_get(ctx, map, name);
    long long v;
    char what[64];

    snprintf(what, sizeof(what), "engine.%s", name);
    if (node != NULL && !cfg_is_null(node) && cfg_get_int(ctx, node, what, min, max, &v) == 0)
        *out = (int)v;
}

/* Reads a string field of `engine` into *OUT (replacing it). */
static void engine_str(struct cfg_ctx *ctx, yaml_node_t *map, const char *name, char **out)
{
    yaml_node_t *node = cfg_map_get(ctx, map, name);
    char *v = NULL, what[64];

    snprintf(what, sizeof(what), "engine.%s", name);
    if (node != NULL && !cfg_is_null(node) && cfg_get_str(ctx, node, what, &v) == 0) {
        free(*out);
        *out = v;
    }
}

void cfg_top_engine(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"bin", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"ctx_size", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"parallel", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"threads", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"n_gpu_layers", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"args", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_discovery *d = &ctx->cfg->discovery;
    (void)key;
    (void)obj;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "engine"))
        return;
    cfg_walk(ctx, value, fields, NULL, NULL);
    engine_str(ctx, value, "bin", &d->engine_bin);
    engine_str(ctx, value, "args", &d->args);
    engine_int(ctx, value, "ctx_size", 64, MAX_CTX_SIZE, &d->ctx_size);
    engine_int(ctx, value, "parallel", 1, MAX_PARALLEL, &d->parallel);
    engine_int(ctx, value, "threads", 0, 1024, &d->threads);
    engine_int(ctx, value, "n_gpu_layers", 0, 100000, &d->n_gpu_layers);
}

/* Reads one budget amount: bytes ("24GiB", 123456) or a percentage ("80%") of what DETECT
 * finds (0: nothing). Sets *BYTES and *PERCENT. */
static void budget_amount(struct cfg_ctx *ctx, yaml_node_t *map, const char *name,
                          uint64_t (*detect)(void), uint64_t *bytes, int *percent)
{
    yaml_node_t *node = cfg_map_get(ctx, map, name);
    struct cfg_scalar s;
    unsigned long long v = 0;
    char *end = NULL;
    double pct;
    uint64_t detected;

    if (node == NULL || cfg_is_null(node))
        return;
    if (node->type != YAML_SCALAR_NODE || cfg_read_scalar(ctx, node, &s) != 0) {
        if (node->type != YAML_SCALAR_NODE)
            cfg_error(ctx, node, "budget.%s: expected a size like 24GiB or a percentage", name);
        return;
    }
    if (s.kind == CFG_INT && s.i >= 0) {
        *bytes = (uint64_t)s.i;
    } else if (s.kind == CFG_STR && strchr(s.text, '%') != NULL) {
        pct = strtod(s.text, &end);
        if (end == s.text || strcmp(end, "%") != 0 || !(pct > 0 && pct <= 100))
            cfg_error(ctx, node, "budget.%s: expected a percentage from 1%% to 100%%, got '%s'",
                      name, s.text);
        else if ((detected = detect()) == 0)
            cfg_error(ctx, node, "budget.%s: cannot use a percentage: %s; give a size like 24GiB",
                      name, detect == detect_vram ? "no GPU found (nvidia-smi, /sys/class/drm)"
                                                  : "the total is not known here");
        else {
            *bytes = (uint64_t)((double)detected * pct / 100.0);
            *percent = (int)(pct + 0.5);
        }
    } else if (s.kind == CFG_STR && cfg_parse_size(s.text, &v) == 0) {
        *bytes = v;
    } else {
        cfg_error(ctx, node, "budget.%s: expected a size like 24GiB or a percentage, got '%s'",
                  name, s.text != NULL ? s.text : "?");
    }
    cfg_scalar_clear(&s);
}

void cfg_top_budget(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {{"ram", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
                                              {"vram", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
                                              {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_budget *b = &ctx->cfg->budget;
    (void)key;
    (void)obj;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "budget"))
        return;
    cfg_walk(ctx, value, fields, NULL, NULL);
    budget_amount(ctx, value, "ram", detect_ram, &b->ram_bytes, &b->ram_percent);
    budget_amount(ctx, value, "vram", detect_vram, &b->vram_bytes, &b->vram_percent);
}
