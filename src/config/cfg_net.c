/*
 * The front server's sections of the config: `tls` (HTTPS on the main listener) and `cors`
 * (which browser origins may call the API). Their limits live under `limits:` (cfg.c).
 *
 * tls:  {cert: FILE, key: FILE, min_version: "1.2" | "1.3"}
 * cors: false | true | {enabled, origins: "*" | [ORIGIN...], headers: [NAME...],
 *                       max_age_s, credentials}
 *
 * The certificate files are checked for readability here, so `infergate check` reports a
 * wrong path with its line; whether the key matches the certificate is checked when the
 * certificate is loaded (start-up, `check`, and every reload). `infergate serve
 * --tls-cert-file/--tls-key-file` (llama-swap's flags) replace the files of the section, on
 * every reload too.
 */
#include "cfg_internal.h"
#include "http_cors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CORS_MAX_AGE_S 86400
#define CORS_MAX_ENTRIES 1000

void cfg_net_defaults(struct cfg *cfg)
{
    cfg->tls.min_version = 12;
    cfg->cors.is_enabled = true;
    cfg->cors.is_any_origin = true;
    cfg->cors.max_age_s = CORS_MAX_AGE_S;
}

void cfg_net_clear(struct cfg *cfg)
{
    free(cfg->tls.cert_path);
    free(cfg->tls.key_path);
    cfg->tls.cert_path = NULL;
    cfg->tls.key_path = NULL;
    cfg_strv_clear(&cfg->cors.origins);
    cfg_strv_clear(&cfg->cors.headers);
}

#define WORLD_READABLE_ADVICE "is readable by every user of this machine (chmod 600 or 640)"

/* Returns whether every user may read the file at PATH. */
static bool is_world_readable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && (st.st_mode & S_IROTH) != 0;
}

/* Checks that the file named by NODE's value PATH can be read; records an error if not. */
static void check_readable(struct cfg_ctx *ctx, yaml_node_t *node, const char *what,
                           const char *path)
{
    FILE *f;

    if (path[0] == '\0') {
        cfg_error(ctx, node, "%s: empty path", what);
        return;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        cfg_error(ctx, node, "%s: cannot read %s: %s", what, path, strerror(errno));
        return;
    }
    fclose(f);
}

/* Field handler: tls.min_version, "1.2" or "1.3" (a YAML float works too). */
static void tls_min_version(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_tls *tls = obj;
    char *text = NULL;
    (void)key;

    if (cfg_get_str(ctx, value, "tls.min_version", &text) != 0)
        return;
    if (strcmp(text, "1.2") == 0 || strcasecmp(text, "TLSv1.2") == 0)
        tls->min_version = 12;
    else if (strcmp(text, "1.3") == 0 || strcasecmp(text, "TLSv1.3") == 0)
        tls->min_version = 13;
    else
        cfg_error(ctx, value, "tls.min_version: expected \"1.2\" or \"1.3\", got '%s'", text);
    free(text);
}

void cfg_top_tls(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"cert", CFG_F_STR, offsetof(struct cfg_tls, cert_path), 0, 0, NULL, 0},
        {"key", CFG_F_STR, offsetof(struct cfg_tls, key_path), 0, 0, NULL, 0},
        {"min_version", CFG_F_FN, CFG_NO_STORE, 0, 0, tls_min_version, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_tls *tls = &ctx->cfg->tls;
    yaml_node_t *cert, *key_node;
    (void)key;
    (void)obj;

    if (cfg_is_null(value) || !cfg_expect(ctx, value, YAML_MAPPING_NODE, "tls"))
        return;
    cfg_walk(ctx, value, fields, tls, NULL);
    cert = cfg_map_get(ctx, value, "cert");
    key_node = cfg_map_get(ctx, value, "key");
    if (tls->cert_path == NULL || tls->key_path == NULL) {
        cfg_error(ctx, value,
                  "tls: needs both cert (PEM certificate chain) and key (PEM "
                  "private key)");
        return;
    }
    check_readable(ctx, cert, "tls.cert", tls->cert_path);
    check_readable(ctx, key_node, "tls.key", tls->key_path);
    if (is_world_readable(tls->key_path))
        cfg_warn(ctx, key_node, "tls.key: %s " WORLD_READABLE_ADVICE, tls->key_path);
}

int cfg_set_tls_files(struct cfg *cfg, const char *cert_path, const char *key_path)
{
    char *cert = strdup(cert_path), *key = strdup(key_path), *warning = NULL;
    int rc = IG_ENOMEM;

    if (cert == NULL || key == NULL)
        goto out;
    if (is_world_readable(key) &&
        (asprintf(&warning, "--tls-key-file: %s " WORLD_READABLE_ADVICE, key) < 0 ||
         cfg_add_warning(cfg, warning) != 0))
        goto out;
    free(cfg->tls.cert_path);
    free(cfg->tls.key_path);
    cfg->tls.cert_path = cert;
    cfg->tls.key_path = key;
    cfg->tls.is_from_command_line = true;
    cert = key = NULL;
    rc = 0;
out:
    free(warning);
    free(cert);
    free(key);
    return rc;
}

