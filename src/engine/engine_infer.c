/* The inference thread: loads the model, then runs continuous batching over N slots. */
#include "engine_internal.h"

#include "ig_time.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * One step of the loop builds ONE llama_batch: every generating slot adds its last sampled
 * token, then slots still reading their prompt add chunks of it while the batch has room
 * (n_batch tokens), so a long prompt is spread over several steps instead of stalling the
 * streams that are decoding. Slot i uses sequence id i. When its task ends the slot keeps its
 * KV cells and the tokens they hold (slot.cache); the next task on it keeps the common prefix
 * and evaluates only the rest (reported as cache_n). Cells are dropped only when a decode
 * failed. A slot whose client reads slowly is paused: it keeps its sampled token and decodes
 * nothing until the client drained its buffer.
 */

/* One sequence of the context and the task using it. */
struct slot {
    struct eng_task *task; /* NULL when idle */
    struct llama_sampler *sampler;
    int n_past;         /* tokens of this sequence in the KV cache */
    llama_token *cache; /* n_ctx_slot entries: the token at each position of the sequence */
    int n_cached;       /* idle slot: positions still valid in the KV cache */
    int n_keep;         /* prompt tokens of the task reused from the cache */
    bool needs_trim;    /* the cache past n_keep is still to be removed */
    uint64_t last_used_us;
    int n_prompt_done; /* prompt tokens already in a batch */
    llama_token last;  /* sampled token to feed at the next step */
    bool has_last;
    int batch_index; /* output row of this step's batch, or -1 */
    struct eng_text gen;
    struct eng_probs probs; /* scratch for this step's record */
    size_t sent;            /* bytes of gen already handed to the loop */
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

/* Loads the model and creates the context and the slots; 0, or -1 with e->load_cause set. */
static int infer_load(struct infer *inf)
{
    struct engine *e = inf->e;
    int rc = -1;

    inf->ctx = eng_load(e);
    if (inf->ctx == NULL)
        goto out;
    inf->n_slots = e->opts->n_parallel;
    inf->slots = calloc((size_t)inf->n_slots, sizeof(*inf->slots));
    inf->batch = llama_batch_init(e->opts->n_batch, 0, 1);
    inf->has_batch = true;
    if (inf->slots == NULL) {
        snprintf(e->load_cause, sizeof(e->load_cause), "out of memory");
        goto out;
    }
    for (int i = 0; i < inf->n_slots; i++) {
        inf->slots[i].cache = calloc((size_t)e->n_ctx_slot, sizeof(llama_token));
        if (inf->slots[i].cache == NULL) {
            snprintf(e->load_cause, sizeof(e->load_cause), "out of memory");
            goto out;
        }
    }
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

/*
 * Frees the slot's sampler and text; the task is no longer the slot's. Its KV cells stay for
 * the next task that shares a prefix with them, unless IS_CACHE_VALID is false (a failed
 * decode leaves them unknown).
 */
static void slot_release(struct infer *inf, struct slot *s, bool is_cache_valid)
{
    int id = (int)(s - inf->slots);
    llama_token *cache = s->cache;
    int n_cached = !is_cache_valid ? 0 : s->needs_trim ? s->n_cached : s->n_past;
    if (!is_cache_valid)
        llama_memory_seq_rm(llama_get_memory(inf->ctx), id, -1, -1);
    llama_sampler_free(s->sampler);
    eng_text_release(&s->gen);
    eng_probs_release(&s->probs);
    memset(s, 0, sizeof(*s));
    s->cache = cache;
    s->n_cached = n_cached;
    s->last_used_us = ig_now_us();
    s->batch_index = -1;
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
    task->n_cache = s->needs_trim || s->n_keep < 0 ? 0 : s->n_keep;
    task->prompt_ms = (double)(s->prompt_done_us - s->start_us) / 1000.0;
    task->predicted_ms = (double)(now - s->prompt_done_us) / 1000.0;
    e->metrics.n_prompt_tokens += s->n_prompt_done - task->n_cache;
    e->metrics.prompt_ms += task->prompt_ms;
    e->metrics.n_predicted_tokens += s->n_predicted;
    e->metrics.predicted_ms += task->predicted_ms;
    /* Idle before the reply goes out, so a client's next look at /slots or /metrics sees it. */
    e->slot_busy[task->slot_id] = false;
    task->is_finished = true;
    eng_publish_locked(e, task);
    pthread_mutex_unlock(&e->mu);
    slot_release(inf, s, why != ENG_FINISH_ERROR);
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

/*
 * Returns whether a step has anything to do: a slot whose task is not paused (or is cancelled),
 * or a queued task with a free slot to take it; caller holds e->mu. A paused slot keeps its
 * sampled token and KV cells and only waits, so a slow client costs no CPU.
 */
static bool has_work_locked(const struct infer *inf)
{
    bool has_free = false;
    for (int i = 0; i < inf->n_slots; i++) {
        const struct eng_task *task = inf->slots[i].task;
        if (task != NULL && (!task->is_paused || task->is_cancelled))
            return true;
        has_free = has_free || task == NULL;
    }
    return inf->e->queue_head != NULL && (has_free || inf->e->queue_head->api == ENG_API_EMBD);
}

/* Returns how many leading tokens A (NA) and B (NB) share. */
static int common_prefix(const llama_token *a, int na, const llama_token *b, int nb)
{
    int n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

/*
 * Returns the idle slot for TASK, or NULL when none is idle, and sets its n_keep. Like
 * llama-server: the slot whose cached tokens share the longest prefix with the prompt when
 * that prefix is over half the prompt, else the least recently used slot, so that unrelated
 * prompts do not evict each other's caches. The last prompt token is always evaluated again,
 * since its logits are needed.
 */
static struct slot *pick_slot(struct infer *inf, const struct eng_task *task)
{
    struct slot *best = NULL, *lru = NULL;
    int best_n = 0;
    for (int i = 0; i < inf->n_slots; i++) {
        struct slot *s = &inf->slots[i];
        if (s->task != NULL)
            continue;
        int n = common_prefix(s->cache, s->n_cached, task->prompt, task->n_prompt);
        if (best == NULL || n > best_n) {
            best = s;
            best_n = n;
        }
        if (lru == NULL || s->last_used_us < lru->last_used_us)
            lru = s;
    }
    if (best == NULL)
        return NULL;
    if (2 * best_n <= task->n_prompt) {
        best = lru;
        best_n = common_prefix(lru->cache, lru->n_cached, task->prompt, task->n_prompt);
    }
    best->n_keep = best_n < task->n_prompt ? best_n : task->n_prompt - 1;
    return best;
}

/*
 * Keeps the first n_keep cells of a new task's sequence and removes the rest; a memory that
 * cannot remove a tail (recurrent models) is cleared instead.
 */
static void slot_trim(struct infer *inf, struct slot *s)
{
    int id = (int)(s - inf->slots);
    llama_memory_t mem = llama_get_memory(inf->ctx);
    if (s->n_keep <= 0 || !llama_memory_seq_rm(mem, id, s->n_keep, -1)) {
        llama_memory_seq_rm(mem, id, -1, -1);
        s->n_keep = 0;
    }
    s->n_past = s->n_keep;
    s->n_prompt_done = s->n_keep;
    s->n_cached = 0;
    s->needs_trim = false;
}

/* Starts a new task on slot S: its sampler chain, then its KV cells; a grammar that does not
 * parse ends the task with a 400. */
static void slot_start(struct infer *inf, struct slot *s)
{
    bool is_bad_grammar = false;
    s->sampler = eng_sampler_new(&s->task->sampling, inf->e->vocab, &is_bad_grammar);
    if (s->sampler == NULL) {
        pthread_mutex_lock(&inf->e->mu);
        s->task->error_status = is_bad_grammar ? 400 : 500;
        pthread_mutex_unlock(&inf->e->mu);
        slot_finish(inf, s, ENG_FINISH_ERROR,
                    is_bad_grammar ? "failed to parse grammar" : "cannot create the sampler");
        return;
    }
    slot_trim(inf, s);
}

/*
 * Waits for work, then (under e->mu) moves queued tasks into free slots, pops embedding tasks
 * into *EMBD, and notes cancelled slots. Returns false when the thread must stop.
 */
static bool take_work(struct infer *inf, struct eng_task **embd, bool *cancelled, bool *paused)
{
    struct engine *e = inf->e;
    pthread_mutex_lock(&e->mu);
    while (!e->is_stopping && !has_work_locked(inf))
        pthread_cond_wait(&e->cond, &e->mu);
    if (e->is_stopping) {
        pthread_mutex_unlock(&e->mu);
        return false;
    }
    while (e->queue_head != NULL) {
        struct eng_task *task = e->queue_head;
        struct slot *s = task->api == ENG_API_EMBD ? NULL : pick_slot(inf, task);
        if (task->api != ENG_API_EMBD && s == NULL)
            break;
        e->queue_head = task->queue_next;
        e->metrics.n_deferred--;
        if (task->api == ENG_API_EMBD) {
            *embd = task;
            break;
        }
        int i = (int)(s - inf->slots);
        s->task = task;
        s->batch_index = -1;
        s->start_us = ig_now_us();
        s->needs_trim = true;
        task->slot_id = i;
        e->slot_busy[i] = true;
        e->slot_n_decoded[i] = 0;
    }
    if (e->queue_head == NULL)
        e->queue_tail = NULL;
    for (int i = 0; i < inf->n_slots; i++) {
        cancelled[i] = inf->slots[i].task != NULL && inf->slots[i].task->is_cancelled;
        paused[i] = inf->slots[i].task != NULL && inf->slots[i].task->is_paused;
    }
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
static void build_batch(struct infer *inf, const bool *paused)
{
    int budget = inf->e->n_batch;
    inf->batch.n_tokens = 0;
    for (int i = 0; i < inf->n_slots; i++) {
        struct slot *s = &inf->slots[i];
        s->batch_index = -1;
        if (s->task != NULL && s->has_last && !paused[i] && budget > 0) {
            s->batch_index = batch_add(&inf->batch, s->last, s->n_past, i, true);
            s->cache[s->n_past] = s->last;
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
            s->cache[at] = s->task->prompt[at];
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

    if (s->prompt_done_us == 0)
        s->prompt_done_us = ig_now_us();
    llama_token tok = llama_sampler_sample(s->sampler, inf->ctx, s->batch_index);
    s->n_predicted++;
    s->probs.len = 0;
    if (task->sampling.has_probs &&
        eng_probs_add(&s->probs, llama_get_logits_ith(inf->ctx, s->batch_index), e->n_vocab, tok,
                      task->sampling.n_probs) != 0) {
        slot_finish(inf, s, ENG_FINISH_ERROR, "out of memory");
        return;
    }
    if (s->probs.len > 0) {
        pthread_mutex_lock(&e->mu);
        if (eng_probs_move(&task->pending_probs, &s->probs) != 0) {
            task->finish = ENG_FINISH_ERROR;
            snprintf(task->error, sizeof(task->error), "out of memory");
        }
        pthread_mutex_unlock(&e->mu);
    }
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
    e->slot_n_decoded[task->slot_id] = s->n_predicted;
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

/* Counts a decode call, its busy slots and the KV cells in use for /metrics. */
static void count_decode(struct infer *inf)
{
    long long n_busy = 0, n_kv = 0;
    for (int i = 0; i < inf->n_slots; i++) {
        n_busy += inf->slots[i].task != NULL ? 1 : 0;
        n_kv += inf->slots[i].task != NULL ? inf->slots[i].n_past : inf->slots[i].n_cached;
    }
    pthread_mutex_lock(&inf->e->mu);
    inf->e->metrics.n_decode++;
    inf->e->metrics.n_busy_slots += n_busy;
    inf->e->metrics.n_kv_tokens = n_kv;
    pthread_mutex_unlock(&inf->e->mu);
}

/* Runs one step: cancel, batch, decode, sample. */
static void step(struct infer *inf, const bool *cancelled, const bool *paused)
{
    for (int i = 0; i < inf->n_slots; i++) {
        struct slot *s = &inf->slots[i];
        if (s->task != NULL && cancelled[i])
            slot_finish(inf, s, ENG_FINISH_CANCEL, NULL);
        else if (s->task != NULL && s->task->sampling.n_predict == 0)
            slot_finish(inf, s, ENG_FINISH_LENGTH, NULL);
        else if (s->task != NULL && s->needs_trim)
            slot_start(inf, s);
    }
    build_batch(inf, paused);
    if (inf->batch.n_tokens == 0)
        return;
    count_decode(inf);
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
    bool *paused = NULL;

    int rc = infer_load(&inf);
    cancelled = rc == 0 ? calloc((size_t)inf.n_slots, sizeof(bool)) : NULL;
    paused = rc == 0 ? calloc((size_t)inf.n_slots, sizeof(bool)) : NULL;
    pthread_mutex_lock(&e->mu);
    if (rc == 0 && cancelled != NULL && paused != NULL)
        e->is_ready = true;
    else
        e->is_load_failed = true;
    event_active(e->notify, EV_READ, 0);
    pthread_mutex_unlock(&e->mu);
    while (e->is_ready) {
        struct eng_task *embd = NULL;
        if (!take_work(&inf, &embd, cancelled, paused))
            break;
        if (embd != NULL && embed_task(&inf, embd) != 0) {
            pthread_mutex_lock(&e->mu);
            task_finish_locked(e, embd, ENG_FINISH_ERROR, "embedding failed");
            pthread_mutex_unlock(&e->mu);
        }
        step(&inf, cancelled, paused);
    }
    for (int i = 0; i < inf.n_slots; i++) {
        if (inf.slots[i].task != NULL)
            slot_finish(&inf, &inf.slots[i], ENG_FINISH_CANCEL, NULL);
    }
    pthread_mutex_lock(&e->mu);
    while (e->queue_head != NULL) {
        struct eng_task *task = e->queue_head;
        e->queue_head = task->queue_next;
        e->metrics.n_deferred--;
        task_finish_locked(e, task, ENG_FINISH_CANCEL, NULL);
    }
    e->queue_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    free(cancelled);
    free(paused);
    for (int i = 0; inf.slots != NULL && i < inf.n_slots; i++)
        free(inf.slots[i].cache);
    free(inf.slots);
    if (inf.has_batch)
        llama_batch_free(inf.batch);
    eng_unload(e, inf.ctx);
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
    e->metrics.n_deferred++;
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

void eng_pause(struct engine *e, struct eng_task *task)
{
    pthread_mutex_lock(&e->mu);
    task->is_paused = true;
    pthread_mutex_unlock(&e->mu);
}

void eng_resume(struct engine *e, struct eng_task *task)
{
    pthread_mutex_lock(&e->mu);
    task->is_paused = false;
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
