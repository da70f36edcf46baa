/* mkgguf: writes a random-weight GGUF v3 model of the llama architecture, deterministically. */
#include "mkgguf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A model shape. The defaults follow real llama shapes; `1b` is Llama 3.2 1B's. */
struct mk_preset {
    const char *name;
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_ctx;
    int has_tied_output; /* no output.weight: the output projection reuses token_embd */
    enum mk_tensor_type default_type;
};

static const struct mk_preset mk_presets[] = {
    {"tiny", 1024, 128, 2, 4, 2, 352, 2048, 0, MK_TENSOR_F32},
    {"small", 8192, 512, 8, 8, 4, 1024, 4096, 0, MK_TENSOR_F32},
    {"1b", 128256, 2048, 16, 32, 8, 8192, 8192, 1, MK_TENSOR_F16},
};

/* A real Llama 3 instruct chat template; llama_chat_apply_template detects it as "llama3". */
static const char mk_chat_template[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

#define MK_MAX_PATH 4096
#define MK_MAX_TENSORS (3 + 9 * 64)

/* Parsed command line. */
struct mk_options {
    const char *out_path;
    const struct mk_preset *preset;
    int is_embedding;
    uint64_t seed;
    int type; /* enum mk_tensor_type, or -1 for the preset's default */
};

/* Prints the usage text to fp. */
static void mk_usage(FILE *fp)
{
    fprintf(fp, "usage: mkgguf OUT.gguf [--preset tiny|small|1b] [--embedding] [--seed N]\n"
                "              [--type f32|f16|q8_0]\n"
                "Writes a llama-architecture GGUF v3 model with random weights, a byte-level BPE\n"
                "tokenizer and a Llama 3 chat template. Same arguments, same bytes.\n"
                "  --preset     tiny (~2.5 MB, default), small (~110 MB), 1b (Llama 3.2 1B shape)\n"
                "  --embedding  mean pooling metadata, for an embedding model\n"
                "  --seed N     weight seed, 0..2^64-1 (default 42)\n"
                "  --type T     weight storage: f32 (default; 1b: f16), f16, q8_0\n");
}

/* Parses a decimal uint64 that must span the whole string; 0 or -1. */
static int mk_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Looks up a preset by name; NULL when unknown. */
static const struct mk_preset *mk_find_preset(const char *name)
{
    for (size_t i = 0; i < sizeof(mk_presets) / sizeof(mk_presets[0]); i++) {
        if (strcmp(mk_presets[i].name, name) == 0) {
            return &mk_presets[i];
        }
    }
    return NULL;
}

/* Maps a --type name to a tensor type; -1 when unknown. */
static int mk_parse_type(const char *name)
{
    if (strcmp(name, "f32") == 0) {
        return MK_TENSOR_F32;
    }
    if (strcmp(name, "f16") == 0) {
        return MK_TENSOR_F16;
    }
    if (strcmp(name, "q8_0") == 0) {
        return MK_TENSOR_Q8_0;
    }
    return -1;
}

/* Parses argv into opt; on error writes a one-line reason into cause and returns -1. */
static int mk_parse_args(int argc, char **argv, struct mk_options *opt, char *cause, size_t len)
{
    memset(opt, 0, sizeof(*opt));
    opt->preset = &mk_presets[0];
    opt->seed = 42;
    opt->type = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = strcmp(arg, "--preset") == 0 || strcmp(arg, "--seed") == 0 ||
                          strcmp(arg, "--type") == 0;
        if (takes_value && value == NULL) {
            snprintf(cause, len, "%s needs a value", arg);
            return -1;
        }
        if (strcmp(arg, "--embedding") == 0) {
            opt->is_embedding = 1;
        } else if (strcmp(arg, "--preset") == 0) {
            opt->preset = mk_find_preset(value);
            if (opt->preset == NULL) {
                snprintf(cause, len, "unknown preset '%.64s' (tiny, small, 1b)", value);
                return -1;
            }
        } else if (strcmp(arg, "--seed") == 0) {
            if (mk_parse_u64(value, &opt->seed) != 0) {
                snprintf(cause, len, "--seed wants a decimal number 0..2^64-1, not '%.64s'", value);
                return -1;
            }
        } else if (strcmp(arg, "--type") == 0) {
            opt->type = mk_parse_type(value);
            if (opt->type < 0) {
                snprintf(cause, len, "unknown --type '%.64s' (f32, f16, q8_0)", value);
                return -1;
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            snprintf(cause, len, "unknown option '%.64s'", arg);
            return -1;
        } else if (opt->out_path != NULL) {
            snprintf(cause, len, "only one output file, got '%.64s' too", arg);
            return -1;
        } else {
            opt->out_path = arg;
        }
        i += takes_value;
    }
    if (opt->out_path == NULL) {
        snprintf(cause, len, "missing the output file");
        return -1;
    }
    if (strlen(opt->out_path) >= MK_MAX_PATH - 8) {
        snprintf(cause, len, "output path too long");
        return -1;
    }
    return 0;
}

/* Fills one tensor description. */
static void mk_tensor_set(struct mk_tensor *t, const char *name, uint64_t ne0, uint64_t ne1,
                          enum mk_tensor_type type, enum mk_init init)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->type = ne1 ? type : MK_TENSOR_F32; /* norms stay f32, as llama.cpp's converters do */
    t->init = init;
}

