/*
 * Configuration: a superset of llama-swap's YAML format plus infergate's own sections.
 *
 * cfg_load() parses, expands macros, validates and returns a read-only struct cfg.
 * The struct is a plain value tree: the gateway reads its public fields directly and never
 * modifies them. Everything in it is owned by the struct and released by cfg_free().
 */
#ifndef IG_CFG_H
#define IG_CFG_H

#include "ig_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A list of owned strings. */
struct cfg_strv {
    char **items;
    size_t len;
};

/* A model group (llama-swap `groups`): members that may run together or swap. */
struct cfg_group {
    char *id;
    bool swap;       /* true: only one member runs at a time (default true) */
    bool exclusive;  /* true: starting a member stops models of other groups (default true) */
    bool persistent; /* true: members are never stopped by other groups (default false) */
    struct cfg_strv members;
    int line;
};

/* The API a model's upstream speaks (`api:`). */
enum cfg_model_api {
    CFG_API_OPENAI, /* OpenAI / llama.cpp routes, passed through (the default) */
    CFG_API_OLLAMA, /* Ollama's /api/chat, /api/generate, /api/embed: translated */
};

/* One entry of `models:`; strings are macro-expanded, NULL when absent. */
struct cfg_model {
    char *id;
    char *name;
    char *description;
    char *cmd;      /* command line, comment lines removed, lines joined with spaces */
    char *cmd_stop; /* may still contain ${PID}, substituted when the model stops */
    char *proxy;    /* upstream base URL, default http://localhost:${PORT} */
    char *check_endpoint; /* default "/health"; "none" disables the check */
    char *use_model_name; /* model name sent upstream instead of the id */
    /* apiKey: a secret sent upstream as "Authorization: Bearer KEY" (and x-api-key), NULL
     * when absent or empty. Never printed, logged or returned by any API. */
    char *api_key;
    char *ca_file; /* caFile: PEM CAs trusted for an https proxy instead of the system's */
    enum cfg_model_api api; /* api: openai (default) or ollama */
    /* The peer (llama-swap `peers:`) this model was made from, or NULL for `models:`. A peer
     * model has id "<peer>/<model>", the peer's proxy, apiKey and filters, no cmd, and sends
     * the peer's own model name (use_model_name) upstream. */
    char *peer;
    struct cfg_strv aliases;
    /* backends: several http(s) base URLs serving this model (no cmd), routed between with
     * the routing strategy and a circuit breaker each; proxy is the first when not given. */
    struct cfg_strv backends;
    char *strategy; /* routing between its backends; NULL: nats.strategy, else least-loaded */
    struct cfg_strv env; /* "KEY=VALUE" entries */
    /* Seconds idle before unload, 0 = never. llama-swap semantics, resolved at load time:
     * `ttl: -1` or no ttl takes globalTTL (itself 0 = never by default), `ttl: 0` never
     * unloads even when globalTTL is set, ttl < -1 is an error. Never negative here. */
    int ttl_s;
    int unload_timeout_s; /* unloadTimeout; 0 in the file takes the global value */
    bool unlisted;
    int concurrency_limit; /* 0 = no limit */
    int priority;          /* routing.scheduler.settings.fifo.priority; higher goes first */
    /* ${PORT}: models whose cmd (after macros) uses ${PORT} get startPort, startPort+1, ...
     * in sorted model-id order; 0 when the cmd does not use it (then proxy is required). */
    int port;
    struct cfg_strv strip_params; /* filters.stripParams, split on commas, trimmed */
    json_t *set_params;           /* filters.setParams object or NULL; owned */
    json_t *metadata;             /* metadata object or NULL; owned */
    int line;                     /* line of the model's key in the file; 0 when discovered */
    /* Filled by the model catalog (src/models/model_catalog.c), not read from the file: */
    bool is_discovered;  /* found in models_dir, served by infergate-engine */
    char *gguf_path;     /* the model file when known (-m in cmd, or discovered) */
    unsigned caps;       /* enum gguf_cap bits; 0 when unknown */
    uint64_t mem_bytes;  /* memory when loaded: `memory:` or the estimate; 0 when unknown */
    bool is_memory_configured; /* mem_bytes comes from the model's `memory:` key */
    uint64_t vram_bytes;       /* GPU memory when loaded: `vram:` or the estimate; 0: none */
    bool is_vram_configured;   /* vram_bytes comes from the model's `vram:` key */
    json_t *details;     /* architecture, parameters, quantisation... or NULL; owned */
};

