/* Unit tests for src/models/gguf_meta and model_mem: extraction, capabilities, hostile files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "gguf_meta.h"
#include "model_mem.h"
#include "test_gguf_writer.h"

/* Parses BUF, expecting success; the caller frees META. */
static void read_ok(const struct tw_buf *buf, struct gguf_meta *meta)
{
    char *cause = NULL;
    int rc = gguf_meta_read_mem(buf->d, buf->len, meta, &cause);
    if (rc != 0) {
        fail_msg("unexpected error %d: %s", rc, cause ? cause : "(none)");
    }
    assert_null(cause);
}

/* Parses LEN bytes, expecting failure with a reason containing WANT (when not NULL). */
static void read_fails(const void *data, size_t len, const char *want)
{
    struct gguf_meta meta;
    char *cause = NULL;
    int rc = gguf_meta_read_mem(data, len, &meta, &cause);
    if (rc == 0) {
        gguf_meta_free(&meta);
        fail_msg("accepted a bad file (wanted '%s')", want ? want : "any error");
    }
    assert_non_null(cause);
    if (want != NULL && strstr(cause, want) == NULL) {
        fail_msg("error '%s' does not mention '%s'", cause, want);
    }
    assert_null(meta.kv);
    assert_null(meta.tensors);
    free(cause);
}

/* Writes the standard model with template TPL and returns its metadata. */
static void model_with_template(const char *tpl, struct gguf_meta *meta)
{
    struct tw_buf buf = {0};
    struct tw_model m = tw_default_model;
    m.chat_template = tpl;
    tw_model_file(&buf, &m);
    read_ok(&buf, meta);
    free(buf.d);
}

static void test_gguf_reads_every_field_of_v3_model(void **state)
{
    struct tw_buf buf = {0};
    struct gguf_meta m;
    (void)state;
    tw_model_file(&buf, &tw_default_model);
    read_ok(&buf, &m);
    assert_int_equal(m.version, 3);
    assert_int_equal(m.file_bytes, buf.len);
    assert_int_equal(m.alignment, 32);
    assert_int_equal(m.data_offset % 32, 0);
    assert_string_equal(m.architecture, "llama");
    assert_string_equal(m.name, "Test Model");
    assert_int_equal(m.file_type, 7);
    assert_string_equal(gguf_file_type_name(m.file_type), "Q8_0");
    assert_string_equal(m.tokenizer_model, "gpt2");
    assert_null(m.chat_template);
    assert_int_equal(m.context_length, 8192);
    assert_int_equal(m.embedding_length, 64);
    assert_int_equal(m.block_count, 2);
    assert_int_equal(m.feed_forward_length, 176);
    assert_int_equal(m.head_count, 4);
    assert_int_equal(m.head_count_kv, 2);
    assert_int_equal(m.key_length, 0);
    assert_int_equal(m.vocab_size, 8);
    assert_int_equal(m.pooling_type, -1);
    assert_int_equal(m.split_count, 0);
    assert_int_equal(m.n_tensors, 4);
    assert_int_equal(m.n_params, 1024 + 64 + 4096 + 1024);
    assert_int_equal(m.weight_bytes, 1088 + 256 + 4352 + 1088);
    assert_int_equal(m.type_bytes[8], 1088 + 4352 + 1088);
    assert_int_equal(m.type_bytes[0], 256);
    assert_string_equal(m.dominant_type, "Q8_0");
    assert_string_equal(m.type_mix, "Q8_0 (96%), F32 (4%)");
    assert_true(m.has_output_tensor);
    assert_true(m.has_token_embd);
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION);
    const struct gguf_tensor_info *t = gguf_meta_tensor(&m, "blk.0.attn_q.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 64);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->type, 8);
    assert_int_equal(t->n_bytes, 4352);
    assert_int_equal(t->offset, 1088 + 32 * 8 /* 256 */);
    assert_null(gguf_meta_tensor(&m, "nope"));
    gguf_meta_free(&m);
    free(buf.d);
}

static void test_gguf_reads_v2_file(void **state)
{
    struct tw_buf buf = {0};
    struct gguf_meta m;
    (void)state;
    tw_model_file(&buf, &tw_default_model);
    buf.d[4] = 2;
    read_ok(&buf, &m);
    assert_int_equal(m.version, 2);
    assert_string_equal(m.architecture, "llama");
    gguf_meta_free(&m);
    free(buf.d);
}

