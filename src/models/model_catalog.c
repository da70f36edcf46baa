/* The model catalog: file facts for configured models, and models found in models_dir. */
#include "model_catalog.h"
#include "cfg.h"
#include "gguf_meta.h"
#include "model_mem.h"
#include "model_scan.h"
#include "sup_argv.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CMD_MAX 8192

/* Returns whether A is one of the flag spellings NAMES (NULL-terminated). */
static bool is_flag(const char *a, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(a, *names) == 0)
            return true;
    return false;
}

/* Returns V as a non-negative int, or 0 when it is not one. */
static int to_int(const char *v)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != v && *end == '\0' && n >= 0 && n <= INT_MAX ? (int)n : 0;
}

/* Returns whether V is a negative integer (llama-server's -ngl -1 "auto", -2 "all"). */
static bool is_negative(const char *v)
{
    char *end = NULL;
    return strtol(v, &end, 10) < 0 && end != v && *end == '\0';
}

int catalog_parse_args(const char *cmd, struct catalog_args *out)
{
    static const char *const model[] = {"-m", "--model", NULL};
    static const char *const ctx[] = {"-c", "--ctx-size", NULL};
    static const char *const np[] = {"-np", "--parallel", NULL};
    static const char *const batch[] = {"-b", "--batch-size", NULL};
    static const char *const ngl[] = {"-ngl", "--n-gpu-layers", "--gpu-layers", NULL};
    static const char *const emb[] = {"--embedding", "--embeddings", NULL};
    static const char *const nkvo[] = {"-nkvo", "--no-kv-offload", NULL};
    char **argv = NULL, *cause = NULL, name[64];
    int argc = 0;

    memset(out, 0, sizeof(*out));
    if (cmd == NULL)
        return 0;
    if (sup_argv_split(cmd, &argv, &argc, &cause) != 0) {
        free(cause);
        return IG_EINVAL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool is_inline = strncmp(a, "--", 2) == 0 && eq != NULL && (size_t)(eq - a) < sizeof(name);

        if (is_inline) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            a = name;
            v = eq + 1;
        }
        if (is_flag(a, emb)) {
            out->is_embedding = 1;
            continue;
        }
        if (is_flag(a, nkvo)) {
            out->is_kv_on_cpu = 1;
            continue;
        }
        if (v == NULL)
            continue;
        if (is_flag(a, model)) {
            free(out->model_path);
            out->model_path = strdup(v);
        } else if (is_flag(a, ctx)) {
            out->ctx_size = to_int(v);
        } else if (is_flag(a, np)) {
            out->parallel = to_int(v);
        } else if (is_flag(a, batch)) {
            out->batch_size = to_int(v);
        } else if (is_flag(a, ngl)) {
            out->has_n_gpu_layers = 1;
            out->n_gpu_layers =
                strcmp(v, "all") == 0 || strcmp(v, "auto") == 0 || is_negative(v) ? -1 : to_int(v);
        } else {
            continue;
        }
        if (!is_inline)
            i++;
    }
    sup_argv_free(argv);
    return 0;
}

void catalog_args_clear(struct catalog_args *args)
{
    free(args->model_path);
    memset(args, 0, sizeof(*args));
}

char *catalog_quote(const char *word)
{
    size_t n = 3;
    char *out, *p;

    for (const char *s = word; *s != '\0'; s++)
        n += *s == '\'' ? 4 : 1;
    out = malloc(n);
    if (out == NULL)
        return NULL;
    p = out;
    *p++ = '\'';
    for (const char *s = word; *s != '\0'; s++) {
        if (*s == '\'') {
            memcpy(p, "'\\''", 4);
            p += 4;
        } else {
            *p++ = *s;
        }
    }
    *p++ = '\'';
    *p = '\0';
    return out;
}

