/* A tiny GGUF writer for the model tests: every byte under the test's control. */
#ifndef IG_TEST_GGUF_WRITER_H
#define IG_TEST_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_meta.h"

/* A growable byte buffer; aborts on allocation failure (tests only). */
struct tw_buf {
    uint8_t *d;
    size_t len;
    size_t cap;
};

static inline void tw_put(struct tw_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        b->d = realloc(b->d, cap);
        if (b->d == NULL) {
            abort();
        }
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->d + b->len, p, n);
    }
    b->len += n;
}

static inline void tw_u8(struct tw_buf *b, uint8_t v)
{
    tw_put(b, &v, 1);
}

static inline void tw_u32(struct tw_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    tw_put(b, x, 4);
}

static inline void tw_u64(struct tw_buf *b, uint64_t v)
{
    tw_u32(b, (uint32_t)v);
    tw_u32(b, (uint32_t)(v >> 32));
}

static inline void tw_str(struct tw_buf *b, const char *s)
{
    tw_u64(b, strlen(s));
    tw_put(b, s, strlen(s));
}

/* Key/value writers. */
static inline void tw_kv_str(struct tw_buf *b, const char *key, const char *v)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_STRING);
    tw_str(b, v);
}

static inline void tw_kv_u32(struct tw_buf *b, const char *key, uint32_t v)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_UINT32);
    tw_u32(b, v);
}

static inline void tw_kv_u64(struct tw_buf *b, const char *key, uint64_t v)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_UINT64);
    tw_u64(b, v);
}

static inline void tw_kv_i32(struct tw_buf *b, const char *key, int32_t v)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_INT32);
    tw_u32(b, (uint32_t)v);
}

static inline void tw_kv_f32(struct tw_buf *b, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof(bits));
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_FLOAT32);
    tw_u32(b, bits);
}

static inline void tw_kv_bool(struct tw_buf *b, const char *key, int v)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_BOOL);
    tw_u8(b, (uint8_t)(v != 0));
}

static inline void tw_kv_u16(struct tw_buf *b, const char *key, uint16_t v)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_UINT16);
    tw_u8(b, (uint8_t)v);
    tw_u8(b, (uint8_t)(v >> 8));
}

static inline void tw_kv_arr_str(struct tw_buf *b, const char *key, const char *const *v, size_t n)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_ARRAY);
    tw_u32(b, GGUF_TYPE_STRING);
    tw_u64(b, n);
    for (size_t i = 0; i < n; i++) {
        tw_str(b, v[i]);
    }
}

static inline void tw_kv_arr_i32(struct tw_buf *b, const char *key, const int32_t *v, size_t n)
{
    tw_str(b, key);
    tw_u32(b, GGUF_TYPE_ARRAY);
    tw_u32(b, GGUF_TYPE_INT32);
    tw_u64(b, n);
    for (size_t i = 0; i < n; i++) {
        tw_u32(b, (uint32_t)v[i]);
    }
}

/* One tensor for tw_file(): shape (1 or 2 dims) and ggml type. */
struct tw_tensor {
    const char *name;
    uint64_t ne0;
    uint64_t ne1; /* 0: one dimension */
    uint32_t type;
};

/* Bytes of one tensor's data (row of ne0 elements times ne1 rows). */
static inline uint64_t tw_tensor_bytes(const struct tw_tensor *t)
{
    uint32_t be = 0;
    uint32_t bb = 0;
    if (gguf_ggml_type_block(t->type, &be, &bb) != 0) {
        abort();
    }
    return t->ne0 / be * bb * (t->ne1 ? t->ne1 : 1);
}

/* Writes a complete GGUF file into OUT: header, the N_KV pairs already encoded in KV,
 * tensor infos (aligned to 32) and zeroed data. */
static inline void tw_file(struct tw_buf *out, uint32_t version, const struct tw_buf *kv,
                           uint64_t n_kv, const struct tw_tensor *t, size_t n_t)
{
    uint64_t offset = 0;
    out->len = 0;
    tw_put(out, "GGUF", 4);
    tw_u32(out, version);
    tw_u64(out, n_t);
    tw_u64(out, n_kv);
    tw_put(out, kv->d, kv->len);
    for (size_t i = 0; i < n_t; i++) {
        tw_str(out, t[i].name);
        tw_u32(out, t[i].ne1 ? 2 : 1);
        tw_u64(out, t[i].ne0);
        if (t[i].ne1) {
            tw_u64(out, t[i].ne1);
        }
        tw_u32(out, t[i].type);
        tw_u64(out, offset);
        offset += (tw_tensor_bytes(&t[i]) + 31) / 32 * 32;
    }
    while (out->len % 32 != 0) {
        tw_u8(out, 0);
    }
    for (uint64_t i = 0; i < offset; i++) {
        tw_u8(out, 0);
    }
}

