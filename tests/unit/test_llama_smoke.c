/* Smoke test of the prebuilt libllama on mkgguf models: load, tokenize, template, decode, embed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ggml-backend.h>
#include <llama.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IG_MKGGUF_PATH
#error "IG_MKGGUF_PATH must name the built mkgguf (set by cmake/Llama.cmake)"
#endif
#ifndef IG_LLAMA_BACKEND_DIR
#error "IG_LLAMA_BACKEND_DIR must name the libllama backend dir (set by cmake/Llama.cmake)"
#endif

#define N_GENERATE 16
#define TINY_N_VOCAB 1024
#define TINY_N_EMBD 128

/* Models shared by every test: generated once into a temporary directory. */
struct smoke {
    char dir[64];
    char path[256];           /* tiny, f32 */
    char path_embedding[256]; /* tiny --embedding */
    struct llama_model *model;
};

/* Drops libllama's log lines unless IG_TEST_LLAMA_LOG is set (load failures are expected). */
static void smoke_log(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)level;
    if (user_data != NULL)
        fputs(text, stderr);
}

/*
 * Runs mkgguf with out_path and up to two extra arguments (stdout dropped, and stderr too when
 * is_quiet); returns its exit status or -1.
 */
static int run_mkgguf_ex(const char *out_path, const char *arg1, const char *arg2, int is_quiet)
{
    char *argv[] = {(char *)IG_MKGGUF_PATH, (char *)out_path, (char *)arg1, (char *)arg2, NULL};
    int status = 0;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL ||
            (is_quiet && freopen("/dev/null", "w", stderr) == NULL))
            _exit(126);
        execv(IG_MKGGUF_PATH, argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs mkgguf, showing its errors. */
static int run_mkgguf(const char *out_path, const char *arg1, const char *arg2)
{
    return run_mkgguf_ex(out_path, arg1, arg2, 0);
}

/* Reads a whole small file into a malloc'd buffer; caller frees. NULL on error or > cap. */
static unsigned char *read_file(const char *path, size_t cap, size_t *len)
{
    unsigned char *data = NULL;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    data = malloc(cap);
    *len = data != NULL ? fread(data, 1, cap, fp) : 0;
    if (data != NULL && (*len == cap || ferror(fp))) {
        free(data);
        data = NULL;
    }
    fclose(fp);
    return data;
}

/* Writes len bytes to path; 0 or -1. */
static int write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        return -1;
    size_t written = fwrite(data, 1, len, fp);
    int close_rc = fclose(fp);
    return written == len && close_rc == 0 ? 0 : -1;
}

/* Loads the backends, generates the models and loads the tiny one. */
static int group_setup(void **state)
{
    struct smoke *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    *state = s;
    llama_log_set(smoke_log, getenv("IG_TEST_LLAMA_LOG") != NULL ? (void *)1 : NULL);
    ggml_backend_load_all_from_path(IG_LLAMA_BACKEND_DIR);
    llama_backend_init();
    snprintf(s->dir, sizeof(s->dir), "/tmp/ig-llama-smoke-XXXXXX");
    if (ggml_backend_dev_count() == 0 || mkdtemp(s->dir) == NULL)
        return -1;
    snprintf(s->path, sizeof(s->path), "%s/tiny.gguf", s->dir);
    snprintf(s->path_embedding, sizeof(s->path_embedding), "%s/embed.gguf", s->dir);
    if (run_mkgguf(s->path, NULL, NULL) != 0 ||
        run_mkgguf(s->path_embedding, "--embedding", NULL) != 0)
        return -1;
    struct llama_model_params mp = llama_model_default_params();
    s->model = llama_model_load_from_file(s->path, mp);
    return s->model != NULL ? 0 : -1;
}

/* Frees the model and removes every file the tests wrote. */
static int group_teardown(void **state)
{
    struct smoke *s = *state;
    static const char *const names[] = {"tiny.gguf",  "embed.gguf",     "f16.gguf", "q8.gguf",
                                        "again.gguf", "truncated.gguf", "text.gguf"};
    if (s == NULL)
        return 0;
    llama_model_free(s->model);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", s->dir, names[i]);
        unlink(path);
    }
    rmdir(s->dir);
    llama_backend_free();
    free(s);
    return 0;
}

/* Creates a context on model for n_ctx tokens on 2 threads; NULL on failure. */
static struct llama_context *new_context(struct llama_model *model, int has_embeddings)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.embeddings = has_embeddings;
    cp.no_perf = true;
    return llama_init_from_model(model, cp);
}

/* Tokenizes text with BOS into tokens (capacity cap); returns the count or a negative value. */
static int tokenize(const struct llama_model *model, const char *text, llama_token *tokens, int cap)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    return llama_tokenize(vocab, text, (int32_t)strlen(text), tokens, cap, true, true);
}

/* Returns 1 when all n values are finite. */
static int all_finite(const float *values, int n)
{
    for (int i = 0; i < n; i++) {
        if (!isfinite(values[i]))
            return 0;
    }
    return 1;
}