static void test_gguf_reads_from_file(void **state)
{
    struct tw_buf buf = {0};
    struct gguf_meta m;
    char path[] = "/tmp/test_gguf_XXXXXX";
    char *cause = NULL;
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    tw_model_file(&buf, &tw_default_model);
    assert_int_equal(tw_write(path, buf.d, buf.len), 0);
    assert_int_equal(gguf_meta_read(path, &m, &cause), 0);
    assert_int_equal(m.file_bytes, buf.len);
    assert_int_equal(m.n_params, 6208);
    assert_string_equal(m.type_mix, "Q8_0 (96%), F32 (4%)");
    gguf_meta_free(&m);
    /* Truncated on disk: the tensor data check names the likely cause. */
    assert_int_equal(truncate(path, (off_t)buf.len - 100), 0);
    assert_int_equal(gguf_meta_read(path, &m, &cause), IG_EPROTO);
    assert_non_null(strstr(cause, "past the end of the file"));
    free(cause);
    cause = NULL;
    unlink(path);
    assert_int_equal(gguf_meta_read(path, &m, &cause), IG_EIO);
    assert_non_null(strstr(cause, "cannot open"));
    free(cause);
    cause = NULL;
    assert_int_equal(gguf_meta_read("/tmp", &m, &cause), IG_EIO);
    assert_non_null(strstr(cause, "not a regular file"));
    free(cause);
    free(buf.d);
}

static void test_gguf_lookup_api(void **state)
{
    struct tw_buf kv = {0};
    struct tw_buf buf = {0};
    struct gguf_meta m;
    static const int32_t heads_kv[] = {8, 0, 4, 8, 2};
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    enum gguf_value_type et;
    (void)state;
    tw_kv_str(&kv, "general.architecture", "gemma3");
    tw_kv_arr_i32(&kv, "gemma3.attention.head_count_kv", heads_kv, 5);
    tw_kv_u32(&kv, "gemma3.attention.head_count", 8);
    tw_kv_u32(&kv, "gemma3.attention.key_length", 256);
    tw_kv_i32(&kv, "neg", -5);
    tw_kv_f32(&kv, "flt", 0.5f);
    tw_kv_bool(&kv, "flag", 1);
    tw_file(&buf, 3, &kv, 7, NULL, 0);
    read_ok(&buf, &m);
    assert_int_equal(m.n_kv, 7);
    assert_string_equal(gguf_meta_key_at(&m, 1), "gemma3.attention.head_count_kv");
    assert_null(gguf_meta_key_at(&m, 7));
    assert_int_equal(m.head_count, 8);
    assert_int_equal(m.head_count_kv, 8); /* the largest per-layer value */
    assert_int_equal(m.key_length, 256);
    assert_int_equal(gguf_meta_get_array(&m, "gemma3.attention.head_count_kv", &et, &u), 0);
    assert_int_equal(et, GGUF_TYPE_INT32);
    assert_int_equal(u, 5);
    assert_int_equal(gguf_meta_get_u64(&m, "neg", &u), IG_EINVAL);
    assert_int_equal(gguf_meta_get_i64(&m, "neg", &i), 0);
    assert_int_equal(i, -5);
    assert_int_equal(gguf_meta_get_f64(&m, "flt", &f), 0);
    assert_true(f == 0.5);
    assert_int_equal(gguf_meta_get_u64(&m, "flt", &u), IG_EINVAL);
    assert_int_equal(gguf_meta_get_u64(&m, "flag", &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(gguf_meta_get_u64(&m, "missing", &u), IG_ENOENT);
    assert_int_equal(gguf_meta_get_array(&m, "flag", &et, &u), IG_EINVAL);
    assert_null(gguf_meta_get_str(&m, "flag"));
    assert_string_equal(gguf_meta_get_str(&m, "general.architecture"), "gemma3");
    assert_int_equal(gguf_meta_key_type(&m, "flt"), GGUF_TYPE_FLOAT32);
    assert_int_equal(gguf_meta_key_type(&m, "missing"), -1);
    assert_string_equal(gguf_value_type_name(GGUF_TYPE_ARRAY), "arr");
    assert_int_equal(m.n_tensors, 0);
    assert_int_equal(m.caps, 0); /* no tensors: nothing to generate with */
    assert_string_equal(m.dominant_type, "");
    assert_string_equal(m.type_mix, "");
    gguf_meta_free(&m);
    gguf_meta_free(&m); /* idempotent on a zeroed struct */
    free(kv.d);
    free(buf.d);
}

static void test_gguf_type_table_matches_ggml(void **state)
{
    uint32_t be = 0;
    uint32_t bb = 0;
    (void)state;
    assert_int_equal(gguf_ggml_type_block(12, &be, &bb), 0); /* Q4_K */
    assert_int_equal(be, 256);
    assert_int_equal(bb, 144);
    assert_string_equal(gguf_ggml_type_name(12), "Q4_K");
    assert_int_equal(gguf_ggml_type_block(23, &be, &bb), 0); /* IQ4_XS */
    assert_int_equal(bb, 136);
    assert_int_equal(gguf_ggml_type_block(30, &be, &bb), 0); /* BF16 */
    assert_int_equal(be, 1);
    assert_int_equal(bb, 2);
    assert_int_equal(gguf_ggml_type_block(39, &be, &bb), 0); /* MXFP4 */
    assert_int_equal(bb, 17);
    assert_int_equal(gguf_ggml_type_block(4, &be, &bb), IG_EINVAL); /* removed Q4_2 */
    assert_int_equal(gguf_ggml_type_block(31, &be, &bb), IG_EINVAL);
    assert_int_equal(gguf_ggml_type_block(GGUF_GGML_TYPE_COUNT, &be, &bb), IG_EINVAL);
    assert_null(gguf_ggml_type_name(1000));
    assert_string_equal(gguf_file_type_name(15), "Q4_K_M");
    assert_null(gguf_file_type_name(4));
    assert_null(gguf_file_type_name(-1));
    assert_null(gguf_file_type_name(1024));
}

static void test_gguf_caps_reasoning_and_tools_from_template(void **state)
{
    struct gguf_meta m;
    (void)state;
    model_with_template("{% if enable_thinking %}<think>{% endif %}{{ messages }}", &m);
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION | GGUF_CAP_REASONING);
    assert_non_null(strstr(m.chat_template, "<think>"));
    gguf_meta_free(&m);
    model_with_template("{% if tools %}{{ tools | tojson }}{% endif %}", &m);
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION | GGUF_CAP_TOOLS);
    gguf_meta_free(&m);
    model_with_template(
        "{{ message.reasoning_content }}{% for t in message.tool_calls %}{% endfor %}", &m);
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION | GGUF_CAP_TOOLS | GGUF_CAP_REASONING);
    gguf_meta_free(&m);
    model_with_template("{{ bos_token }}{{ messages[0]['content'] }}", &m);
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION);
    gguf_meta_free(&m);
}

