/*
 * Internal types of infergate-engine shared by its files (not a public API).
 *
 * Threads: the main thread runs the libevent loop (HTTP in, JSON/SSE out); one inference
 * thread owns the llama_context. A task is created by the loop thread, handed to the
 * inference thread through eng_submit(), and handed back through the ready list (under
 * engine.mu) each time it has new text or finished. Only the loop thread frees a task, and
 * only after the inference thread marked it finished (it never touches it again after that).
 */
#ifndef IG_ENGINE_INTERNAL_H
#define IG_ENGINE_INTERNAL_H

#include <jansson.h>
#include <llama.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct http_request;
struct http_server;

#define ENG_MAX_STOPS 16
#define ENG_MAX_STOP_BYTES 256
#define ENG_MAX_INPUTS 256
#define ENG_MAX_PROMPT_BYTES (4u << 20)
#define ENG_MAX_N_PROBS 20

enum eng_api { ENG_API_CHAT, ENG_API_OAI_CMPL, ENG_API_NATIVE, ENG_API_EMBD };

enum eng_finish {
    ENG_FINISH_NONE,
    ENG_FINISH_LENGTH,
    ENG_FINISH_STOP,
    ENG_FINISH_EOS,
    ENG_FINISH_CANCEL,
    ENG_FINISH_ERROR
};

/* Command-line options; strings are borrowed from argv. */
struct eng_options {
    const char *model_path;
    const char *host;
    const char *alias;
    const char *chat_template;
    int port;
    int n_ctx;
    int n_parallel;
    int n_threads;
    int n_gpu_layers;
    int n_batch;
    int poll; /* ggml worker polling level between graphs, 0..100 */
    bool has_embeddings;
    bool has_metrics;
    bool is_verbose;
    bool is_no_mmap;     /* read the model instead of mapping it */
    bool is_kv_per_slot; /* --no-kv-unified: one KV buffer per slot */
};

/* A growable byte buffer; zero-initialised is empty. */
struct eng_text {
    char *data;
    size_t len;
    size_t cap;
};

/* One token and its log-probability. */
struct eng_prob {
    llama_token id;
    float logprob;
};

/* Records of 1 + n_probs entries each: the sampled token, then the most likely tokens. */
struct eng_probs {
    struct eng_prob *items;
    size_t len;
    size_t cap;
};

/* Sampling parameters of one request; stops are owned (freed with the task). */
struct eng_sampling {
    float temperature;
    float top_p;
    float min_p;
    int top_k;
    uint32_t seed;
    int n_predict; /* -1: until the context is full */
    float typical_p;
    float repeat_penalty;
    int repeat_last_n; /* 0: no penalties */
    float presence_penalty;
    float frequency_penalty;
    bool ignore_eos;
    bool has_probs; /* report the sampled tokens' log-probabilities */
    int n_probs;    /* and this many most likely alternatives each */
    char *stops[ENG_MAX_STOPS];
    size_t n_stops;
    llama_logit_bias *logit_bias;
    int n_logit_bias;
    char *grammar; /* GBNF text, or NULL */
};

/* Counters for /metrics, under engine.mu. */
struct eng_metrics {
    long long n_prompt_tokens; /* evaluated, cached prefixes excluded */
    double prompt_ms;
    long long n_predicted_tokens;
    double predicted_ms;
    long long n_decode;
    long long n_busy_slots; /* summed over decode calls */
    long long n_kv_tokens;  /* now */
    long long n_deferred;   /* queued, now */
};

/* One request from the HTTP handler to its last byte of output. */
struct eng_task {
    /* Set by the loop thread before eng_submit(), read-only afterwards. */
    enum eng_api api;
    bool is_stream;
    bool include_usage;
    llama_token *prompt; /* completions: n_prompt tokens */
    int n_prompt;
    llama_token **inputs; /* embeddings: n_inputs token arrays */
    int *input_lens;
    int n_inputs;
    struct eng_sampling sampling;

