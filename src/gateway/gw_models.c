/*
 * Model listings and control: OpenAI's /v1/models, llama-swap's /running and unload API,
 * llama.cpp's router API (/models, /models/load, /models/unload) and /status.
 */
#include "cfg.h"
#include "gguf_meta.h"
#include "gw_internal.h"
#include "gw_selectors.h"
#include "gw_workers.h"
#include "http_server.h"
#include "ig_json.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 16

/* Returns the capability names of a model (caller owns), or an empty array when unknown. */
static json_t *caps_json(unsigned caps)
{
    const char *names[8];
    size_t n = gguf_cap_names(caps, names);
    json_t *list = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(names[i]));
    return list;
}

/* Adds what the catalog knows about C (capabilities, memory, discovered) to OBJ. */
static void add_catalog_fields(json_t *obj, const struct cfg_model *c, bool with_details)
{
    if (obj == NULL)
        return;
    json_object_set_new(obj, "capabilities", caps_json(c->caps));
    if (c->mem_bytes > 0)
        json_object_set_new(obj, "memory_bytes", json_integer((json_int_t)c->mem_bytes));
    if (c->vram_bytes > 0)
        json_object_set_new(obj, "vram_bytes", json_integer((json_int_t)c->vram_bytes));
    if (c->is_discovered)
        json_object_set_new(obj, "discovered", json_true());
    if (with_details && c->details != NULL)
        json_object_set(obj, "details", c->details);
}

/* Appends one OpenAI model object for ID describing model M. */
static void append_model(json_t *data, const char *id, struct sup_model *m, int64_t created)
{
    const struct cfg_model *c = sup_model_cfg(m);
    json_t *aliases = json_array();
    json_t *obj;

    for (size_t i = 0; i < c->aliases.len; i++)
        json_array_append_new(aliases, json_string(c->aliases.items[i]));
    obj = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s}", "id", id, "object", "model", "created",
                    (json_int_t)created, "owned_by", c->peer != NULL ? c->peer : "infergate",
                    "aliases", aliases, "state",
                    sup_state_name(sup_model_state(m)));
    if (obj == NULL)
        return;
    if (c->name != NULL)
        json_object_set_new(obj, "name", json_string(c->name));
    if (c->description != NULL)
        json_object_set_new(obj, "description", json_string(c->description));
    if (c->peer != NULL)
        json_object_set_new(obj, "peer", json_string(c->peer));
    if (c->metadata != NULL)
        json_object_set(obj, "meta", c->metadata);
    add_catalog_fields(obj, c, false);
    json_array_append_new(data, obj);
}

void gw_models_list(struct gw_app *app, struct http_request *req)
{
    json_t *data = json_array();

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model *m = sup_find(app->mgr, c->id);
        if (c->unlisted || !auth_allows_model(&app->caller, c->id))
            continue; /* a key with an allow-list sees its models only */
        append_model(data, c->id, m, app->started_unix_s);
        for (size_t a = 0; app->cfg->include_aliases_in_list && a < c->aliases.len; a++)
            append_model(data, c->aliases.items[a], m, app->started_unix_s);
    }
    gw_selectors_list(app, data, app->started_unix_s);
    gw_workers_list_models(app->workers, data, app->started_unix_s);
    gw_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void gw_models_running(struct gw_app *app, struct http_request *req)
{
    json_t *running = sup_running_json(app->mgr);

    gw_workers_running(app->workers, running); /* with their worker and its state */
    gw_reply_json(req, 200, json_pack("{s:o}", "running", running));
}

/* llama.cpp's router status value for a state: loaded, loading or unloaded. */
static const char *router_status(enum sup_state state)
{
    switch (state) {
    case SUP_READY:
        return "loaded";
    case SUP_STARTING:
        return "loading";
    default:
        return "unloaded";
    }
}

/* Returns MODEL's router "status" object: value, plus failed/exit_code/error on failure. */
static json_t *status_json(const struct sup_model *m)
{
    struct sup_model_info info;
    json_t *status;

    sup_model_info(m, &info);
    status = json_pack("{s:s}", "value", router_status(info.state));
    if (status != NULL && info.state == SUP_FAILED) {
        json_object_set_new(status, "failed", json_true());
        json_object_set_new(status, "exit_code", json_integer(info.exit_code));
        if (info.last_error != NULL)
            json_object_set_new(status, "error", json_string(info.last_error));
    }
    return status;
}

