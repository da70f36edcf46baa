/*
 * Private to src/config: the loading context shared by cfg.c and the cfg_*.c files.
 * Nothing outside src/config includes this header.
 */
#ifndef IG_CFG_INTERNAL_H
#define IG_CFG_INTERNAL_H

#include "cfg.h"

#include <stddef.h>
#include <yaml.h>

#define CFG_MAX_FILE_BYTES (4u * 1024u * 1024u)
#define CFG_MAX_MODELS 10000u
#define CFG_MAX_STRING_BYTES (64u * 1024u)
#define CFG_MAX_DEPTH 64
#define CFG_MAX_EXPANSION_BYTES (64u * 1024u)
#define CFG_MAX_MACRO_DEPTH 16
#define CFG_MAX_VISITS 1000000L
#define CFG_MAX_SECONDS 2147483 /* INT_MAX / 1000: seconds that still fit in int milliseconds */
#define CFG_MAX_ERRORS 200

/* The type a scalar resolves to, with YAML 1.2 core rules for plain scalars. */
enum cfg_kind { CFG_NULL, CFG_BOOL, CFG_INT, CFG_FLOAT, CFG_STR };

/* A scalar after ${env.X} and macro expansion. TEXT is owned. */
struct cfg_scalar {
    enum cfg_kind kind;
    char *text;
    long long i;
    double f;
    bool b;
};

/* One macro declaration; VALUE holds the raw (unexpanded) typed value. */
struct cfg_macro {
    char *name;
    struct cfg_scalar value;
};

/* An ordered list of macro declarations (global or one model's). */
struct cfg_macros {
    struct cfg_macro *items;
    size_t len;
};

/* One visible macro in a scope; VALUE is borrowed. */
struct cfg_mref {
    const char *name;
    const struct cfg_scalar *value;
};

/*
 * The macros visible where a value is read. Entries are in llama-swap's order:
 * MODEL_ID (in a model), the globals, then the model's own macros; an entry may only use
 * entries before it. PORT: -1 leaves ${PORT} literal, 0 means unavailable, >0 the port.
 */
struct cfg_scope {
    struct cfg_mref *refs;
    size_t len;
    int port;
    bool allow_pid;
    const char *model_id; /* NULL outside models */
};

/* Loading state; lives only during cfg_load_string(). */
struct cfg_ctx {
    const char *name;
    yaml_document_t doc;
    struct cfg *cfg;
    struct cfg_strv errors;
    struct cfg_macros globals;
    struct cfg_scope global_scope;
    const struct cfg_scope *scope; /* current scope, borrowed */
    long visits_left;
    int quiet; /* > 0: errors are counted in n_quiet_errors, not recorded */
    size_t n_quiet_errors;
    bool is_oom;
    yaml_node_t *groups_node;     /* top-level groups, NULL when absent */
    yaml_node_t *matrix_node;     /* top-level matrix */
    yaml_node_t *routing_node;    /* routing */
    yaml_node_t *peers_node;      /* peers, validated after models */
    yaml_node_t *profiles_node;   /* profiles */
    yaml_node_t *selectors_node;  /* selectors */
    yaml_node_t *preload_node;    /* hooks.on_startup.preload */
    yaml_node_t *limits_node;     /* limits, parsed after healthCheckTimeout */
    struct cfg_strv selector_ids; /* ids of selectors */
};

/* A field of a mapping: how to read KEY into the object at OFFSET (or validate only). */
enum cfg_ftype { CFG_F_STR, CFG_F_INT, CFG_F_BOOL, CFG_F_STRV, CFG_F_MAP, CFG_F_ANY, CFG_F_FN };
#define CFG_F_INACTIVE 1u /* accepted, but its feature is not active yet */
#define CFG_NO_STORE ((ptrdiff_t)-1)

typedef void (*cfg_field_fn)(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);

struct cfg_field {
    const char *key;
    enum cfg_ftype type;
    ptrdiff_t offset;
    long long min, max; /* CFG_F_INT bounds */
    cfg_field_fn fn;    /* CFG_F_FN */
    unsigned flags;
};

