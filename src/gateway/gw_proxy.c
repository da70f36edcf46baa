/*
 * Proxying of inference requests.
 *
 * A call reads the body's "model", applies the model's filters (stripParams, setParams,
 * useModelName), waits for the model through the manager, then sends the body to the
 * model's upstream. Server-sent events are passed through chunk by chunk as curl delivers
 * them, so the client sees each upstream write at once; other responses are collected and
 * sent with a Content-Length. A client that goes away cancels the upstream transfer (or
 * its place in the queue). An upstream that fails mid-stream ends the client's stream with
 * an SSE error event in OpenAI's shape, which SDKs raise as an error.
 *
 * Credentials: of the client's headers only Content-Type and Accept go upstream, so the
 * client's Authorization, x-api-key or api-key never reach a model, whether infergate's
 * auth is on or not (llama-swap forwards every header). A model's apiKey is handed to the
 * upstream client, which sends it and scrubs it from the response (http_upstream.h).
 */
#include "cfg.h"
#include "gguf_meta.h"
#include "gw_backends.h"
#include "gw_call.h"
#include "gw_ollama_up.h"
#include "gw_route.h"
#include "gw_workers.h"
#include "bus_tunnel.h"
#include "http_server.h"
#include "http_upstream.h"
#include "ig_errbody.h"
#include "ig_json.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RESPONSE_BYTES (64u << 20)
#define DEATH_RECHECK_MS 50 /* how long a dropped request waits to see its model die */

static void on_watchdog(evutil_socket_t fd, short what, void *arg);
static void dispatch_call(struct gw_call *call);

/* Writes upstream stream bytes DATA (NULL at its end) to CALL's client, translated when the
 * call is; returns http_stream_write()'s answer. */
static int stream_write(struct gw_call *call, const char *data, size_t len)
{
    struct evbuffer *out;
    int rc = 0;

    if (call->xlate == NULL)
        return data != NULL ? http_stream_write(call->req, data, len) : 0;
    out = evbuffer_new();
    if (out == NULL)
        return 0;
    call->xlate->stream(call->xlate_state, data, len, out);
    if (evbuffer_get_length(out) > 0)
        rc = http_stream_write(call->req, evbuffer_pullup(out, -1), evbuffer_get_length(out));
    evbuffer_free(out);
    return rc;
}

/* The client went away: withdraw from the queue or abort the upstream transfer. */
static void on_client_gone(struct http_request *req, void *arg)
{
    struct gw_call *call = arg;
    (void)req;

    if (call->waiter != NULL)
        sup_waiter_cancel(call->waiter);
    if (call->answered_status == 0 || call->is_streaming)
        call->answered_status = 499; /* nginx's "client closed request" */
    if (call->ureq != NULL) {
        ig_debug("client %s went away; cancelling upstream %s", http_request_peer(req), call->url);
        upstream_cancel(call->ureq);
    }
    gw_call_free(call);
}

/* (Re)starts the stall timer of a streaming call. */
static void watchdog_arm(struct gw_call *call)
{
    struct timeval tv = {call->app->cfg->limits.watchdog_s, 0};
    if (call->watchdog != NULL)
        evtimer_add(call->watchdog, &tv);
}

/* The client's socket drained: resume a paused upstream. */
static void on_client_drained(struct http_request *req, void *arg)
{
    struct gw_call *call = arg;
    (void)req;
    if (call->ureq != NULL) {
        watchdog_arm(call);
        upstream_resume(call->ureq);
    }
}

/* Upstream response head: start streaming for SSE, collect otherwise. */
static void on_up_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct gw_call *call = arg;
    (void)ureq;

    call->status = status;
    snprintf(call->content_type, sizeof(call->content_type), "%s",
             ct != NULL ? ct : "application/json");
    call_log(call, "upstream answered %d (%s)", status, call->content_type);
    if ((call->is_on_worker || call->is_on_backend) && status == 429)
        return; /* a busy backend: the request goes elsewhere (worker_failed()) */
    if ((ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0) ||
        call->is_passthrough_stream) {
        call->is_streaming = true;
        call->answered_status = status;
        http_stream_start(call->req, status,
                          call->xlate != NULL ? call->xlate->stream_type : call->content_type);
        if (call->app->cfg->limits.watchdog_s > 0 && !call->is_passthrough_stream)
            call->watchdog = evtimer_new(call->app->base, on_watchdog, call);
        watchdog_arm(call);
    }
}