/* The model reports the preset's shape and carries a Llama 3 chat template. */
static void test_llama_model_reports_shape_and_template(void **state)
{
    struct smoke *s = *state;
    const struct llama_vocab *vocab = llama_model_get_vocab(s->model);
    assert_int_equal(llama_vocab_n_tokens(vocab), TINY_N_VOCAB);
    assert_int_equal(llama_model_n_embd(s->model), TINY_N_EMBD);
    const char *tmpl = llama_model_chat_template(s->model, NULL);
    assert_non_null(tmpl);
    assert_non_null(strstr(tmpl, "<|start_header_id|>"));
    assert_int_not_equal(llama_vocab_bos(vocab), LLAMA_TOKEN_NULL);
    assert_true(llama_vocab_is_eog(vocab, llama_vocab_eos(vocab)));
}

/* "hello world" tokenizes to BOS + word tokens and detokenizes back to itself. */
static void test_llama_tokenizes_hello_world(void **state)
{
    struct smoke *s = *state;
    const struct llama_vocab *vocab = llama_model_get_vocab(s->model);
    llama_token tokens[32];
    char text[64];
    int n = tokenize(s->model, "hello world", tokens, 32);
    assert_int_equal(n, 3); /* BOS, "hello", " world": both words are in the vocabulary */
    assert_int_equal(tokens[0], llama_vocab_bos(vocab));
    int len = llama_detokenize(vocab, tokens, n, text, sizeof(text) - 1, true, false);
    assert_in_range(len, 0, (int)sizeof(text) - 1);
    text[len] = '\0';
    assert_string_equal(text, "hello world");
}

/* The model's template formats a two-message chat with both contents and the assistant cue. */
static void test_llama_applies_chat_template(void **state)
{
    struct smoke *s = *state;
    const struct llama_chat_message chat[] = {
        {"system", "You are terse."},
        {"user", "hello world"},
    };
    char buf[512];
    const char *tmpl = llama_model_chat_template(s->model, NULL);
    int n = llama_chat_apply_template(tmpl, chat, 2, true, buf, sizeof(buf) - 1);
    assert_in_range(n, 1, (int)sizeof(buf) - 1);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "<|start_header_id|>system<|end_header_id|>\n\nYou are terse."));
    assert_non_null(
        strstr(buf, "<|start_header_id|>user<|end_header_id|>\n\nhello world<|eot_id|>"));
    assert_non_null(strstr(buf, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
}

/* Decodes the prompt, then greedily samples N_GENERATE tokens into out; 0 or -1. */
static int generate(struct llama_context *ctx, const struct llama_model *model, llama_token *out)
{
    int rc = -1;
    llama_token prompt[64];
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_sampler *greedy = llama_sampler_init_greedy();
    int n = tokenize(model, "<|start_header_id|>user<|end_header_id|>\n\nhello world<|eot_id|>",
                     prompt, 64);
    if (greedy == NULL || n <= 0 || llama_decode(ctx, llama_batch_get_one(prompt, n)) != 0)
        goto out;
    for (int i = 0; i < N_GENERATE; i++) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        if (logits == NULL || !all_finite(logits, n_vocab))
            goto out;
        out[i] = llama_sampler_sample(greedy, ctx, -1);
        if (out[i] < 0 || out[i] >= n_vocab ||
            llama_decode(ctx, llama_batch_get_one(&out[i], 1)) != 0)
            goto out;
    }
    rc = 0;
out:
    llama_sampler_free(greedy);
    return rc;
}

/* Greedy decoding twice from a cleared cache gives the same 16 tokens, with finite logits. */
static void test_llama_greedy_decoding_is_deterministic(void **state)
{
    struct smoke *s = *state;
    llama_token first[N_GENERATE], second[N_GENERATE];
    struct llama_context *ctx = new_context(s->model, 0);
    assert_non_null(ctx);
    assert_int_equal(generate(ctx, s->model, first), 0);
    llama_memory_clear(llama_get_memory(ctx), true);
    assert_int_equal(generate(ctx, s->model, second), 0);
    assert_memory_equal(first, second, sizeof(first));
    llama_free(ctx);
}

/* An --embedding model gives one finite, non-zero mean-pooled vector of n_embd values. */
static void test_llama_embedding_model_pools_sequence(void **state)
{
    struct smoke *s = *state;
    struct llama_model *model =
        llama_model_load_from_file(s->path_embedding, llama_model_default_params());
    assert_non_null(model);
    struct llama_context *ctx = new_context(model, 1);
    assert_non_null(ctx);
    assert_int_equal(llama_pooling_type(ctx), LLAMA_POOLING_TYPE_MEAN);
    llama_token tokens[32];
    int n = tokenize(model, "hello world", tokens, 32);
    assert_true(n > 0);
    assert_int_equal(llama_decode(ctx, llama_batch_get_one(tokens, n)), 0);
    const float *embd = llama_get_embeddings_seq(ctx, 0);
    assert_non_null(embd);
    int n_embd = llama_model_n_embd(model);
    assert_true(all_finite(embd, n_embd));
    double norm = 0.0;
    for (int i = 0; i < n_embd; i++)
        norm += (double)embd[i] * embd[i];
    assert_true(norm > 0.0);
    llama_free(ctx);
    llama_model_free(model);
}

