/*
 * YAML node access for the config loader: error/warning collection with file:line:col,
 * mapping iteration with merge keys (<<) and duplicate-key detection, typed reads (string,
 * integer, boolean, list, JSON) and the table-driven walk over a mapping's keys.
 */
#include "cfg_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends "name:line:col: message" to LIST (errors or warnings). */
static void add_message(struct cfg_ctx *ctx, struct cfg_strv *list, const yaml_node_t *node,
                        const char *fmt, va_list ap)
{
    char msg[1024];
    char *line = NULL;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (node != NULL) {
        if (asprintf(&line, "%s:%zu:%zu: %s", ctx->name, node->start_mark.line + 1,
                     node->start_mark.column + 1, msg) < 0)
            line = NULL;
    } else if (asprintf(&line, "%s: %s", ctx->name, msg) < 0) {
        line = NULL;
    }
    if (line == NULL || cfg_strv_push_take(list, line) != 0)
        ctx->is_oom = true;
}

/* Records an error at NODE (NULL: no position). */
void cfg_error(struct cfg_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;

    if (ctx->quiet > 0) {
        ctx->n_quiet_errors++;
        return;
    }
    if (ctx->errors.len >= CFG_MAX_ERRORS)
        return;
    va_start(ap, fmt);
    add_message(ctx, &ctx->errors, node, fmt, ap);
    va_end(ap);
}

/* Records a warning at NODE. */
void cfg_warn(struct cfg_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;

    if (ctx->quiet > 0 || ctx->cfg->warnings.len >= CFG_MAX_ERRORS)
        return;
    va_start(ap, fmt);
    add_message(ctx, &ctx->cfg->warnings, node, fmt, ap);
    va_end(ap);
}

/* Appends S to V, taking ownership of S (freed on failure). */
int cfg_strv_push_take(struct cfg_strv *v, char *s)
{
    char **items;

    if (s == NULL)
        return -1;
    items = realloc(v->items, (v->len + 2) * sizeof(*items));
    if (items == NULL) {
        free(s);
        return -1;
    }
    v->items = items;
    v->items[v->len++] = s;
    v->items[v->len] = NULL;
    return 0;
}

/* Appends a copy of S to V. */
int cfg_strv_push(struct cfg_strv *v, const char *s)
{
    return cfg_strv_push_take(v, strdup(s));
}

/* Returns whether V holds S. */
bool cfg_strv_has(const struct cfg_strv *v, const char *s)
{
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->items[i], s) == 0)
            return true;
    return false;
}