static void test_gguf_caps_embeddings(void **state)
{
    struct tw_buf buf = {0};
    struct tw_model spec = tw_default_model;
    struct gguf_meta m;
    (void)state;
    spec.pooling_type = 1; /* mean */
    tw_model_file(&buf, &spec);
    read_ok(&buf, &m);
    assert_int_equal(m.pooling_type, 1);
    assert_int_equal(m.caps, GGUF_CAP_EMBEDDINGS);
    gguf_meta_free(&m);

    spec.pooling_type = 4; /* rank */
    tw_model_file(&buf, &spec);
    read_ok(&buf, &m);
    assert_int_equal(m.caps, GGUF_CAP_EMBEDDINGS | GGUF_CAP_RERANK);
    gguf_meta_free(&m);

    spec = tw_default_model;
    spec.arch = "nomic-bert";
    spec.has_output = 0;
    tw_model_file(&buf, &spec);
    read_ok(&buf, &m);
    assert_int_equal(m.caps, GGUF_CAP_EMBEDDINGS);
    assert_int_equal(m.block_count, 2); /* nomic-bert.block_count */
    gguf_meta_free(&m);

    /* Tied output (no output.weight): token_embd is the LM head. */
    spec = tw_default_model;
    spec.has_output = 0;
    tw_model_file(&buf, &spec);
    read_ok(&buf, &m);
    assert_false(m.has_output_tensor);
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION);
    gguf_meta_free(&m);
    free(buf.d);
}