    /* Loop thread only. */
    struct engine *engine;
    struct http_request *req; /* NULL once the client went away or the answer completed */
    char id[48];
    long long created;
    char *prompt_text;       /* native /completion echoes it; may be NULL */
    struct eng_text content; /* all text sent so far (the non-streamed reply) */
    int n_seen;              /* tokens predicted as of the last notification */
    struct eng_probs probs;  /* every record so far */
    size_t n_probs_sent;     /* records already streamed */
    bool has_started_stream;
    bool has_asked_pause; /* eng_pause() was called and no eng_resume() since */

    /* Under engine.mu. */
    bool is_cancelled;
    bool is_paused;   /* the client is slow: the slot decodes nothing until the drain */
    bool is_finished; /* the inference thread is done with it */
    bool is_listed;   /* on the ready list */
    struct eng_task *ready_next;
    struct eng_text pending; /* new valid UTF-8 text not yet taken by the loop */
    struct eng_probs pending_probs;
    int n_predicted;
    int n_cache; /* prompt tokens reused from the slot's KV cache */
    int slot_id;
    enum eng_finish finish;
    const char *stopping_word; /* one of sampling.stops, or NULL */
    double prompt_ms;
    double predicted_ms;
    float *embd; /* embeddings: n_inputs × n_embd, L2-normalised */
    int n_embd_tokens;
    bool is_base64; /* embeddings: encoding_format "base64" (little-endian float32) */
    char error[160];
    int error_status; /* HTTP status of an error found before any output; 0: 500 */

    /* Inference thread only. */
    struct eng_task *queue_next;
};

/* The process: options, loop objects, the model, and the hand-off state. */
struct engine {
    const struct eng_options *opts;
    struct event_base *base;
    struct http_server *srv;
    struct event *notify;
    pthread_t thread;
    bool has_thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;

    /* Under mu. */
    bool is_ready;
    bool is_load_failed;
    bool is_stopping;
    float load_progress; /* 0..1, from libllama's progress callback */
    char load_cause[512];
    struct eng_task *queue_head;
    struct eng_task *queue_tail;
    struct eng_task *ready_head;
    bool *slot_busy;     /* n_parallel flags, for /slots */
    int *slot_n_decoded; /* tokens predicted by each slot's current or last task */
    struct eng_metrics metrics;

    /* Written by the inference thread before is_ready, read-only afterwards. */
    struct llama_model *model;
    const struct llama_vocab *vocab;
    int n_ctx;
    int n_ctx_slot;
    int n_embd;
    int n_vocab;
    int n_batch;
    const char *model_template; /* the GGUF's chat template, or NULL */

    /* Inference thread only: the CPU backend's worker pool attached to the context. */
    struct ggml_threadpool *threadpool;
    void (*threadpool_free)(struct ggml_threadpool *tp);

    /* Loop thread only. */
    bool is_ready_seen;
    int exit_code;
    uint64_t id_state;
};

/* Appends N bytes of S to T; 0 or -1 when out of memory. */
int eng_text_append(struct eng_text *t, const char *s, size_t n)
    __attribute__((warn_unused_result));

/* Frees T's bytes and empties it. */
void eng_text_release(struct eng_text *t);

/* Appends N bytes of S to OUT with every invalid UTF-8 sequence replaced by U+FFFD. */
int eng_utf8_append_valid(struct eng_text *out, const char *s, size_t n)
    __attribute__((warn_unused_result));

/* Returns the length of the longest prefix of S (N bytes) not ending in an incomplete but
 * possibly valid UTF-8 sequence. */
size_t eng_utf8_complete_len(const char *s, size_t n);

/*
 * Finds where GEN (LEN bytes, of which SENT already emitted) may be emitted up to: returns the
 * end offset, which is the start of a stop string (*STOP_INDEX set, else -1) or the point
 * before any suffix that may still grow into a stop string or a UTF-8 sequence.
 */
size_t eng_stop_scan(const struct eng_sampling *s, const char *gen, size_t len, size_t sent,
                     int *stop_index);

/*
 * Parses the sampling fields of ROOT into S (IS_CHAT: OpenAI's logprobs spelling); NULL, or a
 * static reason for a 400. What S holds is freed with eng_sampling_release() either way.
 */