/* Frees every string of V and empties it. */
void cfg_strv_clear(struct cfg_strv *v)
{
    for (size_t i = 0; i < v->len; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->len = 0;
}

/* Records PREFIX+KEY (or KEY) once in cfg->inactive_keys. */
void cfg_note_inactive(struct cfg_ctx *ctx, const char *prefix, const char *key)
{
    char *name = NULL;

    if (ctx->quiet > 0)
        return;
    if (asprintf(&name, "%s%s", prefix != NULL ? prefix : "", key) < 0) {
        ctx->is_oom = true;
        return;
    }
    if (cfg_strv_has(&ctx->cfg->inactive_keys, name)) {
        free(name);
        return;
    }
    if (cfg_strv_push_take(&ctx->cfg->inactive_keys, name) != 0)
        ctx->is_oom = true;
}

/* Returns the node at INDEX (libyaml's 1-based index) or NULL. */
yaml_node_t *cfg_node(struct cfg_ctx *ctx, int index)
{
    return yaml_document_get_node(&ctx->doc, index);
}

/* Returns the text of a scalar key, or NULL for a collection key. */
const char *cfg_key_text(const yaml_node_t *key)
{
    if (key == NULL || key->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)key->data.scalar.value;
}

/* Returns whether NODE is a YAML null (~, null, or nothing). */
bool cfg_is_null(const yaml_node_t *node)
{
    const char *t;

    if (node == NULL)
        return true;
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    t = (const char *)node->data.scalar.value;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/* Names a node type for messages. */
static const char *type_name(const yaml_node_t *node)
{
    if (node->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (node->type == YAML_SEQUENCE_NODE)
        return "a list";
    return "a scalar";
}

/* Checks NODE's type, recording "expected WHAT" otherwise. */
bool cfg_expect(struct cfg_ctx *ctx, yaml_node_t *node, yaml_node_type_t type, const char *what)
{
    static const char *const names[] = {"", "a scalar", "a list", "a mapping"};

    if (node->type == type)
        return true;
    cfg_error(ctx, node, "%s%sexpected %s, got %s", what != NULL ? what : "",
              what != NULL ? ": " : "", names[type], type_name(node));
    return false;
}

struct slot {
    const char *key;
    size_t pos;
    bool is_explicit;
    bool is_dropped;
    yaml_node_pair_t pair;
};

/* Orders slots by key text then position. */
static int slot_order(const void *a, const void *b)
{
    const struct slot *sa = a, *sb = b;
    int c = strcmp(sa->key, sb->key);

    if (c != 0)
        return c;
    if (sa->is_explicit != sb->is_explicit)
        return sa->is_explicit ? -1 : 1; /* explicit keys override merged ones */
    return sa->pos < sb->pos ? -1 : sa->pos > sb->pos;
}

/* Orders slots by position. */
static int slot_pos(const void *a, const void *b)
{
    const struct slot *sa = a, *sb = b;
    return sa->pos < sb->pos ? -1 : sa->pos > sb->pos;
}

/* Appends MAP's pairs to *SLOTS, following merge keys into mappings (depth-capped). */
static int collect_slots(struct cfg_ctx *ctx, yaml_node_t *map, bool is_explicit, int depth,
                         struct slot **slots, size_t *n, size_t *cap)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = cfg_node(ctx, p->key), *value = cfg_node(ctx, p->value);
        const char *text = cfg_key_text(key);

        if (--ctx->visits_left < 0) {
            cfg_error(ctx, map, "document too complex (too many aliased nodes)");
            return -1;
        }
        if (text == NULL) {
            cfg_error(ctx, key, "mapping keys must be scalars");
            continue;
        }
        if (strcmp(text, "<<") == 0 && key->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            depth < CFG_MAX_DEPTH) {
            if (value->type == YAML_MAPPING_NODE) {
                if (collect_slots(ctx, value, false, depth + 1, slots, n, cap) != 0)
                    return -1;
                continue;
            }
            if (value->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *it = value->data.sequence.items.start;
                     it < value->data.sequence.items.top; it++) {
                    yaml_node_t *m = cfg_node(ctx, *it);
                    if (m->type != YAML_MAPPING_NODE) {
                        cfg_error(ctx, m, "merge key '<<' needs mappings");
                        continue;
                    }
                    if (collect_slots(ctx, m, false, depth + 1, slots, n, cap) != 0)
                        return -1;
                }
                continue;
            }
            cfg_error(ctx, value, "merge key '<<' needs a mapping or a list of mappings");
            continue;
        }
        if (*n == *cap) {
            size_t ncap = *cap == 0 ? 16 : *cap * 2;
            struct slot *s = realloc(*slots, ncap * sizeof(*s));
            if (s == NULL) {
                ctx->is_oom = true;
                return -1;
            }
            *slots = s;
            *cap = ncap;
        }
        (*slots)[*n] = (struct slot){text, *n, is_explicit, false, *p};
        (*n)++;
    }
    return 0;
}

/* Drops overridden merged keys and reports duplicate explicit keys. */
static void dedupe_slots(struct cfg_ctx *ctx, struct slot *slots, size_t n)
{
    size_t first = 0;

    if (n < 2)
        return; /* nothing to dedupe (and SLOTS may be NULL for an empty mapping) */
    qsort(slots, n, sizeof(*slots), slot_order);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(slots[i].key, slots[first].key) != 0) {
            first = i;
            continue;
        }
        slots[i].is_dropped = true;
        if (slots[i].is_explicit && slots[first].is_explicit) {
            yaml_node_t *dup = cfg_node(ctx, slots[i].pair.key);
            yaml_node_t *orig = cfg_node(ctx, slots[first].pair.key);
            cfg_error(ctx, dup, "duplicate key '%s' (first defined at line %zu)", slots[i].key,
                      orig->start_mark.line + 1);
        }
    }
    qsort(slots, n, sizeof(*slots), slot_pos);
}

/*
 * Returns MAP's effective pairs in file order: explicit keys first, then keys merged in with
 * '<<' that no explicit key overrides. *PAIRS is malloc'ed (caller frees). Returns -1 on
 * a recorded error that stops iteration.
 */
int cfg_map_pairs(struct cfg_ctx *ctx, yaml_node_t *map, yaml_node_pair_t **pairs, size_t *n)
{
    struct slot *slots = NULL;
    size_t len = 0, cap = 0, k = 0;
    int rc = -1;

    *pairs = NULL;
    *n = 0;
    if (collect_slots(ctx, map, true, 0, &slots, &len, &cap) != 0)
        goto out;
    dedupe_slots(ctx, slots, len);
    *pairs = malloc((len > 0 ? len : 1) * sizeof(**pairs));
    if (*pairs == NULL) {
        ctx->is_oom = true;
        goto out;
    }
    for (size_t i = 0; i < len; i++)
        if (!slots[i].is_dropped)
            (*pairs)[k++] = slots[i].pair;
    *n = k;
    rc = 0;
out:
    free(slots);
    return rc;
}

