/* API keys, limits and usage at request time (see auth.h). */
#include "auth.h"
#include "auth_keys.h"
#include "auth_hasher.h"
#include "auth_usage.h"
#include "ig_text.h"
#include "cfg.h"
#include "ig_log.h"
#include "ig_time.h"
#include "store.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_S 60
#define LEGACY_PREFIX "apiKeys["

/* Counts over the last WINDOW_S seconds in one-second buckets. */
struct window {
    int64_t sec[WINDOW_S];
    uint64_t n[WINDOW_S];
};

/* One key's limits and counters; counters live as long as its name does. */
struct auth_state {
    char name[AUTH_NAME_MAX];
    uint8_t hash[AUTH_HASH_BYTES];
    json_t *models; /* allow-list (owned), NULL: all */
    int64_t rpm, tpm, concurrency, max_tokens, budget_tokens, expires_at;
    bool is_legacy; /* llama-swap apiKeys: no limits, admin when no admin token */
    bool is_live;   /* in the current key table */
    int refs;       /* callers holding it */
    int in_flight;
    uint64_t tokens_total; /* for the budget: every token ever counted under this name */
    struct window requests, tokens;
    struct auth_state *next, *hash_next;
};


/* Token totals per key name read at start-up (for budgets). */
struct name_total {
    char name[AUTH_NAME_MAX];
    uint64_t tokens;
};

struct auth {
    struct store *st;
    uint8_t secret[AUTH_SECRET_BYTES];
    bool is_on, has_admin;
    bool is_enabled, is_enabled_set; /* auth.enabled as configured */
    bool is_started;
    uint8_t admin_hash[AUTH_HASH_BYTES];
    struct auth_key_spec *cfg_specs, *db_specs;
    bool *cfg_is_legacy;
    size_t n_cfg, n_db;
    struct auth_state *all;
    struct auth_state **by_hash;
    size_t n_buckets;
    struct name_total *totals;
    size_t n_totals;
    struct usage_log *usage;
    struct auth_hasher *hasher;
    struct event *flush_ev;
    bool is_reload_running, is_reload_wanted;
};

/* ------------------------------------------------------------------ windows -- */

/* Returns the window's total over the last WINDOW_S seconds before NOW. */
static uint64_t window_sum(const struct window *w, int64_t now)
{
    uint64_t sum = 0;
    for (int i = 0; i < WINDOW_S; i++)
        if (w->sec[i] > now - WINDOW_S)
            sum += w->n[i];
    return sum;
}

/* Adds N at second NOW. */
static void window_add(struct window *w, int64_t now, uint64_t n)
{
    int i = (int)(now % WINDOW_S);
    if (w->sec[i] != now) {
        w->sec[i] = now;
        w->n[i] = 0;
    }
    w->n[i] += n;
}

/* Returns the seconds until the window's total drops below LIMIT (at least 1). */
static int window_retry_s(const struct window *w, int64_t now, uint64_t limit)
{
    uint64_t sum = window_sum(w, now);
    for (int64_t s = now - WINDOW_S + 1; s <= now; s++) {
        const int i = (int)(s % WINDOW_S);
        if (w->sec[i] == s)
            sum -= w->n[i];
        if (sum < limit)
            return (int)(s + WINDOW_S - now);
    }
    return WINDOW_S;
}

/* ------------------------------------------------------------------ the table -- */

/* Returns a bucket index for LEN bytes at DATA (FNV-1a). */
static size_t bucket_of(const struct auth *a, const void *data, size_t len)
{
    return (size_t)(ig_fnv1a(data, len, IG_FNV1A_INIT) & (a->n_buckets - 1));
}

/* Orders name totals (and states, through their first member) by name. */
static int cmp_total(const void *x, const void *y)
{
    return strcmp(((const struct name_total *)x)->name, ((const struct name_total *)y)->name);
}

/* Returns NAME's total entry, or NULL (totals are kept sorted). */
static struct name_total *find_total(const struct auth *a, const char *name)
{
    struct name_total key;
    snprintf(key.name, sizeof(key.name), "%s", name);
    return a->n_totals > 0 ? bsearch(&key, a->totals, a->n_totals, sizeof(key), cmp_total) : NULL;
}