/* Lists the model's tensors in llama.cpp's usual order; returns how many. */
static size_t mk_build_tensors(const struct mk_preset *p, enum mk_tensor_type type,
                               struct mk_tensor *t)
{
    uint64_t head_dim = p->n_embd / p->n_head;
    uint64_t q_dim = head_dim * p->n_head;
    uint64_t kv_dim = head_dim * p->n_head_kv;
    size_t n = 0;
    mk_tensor_set(&t[n++], "token_embd.weight", p->n_embd, p->n_vocab, type, MK_INIT_RANDOM);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        static const char *const names[] = {"attn_norm", "attn_q",      "attn_k",
                                            "attn_v",    "attn_output", "ffn_norm",
                                            "ffn_gate",  "ffn_down",    "ffn_up"};
        const uint64_t shape[][2] = {
            {p->n_embd, 0},       {p->n_embd, q_dim},   {p->n_embd, kv_dim},
            {p->n_embd, kv_dim},  {q_dim, p->n_embd},   {p->n_embd, 0},
            {p->n_embd, p->n_ff}, {p->n_ff, p->n_embd}, {p->n_embd, p->n_ff}};
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            char name[64];
            snprintf(name, sizeof(name), "blk.%u.%s.weight", l, names[k]);
            mk_tensor_set(&t[n++], name, shape[k][0], shape[k][1], type,
                          shape[k][1] ? MK_INIT_RANDOM : MK_INIT_ONES);
        }
    }
    mk_tensor_set(&t[n++], "output_norm.weight", p->n_embd, 0, type, MK_INIT_ONES);
    if (!p->has_tied_output) {
        mk_tensor_set(&t[n++], "output.weight", p->n_embd, p->n_vocab, type, MK_INIT_RANDOM);
    }
    return n;
}

/* GGUF general.file_type for the weight type (llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0). */
static uint32_t mk_file_type(enum mk_tensor_type type)
{
    return type == MK_TENSOR_F32 ? 0 : (type == MK_TENSOR_F16 ? 1 : 7);
}

