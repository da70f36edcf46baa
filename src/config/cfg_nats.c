/*
 * The `nats:` section: the bus of distributed mode (docs/DISTRIBUTED.md).
 *
 * nats: nats://host:4222                      (a URL, or a comma-separated list)
 * nats: {url: URL | [URL...], name: NAME, token: T, user: U, password: P,
 *        credentials: FILE, tls: {ca: FILE, cert: FILE, key: FILE},
 *        strategy: least-loaded | round-robin | priority | prefix-affinity,
 *        stall_timeout_s: N, queue_timeout_s: N, queue_length: N}
 *
 * A gateway with the section discovers workers and routes to them; `infergate worker` takes
 * the same section (its --nats flag replaces the URL).
 */
#include "cfg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NATS_MAX_URLS 32
#define NATS_MAX_SECONDS 86400

void cfg_nats_defaults(struct cfg *cfg)
{
    cfg->nats.stall_timeout_s = 30;
    cfg->nats.queue_timeout_s = 30;
    cfg->nats.queue_length = 1024;
}

void cfg_nats_clear(struct cfg *cfg)
{
    struct cfg_nats *n = &cfg->nats;

    free(n->urls);
    free(n->name);
    free(n->token);
    free(n->user);
    free(n->password);
    free(n->creds_file);
    free(n->ca_file);
    free(n->cert_file);
    free(n->key_file);
    free(n->strategy);
    memset(n, 0, sizeof(*n));
}

/* Returns whether TEXT is a comma-separated list of nats:// or tls:// URLs. */
static bool is_url_list(const char *text)
{
    size_t n = 0;

    if (text[0] == '\0')
        return false;
    for (const char *p = text; *p != '\0'; n++) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (!(len > 7 && strncmp(p, "nats://", 7) == 0) &&
            !(len > 6 && strncmp(p, "tls://", 6) == 0))
            return false;
        if (memchr(p, ' ', len) != NULL || n >= NATS_MAX_URLS)
            return false;
        p = end != NULL ? end + 1 : p + len;
    }
    return true;
}

int cfg_nats_set_urls(struct cfg *cfg, const char *urls)
{
    char *copy;

    if (!is_url_list(urls))
        return -1;
    copy = strdup(urls);
    if (copy == NULL)
        return -1;
    free(cfg->nats.urls);
    cfg->nats.urls = copy;
    return 0;
}

/* Field handler: nats.url, a string or a sequence of URLs. */
static void nats_url(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_nats *n = obj;
    char *text = NULL;
    (void)key;

    if (value->type == YAML_SEQUENCE_NODE) {
        struct cfg_strv list = {0};
        size_t len = 0;

        if (cfg_get_strv(ctx, value, "nats.url", &list) != 0)
            return;
        for (size_t i = 0; i < list.len; i++)
            len += strlen(list.items[i]) + 1;
        text = calloc(1, len + 1);
        for (size_t i = 0, at = 0; text != NULL && i < list.len; i++) {
            size_t part = strlen(list.items[i]);

            if (i > 0)
                text[at++] = ',';
            memcpy(text + at, list.items[i], part);
            at += part;
        }
        cfg_strv_clear(&list);
    } else if (cfg_get_str(ctx, value, "nats.url", &text) != 0) {
        return;
    }
    if (text == NULL || !is_url_list(text)) {
        cfg_error(ctx, value, "nats.url: expected nats://HOST:PORT or tls://HOST:PORT URLs "
                              "(at most %d, comma-separated)", NATS_MAX_URLS);
        free(text);
        return;
    }
    free(n->urls);
    n->urls = text;
}

/* Field handler: nats.strategy. */
static void nats_strategy(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_nats *n = obj;
    char *text = NULL;
    (void)key;

    if (cfg_get_str(ctx, value, "nats.strategy", &text) != 0)
        return;
    if (cfg_strategy_valid(text)) {
        free(n->strategy);
        n->strategy = text;
        return;
    }
    cfg_error(ctx, value, "nats.strategy: expected least-loaded, round-robin, priority or "
                          "prefix-affinity, got '%s'", text);
    free(text);
}

/* Field handler: nats.tls. */
static void nats_tls(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"ca", CFG_F_STR, offsetof(struct cfg_nats, ca_file), 0, 0, NULL, 0},
        {"cert", CFG_F_STR, offsetof(struct cfg_nats, cert_file), 0, 0, NULL, 0},
        {"key", CFG_F_STR, offsetof(struct cfg_nats, key_file), 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_nats *n = obj;
    (void)key;

    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "nats.tls"))
        return;
    cfg_walk(ctx, value, fields, n, NULL);
    if ((n->cert_file == NULL) != (n->key_file == NULL))
        cfg_error(ctx, value, "nats.tls: cert and key go together");
}

bool cfg_strategy_valid(const char *name)
{
    return strcmp(name, "least-loaded") == 0 || strcmp(name, "round-robin") == 0 ||
           strcmp(name, "priority") == 0 || strcmp(name, "prefix-affinity") == 0;
}

void cfg_top_nats(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"url", CFG_F_FN, CFG_NO_STORE, 0, 0, nats_url, 0},
        {"name", CFG_F_STR, offsetof(struct cfg_nats, name), 0, 0, NULL, 0},
        {"token", CFG_F_STR, offsetof(struct cfg_nats, token), 0, 0, NULL, 0},
        {"user", CFG_F_STR, offsetof(struct cfg_nats, user), 0, 0, NULL, 0},
        {"password", CFG_F_STR, offsetof(struct cfg_nats, password), 0, 0, NULL, 0},
        {"credentials", CFG_F_STR, offsetof(struct cfg_nats, creds_file), 0, 0, NULL, 0},
        {"tls", CFG_F_FN, CFG_NO_STORE, 0, 0, nats_tls, 0},
        {"strategy", CFG_F_FN, CFG_NO_STORE, 0, 0, nats_strategy, 0},
        {"stall_timeout_s", CFG_F_INT, offsetof(struct cfg_nats, stall_timeout_s), 0,
         NATS_MAX_SECONDS, NULL, 0},
        {"queue_timeout_s", CFG_F_INT, offsetof(struct cfg_nats, queue_timeout_s), 0,
         NATS_MAX_SECONDS, NULL, 0},
        {"queue_length", CFG_F_INT, offsetof(struct cfg_nats, queue_length), 0, 1000000, NULL,
         0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    (void)obj;

    if (cfg_is_null(value))
        return;
    if (value->type == YAML_SCALAR_NODE) {
        nats_url(ctx, key, value, &ctx->cfg->nats);
        return;
    }
    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "nats"))
        return;
    cfg_walk(ctx, value, fields, &ctx->cfg->nats, NULL);
    if (cfg_map_get(ctx, value, "url") == NULL)
        cfg_error(ctx, value, "nats: needs url (nats://HOST:PORT)");
}
