/*
 * llama-swap's matrix router: expands each `sets` expression of a (validated) matrix block
 * into the concrete model sets it allows, and reads `evict_costs`.
 *
 *   expr   := term ('|' term)*        alternatives: the union of the lists of sets
 *   term   := factor ('&' factor)*    together: every combination of one set of each
 *   factor := NAME | '+' SET | '(' expr ')'
 *
 * NAME is a var (matrix.vars, which wins) or a model id; +SET inlines another set's
 * expression. Each concrete set is a sorted list of model indices without duplicates.
 */
#include "cfg_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SETS 4096   /* concrete sets per expression and in all */
#define MAX_REF_DEPTH 16 /* +ref nesting; deeper means a cycle */

/* A list of concrete sets being built. */
struct set_list {
    struct cfg_model_set *items;
    size_t n;
};

struct parser {
    struct cfg_ctx *ctx;
    yaml_node_t *node; /* for error positions */
    yaml_node_t *vars, *sets;
    const char *p;
    int ref_depth;
    bool is_bad;
};

static bool parse_expr(struct parser *ps, struct set_list *out);

/* Frees the sets of L. */
static void list_clear(struct set_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].models);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Appends a copy of the N sorted indices at MODELS to L. */
static bool list_push(struct set_list *l, const size_t *models, size_t n)
{
    struct cfg_model_set *items;
    size_t *copy;

    if (l->n >= MAX_SETS)
        return false;
    items = realloc(l->items, (l->n + 1) * sizeof(*items));
    copy = malloc((n > 0 ? n : 1) * sizeof(*copy));
    if (items == NULL || copy == NULL) {
        free(copy);
        if (items != NULL)
            l->items = items;
        return false;
    }
    l->items = items;
    memcpy(copy, models, n * sizeof(*copy));
    l->items[l->n++] = (struct cfg_model_set){copy, n};
    return true;
}

/* Writes the sorted union of sets A and B into OUT (room for a.n + b.n); returns its size. */
static size_t merge(const struct cfg_model_set *a, const struct cfg_model_set *b, size_t *out)
{
    size_t i = 0, j = 0, n = 0;

    while (i < a->n || j < b->n) {
        size_t v = j >= b->n || (i < a->n && a->models[i] <= b->models[j]) ? a->models[i] : b->models[j];
        if (i < a->n && a->models[i] == v)
            i++;
        if (j < b->n && b->models[j] == v)
            j++;
        out[n++] = v;
    }
    return n;
}

/* Replaces *ACC by every union of one set of *ACC and one of RIGHT (the '&' operator). */
static bool cross(struct set_list *acc, const struct set_list *right)
{
    struct set_list out = {0};

    for (size_t i = 0; i < acc->n; i++) {
        for (size_t j = 0; j < right->n; j++) {
            size_t *buf = malloc((acc->items[i].n + right->items[j].n + 1) * sizeof(*buf));
            bool ok = buf != NULL &&
                      list_push(&out, buf, merge(&acc->items[i], &right->items[j], buf));
            free(buf);
            if (!ok) {
                list_clear(&out);
                return false;
            }
        }
    }
    list_clear(acc);
    *acc = out;
    return true;
}

/* Parses a factor into OUT. */
static bool parse_factor(struct parser *ps, struct set_list *out)
{
    char name[256];
    size_t n = 0;
    bool is_ref;

    ps->p += strspn(ps->p, " \t\n");
    if (*ps->p == '(') {
        ps->p++;
        if (!parse_expr(ps, out))
            return false;
        ps->p += strspn(ps->p, " \t\n");
        if (*ps->p != ')')
            return false;
        ps->p++;
        return true;
    }
    is_ref = *ps->p == '+';
    ps->p += is_ref;
    while (ps->p[n] != '\0' && strchr(" \t\n()&|+", ps->p[n]) == NULL && n + 1 < sizeof(name))
        n++;
    if (n == 0)
        return false;
    memcpy(name, ps->p, n);
    name[n] = '\0';
    ps->p += n;
    if (is_ref) {
        yaml_node_t *ref = cfg_map_get(ps->ctx, ps->sets, name);
        char *text = NULL;
        const char *saved = ps->p;
        bool ok;
        if (ref == NULL || ps->ref_depth >= MAX_REF_DEPTH ||
            cfg_get_str(ps->ctx, ref, "matrix set", &text) != 0) {
            if (ref != NULL && ps->ref_depth >= MAX_REF_DEPTH && !ps->is_bad)
                cfg_error(ps->ctx, ps->node, "matrix: set reference '+%s' is circular", name);
            ps->is_bad = true; /* reported */
            free(text);
            return false;
        }
        ps->ref_depth++;
        ps->p = text;
        ok = parse_expr(ps, out) && ps->p[strspn(ps->p, " \t\n")] == '\0';
        ps->ref_depth--;
        ps->p = saved;
        free(text);
        return ok;
    }
    yaml_node_t *var = cfg_map_get(ps->ctx, ps->vars, name);
    char *target = NULL;
    const struct cfg_model *m;
    if (var != NULL && cfg_get_str(ps->ctx, var, "matrix.vars", &target) != 0)
        return false;
    m = cfg_find_model(ps->ctx->cfg, target != NULL ? target : name);
    free(target);
    if (m == NULL)
        return false;
    size_t index = (size_t)(m - ps->ctx->cfg->models);
    return list_push(out, &index, 1);
}