/* Appends every metadata pair: general, llama hyper-parameters, tokenizer, chat template. */
static void mk_put_metadata(struct mk_buf *b, uint64_t *n_kv, const struct mk_options *opt,
                            enum mk_tensor_type type, const struct mk_vocab *v)
{
    const struct mk_preset *p = opt->preset;
    char name[96];
    snprintf(name, sizeof(name), "infergate mkgguf %s%s", p->name,
             opt->is_embedding ? " embedding" : "");
    mk_kv_str(b, n_kv, "general.architecture", "llama");
    mk_kv_str(b, n_kv, "general.type", "model");
    mk_kv_str(b, n_kv, "general.name", name);
    mk_kv_u32(b, n_kv, "general.alignment", MK_ALIGNMENT);
    mk_kv_u32(b, n_kv, "general.file_type", mk_file_type(type));
    mk_kv_u32(b, n_kv, "general.quantization_version", 2);
    mk_kv_u32(b, n_kv, "llama.vocab_size", p->n_vocab);
    mk_kv_u32(b, n_kv, "llama.context_length", p->n_ctx);
    mk_kv_u32(b, n_kv, "llama.embedding_length", p->n_embd);
    mk_kv_u32(b, n_kv, "llama.block_count", p->n_layer);
    mk_kv_u32(b, n_kv, "llama.feed_forward_length", p->n_ff);
    mk_kv_u32(b, n_kv, "llama.attention.head_count", p->n_head);
    mk_kv_u32(b, n_kv, "llama.attention.head_count_kv", p->n_head_kv);
    mk_kv_u32(b, n_kv, "llama.rope.dimension_count", p->n_embd / p->n_head);
    mk_kv_f32(b, n_kv, "llama.rope.freq_base", 500000.0f);
    mk_kv_f32(b, n_kv, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (opt->is_embedding) {
        mk_kv_u32(b, n_kv, "llama.pooling_type", 1); /* LLAMA_POOLING_TYPE_MEAN */
    }
    mk_kv_str(b, n_kv, "tokenizer.ggml.model", "gpt2");
    mk_kv_str(b, n_kv, "tokenizer.ggml.pre", "llama-bpe");
    mk_kv_str_array(b, n_kv, "tokenizer.ggml.tokens", v->tokens, v->n_tokens);
    mk_kv_i32_array(b, n_kv, "tokenizer.ggml.token_type", v->token_types, v->n_tokens);
    mk_kv_str_array(b, n_kv, "tokenizer.ggml.merges", v->merges, v->n_merges);
    mk_kv_u32(b, n_kv, "tokenizer.ggml.bos_token_id", v->bos_id);
    mk_kv_u32(b, n_kv, "tokenizer.ggml.eos_token_id", v->eos_id);
    mk_kv_u32(b, n_kv, "tokenizer.ggml.eot_token_id", v->eot_id);
    mk_kv_bool(b, n_kv, "tokenizer.ggml.add_bos_token", 1);
    mk_kv_bool(b, n_kv, "tokenizer.ggml.add_eos_token", 0);
    mk_kv_str(b, n_kv, "tokenizer.chat_template", mk_chat_template);
}

/* Writes header, metadata, tensor infos and padding; 0 or -1. */
static int mk_write_head(FILE *fp, const struct mk_buf *kv, uint64_t n_kv,
                         const struct mk_buf *info, uint64_t n_tensors)
{
    static const uint8_t zeros[MK_ALIGNMENT];
    struct mk_buf head = {0};
    int rc = -1;
    mk_buf_put(&head, "GGUF", 4);
    mk_buf_u32(&head, 3);
    mk_buf_u64(&head, n_tensors);
    mk_buf_u64(&head, n_kv);
    if (head.is_failed) {
        goto out;
    }
    uint64_t total = head.len + kv->len + info->len;
    size_t pad = (size_t)((MK_ALIGNMENT - total % MK_ALIGNMENT) % MK_ALIGNMENT);
    if (fwrite(head.data, 1, head.len, fp) != head.len ||
        fwrite(kv->data, 1, kv->len, fp) != kv->len ||
        fwrite(info->data, 1, info->len, fp) != info->len || fwrite(zeros, 1, pad, fp) != pad) {
        goto out;
    }
    rc = 0;
out:
    mk_buf_free(&head);
    return rc;
}

/* Writes every tensor's data, each padded to the next tensor's offset; 0 or -1. */
static int mk_write_data(FILE *fp, const struct mk_tensor *t, size_t n, uint64_t data_bytes,
                         uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t end = i + 1 < n ? t[i + 1].offset : data_bytes;
        if (mk_write_tensor_data(fp, &t[i], seed, (uint32_t)i, end - t[i].offset) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Checks the preset against the weight type and the vocabulary; 0, or -1 with a reason. */
static int mk_check_shape(const struct mk_preset *p, enum mk_tensor_type type, char *cause,
                          size_t len)
{
    uint32_t min_vocab = mk_vocab_min_size();
    if (min_vocab == 0 || p->n_vocab < min_vocab) {
        snprintf(cause, len, "preset %s: vocabulary of %u is below the %u fixed tokens", p->name,
                 p->n_vocab, min_vocab);
        return -1;
    }
    if (p->n_head == 0 || p->n_head_kv == 0 || p->n_embd % p->n_head != 0 ||
        p->n_head % p->n_head_kv != 0) {
        snprintf(cause, len, "preset %s: heads do not divide the embedding", p->name);
        return -1;
    }
    if (type == MK_TENSOR_Q8_0 && (p->n_embd % MK_QK8_0 != 0 || p->n_ff % MK_QK8_0 != 0)) {
        snprintf(cause, len, "preset %s: q8_0 needs rows that are multiples of 32", p->name);
        return -1;
    }
    return 0;
}

/*
 * Writes the model to OUT.tmp and renames it over OUT, so a reader never sees half a file.
 * On success *file_bytes is the file size; on failure cause holds the reason.
 */
static int mk_write_model(const struct mk_options *opt, uint64_t *file_bytes, char *cause,
                          size_t len)
{
    int rc = -1;
    enum mk_tensor_type type =
        opt->type >= 0 ? (enum mk_tensor_type)opt->type : opt->preset->default_type;
    struct mk_vocab vocab = {0};
    struct mk_buf kv = {0}, info = {0};
    struct mk_tensor *tensors = calloc(MK_MAX_TENSORS, sizeof(*tensors));
    char tmp_path[MK_MAX_PATH];
    FILE *fp = NULL;
    uint64_t n_kv = 0;
    snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", opt->out_path);
    if (mk_check_shape(opt->preset, type, cause, len) != 0) {
        goto out;
    }
    if (tensors == NULL || opt->preset->n_layer * 9 + 3 > MK_MAX_TENSORS ||
        mk_vocab_build(&vocab, opt->preset->n_vocab) != 0) {
        snprintf(cause, len, "out of memory");
        goto out;
    }
    size_t n_tensors = mk_build_tensors(opt->preset, type, tensors);
    uint64_t data_bytes = mk_layout_tensors(tensors, n_tensors);
    mk_put_metadata(&kv, &n_kv, opt, type, &vocab);
    mk_put_tensor_infos(&info, tensors, n_tensors);
    if (kv.is_failed || info.is_failed) {
        snprintf(cause, len, "metadata too large or out of memory");
        goto out;
    }
    fp = fopen(tmp_path, "wb");
    if (fp == NULL) {
        snprintf(cause, len, "cannot create %.300s: %s", tmp_path, strerror(errno));
        goto out;
    }
    if (mk_write_head(fp, &kv, n_kv, &info, n_tensors) != 0 ||
        mk_write_data(fp, tensors, n_tensors, data_bytes, opt->seed) != 0 || fflush(fp) != 0) {
        snprintf(cause, len, "cannot write %.300s: %s", tmp_path, strerror(errno));
        goto out;
    }
    long size = ftell(fp);
    int close_rc = fclose(fp);
    fp = NULL;
    if (close_rc != 0 || size < 0 || rename(tmp_path, opt->out_path) != 0) {
        snprintf(cause, len, "cannot finish %.300s: %s", opt->out_path, strerror(errno));
        goto out;
    }
    *file_bytes = (uint64_t)size;
    rc = 0;
out:
    if (fp != NULL) {
        fclose(fp);
    }
    if (rc != 0) {
        remove(tmp_path);
    }
    mk_buf_free(&info);
    mk_buf_free(&kv);
    mk_vocab_free(&vocab);
    free(tensors);
    return rc;
}

/* Parses the command line, writes the model, reports one line; exit 0, 1 (failure) or 2 (usage). */
int main(int argc, char **argv)
{
    struct mk_options opt;
    char cause[512];
    uint64_t file_bytes = 0;
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        mk_usage(stdout);
        return 0;
    }
    if (mk_parse_args(argc, argv, &opt, cause, sizeof(cause)) != 0) {
        fprintf(stderr, "mkgguf: %s\n", cause);
        mk_usage(stderr);
        return 2;
    }
    if (mk_write_model(&opt, &file_bytes, cause, sizeof(cause)) != 0) {
        fprintf(stderr, "mkgguf: %s\n", cause);
        return 1;
    }
    printf("mkgguf: wrote %s (preset %s%s, seed %llu, %.1f MB)\n", opt.out_path, opt.preset->name,
           opt.is_embedding ? ", embedding" : "", (unsigned long long)opt.seed,
           (double)file_bytes / 1e6);
    return 0;
}
