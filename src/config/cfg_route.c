/*
 * Sections that refer to models, checked after `models:` is read: groups, peers (expanded
 * into models by cfg_peer.c), profiles, hooks and selectors (recorded for the gateway),
 * validated with llama-swap's rules so a config that llama-swap rejects is rejected.
 */
#include "cfg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frees a group's fields. */
void cfg_group_clear(struct cfg_group *g)
{
    free(g->id);
    cfg_strv_clear(&g->members);
    memset(g, 0, sizeof(*g));
}

/* Returns the index of model ID, or -1 (aliases excluded). */
static long model_index(const struct cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].id, id) == 0)
            return (long)i;
    return -1;
}

/* Returns whether NAME is a model id or an alias (peer models included). */
bool cfg_resolves(const struct cfg_ctx *ctx, const char *name)
{
    return cfg_find_model(ctx->cfg, name) != NULL;
}

static const struct cfg_field group_fields[] = {
    {"swap", CFG_F_BOOL, offsetof(struct cfg_group, swap), 0, 0, NULL, 0},
    {"exclusive", CFG_F_BOOL, offsetof(struct cfg_group, exclusive), 0, 0, NULL, 0},
    {"persistent", CFG_F_BOOL, offsetof(struct cfg_group, persistent), 0, 0, NULL, 0},
    {"members", CFG_F_STRV, offsetof(struct cfg_group, members), 0, 0, NULL, 0},
    {NULL, 0, 0, 0, 0, NULL, 0},
};

/* Checks group G's members: known model ids, no duplicates, in no earlier group. */
static void check_members(struct cfg_ctx *ctx, size_t g, yaml_node_t *list)
{
    const struct cfg_group *grp = &ctx->cfg->groups[g];

    for (size_t i = 0; i < grp->members.len; i++) {
        const char *id = grp->members.items[i];
        yaml_node_t *at = list->data.sequence.items.start + i < list->data.sequence.items.top
                              ? cfg_node(ctx, list->data.sequence.items.start[i])
                              : list;
        bool is_dup = false;

        for (size_t j = 0; j < i && !is_dup; j++)
            is_dup = strcmp(grp->members.items[j], id) == 0;
        if (is_dup) {
            cfg_error(ctx, at, "duplicate member '%s' in group '%s'", id, grp->id);
            continue;
        }
        if (model_index(ctx->cfg, id) < 0)
            cfg_error(ctx, at, "group '%s': unknown model '%s'", grp->id, id);
        for (size_t o = 0; o < g; o++)
            if (cfg_strv_has(&ctx->cfg->groups[o].members, id))
                cfg_error(ctx, at, "model '%s' is in groups '%s' and '%s'", id,
                          ctx->cfg->groups[o].id, grp->id);
    }
}

/* Reads one group entry into cfg->groups[cfg->n_groups]. */
static void parse_group(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value)
{
    struct cfg_group *g = &ctx->cfg->groups[ctx->cfg->n_groups];
    yaml_node_t *members;

    g->id = strdup(cfg_key_text(key));
    if (g->id == NULL) {
        ctx->is_oom = true;
        return;
    }
    g->swap = true;
    g->exclusive = true;
    g->line = (int)key->start_mark.line + 1;
    ctx->cfg->n_groups++;
    if (cfg_is_null(value) || !cfg_expect(ctx, value, YAML_MAPPING_NODE, "group"))
        return;
    cfg_walk(ctx, value, group_fields, g, NULL);
    members = cfg_map_get(ctx, value, "members");
    if (members == NULL)
        cfg_error(ctx, key, "group '%s' has no members", g->id);
    else if (members->type == YAML_SEQUENCE_NODE)
        check_members(ctx, ctx->cfg->n_groups - 1, members);
}

/* Reads a `groups:` mapping into cfg->groups. */
static void parse_groups(struct cfg_ctx *ctx, yaml_node_t *node)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (cfg_is_null(node) || !cfg_expect(ctx, node, YAML_MAPPING_NODE, "groups") ||
        cfg_map_pairs(ctx, node, &pairs, &n) != 0 || n == 0)
        goto out;
    ctx->cfg->groups = calloc(n, sizeof(*ctx->cfg->groups));
    if (ctx->cfg->groups == NULL) {
        ctx->is_oom = true;
        goto out;
    }
    for (size_t i = 0; i < n && !ctx->is_oom; i++)
        parse_group(ctx, cfg_node(ctx, pairs[i].key), cfg_node(ctx, pairs[i].value));
