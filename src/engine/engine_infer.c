/* The inference thread: loads the model, then runs continuous batching over N slots. */
#include "engine_internal.h"

#include "ig_time.h"

#include <event2/event.h>
#include <ggml-backend.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENG_DEFAULT_CTX 4096

/*
 * One step of the loop builds ONE llama_batch: every generating slot adds its last sampled
 * token, then slots still reading their prompt add chunks of it while the batch has room
 * (n_batch tokens), so a long prompt is spread over several steps instead of stalling the
 * streams that are decoding. Slot i uses sequence id i; its KV cells are removed when the
 * slot is released (finished, cancelled or failed).
 */

/* One sequence of the context and the task using it. */
struct slot {
    struct eng_task *task; /* NULL when idle */
    struct llama_sampler *sampler;
    int n_past;        /* tokens of this sequence in the KV cache */
    int n_prompt_done; /* prompt tokens already in a batch */
    llama_token last;  /* sampled token to feed at the next step */
    bool has_last;
    int batch_index; /* output row of this step's batch, or -1 */
    struct eng_text gen;
    size_t sent; /* bytes of gen already handed to the loop */
    int n_predicted;
    uint64_t start_us;
    uint64_t prompt_done_us;
};

/* Inference-thread state. */
struct infer {
    struct engine *e;
    struct llama_context *ctx;
    struct slot *slots;
    int n_slots;
    struct llama_batch batch;
    bool has_batch;
};

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

/* libllama's load progress hook: returning false aborts the load once shutdown began. */
static bool load_progress(float progress, void *arg)
{
    struct engine *e = arg;
    (void)progress;
    pthread_mutex_lock(&e->mu);
    bool is_stopping = e->is_stopping;
    pthread_mutex_unlock(&e->mu);
    return !is_stopping;
}

/* Loads the model and creates the context; 0, or -1 with e->load_cause set. */
static int infer_load(struct infer *inf)
{
    struct engine *e = inf->e;
    const struct eng_options *o = e->opts;
    int rc = -1;

    llama_log_set(llama_log_cb, o->is_verbose ? (void *)1 : NULL);
    char backend_dir[8192];
    ggml_backend_load_all_from_path(backend_path(backend_dir, sizeof(backend_dir)));
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = o->n_gpu_layers;
    mp.progress_callback = load_progress;
    mp.progress_callback_user_data = e;
    e->model = llama_model_load_from_file(o->model_path, mp);
    if (e->model == NULL) {
        snprintf(e->load_cause, sizeof(e->load_cause),
                 "cannot load model %s: not a valid GGUF model (corrupt, truncated or "
                 "unsupported architecture)",
                 o->model_path);
        goto out;
    }
    int n_train = llama_model_n_ctx_train(e->model);
    int n_ctx = o->n_ctx > 0
                    ? o->n_ctx
                    : (n_train > 0 && n_train < ENG_DEFAULT_CTX ? n_train : ENG_DEFAULT_CTX);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)o->n_batch;
    cp.n_ubatch = o->has_embeddings || o->n_batch < 512 ? (uint32_t)o->n_batch : 512;
    cp.n_seq_max = (uint32_t)o->n_parallel;
    cp.kv_unified = false;
    cp.embeddings = o->has_embeddings;
    cp.no_perf = true;
    cp.n_threads = o->n_threads > 0 ? o->n_threads : default_threads();
    cp.n_threads_batch = cp.n_threads;
    inf->ctx = llama_init_from_model(e->model, cp);
    if (inf->ctx == NULL) {
        snprintf(e->load_cause, sizeof(e->load_cause),
                 "cannot create a context of %d tokens for model %s", n_ctx, o->model_path);
        goto out;
    }
    inf->n_slots = o->n_parallel;
    inf->slots = calloc((size_t)inf->n_slots, sizeof(*inf->slots));
    inf->batch = llama_batch_init(o->n_batch, 0, 1);
    inf->has_batch = true;
    if (inf->slots == NULL) {
        snprintf(e->load_cause, sizeof(e->load_cause), "out of memory");
        goto out;
    }
    e->vocab = llama_model_get_vocab(e->model);
    e->n_ctx = (int)llama_n_ctx(inf->ctx);
    e->n_ctx_slot = (int)llama_n_ctx_seq(inf->ctx);
    e->n_embd = llama_model_n_embd(e->model);
    e->n_vocab = llama_vocab_n_tokens(e->vocab);
    e->n_batch = (int)llama_n_batch(inf->ctx);
    e->model_template = llama_model_chat_template(e->model, NULL);
    rc = 0;
out:
    return rc;
}

