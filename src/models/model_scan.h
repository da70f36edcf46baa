/*
 * Model discovery: walks directories for *.gguf files and turns them into model entries with
 * their metadata. Split sets (NAME-00001-of-00003.gguf) become one model; multimodal
 * projectors (names containing "mmproj", or architecture "clip") are attached to a model of
 * the same directory. A pure function of the file system: no global state, so it may run on
 * a worker thread. Rules in docs/MODELS.md.
 */
#ifndef IG_MODEL_SCAN_H
#define IG_MODEL_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "gguf_meta.h"
#include "ig_error.h"

/* Defaults (and hard limits) of the walk. */
#define MODEL_SCAN_DEFAULT_DEPTH 8
#define MODEL_SCAN_MAX_DEPTH 32
#define MODEL_SCAN_DEFAULT_FILES 4096u
#define MODEL_SCAN_MAX_DIRS 65536u
#define MODEL_SCAN_MAX_WARNINGS 256u
#define MODEL_SCAN_MAX_SPLIT_PARTS 1024u

/* Walk options; zero fields take the defaults. */
struct model_scan_options {
    int max_depth;    /* directory levels below each root; 0: MODEL_SCAN_DEFAULT_DEPTH */
    size_t max_files; /* *.gguf files considered in all; 0: MODEL_SCAN_DEFAULT_FILES */
};

/* One discovered model; every field read-only, owned by the model_scan_result. */
struct model_entry {
    char *id;            /* file name without .gguf and split suffix, made URL/YAML-safe, unique */
    char *path;          /* the file, or the first part of a split set */
    char *mmproj_path;   /* the attached projector, or NULL */
    uint64_t size_bytes; /* file size, summed over the parts of a split set */
    uint32_t n_parts;    /* 1, or the number of parts of a split set */
    size_t root_index;   /* which of the scanned directories it was found under */
    unsigned caps;       /* enum gguf_cap bits: meta.caps plus GGUF_CAP_VISION */
    int has_meta;        /* meta is valid (error is NULL) */
    struct gguf_meta meta; /* for split sets: first part's keys, all parts' tensor totals, and
                              file_bytes = size_bytes */
    char *error;           /* why the file could not be read, or NULL */
};

/* What a scan found: entries sorted by id, and the warnings met on the way. */
struct model_scan_result {
    struct model_entry *entries;
    size_t n_entries;
    char **warnings; /* e.g. a split part missing, a directory that cannot be opened */
    size_t n_warnings;
};

/*
 * Scans the N_DIRS directories DIRS (borrowed) recursively with OPTS (borrowed, NULL for
 * defaults). Unreadable model files are listed with their error; problems that drop a file
 * or a directory become warnings. Returns 0 with *OUT set (caller frees with
 * model_scan_free()), or IG_ENOMEM/IG_EINVAL with a reason in *CAUSE (caller frees).
 */
int model_scan(const char *const *dirs, size_t n_dirs, const struct model_scan_options *opts,
               struct model_scan_result **out, char **cause) IG_WUR;

/* Releases a scan result; NULL is a no-op. */
void model_scan_free(struct model_scan_result *result);

/* Returns the entry with ID (borrowed), or NULL. */
const struct model_entry *model_scan_find(const struct model_scan_result *result, const char *id);

/*
 * Derives a model id from a file name (with or without directory): drops the directory,
 * ".gguf" and a "-NNNNN-of-NNNNN" split suffix, and replaces every byte outside
 * [A-Za-z0-9._-] with '-'. Returns a new string (caller frees) or NULL on memory failure.
 */
char *model_scan_id_from_name(const char *file_name);

#endif
