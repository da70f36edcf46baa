/*
 * Who is calling, and may they: API keys from the config (`auth.keys`, llama-swap's
 * `apiKeys`), from the database (`infergate keys`, /admin/keys) and the admin token; each
 * key's model allow-list, expiry, token budget, requests and tokens per minute (sliding
 * 60 s windows of 1 s buckets), concurrency and max_tokens cap; and usage per key, model
 * and hour, accumulated in memory and written to the database every AUTH_FLUSH_MS.
 *
 * Keys are held in memory by HMAC-SHA256(server secret, key), so a request costs one HMAC
 * and one hash lookup, and the database never sees a key. Runtime counters belong to the
 * key's name and survive reloads.
 */
#ifndef IG_AUTH_H
#define IG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_error.h"

struct auth;
struct auth_state;
struct cfg;
struct event_base;
struct store;

#define AUTH_FLUSH_MS 1000
#define AUTH_NAME_MAX 128

/* The caller of one request (filled by auth_identify(); release with auth_caller_release()). */
struct auth_caller {
    struct auth_state *state; /* the key's counters; NULL for the admin token or no auth */
    bool is_admin;            /* the admin token, or a llama-swap apiKeys key with no admin token */
    bool is_admitted;         /* auth_admit() counted it in flight */
    char name[AUTH_NAME_MAX]; /* key name; "admin"; "-" when auth is off */
};

/* Why a request is refused: status, OpenAI error code and message, Retry-After (0: none). */
struct auth_refusal {
    int status;
    const char *code;
    char message[256];
    int retry_after_s;
};

/* What a finished request used. */
struct auth_usage {
    uint64_t prompt_tokens, completion_tokens;
    uint64_t latency_ms;
    bool is_error;
};

/* Creates the key table from CFG and the database ST (borrowed, not started yet: reads run
 * with store_run()). Returns NULL with *CAUSE (caller frees) when the secret or the keys
 * cannot be read. Release with auth_free(). */
struct auth *auth_new(struct store *st, const struct cfg *cfg, char **cause);

/* Starts the usage flush timer and the watch for keys changed by another process. */
int auth_start(struct auth *a, struct event_base *base) IG_WUR;

/* Applies a reloaded config's keys, apiKeys, admin token and auth switch (CFG borrowed). */
void auth_set_config(struct auth *a, const struct cfg *cfg);

/* Re-reads the database's keys (in a store job). */
void auth_reload_keys(struct auth *a);

struct auth_key_spec;
/* Replaces the database keys with the N SPECS just read (taken; from auth_db_load()). */
void auth_set_db_keys(struct auth *a, struct auth_key_spec *specs, size_t n);

/* Returns whether requests need a key. */
bool auth_is_on(const struct auth *a);

/* Returns whether an admin token is configured. */
bool auth_has_admin_token(const struct auth *a);

/* Identifies the caller by CREDENTIAL (bearer token or x-api-key value; NULL: none). Returns
 * 0 with CALLER set, or IG_EINVAL with R (401) when auth is on and the key is missing or
 * unknown. */
int auth_identify(struct auth *a, const char *credential, struct auth_caller *caller,
                  struct auth_refusal *r) IG_WUR;

/* Identifies the caller as the key named NAME ("admin": the admin token, "-": no auth), for
 * work done on a key's behalf (batches). Returns 0 with CALLER set, or IG_EINVAL with R
 * (401) when auth is on and no such key is in force (revoked, expired or renamed). */
int auth_identify_name(struct auth *a, const char *name, struct auth_caller *caller,
                       struct auth_refusal *r) IG_WUR;

/* Returns whether CALLER may use MODEL (its allow-list; always for admin or no auth). */
bool auth_allows_model(const struct auth_caller *caller, const char *model);

/*
 * Admits a request of CALLER for MODEL asking for MAX_TOKENS (-1: not given): checks expiry
 * (401), allow-list (403), budget (429 insufficient_quota), max_tokens (400), requests and
 * tokens per minute and concurrency (429 with Retry-After). On success counts the request
 * and returns 0; otherwise fills R and returns IG_EBUSY. Refusals are counted as usage
 * errors of the key.
 */
int auth_admit(struct auth *a, struct auth_caller *caller, const char *model, long max_tokens,
               struct auth_refusal *r) IG_WUR;

/* Returns CALLER's cap on max_tokens, 0 when none. */
long auth_max_tokens(const struct auth_caller *caller);

/* Ends CALLER's admitted request for MODEL with U: tokens per minute, budget, usage rows. */
void auth_finish(struct auth *a, struct auth_caller *caller, const char *model,
                 const struct auth_usage *u);

/* Releases CALLER's hold on its key (after auth_finish(), or when not admitted). */
void auth_caller_release(struct auth *a, struct auth_caller *caller);

/* Returns NULL when a database key may be named NAME, else why not (static text). */
const char *auth_name_refusal(const struct auth *a, const char *name);

/* Makes a new key for SPEC with the server secret (see auth_key_make()). */
int auth_make_key(struct auth *a, struct auth_key_spec *spec, char *key) IG_WUR;

/* Queues the usage accumulated so far for the database now (also done every second). */
void auth_flush(struct auth *a);

/* Returns the database (borrowed). */
struct store *auth_store(struct auth *a);

/* Flushes usage and releases A (call before store_free()). auth_free(NULL) is a no-op. */
void auth_free(struct auth *a);

#endif