/* Returns the details object of a model read from META at PATH with estimate EST. */
static json_t *details_json(const struct gguf_meta *meta, const char *path, uint64_t size_bytes,
                            const struct model_mem_estimate *est, const char *mmproj)
{
    const char *quant = gguf_file_type_name(meta->file_type);
    json_t *d = json_pack("{s:s, s:s?, s:s?, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "file",
                          path, "architecture", meta->architecture, "name", meta->name,
                          "parameters", (json_int_t)meta->n_params, "quantization",
                          quant != NULL ? quant : meta->dominant_type, "type_mix",
                          meta->type_mix, "size_bytes", (json_int_t)size_bytes,
                          "context_length", (json_int_t)meta->context_length,
                          "embedding_length", (json_int_t)meta->embedding_length, "layers",
                          (json_int_t)meta->block_count, "head_count_kv",
                          (json_int_t)meta->head_count_kv);

    if (d == NULL)
        return NULL;
    if (mmproj != NULL)
        json_object_set_new(d, "mmproj", json_string(mmproj));
    if (est != NULL)
        json_object_set_new(
            d, "memory",
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:i}", "total_bytes", (json_int_t)est->total_bytes,
                      "weights_bytes", (json_int_t)est->weights_bytes, "kv_bytes",
                      (json_int_t)est->kv_bytes, "compute_bytes",
                      (json_int_t)(est->compute_bytes + est->vocab_bytes + est->overhead_bytes),
                      "ctx_size", (json_int_t)est->n_ctx, "parallel", 0));
    if (est != NULL && est->vram_bytes > 0)
        json_object_set_new(
            d, "vram",
            json_pack("{s:I, s:I, s:I, s:I, s:i}", "total_bytes", (json_int_t)est->vram_bytes,
                      "weights_bytes", (json_int_t)est->vram_weights_bytes, "kv_bytes",
                      (json_int_t)est->vram_kv_bytes, "compute_bytes",
                      (json_int_t)(est->vram_compute_bytes + MODEL_MEM_GPU_OVERHEAD_BYTES),
                      "gpu_layers", (int)est->n_gpu_layers));
    return d;
}

/* Fills M's catalog fields from META (the file at PATH) served with ARGS. */
static void describe(struct cfg_model *m, const struct gguf_meta *meta, const char *path,
                     uint64_t size_bytes, unsigned caps, const struct catalog_args *args,
                     const char *mmproj)
{
    struct model_mem_params p = {0};
    struct model_mem_estimate est;
    bool has_est;

    p.n_ctx = args->ctx_size > 0 ? (uint32_t)args->ctx_size : 0;
    p.n_parallel = args->parallel > 0 ? (uint32_t)args->parallel : 0;
    p.n_batch = args->batch_size > 0 ? (uint32_t)args->batch_size : 0;
    p.is_embedding = args->is_embedding;
    p.n_gpu_layers = args->n_gpu_layers;
    p.is_kv_on_cpu = args->is_kv_on_cpu;
    has_est = model_mem_estimate(meta, &p, &est) == 0;
    free(m->gguf_path);
    m->gguf_path = strdup(path);
    /* Served with --embeddings, a model answers embeddings (pooled) and no text. */
    m->caps = args->is_embedding ? (caps & ~(unsigned)GGUF_CAP_COMPLETION) | GGUF_CAP_EMBEDDINGS
                                 : caps;
    if (!m->is_memory_configured)
        m->mem_bytes = has_est ? est.total_bytes : size_bytes;
    if (!m->is_vram_configured)
        m->vram_bytes = has_est ? est.vram_bytes : 0;
    json_decref(m->details);
    m->details = details_json(meta, path, size_bytes, has_est ? &est : NULL, mmproj);
    if (m->details != NULL && has_est)
        json_object_set_new(json_object_get(m->details, "memory"), "parallel",
                            json_integer(p.n_parallel > 0 ? p.n_parallel : 4));
}

/* Adds a warning line to CFG (FMT takes two strings). */
static void warn(struct cfg *cfg, const char *fmt, const char *a, const char *b)
{
    char line[1024];
    snprintf(line, sizeof(line), fmt, a, b);
    cfg_add_warning(cfg, line);
}

/* Returns whether TEXT ends with SUFFIX, ignoring case. */
static bool has_suffix(const char *text, const char *suffix)
{
    size_t n = strlen(text), k = strlen(suffix);
    return n >= k && strcasecmp(text + n - k, suffix) == 0;
}

