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
    bool has_embeddings;
    bool is_verbose;
};

/* A growable byte buffer; zero-initialised is empty. */
struct eng_text {
    char *data;
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
    bool ignore_eos;
    char *stops[ENG_MAX_STOPS];
    size_t n_stops;
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
    bool has_started_stream;

    /* Under engine.mu. */
    bool is_cancelled;
    bool is_finished; /* the inference thread is done with it */
    bool is_listed;   /* on the ready list */
    struct eng_task *ready_next;
    struct eng_text pending; /* new valid UTF-8 text not yet taken by the loop */
    int n_predicted;
    int slot_id;
    enum eng_finish finish;
    const char *stopping_word; /* one of sampling.stops, or NULL */
    double prompt_ms;
    double predicted_ms;
    float *embd; /* embeddings: n_inputs × n_embd, L2-normalised */
    int n_embd_tokens;
    char error[160];

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
    char load_cause[512];
    struct eng_task *queue_head;
    struct eng_task *queue_tail;
    struct eng_task *ready_head;
    bool *slot_busy; /* n_parallel flags, for /slots */

    /* Written by the inference thread before is_ready, read-only afterwards. */
    struct llama_model *model;
    const struct llama_vocab *vocab;
    int n_ctx;
    int n_ctx_slot;
    int n_embd;
    int n_vocab;
    int n_batch;
    const char *model_template; /* the GGUF's chat template, or NULL */

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

/* Creates the request's sampler chain; caller frees with llama_sampler_free(). */
struct llama_sampler *eng_sampler_new(const struct eng_sampling *s);

/* Frees the stop strings of S. */
void eng_sampling_release(struct eng_sampling *s);

/*
 * Formats MESSAGES (a JSON array of {role, content}) with the engine's template into a
 * malloc'd prompt (caller frees). NULL with *CAUSE (static string) on a bad request or a
 * template the library cannot apply.
 */
char *eng_chat_format(const struct engine *e, json_t *messages, const char **cause);

/* Starts the inference thread (it loads the model); 0 or -1. */
int eng_infer_start(struct engine *e) __attribute__((warn_unused_result));

/* Stops and joins the inference thread; every task it held is finished and listed ready. */
void eng_infer_stop(struct engine *e);

/* Queues TASK for the inference thread (taken: the loop frees it once it is finished). */
void eng_submit(struct engine *e, struct eng_task *task);

/* Marks TASK cancelled; the inference thread frees its slot at its next step. */
void eng_cancel(struct engine *e, struct eng_task *task);

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

/* Returns the model name reported in responses (alias, else the file's base name). */
const char *eng_model_name(const struct engine *e);

#endif
