/*
 * GGUF metadata reader: header, every key/value pair and every tensor info of a GGUF v2/v3
 * file (little-endian), never the weights. Every count and length read from the file is
 * bounded by the bytes left in it and by the caps below, so a hostile file is rejected with a
 * reason instead of crashing or allocating what it asks for. See docs/MODELS.md.
 */
#ifndef IG_GGUF_META_H
#define IG_GGUF_META_H

#include <stddef.h>
#include <stdint.h>

#include "ig_error.h"

/* Caps on what a file may declare; real models stay far below them. */
#define GGUF_META_MAX_KV 65536u
#define GGUF_META_MAX_TENSORS 65536u
#define GGUF_META_MAX_KEY_BYTES 4096u
#define GGUF_META_MAX_NAME_BYTES 63u /* ggml's GGML_MAX_NAME - 1 */
#define GGUF_META_MAX_DIMS 4u
/* ggml tensor types known to this reader (ggml.h enum ggml_type, GGML_TYPE_COUNT). */
#define GGUF_GGML_TYPE_COUNT 43u

/* Metadata value types (gguf.h enum gguf_type). */
enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

/* Capability bits (struct gguf_meta.caps). */
enum gguf_cap {
    GGUF_CAP_COMPLETION = 1u << 0, /* text generation: has an LM head, not embedding-only */
    GGUF_CAP_EMBEDDINGS = 1u << 1, /* pooling type set, or an encoder architecture (bert) */
    GGUF_CAP_RERANK = 1u << 2,     /* pooling type "rank" */
    GGUF_CAP_REASONING = 1u << 3,  /* chat template mentions <think>/thinking/reasoning */
    GGUF_CAP_TOOLS = 1u << 4,      /* chat template references tools / tool_calls */
    GGUF_CAP_VISION = 1u << 5,     /* set by discovery when an mmproj file is attached */
};

/* One tensor of the file; all fields read-only. */
struct gguf_tensor_info {
    char *name;                      /* owned by the gguf_meta */
    uint32_t n_dims;                 /* 0..GGUF_META_MAX_DIMS */
    uint64_t ne[GGUF_META_MAX_DIMS]; /* elements per dimension; 1 past n_dims */
    uint32_t type;                   /* ggml type, < GGUF_GGML_TYPE_COUNT */
    uint64_t offset;                 /* from the start of the data section */
    uint64_t n_elements;
    uint64_t n_bytes; /* bytes of data, unpadded */
};

struct gguf_kv; /* one stored key/value pair; reached through gguf_meta_get_*() */

/*
 * What gguf_meta_read() extracts. A value type with public, read-only fields; strings are
 * NULL when the key is absent, numbers 0 unless said otherwise. Released with gguf_meta_free().
 */
struct gguf_meta {
    /* The file. */
    uint32_t version;     /* 2 or 3 */
    uint64_t file_bytes;  /* size of this file (discovery sums the parts of a split model) */
    uint64_t data_offset; /* start of the tensor data section */
    uint32_t alignment;   /* general.alignment, default 32 */

    /* general.* and tokenizer.* */
    char *architecture;    /* general.architecture */
    char *name;            /* general.name */
    int64_t file_type;     /* general.file_type (llama_ftype), -1 when absent */
    char *chat_template;   /* tokenizer.chat_template */
    char *tokenizer_model; /* tokenizer.ggml.model ("gpt2", "llama", "bert", ...) */
    uint32_t split_count;  /* split.count, 0 when the file is not part of a split set */
    uint32_t split_no;     /* split.no (0-based) */

    /* <arch>.* hyper-parameters; for per-layer arrays, the largest element. */
    uint64_t context_length;      /* <arch>.context_length (training context) */
    uint64_t embedding_length;    /* <arch>.embedding_length */
    uint64_t block_count;         /* <arch>.block_count (layers) */
    uint64_t feed_forward_length; /* <arch>.feed_forward_length */
    uint64_t head_count;          /* <arch>.attention.head_count */
    uint64_t head_count_kv;       /* <arch>.attention.head_count_kv, default head_count */
    uint64_t key_length;          /* <arch>.attention.key_length, 0 when absent */
    uint64_t value_length;        /* <arch>.attention.value_length, 0 when absent */
    uint64_t vocab_size;          /* <arch>.vocab_size, else tokenizer.ggml.tokens length */
    int64_t pooling_type;         /* <arch>.pooling_type, -1 when absent */

