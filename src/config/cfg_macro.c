/*
 * Macros, with llama-swap's semantics:
 * - ${env.NAME} is replaced by the environment variable first (unset is an error), in every
 *   scalar value, before the value's type is resolved (as llama-swap does on the raw text).
 * - Declared macros are ordered; a macro's value may use only macros declared before it, so
 *   cycles cannot exist and a forward reference is an error. A model's macros override
 *   globals of the same name in place, and new ones come after the globals. MODEL_ID comes
 *   first in a model's scope.
 * - A value that is exactly "${NAME}" takes the macro's type (number, bool); anything else
 *   interpolates the macro's text (numbers formatted like Go's %v).
 * - ${PORT} is only known inside a model whose cmd uses it; ${PID} stays literal in
 *   cmdStop; any other ${NAME} that names no macro is an error. Text like ${a.b} or ${ x }
 *   is not a macro reference and stays literal.
 */
#include "cfg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char *data;
    size_t len, cap;
};

/* Appends N bytes to B within the expansion cap; returns -1 when the cap is hit. */
static int buf_add(struct buf *b, const char *s, size_t n, bool *is_oom)
{
    if (b->len + n > CFG_MAX_EXPANSION_BYTES)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 64 : b->cap;
        char *d;
        while (cap < b->len + n + 1)
            cap *= 2;
        d = realloc(b->data, cap);
        if (d == NULL) {
            *is_oom = true;
            return -1;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Returns whether C may appear in a macro name ([a-zA-Z0-9_-]). */
static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Returns the length of the macro name at P if "${name}" starts at P-2, else 0. */
static size_t ref_name_len(const char *p)
{
    size_t n = 0;

    while (is_name_char(p[n]))
        n++;
    return n > 0 && p[n] == '}' ? n : 0;
}

/* Returns whether TEXT contains ${NAME}. */
bool cfg_has_macro(const char *text, const char *name)
{
    size_t len = strlen(name);

    for (const char *p = strstr(text, "${"); p != NULL; p = strstr(p + 2, "${"))
        if (strncmp(p + 2, name, len) == 0 && p[2 + len] == '}')
            return true;
    return false;
}

/* Replaces ${env.NAME} in *TEXT with the environment's values (text replaced in place). */
int cfg_env_substitute(struct cfg_ctx *ctx, const yaml_node_t *node, char **text)
{
    struct buf b = {0};
    const char *p = *text, *q;
    int rc = -1;

    if (strstr(p, "${env.") == NULL)
        return 0;
    while ((q = strstr(p, "${env.")) != NULL) {
        const char *name = q + 6, *value;
        size_t n = 0;
        char var[256];

        while (is_name_char(name[n]) && name[n] != '-')
            n++;
        if (n == 0 || n >= sizeof(var) || name[n] != '}' || (name[0] >= '0' && name[0] <= '9')) {
            if (buf_add(&b, p, (size_t)(q - p) + 6, &ctx->is_oom) != 0)
                goto too_long;
            p = q + 6;
            continue;
        }
        memcpy(var, name, n);
        var[n] = '\0';
        value = getenv(var);
        if (value == NULL) {
            cfg_error(ctx, node, "environment variable '%s' is not set", var);
            goto out;
        }
        if (strpbrk(value, "\r\n") != NULL) {
            cfg_error(ctx, node, "environment variable '%s' contains newlines", var);
            goto out;
        }
        if (buf_add(&b, p, (size_t)(q - p), &ctx->is_oom) != 0 ||
            buf_add(&b, value, strlen(value), &ctx->is_oom) != 0)
            goto too_long;
        p = name + n + 1;
    }
    if (buf_add(&b, p, strlen(p), &ctx->is_oom) != 0)
        goto too_long;
    free(*text);
    *text = b.data;
    b.data = NULL;
    rc = 0;
    goto out;
too_long:
    if (!ctx->is_oom)
        cfg_error(ctx, node, "value longer than %u bytes after substitution",
                  CFG_MAX_EXPANSION_BYTES);
out:
    free(b.data);
    return rc;
}

/* Validates a macro's name and value the way llama-swap does; returns whether it is valid. */
static bool macro_valid(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, const char *name,
                        const struct cfg_scalar *v)
{
    size_t len = strlen(name);

    if (len >= 64) {
        cfg_error(ctx, key, "macro name '%.64s...' exceeds the maximum length of 63", name);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(name[i])) {
            cfg_error(ctx, key, "macro name '%s' contains invalid characters (allowed: %s)", name,
                      "a-z A-Z 0-9 _ -");
            return false;
        }
    }
    if (len == 0 || strcmp(name, "PID") == 0 || strcmp(name, "PORT") == 0 ||
        strcmp(name, "MODEL_ID") == 0) {
        cfg_error(ctx, key, "macro name '%s' is reserved", name);
        return false;
    }
    if (v->kind == CFG_NULL) {
        cfg_error(ctx, value, "macro '%s' must be a string, number or boolean", name);
        return false;
    }
    if (v->kind == CFG_STR && cfg_has_macro(v->text, name)) {
        cfg_error(ctx, value, "macro '%s' contains a self-reference", name);
        return false;
    }
    return true;
}

/* Parses a `macros:` mapping into OUT in declaration order. */
void cfg_macros_parse(struct cfg_ctx *ctx, yaml_node_t *map, struct cfg_macros *out)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (cfg_is_null(map) || !cfg_expect(ctx, map, YAML_MAPPING_NODE, "macros"))
        return;
    if (cfg_map_pairs(ctx, map, &pairs, &n) != 0)
        goto out;
    out->items = calloc(n > 0 ? n : 1, sizeof(*out->items));
    if (out->items == NULL) {
        ctx->is_oom = true;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key = cfg_node(ctx, pairs[i].key), *value = cfg_node(ctx, pairs[i].value);
        const char *name = cfg_key_text(key);
        struct cfg_macro *m = &out->items[out->len];

        if (value->type != YAML_SCALAR_NODE) {
            cfg_error(ctx, value, "macro '%s' must be a string, number or boolean", name);
            continue;
        }
        if (cfg_read_raw(ctx, value, &m->value) != 0)
            continue;
        if (!macro_valid(ctx, key, value, name, &m->value) || (m->name = strdup(name)) == NULL) {
            cfg_scalar_clear(&m->value);
            continue;
        }
        out->len++;
    }
out:
    free(pairs);
}

