/* Shared by the gateway's own files only: the app struct and the handlers. */
#ifndef IG_GW_INTERNAL_H
#define IG_GW_INTERNAL_H

#include "gw_app.h"

#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>

struct http_request;
struct http_server;
struct upstream_pool;
struct sup_manager;

struct gw_app {
    struct event_base *base;
    struct cfg *cfg;
    struct http_server *server;
    struct upstream_pool *pool;
    struct sup_manager *mgr;
    int64_t started_unix_s;
    /* Graceful shutdown. */
    bool is_stopping;
    uint64_t stop_deadline_ms;
    struct event *stop_timer;
    gw_stopped_fn stopped_cb;
    void *stopped_arg;
};

/* Answers REQ with an OpenAI error body; adds Retry-After when RETRY_AFTER_S > 0. */
void gw_reply_error(struct http_request *req, int status, const char *message, const char *code,
                    int retry_after_s);

/* Answers REQ with a JSON document (reference taken). */
void gw_reply_json(struct http_request *req, int status, json_t *doc);

/* Proxies an OpenAI/llama.cpp inference request routed by its body's "model". */
void gw_proxy_handle(struct gw_app *app, struct http_request *req);

/* GET /v1/models: OpenAI's list plus aliases and state. */
void gw_models_list(struct gw_app *app, struct http_request *req);

/* GET /running: llama-swap's list of running models. */
void gw_models_running(struct gw_app *app, struct http_request *req);

#endif
