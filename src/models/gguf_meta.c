/* GGUF metadata reader: header, key/value pairs and tensor infos, bounds-checked. */
#include "gguf_meta.h"
#include "gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The file is read through a small window (pread), not mmap: a file truncated while we read
 * it must give an error, not SIGBUS. Every read is checked against the size taken at open
 * time, and every count is checked against the bytes left before anything is allocated for
 * it, so memory use is bounded by the size of the file's head (plus the caps in the header).
 */

#define GGUF_WINDOW_BYTES (64u * 1024u)
#define GGUF_DEFAULT_ALIGNMENT 32u
/* Integer arrays up to this length are scanned for their largest element (per-layer
 * hyper-parameters such as head_count_kv in some architectures). */
#define GGUF_MAX_SCANNED_ARRAY 65536u
/* Smallest encodings: a pair is key length (8) + 1 key byte + type (4) + 1 value byte; a
 * tensor info is name length (8) + 1 name byte + n_dims (4) + type (4) + offset (8). */
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TENSOR_BYTES 25u

/* The input: either LEN bytes in memory or a file descriptor read through a window. */
struct gguf_reader {
    const uint8_t *mem;
    int fd;
    uint64_t size;
    uint64_t pos;
    uint8_t *window;
    uint64_t window_pos;
    size_t window_len;
    int rc;
    char why[320];
};

/* Records the first failure: code and formatted reason; later failures are ignored. */
static int fail(struct gguf_reader *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct gguf_reader *r, int rc, const char *fmt, ...)
{
    if (r->rc == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof(r->why), fmt, ap);
        va_end(ap);
        r->rc = rc;
    }
    return r->rc;
}

/* Returns the bytes left after the read position. */
static uint64_t left(const struct gguf_reader *r)
{
    return r->pos <= r->size ? r->size - r->pos : 0;
}

/* Reads exactly N bytes at r->pos into DST (from memory, the window or pread); 0 or error. */
static int pread_full(struct gguf_reader *r, void *dst, size_t n, uint64_t at)
{
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(r->fd, (uint8_t *)dst + done, n - done, (off_t)(at + done));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            return fail(r, IG_EIO, "read error at offset %llu: %s", (unsigned long long)(at + done),
                        strerror(errno));
        }
        if (got == 0) {
            return fail(r, IG_EIO, "file shrank while reading (offset %llu)",
                        (unsigned long long)(at + done));
        }
        done += (size_t)got;
    }
    return 0;
}

/* Copies the next N bytes into DST and advances; fails when fewer than N bytes are left. */
static int rd(struct gguf_reader *r, void *dst, size_t n, const char *what)
{
    if (r->rc != 0) {
        return r->rc;
    }
    if ((uint64_t)n > left(r)) {
        return fail(r, IG_EPROTO, "truncated: %s needs %zu bytes at offset %llu, file has %llu",
                    what, n, (unsigned long long)r->pos, (unsigned long long)r->size);
    }
    if (r->mem != NULL) {
        memcpy(dst, r->mem + r->pos, n);
    } else if (n > GGUF_WINDOW_BYTES) {
        if (pread_full(r, dst, n, r->pos) != 0) {
            return r->rc;
        }
    } else {
        if (r->pos < r->window_pos || r->pos + n > r->window_pos + r->window_len) {
            uint64_t want = left(r) < GGUF_WINDOW_BYTES ? left(r) : GGUF_WINDOW_BYTES;
            r->window_len = 0;
            if (pread_full(r, r->window, (size_t)want, r->pos) != 0) {
                return r->rc;
            }
            r->window_pos = r->pos;
            r->window_len = (size_t)want;
        }
        memcpy(dst, r->window + (r->pos - r->window_pos), n);
    }
    r->pos += n;
    return 0;
}

/* Skips N bytes; fails when fewer are left. */
static int skip(struct gguf_reader *r, uint64_t n, const char *what)
{
    if (r->rc != 0) {
        return r->rc;
    }
    if (n > left(r)) {
        return fail(r, IG_EPROTO, "truncated: %s needs %llu bytes at offset %llu, file has %llu",
                    what, (unsigned long long)n, (unsigned long long)r->pos,
                    (unsigned long long)r->size);
    }
    r->pos += n;
    return 0;
}