const char *eng_sampling_parse(json_t *root, struct eng_sampling *s, const struct engine *e,
                               bool is_chat);

/* Creates the request's sampler chain (caller frees with llama_sampler_free()); NULL when out
 * of memory or, with *IS_BAD_GRAMMAR set, when the grammar does not parse. */
struct llama_sampler *eng_sampler_new(const struct eng_sampling *s, const struct llama_vocab *vocab,
                                      bool *is_bad_grammar);

/* Frees the stop strings, logit biases and grammar of S. */
void eng_sampling_release(struct eng_sampling *s);

/* Appends the record of TOKEN sampled from LOGITS (N_VOCAB raw logits) with its N_TOP most
 * likely alternatives to OUT; 0 or -1 when out of memory. */
int eng_probs_add(struct eng_probs *out, const float *logits, int n_vocab, llama_token token,
                  int n_top) __attribute__((warn_unused_result));

/* Moves every entry of SRC to the end of DST; 0 or -1 (then SRC is kept). */
int eng_probs_move(struct eng_probs *dst, struct eng_probs *src)
    __attribute__((warn_unused_result));

/* Frees P's entries and empties it. */
void eng_probs_release(struct eng_probs *p);

/* Returns records [FROM, TO) of P as OpenAI logprobs content entries (new reference). */
json_t *eng_probs_json(const struct engine *e, const struct eng_probs *p, int n_top, size_t from,
                       size_t to);

/*
 * Formats MESSAGES (a JSON array of {role, content}) with the engine's template into a
 * malloc'd prompt (caller frees). NULL with *CAUSE (static string) on a bad request or a
 * template the library cannot apply.
 */
char *eng_chat_format(const struct engine *e, json_t *messages, const char **cause);

/*
 * Loads the model into E (model, vocab, sizes) and creates its context (caller frees with
 * llama_free()); NULL with e->load_cause set. Inference thread only.
 */
struct llama_context *eng_load(struct engine *e);

/* Frees CTX (may be NULL), then the worker pool eng_load() gave it; inference thread only. */
void eng_unload(struct engine *e, struct llama_context *ctx);

/* Starts the inference thread (it loads the model); 0 or -1. */
int eng_infer_start(struct engine *e) __attribute__((warn_unused_result));

/* Stops and joins the inference thread; every task it held is finished and listed ready. */
void eng_infer_stop(struct engine *e);

/* Queues TASK for the inference thread (taken: the loop frees it once it is finished). */
void eng_submit(struct engine *e, struct eng_task *task);

/* Marks TASK cancelled; the inference thread frees its slot at its next step. */
void eng_cancel(struct engine *e, struct eng_task *task);

/* Pauses TASK's slot until eng_resume(): its client reads slower than it decodes. */
void eng_pause(struct engine *e, struct eng_task *task);

/* Lets TASK's slot decode again. */
void eng_resume(struct engine *e, struct eng_task *task);

/* Lists TASK as ready and wakes the loop; the caller holds e->mu. */
void eng_publish_locked(struct engine *e, struct eng_task *task);

/* Loop callback: takes the ready list and writes every task's new output. */
void eng_on_notify(int fd, short what, void *arg);

/* Frees TASK and everything it owns; NULL is a no-op. */
void eng_task_free(struct eng_task *task);

/* Starts TASK's SSE reply (headers, and the chat role chunk). */
void eng_stream_open(struct eng_task *task);

/* HTTP handler for every request. */
void eng_http_handle(struct http_request *req, void *arg);

/* Replies a llama-server-shaped error {"error":{"code","message","type"}}. */
void eng_reply_error(struct http_request *req, int status, const char *type, const char *message);

/* Replies 200 with the JSON value V (stolen). */
void eng_reply_json(struct http_request *req, json_t *v);

/* GET /metrics: replies the counters in Prometheus text format. */
void eng_metrics_reply(struct engine *e, struct http_request *req);

/* Returns the model name reported in responses (alias, else the file's base name). */
const char *eng_model_name(const struct engine *e);

#endif