/* Returns the value of KEY in MAP (merge keys included) or NULL. */
yaml_node_t *cfg_map_get(struct cfg_ctx *ctx, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *pairs = NULL;
    yaml_node_t *found = NULL;
    size_t n = 0;

    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    ctx->quiet++;
    if (cfg_map_pairs(ctx, map, &pairs, &n) == 0) {
        for (size_t i = 0; i < n && found == NULL; i++)
            if (strcmp(cfg_key_text(cfg_node(ctx, pairs[i].key)), key) == 0)
                found = cfg_node(ctx, pairs[i].value);
    }
    ctx->quiet--;
    free(pairs);
    return found;
}

/* Reads a string (any scalar's text). Returns 0, 1 when null/absent, -1 on error. */
int cfg_get_str(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, char **out)
{
    struct cfg_scalar s;

    *out = NULL;
    if (node->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, node, "%s: expected a string, got %s", what, type_name(node));
        return -1;
    }
    if (cfg_read_scalar(ctx, node, &s) != 0)
        return -1;
    if (s.kind == CFG_NULL) {
        cfg_scalar_clear(&s);
        return 1;
    }
    *out = s.text;
    return 0;
}

/* Reads an integer within [MIN, MAX]. Returns 0, 1 when null/absent, -1 on error. */
int cfg_get_int(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, long long min,
                long long max, long long *out)
{
    struct cfg_scalar s;
    int rc = -1;

    if (node->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, node, "%s: expected an integer, got %s", what, type_name(node));
        return -1;
    }
    if (cfg_read_scalar(ctx, node, &s) != 0)
        return -1;
    if (s.kind == CFG_NULL)
        rc = 1;
    else if (s.kind != CFG_INT)
        cfg_error(ctx, node, "%s: expected an integer, got '%s'", what, s.text);
    else if (s.i < min)
        cfg_error(ctx, node, "%s: must be >= %lld, got %lld", what, min, s.i);
    else if (s.i > max)
        cfg_error(ctx, node, "%s: must be <= %lld, got %lld", what, max, s.i);
    else
        *out = s.i, rc = 0;
    cfg_scalar_clear(&s);
    return rc;
}

/* Reads a boolean (also y/yes/on/n/no/off, as yaml.v3 does for typed booleans). */
int cfg_get_bool(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, bool *out)
{
    static const char *const yes[] = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"n", "N", "no", "No", "NO", "off", "Off", "OFF"};
    struct cfg_scalar s;
    int rc = -1;

    if (node->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, node, "%s: expected a boolean, got %s", what, type_name(node));
        return -1;
    }
    if (cfg_read_scalar(ctx, node, &s) != 0)
        return -1;
    if (s.kind == CFG_NULL)
        rc = 1;
    else if (s.kind == CFG_BOOL)
        *out = s.b, rc = 0;
    for (size_t i = 0; rc == -1 && s.kind == CFG_STR && i < 8; i++) {
        if (strcmp(s.text, yes[i]) == 0)
            *out = true, rc = 0;
        else if (strcmp(s.text, no[i]) == 0)
            *out = false, rc = 0;
    }
    if (rc == -1)
        cfg_error(ctx, node, "%s: expected a boolean, got '%s'", what, s.text);
    cfg_scalar_clear(&s);
    return rc;
}

/* Reads a list of strings into OUT (appended). Returns 0, 1 when null, -1 on error. */
int cfg_get_strv(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, struct cfg_strv *out)
{
    int rc = 0;

    if (cfg_is_null(node))
        return 1;
    if (node->type != YAML_SEQUENCE_NODE) {
        cfg_error(ctx, node, "%s: expected a list of strings, got %s", what, type_name(node));
        return -1;
    }
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        yaml_node_t *item = cfg_node(ctx, *it);
        char *text = NULL;
        int r = cfg_get_str(ctx, item, what, &text);

        if (r < 0) {
            rc = -1;
            continue;
        }
        if (cfg_strv_push_take(out, text != NULL ? text : strdup("")) != 0) {
            ctx->is_oom = true;
            return -1;
        }
    }
    return rc;
}

/* Converts a resolved scalar to JSON (caller owns), or NULL with an error recorded. */
static json_t *scalar_json(struct cfg_ctx *ctx, yaml_node_t *node)
{
    struct cfg_scalar s;
    json_t *v = NULL;

    if (cfg_read_scalar(ctx, node, &s) != 0)
        return NULL;
    if (s.kind == CFG_NULL)
        v = json_null();
    else if (s.kind == CFG_BOOL)
        v = json_boolean(s.b);
    else if (s.kind == CFG_INT)
        v = json_integer(s.i);
    else if (s.kind == CFG_FLOAT)
        v = json_real(s.f);
    else
        v = json_stringn(s.text, strlen(s.text));
    if (v == NULL)
        cfg_error(ctx, node, "value '%s' cannot be represented in JSON", s.text);
    cfg_scalar_clear(&s);
    return v;
}

