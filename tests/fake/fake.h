/* fake-llama-server internals shared by its files (a test double, not a public module). */
#ifndef FAKE_H
#define FAKE_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FAKE_MAX_BODY_BYTES (16L * 1024 * 1024)
#define FAKE_MAX_JSON_DEPTH 64
#define FAKE_DEFAULT_TOKENS 16
#define FAKE_MAX_TOKENS 262144
#define FAKE_MAX_STOPS 16
#define FAKE_MAX_STOP_BYTES 256
#define FAKE_MAX_EMBED_DIM 65536
#define FAKE_MAX_EMBED_INPUTS 2048
#define FAKE_FINGERPRINT "b0-fake"
#define FAKE_ID_LEN 42 /* "chatcmpl-" + 32 characters + NUL, rounded up */

/* Command-line knobs; read-only after start-up. */
struct fake_opts {
    const char *host;
    long port;
    const char *model;
    long startup_ms;
    long token_us;
    long crash_after_tokens; /* -1: never */
    long hang_after_tokens;  /* -1: never */
    bool fail_health;
    double bad_json_rate;
    long embedding_dim;
    const char *events_path;
};

struct fake_job;

/* The whole server: loop, listener, counters and in-flight delayed responses. */
struct fake_server {
    struct event_base *base;
    struct evhttp *http;
    const struct fake_opts *opts;
    FILE *events;          /* --events-file, or NULL */
    char *model_json;      /* the model name as a quoted JSON string; owned */
    uint64_t start_ms;     /* monotonic start, for --startup-ms */
    uint64_t request_seq;  /* requests seen, for event ids */
    uint64_t json_seq;     /* responses eligible for --bad-json-rate */
    uint64_t id_state;     /* splitmix64 state for completion ids */
    struct fake_job *jobs; /* delayed or streaming responses in flight */
};

/* Which response family a completion request wants. */
enum fake_api { FAKE_API_CHAT, FAKE_API_OAI_CMPL, FAKE_API_NATIVE };

/* Text generated for one request: words picked from (prompt hash, seed, index). */
struct fake_text {
    char *text;        /* NUL-terminated; inline_text or heap */
    size_t len;        /* bytes after any stop-string cut */
    uint32_t *tok_end; /* tok_end[i]: offset where token i ends, clamped to len */
    int n_tokens;      /* tokens generated, including the one completing a stop string */
    bool is_stopped;   /* ended on a stop string, not on the token limit */
    int stop_index;    /* which stop string matched, or -1 */
    char inline_text[1024];
    uint32_t inline_end[64];
};

/* Inputs of a generation; the stop strings are borrowed. */
struct fake_gen_req {
    uint64_t prompt_hash;
    int64_t seed;
    int n_predict;
    const char *stops[FAKE_MAX_STOPS];
    size_t stop_lens[FAKE_MAX_STOPS];
    size_t n_stops;
};

/* A parsed completion request; its strings are borrowed from the request body. */
struct fake_cmpl_params {
    enum fake_api api;
    bool is_stream;
    bool include_usage;
    bool timings_per_token;
    int prompt_tokens; /* whitespace-separated words in the prompt, at least 1 */
    struct fake_gen_req gen;
};

/* fake_req.c */

/* Fills P (zeroed by the caller) from ROOT for API; returns a client error message (static)
 * or NULL. P borrows strings from ROOT. */
const char *fake_cmpl_parse(json_t *root, enum fake_api api, struct fake_cmpl_params *p);

/* fake_gen.c */
#define FAKE_HASH_INIT 0xcbf29ce484222325ULL

/* Continues an FNV-1a hash H over N bytes at P. */
uint64_t fake_hash_bytes(uint64_t h, const void *p, size_t n);

/* Returns a well-mixed 64-bit value from X (splitmix64 finaliser). */
uint64_t fake_mix64(uint64_t x);

/* Returns the number of whitespace-separated words in N bytes at S. */
int fake_count_words(const char *s, size_t n);

/* Fills T for G; returns 0 or IG_ENOMEM. Release with fake_text_release(). */
int fake_text_generate(struct fake_text *t, const struct fake_gen_req *g)
    __attribute__((warn_unused_result));

/* Releases what fake_text_generate() allocated; safe on a zeroed or released text. */
void fake_text_release(struct fake_text *t);

/* Returns word I of the fixed vocabulary (any I; it wraps). */
const char *fake_word(uint64_t i);

/* Writes DIM floats to OUT: a unit-length vector determined by KEY. */
void fake_embed(float *out, int dim, uint64_t key);

/* Appends N bytes at S to B as a quoted, escaped JSON string. */
void fake_json_str(struct evbuffer *b, const char *s, size_t n);


/* fake_http.c */

/* Binds the listener on the loop and prints "listening on HOST:PORT"; 0 or -1 with *CAUSE set
 * (caller frees). */
int fake_http_start(struct fake_server *srv, char **cause) __attribute__((warn_unused_result));

/* Cancels every in-flight response and frees the listener and its connections. */
void fake_http_stop(struct fake_server *srv);

/* Sends an llama-server error body {"error":{"code","message","type"}} with STATUS. */
void fake_reply_error(struct evhttp_request *req, int status, const char *type,
                      const char *message);

/* Sends the request's output buffer as a JSON response with STATUS. */
void fake_reply_json(struct evhttp_request *req, int status);

/* Returns whether the next JSON response must be corrupted (--bad-json-rate, by counter). */
bool fake_take_bad_json(struct fake_server *srv);

/* Writes a fresh "chatcmpl-..." id into OUT (FAKE_ID_LEN bytes). */
void fake_make_id(struct fake_server *srv, char *out);

/* fake_cmpl.c */

/* Answers a parsed completion request (ROOT borrowed; the handler takes its own reference). */
void fake_cmpl_handle(struct fake_server *srv, struct evhttp_request *req, enum fake_api api,
                      const char *path, json_t *root);

/* Frees every in-flight job without replying (shutdown). */
void fake_cmpl_free_all(struct fake_server *srv);

/* fake_main.c */

/* Appends one JSON line {"event":NAME, ...FIELDS} to --events-file and flushes; takes FIELDS. */
void fake_event(struct fake_server *srv, const char *name, json_t *fields);

#endif