/* Moves N bytes of generated text to the task's pending output; caller holds e->mu. */
static void pending_add_locked(struct eng_task *task, const char *s, size_t n)
{
    if (n > 0 && eng_utf8_append_valid(&task->pending, s, n) != 0) {
        task->finish = ENG_FINISH_ERROR;
        snprintf(task->error, sizeof(task->error), "out of memory");
    }
}

/* Frees the slot's sampler, text and KV cells; the task is no longer the slot's. */
static void slot_release(struct infer *inf, struct slot *s)
{
    int id = (int)(s - inf->slots);
    llama_memory_seq_rm(llama_get_memory(inf->ctx), id, -1, -1);
    llama_sampler_free(s->sampler);
    eng_text_release(&s->gen);
    memset(s, 0, sizeof(*s));
    s->batch_index = -1;
    pthread_mutex_lock(&inf->e->mu);
    inf->e->slot_busy[id] = false;
    pthread_mutex_unlock(&inf->e->mu);
}

/* Finishes the slot's task with WHY (flushing held-back text unless a stop string ended it),
 * hands it to the loop and releases the slot. */
static void slot_finish(struct infer *inf, struct slot *s, enum eng_finish why, const char *error)
{
    struct engine *e = inf->e;
    struct eng_task *task = s->task;
    uint64_t now = ig_now_us();

    pthread_mutex_lock(&e->mu);
    if (why == ENG_FINISH_LENGTH || why == ENG_FINISH_EOS)
        pending_add_locked(task, s->gen.data + s->sent, s->gen.len - s->sent);
    if (task->finish == ENG_FINISH_NONE)
        task->finish = why;
    if (error != NULL)
        snprintf(task->error, sizeof(task->error), "%s", error);
    task->n_predicted = s->n_predicted;
    if (s->prompt_done_us == 0)
        s->prompt_done_us = now;
    task->prompt_ms = (double)(s->prompt_done_us - s->start_us) / 1000.0;
    task->predicted_ms = (double)(now - s->prompt_done_us) / 1000.0;
    task->is_finished = true;
    eng_publish_locked(e, task);
    pthread_mutex_unlock(&e->mu);
    slot_release(inf, s);
}

/* Marks a task that never got a slot finished with WHY; caller holds e->mu. */
static void task_finish_locked(struct engine *e, struct eng_task *task, enum eng_finish why,
                               const char *error)
{
    task->finish = why;
    if (error != NULL)
        snprintf(task->error, sizeof(task->error), "%s", error);
    task->is_finished = true;
    eng_publish_locked(e, task);
}