/* Upstream body bytes. */
static int on_up_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct gw_call *call = arg;

    if (call->ttft_ms < 0)
        call->ttft_ms = (int64_t)(ig_now_ms() - call->arrived_ms);
    call->bytes_out += len;
    if (call->is_streaming) {
        if (call->is_metered) {
            gw_meter_feed(&call->meter, data, len);
            if (call->meter.content_chunks > call->streamed_tokens) {
                gw_stats_tokens(call->app, gw_call_cfg(call)->id,
                                call->meter.content_chunks - call->streamed_tokens);
                call->streamed_tokens = call->meter.content_chunks;
            }
        }
        if (stream_write(call, data, len) == 0) {
            watchdog_arm(call);
            return 0;
        }
        if (call->watchdog != NULL)
            evtimer_del(call->watchdog); /* paused for the client, not stalled */
        return 1;
    }
    if (evbuffer_get_length(call->response) + len > MAX_RESPONSE_BYTES) {
        upstream_cancel(ureq);
        call->ureq = NULL;
        call->upstream_error = "too_large";
        gw_call_reply_error(call, 502, "upstream response too large", "upstream_error", 0);
        gw_call_free(call);
        return 0;
    }
    evbuffer_add(call->response, data, len);
    return 0;
}

/* Ends a started stream with an OpenAI-shaped SSE error event. */
static void stream_fail(struct gw_call *call, const char *message)
{
    char *body = ig_error_body(502, message, "upstream_error");

    gw_call_note_error(call, message);
    call->upstream_error = "stream";
    if (body != NULL) {
        struct evbuffer *event = evbuffer_new();
        if (event != NULL && call->xlate != NULL)
            call->xlate->stream_error(call->xlate_state, message, event);
        else if (event != NULL)
            evbuffer_add_printf(event, "data: %s\n\n", body);
        if (event != NULL) {
            size_t n = evbuffer_get_length(event);
            http_stream_write(call->req, evbuffer_pullup(event, -1), n);
            evbuffer_free(event);
        }
    }
    free(body);
    http_stream_end(call->req);
}

/* The stream made no progress for limits.watchdog_s: the model hangs. Kill it (the next
 * request restarts it) and end this stream with an error event. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct gw_call *call = arg;
    char text[256];
    (void)fd;
    (void)what;

    snprintf(text, sizeof(text), "model %s made no progress for %d s (watchdog); restarting it",
             gw_call_cfg(call)->id, call->app->cfg->limits.watchdog_s);
    ig_warn("%s", text);
    upstream_cancel(call->ureq);
    call->ureq = NULL;
    if (call->worker[0] == '\0') /* a worker's own watchdog restarts its model */
        sup_model_abort(call->model, text);
    stream_fail(call, text);
    gw_call_free(call);
}

/* Sends CALL again after its model died under it; the model restarts for it. The model is
 * looked up again by id: a reload may have replaced or removed it meanwhile. */
static void retry_call(struct gw_call *call)
{
    struct sup_model *next = sup_find(call->app->mgr, gw_call_cfg(call)->id);

    ig_info("model %s died during a request; sending it again", gw_call_cfg(call)->id);
    call->has_retried = true;
    call->has_model = false;
    sup_release(call->model);
    if (next == NULL) {
        gw_call_reply_error(call, 503, "the model was removed by a configuration reload",
                       "model_unavailable", 1);
        gw_call_free(call);
        return;
    }
    call->model = next;
    evbuffer_drain(call->response, evbuffer_get_length(call->response));
    call->status = 0;
    dispatch_call(call);
}

/* Answers CALL with its upstream's failure RC/MESSAGE and frees it. */
static void fail_call(struct gw_call *call, int rc, const char *message)
{
    char text[512];

    snprintf(text, sizeof(text), "upstream of model %s%s%s failed: %s", gw_call_cfg(call)->id,
             call->worker[0] != '\0' ? " on worker " : "", call->worker,
             message != NULL ? message : "unknown error");
    ig_log_request(IG_LOG_WARN, call->request_id, "%s", text);
    call->upstream_error = rc == IG_ETIMEDOUT ? "timeout" : "connect";
    if (call->is_streaming)
        stream_fail(call, text);
    else
        gw_call_reply_error(call, rc == IG_ETIMEDOUT ? 504 : 502, text, "upstream_error", 0);
    gw_call_free(call);
}

/* A moment after the upstream dropped the request with its process still alive: a killed
 * process closes its sockets before it can be reaped, so look again. */
