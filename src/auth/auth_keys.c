/* API keys in the database (see auth_keys.h). */
#include "auth_keys.h"
#include "ig_time.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_HEX (2 * AUTH_SECRET_BYTES)

/* The limit columns, in the order of struct auth_key_spec's fields. */
static const char *const limit_columns[] = {"rpm", "tpm", "concurrency", "max_tokens",
                                            "budget_tokens", "expires_at"};

/* Returns a pointer to SPEC's field for limit_columns[I]. */
static int64_t *limit_field(struct auth_key_spec *spec, size_t i)
{
    int64_t *fields[] = {&spec->rpm,        &spec->tpm,           &spec->concurrency,
                         &spec->max_tokens, &spec->budget_tokens, &spec->expires_at};
    return fields[i];
}

void auth_secret_path(const char *db_path, char *buf, size_t size)
{
    const char *slash = strrchr(db_path, '/');
    int dir_len = slash != NULL ? (int)(slash - db_path) : 1;

    snprintf(buf, size, "%.*s/infergate.secret", dir_len, slash != NULL ? db_path : ".");
}

/* Decodes 2N hex characters of TEXT into OUT; returns 0 or -1. */
static int from_hex(const char *text, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(text + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int auth_secret_load(const char *path, uint8_t secret[AUTH_SECRET_BYTES], char **cause)
{
    char hex[SECRET_HEX + 2] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        ssize_t n = read(fd, hex, SECRET_HEX);
        close(fd);
        if (n == SECRET_HEX && from_hex(hex, secret, AUTH_SECRET_BYTES) == 0)
            return 0;
        if (cause != NULL && asprintf(cause, "%s: not a server secret (%d hex digits)", path,
                                      SECRET_HEX) < 0)
            *cause = NULL;
        return IG_EIO;
    }
    if (errno != ENOENT || RAND_bytes(secret, AUTH_SECRET_BYTES) != 1)
        goto fail;
    for (size_t i = 0; i < AUTH_SECRET_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", secret[i]);
    hex[SECRET_HEX] = '\n';
    /* O_EXCL: two processes creating it at once agree on the first one's secret. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return auth_secret_load(path, secret, cause);
    if (fd < 0)
        goto fail;
    bool is_written = write(fd, hex, SECRET_HEX + 1) == SECRET_HEX + 1;
    if (close(fd) != 0 || !is_written) {
        unlink(path);
        goto fail;
    }
    return 0;
fail:
    if (cause != NULL && asprintf(cause, "%s: cannot create the server secret: %s", path,
                                  strerror(errno)) < 0)
        *cause = NULL;
    return IG_EIO;
}

void auth_key_hash(const uint8_t secret[AUTH_SECRET_BYTES], const char *key, size_t len,
                   uint8_t hash[AUTH_HASH_BYTES])
{
    unsigned int out_len = AUTH_HASH_BYTES;
    HMAC(EVP_sha256(), secret, AUTH_SECRET_BYTES, (const unsigned char *)key, len, hash, &out_len);
}

int auth_key_generate(char out[AUTH_KEY_CHARS + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t random[AUTH_KEY_CHARS];
    size_t n = strlen(AUTH_KEY_PREFIX);

    if (RAND_bytes(random, sizeof(random)) != 1)
        return IG_EIO;
    memcpy(out, AUTH_KEY_PREFIX, n);
    for (size_t i = n; i < AUTH_KEY_CHARS; i++)
        out[i] = alphabet[random[i] & 63]; /* 6 random bits a character: 240 bits in all */
    out[AUTH_KEY_CHARS] = '\0';
    OPENSSL_cleanse(random, sizeof(random));
    return 0;
}

int auth_db_insert(struct sqlite3 *db, struct auth_key_spec *spec, char **cause)
{
    sqlite3_stmt *stmt = NULL;
    char *models = spec->models != NULL ? json_dumps(spec->models, JSON_COMPACT) : NULL;
    int rc = IG_EIO, step;

    spec->created_at = ig_unix_s();
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO keys (name, hash, prefix, models, rpm, tpm, concurrency,"
                           " max_tokens, budget_tokens, expires_at, created_at)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &stmt, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(stmt, 1, spec->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 2, spec->hash, AUTH_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, spec->prefix, -1, SQLITE_STATIC);
    if (models != NULL)
        sqlite3_bind_text(stmt, 4, models, -1, SQLITE_STATIC);
    for (size_t i = 0; i < sizeof(limit_columns) / sizeof(limit_columns[0]); i++)
        sqlite3_bind_int64(stmt, 5 + (int)i, *limit_field(spec, i));
    sqlite3_bind_int64(stmt, 11, spec->created_at);
    step = sqlite3_step(stmt);
    if (step == SQLITE_CONSTRAINT) {
        rc = IG_EINVAL;
        if (cause != NULL && asprintf(cause, "a key named '%s' exists already (revoked keys keep "
                                             "their name)", spec->name) < 0)
            *cause = NULL;
    } else if (step == SQLITE_DONE) {
        rc = 0;
    }
out:
    sqlite3_finalize(stmt);
    free(models);
    return rc;
}

/* Reads the row at STMT (columns as in load_sql) into SPEC. */
static void read_row(sqlite3_stmt *stmt, struct auth_key_spec *spec)
{
    const unsigned char *models = sqlite3_column_text(stmt, 3);

    memset(spec, 0, sizeof(*spec));
    snprintf(spec->name, sizeof(spec->name), "%s", (const char *)sqlite3_column_text(stmt, 0));
    if (sqlite3_column_bytes(stmt, 1) == AUTH_HASH_BYTES)
        memcpy(spec->hash, sqlite3_column_blob(stmt, 1), AUTH_HASH_BYTES);
    snprintf(spec->prefix, sizeof(spec->prefix), "%s", (const char *)sqlite3_column_text(stmt, 2));
    spec->models = models != NULL ? json_loads((const char *)models, 0, NULL) : NULL;
    if (spec->models != NULL && !json_is_array(spec->models)) {
        json_decref(spec->models);
        spec->models = NULL;
    }
    for (size_t i = 0; i < sizeof(limit_columns) / sizeof(limit_columns[0]); i++)
        *limit_field(spec, i) = sqlite3_column_int64(stmt, 4 + (int)i);
    spec->created_at = sqlite3_column_int64(stmt, 10);
    spec->revoked_at = sqlite3_column_int64(stmt, 11);
}

static const char load_sql[] =
    "SELECT name, hash, prefix, models, rpm, tpm, concurrency, max_tokens, budget_tokens,"
    " expires_at, created_at, revoked_at FROM keys ORDER BY id";

int auth_db_load(struct sqlite3 *db, struct auth_key_spec **out, size_t *n)
{
    sqlite3_stmt *stmt = NULL;
    struct auth_key_spec *specs = NULL;
    size_t len = 0, cap = 0;
    int step;

    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(db, load_sql, -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (len == cap) {
            size_t want = cap > 0 ? 2 * cap : 16;
            struct auth_key_spec *grown = realloc(specs, want * sizeof(*grown));
            if (grown == NULL) {
                step = SQLITE_NOMEM;
                break;
            }
            specs = grown;
            cap = want;
        }
        read_row(stmt, &specs[len++]);
    }
    sqlite3_finalize(stmt);
    if (step != SQLITE_DONE) {
        for (size_t i = 0; i < len; i++)
            json_decref(specs[i].models);
        free(specs);
        return step == SQLITE_NOMEM ? IG_ENOMEM : IG_EIO;
    }
    *out = specs;
    *n = len;
    return 0;
}

int auth_db_list(struct sqlite3 *db, json_t **out)
{
    struct auth_key_spec *specs;
    size_t n;
    int rc = auth_db_load(db, &specs, &n);

    *out = NULL;
    if (rc != 0)
        return rc;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        struct auth_key_spec *s = &specs[i];
        json_t *obj = json_pack("{s:s, s:s, s:O?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                                "name", s->name, "prefix", s->prefix, "models", s->models, "rpm",
                                (json_int_t)s->rpm, "tpm", (json_int_t)s->tpm, "concurrency",
                                (json_int_t)s->concurrency, "max_tokens",
                                (json_int_t)s->max_tokens, "budget_tokens",
                                (json_int_t)s->budget_tokens, "expires_at",
                                (json_int_t)s->expires_at, "created_at",
                                (json_int_t)s->created_at, "revoked_at",
                                (json_int_t)s->revoked_at, "revoked", s->revoked_at > 0);
        json_array_append_new(list, obj);
        json_decref(s->models);
    }
    free(specs);
    *out = list;
    return 0;
}

/* Runs SQL with NAME bound to ?1 (and INT to ?2 when HAS_INT); returns rows changed or -1. */
static int exec_named(sqlite3 *db, const char *sql, const char *name, int64_t value, bool has_int)
{
    sqlite3_stmt *stmt = NULL;
    int changed = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
        if (has_int)
            sqlite3_bind_int64(stmt, 2, value);
        if (sqlite3_step(stmt) == SQLITE_DONE)
            changed = sqlite3_changes(db);
    }
    sqlite3_finalize(stmt);
    return changed;
}

int auth_db_revoke(struct sqlite3 *db, const char *name)
{
    int changed = exec_named(db, "UPDATE keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at = 0",
                             name, ig_unix_s(), true);
    return changed < 0 ? IG_EIO : changed == 0 ? IG_ENOENT : 0;
}

const char *auth_check_fields(json_t *changes)
{
    const char *k;
    json_t *v;

    if (!json_is_object(changes))
        return "expected a JSON object";
    json_object_foreach(changes, k, v) {
        if (strcmp(k, "models") == 0) {
            size_t i;
            json_t *m;
            if (json_is_null(v))
                continue;
            if (!json_is_array(v))
                return "models: expected an array of model ids, or null";
            json_array_foreach(v, i, m) if (!json_is_string(m)) return "models: expected strings";
            continue;
        }
        bool is_limit = false;
        for (size_t i = 0; i < sizeof(limit_columns) / sizeof(limit_columns[0]); i++)
            is_limit |= strcmp(k, limit_columns[i]) == 0;
        if (!is_limit)
            return "unknown field (known: models, rpm, tpm, concurrency, max_tokens, "
                   "budget_tokens, expires_at)";
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return "limits are integers >= 0 (0: unlimited)";
    }
    return NULL;
}

int auth_db_update(struct sqlite3 *db, const char *name, json_t *changes, char **cause)
{
    const char *bad = auth_check_fields(changes), *k;
    json_t *v;
    char sql[128];

    if (bad != NULL) {
        if (cause != NULL)
            *cause = strdup(bad);
        return IG_EINVAL;
    }
    if (json_object_size(changes) == 0) {
        if (cause != NULL)
            *cause = strdup("nothing to change");
        return IG_EINVAL;
    }
    json_object_foreach(changes, k, v) {
        int changed;
        if (strcmp(k, "models") == 0) {
            char *text = json_is_null(v) ? NULL : json_dumps(v, JSON_COMPACT);
            sqlite3_stmt *stmt = NULL;
            changed = -1;
            if (sqlite3_prepare_v2(db, "UPDATE keys SET models = ?2 WHERE name = ?1 AND revoked_at = 0",
                                   -1, &stmt, NULL) == SQLITE_OK) {
                sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
                if (text != NULL)
                    sqlite3_bind_text(stmt, 2, text, -1, SQLITE_STATIC);
                if (sqlite3_step(stmt) == SQLITE_DONE)
                    changed = sqlite3_changes(db);
            }
            sqlite3_finalize(stmt);
            free(text);
        } else {
            /* K is one of limit_columns (checked above), so it is safe in the statement. */
            snprintf(sql, sizeof(sql), "UPDATE keys SET %s = ?2 WHERE name = ?1 AND revoked_at = 0", k);
            changed = exec_named(db, sql, name, json_integer_value(v), true);
        }
        if (changed < 0)
            return IG_EIO;
        if (changed == 0)
            return IG_ENOENT;
    }
    return 0;
}

int auth_db_audit(struct sqlite3 *db, const char *actor, const char *action, const char *target,
                  const char *detail, const char *client)
{
    sqlite3_stmt *stmt = NULL;
    int rc = IG_EIO;

    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit (at, actor, action, target, detail, client)"
                           " VALUES (?,?,?,?,?,?)",
                           -1, &stmt, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(stmt, 1, ig_unix_s());
        sqlite3_bind_text(stmt, 2, actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 4, target, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 5, detail, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 6, client, -1, SQLITE_STATIC);
        if (sqlite3_step(stmt) == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int64_t auth_parse_duration(const char *text)
{
    char *end = NULL;
    long long n = strtoll(text, &end, 10);
    int64_t unit;

    if (end == text || n <= 0 || n > 100000000 || end[0] == '\0' || end[1] != '\0')
        return -1;
    switch (end[0]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return -1;
    }
    return (int64_t)n * unit;
}

int auth_key_make(const uint8_t secret[AUTH_SECRET_BYTES], struct auth_key_spec *spec,
                  char key[AUTH_KEY_CHARS + 1])
{
    if (auth_key_generate(key) != 0)
        return IG_EIO;
    auth_key_hash(secret, key, strlen(key), spec->hash);
    snprintf(spec->prefix, sizeof(spec->prefix), "%.*s", AUTH_PREFIX_CHARS, key);
    return 0;
}

void auth_fill_spec(struct auth_key_spec *spec, json_t *limits)
{
    json_t *models = json_object_get(limits, "models");

    json_decref(spec->models);
    /* An empty list means every model, as in the config. */
    spec->models = json_array_size(models) > 0 ? json_deep_copy(models) : NULL;
    for (size_t i = 0; i < sizeof(limit_columns) / sizeof(limit_columns[0]); i++) {
        json_t *v = json_object_get(limits, limit_columns[i]);
        if (json_is_integer(v))
            *limit_field(spec, i) = json_integer_value(v);
    }
}

bool auth_name_is_reserved(const char *name)
{
    return strcmp(name, "admin") == 0 || strcmp(name, "-") == 0 ||
           strncmp(name, "apiKeys[", 8) == 0;
}