/* Parses factors joined by '&' into OUT. */
static bool parse_term(struct parser *ps, struct set_list *out)
{
    if (!parse_factor(ps, out))
        return false;
    for (;;) {
        struct set_list right = {0};
        ps->p += strspn(ps->p, " \t\n");
        if (*ps->p != '&')
            return true;
        ps->p++;
        bool ok = parse_factor(ps, &right) && cross(out, &right);
        list_clear(&right);
        if (!ok)
            return false;
    }
}

static bool parse_expr(struct parser *ps, struct set_list *out)
{
    for (;;) {
        struct set_list term = {0};
        bool ok = parse_term(ps, &term);
        for (size_t i = 0; ok && i < term.n; i++)
            ok = list_push(out, term.items[i].models, term.items[i].n);
        list_clear(&term);
        if (!ok)
            return false;
        ps->p += strspn(ps->p, " \t\n");
        if (*ps->p != '|')
            return true;
        ps->p++;
    }
}

/* Reads evict_costs (vars or model ids) into M->evict_costs (default 1). */
static void read_costs(struct cfg_ctx *ctx, yaml_node_t *matrix, struct cfg_matrix *m)
{
    yaml_node_t *costs = cfg_map_get(ctx, matrix, "evict_costs");
    yaml_node_t *vars = cfg_map_get(ctx, matrix, "vars");
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    for (size_t i = 0; i < ctx->cfg->n_models; i++)
        m->evict_costs[i] = 1;
    if (costs == NULL || costs->type != YAML_MAPPING_NODE ||
        cfg_map_pairs(ctx, costs, &pairs, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *name = cfg_key_text(cfg_node(ctx, pairs[i].key));
        yaml_node_t *var = cfg_map_get(ctx, vars, name);
        char *target = NULL;
        long long cost = 1;
        if (var != NULL && cfg_get_str(ctx, var, "matrix.vars", &target) != 0)
            continue;
        const struct cfg_model *model = cfg_find_model(ctx->cfg, target != NULL ? target : name);
        if (model != NULL &&
            cfg_get_int(ctx, cfg_node(ctx, pairs[i].value), "evict_costs", 1, 1000000000,
                        &cost) == 0)
            m->evict_costs[model - ctx->cfg->models] = (int)cost;
        free(target);
    }
    free(pairs);
}

void cfg_matrix_build(struct cfg_ctx *ctx, yaml_node_t *matrix)
{
    struct cfg_matrix *m = &ctx->cfg->matrix;
    yaml_node_t *sets = cfg_map_get(ctx, matrix, "sets");
    yaml_node_pair_t *pairs = NULL;
    struct set_list all = {0};
    size_t n = 0;

    m->evict_costs = calloc(ctx->cfg->n_models > 0 ? ctx->cfg->n_models : 1, sizeof(int));
    if (m->evict_costs == NULL || cfg_map_pairs(ctx, sets, &pairs, &n) != 0) {
        ctx->is_oom = true;
        goto out;
    }
    read_costs(ctx, matrix, m);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *value = cfg_node(ctx, pairs[i].value);
        struct parser ps = {ctx, value, cfg_map_get(ctx, matrix, "vars"), sets, NULL, 0, false};
        char *text = NULL;
        if (cfg_get_str(ctx, value, "matrix set", &text) != 0)
            continue;
        ps.p = text;
        if ((!parse_expr(&ps, &all) || ps.p[strspn(ps.p, " \t\n")] != '\0') && !ps.is_bad)
            cfg_error(ctx, value, "matrix: set '%s' cannot be expanded (at most %d sets)",
                      cfg_key_text(cfg_node(ctx, pairs[i].key)), MAX_SETS);
        free(text);
    }
    m->sets = all.items;
    m->n_sets = all.n;
    m->is_active = true;
out:
    free(pairs);
}

void cfg_matrix_clear(struct cfg_matrix *m)
{
    for (size_t i = 0; i < m->n_sets; i++)
        free(m->sets[i].models);
    free(m->sets);
    free(m->evict_costs);
    memset(m, 0, sizeof(*m));
}

bool cfg_matrix_set_has(const struct cfg_model_set *set, size_t model)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->models[i] == model)
            return true;
    return false;
}