static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    struct gw_call *call = arg;
    (void)fd;
    (void)what;

    if (!sup_model_check_alive(call->model))
        retry_call(call);
    else
        fail_call(call, IG_EIO, call->failure);
}

/*
 * A worker's or URL backend's transfer ended with RC: tells the registry; when the worker failed before any
 * byte of an answer (gone, cut) or refused it busy, sends CALL to another backend and
 * returns true. Busy is the worker at its capacity (its tunnel answers 429, bus_tunnel.h)
 * or the model at its concurrencyLimit there (429 as well): never a failure of the worker.
 * A worker's 504 is its tunnel's stall deadline (or its own upstream's time-out): a failure.
 */
static bool worker_failed(struct gw_call *call, int rc, const char *message)
{
    bool is_busy = rc == 0 && call->status == 429;
    bool is_early = is_busy || (rc != 0 && rc != IG_ETIMEDOUT && call->status == 0 &&
                                !call->is_streaming);
    enum gw_worker_outcome outcome = call->is_passthrough_stream ? GW_WORKER_LEFT /* a log */
                                     : is_busy ? GW_WORKER_BUSY
                                     : rc != 0 || call->status == 504 ? GW_WORKER_FAILED
                                                                      : GW_WORKER_OK;

    char id[sizeof(call->tried[0])];
    bool is_url = call->is_on_backend;

    if (call->is_on_backend) {
        call->is_on_backend = false;
        gw_backends_end(call->app->backends, gw_call_cfg(call)->id, call->backend_url, outcome,
                        is_busy ? -1 : call->ttft_ms);
        gw_backends_id(call->backend_url, id, sizeof(id));
    } else {
        call->is_on_worker = false;
        gw_workers_end(call->app->workers, call->worker, gw_call_cfg(call)->id, outcome,
                       is_busy ? -1 : call->ttft_ms);
        snprintf(id, sizeof(id), "%s", call->worker);
    }
    /* Busy workers beyond the tries wait at the gateway for room; a URL backend's 429 after
     * them goes to the client (it has no heartbeat saying when it has room again). */
    if (!is_early || ((!is_busy || is_url) && call->n_tries >= GW_CALL_MAX_TRIES))
        return false;
    if (call->n_tries < GW_CALL_MAX_TRIES) { /* busy ones beyond: the registry knows them full */
        call->tried_busy[call->n_tries] = is_busy;
        snprintf(call->tried[call->n_tries++], sizeof(call->tried[0]), "%s", id);
    }
    ig_log_request(IG_LOG_WARN, call->request_id,
                   "%s %s %s (%s); trying another backend of model %s",
                   call->backend_url[0] != '\0' ? "backend" : "worker",
                   call->backend_url[0] != '\0' ? call->backend_url : call->worker,
                   is_busy ? "is busy" : "did not answer",
                   is_busy ? "429" : message != NULL ? message : "no answer",
                   gw_call_cfg(call)->id);
    call->status = 0;
    call->ttft_ms = -1;
    evbuffer_drain(call->response, evbuffer_get_length(call->response));
    dispatch_call(call);
    return true;
}

/* Upstream transfer finished. A request that failed before the client got a byte (no
 * stream started), not by a time-out, is sent once more if its model died under it. */
static void on_up_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct gw_call *call = arg;
    struct timeval tv = {0, DEATH_RECHECK_MS * 1000};
    (void)ureq;

    call->ureq = NULL;
    if ((call->is_on_worker || call->is_on_backend) && worker_failed(call, rc, message))
        return;
    if (rc == 0) {
        call->is_success = call->status > 0 && call->status < 400;
        if (call->is_metered && !call->is_streaming)
            gw_meter_feed(&call->meter, (const char *)evbuffer_pullup(call->response, -1),
                          evbuffer_get_length(call->response));
        if (call->status >= 500)
            call->upstream_error = "status";
        if (call->is_streaming) {
            (void)stream_write(call, NULL, 0);
            http_stream_end(call->req);
        } else {
            call->answered_status = call->status;
            if (call->xlate != NULL && call->xlate->body(call->xlate_state, call->status,
                                                         call->response))
                snprintf(call->content_type, sizeof(call->content_type), "application/json");
            http_respond_buffer(call->req, call->status, call->content_type, call->response);
        }
        gw_call_free(call);
        return;
    }
    if (call->is_streaming || call->has_retried || rc == IG_ETIMEDOUT) {
        fail_call(call, rc, message);
        return;
    }
    if (call->worker[0] != '\0' || call->backend_url[0] != '\0' || !call->has_model) {
        fail_call(call, rc, message); /* no process of ours died: nothing to restart */
        return;
    }
    if (!sup_model_check_alive(call->model)) {
        retry_call(call);
        return;
    }
    snprintf(call->failure, sizeof(call->failure), "%s", message != NULL ? message : "unknown error");
    call->recheck = evtimer_new(call->app->base, on_recheck, call);
    if (call->recheck == NULL) {
        fail_call(call, rc, message);
        return;
    }
    evtimer_add(call->recheck, &tv);
}