/* Options of the standard test model. */
struct tw_model {
    const char *arch;          /* default "llama" */
    const char *name;          /* default "Test Model" */
    const char *chat_template; /* NULL: none */
    int pooling_type;          /* -1: none */
    int has_output;            /* output.weight tensor */
    uint32_t split_no;         /* with split_count: split.* keys */
    uint32_t split_count;
    int tensors_only; /* split parts after the first: no hyper-parameters */
};

/* Writes the standard test model: a 2-layer llama-like head with Q8_0 and F32 tensors. */
static inline void tw_model_file(struct tw_buf *out, const struct tw_model *m)
{
    static const char *const tokens[] = {"<s>", "</s>", "a", "b", "c", "d", "e", "f"};
    struct tw_buf kv = {0};
    uint64_t n_kv = 0;
    const char *arch = m->arch ? m->arch : "llama";
    char key[128];
    if (m->split_count > 0) {
        tw_kv_u16(&kv, "split.no", (uint16_t)m->split_no), n_kv++;
        tw_kv_u16(&kv, "split.count", (uint16_t)m->split_count), n_kv++;
    }
    if (!m->tensors_only) {
        tw_kv_str(&kv, "general.architecture", arch), n_kv++;
        tw_kv_str(&kv, "general.name", m->name ? m->name : "Test Model"), n_kv++;
        tw_kv_u32(&kv, "general.alignment", 32), n_kv++;
        tw_kv_u32(&kv, "general.file_type", 7), n_kv++;
        snprintf(key, sizeof(key), "%s.context_length", arch);
        tw_kv_u32(&kv, key, 8192), n_kv++;
        snprintf(key, sizeof(key), "%s.embedding_length", arch);
        tw_kv_u32(&kv, key, 64), n_kv++;
        snprintf(key, sizeof(key), "%s.block_count", arch);
        tw_kv_u32(&kv, key, 2), n_kv++;
        snprintf(key, sizeof(key), "%s.feed_forward_length", arch);
        tw_kv_u64(&kv, key, 176), n_kv++;
        snprintf(key, sizeof(key), "%s.attention.head_count", arch);
        tw_kv_u32(&kv, key, 4), n_kv++;
        snprintf(key, sizeof(key), "%s.attention.head_count_kv", arch);
        tw_kv_u32(&kv, key, 2), n_kv++;
        snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
        tw_kv_f32(&kv, key, 10000.0f), n_kv++;
        if (m->pooling_type >= 0) {
            snprintf(key, sizeof(key), "%s.pooling_type", arch);
            tw_kv_u32(&kv, key, (uint32_t)m->pooling_type), n_kv++;
        }
        tw_kv_str(&kv, "tokenizer.ggml.model", "gpt2"), n_kv++;
        tw_kv_arr_str(&kv, "tokenizer.ggml.tokens", tokens, 8), n_kv++;
        tw_kv_bool(&kv, "tokenizer.ggml.add_bos_token", 1), n_kv++;
        tw_kv_i32(&kv, "tokenizer.ggml.bos_token_id", 0), n_kv++;
        if (m->chat_template != NULL) {
            tw_kv_str(&kv, "tokenizer.chat_template", m->chat_template), n_kv++;
        }
    }
    /* Q8_0: 64/32 blocks x 34 bytes = 68 bytes a row. */
    struct tw_tensor t[4] = {
        {"token_embd.weight", 64, 16, 8},
        {"blk.0.attn_norm.weight", 64, 0, 0},
        {"blk.0.attn_q.weight", 64, 64, 8},
        {"output.weight", 64, 16, 8},
    };
    size_t n_t = m->has_output ? 4 : 3;
    if (m->tensors_only) {
        t[0].name = "blk.1.attn_q.weight";
        t[1].name = "blk.1.attn_norm.weight";
        n_t = 2;
    }
    tw_file(out, 3, &kv, n_kv, t, n_t);
    free(kv.d);
}

/* Defaults for tw_model_file(). */
static const struct tw_model tw_default_model = {.pooling_type = -1, .has_output = 1};

/* Writes LEN bytes of DATA to PATH; returns 0 or -1. */
static inline int tw_write(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) {
        return -1;
    }
    size_t n = fwrite(data, 1, len, fp);
    return fclose(fp) == 0 && n == len ? 0 : -1;
}

#endif