/* Little-endian decoders; the file format is little-endian whatever the host. */
static uint64_t le(const uint8_t *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)b[i] << (8 * i);
    }
    return v;
}

static int rd_u32(struct gguf_reader *r, uint32_t *out, const char *what)
{
    uint8_t b[4];
    if (rd(r, b, sizeof(b), what) != 0) {
        return r->rc;
    }
    *out = (uint32_t)le(b, 4);
    return 0;
}

static int rd_u64(struct gguf_reader *r, uint64_t *out, const char *what)
{
    uint8_t b[8];
    if (rd(r, b, sizeof(b), what) != 0) {
        return r->rc;
    }
    *out = le(b, 8);
    return 0;
}

/* Reads a GGUF string (u64 length + bytes) of at most MAX bytes into a new NUL-terminated
 * buffer (caller frees); a string holding a NUL byte is rejected. */
static int rd_str(struct gguf_reader *r, uint64_t max, char **out, const char *what)
{
    uint64_t len = 0;
    *out = NULL;
    if (rd_u64(r, &len, what) != 0) {
        return r->rc;
    }
    if (len > left(r)) {
        return fail(r, IG_EPROTO, "%s: string length %llu exceeds the %llu bytes left", what,
                    (unsigned long long)len, (unsigned long long)left(r));
    }
    if (len > max) {
        return fail(r, IG_ETOOBIG, "%s: string length %llu exceeds the limit of %llu", what,
                    (unsigned long long)len, (unsigned long long)max);
    }
    char *s = malloc((size_t)len + 1);
    if (s == NULL) {
        return fail(r, IG_ENOMEM, "%s: out of memory for %llu bytes", what,
                    (unsigned long long)len);
    }
    if (rd(r, s, (size_t)len, what) != 0) {
        free(s);
        return r->rc;
    }
    s[len] = '\0';
    if (memchr(s, '\0', (size_t)len) != NULL) {
        free(s);
        return fail(r, IG_EPROTO, "%s: string contains a NUL byte", what);
    }
    *out = s;
    return 0;
}

/* Skips a GGUF string without copying it. */
static int skip_str(struct gguf_reader *r, const char *what)
{
    uint64_t len = 0;
    if (rd_u64(r, &len, what) != 0) {
        return r->rc;
    }
    return skip(r, len, what);
}

/* Returns the encoded size of a scalar value type, 0 for string/array/unknown. */
static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

int gguf_is_integer_type(uint32_t type)
{
    return scalar_size(type) != 0 && type != GGUF_TYPE_FLOAT32 && type != GGUF_TYPE_FLOAT64;
}

/* Decodes a scalar of TYPE from B into the numeric fields of KV. */
static void decode_scalar(uint32_t type, const uint8_t *b, struct gguf_kv *kv)
{
    uint64_t raw = le(b, scalar_size(type));
    kv->has_number = 1;
    switch (type) {
    case GGUF_TYPE_INT8:
        kv->i = (int8_t)(uint8_t)raw;
        break;
    case GGUF_TYPE_INT16:
        kv->i = (int16_t)(uint16_t)raw;
        break;
    case GGUF_TYPE_INT32:
        kv->i = (int32_t)(uint32_t)raw;
        break;
    case GGUF_TYPE_INT64:
        kv->i = (int64_t)raw;
        break;
    case GGUF_TYPE_FLOAT32: {
        float f;
        uint32_t bits = (uint32_t)raw;
        memcpy(&f, &bits, sizeof(f));
        kv->f = f;
        kv->is_negative = f < 0;
        return;
    }
    case GGUF_TYPE_FLOAT64:
        memcpy(&kv->f, &raw, sizeof(kv->f));
        kv->is_negative = kv->f < 0;
        return;
    default: /* unsigned and bool; i saturates for values above INT64_MAX */
        kv->u = raw;
        kv->i = raw > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)raw;
        kv->f = (double)raw;
        kv->is_negative = 0;
        return;
    }
    kv->is_negative = kv->i < 0;
    kv->u = (uint64_t)kv->i;
    kv->f = (double)kv->i;
}