static void test_gguf_add_part_merges_tensor_totals(void **state)
{
    struct tw_buf buf = {0};
    struct tw_model spec = tw_default_model;
    struct gguf_meta first;
    struct gguf_meta part;
    (void)state;
    spec.split_no = 0;
    spec.split_count = 2;
    tw_model_file(&buf, &spec);
    read_ok(&buf, &first);
    assert_int_equal(first.split_count, 2);
    assert_int_equal(first.split_no, 0);
    spec.split_no = 1;
    spec.tensors_only = 1;
    tw_model_file(&buf, &spec);
    read_ok(&buf, &part);
    assert_null(part.architecture);
    assert_int_equal(part.split_no, 1);
    size_t n_first = first.n_tensors, n_part = part.n_tensors;
    assert_int_equal(gguf_meta_add_part(&first, &part), 0);
    assert_int_equal(first.n_tensors, n_first + n_part);
    assert_int_equal(part.n_tensors, 0);
    assert_non_null(gguf_meta_tensor(&first, first.tensors[n_first].name));
    assert_int_equal(first.n_params, 6208 + 1024 + 64);
    assert_int_equal(first.weight_bytes, 6784 + 1088 + 256);
    assert_int_equal(first.type_bytes[0], 512);
    assert_string_equal(first.type_mix, "Q8_0 (94%), F32 (6%)");
    assert_int_equal(first.caps, GGUF_CAP_COMPLETION);
    gguf_meta_free(&part);
    gguf_meta_free(&first);
    free(buf.d);
}

static void test_gguf_rejects_truncation_at_every_offset(void **state)
{
    struct tw_buf buf = {0};
    struct tw_model spec = tw_default_model;
    (void)state;
    spec.chat_template = "{{ messages }}";
    tw_model_file(&buf, &spec);
    for (size_t len = 0; len < buf.len; len++) {
        /* A copy of exactly LEN bytes, so ASan sees any read past the end. */
        uint8_t *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, buf.d, len);
        read_fails(copy, len, NULL);
        free(copy);
    }
    free(buf.d);
}

/* Writes the 24-byte header with the given counts into B. */
static void head(struct tw_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b->len = 0;
    tw_put(b, "GGUF", 4);
    tw_u32(b, version);
    tw_u64(b, n_tensors);
    tw_u64(b, n_kv);
}

/* Appends filler so counts are not rejected by the size check alone. */
static void filler(struct tw_buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tw_u8(b, 0);
    }
}

static void test_gguf_rejects_bad_magic_and_version(void **state)
{
    struct tw_buf b = {0};
    (void)state;
    read_fails(NULL, 0, "truncated");
    read_fails("GGU", 3, "truncated");
    tw_model_file(&b, &tw_default_model);
    b.d[0] = 'X';
    read_fails(b.d, b.len, "bad magic");
    b.d[0] = 'G';
    b.d[4] = 1;
    read_fails(b.d, b.len, "v1 is not supported");
    b.d[4] = 4;
    read_fails(b.d, b.len, "unsupported GGUF version 4");
    memcpy(b.d + 4, "\0\0\0\3", 4);
    read_fails(b.d, b.len, "big-endian");
    free(b.d);
}

static void test_gguf_rejects_huge_counts(void **state)
{
    struct tw_buf b = {0};
    (void)state;
    head(&b, 3, UINT64_MAX, 0);
    filler(&b, 64);
    read_fails(b.d, b.len, "tensors, more than the file can hold");
    head(&b, 3, 0, UINT64_MAX);
    filler(&b, 64);
    read_fails(b.d, b.len, "keys, more than the file can hold");
    head(&b, 3, 0, 1ull << 40);
    read_fails(b.d, b.len, "more than the file can hold");
    /* Plausible for the file size but over the cap. */
    head(&b, 3, 0, GGUF_META_MAX_KV + 1);
    filler(&b, (GGUF_META_MAX_KV + 1) * 14);
    read_fails(b.d, b.len, "limit");
    head(&b, 3, GGUF_META_MAX_TENSORS + 1, 0);
    filler(&b, (GGUF_META_MAX_TENSORS + 1) * 25);
    read_fails(b.d, b.len, "limit");
    free(b.d);
}