    /* Tensors. */
    uint64_t n_params;                         /* sum of tensor element counts */
    uint64_t weight_bytes;                     /* sum of tensor data bytes */
    uint64_t type_bytes[GGUF_GGML_TYPE_COUNT]; /* data bytes per ggml type */
    const char *dominant_type; /* static ggml type name with most bytes, "" if none */
    char type_mix[96];         /* e.g. "Q8_0 (96%), F32 (4%)" by bytes */
    int has_output_tensor;     /* output.weight present */
    int has_token_embd;        /* token_embd.weight present */
    size_t n_tensors;
    struct gguf_tensor_info *tensors;

    unsigned caps; /* enum gguf_cap bits */

    /* Private: every key/value pair (arrays are kept as type and length only). */
    size_t n_kv;
    struct gguf_kv *kv;
};

/*
 * Reads the metadata of the GGUF file at PATH into OUT (overwritten; release it with
 * gguf_meta_free() on success). Reads the head of the file only, never the weights.
 * Returns 0, or IG_EIO (cannot open/read), IG_EPROTO (malformed, truncated, unsupported),
 * IG_ETOOBIG (a cap exceeded) or IG_ENOMEM with a reason in *CAUSE (caller frees); OUT is
 * then zeroed.
 */
int gguf_meta_read(const char *path, struct gguf_meta *out, char **cause) IG_WUR;

/* Same as gguf_meta_read() on LEN bytes at DATA (borrowed), taken as a whole file. */
int gguf_meta_read_mem(const void *data, size_t len, struct gguf_meta *out, char **cause) IG_WUR;

/* Releases what OUT owns and zeroes it; safe on a zeroed struct. */
void gguf_meta_free(struct gguf_meta *meta);

/*
 * Folds the tensors of another part of a split model into META (the first part): moves
 * PART's tensor infos over (their offsets stay relative to PART's file), adds parameter, byte
 * and per-type counts and recomputes the type mix. PART must still be freed. Returns 0 or
 * IG_ENOMEM (META unchanged).
 */
int gguf_meta_add_part(struct gguf_meta *meta, struct gguf_meta *part) IG_WUR;

/*
 * Reads KEY as an unsigned integer (any integer or bool type; for an integer array, its
 * largest element). Returns 0, IG_ENOENT when absent, IG_EINVAL when of another type or
 * negative.
 */
int gguf_meta_get_u64(const struct gguf_meta *meta, const char *key, uint64_t *out) IG_WUR;

/* Reads KEY as a signed integer (any integer or bool type); 0, IG_ENOENT or IG_EINVAL. */
int gguf_meta_get_i64(const struct gguf_meta *meta, const char *key, int64_t *out) IG_WUR;

/* Reads KEY as a float (float or integer types); 0, IG_ENOENT or IG_EINVAL. */
int gguf_meta_get_f64(const struct gguf_meta *meta, const char *key, double *out) IG_WUR;

/* Returns KEY's string value (borrowed from META), or NULL when absent or not a string. */
const char *gguf_meta_get_str(const struct gguf_meta *meta, const char *key);

/* Reads the element type and length of array KEY; 0, IG_ENOENT or IG_EINVAL (not an array). */
int gguf_meta_get_array(const struct gguf_meta *meta, const char *key,
                        enum gguf_value_type *elem_type, uint64_t *n) IG_WUR;

/* Returns KEY's value type, or -1 when absent. */
int gguf_meta_key_type(const struct gguf_meta *meta, const char *key);

/* Returns the name of key/value pair I (borrowed), or NULL when I >= meta->n_kv. */
const char *gguf_meta_key_at(const struct gguf_meta *meta, size_t i);

/* Returns the tensor named NAME (borrowed), or NULL. */
const struct gguf_tensor_info *gguf_meta_tensor(const struct gguf_meta *meta, const char *name);

/* Returns ggml's name for TYPE in upper case ("Q4_K", "F16"), or NULL when unknown. */
const char *gguf_ggml_type_name(uint32_t type);

/*
 * Reads the block layout of ggml TYPE: elements per block and bytes per block. Returns 0, or
 * IG_EINVAL for an unknown or removed type.
 */
int gguf_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) IG_WUR;

/* Returns the quantisation name of a general.file_type value ("Q4_K_M"), or NULL. */
const char *gguf_file_type_name(int64_t file_type);

/* Writes the names of the capability bits in CAPS ("completion", "embeddings", "rerank",
 * "reasoning", "tools", "vision", in that order) to NAMES (at least 6 entries); returns how
 * many. */
size_t gguf_cap_names(unsigned caps, const char **names);

/* Returns the name of a value type ("u32", "str", "arr"), or "?" when unknown. */
const char *gguf_value_type_name(int type);

#endif