/* Reads an array value (element type, length, elements) into KV; nested arrays are refused. */
static int rd_array(struct gguf_reader *r, struct gguf_kv *kv)
{
    uint32_t elem = 0;
    uint64_t n = 0;
    if (rd_u32(r, &elem, "array type") != 0 || rd_u64(r, &n, "array length") != 0) {
        return r->rc;
    }
    kv->elem_type = elem;
    kv->n = n;
    if (elem == GGUF_TYPE_ARRAY) {
        return fail(r, IG_EPROTO, "key '%s': arrays of arrays are not supported", kv->key);
    }
    if (elem == GGUF_TYPE_STRING) {
        if (n > left(r) / 8) {
            return fail(r, IG_EPROTO, "key '%s': array of %llu strings exceeds the %llu bytes left",
                        kv->key, (unsigned long long)n, (unsigned long long)left(r));
        }
        for (uint64_t k = 0; k < n && r->rc == 0; k++) {
            skip_str(r, "array string");
        }
        return r->rc;
    }
    size_t esize = scalar_size(elem);
    if (esize == 0) {
        return fail(r, IG_EPROTO, "key '%s': unknown array element type %u", kv->key, elem);
    }
    if (n > left(r) / esize) {
        return fail(r, IG_EPROTO, "key '%s': array of %llu elements exceeds the %llu bytes left",
                    kv->key, (unsigned long long)n, (unsigned long long)left(r));
    }
    if (!gguf_is_integer_type(elem) || n > GGUF_MAX_SCANNED_ARRAY || n == 0) {
        return skip(r, n * esize, "array data");
    }
    /* Integer arrays: keep the largest element, so per-layer values read as one number. */
    struct gguf_kv best = {0};
    for (uint64_t k = 0; k < n; k++) {
        uint8_t b[8];
        struct gguf_kv one = {0};
        if (rd(r, b, esize, "array element") != 0) {
            return r->rc;
        }
        decode_scalar(elem, b, &one);
        if (k == 0 || one.i > best.i || (one.i == best.i && one.u > best.u)) {
            best = one;
        }
    }
    kv->has_number = 1;
    kv->u = best.u;
    kv->i = best.i;
    kv->f = best.f;
    kv->is_negative = best.is_negative;
    return 0;
}

/* Reads one key/value pair into KV (zeroed by the caller). */
static int rd_kv(struct gguf_reader *r, struct gguf_kv *kv, uint64_t index)
{
    char what[48];
    snprintf(what, sizeof(what), "key %llu", (unsigned long long)index);
    if (rd_str(r, GGUF_META_MAX_KEY_BYTES, &kv->key, what) != 0) {
        return r->rc;
    }
    if (kv->key[0] == '\0') {
        return fail(r, IG_EPROTO, "key %llu is empty", (unsigned long long)index);
    }
    if (rd_u32(r, &kv->type, "value type") != 0) {
        return r->rc;
    }
    if (kv->type == GGUF_TYPE_STRING) {
        return rd_str(r, UINT64_MAX, &kv->str, kv->key);
    }
    if (kv->type == GGUF_TYPE_ARRAY) {
        return rd_array(r, kv);
    }
    size_t size = scalar_size(kv->type);
    if (size == 0) {
        return fail(r, IG_EPROTO, "key '%s': unknown value type %u", kv->key, kv->type);
    }
    uint8_t b[8];
    if (rd(r, b, size, kv->key) != 0) {
        return r->rc;
    }
    decode_scalar(kv->type, b, kv);
    return 0;
}

/* Multiplies A by B into *OUT unless the product exceeds INT64_MAX (ggml's limit). */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > (uint64_t)INT64_MAX / a) {
        return 0;
    }
    *out = a * b;
    return 1;
}

