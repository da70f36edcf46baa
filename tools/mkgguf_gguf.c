/* GGUF v3 encoding for mkgguf: metadata buffers, tensor infos, weight generation, f16, q8_0. */
#include "mkgguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * The file is little-endian by definition; mkgguf builds only for little-endian hosts (x86-64,
 * aarch64), checked at compile time, so values are appended with memcpy.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mkgguf writes GGUF with host byte order and needs a little-endian host"
#endif

/* Weights are uniform in [-a, a] with a = std * sqrt(3), so their standard deviation is std. */
#define MK_WEIGHT_STD 0.02f
#define MK_SQRT3 1.7320508f

/* Frees the buffer's memory and resets it to empty. */
void mk_buf_free(struct mk_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Appends n raw bytes, growing the buffer up to MK_MAX_BUF_BYTES. */
void mk_buf_put(struct mk_buf *b, const void *data, size_t n)
{
    if (b->is_failed) {
        return;
    }
    if (n > MK_MAX_BUF_BYTES - b->len) {
        b->is_failed = 1;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->is_failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

/* Appends a little-endian uint32. */
void mk_buf_u32(struct mk_buf *b, uint32_t v)
{
    mk_buf_put(b, &v, sizeof(v));
}

/* Appends a little-endian uint64. */
void mk_buf_u64(struct mk_buf *b, uint64_t v)
{
    mk_buf_put(b, &v, sizeof(v));
}

/* Appends a GGUF string: uint64 byte length, then the bytes without a terminator. */
void mk_buf_str(struct mk_buf *b, const char *s)
{
    size_t n = strlen(s);
    mk_buf_u64(b, (uint64_t)n);
    mk_buf_put(b, s, n);
}

/* Appends a key and its value type, and counts the pair. */
static void mk_kv_head(struct mk_buf *b, uint64_t *n_kv, const char *key, enum mk_gguf_type type)
{
    mk_buf_str(b, key);
    mk_buf_u32(b, (uint32_t)type);
    (*n_kv)++;
}

/* Appends key = uint32. */
void mk_kv_u32(struct mk_buf *b, uint64_t *n_kv, const char *key, uint32_t v)
{
    mk_kv_head(b, n_kv, key, MK_GGUF_UINT32);
    mk_buf_u32(b, v);
}

/* Appends key = float32. */
void mk_kv_f32(struct mk_buf *b, uint64_t *n_kv, const char *key, float v)
{
    mk_kv_head(b, n_kv, key, MK_GGUF_FLOAT32);
    mk_buf_put(b, &v, sizeof(v));
}

/* Appends key = bool (one byte, 0 or 1). */
void mk_kv_bool(struct mk_buf *b, uint64_t *n_kv, const char *key, int v)
{
    uint8_t byte = v ? 1 : 0;
    mk_kv_head(b, n_kv, key, MK_GGUF_BOOL);
    mk_buf_put(b, &byte, 1);
}

/* Appends key = string. */
void mk_kv_str(struct mk_buf *b, uint64_t *n_kv, const char *key, const char *v)
{
    mk_kv_head(b, n_kv, key, MK_GGUF_STRING);
    mk_buf_str(b, v);
}

/* Appends key = array of n strings. */
void mk_kv_str_array(struct mk_buf *b, uint64_t *n_kv, const char *key, char *const *v, uint32_t n)
{
    mk_kv_head(b, n_kv, key, MK_GGUF_ARRAY);
    mk_buf_u32(b, MK_GGUF_STRING);
    mk_buf_u64(b, n);
    for (uint32_t i = 0; i < n; i++) {
        mk_buf_str(b, v[i]);
    }
}

/* Appends key = array of n int32. */
void mk_kv_i32_array(struct mk_buf *b, uint64_t *n_kv, const char *key, const int32_t *v,
                     uint32_t n)
{
    mk_kv_head(b, n_kv, key, MK_GGUF_ARRAY);
    mk_buf_u32(b, MK_GGUF_INT32);
    mk_buf_u64(b, n);
    mk_buf_put(b, v, (size_t)n * sizeof(*v));
}

/* Bytes of one row of ne0 elements in the tensor's type; 0 if q8_0 and ne0 % 32 != 0. */
static uint64_t mk_row_nbytes(enum mk_tensor_type type, uint64_t ne0)
{
    switch (type) {
    case MK_TENSOR_F32:
        return ne0 * 4;
    case MK_TENSOR_F16:
        return ne0 * 2;
    case MK_TENSOR_Q8_0:
        return ne0 % MK_QK8_0 ? 0 : ne0 / MK_QK8_0 * (2 + MK_QK8_0);
    }
    return 0;
}

/* Bytes one tensor occupies in the data section, without alignment padding. */
uint64_t mk_tensor_nbytes(const struct mk_tensor *t)
{
    uint64_t rows = t->n_dims > 1 ? t->ne[1] : 1;
    return mk_row_nbytes(t->type, t->ne[0]) * rows;
}

/* Rounds n up to the GGUF alignment. */
static uint64_t mk_align(uint64_t n)
{
    return (n + MK_ALIGNMENT - 1) / MK_ALIGNMENT * MK_ALIGNMENT;
}

/* Assigns each tensor an aligned offset in the data section; returns the section size. */
uint64_t mk_layout_tensors(struct mk_tensor *tensors, size_t n)
{
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        tensors[i].offset = offset;
        offset = mk_align(offset + mk_tensor_nbytes(&tensors[i]));
    }
    return offset;
}

/* Appends one tensor info per tensor: name, dims, type, offset. */
void mk_put_tensor_infos(struct mk_buf *b, const struct mk_tensor *tensors, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mk_buf_str(b, tensors[i].name);
        mk_buf_u32(b, tensors[i].n_dims);
        for (uint32_t d = 0; d < tensors[i].n_dims; d++) {
            mk_buf_u64(b, tensors[i].ne[d]);
        }
        mk_buf_u32(b, (uint32_t)tensors[i].type);
        mk_buf_u64(b, tensors[i].offset);
    }
}

/* SplitMix64: a small, fast generator whose stream depends only on the seed. */
static uint64_t mk_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fills row with ne0 weights for the tensor's init (random ones from the generator). */
static void mk_fill_row(float *row, uint64_t ne0, enum mk_init init, uint64_t *state)
{
    const float amplitude = MK_WEIGHT_STD * MK_SQRT3;
    for (uint64_t i = 0; i < ne0; i++) {
        if (init == MK_INIT_ONES) {
            row[i] = 1.0f;
            continue;
        }
        /* 24 random bits → [0, 1) exactly representable, then to [-a, a). */
        float unit = (float)(mk_rng_next(state) >> 40) * (1.0f / 16777216.0f);
        row[i] = (2.0f * unit - 1.0f) * amplitude;
    }
}

/*
 * IEEE binary32 → binary16, round to nearest even, subnormals, overflow to infinity.
 * Normal halves keep the top 10 mantissa bits; subnormal halves count units of 2^-24.
 */
static uint16_t mk_f32_to_f16(float value)
{
    uint32_t x;
    memcpy(&x, &value, sizeof(x));
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp32 = (x >> 23) & 0xffu;
    uint32_t mant = x & 0x7fffffu;
    if (exp32 == 0xffu) {
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
    }
    int32_t exp16 = (int32_t)exp32 - 127 + 15;
    if (exp16 >= 31) {
        return (uint16_t)(sign | 0x7c00u);
    }
    if (exp16 <= 0) {
        if (exp16 < -10) {
            return sign;
        }
        uint32_t full = mant | 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp16);
        uint32_t half = full >> shift;
        uint32_t rest = full & ((1u << shift) - 1);
        uint32_t midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half & 1u))) {
            half++;
        }
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)exp16 << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) {
        half++; /* a carry into the exponent is the correct rounding, up to infinity */
    }
    return (uint16_t)(sign | half);
}

