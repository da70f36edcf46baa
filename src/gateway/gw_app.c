/*
 * The gateway application: routes, replies and the graceful shutdown sequence.
 *
 * Shutdown: stop accepting (idle keep-alive connections close), poll until no request is
 * in flight or the grace period (limits.shutdown_grace_s) is over, close what is left,
 * then stop every child through the manager and report back.
 */
#include "batch.h"
#include "cfg.h"
#include "gw_backends.h"
#include "gw_internal.h"
#include "gw_ollama.h"
#include "http_front.h"
#include "http_server.h"
#include "http_upstream.h"
#include "ig_errbody.h"
#include "ig_log.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define STOP_POLL_MS 50

/* A route: exact path, or a prefix when it ends in '/' (something must follow it), or a
 * subtree when it ends in '*' after a '/' (that directory and everything under it), or a
 * path with one "/<asterisk>/" segment standing for any one non-empty segment; allowed method
 * ("*": any), handler, and who may call it. */
struct route {
    const char *path;
    const char *method;
    void (*handler)(struct gw_app *app, struct http_request *req);
    enum gw_access access;
};

void gw_reply_error(struct http_request *req, int status, const char *message, const char *code,
                    int retry_after_s)
{
    /* Ollama's clients read {"error": message}; its routes answer that shape. */
    char *body = gw_ollama_is_path(http_request_path(req)) ? gw_ollama_error_body(message)
                                                           : ig_error_body(status, message, code);
    char retry[16];

    if (retry_after_s > 0) {
        snprintf(retry, sizeof(retry), "%d", retry_after_s);
        http_response_add_header(req, "Retry-After", retry);
    }
    if (body == NULL) {
        http_respond(req, 500, "application/json", "{}", 2);
        return;
    }
    http_respond(req, status, "application/json", body, strlen(body));
    free(body);
}

const char *gw_model_error_code(int status)
{
    switch (status) {
    case 429:
        return "rate_limit_exceeded";
    case 507:
        return "model_too_large";
    default:
        return "model_unavailable";
    }
}