static void test_gguf_rejects_huge_string_lengths(void **state)
{
    struct tw_buf b = {0};
    (void)state;
    head(&b, 3, 0, 1);
    tw_u64(&b, UINT64_MAX); /* key length */
    filler(&b, 32);
    read_fails(b.d, b.len, "string length");
    head(&b, 3, 0, 1);
    tw_u64(&b, 5000); /* over the key cap, but within the file */
    filler(&b, 6000);
    read_fails(b.d, b.len, "limit");
    head(&b, 3, 0, 1);
    tw_str(&b, "k");
    tw_u32(&b, GGUF_TYPE_STRING);
    tw_u64(&b, 1ull << 62); /* value length */
    filler(&b, 16);
    read_fails(b.d, b.len, "exceeds the");
    head(&b, 3, 0, 1);
    tw_str(&b, "k");
    tw_u32(&b, GGUF_TYPE_STRING);
    tw_u64(&b, 3);
    tw_put(&b, "a\0b", 3);
    read_fails(b.d, b.len, "NUL byte");
    head(&b, 3, 0, 1);
    tw_u64(&b, 0); /* empty key */
    tw_u32(&b, GGUF_TYPE_UINT8);
    tw_u8(&b, 1);
    filler(&b, 16);
    read_fails(b.d, b.len, "empty");
    free(b.d);
}

static void test_gguf_rejects_bad_arrays_and_types(void **state)
{
    struct tw_buf b = {0};
    (void)state;
    head(&b, 3, 0, 1);
    tw_str(&b, "arr");
    tw_u32(&b, GGUF_TYPE_ARRAY);
    tw_u32(&b, GGUF_TYPE_UINT32);
    tw_u64(&b, 1ull << 61);
    filler(&b, 64);
    read_fails(b.d, b.len, "array of");
    head(&b, 3, 0, 1);
    tw_str(&b, "arr");
    tw_u32(&b, GGUF_TYPE_ARRAY);
    tw_u32(&b, GGUF_TYPE_STRING);
    tw_u64(&b, UINT64_MAX / 2);
    filler(&b, 64);
    read_fails(b.d, b.len, "strings exceeds");
    head(&b, 3, 0, 1);
    tw_str(&b, "nested");
    tw_u32(&b, GGUF_TYPE_ARRAY);
    tw_u32(&b, GGUF_TYPE_ARRAY);
    tw_u64(&b, 1);
    tw_u32(&b, GGUF_TYPE_UINT8);
    tw_u64(&b, 1);
    tw_u8(&b, 0);
    read_fails(b.d, b.len, "arrays of arrays");
    head(&b, 3, 0, 1);
    tw_str(&b, "weird");
    tw_u32(&b, 13);
    filler(&b, 16);
    read_fails(b.d, b.len, "unknown value type 13");
    head(&b, 3, 0, 1);
    tw_str(&b, "weird");
    tw_u32(&b, GGUF_TYPE_ARRAY);
    tw_u32(&b, 0xffffffffu);
    tw_u64(&b, 1);
    filler(&b, 16);
    read_fails(b.d, b.len, "unknown array element type");
    /* A string array whose strings run off the end. */
    head(&b, 3, 0, 1);
    tw_str(&b, "toks");
    tw_u32(&b, GGUF_TYPE_ARRAY);
    tw_u32(&b, GGUF_TYPE_STRING);
    tw_u64(&b, 2);
    tw_str(&b, "a");
    tw_u64(&b, 1000);
    read_fails(b.d, b.len, "truncated");
    head(&b, 3, 0, 2);
    tw_kv_u32(&b, "dup", 1);
    tw_kv_u32(&b, "dup", 2);
    read_fails(b.d, b.len, "duplicate key 'dup'");
    head(&b, 3, 0, 1);
    tw_kv_u32(&b, "general.alignment", 3);
    read_fails(b.d, b.len, "power of two");
    head(&b, 3, 0, 1);
    tw_kv_u32(&b, "general.alignment", 0);
    read_fails(b.d, b.len, "power of two");
    head(&b, 3, 0, 1);
    tw_kv_u32(&b, "general.architecture", 7);
    read_fails(b.d, b.len, "not a string");
    free(b.d);
}

/* Writes a file with one tensor info given raw: dims, shape, type and offset. */
static void one_tensor(struct tw_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t offset, size_t data_bytes)
{
    head(b, 3, 1, 0);
    tw_str(b, name);
    tw_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims && d < 8; d++) {
        tw_u64(b, ne[d]);
    }
    tw_u32(b, type);
    tw_u64(b, offset);
    while (b->len % 32 != 0) {
        tw_u8(b, 0);
    }
    filler(b, data_bytes);
}