/* Computes the pooled, L2-normalised embeddings of every input of TASK; 0 or -1. */
static int embed_task(struct infer *inf, struct eng_task *task)
{
    struct engine *e = inf->e;
    float *out = calloc((size_t)task->n_inputs * (size_t)e->n_embd, sizeof(float));
    int n_tokens = 0;
    if (out == NULL)
        return -1;
    for (int i = 0; i < task->n_inputs; i++) {
        llama_memory_clear(llama_get_memory(inf->ctx), true);
        inf->batch.n_tokens = 0;
        for (int j = 0; j < task->input_lens[i]; j++) {
            int k = inf->batch.n_tokens++;
            inf->batch.token[k] = task->inputs[i][j];
            inf->batch.pos[k] = j;
            inf->batch.n_seq_id[k] = 1;
            inf->batch.seq_id[k][0] = 0;
            inf->batch.logits[k] = 1;
        }
        const float *v =
            llama_decode(inf->ctx, inf->batch) == 0 ? llama_get_embeddings_seq(inf->ctx, 0) : NULL;
        if (v == NULL) {
            free(out);
            return -1;
        }
        double norm = 0.0;
        for (int d = 0; d < e->n_embd; d++)
            norm += (double)v[d] * v[d];
        norm = norm > 0.0 ? sqrt(norm) : 1.0;
        for (int d = 0; d < e->n_embd; d++)
            out[(size_t)i * (size_t)e->n_embd + (size_t)d] = (float)(v[d] / norm);
        n_tokens += task->input_lens[i];
    }
    llama_memory_clear(llama_get_memory(inf->ctx), true);
    pthread_mutex_lock(&e->mu);
    task->embd = out;
    task->n_embd_tokens = n_tokens;
    task->finish = ENG_FINISH_STOP;
    task->is_finished = true;
    eng_publish_locked(e, task);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* Returns whether any slot holds a task. */
static bool any_active(const struct infer *inf)
{
    for (int i = 0; i < inf->n_slots; i++) {
        if (inf->slots[i].task != NULL)
            return true;
    }
    return false;
}

/*
 * Waits for work, then (under e->mu) moves queued tasks into free slots, pops embedding tasks
 * into *EMBD, and notes cancelled slots. Returns false when the thread must stop.
 */
static bool take_work(struct infer *inf, struct eng_task **embd, bool *cancelled)
{
    struct engine *e = inf->e;
    pthread_mutex_lock(&e->mu);
    while (!e->is_stopping && !any_active(inf) && e->queue_head == NULL)
        pthread_cond_wait(&e->cond, &e->mu);
    if (e->is_stopping) {
        pthread_mutex_unlock(&e->mu);
        return false;
    }
    for (int i = 0; i < inf->n_slots && e->queue_head != NULL; i++) {
        struct eng_task *task = e->queue_head;
        if (task->api == ENG_API_EMBD) {
            e->queue_head = task->queue_next;
            *embd = task;
            break;
        }
        if (inf->slots[i].task != NULL)
            continue;
        e->queue_head = task->queue_next;
        struct slot *s = &inf->slots[i];
        s->task = task;
        s->batch_index = -1;
        s->start_us = ig_now_us();
        task->slot_id = i;
        e->slot_busy[i] = true;
    }
    if (e->queue_head == NULL)
        e->queue_tail = NULL;
    for (int i = 0; i < inf->n_slots; i++)
        cancelled[i] = inf->slots[i].task != NULL && inf->slots[i].task->is_cancelled;
    pthread_mutex_unlock(&e->mu);
    return true;
}

/* Adds TOKEN at POS of sequence SEQ to the batch; returns its row. */
static int batch_add(struct llama_batch *b, llama_token token, int pos, int seq, bool has_logits)
{
    int k = b->n_tokens++;
    b->token[k] = token;
    b->pos[k] = pos;
    b->n_seq_id[k] = 1;
    b->seq_id[k][0] = seq;
    b->logits[k] = has_logits;
    return k;
}

/* Fills the step's batch: generating slots first, then prompt chunks while room is left. */
static void build_batch(struct infer *inf)
{
    int budget = inf->e->n_batch;
    inf->batch.n_tokens = 0;
    for (int i = 0; i < inf->n_slots; i++) {
        struct slot *s = &inf->slots[i];
        s->batch_index = -1;
        if (s->task != NULL && s->has_last && budget > 0) {
            s->batch_index = batch_add(&inf->batch, s->last, s->n_past, i, true);
            budget--;
        }
    }
    for (int i = 0; i < inf->n_slots && budget > 0; i++) {
        struct slot *s = &inf->slots[i];
        if (s->task == NULL || s->has_last || s->n_prompt_done >= s->task->n_prompt)
            continue;
        int left = s->task->n_prompt - s->n_prompt_done;
        int n = left < budget ? left : budget;
        for (int j = 0; j < n; j++) {
            int at = s->n_prompt_done + j;
            bool is_last = at == s->task->n_prompt - 1;
            int row = batch_add(&inf->batch, s->task->prompt[at], at, i, is_last);
            if (is_last)
                s->batch_index = row;
        }
        s->n_prompt_done += n;
        budget -= n;
    }
}

/* Samples the next token of slot S from its output row and hands new text to the loop. */
static void slot_sample(struct infer *inf, struct slot *s)
{
    struct engine *e = inf->e;
    struct eng_task *task = s->task;
    char piece[256];
    int stop_index = -1;

    if (s->prompt_done_us == 0) {
        s->prompt_done_us = ig_now_us();
        s->sampler = eng_sampler_new(&task->sampling);
        if (s->sampler == NULL) {
            slot_finish(inf, s, ENG_FINISH_ERROR, "cannot create the sampler");
            return;
        }
    }
    llama_token tok = llama_sampler_sample(s->sampler, inf->ctx, s->batch_index);
    s->n_predicted++;
    if (!task->sampling.ignore_eos && llama_vocab_is_eog(e->vocab, tok)) {
        slot_finish(inf, s, ENG_FINISH_EOS, NULL);
        return;
    }
    int n = llama_token_to_piece(e->vocab, tok, piece, (int32_t)sizeof(piece), 0, false);
    if (n < 0 || eng_text_append(&s->gen, piece, n > 0 ? (size_t)n : 0) != 0) {
        slot_finish(inf, s, ENG_FINISH_ERROR, "cannot render a token");
        return;
    }
    size_t end = eng_stop_scan(&task->sampling, s->gen.data, s->gen.len, s->sent, &stop_index);
    pthread_mutex_lock(&e->mu);
    pending_add_locked(task, s->gen.data + s->sent, end - s->sent);
    task->n_predicted = s->n_predicted;
    if (stop_index >= 0)
        task->stopping_word = task->sampling.stops[stop_index];
    if (end > s->sent)
        eng_publish_locked(e, task);
    pthread_mutex_unlock(&e->mu);
    s->sent = end;
    if (stop_index >= 0)
        slot_finish(inf, s, ENG_FINISH_STOP, NULL);
    else if (task->sampling.n_predict >= 0 && s->n_predicted >= task->sampling.n_predict)
        slot_finish(inf, s, ENG_FINISH_LENGTH, NULL);
    else if (s->n_past >= e->n_ctx_slot)
        slot_finish(inf, s, ENG_FINISH_LENGTH, NULL);
    else {
        s->last = tok;
        s->has_last = true;
    }
}

/* Runs one step: cancel, batch, decode, sample. */
static void step(struct infer *inf, const bool *cancelled)
{
    for (int i = 0; i < inf->n_slots; i++) {
        struct slot *s = &inf->slots[i];
        if (s->task != NULL && cancelled[i])
            slot_finish(inf, s, ENG_FINISH_CANCEL, NULL);
        else if (s->task != NULL && s->task->sampling.n_predict == 0)
            slot_finish(inf, s, ENG_FINISH_LENGTH, NULL);
    }
    build_batch(inf);
    if (inf->batch.n_tokens == 0)
        return;
    if (llama_decode(inf->ctx, inf->batch) != 0) {
        for (int i = 0; i < inf->n_slots; i++) {
            if (inf->slots[i].task != NULL)
                slot_finish(inf, &inf->slots[i], ENG_FINISH_ERROR, "llama_decode failed");
        }
        return;
    }
    for (int i = 0; i < inf->n_slots; i++) {
        struct slot *s = &inf->slots[i];
        if (s->task == NULL)
            continue;
        if (s->has_last && s->batch_index >= 0) {
            s->n_past++;
            s->has_last = false;
        } else if (!s->has_last && s->n_past < s->n_prompt_done) {
            s->n_past = s->n_prompt_done;
        }
        if (s->batch_index >= 0)
            slot_sample(inf, s);
    }
}

/* Thread body: load, then loop until stopped; every task still held is finished at the end. */
static void *infer_main(void *arg)
{
    struct infer inf = {.e = arg};
    struct engine *e = inf.e;
    bool *cancelled = NULL;

    int rc = infer_load(&inf);
    cancelled = rc == 0 ? calloc((size_t)inf.n_slots, sizeof(bool)) : NULL;
    pthread_mutex_lock(&e->mu);
    if (rc == 0 && cancelled != NULL)
        e->is_ready = true;
    else
        e->is_load_failed = true;
    event_active(e->notify, EV_READ, 0);
    pthread_mutex_unlock(&e->mu);
    while (e->is_ready) {
        struct eng_task *embd = NULL;
        if (!take_work(&inf, &embd, cancelled))
            break;
        if (embd != NULL && embed_task(&inf, embd) != 0) {
            pthread_mutex_lock(&e->mu);
            task_finish_locked(e, embd, ENG_FINISH_ERROR, "embedding failed");
            pthread_mutex_unlock(&e->mu);
        }
        step(&inf, cancelled);
    }
    for (int i = 0; i < inf.n_slots; i++) {
        if (inf.slots[i].task != NULL)
            slot_finish(&inf, &inf.slots[i], ENG_FINISH_CANCEL, NULL);
    }
    pthread_mutex_lock(&e->mu);
    while (e->queue_head != NULL) {
        struct eng_task *task = e->queue_head;
        e->queue_head = task->queue_next;
        task_finish_locked(e, task, ENG_FINISH_CANCEL, NULL);
    }
    e->queue_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    free(cancelled);
    free(inf.slots);
    if (inf.has_batch)
        llama_batch_free(inf.batch);
    llama_free(inf.ctx);
    return NULL;
}

int eng_infer_start(struct engine *e)
{
    if (pthread_create(&e->thread, NULL, infer_main, e) != 0)
        return -1;
    e->has_thread = true;
    return 0;
}

void eng_infer_stop(struct engine *e)
{
    if (!e->has_thread)
        return;
    pthread_mutex_lock(&e->mu);
    e->is_stopping = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->has_thread = false;
    llama_model_free(e->model);
    e->model = NULL;
    llama_backend_free();
}

void eng_submit(struct engine *e, struct eng_task *task)
{
    pthread_mutex_lock(&e->mu);
    task->queue_next = NULL;
    if (e->queue_tail != NULL)
        e->queue_tail->queue_next = task;
    else
        e->queue_head = task;
    e->queue_tail = task;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->mu);
}

void eng_cancel(struct engine *e, struct eng_task *task)
{
    pthread_mutex_lock(&e->mu);
    task->is_cancelled = true;
    pthread_cond_signal(&e->cond);
    pthread_mutex_unlock(&e->mu);
}

void eng_publish_locked(struct engine *e, struct eng_task *task)
{
    if (!task->is_listed) {
        task->is_listed = true;
        task->ready_next = e->ready_head;
        e->ready_head = task;
    }
    event_active(e->notify, EV_READ, 0);
}
