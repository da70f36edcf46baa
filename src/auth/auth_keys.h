/*
 * API keys in the database: the server secret, hashing, generation, and the rows of the
 * `keys` table (create, list, update, revoke). Only HMAC-SHA256(secret, key) is stored; the
 * key itself is shown once, when it is made. Used by the server (through store jobs) and by
 * `infergate keys` (directly).
 */
#ifndef IG_AUTH_KEYS_H
#define IG_AUTH_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_error.h"

struct sqlite3;

#define AUTH_HASH_BYTES 32
#define AUTH_SECRET_BYTES 32
#define AUTH_KEY_PREFIX "ig-"
#define AUTH_KEY_CHARS 43 /* "ig-" + 40 base64url characters */
#define AUTH_PREFIX_CHARS 10

/* A key's properties, as stored (limits of 0 are unlimited). */
struct auth_key_spec {
    char name[128];
    char prefix[AUTH_PREFIX_CHARS + 1]; /* the first characters of the key */
    json_t *models;                     /* JSON array of model ids, or NULL: all (owned) */
    int64_t rpm, tpm, concurrency, max_tokens, budget_tokens;
    int64_t expires_at; /* unix seconds; 0: never */
    int64_t created_at, revoked_at;
    uint8_t hash[AUTH_HASH_BYTES];
};

/* Reads the server secret from PATH, creating it (mode 0600, random) when absent. Returns 0
 * or IG_EIO with *CAUSE (caller frees). */
int auth_secret_load(const char *path, uint8_t secret[AUTH_SECRET_BYTES], char **cause) IG_WUR;

/* Writes the secret's path for the database at DB_PATH into BUF: infergate.secret beside it. */
void auth_secret_path(const char *db_path, char *buf, size_t size);

/* Sets HASH to HMAC-SHA256(SECRET, KEY). */
void auth_key_hash(const uint8_t secret[AUTH_SECRET_BYTES], const char *key, size_t len,
                   uint8_t hash[AUTH_HASH_BYTES]);

/* Writes a new random key ("ig-" + 40 base64url characters) into OUT (AUTH_KEY_CHARS + 1). */
int auth_key_generate(char out[AUTH_KEY_CHARS + 1]) IG_WUR;

/* Inserts SPEC (name, hash, prefix, limits; created_at is set). Returns 0, IG_EINVAL when
 * the name is taken (*CAUSE says so), or IG_EIO. */
int auth_db_insert(struct sqlite3 *db, struct auth_key_spec *spec, char **cause) IG_WUR;

/* Sets *OUT to every key row (revoked ones too) as a JSON array of objects without hashes
 * (caller owns). Returns 0 or IG_EIO. */
int auth_db_list(struct sqlite3 *db, json_t **out) IG_WUR;

/* Loads every key row into *OUT (an array of *N specs; caller frees each's models, then the
 * array). Returns 0, IG_ENOMEM or IG_EIO. */
int auth_db_load(struct sqlite3 *db, struct auth_key_spec **out, size_t *n) IG_WUR;

/* Revokes key NAME now. Returns 0, IG_ENOENT (no such active key), or IG_EIO. */
int auth_db_revoke(struct sqlite3 *db, const char *name) IG_WUR;

/* Applies the fields of CHANGES (a JSON object: models, rpm, tpm, concurrency, max_tokens,
 * budget_tokens, expires_at) to key NAME. Returns 0, IG_ENOENT, IG_EINVAL (*CAUSE), IG_EIO. */
int auth_db_update(struct sqlite3 *db, const char *name, json_t *changes, char **cause) IG_WUR;

/* Appends an audit row: ACTOR did ACTION on TARGET (DETAIL, CLIENT may be NULL). */
int auth_db_audit(struct sqlite3 *db, const char *actor, const char *action, const char *target,
                  const char *detail, const char *client) IG_WUR;

/* Makes a new key for SPEC: writes it to KEY and sets SPEC's hash (with SECRET) and prefix. */
int auth_key_make(const uint8_t secret[AUTH_SECRET_BYTES], struct auth_key_spec *spec,
                  char key[AUTH_KEY_CHARS + 1]) IG_WUR;

/* Sets SPEC's models and limits from LIMITS (checked with auth_check_fields(); borrowed). */
void auth_fill_spec(struct auth_key_spec *spec, json_t *limits);

/* Returns whether NAME is reserved for other callers ("admin", "-", "apiKeys[...").*/
bool auth_name_is_reserved(const char *name);

/* Parses a duration like "30d", "12h", "90m", "3600s" or "2w" into seconds; -1 if invalid. */
int64_t auth_parse_duration(const char *text);

/* Checks CHANGES' limit fields (non-negative integers, models an array of strings, expires_at
 * a number); returns NULL or a static message naming the bad field. */
const char *auth_check_fields(json_t *changes);

#endif
