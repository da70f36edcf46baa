/* One proxied call's life-cycle bookkeeping (gw_call.h). */
#include "gw_call.h"
#include "gw_backends.h"

#include "cfg.h"
#include "gw_ollama_up.h"
#include "gw_workers.h"
#include "http_server.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports the call's usage to its key (tokens metered from the response). */
static void call_account(struct gw_call *call)
{
    struct auth_usage u = {0, 0, 0, !call->is_success};

    if (!call->is_metered)
        return;
    call->is_metered = false;
    gw_meter_finish(&call->meter, &u.prompt_tokens, &u.completion_tokens);
    call->prompt_tokens = u.prompt_tokens;
    call->completion_tokens = u.completion_tokens;
    u.latency_ms = ig_now_ms() - call->started_ms;
    auth_finish(call->app->auth, &call->caller, gw_call_cfg(call)->id, &u);
}

/* Records the ended CALL: metrics, request log, /events. */
static void call_record(struct gw_call *call)
{
    const struct cfg_model *mc = gw_call_cfg(call);
    struct gw_request_record r = {
        .ts_ms = call->arrived_unix_ms,
        .request_id = call->request_id,
        .key = call->key_name[0] != '\0' ? call->key_name : "-",
        .model = mc->id,
        .endpoint = call->endpoint,
        .client = call->client,
        .error = call->error,
        .upstream_error = call->upstream_error,
        .status = call->answered_status,
        .is_stream = call->is_stream_asked || call->is_streaming,
        .prompt_tokens = call->prompt_tokens,
        .completion_tokens = call->completion_tokens,
        .streamed_tokens = call->streamed_tokens,
        .ttft_ms = call->ttft_ms,
        .queue_ms = call->queue_ms,
        .duration_ms = (int64_t)(ig_now_ms() - call->arrived_ms),
        .bytes_in = call->bytes_in,
        .bytes_out = call->bytes_out,
        .backend = call->worker[0] != '\0'        ? call->worker
                   : call->backend_url[0] != '\0' ? call->backend_url
                                                  : "local",
        .route = call->route_reason,
    };

    call_log(call, "%s %s: %d in %lld ms, %llu+%llu tokens", mc->id, r.endpoint, r.status,
             (long long)r.duration_ms, (unsigned long long)r.prompt_tokens,
             (unsigned long long)r.completion_tokens);
    gw_stats_request(call->app, &r);
}

/* Returns a malloc'd valid-UTF-8 copy of TEXT (for the request log; caller frees), or NULL. */
static char *utf8_dup(const char *text)
{
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);

    if (copy != NULL)
        ig_utf8_copy(copy, size, text);
    return copy;
}

void gw_call_note_error(struct gw_call *call, const char *message)
{
    free(call->error);
    call->error = utf8_dup(message);
}

void gw_call_reply_error(struct gw_call *call, int status, const char *message,
                         const char *code, int retry_after_s)
{
    call->answered_status = status;
    gw_call_note_error(call, message);
    gw_reply_error(call->req, status, message, code, retry_after_s);
}

void gw_refuse_request(struct gw_app *app, struct http_request *req,
                       const struct cfg_model *model, const char *asked, int status,
                       const char *message, const char *code)
{
    size_t body_len = 0;
    char asked_text[256], endpoint[256], error[512]; /* bounded, valid UTF-8 for the log */
    struct gw_request_record r = {
        .ts_ms = ig_unix_ms(),
        .request_id = app->request_id,
        .key = app->caller.name[0] != '\0' ? app->caller.name : "-",
        .model = model != NULL ? model->id : NULL,
        .asked_model = asked != NULL ? asked_text : NULL,
        .endpoint = endpoint,
        .client = http_request_peer(req),
        .error = error,
        .status = status,
        .ttft_ms = -1,
        .queue_ms = -1,
        .duration_ms = (int64_t)((ig_now_us() - http_request_start_us(req)) / 1000),
    };

    if (asked != NULL)
        ig_utf8_copy(asked_text, sizeof(asked_text), asked);
    ig_utf8_copy(endpoint, sizeof(endpoint), http_request_path(req));
    ig_utf8_copy(error, sizeof(error), message);
    (void)http_request_body(req, &body_len);
    r.bytes_in = body_len;
    gw_stats_request(app, &r); /* first: the reply ends REQ, whose strings R borrows */
    gw_reply_error(req, status, message, code, 0);
}

struct gw_call *gw_call_new(struct gw_app *app, struct http_request *req,
                            struct sup_model *model, const struct cfg_model *mc)
{
    struct gw_call *call = malloc(sizeof(*call));
    size_t len = 0;

    if (call == NULL)
        return NULL;
    memset(call, 0, offsetof(struct gw_call, request_id));
    call->app = app;
    call->req = req;
    call->model = model;
    call->remote_mc = model == NULL ? mc : NULL;
    ig_utf8_copy(call->request_id, sizeof(call->request_id), app->request_id);
    ig_utf8_copy(call->key_name, sizeof(call->key_name), app->caller.name);
    ig_utf8_copy(call->endpoint, sizeof(call->endpoint), http_request_path(req));
    ig_utf8_copy(call->client, sizeof(call->client), http_request_peer(req));
    call->content_type[0] = call->failure[0] = call->url[0] = call->worker[0] = '\0';
    call->backend_url[0] = '\0';
    (void)http_request_body(req, &len);
    call->bytes_in = len;
    call->is_debug = app->is_debug_request;
    call->arrived_unix_ms = ig_unix_ms() - (int64_t)((ig_now_us() - http_request_start_us(req)) / 1000);
    call->arrived_ms = ig_now_ms() - (ig_now_us() - http_request_start_us(req)) / 1000;
    call->ttft_ms = -1;
    call->queue_ms = -1;
    return call;
}

void gw_call_free(struct gw_call *call)
{
    call_account(call);
    call_record(call);
    free(call->error);
    auth_caller_release(call->app->auth, &call->caller);
    gw_meter_clear(&call->meter);
    if (call->has_model)
        sup_release(call->model);
    gw_workers_wait_cancel(call->wait);
    if (call->is_on_worker) /* ended without a verdict on the worker (client gone) */
        gw_workers_end(call->app->workers, call->worker, gw_call_cfg(call)->id, GW_WORKER_LEFT,
                       -1);
    if (call->is_on_backend)
        gw_backends_end(call->app->backends, gw_call_cfg(call)->id, call->backend_url,
                        GW_WORKER_LEFT, -1);
    if (call->response != NULL)
        evbuffer_free(call->response);
    if (call->watchdog != NULL)
        event_free(call->watchdog);
    if (call->recheck != NULL)
        event_free(call->recheck);
    free(call->rewritten_body);
    free(call->worker_body_owned);
    if (call->xlate != NULL)
        call->xlate->free(call->xlate_state);
    gw_ollama_up_free(call->ollama_up);
    free(call);
}