/* Reads one tensor info into T (zeroed by the caller) and checks its shape and type. */
static int rd_tensor(struct gguf_reader *r, struct gguf_tensor_info *t, uint64_t index)
{
    char what[48];
    snprintf(what, sizeof(what), "tensor %llu name", (unsigned long long)index);
    if (rd_str(r, GGUF_META_MAX_NAME_BYTES, &t->name, what) != 0) {
        return r->rc;
    }
    if (rd_u32(r, &t->n_dims, "tensor dimensions") != 0) {
        return r->rc;
    }
    if (t->n_dims > GGUF_META_MAX_DIMS) {
        return fail(r, IG_EPROTO, "tensor '%s': %u dimensions (at most %u)", t->name, t->n_dims,
                    GGUF_META_MAX_DIMS);
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < GGUF_META_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && rd_u64(r, &t->ne[d], "tensor shape") != 0) {
            return r->rc;
        }
        if (t->ne[d] > (uint64_t)INT64_MAX) {
            return fail(r, IG_EPROTO, "tensor '%s': negative dimension %lld", t->name,
                        (long long)(int64_t)t->ne[d]);
        }
        if (!mul_ok(n_elements, t->ne[d], &n_elements)) {
            return fail(r, IG_EPROTO, "tensor '%s': element count overflows", t->name);
        }
    }
    if (rd_u32(r, &t->type, "tensor type") != 0 || rd_u64(r, &t->offset, "tensor offset") != 0) {
        return r->rc;
    }
    uint32_t block_elems = 0;
    uint32_t block_bytes = 0;
    if (gguf_ggml_type_block(t->type, &block_elems, &block_bytes) != 0) {
        return fail(r, IG_EPROTO, "tensor '%s': unknown or removed ggml type %u", t->name, t->type);
    }
    if (t->ne[0] % block_elems != 0) {
        return fail(r, IG_EPROTO,
                    "tensor '%s': row of %llu elements is not a multiple of the %s "
                    "block size %u",
                    t->name, (unsigned long long)t->ne[0], gguf_ggml_type_name(t->type), block_elems);
    }
    /* Bytes as ggml computes them: row bytes times the other dimensions. */
    uint64_t n_bytes = t->ne[0] / block_elems;
    if (!mul_ok(n_bytes, block_bytes, &n_bytes) || !mul_ok(n_bytes, t->ne[1], &n_bytes) ||
        !mul_ok(n_bytes, t->ne[2], &n_bytes) || !mul_ok(n_bytes, t->ne[3], &n_bytes)) {
        return fail(r, IG_EPROTO, "tensor '%s': byte size overflows", t->name);
    }
    t->n_elements = n_elements;
    t->n_bytes = n_bytes;
    return 0;
}

/* Reads "<arch>.<suffix>" as an unsigned number into *OUT; leaves *OUT alone when absent. */
static void arch_u64(const struct gguf_meta *m, const char *suffix, uint64_t *out)
{
    char key[192];
    uint64_t v = 0;
    if (m->architecture == NULL) {
        return;
    }
    snprintf(key, sizeof(key), "%s.%s", m->architecture, suffix);
    if (gguf_meta_get_u64(m, key, &v) == 0) {
        *out = v;
    }
}

/* Copies the string value of KEY into *OUT (a new string), when present and a string. */
static int dup_str(struct gguf_meta *m, const char *key, char **out)
{
    const char *s = gguf_meta_get_str(m, key);
    if (s == NULL) {
        return 0;
    }
    *out = strdup(s);
    return *out == NULL ? IG_ENOMEM : 0;
}