/* Remembers NAME's token total, for a key that comes back after a reload removed it. */
static void keep_total(struct auth *a, const char *name, uint64_t tokens)
{
    struct name_total *t = find_total(a, name), *grown;
    size_t at = 0;

    if (t != NULL) {
        t->tokens = tokens;
        return;
    }
    grown = realloc(a->totals, (a->n_totals + 1) * sizeof(*grown));
    if (grown == NULL)
        return;
    a->totals = grown;
    while (at < a->n_totals && strcmp(a->totals[at].name, name) < 0)
        at++;
    memmove(&a->totals[at + 1], &a->totals[at], (a->n_totals - at) * sizeof(*grown));
    snprintf(a->totals[at].name, AUTH_NAME_MAX, "%s", name);
    a->totals[at].tokens = tokens;
    a->n_totals++;
}

/* Frees state S. */
static void state_free(struct auth_state *s)
{
    json_decref(s->models);
    free(s);
}

/* Orders state pointers by name (name is the first member of struct auth_state). */
static int cmp_state(const void *x, const void *y)
{
    return strcmp((*(struct auth_state *const *)x)->name, (*(struct auth_state *const *)y)->name);
}

/* Makes SPEC live: updates the state of its name among OLD (N_OLD, sorted by name; one
 * already made live again is not taken twice) or creates one. */
static void apply_spec(struct auth *a, struct auth_state **old, size_t n_old,
                       const struct auth_key_spec *spec, bool is_legacy)
{
    struct auth_state key, *kp = &key, **found, *s;

    snprintf(key.name, sizeof(key.name), "%s", spec->name);
    found = n_old > 0 ? bsearch(&kp, old, n_old, sizeof(*old), cmp_state) : NULL;
    if (found != NULL && !(*found)->is_live) {
        s = *found;
    } else {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return;
        snprintf(s->name, sizeof(s->name), "%s", spec->name);
        struct name_total *t = find_total(a, s->name);
        s->tokens_total = t != NULL ? t->tokens : 0;
    }
    memcpy(s->hash, spec->hash, AUTH_HASH_BYTES);
    json_decref(s->models);
    s->models = spec->models != NULL ? json_deep_copy(spec->models) : NULL;
    s->rpm = spec->rpm;
    s->tpm = spec->tpm;
    s->concurrency = spec->concurrency;
    s->max_tokens = spec->max_tokens;
    s->budget_tokens = spec->budget_tokens;
    s->expires_at = spec->expires_at;
    s->is_legacy = is_legacy;
    s->is_live = true;
    s->next = a->all;
    a->all = s;
}