static void test_gguf_rejects_bad_tensors(void **state)
{
    struct tw_buf b = {0};
    uint64_t ne[8] = {32, 2, 1, 1, 1, 1, 1, 1};
    (void)state;
    one_tensor(&b, "ok", 2, ne, 0, 0, 256);
    struct gguf_meta m;
    read_ok(&b, &m);
    assert_int_equal(m.n_params, 64);
    gguf_meta_free(&m);
    one_tensor(&b, "t", 5, ne, 0, 0, 256);
    read_fails(b.d, b.len, "5 dimensions");
    uint64_t neg[2] = {UINT64_MAX, 1};
    one_tensor(&b, "t", 2, neg, 0, 0, 256);
    read_fails(b.d, b.len, "negative dimension");
    uint64_t big[4] = {1ull << 32, 1ull << 32, 1, 1};
    one_tensor(&b, "t", 2, big, 0, 0, 256);
    read_fails(b.d, b.len, "element count overflows");
    uint64_t bytes_ovf[2] = {1ull << 31, 1ull << 31}; /* 2^62 elements, 2^64 bytes as F32 */
    one_tensor(&b, "t", 2, bytes_ovf, 0, 0, 256);
    read_fails(b.d, b.len, "byte size overflows");
    uint64_t huge[2] = {1ull << 20, 1ull << 20};
    one_tensor(&b, "t", 2, huge, 0, 0, 256);
    read_fails(b.d, b.len, "past the end of the file");
    one_tensor(&b, "t", 2, ne, 99, 0, 256);
    read_fails(b.d, b.len, "unknown or removed ggml type 99");
    one_tensor(&b, "t", 2, ne, 4, 0, 256);
    read_fails(b.d, b.len, "removed ggml type 4");
    uint64_t odd[2] = {33, 1};
    one_tensor(&b, "t", 2, odd, 8, 0, 256);
    read_fails(b.d, b.len, "not a multiple");
    one_tensor(&b, "t", 2, ne, 0, 16, 256);
    read_fails(b.d, b.len, "not aligned");
    one_tensor(&b, "t", 2, ne, 0, 1ull << 60, 256);
    read_fails(b.d, b.len, "past the end");
    one_tensor(&b, "t", 2, ne, 0, UINT64_MAX - 31, 256);
    read_fails(b.d, b.len, "past the end");
    one_tensor(&b, "a-name-that-is-much-longer-than-sixty-three-bytes-which-ggml-refuses", 2, ne, 0,
               0, 256);
    read_fails(b.d, b.len, "limit");
    /* Two tensors with one name. */
    head(&b, 3, 2, 0);
    for (int i = 0; i < 2; i++) {
        tw_str(&b, "same");
        tw_u32(&b, 1);
        tw_u64(&b, 8);
        tw_u32(&b, 0);
        tw_u64(&b, (uint64_t)i * 32);
    }
    while (b.len % 32 != 0) {
        tw_u8(&b, 0);
    }
    filler(&b, 64);
    read_fails(b.d, b.len, "duplicate tensor 'same'");
    free(b.d);
}

static void test_gguf_survives_random_corruption(void **state)
{
    struct tw_buf buf = {0};
    struct tw_model spec = tw_default_model;
    unsigned seed = 12345;
    size_t n_ok = 0;
    (void)state;
    spec.chat_template = "{{ tools }}";
    tw_model_file(&buf, &spec);
    struct gguf_meta clean;
    read_ok(&buf, &clean);
    size_t head_len = (size_t)clean.data_offset;
    gguf_meta_free(&clean);
    uint8_t *copy = malloc(buf.len);
    assert_non_null(copy);
    for (int round = 0; round < 20000; round++) {
        memcpy(copy, buf.d, buf.len);
        int flips = 1 + round % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % buf.len;
            seed = seed * 1103515245u + 12345u;
            /* Mostly in the head, where the structure is. */
            if (round % 2 == 0) {
                at = at % head_len;
            }
            copy[at] = (uint8_t)(seed >> 16);
        }
        struct gguf_meta m;
        char *cause = NULL;
        if (gguf_meta_read_mem(copy, buf.len, &m, &cause) == 0) {
            n_ok++;
            gguf_meta_free(&m);
        } else {
            assert_non_null(cause);
            free(cause);
        }
    }
    assert_true(n_ok > 0); /* flips in tensor data still read fine */
    free(copy);
    free(buf.d);
}