/* Fills the summary fields of M from its pairs and tensors. */
static int extract(struct gguf_reader *r, struct gguf_meta *m)
{
    uint64_t v = 0;
    int64_t sv = 0;
    if (gguf_meta_key_type(m, "general.architecture") >= 0 &&
        gguf_meta_get_str(m, "general.architecture") == NULL) {
        return fail(r, IG_EPROTO, "general.architecture is not a string");
    }
    if (dup_str(m, "general.architecture", &m->architecture) != 0 ||
        dup_str(m, "general.name", &m->name) != 0 ||
        dup_str(m, "tokenizer.chat_template", &m->chat_template) != 0 ||
        dup_str(m, "tokenizer.ggml.model", &m->tokenizer_model) != 0) {
        return fail(r, IG_ENOMEM, "out of memory");
    }
    m->file_type = gguf_meta_get_i64(m, "general.file_type", &sv) == 0 ? sv : -1;
    if (gguf_meta_get_u64(m, "split.count", &v) == 0 && v <= UINT32_MAX) {
        m->split_count = (uint32_t)v;
    }
    if (gguf_meta_get_u64(m, "split.no", &v) == 0 && v <= UINT32_MAX) {
        m->split_no = (uint32_t)v;
    }
    arch_u64(m, "context_length", &m->context_length);
    arch_u64(m, "embedding_length", &m->embedding_length);
    arch_u64(m, "block_count", &m->block_count);
    arch_u64(m, "feed_forward_length", &m->feed_forward_length);
    arch_u64(m, "attention.head_count", &m->head_count);
    m->head_count_kv = m->head_count;
    arch_u64(m, "attention.head_count_kv", &m->head_count_kv);
    arch_u64(m, "attention.key_length", &m->key_length);
    arch_u64(m, "attention.value_length", &m->value_length);
    arch_u64(m, "vocab_size", &m->vocab_size);
    if (m->vocab_size == 0) {
        enum gguf_value_type et;
        if (gguf_meta_get_array(m, "tokenizer.ggml.tokens", &et, &v) == 0) {
            m->vocab_size = v;
        }
    }
    m->pooling_type = -1;
    if (m->architecture != NULL) {
        char key[192];
        snprintf(key, sizeof(key), "%s.pooling_type", m->architecture);
        if (gguf_meta_get_i64(m, key, &sv) == 0) {
            m->pooling_type = sv;
        }
    }
    m->has_output_tensor = gguf_meta_tensor(m, "output.weight") != NULL;
    m->has_token_embd = gguf_meta_tensor(m, "token_embd.weight") != NULL;
    gguf_compute_type_mix(m);
    gguf_compute_caps(m);
    return 0;
}

/* Compares two tensor pointers by name, for the duplicate check. */
static int cmp_tensor_name(const void *a, const void *b)
{
    const struct gguf_tensor_info *ta = *(const struct gguf_tensor_info *const *)a;
    const struct gguf_tensor_info *tb = *(const struct gguf_tensor_info *const *)b;
    return strcmp(ta->name, tb->name);
}

/* Compares two pair pointers by key, for the duplicate check. */
static int cmp_kv_key(const void *a, const void *b)
{
    const struct gguf_kv *ka = *(const struct gguf_kv *const *)a;
    const struct gguf_kv *kb = *(const struct gguf_kv *const *)b;
    return strcmp(ka->key, kb->key);
}

/* Fails when two keys (or two tensor names) repeat, as ggml's reader does. */
static int check_duplicates(struct gguf_reader *r, struct gguf_meta *m)
{
    size_t n = m->n_kv > m->n_tensors ? m->n_kv : m->n_tensors;
    if (n < 2) {
        return 0;
    }
    const void **sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL) {
        return fail(r, IG_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->n_kv; i++) {
        sorted[i] = &m->kv[i];
    }
    qsort(sorted, m->n_kv, sizeof(*sorted), cmp_kv_key);
    for (size_t i = 1; i < m->n_kv; i++) {
        const struct gguf_kv *a = sorted[i - 1];
        const struct gguf_kv *b = sorted[i];
        if (strcmp(a->key, b->key) == 0) {
            fail(r, IG_EPROTO, "duplicate key '%s'", a->key);
            goto out;
        }
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        sorted[i] = &m->tensors[i];
    }
    qsort(sorted, m->n_tensors, sizeof(*sorted), cmp_tensor_name);
    for (size_t i = 1; i < m->n_tensors; i++) {
        const struct gguf_tensor_info *a = sorted[i - 1];
        const struct gguf_tensor_info *b = sorted[i];
        if (strcmp(a->name, b->name) == 0) {
            fail(r, IG_EPROTO, "duplicate tensor '%s'", a->name);
            goto out;
        }
    }
out:
    free(sorted);
    return r->rc;
}