/* Server-wide limits (`limits:` section, infergate's own). */
struct cfg_limits {
    size_t max_body_bytes;   /* default 16 MiB */
    size_t max_header_bytes; /* default 64 KiB */
    int request_timeout_s;   /* whole request incl. generation; default 600 */
    int idle_timeout_s;      /* keep-alive idle; default 60 */
    int queue_length;        /* requests waiting per model; default 64 */
    int queue_timeout_s;     /* max wait in the queue; default = healthCheckTimeout */
    int shutdown_grace_s;    /* in-flight grace on SIGTERM; default 10 */
    int watchdog_s;          /* a stream that stalls this long kills its model; default 120,
                              * 0 = off */
    int swap_wait_ms;        /* swap_wait_s: how long a busy model may keep serving its own
                              * requests before it yields to a waiting model; default 5 s */
    /* Front server (infergate-net): connection caps, URL cap and request deadlines. */
    int max_connections;        /* open at once; default 4096 */
    int max_connections_per_ip; /* open at once per client address; default 512, 0 = no cap */
    size_t max_url_bytes;       /* request target; default 8 KiB (414 beyond) */
    int header_timeout_s;       /* a request head must arrive within; default 10 (408) */
    int read_timeout_s;         /* a whole request (head + body) within; default 60 (408) */
};

/* `tls:` the main listener speaks HTTPS only, with this certificate (reloaded on SIGHUP). */
struct cfg_tls {
    char *cert_path; /* PEM certificate chain, leaf first; NULL: plain HTTP */
    char *key_path;  /* PEM private key, unencrypted */
    int min_version; /* lowest TLS version: 12 (1.2, default) or 13 (1.3) */
    bool is_from_command_line; /* the files come from serve --tls-cert-file/--tls-key-file */
};

/* `nats:` the bus of distributed mode (docs/DISTRIBUTED.md); urls NULL: not configured. */
struct cfg_nats {
    char *urls;       /* comma-separated nats:// or tls:// URLs */
    char *name;       /* this process's name on the bus; NULL: the host name */
    char *token;      /* token authentication, or NULL */
    char *user, *password;
    char *creds_file; /* a .creds file (JWT and NKey seed), or NULL */
    char *ca_file;    /* PEM CAs trusted for the server's certificate, or NULL */
    char *cert_file, *key_file; /* a client certificate, or NULL */
    char *strategy;   /* routing between a model's backends; NULL: least-loaded */
    int stall_timeout_s; /* a tunnel silent this long ends its request; default 30, 0: off */
    int queue_timeout_s; /* longest wait for a worker with room; default 30, 0: no queue */
    int queue_length;    /* requests waiting per model at most; default 1024 */
};

/* `batches:` the OpenAI Batch API (src/batch, docs/API.md); read at start-up only. */
struct cfg_batches {
    int concurrency;    /* lines of this gateway's batches running at once; default 8 */
    int max_file_bytes; /* largest file accepted by POST /v1/files; default 16 MiB */
};

/* `cors:` which browser origins may call the API (llama-swap's default: any). */
struct cfg_cors {
    bool is_enabled;         /* default true; `cors: false` turns CORS handling off */
    bool is_any_origin;      /* origins: "*" (default) */
    struct cfg_strv origins; /* otherwise the allowed origins: "https://app.example.com",
                              * a "*." first label for any subdomain, or "null" */
    struct cfg_strv headers; /* Access-Control-Allow-Headers; empty: echo the requested ones */
    int max_age_s;           /* preflight cache; default 86400 */
    bool allow_credentials;  /* credentials: default false */
};

/* A profile: model names pinned to targets while the profile is active (switched at run
 * time through PUT /api/profiles/active; none is active at start-up and after a reload). */
struct cfg_profile {
    char *id;
    char *description;     /* or NULL */
    struct cfg_strv pins;    /* requested model names */
    struct cfg_strv targets; /* what each pin resolves to; "" disables that name (404) */
};

/* How a selector picks its target per request (llama-swap's `selectors`). */
enum cfg_selector_strategy {
    CFG_SELECT_WARM,      /* the first ready target, else the first starting, else the first */
    CFG_SELECT_PIN,       /* always the first target */
    CFG_SELECT_SPILLOVER, /* fill active targets up to `spillover` requests, then the next */
};

/* A selector: a virtual model id resolved to one of its targets for each request. */
struct cfg_selector {
    char *id;
    enum cfg_selector_strategy strategy;
    struct cfg_strv targets; /* model ids, aliases or peer models, in order */
    int spillover;           /* settings.spillover: requests per active target; default 1 */
    char *name;              /* or NULL */
    char *description;       /* or NULL */
    bool unlisted;
    json_t *metadata; /* metadata object or NULL; owned */
};