static void test_model_mem_estimate_formula(void **state)
{
    struct tw_buf buf = {0};
    struct gguf_meta m;
    struct model_mem_estimate est;
    struct model_mem_params p = {.n_ctx = 4096, .n_parallel = 4};
    (void)state;
    tw_model_file(&buf, &tw_default_model);
    read_ok(&buf, &m);
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.weights_bytes, buf.len);
    /* 2 layers x 4096 cells x (16 + 16) x 2 kv heads x 2 bytes */
    assert_int_equal(est.kv_bytes, 2ull * 4096 * 32 * 2 * 2);
    /* 512 x 4 x (4 x 64 + 3 x 176) + 512 x 1024 x 2 + 4 x 8 x 4 */
    assert_int_equal(est.compute_bytes, 512ull * 4 * (256 + 528) + 512ull * 1024 * 2 + 128);
    assert_int_equal(est.vocab_bytes, 8 * MODEL_MEM_VOCAB_ENTRY_BYTES);
    assert_int_equal(est.overhead_bytes, MODEL_MEM_OVERHEAD_BYTES);
    assert_int_equal(est.total_bytes, est.weights_bytes + est.kv_bytes + est.compute_bytes +
                                          est.vocab_bytes + est.overhead_bytes);
    assert_int_equal(est.n_ubatch, 512);
    /* Defaults: context min(training 8192, 4096). */
    assert_int_equal(model_mem_estimate(&m, NULL, &est), 0);
    assert_int_equal(est.n_ctx, 4096);
    /* Embedding mode: the whole batch is one micro-batch. */
    p.is_embedding = 1;
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.n_ubatch, 2048);
    gguf_meta_free(&m);
    /* No hyper-parameters: no estimate. */
    struct tw_buf kv = {0};
    tw_file(&buf, 3, &kv, 0, NULL, 0);
    read_ok(&buf, &m);
    assert_int_equal(model_mem_estimate(&m, &p, &est), IG_EINVAL);
    gguf_meta_free(&m);
    free(buf.d);
}

static void test_model_mem_splits_offloaded_layers_to_vram(void **state)
{
    struct tw_buf buf = {0};
    struct gguf_meta m;
    struct model_mem_estimate cpu, est;
    struct model_mem_params p = {.n_ctx = 4096, .n_parallel = 4};
    struct tw_model tied = tw_default_model;
    (void)state;
    /* Layers: token_embd 1088 bytes (input, never offloaded); blk.0 256 + 4352; blk.1 none;
     * output 1088 (the output layer, offloaded first). */
    tw_model_file(&buf, &tw_default_model);
    read_ok(&buf, &m);
    assert_int_equal(model_mem_estimate(&m, &p, &cpu), 0);
    assert_int_equal(cpu.vram_bytes, 0);
    assert_int_equal(cpu.n_gpu_layers, 0);
    /* -ngl 1: the output layer only; no block, so no KV on the GPU. */
    p.n_gpu_layers = 1;
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.vram_weights_bytes, 1088);
    assert_int_equal(est.vram_kv_bytes, 0);
    assert_int_equal(est.weights_bytes, cpu.weights_bytes - 1088);
    assert_int_equal(est.vram_bytes, 1088 + est.compute_bytes + MODEL_MEM_GPU_OVERHEAD_BYTES);
    assert_int_equal(est.total_bytes, cpu.total_bytes - 1088);
    /* -ngl 2: the output layer and blk.1 (empty here) with half of the KV cache. */
    p.n_gpu_layers = 2;
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.vram_weights_bytes, 1088);
    assert_int_equal(est.vram_kv_bytes, cpu.kv_bytes / 2);
    assert_int_equal(est.kv_bytes, cpu.kv_bytes / 2);
    /* All (-1, or more than there are): every block and its KV; token_embd stays. */
    p.n_gpu_layers = -1;
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.n_gpu_layers, 3);
    assert_int_equal(est.vram_weights_bytes, 256 + 4352 + 1088);
    assert_int_equal(est.weights_bytes, cpu.weights_bytes - (256 + 4352 + 1088));
    assert_int_equal(est.vram_kv_bytes, cpu.kv_bytes);
    assert_int_equal(est.kv_bytes, 0);
    p.n_gpu_layers = 99;
    struct model_mem_estimate all;
    assert_int_equal(model_mem_estimate(&m, &p, &all), 0);
    assert_int_equal(all.vram_bytes, est.vram_bytes);
    /* --no-kv-offload: the KV cache stays in RAM. */
    p.is_kv_on_cpu = 1;
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.vram_kv_bytes, 0);
    assert_int_equal(est.kv_bytes, cpu.kv_bytes);
    gguf_meta_free(&m);
    /* Tied embeddings: the output layer is a GPU copy of token_embd, which stays in RAM. */
    tied.has_output = 0;
    tw_model_file(&buf, &tied);
    read_ok(&buf, &m);
    p.is_kv_on_cpu = 0;
    p.n_gpu_layers = 1;
    assert_int_equal(model_mem_estimate(&m, &p, &est), 0);
    assert_int_equal(est.vram_weights_bytes, 1088);
    assert_int_equal(est.weights_bytes, buf.len);
    gguf_meta_free(&m);
    free(buf.d);
}