/* Checks every tensor's data range against the data section and sums the statistics. */
static int check_tensor_data(struct gguf_reader *r, struct gguf_meta *m)
{
    uint64_t data_bytes = m->data_offset <= r->size ? r->size - m->data_offset : 0;
    if (m->n_tensors > 0 && m->data_offset > r->size) {
        return fail(r, IG_EPROTO, "truncated: tensor data section starts at %llu, file has %llu",
                    (unsigned long long)m->data_offset, (unsigned long long)r->size);
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct gguf_tensor_info *t = &m->tensors[i];
        if (t->offset % m->alignment != 0) {
            return fail(r, IG_EPROTO, "tensor '%s': offset %llu is not aligned to %u", t->name,
                        (unsigned long long)t->offset, m->alignment);
        }
        if (t->offset > data_bytes || t->n_bytes > data_bytes - t->offset) {
            return fail(r, IG_EPROTO,
                        "tensor '%s': data [%llu, +%llu) lies past the end of the file "
                        "(truncated download?)",
                        t->name, (unsigned long long)t->offset, (unsigned long long)t->n_bytes);
        }
        m->n_params += t->n_elements;
        m->weight_bytes += t->n_bytes;
        m->type_bytes[t->type] += t->n_bytes;
    }
    return 0;
}

/* Parses the whole head from R into M. */
static int parse(struct gguf_reader *r, struct gguf_meta *m)
{
    uint8_t magic[4];
    uint64_t n_tensors = 0;
    uint64_t n_kv = 0;
    if (rd(r, magic, sizeof(magic), "magic") != 0) {
        return r->rc;
    }
    if (memcmp(magic, "GGUF", 4) != 0) {
        return fail(r, IG_EPROTO, "not a GGUF file (bad magic)");
    }
    if (rd_u32(r, &m->version, "version") != 0) {
        return r->rc;
    }
    if ((m->version & 0xffffu) == 0 && m->version != 0) {
        return fail(r, IG_EPROTO, "big-endian GGUF files are not supported");
    }
    if (m->version == 1) {
        return fail(r, IG_EPROTO, "GGUF v1 is not supported (convert the model again)");
    }
    if (m->version != 2 && m->version != 3) {
        return fail(r, IG_EPROTO, "unsupported GGUF version %u", m->version);
    }
    if (rd_u64(r, &n_tensors, "tensor count") != 0 || rd_u64(r, &n_kv, "key count") != 0) {
        return r->rc;
    }
    if (n_kv > left(r) / GGUF_MIN_KV_BYTES) {
        return fail(r, IG_EPROTO, "header declares %llu keys, more than the file can hold",
                    (unsigned long long)n_kv);
    }
    if (n_kv > GGUF_META_MAX_KV) {
        return fail(r, IG_ETOOBIG, "header declares %llu keys (limit %u)", (unsigned long long)n_kv,
                    GGUF_META_MAX_KV);
    }
    if (n_tensors > left(r) / GGUF_MIN_TENSOR_BYTES) {
        return fail(r, IG_EPROTO, "header declares %llu tensors, more than the file can hold",
                    (unsigned long long)n_tensors);
    }
    if (n_tensors > GGUF_META_MAX_TENSORS) {
        return fail(r, IG_ETOOBIG, "header declares %llu tensors (limit %u)",
                    (unsigned long long)n_tensors, GGUF_META_MAX_TENSORS);
    }
    if (n_kv > 0) {
        m->kv = calloc((size_t)n_kv, sizeof(*m->kv));
        if (m->kv == NULL) {
            return fail(r, IG_ENOMEM, "out of memory for %llu keys", (unsigned long long)n_kv);
        }
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        m->n_kv = (size_t)i + 1;
        if (rd_kv(r, &m->kv[i], i) != 0) {
            return r->rc;
        }
    }
    if (n_tensors > 0) {
        m->tensors = calloc((size_t)n_tensors, sizeof(*m->tensors));
        if (m->tensors == NULL) {
            return fail(r, IG_ENOMEM, "out of memory for %llu tensors",
                        (unsigned long long)n_tensors);
        }
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        m->n_tensors = (size_t)i + 1;
        if (rd_tensor(r, &m->tensors[i], i) != 0) {
            return r->rc;
        }
    }
    if (check_duplicates(r, m) != 0) {
        return r->rc;
    }
    m->alignment = GGUF_DEFAULT_ALIGNMENT;
    int at = gguf_meta_key_type(m, "general.alignment");
    if (at >= 0) {
        uint64_t a = 0;
        if (at != GGUF_TYPE_UINT32 || gguf_meta_get_u64(m, "general.alignment", &a) != 0 ||
            a == 0 || (a & (a - 1)) != 0) {
            return fail(r, IG_EPROTO, "general.alignment must be a power of two (u32)");
        }
        m->alignment = (uint32_t)a;
    }
    /* r->pos <= size here, so the rounding cannot overflow. */
    m->data_offset = (r->pos + m->alignment - 1) / m->alignment * m->alignment;
    m->file_bytes = r->size;
    if (check_tensor_data(r, m) != 0) {
        return r->rc;
    }
    return extract(r, m);
}

