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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS 4096   /* concrete sets per expression and in all */
#define MAX_REF_DEPTH 16 /* +ref nesting */
#define MAX_WORK 200000  /* factors parsed per expression, +ref inlining included */

/* A list of concrete sets being built. */
struct set_list {
    struct cfg_model_set *items;
    size_t n;
};

/* NAME → TEXT pairs read from the YAML once (expansion never touches the document again). */
struct named {
    char **names;
    char **texts;
    size_t n;
};

struct parser {
    struct cfg_ctx *ctx;
    yaml_node_t *node; /* for error positions */
    const struct named *vars, *sets;
    const char *p;
    int ref_depth;
    char refs[MAX_REF_DEPTH][256]; /* the +refs being expanded, to find cycles */
    long work;
    bool is_bad;
};

static bool parse_expr(struct parser *ps, struct set_list *out);

/* Returns NAME's text in L, or NULL. */
static const char *lookup(const struct named *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return l->texts[i];
    return NULL;
}

/* Reads the string values of mapping MAP into L (entries that are no strings are skipped:
 * the validation reported them). Returns false when out of memory. */
static bool read_named(struct cfg_ctx *ctx, yaml_node_t *map, const char *what, struct named *l)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return true;
    if (cfg_map_pairs(ctx, map, &pairs, &n) != 0)
        return false;
    l->names = calloc(n > 0 ? n : 1, sizeof(*l->names));
    l->texts = calloc(n > 0 ? n : 1, sizeof(*l->texts));
    for (size_t i = 0; l->names != NULL && l->texts != NULL && i < n; i++) {
        char *text = NULL;
        if (cfg_get_str(ctx, cfg_node(ctx, pairs[i].value), what, &text) != 0)
            continue;
        l->names[l->n] = strdup(cfg_key_text(cfg_node(ctx, pairs[i].key)));
        l->texts[l->n++] = text;
    }
    free(pairs);
    return l->names != NULL && l->texts != NULL;
}

/* Frees what read_named() read. */
static void named_clear(struct named *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->texts[i]);
    }
    free(l->names);
    free(l->texts);
}

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

    if (++ps->work > MAX_WORK) {
        if (!ps->is_bad)
            cfg_error(ps->ctx, ps->node, "matrix: set expression too complex to expand");
        ps->is_bad = true;
        return false;
    }
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
        const char *text = lookup(ps->sets, name), *saved = ps->p;
        bool ok, is_cycle = false;
        for (int i = 0; i < ps->ref_depth; i++)
            is_cycle = is_cycle || strcmp(ps->refs[i], name) == 0;
        if (text == NULL || is_cycle || ps->ref_depth >= MAX_REF_DEPTH) {
            if (!ps->is_bad && is_cycle)
                cfg_error(ps->ctx, ps->node, "matrix: set reference '+%s' is circular", name);
            else if (!ps->is_bad && text != NULL)
                cfg_error(ps->ctx, ps->node, "matrix: set references nest more than %d deep",
                          MAX_REF_DEPTH);
            ps->is_bad = true; /* reported (an unknown set was reported by the validation) */
            return false;
        }
        snprintf(ps->refs[ps->ref_depth], sizeof(ps->refs[0]), "%s", name);
        ps->ref_depth++;
        ps->p = text;
        ok = parse_expr(ps, out) && ps->p[strspn(ps->p, " \t\n")] == '\0';
        ps->ref_depth--;
        ps->p = saved;
        return ok;
    }
    const char *target = lookup(ps->vars, name);
    const struct cfg_model *m = cfg_find_model(ps->ctx->cfg, target != NULL ? target : name);
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
    struct named vars = {0}, texts = {0};
    struct set_list all = {0};

    m->evict_costs = calloc(ctx->cfg->n_models > 0 ? ctx->cfg->n_models : 1, sizeof(int));
    m->n_costs = ctx->cfg->n_models;
    if (m->evict_costs == NULL ||
        !read_named(ctx, cfg_map_get(ctx, matrix, "vars"), "matrix.vars", &vars) ||
        !read_named(ctx, sets, "matrix set", &texts)) {
        ctx->is_oom = true;
        goto out;
    }
    read_costs(ctx, matrix, m);
    for (size_t i = 0; i < texts.n; i++) {
        yaml_node_t *value = cfg_map_get(ctx, sets, texts.names[i]);
        struct parser ps = {.ctx = ctx, .node = value, .vars = &vars, .sets = &texts};

        snprintf(ps.refs[0], sizeof(ps.refs[0]), "%s", texts.names[i]); /* naming itself */
        ps.ref_depth = 1;
        ps.p = texts.texts[i];
        if ((!parse_expr(&ps, &all) || ps.p[strspn(ps.p, " \t\n")] != '\0') && !ps.is_bad)
            cfg_error(ctx, value, "matrix: set '%s' cannot be expanded (at most %d sets)",
                      texts.names[i], MAX_SETS);
    }
    m->sets = all.items;
    m->n_sets = all.n;
    m->is_active = true;
out:
    named_clear(&vars);
    named_clear(&texts);
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