/* binary16 → binary32 for the q8_0 scale, so quantisation uses the scale as stored. */
static float mk_f16_to_f32(uint16_t h)
{
    uint32_t exp16 = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    float magnitude;
    if (exp16 == 0) {
        magnitude = ldexpf((float)mant, -24);
    } else if (exp16 == 31) {
        magnitude = mant ? NAN : INFINITY;
    } else {
        magnitude = ldexpf((float)(mant | 0x400u), (int)exp16 - 25);
    }
    return (h & 0x8000u) ? -magnitude : magnitude;
}

/*
 * q8_0: blocks of 32 values, each an fp16 scale d = max|x| / 127 followed by 32 int8 q with
 * x ≈ d * q. The quotient uses the rounded (stored) scale so dequantisation matches.
 */
static void mk_quantize_q8_0(const float *row, uint64_t ne0, uint8_t *out)
{
    for (uint64_t block = 0; block < ne0 / MK_QK8_0; block++) {
        const float *x = row + block * MK_QK8_0;
        uint8_t *dst = out + block * (2 + MK_QK8_0);
        float amax = 0.0f;
        for (uint32_t i = 0; i < MK_QK8_0; i++) {
            amax = fmaxf(amax, fabsf(x[i]));
        }
        uint16_t d16 = mk_f32_to_f16(amax / 127.0f);
        float d = mk_f16_to_f32(d16);
        float inv = d > 0.0f ? 1.0f / d : 0.0f;
        memcpy(dst, &d16, sizeof(d16));
        for (uint32_t i = 0; i < MK_QK8_0; i++) {
            long q = lroundf(x[i] * inv);
            q = q > 127 ? 127 : (q < -127 ? -127 : q);
            dst[2 + i] = (uint8_t)(int8_t)q;
        }
    }
}