/* Frees a macro list. */
void cfg_macros_clear(struct cfg_macros *m)
{
    for (size_t i = 0; i < m->len; i++) {
        free(m->items[i].name);
        cfg_scalar_clear(&m->items[i].value);
    }
    free(m->items);
    m->items = NULL;
    m->len = 0;
}

/*
 * Builds a scope: MODEL_ID (when MODEL_ID is set; its value is the caller's
 * MODEL_ID_VALUE), the globals, then OWN overriding in place or appended. Borrowing only.
 */
int cfg_scope_init(struct cfg_scope *scope, const struct cfg_macros *globals,
                   const struct cfg_macros *own, const char *model_id,
                   struct cfg_scalar *model_id_value)
{
    size_t cap = 1 + globals->len + (own != NULL ? own->len : 0);

    memset(scope, 0, sizeof(*scope));
    scope->model_id = model_id;
    scope->refs = calloc(cap, sizeof(*scope->refs));
    if (scope->refs == NULL)
        return -1;
    if (model_id != NULL)
        scope->refs[scope->len++] = (struct cfg_mref){"MODEL_ID", model_id_value};
    for (size_t i = 0; i < globals->len; i++)
        scope->refs[scope->len++] =
            (struct cfg_mref){globals->items[i].name, &globals->items[i].value};
    for (size_t i = 0; own != NULL && i < own->len; i++) {
        size_t j = 0;
        while (j < scope->len && strcmp(scope->refs[j].name, own->items[i].name) != 0)
            j++;
        scope->refs[j] = (struct cfg_mref){own->items[i].name, &own->items[i].value};
        if (j == scope->len)
            scope->len++;
    }
    return 0;
}

/* Frees a scope's table (the macros it points to are not owned). */
void cfg_scope_clear(struct cfg_scope *scope)
{
    free(scope->refs);
    memset(scope, 0, sizeof(*scope));
}

/* Returns the index of NAME (N bytes) in the scope, or -1. */
static long find_ref(const struct cfg_scope *scope, const char *name, size_t n)
{
    for (size_t i = 0; i < scope->len; i++)
        if (strlen(scope->refs[i].name) == n && strncmp(scope->refs[i].name, name, n) == 0)
            return (long)i;
    return -1;
}

struct expander {
    struct cfg_ctx *ctx;
    const yaml_node_t *node;
    const struct cfg_scope *scope;
    struct buf out;
};

static int expand_text(struct expander *e, const char *text, size_t limit, int depth);