/* Converts a mapping's pairs into a JSON object. */
static json_t *mapping_json(struct cfg_ctx *ctx, yaml_node_t *node, int depth)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;
    json_t *obj = json_object();
    bool is_ok = obj != NULL;

    if (!is_ok || cfg_map_pairs(ctx, node, &pairs, &n) != 0)
        is_ok = false;
    for (size_t i = 0; is_ok && i < n; i++) {
        json_t *v = cfg_get_json(ctx, cfg_node(ctx, pairs[i].value), depth + 1);
        if (v == NULL ||
            json_object_set_new(obj, cfg_key_text(cfg_node(ctx, pairs[i].key)), v) != 0)
            is_ok = false;
    }
    free(pairs);
    if (!is_ok) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Converts any node to JSON with macros expanded (caller owns); NULL on a recorded error. */
json_t *cfg_get_json(struct cfg_ctx *ctx, yaml_node_t *node, int depth)
{
    json_t *arr;

    if (depth > CFG_MAX_DEPTH) {
        cfg_error(ctx, node, "nesting deeper than %d levels", CFG_MAX_DEPTH);
        return NULL;
    }
    if (--ctx->visits_left < 0) {
        cfg_error(ctx, node, "document too complex (too many aliased nodes)");
        return NULL;
    }
    if (node->type == YAML_SCALAR_NODE)
        return scalar_json(ctx, node);
    if (node->type == YAML_MAPPING_NODE)
        return mapping_json(ctx, node, depth);
    arr = json_array();
    for (yaml_node_item_t *it = node->data.sequence.items.start;
         arr != NULL && it < node->data.sequence.items.top; it++) {
        json_t *v = cfg_get_json(ctx, cfg_node(ctx, *it), depth + 1);
        if (v == NULL || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Reads one described field from VALUE into OBJ. */
static void read_field(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *value, void *obj)
{
    char *base = f->offset == CFG_NO_STORE ? NULL : (char *)obj + f->offset;
    long long i = 0;
    bool b = false;
    char *s = NULL;
    struct cfg_strv v = {0};

    if (f->type == CFG_F_FN) {
        f->fn(ctx, key, value, obj);
    } else if (f->type == CFG_F_STR) {
        if (cfg_get_str(ctx, value, f->key, &s) == 0 && base != NULL) {
            free(*(char **)base);
            *(char **)base = s;
            s = NULL;
        }
    } else if (f->type == CFG_F_INT) {
        if (cfg_get_int(ctx, value, f->key, f->min, f->max, &i) == 0 && base != NULL)
            *(int *)base = (int)i;
    } else if (f->type == CFG_F_BOOL) {
        if (cfg_get_bool(ctx, value, f->key, &b) == 0 && base != NULL)
            *(bool *)base = b;
    } else if (f->type == CFG_F_STRV) {
        if (cfg_get_strv(ctx, value, f->key, &v) == 0 && base != NULL) {
            cfg_strv_clear((struct cfg_strv *)base);
            *(struct cfg_strv *)base = v;
            v = (struct cfg_strv){0};
        }
    } else if (f->type == CFG_F_MAP) {
        if (!cfg_is_null(value))
            (void)cfg_expect(ctx, value, YAML_MAPPING_NODE, f->key);
    }
    free(s);
    cfg_strv_clear(&v);
}

/*
 * Reads MAP's keys with FIELDS (terminated by a NULL key) into OBJ. Unknown keys are
 * warnings; keys flagged inactive are recorded as INACTIVE_PREFIX + key.
 */
void cfg_walk(struct cfg_ctx *ctx, yaml_node_t *map, const struct cfg_field *fields, void *obj,
              const char *inactive_prefix)
{
    yaml_node_pair_t *pairs = NULL;
    size_t n = 0;

    if (cfg_is_null(map) || !cfg_expect(ctx, map, YAML_MAPPING_NODE, NULL))
        return;
    if (cfg_map_pairs(ctx, map, &pairs, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *key = cfg_node(ctx, pairs[i].key), *value = cfg_node(ctx, pairs[i].value);
        const char *name = cfg_key_text(key);
        const struct cfg_field *f = fields;

        while (f->key != NULL && strcmp(f->key, name) != 0)
            f++;
        if (f->key == NULL) {
            cfg_warn(ctx, key, "unknown key '%s'", name);
            continue;
        }
        if (f->flags & CFG_F_INACTIVE)
            cfg_note_inactive(ctx, inactive_prefix, name);
        read_field(ctx, f, key, value, obj);
    }
out:
    free(pairs);
}