/* Loads path, decodes one prompt and returns 1 when its logits are finite. */
static int decodes_finite(const char *path)
{
    int is_finite = 0;
    llama_token tokens[32];
    struct llama_model *model = llama_model_load_from_file(path, llama_model_default_params());
    struct llama_context *ctx = model != NULL ? new_context(model, 0) : NULL;
    int n = model != NULL ? tokenize(model, "hello world", tokens, 32) : -1;
    if (ctx != NULL && n > 0 && llama_decode(ctx, llama_batch_get_one(tokens, n)) == 0) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        is_finite = logits != NULL &&
                    all_finite(logits, llama_vocab_n_tokens(llama_model_get_vocab(model)));
    }
    llama_free(ctx);
    llama_model_free(model);
    return is_finite;
}

/* f16 and q8_0 weights (our own encoders) load and give finite logits. */
static void test_llama_loads_f16_and_q8_0_weights(void **state)
{
    struct smoke *s = *state;
    char f16[256], q8[256];
    snprintf(f16, sizeof(f16), "%s/f16.gguf", s->dir);
    snprintf(q8, sizeof(q8), "%s/q8.gguf", s->dir);
    assert_int_equal(run_mkgguf(f16, "--type", "f16"), 0);
    assert_int_equal(run_mkgguf(q8, "--type", "q8_0"), 0);
    assert_true(decodes_finite(f16));
    assert_true(decodes_finite(q8));
}

/* The same arguments write a byte-identical file. */
static void test_mkgguf_is_deterministic(void **state)
{
    struct smoke *s = *state;
    char again[256];
    size_t len_a = 0, len_b = 0;
    snprintf(again, sizeof(again), "%s/again.gguf", s->dir);
    assert_int_equal(run_mkgguf(again, NULL, NULL), 0);
    unsigned char *a = read_file(s->path, 64u << 20, &len_a);
    unsigned char *b = read_file(again, 64u << 20, &len_b);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(len_a, len_b);
    assert_memory_equal(a, b, len_a);
    free(a);
    free(b);
}

/* mkgguf refuses bad arguments with the usage exit status. */
static void test_mkgguf_rejects_bad_arguments(void **state)
{
    struct smoke *s = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/never.gguf", s->dir);
    assert_int_equal(run_mkgguf_ex(path, "--preset", "huge", 1), 2);
    assert_int_equal(run_mkgguf_ex(path, "--type", "q4_0", 1), 2);
    assert_int_equal(run_mkgguf_ex(path, "--seed", "-1", 1), 2);
    assert_int_equal(run_mkgguf_ex(path, "--bogus", NULL, 1), 2);
    assert_int_equal(access(path, F_OK), -1);
}

/* A GGUF cut after 1000 bytes fails to load (NULL), without crashing. */
static void test_llama_rejects_truncated_gguf(void **state)
{
    struct smoke *s = *state;
    char path[256];
    size_t len = 0;
    unsigned char *data = read_file(s->path, 64u << 20, &len);
    assert_non_null(data);
    assert_true(len > 1000);
    snprintf(path, sizeof(path), "%s/truncated.gguf", s->dir);
    assert_int_equal(write_file(path, data, 1000), 0);
    free(data);
    assert_null(llama_model_load_from_file(path, llama_model_default_params()));
}

/* A file that is not GGUF fails to load (NULL), without crashing. */
static void test_llama_rejects_non_gguf_file(void **state)
{
    struct smoke *s = *state;
    char path[256];
    static const char text[] = "this is not a model, just some text long enough to read\n";
    snprintf(path, sizeof(path), "%s/text.gguf", s->dir);
    assert_int_equal(write_file(path, text, sizeof(text) - 1), 0);
    assert_null(llama_model_load_from_file(path, llama_model_default_params()));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_model_reports_shape_and_template),
        cmocka_unit_test(test_llama_tokenizes_hello_world),
        cmocka_unit_test(test_llama_applies_chat_template),
        cmocka_unit_test(test_llama_greedy_decoding_is_deterministic),
        cmocka_unit_test(test_llama_embedding_model_pools_sequence),
        cmocka_unit_test(test_llama_loads_f16_and_q8_0_weights),
        cmocka_unit_test(test_mkgguf_is_deterministic),
        cmocka_unit_test(test_mkgguf_rejects_bad_arguments),
        cmocka_unit_test(test_llama_rejects_truncated_gguf),
        cmocka_unit_test(test_llama_rejects_non_gguf_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