/* Completes a configured model whose cmd names a GGUF file. */
static void describe_configured(struct cfg *cfg, struct cfg_model *m)
{
    struct catalog_args args;
    struct gguf_meta meta;
    char *cause = NULL;

    if (catalog_parse_args(m->cmd, &args) != 0 || args.model_path == NULL ||
        (!has_suffix(args.model_path, ".gguf") && access(args.model_path, R_OK) != 0)) {
        catalog_args_clear(&args); /* not a file: e.g. a model name for another server */
        return;
    }
    if (gguf_meta_read(args.model_path, &meta, &cause) == 0) {
        describe(m, &meta, args.model_path, meta.file_bytes, meta.caps, &args, NULL);
        gguf_meta_free(&meta);
        if (cfg->budget.vram_bytes > 0 && !args.has_n_gpu_layers && !m->is_vram_configured)
            warn(cfg, "model %s: budget.vram is set but its cmd has no -ngl, so it counts as "
                      "using no GPU memory (a GPU build of llama-server offloads every layer "
                      "by default): write -ngl N or vram: SIZE%s", m->id, "");
    } else {
        warn(cfg, "model %s: %s", m->id, cause != NULL ? cause : "cannot read its GGUF file");
    }
    free(cause);
    catalog_args_clear(&args);
}

/* Returns whether a configured model already serves the file at PATH (or has ID). */
static bool is_configured(const struct cfg *cfg, size_t n_configured, const char *id,
                          const char *path)
{
    char real_a[PATH_MAX], real_b[PATH_MAX];
    bool has_real = realpath(path, real_a) != NULL;

    if (cfg_find_model(cfg, id) != NULL)
        return true;
    for (size_t i = 0; i < n_configured; i++) {
        const struct cfg_model *m = &cfg->models[i];
        if (m->gguf_path != NULL &&
            (strcmp(m->gguf_path, path) == 0 ||
             (has_real && realpath(m->gguf_path, real_b) != NULL && strcmp(real_a, real_b) == 0)))
            return true;
    }
    return false;
}

/* Appends FMT to BUF (SIZE bytes) at *N; returns false once the text does not fit. */
static bool append(char *buf, size_t size, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool append(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (*n >= size)
        return false;
    va_start(ap, fmt);
    k = vsnprintf(buf + *n, size - *n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= size - *n)
        return false;
    *n += (size_t)k;
    return true;
}

char *catalog_engine_cmd(const struct cfg *cfg, const struct model_entry *e, const char *bin)
{
    const struct cfg_discovery *d = &cfg->discovery;
    char *qbin = catalog_quote(d->engine_bin != NULL ? d->engine_bin : bin);
    char *qpath = catalog_quote(e->path);
    char *cmd = malloc(CMD_MAX);
    size_t n = 0;
    bool ok = qbin != NULL && qpath != NULL && cmd != NULL;

    /* --metrics: the gateway's /metrics re-exports the engine's slot and KV figures. */
    ok = ok && append(cmd, CMD_MAX, &n, "%s -m %s --port ${PORT} -c %d -np %d --metrics", qbin,
                      qpath, d->ctx_size, d->parallel);
    if (ok && d->threads > 0)
        ok = append(cmd, CMD_MAX, &n, " -t %d", d->threads);
    if (ok && d->n_gpu_layers > 0)
        ok = append(cmd, CMD_MAX, &n, " -ngl %d", d->n_gpu_layers);
    if (ok && (e->caps & GGUF_CAP_EMBEDDINGS) != 0 && (e->caps & GGUF_CAP_COMPLETION) == 0)
        ok = append(cmd, CMD_MAX, &n, " --embeddings");
    if (ok && d->args != NULL)
        ok = append(cmd, CMD_MAX, &n, " %s", d->args);
    free(qbin);
    free(qpath);
    if (!ok) {
        free(cmd);
        return NULL;
    }
    return cmd;
}

/* Returns the port discovered model ID had in PREV, or 0. */
static int previous_port(const struct cfg *prev, const char *id)
{
    for (size_t i = 0; prev != NULL && i < prev->n_models; i++)
        if (prev->models[i].is_discovered && strcmp(prev->models[i].id, id) == 0)
            return prev->models[i].port;
    return 0;
}

/* Returns the port for discovered entry E: the one it had in PREV, or one past every port
 * in use in CFG and every port that another entry of SCAN had in PREV (0: let CFG pick). */
static int port_for(const struct cfg *cfg, const struct model_scan_result *scan,
                    const struct cfg *prev, const struct model_entry *e)
{
    int port = previous_port(prev, e->id), next = cfg->start_port;

    if (port > 0 || prev == NULL)
        return port;
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg->models[i].port >= next)
            next = cfg->models[i].port + 1;
    for (size_t i = 0; i < scan->n_entries; i++) {
        int p = previous_port(prev, scan->entries[i].id);
        if (p >= next)
            next = p + 1;
    }
    return next;
}

