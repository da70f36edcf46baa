/*
 * One proxied call (gateway-private): its state from the routed request to the end of the
 * upstream answer, and the bookkeeping every call gets when it ends (usage to its key,
 * metrics, request log). The flow lives in gw_proxy.c.
 */
#ifndef IG_GW_CALL_H
#define IG_GW_CALL_H

#include "auth.h"
#include "gw_internal.h"
#include "gw_meter.h"
#include "sup_manager.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct gw_ollama_up;
struct gw_wait;
struct event;
struct http_request;
struct sup_model;
struct sup_waiter;
struct upstream_req;

#define GW_CALL_MAX_URL 2048
#define GW_CALL_MAX_TRIES 3

struct gw_call {
    struct gw_app *app;
    struct http_request *req;
    struct sup_model *model;        /* the local model, or NULL when only workers serve it */
    const struct cfg_model *remote_mc; /* without a local model: its config from the registry
                                        * of workers (read it with gw_call_cfg()) */
    struct sup_waiter *waiter;
    struct gw_wait *wait; /* waiting for room on the workers (every one at capacity) */
    struct upstream_req *ureq;
    char *rewritten_body; /* owned when the filters changed the body */
    const char *body;
    size_t body_len;
    /* What a worker gets instead (NULL: BODY): the body before this gateway's filters, with
     * "model" the model's id, since a worker knows neither our aliases nor our filters. */
    const char *worker_body;
    size_t worker_body_len;
    char *worker_body_owned; /* WORKER_BODY when it was written anew */
    const char *upstream_path; /* /upstream/MODEL/PATH: PATH (in the request's path) */
    const char *api_path;      /* a translated call: the OpenAI path it goes to, else NULL */
    const struct gw_xlate_ops *xlate; /* a translated call: its answer's translation */
    void *xlate_state;
    struct gw_ollama_up *ollama_up; /* api: ollama: the translation to the upstream (owned) */
    bool has_model;      /* acquired: sup_release() owed */
    bool is_on_worker;   /* sent to WORKER: gw_workers_end() owed */
    bool is_on_backend;  /* sent to BACKEND_URL: gw_backends_end() owed */
    bool is_passthrough_stream; /* any answer is streamed as it comes, with no watchdog */
    unsigned n_tries;    /* backends tried (a worker's failure before any byte moves on) */
    const char *route_reason;   /* why this backend, static; NULL: the only one */
    uint64_t prefix_hash;       /* of the prompt's start (prefix-affinity) */
    bool has_retried;    /* sent again once after its model died under it */
    bool is_streaming;   /* response headers sent as a stream */
    int status;
    struct evbuffer *response;
    struct event *watchdog; /* streams: fires when the upstream stalls (limits.watchdog_s) */
    struct event *recheck;  /* a failed request: is its model dead after all? */
    /* Tenancy: the caller's key (admitted against its limits) and the response's tokens. */
    struct auth_caller caller;
    struct gw_meter meter;
    bool is_metered;
    bool is_success; /* the upstream answered < 400 and the client got it all */
    uint64_t started_ms;
    /* Observability: what the request log and metrics get when the call ends. */
    uint64_t bytes_in;
    bool is_debug;        /* X-Log-Level: debug: its steps are logged at info */
    bool is_stream_asked; /* "stream": true */
    int64_t arrived_unix_ms;
    uint64_t arrived_ms, dispatched_ms;
    int64_t ttft_ms, queue_ms;
    uint64_t bytes_out, streamed_tokens;
    int answered_status;        /* 0 until answered; 499 when the client went away */
    char *error;                /* the error message answered (owned) */
    const char *upstream_error; /* kind of upstream failure, static */
    uint64_t prompt_tokens, completion_tokens;
    /* Text buffers last: call_new() zeroes only what comes before them (zeroing ~3 KiB cost
     * as much as the request log row), and each is written before it is read. */
    char request_id[GW_REQUEST_ID_MAX + 1];
    char key_name[sizeof(((struct auth_caller *)0)->name)]; /* who called, "-" without auth */
    char endpoint[256]; /* the request's path and client, copied: the request may be gone */
    char client[64];
    char content_type[128];
    char failure[256]; /* the upstream failure, kept for the recheck */
    char url[GW_CALL_MAX_URL];
    char worker[65];           /* the worker serving it, "" when local */
    char backend_url[GW_CALL_MAX_URL]; /* the URL backend serving it (backends:), or "" */
    char tried[GW_CALL_MAX_TRIES][65]; /* backends that failed it or refused it busy: worker
                                        * ids, "url:<hash>" for URL backends */
    bool tried_busy[GW_CALL_MAX_TRIES]; /* that one refused it busy (it may take it later) */
};

/* Logs a step of CALL: at info with its request id for X-Log-Level: debug, else at debug. */
#define call_log(call, fmt, ...)                                                                \
    ig_log_request((call)->is_debug ? IG_LOG_INFO : IG_LOG_DEBUG, (call)->request_id, fmt,        \
                   __VA_ARGS__)

/* Returns CALL's model config: the local model's current one (a reload may replace it while
 * the call runs, so it is never kept), or the workers' one. */
static inline const struct cfg_model *gw_call_cfg(const struct gw_call *call)
{
    return call->model != NULL ? sup_model_cfg(call->model) : call->remote_mc;
}

/* Makes a call for REQ to MODEL (NULL: served only by workers) of config MC (NULL when out of
 * memory), stamped for the request log. */
struct gw_call *gw_call_new(struct gw_app *app, struct http_request *req, struct sup_model *model,
                            const struct cfg_model *mc);

/* Parses REQ's body (or takes GIVEN, a translated body for API_PATH, borrowed), finds its
 * model and admits its caller; returns the call, or NULL once the client was answered. */
struct gw_call *gw_call_prepare(struct gw_app *app, struct http_request *req, json_t *given,
                                const char *api_path);

/* Routes CALL to a backend (waiting for one with room when needed) and sends it there; the
 * call answers its client and frees itself. */
void gw_call_dispatch(struct gw_call *call);

/* Ends a call: usage to its key, metrics and request log; releases the model if it was
 * acquired, and frees it. */
void gw_call_free(struct gw_call *call);

/* Notes MESSAGE as the call's error for the request log (a valid UTF-8 copy). */
void gw_call_note_error(struct gw_call *call, const char *message);

/* Answers CALL with an OpenAI error and notes it for the request log. */
void gw_call_reply_error(struct gw_call *call, int status, const char *message,
                         const char *code, int retry_after_s);

/* Answers a request refused before it became a call (no model found, bad body), and records
 * it: MODEL is the configured model when known, else ASKED what the client named. */
void gw_refuse_request(struct gw_app *app, struct http_request *req,
                       const struct cfg_model *model, const char *asked, int status,
                       const char *message, const char *code);

#endif