/* Opens the bus tunnel to the worker of call ARG as the upstream client's stream. */
static void *open_tunnel(void *arg, const struct http_stream_sink *sink, void *client,
                         const struct http_stream_ops **ops)
{
    struct gw_call *call = arg;
    return call->app->tunnels != NULL
               ? bus_tunnel_open(call->app->tunnels, call->worker, sink, client, ops)
               : NULL;
}

/* Sends the request to the model's upstream. */
static void start_upstream(struct gw_call *call)
{
    static const struct upstream_callbacks callbacks = {
        .on_headers = on_up_headers, .on_data = on_up_data, .on_done = on_up_done};
    const struct cfg_model *mc = gw_call_cfg(call);
    const char *accept = http_request_header(call->req, "accept");
    const char *ctype = http_request_header(call->req, "content-type");
    const char *query = http_request_query(call->req);
    char accept_header[256], ctype_header[256] = "Content-Type: application/json";
    char worker_base[96], id_header[32 + GW_REQUEST_ID_MAX];
    const char *headers[5] = {ctype_header, NULL, NULL, NULL, NULL};
    const char *base = call->backend_url[0] != '\0' ? call->backend_url : mc->proxy;
    struct upstream_spec spec = {0};
    const struct upstream_callbacks *cbs = &callbacks;
    void *cb_arg = call;
    int n;

    if (call->worker[0] != '\0') { /* through a bus tunnel: the host is only a name */
        snprintf(worker_base, sizeof(worker_base), "http://%s.worker", call->worker);
        base = worker_base;
    }
    if (call->upstream_path != NULL) {
        n = gw_upstream_url(call->url, sizeof(call->url), base, call->upstream_path, query);
        if (ctype != NULL)
            snprintf(ctype_header, sizeof(ctype_header), "Content-Type: %s", ctype);
    } else {
        n = gw_upstream_url(call->url, sizeof(call->url), base,
                            call->api_path != NULL ? call->api_path : http_request_path(call->req),
                            NULL);
    }
    if (n < 0) {
        gw_call_reply_error(call, 414, "request URL too long for the upstream", "invalid_request_error", 0);
        gw_call_free(call);
        return;
    }
    if (accept != NULL) {
        snprintf(accept_header, sizeof(accept_header), "Accept: %s", accept);
        headers[1] = accept_header;
    }
    call_log(call, "sending to %s", call->url);
    spec.method = call->upstream_path == NULL ? "POST"
                  : strcmp(http_request_method(call->req), "HEAD") == 0
                      ? "GET" /* the head of the GET response is sent, without its body */
                      : http_request_method(call->req);
    spec.url = call->url;
    spec.headers = headers;
    spec.body = call->body_len > 0 || strcmp(spec.method, "POST") == 0 ? call->body : NULL;
    spec.body_len = call->body_len;
    if (call->worker[0] != '\0' && call->worker_body != NULL) {
        spec.body = call->worker_body;
        spec.body_len = call->worker_body_len;
    }
    spec.timeout_ms = call->is_passthrough_stream /* a log: as long as its reader stays */
                          ? 0
                          : (long)call->app->cfg->limits.request_timeout_s * 1000;
    spec.connect_timeout_ms = 5000;
    spec.api_key = mc->api_key;
    spec.ca_file = mc->ca_file;
    if (call->worker[0] != '\0') {
        snprintf(id_header, sizeof(id_header), "X-Request-Id: %s", call->request_id);
        headers[accept != NULL ? 2 : 1] = "Connection: close"; /* one exchange per tunnel */
        headers[accept != NULL ? 3 : 2] = id_header;
        spec.api_key = spec.ca_file = NULL;
        spec.open_stream = open_tunnel;
        spec.open_stream_arg = call;
    } else if (gw_ollama_up_wrap(call, &spec, &cbs, &cb_arg) != 0) { /* api: ollama models */
        gw_call_free(call);
        return;
    }
    if (call->response == NULL)
        call->response = evbuffer_new();
    call->ureq = call->response != NULL ? upstream_start(call->app->pool, &spec, cbs, cb_arg)
                                        : NULL;
    if (call->ureq == NULL) {
        gw_call_reply_error(call, 500, "out of memory", "internal_error", 0);
        gw_call_free(call);
    }
}