void gw_reply_json(struct http_request *req, int status, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (text == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    http_respond(req, status, "application/json", text, strlen(text));
    free(text);
}

void gw_reply_stored(struct http_request *req, int rc, json_t *doc)
{
    if (req == NULL || rc != 0)
        json_decref(doc);
    if (req == NULL)
        return;
    http_request_set_cancel_cb(req, NULL, NULL);
    if (rc != 0)
        gw_reply_error(req, 500, "the database failed; see the server log", "storage_error", 0);
    else
        gw_reply_json(req, 200, doc);
}

void gw_reply_page(struct http_request *req, int rc, json_t *rows, bool has_more)
{
    json_t *page = NULL;

    if (rc == 0)
        page = json_pack("{s:s, s:O, s:b}", "object", "list", "data", rows, "has_more", has_more);
    gw_reply_stored(req, rc, page);
    json_decref(rows);
}

/* GET /healthz: the process is alive. */
static void handle_healthz(struct gw_app *app, struct http_request *req)
{
    (void)app;
    http_respond(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

/* GET|POST /unload: stop every model (busy ones after their requests). */
static void handle_unload(struct gw_app *app, struct http_request *req)
{
    sup_unload_all(app->mgr);
    http_respond(req, 200, "text/plain; charset=utf-8", "OK", 2);
}

/* GET /readyz: 200 when the config is loaded, the database open and at least one model can
 * serve (ready, or able to start); 503 with the reasons otherwise. */
static void handle_readyz(struct gw_app *app, struct http_request *req)
{
    size_t servable = 0;
    json_t *reasons = json_array();

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        struct sup_model_info info;
        sup_model_info(sup_find(app->mgr, app->cfg->models[i].id), &info);
        if (info.state == SUP_READY || info.state == SUP_STARTING ||
            info.state == SUP_UNLOADED || (info.state == SUP_FAILED && info.retry_in_ms == 0))
            servable++;
    }
    if (app->store == NULL)
        json_array_append_new(reasons, json_string("the database is not open"));
    if (servable == 0)
        json_array_append_new(reasons, json_string(app->cfg->n_models == 0
                                                       ? "no models are configured"
                                                       : "no model can serve now"));
    if (app->is_stopping)
        json_array_append_new(reasons, json_string("shutting down"));
    gw_reply_json(req, json_array_size(reasons) == 0 ? 200 : 503,
                  json_pack("{s:s, s:I, s:I, s:o}", "status",
                            json_array_size(reasons) == 0 ? "ready" : "not_ready", "models",
                            (json_int_t)app->cfg->n_models, "servable", (json_int_t)servable,
                            "reasons", reasons));
}

static const struct route routes[] = {
    {"/healthz", "GET", handle_healthz, GW_PUBLIC},
    {"/health", "GET", handle_healthz, GW_PUBLIC},
    {"/v1/models", "GET", gw_models_list, GW_KEY},
    {"/running", "GET", gw_models_running, GW_KEY},
    {"/workers", "GET", gw_workers_handle, GW_ADMIN},
    {"/unload", "GET", handle_unload, GW_ADMIN},
    {"/unload", "POST", handle_unload, GW_ADMIN},
    {"/models", "GET", gw_models_router_list, GW_KEY},
    {"/models/load", "POST", gw_models_load, GW_ADMIN},
    {"/models/unload", "POST", gw_models_unload, GW_ADMIN},
    {"/api/models/unload", "POST", gw_models_unload, GW_ADMIN},
    {"/api/models/unload/", "POST", gw_models_unload, GW_ADMIN},
    {"/status", "GET", gw_models_status, GW_KEY},
    {"/readyz", "GET", handle_readyz, GW_PUBLIC},
    {"/openapi.json", "GET", gw_openapi_handle, GW_PUBLIC},
    {"/metrics", "GET", gw_metrics_handle, GW_ADMIN},
    {"/events", "GET", gw_events_handle, GW_ADMIN},
    {"/admin/requests", "GET", gw_admin_requests, GW_ADMIN},
    {"/admin/events", "GET", gw_admin_events, GW_ADMIN},
    {"/v1/usage", "GET", gw_usage, GW_KEY},
    {"/admin/keys", "*", gw_admin_keys, GW_ADMIN},
    {"/admin/keys/", "*", gw_admin_keys, GW_ADMIN},
    {"/admin/audit", "GET", gw_admin_audit, GW_ADMIN},
    {"/admin/reload", "POST", gw_admin_reload, GW_ADMIN},
    {"/models/rescan", "POST", gw_admin_reload, GW_ADMIN},
    {"/api/profiles", "GET", gw_profiles_list, GW_KEY},
    {"/api/profiles/active", "PUT", gw_profiles_activate, GW_ADMIN},
    {"/logs", "GET", gw_logs_handle, GW_ADMIN},
    {"/logs/stream", "GET", gw_logs_stream, GW_ADMIN},
    {"/logs/stream/", "GET", gw_logs_stream, GW_ADMIN},
    {"/upstream/", "*", gw_proxy_upstream, GW_ADMIN},
    {"/ui", "GET", gw_ui_handle, GW_PUBLIC},
    {"/ui/*", "GET", gw_ui_handle, GW_PUBLIC},
    {"/api/version", "GET", gw_ollama_version, GW_KEY},
    {"/api/tags", "GET", gw_ollama_tags, GW_KEY},
    {"/api/ps", "GET", gw_ollama_ps, GW_KEY},
    {"/api/show", "POST", gw_ollama_show, GW_KEY},
    {"/api/chat", "POST", gw_ollama_chat, GW_KEY},
    {"/api/generate", "POST", gw_ollama_generate, GW_KEY},
    {"/api/embed", "POST", gw_ollama_embed, GW_KEY},
    {"/v1/files", "*", batch_files_handle, GW_KEY},
    {"/v1/files/*/content", "GET", batch_files_handle, GW_KEY},
    {"/v1/files/", "*", batch_files_handle, GW_KEY},
    {"/v1/batches", "*", batch_api_handle, GW_KEY},
    {"/v1/batches/*/cancel", "POST", batch_api_handle, GW_KEY},
    {"/v1/batches/", "GET", batch_api_handle, GW_KEY},
    {"/v1/chat/completions", "POST", gw_proxy_handle, GW_KEY},
    {"/v1/completions", "POST", gw_proxy_handle, GW_KEY},
    {"/v1/embeddings", "POST", gw_proxy_handle, GW_KEY},
    {"/v1/rerank", "POST", gw_proxy_handle, GW_KEY},
    {"/v1/reranking", "POST", gw_proxy_handle, GW_KEY},
    {"/rerank", "POST", gw_proxy_handle, GW_KEY},
    {"/reranking", "POST", gw_proxy_handle, GW_KEY},
    {"/completion", "POST", gw_proxy_handle, GW_KEY},
    {"/completions", "POST", gw_proxy_handle, GW_KEY},
    {"/infill", "POST", gw_proxy_handle, GW_KEY},
    {"/embedding", "POST", gw_proxy_handle, GW_KEY},
    {"/embeddings", "POST", gw_proxy_handle, GW_KEY},
};

size_t gw_route_count(void)
{
    return sizeof(routes) / sizeof(routes[0]);
}

void gw_route_info(size_t i, const char **path, const char **method, enum gw_access *access)
{
    *path = routes[i].path;
    *method = routes[i].method;
    *access = routes[i].access;
}

/* Returns whether ID is usable as a request id: 1..GW_REQUEST_ID_MAX characters of
 * letters, digits and ._:- (anything else could forge log lines or headers). */
static bool is_valid_request_id(const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0'; n++)
        if (n == GW_REQUEST_ID_MAX ||
            !(isalnum((unsigned char)id[n]) || strchr("._:-", id[n]) != NULL))
            return false;
    return n > 0;
}

/* Sets app->request_id for REQ: the client's X-Request-Id when valid, else a new one, and
 * returns it in the response's X-Request-Id. */
static void assign_request_id(struct gw_app *app, struct http_request *req)
{
    const char *given = http_request_header(req, "x-request-id");

    if (given != NULL && is_valid_request_id(given)) {
        snprintf(app->request_id, sizeof(app->request_id), "%s", given);
    } else {
        /* Unique per process and unlikely to repeat across restarts: a mixed counter. */
        uint64_t x = app->request_id_salt + ++app->request_seq * 0x9E3779B97F4A7C15ULL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        snprintf(app->request_id, sizeof(app->request_id), "req-%016llx",
                 (unsigned long long)(x ^ (x >> 31)));
    }
    http_response_add_header(req, "X-Request-Id", app->request_id);
}

/* Notes X-Log-Level: debug on REQ, a request of ACCESS whose caller passed the check: the
 * caller's steps are then logged at info. Only callers with a key or token may ask (anyone
 * when auth is off), so strangers cannot flood the log. */
static void note_debug_level(struct gw_app *app, struct http_request *req, enum gw_access access)
{
    const char *level = http_request_header(req, "x-log-level");

    app->is_debug_request = level != NULL && strcasecmp(level, "debug") == 0 &&
                            (access != GW_PUBLIC || !auth_is_on(app->auth));
    if (app->is_debug_request)
        ig_log_request(IG_LOG_INFO, app->request_id, "%s %s from %s (X-Log-Level: debug)",
                       http_request_method(req), http_request_path(req),
                       http_request_peer(req));
}

/* Returns whether PATH matches PATTERN, which has one segment "*" at STAR (its '/'). */
static bool matches_segment(const char *pattern, const char *star, const char *path)
{
    size_t head = (size_t)(star - pattern) + 1, seg;

    if (strncmp(pattern, path, head) != 0)
        return false;
    seg = strcspn(path + head, "/");
    return seg > 0 && strcmp(path + head + seg, star + 2) == 0;
}

/* Dispatches one request by path and method. */
static void route_request(struct http_request *req, void *arg)
{
    struct gw_app *app = arg;
    const char *path = http_request_path(req);
    const char *method = http_request_method(req);
    bool is_known_path = false;
    char allow[64] = "";

    assign_request_id(app, req);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t n = strlen(routes[i].path);
        const char *star = strstr(routes[i].path, "/*/");
        bool is_subtree = routes[i].path[n - 1] == '*';
        bool is_prefix = routes[i].path[n - 1] == '/';
        if (star != NULL ? !matches_segment(routes[i].path, star, path)
            : is_subtree ? strncmp(routes[i].path, path, n - 1) != 0
            : is_prefix ? strncmp(routes[i].path, path, n) != 0 || path[n] == '\0'
                        : strcmp(routes[i].path, path) != 0)
            continue;
        is_known_path = true;
        if (strcmp(routes[i].method, "*") == 0 || strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            app->is_debug_request = false;
            if (gw_auth_check(app, req, routes[i].access)) {
                note_debug_level(app, req, routes[i].access);
                routes[i].handler(app, req);
                gw_auth_end_route(app);
            }
            return;
        }
        n = strlen(allow);
        snprintf(allow + n, sizeof(allow) - n, "%s%s", n > 0 ? ", " : "", routes[i].method);
    }
    if (is_known_path) {
        char msg[160];
        http_response_add_header(req, "Allow", allow);
        snprintf(msg, sizeof(msg), "method %s not allowed on %s", method, path);
        gw_reply_error(req, 405, msg, "method_not_allowed", 0);
        return;
    }
    gw_reply_error(req, 404, "no such endpoint", "not_found", 0);
}

/* A model changed state: metrics, the event log, /events. */
static void on_model_state(struct sup_model *model, enum sup_state state, const char *event,
                           const char *detail, uint64_t elapsed_ms, void *arg)
{
    gw_stats_model_event(arg, sup_model_cfg(model)->id, sup_state_name(state), event, detail,
                         elapsed_ms);
}

struct gw_app *gw_app_new(struct event_base *base, struct cfg *cfg, char **cause)
{
    struct gw_app *app = calloc(1, sizeof(*app));
    struct http_server_options opt = {0};

    if (app == NULL) {
        cfg_free(cfg);
        if (cause != NULL)
            *cause = strdup("out of memory");
        return NULL;
    }
    app->base = base;
    app->cfg = cfg;
    app->started_unix_s = ig_unix_s();
    app->started_ms = ig_now_ms();
    opt.max_body_bytes = cfg->limits.max_body_bytes;
    opt.max_header_bytes = cfg->limits.max_header_bytes;
    opt.idle_timeout_s = cfg->limits.idle_timeout_s;
    app->server = http_server_new(base, &opt, route_request, app);
    app->pool = upstream_pool_new(base);
    app->backends = gw_backends_new();
    if (app->server == NULL || app->pool == NULL) {
        if (cause != NULL)
            *cause = strdup("out of memory");
        gw_app_free(app);
        return NULL;
    }
    if (gw_auth_open(app, cause) != 0) {
        gw_app_free(app);
        return NULL;
    }
    app->mgr = sup_manager_new(base, app->pool, cfg, cause);
    if (app->mgr == NULL) {
        gw_app_free(app);
        return NULL;
    }
    app->logs = gw_logs_new(app->mgr);
    app->stats = gw_stats_new();
    app->reqlog = gw_reqlog_new(app);
    app->events = gw_events_new(app);
    app->engine_scraper = gw_engine_scraper_new(app);
    if (app->logs == NULL || app->stats == NULL || app->reqlog == NULL || app->events == NULL ||
        app->engine_scraper == NULL) {
        if (cause != NULL)
            *cause = strdup("out of memory");
        gw_app_free(app);
        return NULL;
    }
    app->reloader = gw_reloader_new(app);
    if (app->reloader == NULL) {
        if (cause != NULL)
            *cause = strdup("out of memory");
        gw_app_free(app);
        return NULL;
    }
    app->request_id_salt = ((uint64_t)ig_unix_s() << 20) ^ (uint64_t)getpid();
    sup_set_state_hook(app->mgr, on_model_state, app);
    sup_preload(app->mgr);
    return app;
}

int gw_app_listen(struct gw_app *app, const char *host, int port, char **cause)
{
    return http_front_listen(app->server, app->cfg, host, port, cause); /* tls, cors, limits */
}

int gw_app_port(const struct gw_app *app)
{
    return http_server_port(app->server);
}

/* All children exited: report. */
static void on_children_stopped(void *arg)
{
    struct gw_app *app = arg;
    ig_info("shutdown complete");
    if (app->stopped_cb != NULL)
        app->stopped_cb(app->stopped_arg);
}

/* Polls in-flight requests during a graceful shutdown. */
static void stop_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    struct timeval tv = {0, STOP_POLL_MS * 1000};
    size_t busy = http_server_busy_requests(app->server);
    (void)fd;
    (void)what;

    if (busy > 0 && ig_now_ms() < app->stop_deadline_ms && app->stop_timer != NULL) {
        evtimer_add(app->stop_timer, &tv);
        return;
    }
    if (busy > 0)
        ig_warn("grace period over: closing %zu request(s) still in flight", busy);
    http_server_free(app->server);
    app->server = NULL;
    ig_info("stopping models");
    sup_shutdown(app->mgr, on_children_stopped, app);
}

