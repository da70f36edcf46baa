/*
 * `infergate keys create|list|revoke|update`: API keys in the database that the server
 * named by the config uses (storage.path, or the default). A running server sees changes
 * within STORE_POLL_MS. Keys are printed once, at creation; only their hash is stored.
 */
#include "auth_keys.h"
#include "cfg.h"
#include "cli.h"
#include "store.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ig_time.h"

static const char usage_text[] =
    "usage: infergate keys create -c FILE --name NAME [--models a,b] [--rpm N] [--tpm N]\n"
    "                             [--concurrency N] [--max-tokens N] [--budget-tokens N]\n"
    "                             [--expires 30d]\n"
    "       infergate keys list -c FILE [--json]\n"
    "       infergate keys revoke -c FILE NAME\n"
    "       infergate keys update -c FILE NAME [--models a,b|all] [--rpm N] [--tpm N] ...\n";

/* One invocation: the parsed options and what the database job reports back. */
struct keys_cmd {
    const char *verb, *config, *name;
    json_t *changes; /* models and limits given */
    int64_t expires_in;
    bool is_json;
    char actor[160];
    uint8_t secret[AUTH_SECRET_BYTES];
    struct auth_key_spec spec;
    char key[AUTH_KEY_CHARS + 1];
    json_t *list;
    char *cause;
};

/* Maps a --flag to its limit field, or NULL. */
static const char *limit_of(const char *flag)
{
    static const char *const map[][2] = {{"--rpm", "rpm"},
                                         {"--tpm", "tpm"},
                                         {"--concurrency", "concurrency"},
                                         {"--max-tokens", "max_tokens"},
                                         {"--budget-tokens", "budget_tokens"}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(flag, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

/* Parses ARGV into C; returns 0, or 2 after printing the problem. */
static int parse(struct keys_cmd *c, int argc, char **argv)
{
    c->changes = json_object();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL, *limit = limit_of(a);
        char *end = NULL;
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && v != NULL) {
            c->config = argv[++i];
        } else if (strcmp(a, "--name") == 0 && v != NULL) {
            c->name = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            c->is_json = true;
        } else if (strcmp(a, "--models") == 0 && v != NULL) {
            json_t *models = json_array();
            char *copy = strdup(argv[++i]), *save = NULL;
            for (char *m = strtok_r(copy, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save))
                json_array_append_new(models, json_string(m));
            free(copy);
            json_object_set_new(c->changes, "models",
                                strcmp(v, "all") == 0 ? (json_decref(models), json_null()) : models);
        } else if (strcmp(a, "--expires") == 0 && v != NULL) {
            c->expires_in = auth_parse_duration(argv[++i]);
            if (c->expires_in <= 0) {
                fprintf(stderr, "infergate keys: --expires: expected a duration like 30d, 12h, "
                                "90m or 2w, got '%s'\n", v);
                return 2;
            }
        } else if (limit != NULL && v != NULL) {
            long long n = strtoll(argv[++i], &end, 10);
            if (end == v || *end != '\0' || n < 0) {
                fprintf(stderr, "infergate keys: %s: expected an integer >= 0, got '%s'\n", a, v);
                return 2;
            }
            json_object_set_new(c->changes, limit, json_integer(n));
        } else if (a[0] != '-' && c->name == NULL) {
            c->name = a;
        } else {
            fprintf(stderr, "infergate keys: unexpected argument '%s'\n%s", a, usage_text);
            return 2;
        }
    }
    bool needs_name = strcmp(c->verb, "list") != 0;
    if (needs_name && (c->name == NULL || c->name[0] == '\0' ||
                       strlen(c->name) >= sizeof(c->spec.name))) {
        fprintf(stderr, "infergate keys %s: a key name (1 to 127 characters) is needed\n%s",
                c->verb, usage_text);
        return 2;
    }
    return 0;
}

/* The database work of C (one transaction). */
static int keys_job(sqlite3 *db, void *arg)
{
    struct keys_cmd *c = arg;
    char *detail = json_dumps(c->changes, JSON_COMPACT);
    int rc;

    if (strcmp(c->verb, "list") == 0) {
        free(detail);
        return auth_db_list(db, &c->list);
    }
    if (strcmp(c->verb, "create") == 0)
        rc = auth_db_insert(db, &c->spec, &c->cause);
    else if (strcmp(c->verb, "revoke") == 0)
        rc = auth_db_revoke(db, c->name);
    else
        rc = auth_db_update(db, c->name, c->changes, &c->cause);
    if (rc == 0) {
        char action[32];
        snprintf(action, sizeof(action), "key.%s", c->verb);
        rc = auth_db_audit(db, c->actor, action, c->name, detail, "cli");
    }
    free(detail);
    return rc;
}

/* Prints the key list of C as a table or JSON. */
static void print_list(const struct keys_cmd *c)
{
    size_t i;
    json_t *k;

    if (c->is_json) {
        char *text = json_dumps(c->list, JSON_INDENT(2));
        printf("%s\n", text != NULL ? text : "[]");
        free(text);
        return;
    }
    printf("%-24s %-11s %-8s %8s %10s %6s %12s  %s\n", "NAME", "PREFIX", "STATE", "RPM", "TPM",
           "CONC", "BUDGET", "MODELS");
    json_array_foreach(c->list, i, k) {
        int64_t expires = json_integer_value(json_object_get(k, "expires_at"));
        const char *state = json_is_true(json_object_get(k, "revoked")) ? "revoked"
                            : expires > 0 && expires <= ig_unix_s()   ? "expired"
                                                                      : "active";
        json_t *models = json_object_get(k, "models");
        char *m = json_is_array(models) ? json_dumps(models, JSON_COMPACT) : strdup("all");
        printf("%-24s %-11s %-8s %8lld %10lld %6lld %12lld  %s\n",
               json_string_value(json_object_get(k, "name")),
               json_string_value(json_object_get(k, "prefix")), state,
               (long long)json_integer_value(json_object_get(k, "rpm")),
               (long long)json_integer_value(json_object_get(k, "tpm")),
               (long long)json_integer_value(json_object_get(k, "concurrency")),
               (long long)json_integer_value(json_object_get(k, "budget_tokens")), m ? m : "");
        free(m);
    }
}

/* Returns whether CFG defines a key named NAME in auth.keys. */
static bool is_config_key(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && i < cfg->auth.n_keys; i++)
        if (strcmp(cfg->auth.keys[i].name, name) == 0)
            return true;
    return false;
}