int cfg_keep_command_line(struct cfg *next, const struct cfg *prev)
{
    next->is_insecure_no_auth = prev->is_insecure_no_auth;
    if (!prev->tls.is_from_command_line)
        return 0;
    return cfg_set_tls_files(next, prev->tls.cert_path, prev->tls.key_path);
}

/* Reads cors.origins: "*", one origin, or a list of them. */
static void cors_origins(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_cors *cors = obj;
    struct cfg_strv list = {0};
    bool has_star = false;
    (void)key;

    if (value->type == YAML_SCALAR_NODE) {
        char *one = NULL;
        if (cfg_get_str(ctx, value, "cors.origins", &one) != 0)
            return;
        if (cfg_strv_push_take(&list, one) != 0) {
            ctx->is_oom = true;
            return;
        }
    } else if (cfg_get_strv(ctx, value, "cors.origins", &list) != 0) {
        goto out;
    }
    if (list.len > CORS_MAX_ENTRIES) {
        cfg_error(ctx, value, "cors.origins: more than %d entries", CORS_MAX_ENTRIES);
        goto out;
    }
    for (size_t i = 0; i < list.len; i++) {
        const char *o = list.items[i];
        if (strcmp(o, "*") == 0) {
            has_star = true;
        } else if (!http_cors_pattern_is_valid(o)) {
            size_t n = strlen(o);
            cfg_error(ctx, value,
                      "cors.origins: '%s' is not an origin: scheme://host[:port] without a "
                      "path%s (or \"*\", or \"null\")",
                      o, n > 0 && o[n - 1] == '/' ? " (drop the trailing '/')" : "");
        }
    }
    if (has_star && list.len > 1)
        cfg_warn(ctx, value, "cors.origins: \"*\" allows every origin; the others are redundant");
    cfg_strv_clear(&cors->origins);
    cors->is_any_origin = has_star;
    if (!has_star) {
        cors->origins = list;
        list = (struct cfg_strv){0};
    }
out:
    cfg_strv_clear(&list);
}

/* Reads cors.headers: a list of header names (or "*": echo what the browser asks for). */
static void cors_headers(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    struct cfg_cors *cors = obj;
    struct cfg_strv list = {0};
    char clean[256];
    (void)key;

    if (cfg_get_strv(ctx, value, "cors.headers", &list) != 0)
        goto out;
    if (list.len > CORS_MAX_ENTRIES) {
        cfg_error(ctx, value, "cors.headers: more than %d entries", CORS_MAX_ENTRIES);
        goto out;
    }
    for (size_t i = 0; i < list.len; i++) {
        const char *h = list.items[i];
        /* A valid name comes out of the sanitiser unchanged. */
        if (strlen(h) >= sizeof(clean) ||
            http_cors_sanitize_headers(h, clean, sizeof(clean)) == 0 || strcmp(clean, h) != 0)
            cfg_error(ctx, value, "cors.headers: '%s' is not a header name", h);
    }
    cfg_strv_clear(&cors->headers);
    cors->headers = list;
    list = (struct cfg_strv){0};
out:
    cfg_strv_clear(&list);
}

void cfg_top_cors(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"enabled", CFG_F_BOOL, offsetof(struct cfg_cors, is_enabled), 0, 0, NULL, 0},
        {"origins", CFG_F_FN, CFG_NO_STORE, 0, 0, cors_origins, 0},
        {"headers", CFG_F_FN, CFG_NO_STORE, 0, 0, cors_headers, 0},
        {"max_age_s", CFG_F_INT, offsetof(struct cfg_cors, max_age_s), 0, CORS_MAX_AGE_S, NULL, 0},
        {"credentials", CFG_F_BOOL, offsetof(struct cfg_cors, allow_credentials), 0, 0, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    struct cfg_cors *cors = &ctx->cfg->cors;
    (void)key;
    (void)obj;

    if (cfg_is_null(value))
        return;
    if (value->type == YAML_SCALAR_NODE) { /* cors: false | true */
        bool is_on = true;
        if (cfg_get_bool(ctx, value, "cors", &is_on) == 0)
            cors->is_enabled = is_on;
        return;
    }
    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "cors"))
        return;
    cfg_walk(ctx, value, fields, cors, NULL);
    if (cors->is_enabled && cors->allow_credentials && cors->is_any_origin)
        cfg_error(ctx, value,
                  "cors: credentials: true needs a list of origins, not \"*\" (every website "
                  "could then make requests with the user's cookies)");
}