void gw_models_router_list(struct gw_app *app, struct http_request *req)
{
    json_t *data = json_array();

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model *m = sup_find(app->mgr, c->id);
        json_t *aliases = json_array(), *obj;
        for (size_t a = 0; a < c->aliases.len; a++)
            json_array_append_new(aliases, json_string(c->aliases.items[a]));
        obj = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:o, s:b}", "id", c->id, "object",
                        "model", "created", (json_int_t)app->started_unix_s, "owned_by",
                        c->peer != NULL ? c->peer : "infergate", "aliases", aliases, "state",
                        sup_state_name(sup_model_state(m)), "status", status_json(m),
                        "unlisted", c->unlisted);
        if (obj != NULL && c->gguf_path != NULL)
            json_object_set_new(obj, "path", json_string(c->gguf_path));
        if (obj != NULL && c->peer != NULL)
            json_object_set_new(obj, "peer", json_string(c->peer));
        add_catalog_fields(obj, c, true);
        json_array_append_new(data, obj);
    }
    gw_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* Reads {"model": NAME} from REQ's body and finds the model; answers the error itself. A
 * model only workers serve has REQ forwarded to REMOTE_PATH on one (when not NULL). */
static struct sup_model *model_from_body(struct gw_app *app, struct http_request *req,
                                         const char *remote_path)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    char err[256], msg[320];
    json_t *doc = ig_json_parse(body, len, MAX_JSON_DEPTH, err, sizeof(err));
    const char *name = json_string_value(json_object_get(doc, "model"));
    struct sup_model *m = NULL;

    if (doc == NULL)
        gw_reply_error(req, 400, err, "invalid_json", 0);
    else if (name == NULL || name[0] == '\0')
        gw_reply_error(req, 400, "you must provide a model parameter", "missing_model", 0);
    else if ((m = sup_find(app->mgr, name)) == NULL && remote_path != NULL &&
             gw_workers_model(app->workers, name) != NULL)
        gw_forward_to_worker(app, req, gw_workers_model(app->workers, name), remote_path,
                             false);
    else if (m == NULL && remote_path != NULL && gw_workers_has_seen(app->workers, name)) {
        snprintf(msg, sizeof(msg), "The model `%.200s` is served by workers, and none is up now",
                 name);
        gw_reply_error(req, 503, msg, "model_unavailable", 1);
    } else if (m == NULL) {
        snprintf(msg, sizeof(msg), "The model `%.200s` does not exist", name);
        gw_reply_error(req, 404, msg, "model_not_found", 0);
    }
    json_decref(doc);
    return m;
}

/* A pending POST /models/load. */
struct load_call {
    struct http_request *req;
    struct sup_waiter *waiter;
};

/* The load request's client went away: leave the queue. */
static void on_load_gone(struct http_request *req, void *arg)
{
    struct load_call *call = arg;
    (void)req;
    sup_waiter_cancel(call->waiter);
    free(call);
}

/* Answers a load once the model is ready or failed. */
static void reply_loaded(struct http_request *req, struct sup_model *m, int status,
                         const char *message, int retry_after_s)
{
    if (status != 0) {
        gw_reply_error(req, status, message,
                       gw_model_error_code(status),
                       retry_after_s);
        return;
    }
    sup_release(m); /* a load holds no request: the model idles (and its TTL runs) */
    gw_reply_json(req, 200,
                  json_pack("{s:b, s:s, s:s}", "success", 1, "model", sup_model_cfg(m)->id,
                            "state", sup_state_name(sup_model_state(m))));
}

/* The manager answered a waiting load. */
static void on_load_ready(struct sup_model *m, int status, const char *message,
                          int retry_after_s, void *arg)
{
    struct load_call *call = arg;
    struct http_request *req = call->req;

    free(call);
    http_request_set_cancel_cb(req, NULL, NULL);
    reply_loaded(req, m, status, message, retry_after_s);
}