int cli_keys(int argc, char **argv)
{
    struct keys_cmd c = {0};
    struct store *st = NULL;
    struct cfg *cfg = NULL;
    char path[4096], secret_path[4200], *cause = NULL;
    struct passwd *pw = getpwuid(getuid());
    int rc = 2, job_rc;

    c.verb = argc >= 2 ? argv[1] : "";
    if (strcmp(c.verb, "create") != 0 && strcmp(c.verb, "list") != 0 &&
        strcmp(c.verb, "revoke") != 0 && strcmp(c.verb, "update") != 0) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    if (parse(&c, argc, argv) != 0)
        goto out;
    rc = 1;
    if (c.config != NULL && (cfg = cli_load_config(c.config)) == NULL)
        goto out;
    if (cfg != NULL && cfg->storage.path != NULL)
        snprintf(path, sizeof(path), "%s", cfg->storage.path);
    else
        store_default_path(path, sizeof(path));
    if (strcmp(c.verb, "create") == 0 && auth_name_is_reserved(c.name)) {
        fprintf(stderr, "infergate keys create: 'admin', '-' and 'apiKeys[...]' are reserved "
                        "names\n");
        goto out;
    }
    if (strcmp(c.verb, "create") == 0 && is_config_key(cfg, c.name)) {
        fprintf(stderr, "infergate keys create: '%s' is already a key in %s (auth.keys)\n", c.name,
                c.config);
        goto out;
    }
    if (store_open(path, false, &st, &cause) != 0) {
        fprintf(stderr, "infergate keys: %s\n", cause != NULL ? cause : path);
        goto out;
    }
    snprintf(c.actor, sizeof(c.actor), "cli:%s", pw != NULL ? pw->pw_name : "?");
    if (strcmp(c.verb, "create") == 0) {
        auth_secret_path(path, secret_path, sizeof(secret_path));
        if (auth_secret_load(secret_path, c.secret, &cause) != 0) {
            fprintf(stderr, "infergate keys: %s\n", cause != NULL ? cause : secret_path);
            goto out;
        }
        snprintf(c.spec.name, sizeof(c.spec.name), "%s", c.name);
        auth_fill_spec(&c.spec, c.changes);
        if (c.expires_in > 0)
            c.spec.expires_at = ig_unix_s() + c.expires_in;
        if (auth_key_make(c.secret, &c.spec, c.key) != 0) {
            fprintf(stderr, "infergate keys: cannot generate a key\n");
            goto out;
        }
    } else if (c.expires_in > 0) {
        json_object_set_new(c.changes, "expires_at", json_integer(ig_unix_s() + c.expires_in));
    }
    job_rc = store_run(st, keys_job, &c);
    if (job_rc == IG_ENOENT) {
        fprintf(stderr, "infergate keys %s: no active key named '%s'\n", c.verb, c.name);
    } else if (job_rc != 0) {
        fprintf(stderr, "infergate keys %s: %s\n", c.verb,
                c.cause != NULL ? c.cause : "the database failed");
    } else if (strcmp(c.verb, "list") == 0) {
        print_list(&c);
        rc = 0;
    } else if (strcmp(c.verb, "create") == 0) {
        printf("%s\n", c.key);
        fprintf(stderr, "created key '%s' (%s...): keep it now, it cannot be shown again\n",
                c.name, c.spec.prefix);
        rc = 0;
    } else {
        fprintf(stderr, "%s key '%s'\n", strcmp(c.verb, "revoke") == 0 ? "revoked" : "updated",
                c.name);
        rc = 0;
    }
out:
    OPENSSL_cleanse(c.key, sizeof(c.key));
    OPENSSL_cleanse(c.secret, sizeof(c.secret));
    json_decref(c.spec.models);
    json_decref(c.changes);
    json_decref(c.list);
    free(c.cause);
    free(cause);
    store_free(st);
    cfg_free(cfg);
    return rc;
}