/* Encodes one row of floats into the tensor's storage type. */
static void mk_encode_row(const float *row, uint64_t ne0, enum mk_tensor_type type, uint8_t *out)
{
    switch (type) {
    case MK_TENSOR_F32:
        memcpy(out, row, ne0 * sizeof(float));
        break;
    case MK_TENSOR_F16:
        for (uint64_t i = 0; i < ne0; i++) {
            uint16_t h = mk_f32_to_f16(row[i]);
            memcpy(out + i * 2, &h, sizeof(h));
        }
        break;
    case MK_TENSOR_Q8_0:
        mk_quantize_q8_0(row, ne0, out);
        break;
    }
}

/*
 * Writes the tensor's values row by row, then zero padding up to padded_bytes. Each tensor
 * has its own generator stream (seed, index), so the output does not depend on write order.
 */
int mk_write_tensor_data(FILE *fp, const struct mk_tensor *t, uint64_t seed, uint32_t index,
                         uint64_t padded_bytes)
{
    static const uint8_t zeros[MK_ALIGNMENT];
    int rc = -1;
    uint64_t ne0 = t->ne[0];
    uint64_t rows = t->n_dims > 1 ? t->ne[1] : 1;
    uint64_t row_bytes = mk_row_nbytes(t->type, ne0);
    uint64_t state = seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)index + 1));
    float *row = NULL;
    uint8_t *encoded = NULL;
    if (ne0 == 0 || ne0 > MK_MAX_ROW_ELEMS || row_bytes == 0 || padded_bytes < row_bytes * rows ||
        padded_bytes - row_bytes * rows > MK_ALIGNMENT) {
        goto out;
    }
    row = malloc(ne0 * sizeof(*row));
    encoded = malloc(row_bytes);
    if (row == NULL || encoded == NULL) {
        goto out;
    }
    for (uint64_t r = 0; r < rows; r++) {
        mk_fill_row(row, ne0, t->init, &state);
        mk_encode_row(row, ne0, t->type, encoded);
        if (fwrite(encoded, 1, row_bytes, fp) != row_bytes) {
            goto out;
        }
    }
    size_t pad = (size_t)(padded_bytes - row_bytes * rows);
    if (pad > 0 && fwrite(zeros, 1, pad, fp) != pad) {
        goto out;
    }
    rc = 0;
out:
    free(encoded);
    free(row);
    return rc;
}