/* The manager answered: the model is ready, or an error to pass on. */
static void on_model_ready(struct sup_model *model, int status, const char *message,
                           int retry_after_s, void *arg)
{
    struct gw_call *call = arg;

    call->waiter = NULL;
    call->model = model; /* a reload may have moved the request to the model's new version */
    if (status == 0 && call->queue_ms < 0)
        call->queue_ms = (int64_t)(ig_now_ms() - call->dispatched_ms);
    if (status != 0) {
        gw_call_reply_error(call, status, message,
                       gw_model_error_code(status),
                       retry_after_s);
        gw_call_free(call);
        return;
    }
    call->has_model = true;
    start_upstream(call);
}

/* What route_call() found. */
enum route_result {
    ROUTE_OK,   /* a backend with room: call->worker ("" for the local model) */
    ROUTE_NONE, /* every backend has failed the call */
    ROUTE_FULL, /* only workers at capacity (or that refused it busy): wait for room */
};

/* Picks CALL's backend among its local model and the workers serving it: sets its worker
 * ("" for local) and the reason. */
static enum route_result route_call(struct gw_call *call)
{
    struct gw_route_cand cand[GW_MAX_CANDIDATES + 1];
    const char *ids[GW_MAX_CANDIDATES + 1], *urls[GW_MAX_CANDIDATES + 1] = {NULL};
    char url_ids[GW_MAX_CANDIDATES][sizeof(call->tried[0])];
    const struct cfg_model *mc = gw_call_cfg(call);
    struct gw_app *app = call->app;
    bool has_backends = mc->backends.len > 0 && app->backends != NULL;
    size_t n = 0;
    int pick;

    call->worker[0] = call->backend_url[0] = '\0';
    if (app->workers == NULL && !has_backends) /* the local model, the fast path */
        return call->model != NULL ? ROUTE_OK : ROUTE_NONE;
    if (call->model != NULL && !has_backends) {
        struct sup_model_info info;
        sup_model_info(call->model, &info);
        cand[n] = (struct gw_route_cand){.is_ready = info.state == SUP_READY,
                                         .load = info.in_flight + (int)info.waiting};
        ids[n++] = NULL;
    }
    if (has_backends) {
        size_t got = gw_backends_candidates(app->backends, mc, urls + n, cand + n,
                                            GW_MAX_CANDIDATES - n);
        for (size_t i = n; i < n + got; i++) {
            gw_backends_id(urls[i], url_ids[i], sizeof(url_ids[i]));
            ids[i] = url_ids[i];
        }
        n += got;
    }
    n += gw_workers_candidates(app->workers, mc->id, ids + n, cand + n, GW_MAX_CANDIDATES - n);
    for (size_t i = 0; i < n; i++) {
        for (unsigned t = 0; ids[i] != NULL && t < call->n_tries; t++) {
            if (strcmp(ids[i], call->tried[t]) != 0)
                continue;
            if (call->tried_busy[t])
                cand[i].is_full = true; /* it may have room later */
            else
                cand[i].is_excluded = true;
        }
    }
    pick = gw_route_pick(gw_strategy_from_name(mc->strategy != NULL ? mc->strategy
                                                                    : app->cfg->nats.strategy),
                         cand, n,
                         call->prefix_hash, &app->route_rotor, &call->route_reason);
    if (pick < 0)
        return ROUTE_NONE;
    if (urls[pick] != NULL) {
        if (strlen(urls[pick]) >= sizeof(call->backend_url))
            return ROUTE_NONE;
        snprintf(call->backend_url, sizeof(call->backend_url), "%s", urls[pick]);
    } else if (ids[pick] != NULL && cand[pick].is_full && !cand[pick].is_tripped) {
        return ROUTE_FULL; /* the best there is is full: every backend is */
    } else if (ids[pick] != NULL) {
        snprintf(call->worker, sizeof(call->worker), "%s", ids[pick]);
    }
    call_log(call, "routed to %s (%s)",
             urls[pick] != NULL ? urls[pick] : ids[pick] != NULL ? ids[pick] : "the local model",
             call->route_reason);
    return ROUTE_OK;
}

/* A waiting CALL may go on (HAS_ROOM), or no worker had room in time. Workers that refused
 * it busy may take it now. */