/* Returns whether NAME is one of the config's keys (a->cfg_specs, sorted by name). */
static bool is_cfg_name(const struct auth *a, const char *name)
{
    for (size_t lo = 0, hi = a->n_cfg; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, a->cfg_specs[mid].name);
        if (c == 0)
            return true;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* Rebuilds the live key table from the config's and the database's keys. States keep
 * their counters by name; the lookups are sorted, so this is O(n log n). */
static void rebuild(struct auth *a)
{
    struct auth_state *s, *next, **old = NULL;
    size_t n = 0, n_old = 0, n_db_live = 0;

    for (s = a->all; s != NULL; s = s->next)
        n_old++;
    old = calloc(n_old > 0 ? n_old : 1, sizeof(*old));
    if (old == NULL)
        return; /* out of memory: keep the table as it is */
    n_old = 0;
    for (s = a->all; s != NULL; s = next) {
        next = s->next;
        s->is_live = false;
        old[n_old++] = s;
    }
    qsort(old, n_old, sizeof(*old), cmp_state);
    a->all = NULL;
    for (size_t i = 0; i < a->n_cfg; i++)
        apply_spec(a, old, n_old, &a->cfg_specs[i], a->cfg_is_legacy[i]);
    for (size_t i = 0; i < a->n_db; i++) {
        if (a->db_specs[i].revoked_at != 0)
            continue;
        if (is_cfg_name(a, a->db_specs[i].name)) {
            ig_warn("auth: database key '%s' has the name of a config key; the config's is used",
                    a->db_specs[i].name);
            continue;
        }
        apply_spec(a, old, n_old, &a->db_specs[i], false);
        n_db_live++;
    }
    for (size_t i = 0; i < n_old; i++) { /* gone: freed when the last caller lets go */
        if ((s = old[i])->is_live)
            continue; /* taken by apply_spec() */
        keep_total(a, s->name, s->tokens_total);
        s->next = NULL;
        if (s->refs == 0)
            state_free(s);
    }
    free(old);
    /* auth.enabled decides when written; otherwise any key or an admin token turns it on. */
    bool was_on = a->is_on;
    a->is_on = a->is_enabled_set ? a->is_enabled
                                 : a->n_cfg > 0 || a->has_admin || n_db_live > 0;
    if (a->is_on != was_on && a->is_started)
        ig_info("auth is now %s", a->is_on ? "on (keys exist)" : "off");
    for (s = a->all; s != NULL; s = s->next)
        n++;
    free(a->by_hash);
    a->n_buckets = 16;
    while (a->n_buckets < 2 * n)
        a->n_buckets *= 2;
    a->by_hash = calloc(a->n_buckets, sizeof(*a->by_hash));
    if (a->by_hash == NULL) {
        a->n_buckets = 0;
        return;
    }
    for (s = a->all; s != NULL; s = s->next) {
        size_t h = bucket_of(a, s->hash, AUTH_HASH_BYTES);
        s->hash_next = a->by_hash[h];
        a->by_hash[h] = s;
    }
}

/* Orders specs by name. */
static int cmp_spec(const void *x, const void *y)
{
    return strcmp(((const struct auth_key_spec *)x)->name, ((const struct auth_key_spec *)y)->name);
}

/* Releases N specs at SPECS. */
static void specs_free(struct auth_key_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(specs[i].models);
    free(specs);
}

/* Store job: reads every key row into the auth_db_load result at ARG. */
struct key_load {
    struct auth *a;
    struct auth_key_spec *specs;
    size_t n;
};

static int load_job(sqlite3 *db, void *arg)
{
    struct key_load *kl = arg;
    return auth_db_load(db, &kl->specs, &kl->n);
}

/* Reads the budget totals of every key name. */
static int totals_job(sqlite3 *db, void *arg)
{
    struct auth *a = arg;
    sqlite3_stmt *stmt = NULL;
    int rc = IG_EIO;

    if (sqlite3_prepare_v2(db,
                           "SELECT key_name, sum(prompt_tokens + completion_tokens) FROM "
                           "usage_hourly GROUP BY key_name",
                           -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    while (sqlite3_step(stmt) == SQLITE_ROW)
        keep_total(a, (const char *)sqlite3_column_text(stmt, 0),
                   (uint64_t)sqlite3_column_int64(stmt, 1));
    rc = 0;
    sqlite3_finalize(stmt);
    return rc;
}

void auth_set_db_keys(struct auth *a, struct auth_key_spec *specs, size_t n)
{
    specs_free(a->db_specs, a->n_db);
    a->db_specs = specs;
    a->n_db = n;
    rebuild(a);
}

/* The keys were read (on the loop). */
static void load_done(int rc, void *arg)
{
    struct key_load *kl = arg;
    struct auth *a = kl->a;

    if (rc == 0)
        auth_set_db_keys(a, kl->specs, kl->n);
    else
        ig_error("auth: cannot read the keys from the database: %s", ig_strerror(rc));
    free(kl);
    a->is_reload_running = false;
    if (a->is_reload_wanted) {
        a->is_reload_wanted = false;
        auth_reload_keys(a);
    }
}

void auth_reload_keys(struct auth *a)
{
    struct key_load *kl;

    if (a->is_reload_running) {
        a->is_reload_wanted = true; /* one more read after this one: it may predate the change */
        return;
    }
    kl = calloc(1, sizeof(*kl));
    if (kl == NULL)
        return;
    kl->a = a;
    if (store_submit(a->st, load_job, load_done, kl) != 0) {
        free(kl);
        return;
    }
    a->is_reload_running = true;
}

/* The database changed under us (another process). */
static void external_change_cb(void *arg)
{
    auth_reload_keys(arg);
}

/* Sorts the N config SPECS by name, with their LEGACY flags. */
static void qsort_specs(struct auth_key_spec *specs, bool *legacy, size_t n)
{
    for (size_t i = 0; i < n; i++) /* stash the flag in the spec while sorting */
        specs[i].revoked_at = legacy[i] ? 1 : 0;
    qsort(specs, n, sizeof(*specs), cmp_spec);
    for (size_t i = 0; i < n; i++) {
        legacy[i] = specs[i].revoked_at != 0;
        specs[i].revoked_at = 0;
    }
}

void auth_set_config(struct auth *a, const struct cfg *cfg)
{
    size_t n = cfg->auth.n_keys + cfg->api_keys.len;
    struct auth_key_spec *specs = calloc(n > 0 ? n : 1, sizeof(*specs));
    bool *legacy = calloc(n > 0 ? n : 1, sizeof(*legacy));

    if (specs == NULL || legacy == NULL) {
        free(specs);
        free(legacy);
        ig_error("auth: out of memory applying the config's keys");
        return;
    }
    for (size_t i = 0; i < cfg->auth.n_keys; i++) {
        const struct cfg_auth_key *k = &cfg->auth.keys[i];
        struct auth_key_spec *s = &specs[i];
        snprintf(s->name, sizeof(s->name), "%s", k->name);
        auth_key_hash(a->secret, k->key, strlen(k->key), s->hash);
        if (k->models.len > 0) {
            s->models = json_array();
            for (size_t m = 0; m < k->models.len; m++)
                json_array_append_new(s->models, json_string(k->models.items[m]));
        }
        s->rpm = k->rpm;
        s->tpm = k->tpm;
        s->concurrency = k->concurrency;
        s->max_tokens = k->max_tokens;
        s->budget_tokens = (int64_t)k->budget_tokens;
        s->expires_at = k->expires_at;
    }
    for (size_t i = 0; i < cfg->api_keys.len; i++) {
        struct auth_key_spec *s = &specs[cfg->auth.n_keys + i];
        snprintf(s->name, sizeof(s->name), LEGACY_PREFIX "%zu]", i);
        auth_key_hash(a->secret, cfg->api_keys.items[i], strlen(cfg->api_keys.items[i]), s->hash);
        legacy[cfg->auth.n_keys + i] = true;
    }
    specs_free(a->cfg_specs, a->n_cfg);
    free(a->cfg_is_legacy);
    qsort_specs(specs, legacy, n);
    a->cfg_specs = specs;
    a->cfg_is_legacy = legacy;
    a->n_cfg = n;
    a->is_enabled = cfg->auth.is_enabled;
    a->is_enabled_set = cfg->auth.is_enabled_set;
    a->has_admin = cfg->auth.admin_token != NULL;
    if (a->has_admin)
        auth_key_hash(a->secret, cfg->auth.admin_token, strlen(cfg->auth.admin_token),
                      a->admin_hash);
    rebuild(a);
}

struct auth *auth_new(struct store *st, const struct cfg *cfg, char **cause)
{
    struct auth *a = calloc(1, sizeof(*a));
    char path[4096];
    struct key_load kl = {0};

    if (a == NULL)
        return NULL;
    a->st = st;
    a->usage = usage_log_new(st);
    if (a->usage == NULL) {
        free(a);
        return NULL;
    }
    auth_secret_path(store_path(st), path, sizeof(path));
    if (auth_secret_load(path, a->secret, cause) != 0) {
        auth_free(a);
        return NULL;
    }
    a->hasher = auth_hasher_new(a->secret);
    if (a->hasher == NULL) {
        if (cause != NULL && asprintf(cause, "OpenSSL cannot make an HMAC-SHA256 context") < 0)
            *cause = NULL;
        auth_free(a);
        return NULL;
    }
    kl.a = a;
    if (store_run(st, totals_job, a) != 0 || store_run(st, load_job, &kl) != 0) {
        if (cause != NULL && asprintf(cause, "%s: cannot read the keys", store_path(st)) < 0)
            *cause = NULL;
        auth_free(a);
        return NULL;
    }
    a->db_specs = kl.specs;
    a->n_db = kl.n;
    auth_set_config(a, cfg);
    return a;
}

/* ------------------------------------------------------------------- usage -- */

void auth_flush(struct auth *a)
{
    usage_log_flush(a->usage);
}

/* The flush timer. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    auth_flush(arg);
}

int auth_start(struct auth *a, struct event_base *base)
{
    struct timeval tv = {AUTH_FLUSH_MS / 1000, (AUTH_FLUSH_MS % 1000) * 1000};

    a->flush_ev = event_new(base, -1, EV_PERSIST, flush_cb, a);
    if (a->flush_ev == NULL || event_add(a->flush_ev, &tv) != 0)
        return IG_ENOMEM;
    store_on_external_change(a->st, external_change_cb, a);
    a->is_started = true;
    return 0;
}

/* -------------------------------------------------------------- requests -- */

bool auth_is_on(const struct auth *a)
{
    return a->is_on;
}

bool auth_has_admin_token(const struct auth *a)
{
    return a->has_admin;
}

/* Fills R. */
static void refuse(struct auth_refusal *r, int status, const char *code, int retry_after_s,
                   const char *fmt, const char *a1, long long n)
{
    r->status = status;
    r->code = code;
    r->retry_after_s = retry_after_s;
    snprintf(r->message, sizeof(r->message), fmt, a1, n);
}

int auth_identify(struct auth *a, const char *credential, struct auth_caller *caller,
                  struct auth_refusal *r)
{
    uint8_t hash[AUTH_HASH_BYTES];

    memset(caller, 0, sizeof(*caller));
    if (!a->is_on) {
        caller->is_admin = true;
        snprintf(caller->name, sizeof(caller->name), "-");
        return 0;
    }
    if (credential == NULL || credential[0] == '\0') {
        refuse(r, 401, "missing_api_key", 0,
               "%sno API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'", "", 0);
        return IG_EINVAL;
    }
    size_t len = strlen(credential);
    auth_hasher_hash(a->hasher, credential, len, hash);
    if (a->has_admin && CRYPTO_memcmp(hash, a->admin_hash, AUTH_HASH_BYTES) == 0) {
        auth_hasher_remember(a->hasher, credential, len, hash);
        caller->is_admin = true;
        snprintf(caller->name, sizeof(caller->name), "admin");
        return 0;
    }
    for (struct auth_state *s = a->n_buckets > 0 ? a->by_hash[bucket_of(a, hash, sizeof(hash))] : NULL;
         s != NULL; s = s->hash_next) {
        if (CRYPTO_memcmp(hash, s->hash, AUTH_HASH_BYTES) == 0) {
            int64_t now = ig_unix_s();
            if (s->expires_at > 0 && now >= s->expires_at) {
                refuse(r, 401, "key_expired", 0, "API key '%s' expired %lld s ago", s->name,
                       (long long)(now - s->expires_at));
                return IG_EINVAL;
            }
            auth_hasher_remember(a->hasher, credential, len, hash);
            s->refs++;
            caller->state = s;
            caller->is_admin = s->is_legacy && !a->has_admin;
            snprintf(caller->name, sizeof(caller->name), "%s", s->name);
            return 0;
        }
    }
    refuse(r, 401, "invalid_api_key", 0, "%sinvalid API key (unknown or revoked)", "", 0);
    return IG_EINVAL;
}

int auth_identify_name(struct auth *a, const char *name, struct auth_caller *caller,
                       struct auth_refusal *r)
{
    int64_t now = ig_unix_s();

    memset(caller, 0, sizeof(*caller));
    if (!a->is_on || (strcmp(name, "admin") == 0 && a->has_admin)) {
        caller->is_admin = true;
        snprintf(caller->name, sizeof(caller->name), "%s", a->is_on ? "admin" : "-");
        return 0;
    }
    for (struct auth_state *s = a->all; s != NULL; s = s->next) {
        if (!s->is_live || strcmp(s->name, name) != 0)
            continue;
        if (s->expires_at > 0 && now >= s->expires_at)
            break;
        s->refs++;
        caller->state = s;
        caller->is_admin = s->is_legacy && !a->has_admin;
        snprintf(caller->name, sizeof(caller->name), "%s", s->name);
        return 0;
    }
    r->status = 401;
    r->code = "invalid_api_key";
    r->retry_after_s = 0;
    snprintf(r->message, sizeof(r->message), "the API key '%.100s' of this batch is no longer "
                                             "in force", name);
    return IG_EINVAL;
}

bool auth_allows_model(const struct auth_caller *caller, const char *model)
{
    const struct auth_state *s = caller->state;
    size_t i;
    json_t *m;

    if (s == NULL || s->models == NULL)
        return true;
    json_array_foreach(s->models, i, m) if (strcmp(json_string_value(m), model) == 0) return true;
    return false;
}

int auth_admit(struct auth *a, struct auth_caller *caller, const char *model, long max_tokens,
               struct auth_refusal *r)
{
    struct auth_state *s = caller->state;
    int64_t now = ig_unix_s();
    static const struct auth_usage refused = {0, 0, 0, true};

    if (s == NULL) {
        caller->is_admitted = true;
        return 0;
    }
    if (s->expires_at > 0 && now >= s->expires_at)
        refuse(r, 401, "key_expired", 0, "API key '%s' expired %lld s ago", s->name,
               (long long)(now - s->expires_at));
    else if (!auth_allows_model(caller, model)) {
        refuse(r, 403, "model_not_allowed", 0, "%s", "", 0);
        snprintf(r->message, sizeof(r->message), "API key '%s' may not use model '%s'", s->name,
                 model);
    }
    else if (s->budget_tokens > 0 && s->tokens_total >= (uint64_t)s->budget_tokens)
        refuse(r, 429, "insufficient_quota", 0,
               "API key '%s' has used its budget of %lld tokens", s->name, (long long)s->budget_tokens);
    else if (s->max_tokens > 0 && max_tokens > s->max_tokens)
        refuse(r, 400, "max_tokens_exceeded", 0,
               "API key '%s' may ask for at most max_tokens %lld", s->name, (long long)s->max_tokens);
    else if (s->concurrency > 0 && s->in_flight >= s->concurrency)
        refuse(r, 429, "concurrency_limit_exceeded", 1,
               "API key '%s' has reached its limit of %lld concurrent requests", s->name,
               (long long)s->concurrency);
    else if (s->rpm > 0 && window_sum(&s->requests, now) >= (uint64_t)s->rpm)
        refuse(r, 429, "rate_limit_exceeded", window_retry_s(&s->requests, now, (uint64_t)s->rpm),
               "API key '%s' has reached its limit of %lld requests per minute", s->name,
               (long long)s->rpm);
    else if (s->tpm > 0 && window_sum(&s->tokens, now) >= (uint64_t)s->tpm)
        refuse(r, 429, "tokens_rate_limit_exceeded",
               window_retry_s(&s->tokens, now, (uint64_t)s->tpm),
               "API key '%s' has reached its limit of %lld tokens per minute", s->name,
               (long long)s->tpm);
    else {
        s->in_flight++;
        window_add(&s->requests, now, 1);
        caller->is_admitted = true;
        return 0;
    }
    usage_log_add(a->usage, s->name, model, 1, &refused);
    return IG_EBUSY;
}

long auth_max_tokens(const struct auth_caller *caller)
{
    return caller->state != NULL ? (long)caller->state->max_tokens : 0;
}

void auth_finish(struct auth *a, struct auth_caller *caller, const char *model,
                 const struct auth_usage *u)
{
    struct auth_state *s = caller->state;
    uint64_t tokens = u->prompt_tokens + u->completion_tokens;

    if (!caller->is_admitted)
        return;
    caller->is_admitted = false;
    if (s != NULL) {
        s->in_flight--;
        window_add(&s->tokens, ig_unix_s(), tokens);
        s->tokens_total += tokens;
    }
    usage_log_add(a->usage, caller->name, model != NULL ? model : "", 1, u);
}

void auth_caller_release(struct auth *a, struct auth_caller *caller)
{
    struct auth_state *s = caller->state;
    (void)a;

    if (s == NULL)
        return;
    caller->state = NULL;
    if (--s->refs == 0 && !s->is_live)
        state_free(s);
}

const char *auth_name_refusal(const struct auth *a, const char *name)
{
    if (auth_name_is_reserved(name))
        return "name: 'admin', '-' and 'apiKeys[...]' are reserved";
    if (is_cfg_name(a, name))
        return "name: a key of the config (auth.keys) has this name";
    return NULL;
}

int auth_make_key(struct auth *a, struct auth_key_spec *spec, char *key)
{
    return auth_key_make(a->secret, spec, key);
}

struct store *auth_store(struct auth *a)
{
    return a->st;
}

void auth_free(struct auth *a)
{
    struct auth_state *s, *next;

    if (a == NULL)
        return;
    usage_log_free(a->usage);
    if (a->flush_ev != NULL)
        event_free(a->flush_ev);
    store_on_external_change(a->st, NULL, NULL);
    for (s = a->all; s != NULL; s = next) {
        next = s->next;
        state_free(s);
    }
    specs_free(a->cfg_specs, a->n_cfg);
    specs_free(a->db_specs, a->n_db);
    free(a->cfg_is_legacy);
    free(a->by_hash);
    free(a->totals);
    auth_hasher_free(a->hasher);
    OPENSSL_cleanse(a->secret, sizeof(a->secret));
    free(a);
}
