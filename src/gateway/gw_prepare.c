/*
 * Preparing a proxied call (gw_call.h): the body's model through profile pins, selectors
 * and aliases to a local model or one workers serve, the caller admitted against its key,
 * and the bodies to send: with this gateway's filters for its own upstreams, without them
 * for workers.
 */
#include "auth.h"
#include "cfg.h"
#include "gw_call.h"
#include "gw_selectors.h"
#include "gw_workers.h"
#include "http_server.h"
#include "ig_json.h"
#include "ig_log.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 64

/* Takes the routed request's caller into CALL and admits it against its key's limits;
 * answers the refusal and returns false when over one. A key with a max_tokens cap gets it
 * set on requests that ask for none (*IS_REWRITTEN then). */
static bool admit_call(struct gw_call *call, json_t *doc, bool *is_rewritten)
{
    struct auth_refusal r;
    long max_tokens = gw_requested_max_tokens(doc), cap;
    bool is_stream = json_is_true(json_object_get(doc, "stream"));

    gw_auth_take_caller(call->app, &call->caller);
    if (auth_admit(call->app->auth, &call->caller, gw_call_cfg(call)->id, max_tokens,
                   &r) != 0) {
        gw_call_reply_error(call, r.status, r.message, r.code, r.retry_after_s);
        return false;
    }
    cap = auth_max_tokens(&call->caller);
    if (cap > 0 && max_tokens < 0) {
        json_object_set_new(doc, "max_tokens", json_integer(cap));
        *is_rewritten = true;
    }
    call->started_ms = ig_now_ms();
    gw_meter_init(&call->meter, is_stream, gw_meter_estimate_tokens(call->body_len));
    call->is_metered = true;
    return true;
}

/*
 * Prepares what CALL sends if it goes to a worker: the body before this gateway's filters
 * (a worker applies its own), with "model" the model's id (a worker knows none of our
 * aliases, pins or selectors). DOC keeps the model it had. The client's bytes serve as they
 * are when they already name the id and nothing rewrote them (IS_PINNED: a profile pin, a
 * selector, a translation). Returns 0, or -1 when out of memory.
 */
static int set_worker_body(struct gw_call *call, json_t *doc, bool is_pinned)
{
    const char *id = gw_call_cfg(call)->id;
    json_t *asked = json_object_get(doc, "model");

    if (!is_pinned && json_is_string(asked) && strcmp(json_string_value(asked), id) == 0) {
        call->worker_body = call->body; /* the client's bytes, before the filters */
        call->worker_body_len = call->body_len;
        return 0;
    }
    json_incref(asked);
    if (json_object_set_new(doc, "model", json_string(id)) != 0) {
        json_decref(asked);
        return -1;
    }
    call->worker_body_owned = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(16));
    json_object_set_new(doc, "model", asked);
    if (call->worker_body_owned == NULL)
        return -1;
    call->worker_body = call->worker_body_owned;
    call->worker_body_len = strlen(call->worker_body_owned);
    return 0;
}

struct gw_call *gw_call_prepare(struct gw_app *app, struct http_request *req, json_t *given,
                                const char *api_path)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    char err[256], msg[512];
    json_t *doc = given != NULL ? json_incref(given)
                                : ig_json_parse(body, len, MAX_JSON_DEPTH, err, sizeof(err));
    struct gw_call *call = NULL;
    const char *name, *pin;
    struct sup_model *model;
    const struct cfg_model *mc;
    bool is_pinned = false;

    if (doc == NULL || !json_is_object(doc)) {
        gw_refuse_request(app, req, NULL, NULL, 400,
                       doc == NULL ? err : "request body must be a JSON object", "invalid_json");
        goto out;
    }
    name = json_string_value(json_object_get(doc, "model"));
    if (name == NULL || name[0] == '\0') {
        gw_refuse_request(app, req, NULL, NULL, 400, "you must provide a model parameter",
                       "missing_model");
        goto out;
    }
    pin = gw_profile_pin(app, name);
    if (pin != NULL && pin[0] == '\0') {
        snprintf(msg, sizeof(msg), "The model `%.200s` is disabled by profile %s", name,
                 app->active_profile);
        gw_refuse_request(app, req, NULL, name, 404, msg, "model_not_found");
        goto out;
    }
    if (pin != NULL) { /* the profile's pin replaces the requested model, as in llama-swap */
        json_object_set_new(doc, "model", json_string(pin));
        is_pinned = true;
        name = pin;
    }
    if (gw_selector_apply(app, doc, &name, &is_pinned, msg, sizeof(msg)) != 0) {
        gw_refuse_request(app, req, NULL, name, 503, msg, "model_unavailable");
        goto out;
    }
    model = sup_find(app->mgr, name);
    mc = model != NULL ? sup_model_cfg(model) : gw_workers_model(app->workers, name);
    if (mc == NULL && gw_workers_has_seen(app->workers, name)) {
        snprintf(msg, sizeof(msg), "The model `%.200s` is served by workers, and none is up now",
                 name);
        http_response_add_header(req, "Retry-After", "1");
        gw_refuse_request(app, req, NULL, name, 503, msg, "model_unavailable");
        goto out;
    }
    if (mc == NULL) {
        snprintf(msg, sizeof(msg), "The model `%.200s` does not exist", name);
        gw_refuse_request(app, req, NULL, name, 404, msg, "model_not_found");
        goto out;
    }
    if (gw_lacks_capability(mc, api_path != NULL ? api_path : http_request_path(req), msg,
                            sizeof(msg))) {
        gw_refuse_request(app, req, mc, name, 400, msg, "model_not_supported");
        goto out;
    }
    call = gw_call_new(app, req, model, mc);
    if (call == NULL) {
        gw_refuse_request(app, req, mc, name, 500, "out of memory", "internal_error");
        goto out;
    }
    if (app->workers != NULL)
        call->prefix_hash = gw_prefix_hash(doc);
    call->is_stream_asked = json_is_true(json_object_get(doc, "stream"));
    call_log(call, "%s %s for model %s (key %s)", http_request_method(req),
             http_request_path(req), mc->id,
             app->caller.name[0] != '\0' ? app->caller.name : "-");
    call->body = body;
    call->body_len = len;
    call->api_path = api_path;
    is_pinned = is_pinned || given != NULL; /* a translated body is always sent rewritten */
    if (!admit_call(call, doc, &is_pinned)) {
        gw_call_free(call);
        call = NULL;
        goto out;
    }
    if (app->workers != NULL && set_worker_body(call, doc, is_pinned) != 0) {
        gw_call_reply_error(call, 500, "out of memory", "internal_error", 0);
        gw_call_free(call);
        call = NULL;
        goto out;
    }
    if (gw_apply_filters(mc, doc) || is_pinned) {
        call->rewritten_body = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(16));
        if (call->rewritten_body != NULL) {
            call->body = call->rewritten_body;
            call->body_len = strlen(call->rewritten_body);
        } else if (given != NULL) { /* never send an untranslated body */
            gw_call_reply_error(call, 500, "out of memory", "internal_error", 0);
            gw_call_free(call);
            call = NULL;
        }
    }
out:
    json_decref(doc);
    return call;
}