static void on_room(void *arg, bool has_room)
{
    struct gw_call *call = arg;
    char text[256];
    unsigned kept = 0;

    call->wait = NULL;
    if (!has_room) {
        snprintf(text, sizeof(text), "every worker of model %s stayed at capacity for %d s",
                 gw_call_cfg(call)->id, call->app->cfg->nats.queue_timeout_s);
        gw_call_reply_error(call, 503, text, "model_unavailable", 1);
        gw_call_free(call);
        return;
    }
    for (unsigned t = 0; t < call->n_tries; t++) {
        if (call->tried_busy[t])
            continue;
        if (kept != t)
            memcpy(call->tried[kept], call->tried[t], sizeof(call->tried[0]));
        call->tried_busy[kept++] = false;
    }
    call->n_tries = kept;
    dispatch_call(call);
}

/* Every worker of CALL's model is at capacity: CALL waits for room at the gateway. */
static void queue_call(struct gw_call *call)
{
    char text[256];

    call->wait = gw_workers_wait(call->app->workers, gw_call_cfg(call)->id, on_room, call);
    if (call->wait != NULL) {
        call_log(call, "every worker of model %s is at capacity: waiting for room",
                 gw_call_cfg(call)->id);
        return;
    }
    if (call->app->cfg->nats.queue_timeout_s > 0)
        snprintf(text, sizeof(text), "every worker of model %s is at capacity and %d "
                 "request(s) wait already", gw_call_cfg(call)->id,
                 call->app->cfg->nats.queue_length);
    else
        snprintf(text, sizeof(text), "every worker of model %s is at capacity",
                 gw_call_cfg(call)->id);
    gw_call_reply_error(call, 503, text, "model_unavailable", 1);
    gw_call_free(call);
}

/* Routes the call, waits for its model when local, then sends it upstream. */
static void dispatch_call(struct gw_call *call)
{
    struct http_request *req = call->req;
    int rc;

    http_request_set_cancel_cb(req, on_client_gone, call);
    http_request_set_drain_cb(req, on_client_drained, call);
    if (call->dispatched_ms == 0)
        call->dispatched_ms = ig_now_ms();
    switch (route_call(call)) {
    case ROUTE_FULL:
        queue_call(call);
        return;
    case ROUTE_NONE: {
        char text[512];
        snprintf(text, sizeof(text), "no backend of model %s could take the request (%u worker(s) "
                 "failed it)", gw_call_cfg(call)->id, call->n_tries);
        gw_call_reply_error(call, 503, text, "model_unavailable", 1);
        gw_call_free(call);
        return;
    }
    case ROUTE_OK:
        break;
    }
    if (call->backend_url[0] != '\0') { /* a URL backend: its own server, always up */
        call->is_on_backend = true;
        gw_backends_begin(call->app->backends, gw_call_cfg(call)->id, call->backend_url);
        if (call->queue_ms < 0)
            call->queue_ms = (int64_t)(ig_now_ms() - call->dispatched_ms);
        call->status = 0;
        start_upstream(call);
        return;
    }
    if (call->worker[0] != '\0') {
        call->is_on_worker = true;
        gw_workers_begin(call->app->workers, call->worker, gw_call_cfg(call)->id);
        if (call->queue_ms < 0)
            call->queue_ms = (int64_t)(ig_now_ms() - call->dispatched_ms);
        call->status = 0;
        start_upstream(call);
        return;
    }
    rc = sup_acquire(call->model, on_model_ready, call, &call->waiter);
    if (rc == 0) {
        if (call->queue_ms < 0)
            call->queue_ms = (int64_t)(ig_now_ms() - call->dispatched_ms);
        call->has_model = true;
        start_upstream(call);
    } else if (rc < 0) {
        gw_call_reply_error(call, 500, ig_strerror(rc), "internal_error", 0);
        gw_call_free(call);
    }
}

void gw_proxy_handle(struct gw_app *app, struct http_request *req)
{
    struct gw_call *call = gw_call_prepare(app, req, NULL, NULL);

    if (call != NULL)
        dispatch_call(call);
}

void gw_proxy_translated(struct gw_app *app, struct http_request *req, const char *api_path,
                         json_t *doc, const struct gw_xlate_ops *ops, void *state)
{
    struct gw_call *call = gw_call_prepare(app, req, doc, api_path);

    if (call == NULL) {
        ops->free(state);
        return;
    }
    call->xlate = ops;
    call->xlate_state = state;
    dispatch_call(call);
}

void gw_call_dispatch(struct gw_call *call)
{
    dispatch_call(call);
}