/* Finds mkgguf in a build directory of the repository, or returns NULL. */
static const char *find_mkgguf(void)
{
    static const char *const candidates[] = {"build/mkgguf", "build-gguf/mkgguf"};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        if (access(candidates[i], X_OK) == 0) {
            return candidates[i];
        }
    }
    return NULL;
}

static void test_gguf_reads_mkgguf_output(void **state)
{
    const char *tool = find_mkgguf();
    char dir[] = "/tmp/test_gguf_mk_XXXXXX";
    char cmd[512];
    char path[256];
    struct gguf_meta m;
    char *cause = NULL;
    struct stat st;
    (void)state;
    if (tool == NULL) {
        skip();
    }
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    snprintf(cmd, sizeof(cmd), "%s %s --preset tiny --type q8_0 >/dev/null", tool, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(gguf_meta_read(path, &m, &cause), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(m.file_bytes, (uint64_t)st.st_size);
    assert_string_equal(m.architecture, "llama");
    assert_string_equal(m.name, "infergate mkgguf tiny");
    assert_int_equal(m.context_length, 2048);
    assert_int_equal(m.embedding_length, 128);
    assert_int_equal(m.block_count, 2);
    assert_int_equal(m.head_count, 4);
    assert_int_equal(m.head_count_kv, 2);
    assert_int_equal(m.vocab_size, 1024);
    assert_string_equal(m.tokenizer_model, "gpt2");
    assert_non_null(m.chat_template);
    assert_string_equal(m.dominant_type, "Q8_0");
    assert_string_equal(gguf_file_type_name(m.file_type), "Q8_0");
    assert_int_equal(m.caps, GGUF_CAP_COMPLETION);
    assert_true(m.weight_bytes < m.file_bytes);
    assert_true(m.file_bytes - m.weight_bytes - m.data_offset < 32 * m.n_tensors);
    gguf_meta_free(&m);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_reads_every_field_of_v3_model),
        cmocka_unit_test(test_gguf_reads_v2_file),
        cmocka_unit_test(test_gguf_reads_from_file),
        cmocka_unit_test(test_gguf_lookup_api),
        cmocka_unit_test(test_gguf_type_table_matches_ggml),
        cmocka_unit_test(test_gguf_caps_reasoning_and_tools_from_template),
        cmocka_unit_test(test_gguf_caps_embeddings),
        cmocka_unit_test(test_gguf_add_part_merges_tensor_totals),
        cmocka_unit_test(test_gguf_rejects_truncation_at_every_offset),
        cmocka_unit_test(test_gguf_rejects_bad_magic_and_version),
        cmocka_unit_test(test_gguf_rejects_huge_counts),
        cmocka_unit_test(test_gguf_rejects_huge_string_lengths),
        cmocka_unit_test(test_gguf_rejects_bad_arrays_and_types),
        cmocka_unit_test(test_gguf_rejects_bad_tensors),
        cmocka_unit_test(test_gguf_survives_random_corruption),
        cmocka_unit_test(test_model_mem_estimate_formula),
        cmocka_unit_test(test_model_mem_splits_offloaded_layers_to_vram),
        cmocka_unit_test(test_gguf_reads_mkgguf_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
