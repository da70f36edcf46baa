/*
 * The model catalog: completes a loaded config with what the files say. Models whose `cmd`
 * names a GGUF file (-m/--model) get their capabilities, details and memory estimate; every
 * GGUF found under `models_dir` that the config does not define becomes a model served by
 * infergate-engine with the `engine:` defaults. Rules in docs/MODELS.md.
 */
#ifndef IG_MODEL_CATALOG_H
#define IG_MODEL_CATALOG_H

#include "ig_error.h"

#include <stddef.h>
#include <stdint.h>

struct cfg;
struct cfg_model;

/* Process settings read from a llama-server style command line. */
struct catalog_args {
    char *model_path; /* -m/--model, or NULL (owned) */
    int ctx_size;     /* -c/--ctx-size, 0 when absent */
    int parallel;     /* -np/--parallel, 0 when absent */
    int batch_size;   /* -b/--batch-size, 0 when absent */
    int n_gpu_layers; /* -ngl/--n-gpu-layers/--gpu-layers, 0 when absent (-1: all, auto, < 0) */
    int is_embedding; /* --embedding(s) */
    int is_kv_on_cpu; /* -nkvo/--no-kv-offload */
    int has_n_gpu_layers; /* -ngl was given */
};

/* Reads CMD's llama-server flags into OUT (release with catalog_args_clear()). Returns 0 or
 * IG_EINVAL when CMD cannot be split. */
int catalog_parse_args(const char *cmd, struct catalog_args *out) IG_WUR;

/* Releases what catalog_parse_args() allocated. */
void catalog_args_clear(struct catalog_args *args);

/*
 * Completes CFG as described above. Discovered models are served by engine.bin, by default
 * infergate-engine in the directory of the running executable; a model discovered before
 * (in PREV, the running config, or NULL) keeps its port when it is still free. Unreadable
 * files and other problems become cfg->warnings. Returns 0 or IG_ENOMEM.
 */
int catalog_apply(struct cfg *cfg, const struct cfg *prev) IG_WUR;

/* cfg_load() followed by catalog_apply(): the config as the server runs it. */
int catalog_load(const char *path, const struct cfg *prev, struct cfg **out,
                 char **cause) IG_WUR;

struct model_entry;

/* Returns the cmd (with ${PORT}) serving discovered entry E with CFG's engine settings, run
 * by BIN unless engine.bin is set; caller frees; NULL when out of memory or too long. */
char *catalog_engine_cmd(const struct cfg *cfg, const struct model_entry *e, const char *bin);

/* Writes the default engine path (infergate-engine beside this executable) into BUF. */
void catalog_default_engine(char *buf, size_t size);

/* Reads the GGUF file at PATH and writes a short description into OUT ("architecture
 * 'llama', 291 tensors") and returns 0, or writes why it is not a readable GGUF model and
 * returns an IG_E* code. */
int catalog_describe_file(const char *path, char *out, size_t size) IG_WUR;

/* Returns a malloc'd shell-quoted copy of WORD for a `cmd` line (caller frees), or NULL. */
char *catalog_quote(const char *word);

#endif
