/*
 * The tenant sections of the config: `auth` (who may call the API, with which limits) and
 * `storage` (where keys, usage and logs are kept).
 */
#include "cfg_internal.h"
#include "ig_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 10000
#define MIN_SECRET_CHARS 16

/* Field handler: budget_tokens, a positive count of tokens (up to 2^62). */
static void key_budget(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_auth_key *k = obj;
    long long v = 0;
    (void)key;

    if (cfg_get_int(ctx, value, "budget_tokens", 0, 1ll << 62, &v) == 0)
        k->budget_tokens = (uint64_t)v;
}

/* Field handler: expires, a UTC date ("2027-01-31") or time ("2027-01-31T12:00:00Z"). */
static void key_expires(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_auth_key *k = obj;
    char *text = NULL;
    (void)key;

    if (cfg_get_str(ctx, value, "expires", &text) != 0)
        return;
    k->expires_at = ig_parse_utc(text);
    if (k->expires_at <= 0) {
        cfg_error(ctx, value, "expires: expected a UTC date like 2027-01-31 or "
                              "2027-01-31T12:00:00Z, got '%s'", text);
        k->expires_at = 0;
    }
    free(text);
}

/* Releases one key's fields. */
static void key_clear(struct cfg_auth_key *k)
{
    free(k->name);
    free(k->key);
    cfg_strv_clear(&k->models);
    memset(k, 0, sizeof(*k));
}

#define KEY_INT(name, field, max)                                                                  \
    {                                                                                              \
        name, CFG_F_INT, offsetof(struct cfg_auth_key, field), 0, max, NULL, 0                     \
    }

/* Reads one entry of auth.keys into K; checks it against the N entries before it. */
static void read_key(struct cfg_ctx *ctx, yaml_node_t *node, struct cfg_auth_key *k,
                     const struct cfg_auth_key *before, size_t n)
{
    static const struct cfg_field fields[] = {
        {"name", CFG_F_STR, offsetof(struct cfg_auth_key, name), 0, 0, NULL, 0},
        {"key", CFG_F_STR, offsetof(struct cfg_auth_key, key), 0, 0, NULL, 0},
        {"models", CFG_F_STRV, offsetof(struct cfg_auth_key, models), 0, 0, NULL, 0},
        KEY_INT("rpm", rpm, 100000000),
        KEY_INT("tpm", tpm, 2000000000),
        KEY_INT("concurrency", concurrency, 1000000),
        KEY_INT("max_tokens", max_tokens, 100000000),
        {"budget_tokens", CFG_F_FN, CFG_NO_STORE, 0, 0, key_budget, 0},
        {"expires", CFG_F_FN, CFG_NO_STORE, 0, 0, key_expires, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};

    if (!cfg_expect(ctx, node, YAML_MAPPING_NODE, "auth.keys[]"))
        return;
    cfg_walk(ctx, node, fields, k, NULL);
    if (k->name == NULL || k->name[0] == '\0') {
        cfg_error(ctx, node, "auth.keys: every key needs a name");
        return;
    }
    if (k->key == NULL || k->key[0] == '\0') {
        cfg_error(ctx, node, "auth.keys: key '%s' has no key", k->name);
        return;
    }
    if (strpbrk(k->key, " \t\r\n") != NULL)
        cfg_error(ctx, node, "auth.keys: key '%s' contains white space", k->name);
    else if (strlen(k->key) < MIN_SECRET_CHARS)
        cfg_warn(ctx, node, "auth.keys: key '%s' is shorter than %d characters: easy to guess",
                 k->name, MIN_SECRET_CHARS);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(before[i].name, k->name) == 0)
            cfg_error(ctx, node, "auth.keys: two keys are named '%s'", k->name);
        else if (strcmp(before[i].key, k->key) == 0)
            cfg_error(ctx, node, "auth.keys: keys '%s' and '%s' are the same secret",
                      before[i].name, k->name);
    }
}

/* Field handler: auth.keys, a list of keys with their limits. */
static void auth_keys(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_auth *auth = obj;
    (void)key;

    if (cfg_is_null(value) || !cfg_expect(ctx, value, YAML_SEQUENCE_NODE, "auth.keys"))
        return;
    size_t n = (size_t)(value->data.sequence.items.top - value->data.sequence.items.start);
    if (n > MAX_KEYS) {
        cfg_error(ctx, value, "auth.keys: more than %d keys", MAX_KEYS);
        return;
    }
    struct cfg_auth_key *keys = calloc(n > 0 ? n : 1, sizeof(*keys));
    if (keys == NULL) {
        ctx->is_oom = true;
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cfg_node(ctx, value->data.sequence.items.start[i]);
        read_key(ctx, item, &keys[kept], keys, kept);
        if (keys[kept].name != NULL && keys[kept].key != NULL)
            kept++;
        else
            key_clear(&keys[kept]);
    }
    cfg_auth_clear(auth);
    auth->keys = keys;
    auth->n_keys = kept;
}

void cfg_top_auth(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"enabled", CFG_F_BOOL, offsetof(struct cfg_auth, is_enabled), 0, 0, NULL, 0},
        {"admin_token", CFG_F_STR, offsetof(struct cfg_auth, admin_token), 0, 0, NULL, 0},
        {"keys", CFG_F_FN, CFG_NO_STORE, 0, 0, auth_keys, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_auth *auth = &ctx->cfg->auth;
    yaml_node_t *admin;
    (void)key;
    (void)obj;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "auth"))
        return;
    cfg_walk(ctx, value, fields, auth, NULL);
    auth->is_enabled_set = cfg_map_get(ctx, value, "enabled") != NULL;
    admin = cfg_map_get(ctx, value, "admin_token");
    if (auth->admin_token != NULL && auth->admin_token[0] == '\0') {
        free(auth->admin_token);
        auth->admin_token = NULL; /* an unset ${env.X} left empty: no admin API */
    } else if (auth->admin_token != NULL && strlen(auth->admin_token) < MIN_SECRET_CHARS) {
        cfg_warn(ctx, admin, "auth.admin_token is shorter than %d characters: easy to guess",
                 MIN_SECRET_CHARS);
    }
}

void cfg_top_storage(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"path", CFG_F_STR, offsetof(struct cfg_storage, path), 0, 0, NULL, 0},
        {"retention_days", CFG_F_INT, offsetof(struct cfg_storage, retention_days), 1, 36500,
         NULL, 0},
        {"max_log_rows", CFG_F_INT, offsetof(struct cfg_storage, max_log_rows), 1000,
         2000000000, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_storage *st = &ctx->cfg->storage;
    (void)key;
    (void)obj;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "storage"))
        return;
    cfg_walk(ctx, value, fields, st, NULL);
    if (st->path != NULL && st->path[0] == '\0')
        cfg_error(ctx, value, "storage.path: empty path");
}

void cfg_auth_clear(struct cfg_auth *auth)
{
    for (size_t i = 0; i < auth->n_keys; i++)
        key_clear(&auth->keys[i]);
    free(auth->keys);
    auth->keys = NULL;
    auth->n_keys = 0;
}

bool cfg_auth_is_on(const struct cfg *cfg)
{
    if (cfg->auth.is_enabled_set)
        return cfg->auth.is_enabled;
    return cfg->api_keys.len > 0 || cfg->auth.n_keys > 0 || cfg->auth.admin_token != NULL;
}