/* One combination of models that may run together (indices into cfg->models, sorted). */
struct cfg_model_set {
    size_t *models;
    size_t n;
};

/* llama-swap's matrix router (`routing.router.use: matrix`, or the legacy top-level
 * `matrix`): every concrete set its `sets` expressions allow, and the cost of evicting each
 * model (`evict_costs`, default 1). A model in no set runs alone. */
struct cfg_matrix {
    bool is_active;
    struct cfg_model_set *sets;
    size_t n_sets;
    int *evict_costs; /* by model index, for the N_COSTS models of the file (models found in
                       * models_dir later are in no set and cost 1) */
    size_t n_costs;
};

/* `budget:` memory the loaded models may use together; 0 = unlimited. */
struct cfg_budget {
    uint64_t ram_bytes;  /* bytes, or a percentage of the detected RAM resolved at load */
    uint64_t vram_bytes; /* bytes, or a percentage of the GPUs' memory resolved at load */
    int ram_percent;     /* as written (0 when given in bytes) */
    int vram_percent;    /* as written (0 when given in bytes) */
};

/* One API key of `auth.keys` (hot-reloaded with the config; keys made with `infergate keys`
 * live in the database instead). Limits of 0 are unlimited. */
struct cfg_auth_key {
    char *name;
    char *key;              /* the secret, env references resolved */
    struct cfg_strv models; /* allow-list of model ids; empty: every model */
    int rpm;                /* requests per minute */
    int tpm;                /* tokens (prompt + completion) per minute */
    int concurrency;        /* requests in flight */
    int max_tokens;         /* cap on a request's max_tokens */
    uint64_t budget_tokens; /* tokens in all */
    int64_t expires_at;     /* unix seconds; 0: never */
};

/* `auth:` who may call the API. */
struct cfg_auth {
    bool is_enabled;     /* auth.enabled as written */
    bool is_enabled_set; /* auth.enabled was written; if not, any key or admin token turns it on */
    char *admin_token; /* for /admin/... and every key's data; NULL: admin API disabled */
    struct cfg_auth_key *keys;
    size_t n_keys;
};

/* `storage:` the SQLite database (keys, usage, audit, request log). */
struct cfg_storage {
    char *path;              /* NULL: infergate.db in the state directory */
    int retention_days;      /* request log and model events older than this are deleted */
    int max_log_rows;        /* request log rows kept at most (the oldest go first) */
};

/* `models_dir:` and `engine:`: where GGUF files are discovered and how discovered models
 * are served by infergate-engine. */
struct cfg_discovery {
    struct cfg_strv dirs; /* models_dir: one path or a list */
    char *engine_bin;     /* engine.bin; NULL = infergate-engine beside infergate */
    int ctx_size;         /* engine.ctx_size, default 4096 (per model, shared by slots) */
    int parallel;         /* engine.parallel, default 4 */
    int threads;          /* engine.threads, 0 = the engine's default */
    int n_gpu_layers;     /* engine.n_gpu_layers, default 0 */
    char *args;           /* engine.args: extra flags appended, or NULL */
};

/* The whole configuration. */
struct cfg {
    char *path;
    char *listen_host; /* default "127.0.0.1" */
    int listen_port;   /* default 8080 */
    int health_check_timeout_s; /* default 120 */
    char *log_level;            /* "debug" | "info" | "warn" | "error"; default "info" */
    bool is_log_json;           /* logFormat: json: one JSON object per log line */
    int global_ttl_s;           /* default 0 (never) */
    int unload_timeout_s;       /* unloadTimeout: SIGTERM→SIGKILL grace; default (and 0) 10 */
    int start_port;             /* default 5800 */
    bool include_aliases_in_list;
    struct cfg_strv api_keys;
    struct cfg_auth auth;
    struct cfg_storage storage;
    struct cfg_model *models;
    size_t n_models;
    struct cfg_group *groups;
    size_t n_groups;
    struct cfg_limits limits;
    struct cfg_tls tls;   /* infergate-net */
    struct cfg_cors cors; /* infergate-net */
    struct cfg_nats nats;
    struct cfg_batches batches;
    /* serve --insecure-no-auth (the command line, never the file): listening beyond loopback
     * without authentication is allowed (infergate-net). */
    bool is_insecure_no_auth;
    struct cfg_matrix matrix;
    struct cfg_profile *profiles; /* in file order */
    size_t n_profiles;
    struct cfg_selector *selectors; /* in file order */
    size_t n_selectors;
    struct cfg_budget budget;
    struct cfg_discovery discovery;
    /* hooks.on_startup.preload: model ids (aliases resolved) started in order at start-up. */
    struct cfg_strv preload;
    /* Keys recognised but whose feature is not active yet, e.g. "peers", "hooks". */
    struct cfg_strv inactive_keys;
    /* Warnings ("file:line:col: unknown key 'x'"), printed once by the caller. */
    struct cfg_strv warnings;
};