/* cfg_yaml.c: errors, node access, typed reads. */
void cfg_error(struct cfg_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_warn(struct cfg_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cfg_strv_push(struct cfg_strv *v, const char *s);
int cfg_strv_push_take(struct cfg_strv *v, char *s);
bool cfg_strv_has(const struct cfg_strv *v, const char *s);
void cfg_strv_clear(struct cfg_strv *v);
void cfg_note_inactive(struct cfg_ctx *ctx, const char *prefix, const char *key);
yaml_node_t *cfg_node(struct cfg_ctx *ctx, int index);
const char *cfg_key_text(const yaml_node_t *key);
yaml_node_t *cfg_map_get(struct cfg_ctx *ctx, yaml_node_t *map, const char *key);
int cfg_map_pairs(struct cfg_ctx *ctx, yaml_node_t *map, yaml_node_pair_t **pairs, size_t *n);
bool cfg_expect(struct cfg_ctx *ctx, yaml_node_t *node, yaml_node_type_t type, const char *what);
bool cfg_is_null(const yaml_node_t *node);
int cfg_read_scalar(struct cfg_ctx *ctx, yaml_node_t *node, struct cfg_scalar *out);
void cfg_scalar_clear(struct cfg_scalar *s);
int cfg_read_raw(struct cfg_ctx *ctx, yaml_node_t *node, struct cfg_scalar *out);
int cfg_get_str(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, char **out);
int cfg_get_int(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, long long min,
                long long max, long long *out);
int cfg_get_bool(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, bool *out);
int cfg_get_strv(struct cfg_ctx *ctx, yaml_node_t *node, const char *what, struct cfg_strv *out);
json_t *cfg_get_json(struct cfg_ctx *ctx, yaml_node_t *node, int depth);
void cfg_walk(struct cfg_ctx *ctx, yaml_node_t *map, const struct cfg_field *fields, void *obj,
              const char *inactive_prefix);
void cfg_resolve_plain(const char *text, struct cfg_scalar *out);
int cfg_format_float(double value, char *buf, size_t size);

/* cfg.c: shared parsers. */
/* Parses a size: an integer of bytes or "<n><unit>" (B, K/KiB, KB, M/MiB, MB, G/GiB, GB,
 * T/TiB, TB) up to 1 PiB; returns 0 or -1. */
int cfg_parse_size(const char *text, unsigned long long *out);

/* cfg_matrix.c: expands a validated matrix block into cfg->matrix; frees it. */
void cfg_matrix_build(struct cfg_ctx *ctx, yaml_node_t *matrix);
void cfg_matrix_clear(struct cfg_matrix *m);

/* cfg_budget.c: models_dir, engine (defaults of discovered models) and budget. */
void cfg_top_models_dir(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
void cfg_top_engine(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
void cfg_top_budget(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
/* cfg_batches.c: the `batches` section. */
void cfg_top_batches(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
/* cfg_auth.c: the `auth` and `storage` sections. */
void cfg_top_auth(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
void cfg_top_storage(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
/* Releases AUTH's keys (not the admin token). */
void cfg_auth_clear(struct cfg_auth *auth);

/* cfg_macro.c: macro declarations and expansion. */
void cfg_macros_parse(struct cfg_ctx *ctx, yaml_node_t *map, struct cfg_macros *out);
void cfg_macros_clear(struct cfg_macros *m);
int cfg_scope_init(struct cfg_scope *scope, const struct cfg_macros *globals,
                   const struct cfg_macros *own, const char *model_id,
                   struct cfg_scalar *model_id_value);
void cfg_scope_clear(struct cfg_scope *scope);
int cfg_expand(struct cfg_ctx *ctx, const yaml_node_t *node, struct cfg_scalar *s);
int cfg_env_substitute(struct cfg_ctx *ctx, const yaml_node_t *node, char **text);
bool cfg_has_macro(const char *text, const char *name);

/* cfg_model.c: the models section. */
void cfg_models_parse(struct cfg_ctx *ctx, yaml_node_t *models);
void cfg_model_clear(struct cfg_model *m);

/* cfg_model_fields.c: a model's fields, for cfg_walk() (NULL-terminated). */
extern const struct cfg_field cfg_model_fields[];
/* A peer's fields (proxy, apiKey, models, filters, timeouts) read into one of its models. */
extern const struct cfg_field cfg_peer_fields[];

/* Field handler: timeouts of a model or a peer (llama-swap's connection timeouts: checked,
 * not used). */
void cfg_field_timeouts(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);

/* Reads cmd or cmdStop at NODE (WHAT names it in errors): env, comment lines removed,
 * macros expanded, lines joined. Returns the text (caller frees), or NULL when absent or
 * after recording an error. */
char *cfg_read_command(struct cfg_ctx *ctx, yaml_node_t *node, const char *what);

/* cfg_route.c: groups, routing, matrix, peers, profiles, selectors, hooks. */
void cfg_routes_check(struct cfg_ctx *ctx);
/* Releases the profiles and selectors of CFG. */
void cfg_routes_clear(struct cfg *cfg);
bool cfg_resolves(const struct cfg_ctx *ctx, const char *name);
void cfg_group_clear(struct cfg_group *g);

/* cfg_peer.c: expands `peers` into proxy-only models "<peer>/<model>"; runs after models. */
void cfg_peers_expand(struct cfg_ctx *ctx);

/* cfg_net.c: the front server's `tls` and `cors` sections (infergate-net). */
void cfg_top_tls(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
void cfg_top_cors(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);
/* Sets the defaults of `tls` and `cors`. */
/* Section handler: `nats` (cfg_nats.c). */
void cfg_top_nats(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj);

/* Sets the nats section's defaults. */
void cfg_nats_defaults(struct cfg *cfg);

/* Frees the nats section's strings. */
void cfg_nats_clear(struct cfg *cfg);

void cfg_net_defaults(struct cfg *cfg);
/* Releases the `tls` and `cors` sections. */
void cfg_net_clear(struct cfg *cfg);

#endif