out:
    free(pairs);
}

/* Validates a `groups:` mapping that is present but not selected (structure only). */
static void check_unused_groups(struct cfg_ctx *ctx, yaml_node_t *node)
{
    if (!cfg_is_null(node))
        (void)cfg_expect(ctx, node, YAML_MAPPING_NODE, "groups");
}

/* Matrix DSL parser state: expr := term ('|' term)*; term := factor ('&' factor)*. */
struct dsl {
    struct cfg_ctx *ctx;
    yaml_node_t *node, *vars, *sets;
    const char *p;
    bool is_bad;
};

/* Returns whether C can be part of a matrix identifier. */
static bool dsl_ident_char(char c)
{
    return (unsigned char)c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static void dsl_expr(struct dsl *d, int depth);

/* Parses a factor: identifier, +set reference, or parenthesised expression. */
static void dsl_factor(struct dsl *d, int depth)
{
    char name[256];
    size_t n = 0;
    bool is_ref;

    d->p += strspn(d->p, " \t\n");
    if (*d->p == '(') {
        d->p++;
        dsl_expr(d, depth + 1);
        d->p += strspn(d->p, " \t\n");
        if (*d->p != ')')
            d->is_bad = true;
        else
            d->p++;
        return;
    }
    is_ref = *d->p == '+';
    d->p += is_ref;
    while (dsl_ident_char(d->p[n]) && n + 1 < sizeof(name))
        n++;
    if (n == 0) {
        d->is_bad = true;
        return;
    }
    memcpy(name, d->p, n);
    name[n] = '\0';
    d->p += n;
    if (is_ref && cfg_map_get(d->ctx, d->sets, name) == NULL)
        cfg_error(d->ctx, d->node, "matrix: set reference '+%s' names no set", name);
    else if (!is_ref && cfg_map_get(d->ctx, d->vars, name) == NULL &&
             model_index(d->ctx->cfg, name) < 0)
        cfg_error(d->ctx, d->node, "matrix: unknown var or model '%s'", name);
}

/* Parses an expression of terms joined by '&' and '|'. */
static void dsl_expr(struct dsl *d, int depth)
{
    if (depth > CFG_MAX_DEPTH) {
        d->is_bad = true;
        return;
    }
    for (;;) {
        dsl_factor(d, depth);
        if (d->is_bad)
            return;
        d->p += strspn(d->p, " \t\n");
        if (*d->p != '&' && *d->p != '|')
            return;
        d->p++;
    }
}

/* Checks one set's DSL expression. */
static void check_set(struct cfg_ctx *ctx, yaml_node_t *matrix, yaml_node_t *value)
{
    char *text = NULL;
    struct dsl d = {ctx,  value, cfg_map_get(ctx, matrix, "vars"), cfg_map_get(ctx, matrix, "sets"),
                    NULL, false};

    if (cfg_get_str(ctx, value, "matrix set", &text) != 0) {
        if (text == NULL)
            cfg_error(ctx, value, "matrix: empty set expression");
        return;
    }
    d.p = text;
    dsl_expr(&d, 0);
    if (!d.is_bad && d.p[strspn(d.p, " \t\n")] != '\0')
        d.is_bad = true;
    if (d.is_bad)
        cfg_error(ctx, value, "matrix: invalid set expression '%s'", text);
    free(text);
}

/* Checks matrix.vars: short names mapping to model ids. */
static void check_vars(struct cfg_ctx *ctx, yaml_node_t *vars)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (vars == NULL || cfg_is_null(vars) ||
        !cfg_expect(ctx, vars, YAML_MAPPING_NODE, "matrix.vars") ||
        cfg_map_pairs(ctx, vars, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = cfg_node(ctx, pairs[i].key), *v = cfg_node(ctx, pairs[i].value);
        const char *name = cfg_key_text(k);
        size_t len = strlen(name);
        char *target = NULL;

        if (len == 0 || len > 32 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789.-") != len)
            cfg_error(ctx, k, "matrix.vars: key '%s' must be 1-32 of a-z A-Z 0-9 . -", name);
        if (cfg_get_str(ctx, v, "matrix.vars", &target) == 0 && model_index(ctx->cfg, target) < 0)
            cfg_error(ctx, v, "matrix.vars: '%s' references unknown model '%s'", name, target);
        free(target);
    }
out:
    free(pairs);
}

/* Checks matrix.evict_costs: positive integers for known vars or models. */
static void check_costs(struct cfg_ctx *ctx, yaml_node_t *matrix, yaml_node_t *costs)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;
    yaml_node_t *vars = cfg_map_get(ctx, matrix, "vars");

    if (costs == NULL || cfg_is_null(costs) ||
        !cfg_expect(ctx, costs, YAML_MAPPING_NODE, "matrix.evict_costs") ||
        cfg_map_pairs(ctx, costs, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = cfg_node(ctx, pairs[i].key);
        long long cost;
        const char *name = cfg_key_text(k);

        (void)cfg_get_int(ctx, cfg_node(ctx, pairs[i].value), "evict_costs", 1, 1000000000, &cost);
        if (cfg_map_get(ctx, vars, name) == NULL && model_index(ctx->cfg, name) < 0)
            cfg_error(ctx, k, "matrix.evict_costs: unknown var or model '%s'", name);
    }
out:
    free(pairs);
}

/* Validates a matrix block (vars, evict_costs, sets with their DSL). */
static void check_matrix(struct cfg_ctx *ctx, yaml_node_t *matrix)
{
    static const struct cfg_field fields[] = {
        {"vars", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"evict_costs", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"sets", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0},
    };
    yaml_node_t *sets;
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (!cfg_expect(ctx, matrix, YAML_MAPPING_NODE, "matrix"))
        return;
    cfg_walk(ctx, matrix, fields, NULL, NULL);
    check_vars(ctx, cfg_map_get(ctx, matrix, "vars"));
    check_costs(ctx, matrix, cfg_map_get(ctx, matrix, "evict_costs"));
    sets = cfg_map_get(ctx, matrix, "sets");
    if (sets == NULL || cfg_is_null(sets)) {
        cfg_error(ctx, matrix, "matrix must define at least one set");
        return;
    }
    if (!cfg_expect(ctx, sets, YAML_MAPPING_NODE, "matrix.sets") ||
        cfg_map_pairs(ctx, sets, &pairs, &n) != 0)
        goto out;
    if (n == 0)
        cfg_error(ctx, sets, "matrix must define at least one set");
    for (size_t i = 0; i < n; i++)
        check_set(ctx, matrix, cfg_node(ctx, pairs[i].value));
out:
    free(pairs);
}

/* Reads routing.scheduler: use fifo; priorities are integers for known models (ids or
 * aliases), stored in each model's `priority`. */
static void check_scheduler(struct cfg_ctx *ctx, yaml_node_t *sched)
{
    yaml_node_t *use = cfg_map_get(ctx, sched, "use");
    yaml_node_t *fifo = cfg_map_get(ctx, cfg_map_get(ctx, sched, "settings"), "fifo");
    yaml_node_t *prio = cfg_map_get(ctx, fifo, "priority");
    yaml_node_pair_t *pairs = NULL;
    char *text = NULL;
    size_t n = 0;

    if (use != NULL && cfg_get_str(ctx, use, "routing.scheduler.use", &text) == 0 &&
        strcmp(text, "fifo") != 0)
        cfg_error(ctx, use, "routing.scheduler.use: unknown scheduler '%s' (valid: fifo)", text);
    free(text);
    if (prio == NULL || cfg_is_null(prio) ||
        !cfg_expect(ctx, prio, YAML_MAPPING_NODE, "routing.scheduler.settings.fifo.priority") ||
        cfg_map_pairs(ctx, prio, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = cfg_node(ctx, pairs[i].key);
        long long v;

        const struct cfg_model *m = cfg_find_model(ctx->cfg, cfg_key_text(k));

        if (cfg_get_int(ctx, cfg_node(ctx, pairs[i].value), "priority", -1000000, 1000000, &v) != 0)
            continue;
        if (m == NULL)
            cfg_error(ctx, k, "routing.scheduler.settings.fifo.priority: unknown model '%s'",
                      cfg_key_text(k));
        else if (strcmp(m->id, cfg_key_text(k)) == 0 || cfg_map_get(ctx, prio, m->id) == NULL)
            ctx->cfg->models[m - ctx->cfg->models].priority = (int)v; /* the id beats an alias */
    }
out:
    free(pairs);
}

/* Returns whether a groups node holds at least one group. */
static bool has_groups(yaml_node_t *node)
{
    return node != NULL && node->type == YAML_MAPPING_NODE &&
           node->data.mapping.pairs.top > node->data.mapping.pairs.start;
}

/* Reads routing.router.use into *USE ("group" default); returns -1 on a bad value. */
static int router_use(struct cfg_ctx *ctx, yaml_node_t *router, char **use)
{
    yaml_node_t *node = cfg_map_get(ctx, router, "use");

    *use = NULL;
    if (node != NULL && cfg_get_str(ctx, node, "routing.router.use", use) < 0)
        return -1;
    if (*use != NULL && strcmp(*use, "group") != 0 && strcmp(*use, "matrix") != 0) {
        cfg_error(ctx, node, "routing.router.use: unknown router '%s' (valid: group, matrix)",
                  *use);
        return -1;
    }
    return 0;
}

/* Picks the effective groups/matrix from the legacy keys or routing.router, and checks them. */
static void check_routing(struct cfg_ctx *ctx)
{
    yaml_node_t *router = cfg_map_get(ctx, ctx->routing_node, "router");
    yaml_node_t *settings = cfg_map_get(ctx, router, "settings");
    yaml_node_t *r_groups = cfg_map_get(ctx, settings, "groups");
    yaml_node_t *r_matrix = cfg_map_get(ctx, settings, "matrix");
    yaml_node_t *groups = ctx->groups_node, *matrix = ctx->matrix_node;
    bool has_top = (matrix != NULL && !cfg_is_null(matrix)) || has_groups(groups);
    char *use = NULL;

    if (router_use(ctx, router, &use) != 0)
        goto out;
    if (has_top &&
        (use != NULL || (r_matrix != NULL && !cfg_is_null(r_matrix)) || has_groups(r_groups))) {
        cfg_error(ctx, router,
                  "config uses both the legacy top-level 'matrix'/'groups' keys and "
                  "'routing.router'; move them into 'routing.router'");
        goto out;
    }
    if (!has_top) {
        groups = r_groups;
        matrix = use != NULL && strcmp(use, "matrix") == 0 ? r_matrix : NULL;
        if (use != NULL && strcmp(use, "matrix") == 0 && (matrix == NULL || cfg_is_null(matrix))) {
            cfg_error(ctx, router,
                      "routing.router.use is 'matrix' but "
                      "routing.router.settings.matrix is not set");
            goto out;
        }
    }
    if (matrix != NULL && !cfg_is_null(matrix) && has_groups(groups)) {
        cfg_error(ctx, matrix, "config cannot use both 'groups' and 'matrix'");
    } else if (matrix != NULL && !cfg_is_null(matrix)) {
        size_t n_errors = ctx->errors.len;
        check_matrix(ctx, matrix);
        check_unused_groups(ctx, groups);
        if (ctx->errors.len == n_errors)
            cfg_matrix_build(ctx, matrix);
    } else {
        parse_groups(ctx, groups);
    }
out:
    free(use);
}

/* Warns about unknown keys in the routing tree (values are checked by check_routing). */
static void walk_routing(struct cfg_ctx *ctx, yaml_node_t *routing)
{
    static const struct cfg_field top[] = {{"scheduler", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
                                           {"router", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
                                           {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field use_settings[] = {
        {"use", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"settings", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field router_settings[] = {
        {"groups", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"matrix", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field sched_settings[] = {
        {"fifo", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0}, {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field fifo[] = {{"priority", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
                                            {NULL, 0, 0, 0, 0, NULL, 0}};
    yaml_node_t *router = cfg_map_get(ctx, routing, "router");
    yaml_node_t *sched = cfg_map_get(ctx, routing, "scheduler");
    yaml_node_t *ssettings = cfg_map_get(ctx, sched, "settings");

    cfg_walk(ctx, routing, top, NULL, NULL);
    if (router != NULL && router->type == YAML_MAPPING_NODE) {
        cfg_walk(ctx, router, use_settings, NULL, NULL);
        cfg_walk(ctx, cfg_map_get(ctx, router, "settings"), router_settings, NULL, NULL);
    }
    if (sched != NULL && sched->type == YAML_MAPPING_NODE) {
        cfg_walk(ctx, sched, use_settings, NULL, NULL);
        cfg_walk(ctx, ssettings, sched_settings, NULL, NULL);
        cfg_walk(ctx, cfg_map_get(ctx, ssettings, "fifo"), fifo, NULL, NULL);
        check_scheduler(ctx, sched);
    }
}

/* Applies FN to every (key, value) of the mapping NODE named WHAT. */
static void each_entry(struct cfg_ctx *ctx, yaml_node_t *node, const char *what,
                       void (*fn)(struct cfg_ctx *, yaml_node_t *, yaml_node_t *))
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (node == NULL || cfg_is_null(node) || !cfg_expect(ctx, node, YAML_MAPPING_NODE, what) ||
        cfg_map_pairs(ctx, node, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        fn(ctx, cfg_node(ctx, pairs[i].key), cfg_node(ctx, pairs[i].value));
out:
    free(pairs);
}

/* Records a selector id for profile pin resolution. */
static void note_selector(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value)
{
    (void)value;
    if (cfg_strv_push(&ctx->selector_ids, cfg_key_text(key)) != 0)
        ctx->is_oom = true;
}

/* Checks a selector's targets against its strategy; moves them into *KEPT. */
static void check_targets(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *list,
                          const char *strategy, struct cfg_strv *kept)
{
    const char *id = cfg_key_text(key);
    struct cfg_strv targets = {0};

    if (list == NULL || cfg_get_strv(ctx, list, "targets", &targets) != 0 || targets.len == 0) {
        if (list == NULL || targets.len == 0)
            cfg_error(ctx, key, "selectors.%s.targets must contain at least one entry", id);
        goto out;
    }
    for (size_t i = 0; i < targets.len; i++) {
        yaml_node_t *at = cfg_node(ctx, list->data.sequence.items.start[i]);
        const char *t = targets.items[i];

        if (cfg_strv_has(&ctx->selector_ids, t))
            cfg_error(ctx, at,
                      "selectors.%s.targets[%zu] references selector '%s'; selector "
                      "chaining is not supported",
                      id, i, t);
        else if (!cfg_resolves(ctx, t))
            cfg_error(ctx, at, "selectors.%s.targets[%zu] references unknown model '%s'", id, i, t);
        else if (strategy != NULL && strcmp(strategy, "warm") == 0 &&
                 cfg_find_model(ctx->cfg, t) == NULL)
            cfg_error(ctx, at,
                      "selectors.%s.targets[%zu] must be a local model for strategy "
                      "'warm'",
                      id, i);
        for (size_t j = 0; j < i; j++)
            if (strategy != NULL && strcmp(strategy, "spillover") == 0 &&
                strcmp(targets.items[j], t) == 0)
                cfg_error(ctx, at, "selectors.%s.targets contains duplicate model '%s'", id, t);
    }
    *kept = targets;
    targets = (struct cfg_strv){0};
out:
    cfg_strv_clear(&targets);
}

/* Appends an empty selector ID to the config; NULL when out of memory. */
static struct cfg_selector *add_selector(struct cfg_ctx *ctx, const char *id)
{
    struct cfg_selector *grown, *sel;

    grown = realloc(ctx->cfg->selectors, (ctx->cfg->n_selectors + 1) * sizeof(*grown));
    if (grown == NULL) {
        ctx->is_oom = true;
        return NULL;
    }
    ctx->cfg->selectors = grown;
    sel = &grown[ctx->cfg->n_selectors++];
    memset(sel, 0, sizeof(*sel));
    sel->spillover = 1;
    sel->id = strdup(id);
    if (sel->id == NULL)
        ctx->is_oom = true;
    return sel;
}

/* Checks one selector (strategy, targets, settings.spillover, name/description/metadata) and
 * records it in the config. */
static void check_selector(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value)
{
#define SEL_FIELD(k, type, field, max)                                                             \
    {                                                                                              \
        k, type, offsetof(struct cfg_selector, field), 1, max, NULL, 0                             \
    }
    static const struct cfg_field settings[] = {SEL_FIELD("spillover", CFG_F_INT, spillover,
                                                          1000000),
                                                {NULL, 0, 0, 0, 0, NULL, 0}};
    static const struct cfg_field fields[] = {
        {"strategy", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"targets", CFG_F_ANY, CFG_NO_STORE, 0, 0, NULL, 0},
        {"settings", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
        SEL_FIELD("name", CFG_F_STR, name, 0),
        SEL_FIELD("description", CFG_F_STR, description, 0),
        SEL_FIELD("unlisted", CFG_F_BOOL, unlisted, 0),
        {"metadata", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
#undef SEL_FIELD
    const char *id = cfg_key_text(key);
    yaml_node_t *strategy = cfg_map_get(ctx, value, "strategy");
    yaml_node_t *metadata = cfg_map_get(ctx, value, "metadata");
    struct cfg_selector *sel;
    char *s = NULL;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "selector"))
        return;
    sel = add_selector(ctx, id);
    if (sel == NULL)
        return;
    cfg_walk(ctx, value, fields, sel, NULL);
    cfg_walk(ctx, cfg_map_get(ctx, value, "settings"), settings, sel, NULL);
    if (metadata != NULL && metadata->type == YAML_MAPPING_NODE)
        sel->metadata = cfg_get_json(ctx, metadata, 0);
    if (cfg_find_model(ctx->cfg, id) != NULL)
        cfg_error(ctx, key, "selectors.%s: name conflicts with a model id or alias", id);
    if (strategy == NULL || cfg_get_str(ctx, strategy, "strategy", &s) != 0)
        cfg_error(ctx, key, "selectors.%s.strategy is required", id);
    else if (strcmp(s, "warm") == 0)
        sel->strategy = CFG_SELECT_WARM;
    else if (strcmp(s, "pin") == 0)
        sel->strategy = CFG_SELECT_PIN;
    else if (strcmp(s, "spillover") == 0)
        sel->strategy = CFG_SELECT_SPILLOVER;
    else
        cfg_error(ctx, strategy,
                  "selectors.%s.strategy: unknown strategy '%s' (valid: warm, "
                  "pin, spillover)",
                  id, s);
    check_targets(ctx, key, cfg_map_get(ctx, value, "targets"), s, &sel->targets);
    free(s);
}

/* Checks one profile: a mapping with description and non-empty pins to known targets. */
static void check_profile(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value)
{
    static const struct cfg_field fields[] = {
        {"description", CFG_F_STR, CFG_NO_STORE, 0, 0, NULL, 0},
        {"pins", CFG_F_MAP, CFG_NO_STORE, 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    const char *id = cfg_key_text(key);
    yaml_node_t *pins = cfg_map_get(ctx, value, "pins");
    yaml_node_t *desc = cfg_map_get(ctx, value, "description");
    yaml_node_pair_t *pairs = NULL;
    struct cfg_profile *prof, *grown;
    size_t n = 0;

    grown = realloc(ctx->cfg->profiles, (ctx->cfg->n_profiles + 1) * sizeof(*grown));
    if (grown == NULL) {
        ctx->is_oom = true;
        return;
    }
    ctx->cfg->profiles = grown;
    prof = &grown[ctx->cfg->n_profiles++];
    memset(prof, 0, sizeof(*prof));
    prof->id = strdup(id);
    if (prof->id == NULL)
        ctx->is_oom = true;
    if (desc != NULL && !cfg_is_null(desc))
        (void)cfg_get_str(ctx, desc, "description", &prof->description);
    if (value->type != YAML_MAPPING_NODE) {
        cfg_error(ctx, value,
                  "profile '%s' must be a mapping with description and pins; the "
                  "legacy list syntax is no longer supported",
                  id);
        return;
    }
    cfg_walk(ctx, value, fields, NULL, NULL);
    if (pins == NULL || pins->type != YAML_MAPPING_NODE || cfg_map_pairs(ctx, pins, &pairs, &n))
        n = 0;
    if (n == 0)
        cfg_error(ctx, key, "profiles.%s.pins must contain at least one entry", id);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = cfg_node(ctx, pairs[i].key), *v = cfg_node(ctx, pairs[i].value);
        char *target = NULL;

        if (cfg_key_text(k)[0] == '\0')
            cfg_error(ctx, k, "profiles.%s.pins: pin names cannot be empty", id);
        if (cfg_is_null(v))
            target = strdup(""); /* a null pin disables the name */
        else if (cfg_get_str(ctx, v, "pin", &target) == 0 && target[0] != '\0' &&
                 !cfg_resolves(ctx, target) && !cfg_strv_has(&ctx->selector_ids, target))
            cfg_error(ctx, v, "profiles.%s.pins.%s references unknown model '%s'", id,
                      cfg_key_text(k), target);
        if (target != NULL && (cfg_strv_push(&prof->pins, cfg_key_text(k)) != 0 ||
                               cfg_strv_push(&prof->targets, target) != 0))
            ctx->is_oom = true;
        free(target);
    }
    free(pairs);
}

/* Checks hooks.on_startup.preload entries (blank entries are skipped, as llama-swap does). */
static void check_preload(struct cfg_ctx *ctx, yaml_node_t *list)
{
    struct cfg_strv ids = {0};

    if (cfg_get_strv(ctx, list, "preload", &ids) == 0) {
        for (size_t i = 0; i < ids.len; i++) {
            const struct cfg_model *m = cfg_find_model(ctx->cfg, ids.items[i]);
            if (m != NULL)
                cfg_strv_push(&ctx->cfg->preload, m->id);
            else if (ids.items[i][strspn(ids.items[i], " \t")] != '\0')
                cfg_warn(ctx, cfg_node(ctx, list->data.sequence.items.start[i]),
                         "hooks.on_startup.preload: unknown model '%s' is ignored", ids.items[i]);
        }
    }
    cfg_strv_clear(&ids);
}

/* Validates every section that refers to models; runs after models are read. */
void cfg_routes_check(struct cfg_ctx *ctx)
{
    if (ctx->routing_node != NULL)
        walk_routing(ctx, ctx->routing_node);
    check_routing(ctx);
    cfg_peers_expand(ctx);
    each_entry(ctx, ctx->selectors_node, "selectors", note_selector);
    each_entry(ctx, ctx->selectors_node, "selectors", check_selector);
    each_entry(ctx, ctx->profiles_node, "profiles", check_profile);
    if (ctx->preload_node != NULL)
        check_preload(ctx, ctx->preload_node);
}

const struct cfg_selector *cfg_find_selector(const struct cfg *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_selectors; i++)
        if (cfg->selectors[i].id != NULL && strcmp(cfg->selectors[i].id, id) == 0)
            return &cfg->selectors[i];
    return NULL;
}

/* Releases the profiles and selectors of CFG. */
void cfg_routes_clear(struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_profiles; i++) {
        free(cfg->profiles[i].id);
        free(cfg->profiles[i].description);
        cfg_strv_clear(&cfg->profiles[i].pins);
        cfg_strv_clear(&cfg->profiles[i].targets);
    }
    free(cfg->profiles);
    for (size_t i = 0; i < cfg->n_selectors; i++) {
        free(cfg->selectors[i].id);
        free(cfg->selectors[i].name);
        free(cfg->selectors[i].description);
        cfg_strv_clear(&cfg->selectors[i].targets);
        json_decref(cfg->selectors[i].metadata);
    }
    free(cfg->selectors);
}