void gw_models_load(struct gw_app *app, struct http_request *req)
{
    struct sup_model *m = model_from_body(app, req, "/models/load");
    struct load_call *call;
    int rc;

    if (m == NULL)
        return;
    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    call->req = req;
    rc = sup_acquire(m, on_load_ready, call, &call->waiter);
    if (rc == 1) {
        http_request_set_cancel_cb(req, on_load_gone, call);
        return;
    }
    free(call);
    if (rc == 0)
        reply_loaded(req, m, 0, NULL, 0);
    else
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
}

void gw_models_unload(struct gw_app *app, struct http_request *req)
{
    const char *path = http_request_path(req);
    const char *prefix = "/api/models/unload/";
    struct sup_model *m;

    if (strcmp(path, "/api/models/unload") == 0) {
        sup_unload_all(app->mgr);
        gw_reply_json(req, 200, json_pack("{s:b}", "success", 1));
        return;
    }
    if (strncmp(path, prefix, strlen(prefix)) == 0) {
        m = sup_find(app->mgr, path + strlen(prefix));
        if (m == NULL) {
            gw_reply_error(req, 404, "no such model", "model_not_found", 0);
            return;
        }
    } else if ((m = model_from_body(app, req, NULL)) == NULL) {
        return;
    }
    sup_unload(m);
    gw_reply_json(req, 200, json_pack("{s:b, s:s}", "success", 1, "model", sup_model_cfg(m)->id));
}

json_t *gw_status_json(struct gw_app *app)
{
    json_t *models = json_array();
    size_t waiting = 0;
    int in_flight = 0;

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model *m = sup_find(app->mgr, c->id);
        struct sup_model_info info;
        json_t *obj;

        sup_model_info(m, &info);
        waiting += info.waiting;
        in_flight += info.in_flight;
        obj = json_pack("{s:s, s:s, s:i, s:i, s:I, s:i, s:b, s:I, s:I, s:I}", "id", c->id,
                        "state", sup_state_name(info.state), "in_flight", info.in_flight,
                        "pid", info.pid, "waiting", (json_int_t)info.waiting, "failures",
                        info.failures, "draining", info.is_draining, "uptime_ms",
                        (json_int_t)info.uptime_ms, "idle_ms", (json_int_t)info.idle_ms,
                        "retry_in_ms", (json_int_t)info.retry_in_ms);
        if (obj != NULL && info.last_error != NULL)
            json_object_set_new(obj, "last_error", json_string(info.last_error));
        if (obj != NULL) {
            json_object_set_new(obj, "memory_bytes", json_integer((json_int_t)c->mem_bytes));
            json_object_set_new(obj, "vram_bytes", json_integer((json_int_t)c->vram_bytes));
            gw_stats_status_json(app, c->id, obj);
            json_object_set_new(obj, "load_progress", info.load_progress >= 0
                                                          ? json_real(info.load_progress)
                                                          : json_null());
        }
        json_array_append_new(models, obj);
    }
    const struct cfg_budget *b = &app->cfg->budget;
    uint64_t ram_used, vram_used;
    sup_budget_in_use(app->mgr, &ram_used, &vram_used);
    json_t *doc = json_pack(
        "{s:s, s:I, s:I, s:i, s:I, s:{s:I, s:i, s:I, s:I, s:i, s:I}, s:o}", "version",
                  IG_VERSION, "uptime_s", (json_int_t)((ig_now_ms() - app->started_ms) / 1000),
                  "waiting", (json_int_t)waiting, "in_flight", in_flight, "children",
                  (json_int_t)sup_children_alive(app->mgr), "budget", "ram_bytes",
                  (json_int_t)b->ram_bytes, "ram_percent", b->ram_percent, "ram_used_bytes",
                  (json_int_t)ram_used, "vram_bytes", (json_int_t)b->vram_bytes, "vram_percent",
                  b->vram_percent, "vram_used_bytes", (json_int_t)vram_used, "models", models);
    if (doc != NULL)
        gw_stats_status_json(app, NULL, doc);
    return doc;
}

void gw_models_status(struct gw_app *app, struct http_request *req)
{
    gw_reply_json(req, 200, gw_status_json(app));
}