/* Appends the models of SCAN that the first N_CONFIGURED models of CFG do not define, on the
 * ports they had in PREV when still free (so a rescan does not restart them). */
static int add_discovered(struct cfg *cfg, size_t n_configured,
                          const struct model_scan_result *scan, const char *bin,
                          const struct cfg *prev)
{
    for (size_t i = 0; i < scan->n_entries; i++) {
        const struct model_entry *e = &scan->entries[i];
        struct catalog_args args = {0};
        struct cfg_model *m;
        char *cmd;

        if (!e->has_meta) {
            warn(cfg, "models_dir: %s skipped: %s", e->path, e->error != NULL ? e->error : "?");
            continue;
        }
        if (is_configured(cfg, n_configured, e->id, e->path))
            continue;
        cmd = catalog_engine_cmd(cfg, e, bin);
        if (cmd == NULL) {
            warn(cfg, "models_dir: %s skipped: its command line would exceed %s bytes", e->path,
                 "8192");
            continue;
        }
        m = cfg_append_model(cfg, e->id, cmd, port_for(cfg, scan, prev, e));
        free(cmd);
        if (m == NULL)
            return IG_ENOMEM;
        m->is_discovered = true;
        args.ctx_size = cfg->discovery.ctx_size;
        args.parallel = cfg->discovery.parallel;
        args.is_embedding =
            (e->caps & GGUF_CAP_EMBEDDINGS) != 0 && (e->caps & GGUF_CAP_COMPLETION) == 0;
        describe(m, &e->meta, e->path, e->size_bytes, e->caps, &args, e->mmproj_path);
    }
    return 0;
}

void catalog_default_engine(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n <= 0) {
        snprintf(buf, size, "infergate-engine");
        return;
    }
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(buf, size, "%s/infergate-engine", exe);
}

int catalog_apply(struct cfg *cfg, const struct cfg *prev)
{
    size_t n_configured = cfg->n_models;
    struct model_scan_result *scan = NULL;
    char *cause = NULL, engine_bin[PATH_MAX + 32];
    int rc = 0;

    for (size_t i = 0; i < n_configured; i++)
        describe_configured(cfg, &cfg->models[i]);
    if (cfg->discovery.dirs.len == 0)
        return 0;
    rc = model_scan((const char *const *)cfg->discovery.dirs.items, cfg->discovery.dirs.len, NULL,
                    &scan, &cause);
    if (rc != 0) {
        warn(cfg, "models_dir: %s%s", cause != NULL ? cause : "scan failed", "");
        free(cause);
        return rc == IG_ENOMEM ? rc : 0;
    }
    for (size_t i = 0; i < scan->n_warnings; i++)
        warn(cfg, "models_dir: %s%s", scan->warnings[i], "");
    catalog_default_engine(engine_bin, sizeof(engine_bin));
    rc = add_discovered(cfg, n_configured, scan, engine_bin, prev);
    model_scan_free(scan);
    return rc;
}

int catalog_load(const char *path, const struct cfg *prev, struct cfg **out, char **cause)
{
    int rc = cfg_load(path, out, cause);

    if (rc != 0)
        return rc;
    rc = catalog_apply(*out, prev);
    if (rc != 0) {
        cfg_free(*out);
        *out = NULL;
        *cause = strdup("out of memory reading the models");
    }
    return rc;
}

int catalog_describe_file(const char *path, char *out, size_t size)
{
    struct gguf_meta meta;
    char *why = NULL;
    int rc = gguf_meta_read(path, &meta, &why);

    if (rc != 0) {
        snprintf(out, size, "%s", why != NULL ? why : "unreadable");
        free(why);
        return rc;
    }
    snprintf(out, size, "architecture '%s', %zu tensors",
             meta.architecture != NULL ? meta.architecture : "?", meta.n_tensors);
    gguf_meta_free(&meta);
    return 0;
}
