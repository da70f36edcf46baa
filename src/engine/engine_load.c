/* Model loading for the inference thread: backends, the GGUF file, the context. */
#include "engine_internal.h"
#include "model_catalog.h"

#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENG_DEFAULT_CTX 4096

/* Drops libllama's log lines unless the engine runs verbose. */
static void llama_log_cb(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)level;
    if (user_data != NULL)
        fputs(text, stderr);
}

/* Returns the default thread count: one per physical core, taken as half the online CPUs
 * (more threads than cores makes ggml's spinning workers fight each other). */
static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/*
 * Returns the directory of the ggml CPU backends: the build tree's when it exists, else the
 * installed one next to the executable (bin/../lib/infergate). BUF holds the latter.
 */
static const char *backend_path(char *buf, size_t size)
{
    char exe[4096];
    ssize_t n;

    if (access(IG_LLAMA_BACKEND_DIR, F_OK) == 0)
        return IG_LLAMA_BACKEND_DIR;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return IG_LLAMA_BACKEND_DIR;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(buf, size, "%s/%s", exe, IG_LLAMA_INSTALL_BACKEND_SUBDIR);
    return buf;
}

/* libllama's load progress hook: records PROGRESS for /health; returning false aborts the load
 * once shutdown began. */
static bool load_progress(float progress, void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->mu);
    e->load_progress = progress < 0.0f ? 0.0f : progress > 1.0f ? 1.0f : progress;
    bool is_stopping = e->is_stopping;
    pthread_mutex_unlock(&e->mu);
    return !is_stopping;
}

/*
 * Gives CTX a worker pool of N_THREADS threads that poll for work at level POLL (0: they sleep
 * on a condition variable between graphs) instead of the pool libggml creates and joins on
 * every graph when none is attached. The prebuilt libggml-cpu has no OpenMP: inside a graph
 * its workers spin on ggml_barrier whatever the level, so when another process takes a core
 * the step waits for the descheduled worker; between graphs a polling worker only burns the
 * CPU that the HTTP thread and the clients need. The CPU backend is loaded at run time, so its
 * pool functions are looked up through the registry, as llama.cpp's common/ does. Without
 * them the context keeps libggml's default; that is slower but not an error.
 */
static void attach_threadpool(struct engine *e, struct llama_context *ctx, int n_threads, int poll)
{
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = dev != NULL ? ggml_backend_dev_backend_reg(dev) : NULL;
    if (reg == NULL)
        return;
    struct ggml_threadpool *(*new_fn)(struct ggml_threadpool_params *) =
        (struct ggml_threadpool * (*)(struct ggml_threadpool_params *))
            ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new");
    void (*free_fn)(struct ggml_threadpool *) = (void (*)(
        struct ggml_threadpool *))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free");
    if (new_fn == NULL || free_fn == NULL)
        return;
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads);
    tpp.poll = (uint32_t)poll;
    e->threadpool = new_fn(&tpp);
    if (e->threadpool == NULL)
        return;
    e->threadpool_free = free_fn;
    llama_attach_threadpool(ctx, e->threadpool, e->threadpool);
}

void eng_unload(struct engine *e, struct llama_context *ctx)
{
    llama_free(ctx);
    if (e->threadpool != NULL)
        e->threadpool_free(e->threadpool);
    e->threadpool = NULL;
}

/* Writes why libllama could not load PATH into CAUSE: our own GGUF reader's diagnosis when
 * the file is malformed, else what the file declares that libllama refused. */
static void describe_load_failure(const char *path, char *cause, size_t size)
{
    char what[256];

    if (catalog_describe_file(path, what, sizeof(what)) != 0)
        snprintf(cause, size, "cannot load model %s: %s", path, what);
    else
        snprintf(cause, size,
                 "cannot load model %s: libllama refused it (%s; an unsupported architecture "
                 "or missing tensors; --verbose shows libllama's reason)",
                 path, what);
}

struct llama_context *eng_load(struct engine *e)
{
    const struct eng_options *o = e->opts;
    struct llama_context *ctx = NULL;

    llama_log_set(llama_log_cb, o->is_verbose ? (void *)1 : NULL);
    char backend_dir[8192];
    ggml_backend_load_all_from_path(backend_path(backend_dir, sizeof(backend_dir)));
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = o->n_gpu_layers;
    if (o->is_no_mmap)
        mp.load_mode = LLAMA_LOAD_MODE_NONE;
    mp.progress_callback = load_progress;
    mp.progress_callback_user_data = e;
    e->model = llama_model_load_from_file(o->model_path, mp);
    if (e->model == NULL) {
        describe_load_failure(o->model_path, e->load_cause, sizeof(e->load_cause));
        goto out;
    }
    int n_train = llama_model_n_ctx_train(e->model);
    int n_ctx = o->n_ctx > 0
                    ? o->n_ctx
                    : (n_train > 0 && n_train < ENG_DEFAULT_CTX ? n_train : ENG_DEFAULT_CTX);
    /*
     * The slots share one KV buffer, each limited to its share of it (the inference thread
     * stops a sequence at n_ctx_slot), so the totals are those of per-slot buffers. With one
     * buffer per sequence libllama splits a batch into one micro-batch per run of consecutive
     * sequence ids that are all in it: 8 streams decoding in every other slot became 8 graph
     * evaluations per step instead of 1, and a packed batch of prompts as many as the runs.
     * With one buffer any mix of sequences is split only by n_ubatch, as llama-server does by
     * default. The slot size is rounded as libllama rounds per-slot buffers.
     */
    int n_ctx_slot = n_ctx / o->n_parallel;
    n_ctx_slot = n_ctx_slot < 1 ? 256 : (n_ctx_slot + 255) / 256 * 256;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx_slot * (uint32_t)o->n_parallel;
    cp.n_batch = (uint32_t)o->n_batch;
    cp.n_ubatch = o->has_embeddings || o->n_batch < 512 ? (uint32_t)o->n_batch : 512;
    cp.n_seq_max = (uint32_t)o->n_parallel;
    cp.kv_unified = !o->is_kv_per_slot;
    cp.embeddings = o->has_embeddings;
    cp.no_perf = true;
    cp.n_threads = o->n_threads > 0 ? o->n_threads : default_threads();
    cp.n_threads_batch = cp.n_threads;
    ctx = llama_init_from_model(e->model, cp);
    if (ctx == NULL) {
        snprintf(e->load_cause, sizeof(e->load_cause),
                 "cannot create a context of %d tokens for model %s", n_ctx, o->model_path);
        goto out;
    }
    attach_threadpool(e, ctx, cp.n_threads, o->poll);
    e->vocab = llama_model_get_vocab(e->model);
    e->n_ctx = (int)llama_n_ctx(ctx);
    e->n_ctx_slot = cp.kv_unified ? n_ctx_slot : (int)llama_n_ctx_seq(ctx);
    e->n_embd = llama_model_n_embd(e->model);
    e->n_vocab = llama_vocab_n_tokens(e->vocab);
    e->n_batch = (int)llama_n_batch(ctx);
    e->model_template = llama_model_chat_template(e->model, NULL);
out:
    return ctx;
}
