/* mkgguf internals: the GGUF encoder, the weight generator and the tokenizer builder. */
#ifndef IG_MKGGUF_H
#define IG_MKGGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MK_WARN_UNUSED __attribute__((warn_unused_result))

/* GGUF metadata value types (gguf.h, enum gguf_type). */
enum mk_gguf_type {
    MK_GGUF_UINT32 = 4,
    MK_GGUF_INT32 = 5,
    MK_GGUF_FLOAT32 = 6,
    MK_GGUF_BOOL = 7,
    MK_GGUF_STRING = 8,
    MK_GGUF_ARRAY = 9,
};

/* Tensor element types we write (ggml.h, enum ggml_type). */
enum mk_tensor_type {
    MK_TENSOR_F32 = 0,
    MK_TENSOR_F16 = 1,
    MK_TENSOR_Q8_0 = 8,
};

/* How a tensor's values are generated. */
enum mk_init {
    MK_INIT_RANDOM, /* uniform with standard deviation MK_WEIGHT_STD */
    MK_INIT_ONES,   /* norm weights */
};

#define MK_ALIGNMENT 32u
#define MK_QK8_0 32u
#define MK_MAX_DIMS 2u
/* Hard caps on what a preset may ask for; they bound every allocation. */
#define MK_MAX_BUF_BYTES (256u * 1024u * 1024u)
#define MK_MAX_ROW_ELEMS (1u << 20)
#define MK_MAX_TOKEN_BYTES 64u

/* A growable byte buffer; a failed append sets is_failed and later appends are no-ops. */
struct mk_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    int is_failed;
};

/* One tensor of the file: shape, storage type and how its values are generated. */
struct mk_tensor {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[MK_MAX_DIMS];
    enum mk_tensor_type type;
    enum mk_init init;
    uint64_t offset; /* from the start of the data section, filled by mk_layout_tensors() */
};

/* The tokenizer: tokens, their types and BPE merges; every string is owned by the vocab. */
struct mk_vocab {
    char **tokens;
    int32_t *token_types;
    uint32_t n_tokens;
    char **merges;
    uint32_t n_merges;
    uint32_t bos_id;
    uint32_t eos_id;
    uint32_t eot_id;
};

/* Frees the buffer's memory; the struct may be reused after mk_buf_init(). */
void mk_buf_free(struct mk_buf *b);
/* Appends n raw bytes. */
void mk_buf_put(struct mk_buf *b, const void *data, size_t n);
/* Appends a little-endian uint32. */
void mk_buf_u32(struct mk_buf *b, uint32_t v);
/* Appends a little-endian uint64. */
void mk_buf_u64(struct mk_buf *b, uint64_t v);
/* Appends a GGUF string (uint64 length, then the bytes, no NUL). */
void mk_buf_str(struct mk_buf *b, const char *s);

/* Metadata writers: each appends one key/value pair and counts it in *n_kv. */
void mk_kv_u32(struct mk_buf *b, uint64_t *n_kv, const char *key, uint32_t v);
void mk_kv_f32(struct mk_buf *b, uint64_t *n_kv, const char *key, float v);
void mk_kv_bool(struct mk_buf *b, uint64_t *n_kv, const char *key, int v);
void mk_kv_str(struct mk_buf *b, uint64_t *n_kv, const char *key, const char *v);
void mk_kv_str_array(struct mk_buf *b, uint64_t *n_kv, const char *key, char *const *v, uint32_t n);
void mk_kv_i32_array(struct mk_buf *b, uint64_t *n_kv, const char *key, const int32_t *v,
                     uint32_t n);

/* Bytes one tensor occupies in the file (not padded); 0 when its shape does not fit the type. */
uint64_t mk_tensor_nbytes(const struct mk_tensor *t);
/* Assigns aligned data offsets to every tensor; returns the data section size. */
uint64_t mk_layout_tensors(struct mk_tensor *tensors, size_t n);
/* Appends the tensor-info section for every tensor. */
void mk_put_tensor_infos(struct mk_buf *b, const struct mk_tensor *tensors, size_t n);
/* Generates tensor number index from seed and writes its data (with alignment padding). */
int mk_write_tensor_data(FILE *fp, const struct mk_tensor *t, uint64_t seed, uint32_t index,
                         uint64_t padded_bytes) MK_WARN_UNUSED;

/* Builds a byte-level BPE vocabulary of exactly n_vocab tokens; 0 or -1 (too small, memory). */
int mk_vocab_build(struct mk_vocab *v, uint32_t n_vocab) MK_WARN_UNUSED;
/* Smallest n_vocab mk_vocab_build() accepts. */
uint32_t mk_vocab_min_size(void);
/* Frees everything the vocab owns; safe on a zeroed vocab. */
void mk_vocab_free(struct mk_vocab *v);

#endif