/* Runs the parser on R and turns its failure into *CAUSE. */
static int read_with(struct gguf_reader *r, struct gguf_meta *out, char **cause)
{
    memset(out, 0, sizeof(*out));
    int rc = parse(r, out);
    if (rc != 0) {
        gguf_meta_free(out);
        if (cause != NULL) {
            *cause = strdup(r->why);
        }
    }
    return rc;
}

int gguf_meta_read_mem(const void *data, size_t len, struct gguf_meta *out, char **cause)
{
    struct gguf_reader r = {.mem = data, .fd = -1, .size = len};
    static const uint8_t empty[1];
    if (r.mem == NULL) {
        r.mem = empty;
        r.size = 0;
    }
    return read_with(&r, out, cause);
}

int gguf_meta_read(const char *path, struct gguf_meta *out, char **cause)
{
    struct gguf_reader r = {.fd = -1};
    struct stat st;
    int rc = IG_EIO;
    memset(out, 0, sizeof(*out));
    r.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r.fd < 0) {
        rc = fail(&r, IG_EIO, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (fstat(r.fd, &st) != 0) {
        rc = fail(&r, IG_EIO, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fail(&r, IG_EIO, "not a regular file");
        goto fail;
    }
    r.size = (uint64_t)st.st_size;
    r.window = malloc(GGUF_WINDOW_BYTES);
    if (r.window == NULL) {
        rc = fail(&r, IG_ENOMEM, "out of memory");
        goto fail;
    }
    rc = read_with(&r, out, cause);
    goto out;
fail:
    if (cause != NULL) {
        *cause = strdup(r.why);
    }
out:
    free(r.window);
    if (r.fd >= 0) {
        close(r.fd);
    }
    return rc;
}

void gguf_meta_free(struct gguf_meta *meta)
{
    if (meta == NULL) {
        return;
    }
    for (size_t i = 0; i < meta->n_kv; i++) {
        free(meta->kv[i].key);
        free(meta->kv[i].str);
    }
    free(meta->kv);
    for (size_t i = 0; i < meta->n_tensors; i++) {
        free(meta->tensors[i].name);
    }
    free(meta->tensors);
    free(meta->architecture);
    free(meta->name);
    free(meta->chat_template);
    free(meta->tokenizer_model);
    memset(meta, 0, sizeof(*meta));
}

int gguf_meta_add_part(struct gguf_meta *meta, struct gguf_meta *part)
{
    if (part->n_tensors > 0) {
        struct gguf_tensor_info *t =
            realloc(meta->tensors, (meta->n_tensors + part->n_tensors) * sizeof(*t));
        if (t == NULL) {
            return IG_ENOMEM;
        }
        memcpy(t + meta->n_tensors, part->tensors, part->n_tensors * sizeof(*t));
        meta->tensors = t;
        meta->n_tensors += part->n_tensors;
        free(part->tensors);
        part->tensors = NULL;
        part->n_tensors = 0;
    }
    meta->n_params += part->n_params;
    meta->weight_bytes += part->weight_bytes;
    for (uint32_t t = 0; t < GGUF_GGML_TYPE_COUNT; t++) {
        meta->type_bytes[t] += part->type_bytes[t];
    }
    meta->has_output_tensor |= part->has_output_tensor;
    meta->has_token_embd |= part->has_token_embd;
    gguf_compute_type_mix(meta);
    gguf_compute_caps(meta);
    return 0;
}