void gw_app_shutdown(struct gw_app *app, gw_stopped_fn cb, void *arg)
{
    if (app->is_stopping)
        return;
    app->is_stopping = true;
    app->stopped_cb = cb;
    app->stopped_arg = arg;
    app->stop_deadline_ms = ig_now_ms() + (uint64_t)app->cfg->limits.shutdown_grace_s * 1000u;
    ig_info("shutting down: %zu request(s) in flight, grace %d s",
            http_server_busy_requests(app->server), app->cfg->limits.shutdown_grace_s);
    http_server_stop_accepting(app->server);
    gw_logs_close_readers(app->logs);
    gw_events_close(app->events);
    app->stop_timer = evtimer_new(app->base, stop_poll_cb, app);
    stop_poll_cb(-1, 0, app);
}

void gw_app_free(struct gw_app *app)
{
    if (app == NULL)
        return;
    batch_svc_free(app->batch); /* its lines in flight stay on JetStream for the next start */
    app->batch = NULL;
    http_server_free(app->server);
    app->server = NULL;
    gw_bus_close(app); /* its tunnels' requests are gone with the server */
    gw_reloader_free(app->reloader);
    gw_logs_free(app->logs);
    gw_events_free(app->events);
    app->events = NULL;
    if (app->mgr != NULL)
        sup_set_state_hook(app->mgr, NULL, NULL);
    sup_manager_free(app->mgr);
    gw_engine_scraper_free(app->engine_scraper);
    gw_reqlog_free(app->reqlog); /* queues its last rows before the database closes */
    gw_auth_close(app);
    gw_stats_free(app->stats);
    upstream_pool_free(app->pool);
    gw_backends_free(app->backends);
    if (app->stop_timer != NULL)
        event_free(app->stop_timer);
    for (size_t i = 0; i < app->n_old_cfgs; i++)
        cfg_free(app->old_cfgs[i]);
    free(app->old_cfgs);
    free(app->active_profile);
    cfg_free(app->cfg);
    free(app);
}