/*
 * Loads and validates PATH. On success *OUT is set (caller frees with cfg_free()).
 * On failure returns IG_ECONFIG (or IG_EIO/IG_ENOMEM) and *CAUSE gets every problem as
 * "file:line:col: message" lines (caller frees with free()).
 */
int cfg_load(const char *path, struct cfg **out, char **cause) IG_WUR;

/* Same as cfg_load() but from a string; NAME is used in messages. */
int cfg_load_string(const char *text, size_t len, const char *name, struct cfg **out,
                    char **cause) IG_WUR;

/* Releases a config; cfg_free(NULL) is a no-op. */
void cfg_free(struct cfg *cfg);

/* Finds a model by id or alias; returns a borrowed pointer or NULL. */
const struct cfg_model *cfg_find_model(const struct cfg *cfg, const char *name);

/* Returns the group a model belongs to (borrowed) or NULL: ungrouped models form
 * llama-swap's implicit default group (swap, exclusive, not persistent). */
const struct cfg_group *cfg_model_group(const struct cfg *cfg, const char *model_id);

/* Adds a copy of TEXT to cfg->warnings; returns 0 or IG_ENOMEM. */
int cfg_add_warning(struct cfg *cfg, const char *text);

/* Appends a model ID served by CMD (owned copies are made) on PORT when no model uses it,
 * else on the next free port after every other model's, with the global ttl and
 * unloadTimeout. ${PORT} in CMD is replaced. Returns the new model (valid until the next
 * append) or NULL when out of memory. */
struct cfg_model *cfg_append_model(struct cfg *cfg, const char *id, const char *cmd, int port);

/* Returns the profile ID (borrowed) or NULL. */
const struct cfg_profile *cfg_find_profile(const struct cfg *cfg, const char *id);

/* Returns the selector ID (borrowed) or NULL. */
const struct cfg_selector *cfg_find_selector(const struct cfg *cfg, const char *id);

/* Returns whether SET contains model index MODEL. */
bool cfg_matrix_set_has(const struct cfg_model_set *set, size_t model);

/* Returns whether A and B run the same process (cmd, cmdStop, proxy, checkEndpoint, env and
 * port are equal), so a reload may keep it running. */
bool cfg_model_same_process(const struct cfg_model *a, const struct cfg_model *b);

/* Makes CFG's listener speak TLS with CERT_PATH and KEY_PATH (copied), whatever its `tls`
 * section says (its min_version still applies): serve --tls-cert-file/--tls-key-file. A key
 * file readable by every user adds a warning. Returns 0 or IG_ENOMEM. */
int cfg_set_tls_files(struct cfg *cfg, const char *cert_path, const char *key_path) IG_WUR;

/* Replaces nats.urls with URLS (comma-separated nats:// or tls:// URLs, e.g. from
 * `worker --nats`); returns 0, or -1 when URLS is not such a list or out of memory. */
int cfg_nats_set_urls(struct cfg *cfg, const char *urls) IG_WUR;

/* Makes the config of a model that only workers serve (distributed mode): id ID and the
 * capability bits CAPS (enum gguf_cap), nothing else; NULL when out of memory. */
struct cfg_model *cfg_model_new_remote(const char *id, unsigned caps);

/* Frees a model made by cfg_model_new_remote(); NULL is a no-op. */
void cfg_model_free_remote(struct cfg_model *m);

/* Returns whether NAME is a routing strategy (least-loaded, round-robin, priority,
 * prefix-affinity). */
bool cfg_strategy_valid(const char *name);

/* Carries the settings of PREV that came from the command line, not the file (TLS files,
 * --insecure-no-auth), over to NEXT, a reload of the same file. Returns 0 or IG_ENOMEM. */
int cfg_keep_command_line(struct cfg *next, const struct cfg *prev) IG_WUR;

/* Returns whether the config turns auth on: auth.enabled, or when absent a configured key
 * or admin token (keys in the database turn it on too, at run time). */
bool cfg_auth_is_on(const struct cfg *cfg);

#endif