/* Expands one reference ${NAME} (N bytes) visible below LIMIT into E->out. */
static int expand_ref(struct expander *e, const char *name, size_t n, size_t limit, int depth)
{
    long idx = find_ref(e->scope, name, n);
    char num[32];

    if (idx >= 0 && (size_t)idx < limit) {
        const struct cfg_scalar *v = e->scope->refs[idx].value;
        if (v->kind == CFG_STR)
            return expand_text(e, v->text, (size_t)idx, depth + 1);
        return buf_add(&e->out, v->text, strlen(v->text), &e->ctx->is_oom) != 0 ? -2 : 0;
    }
    if (idx >= 0) {
        cfg_error(e->ctx, e->node, "macro '${%.*s}' is used before it is defined", (int)n, name);
        return -1;
    }
    if (n == 4 && strncmp(name, "PORT", 4) == 0 && e->scope->port != 0) {
        if (e->scope->port < 0)
            return buf_add(&e->out, "${PORT}", 7, &e->ctx->is_oom) != 0 ? -2 : 0;
        snprintf(num, sizeof(num), "%d", e->scope->port);
        return buf_add(&e->out, num, strlen(num), &e->ctx->is_oom) != 0 ? -2 : 0;
    }
    if ((n == 3 && strncmp(name, "PID", 3) == 0 && e->scope->allow_pid) || e->scope->port < 0) {
        /* ${PID} in cmdStop; or the quiet ${PORT} detection pass, which leaves errors to the
         * real pass */
        if (buf_add(&e->out, name - 2, n + 3, &e->ctx->is_oom) != 0)
            return -2;
        return 0;
    }
    if (n == 4 && strncmp(name, "PORT", 4) == 0 && e->scope->model_id != NULL)
        cfg_error(e->ctx, e->node, "${PORT} is only available when the model's cmd uses ${PORT}");
    else
        cfg_error(e->ctx, e->node, "unknown macro '${%.*s}'", (int)n, name);
    return -1;
}

/* Appends TEXT to E->out with macros below LIMIT expanded. 0, -1 (error recorded), -2 cap. */
static int expand_text(struct expander *e, const char *text, size_t limit, int depth)
{
    const char *p = text, *q;

    if (depth > CFG_MAX_MACRO_DEPTH) {
        cfg_error(e->ctx, e->node, "macro expansion deeper than %d levels", CFG_MAX_MACRO_DEPTH);
        return -1;
    }
    while ((q = strstr(p, "${")) != NULL) {
        size_t n = ref_name_len(q + 2);
        int rc;

        if (buf_add(&e->out, p, (size_t)(q - p), &e->ctx->is_oom) != 0)
            return -2;
        if (n == 0) {
            if (buf_add(&e->out, "${", 2, &e->ctx->is_oom) != 0)
                return -2;
            p = q + 2;
            continue;
        }
        rc = expand_ref(e, q + 2, n, limit, depth);
        if (rc != 0)
            return rc;
        p = q + 2 + n + 1;
    }
    return buf_add(&e->out, p, strlen(p), &e->ctx->is_oom) != 0 ? -2 : 0;
}

/* Resolves a value that is exactly "${NAME}" to the macro's typed value; 1 if not direct. */
static int expand_direct(struct expander *e, const char *text, size_t limit, int depth,
                         struct cfg_scalar *out)
{
    size_t n = strncmp(text, "${", 2) == 0 ? ref_name_len(text + 2) : 0;
    long idx;
    const struct cfg_scalar *v;

    if (n == 0 || text[2 + n + 1] != '\0' || depth > CFG_MAX_MACRO_DEPTH)
        return 1;
    idx = find_ref(e->scope, text + 2, n);
    if (idx < 0 && n == 4 && strncmp(text + 2, "PORT", 4) == 0 && e->scope->port > 0) {
        char num[32];
        snprintf(num, sizeof(num), "%d", e->scope->port);
        cfg_resolve_plain(num, out);
        return out->text == NULL ? -2 : 0;
    }
    if (idx < 0 || (size_t)idx >= limit)
        return 1;
    v = e->scope->refs[idx].value;
    if (v->kind == CFG_STR) {
        int rc = expand_direct(e, v->text, (size_t)idx, depth + 1, out);
        if (rc != 1)
            return rc;
        rc = expand_text(e, v->text, (size_t)idx, depth + 1);
        if (rc != 0)
            return rc;
        out->kind = CFG_STR;
        out->text = e->out.data != NULL ? e->out.data : strdup("");
        e->out.data = NULL;
        return out->text == NULL ? -2 : 0;
    }
    *out = *v;
    out->text = strdup(v->text);
    return out->text == NULL ? -2 : 0;
}

/* Expands macros of the current scope in S (a string scalar read from NODE), in place. */
int cfg_expand(struct cfg_ctx *ctx, const yaml_node_t *node, struct cfg_scalar *s)
{
    struct expander e = {ctx, node, ctx->scope, {0}};
    struct cfg_scalar out = {0};
    int rc;

    if (e.scope == NULL || strstr(s->text, "${") == NULL)
        return 0;
    rc = expand_direct(&e, s->text, e.scope->len, 0, &out);
    if (rc == 1) {
        rc = expand_text(&e, s->text, e.scope->len, 0);
        if (rc == 0) {
            out.kind = CFG_STR;
            out.text = e.out.data != NULL ? e.out.data : strdup("");
            e.out.data = NULL;
            rc = out.text == NULL ? -2 : 0;
        }
    }
    if (rc == -2 && !ctx->is_oom)
        cfg_error(ctx, node, "macro expansion longer than %u bytes", CFG_MAX_EXPANSION_BYTES);
    free(e.out.data);
    if (rc != 0) {
        cfg_scalar_clear(&out);
        return -1;
    }
    cfg_scalar_clear(s);
    *s = out;
    return 0;
}
