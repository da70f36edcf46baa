/* Shared by the gateway's own files only: the app struct and the handlers. */
#ifndef IG_GW_INTERNAL_H
#define IG_GW_INTERNAL_H

#include "auth.h"
#include "gw_app.h"

#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>

struct http_request;
struct http_server;
struct upstream_pool;
struct sup_manager;
struct gw_logs;
struct gw_reloader;
struct store;
struct cfg_model;
struct gw_stats;
struct gw_reqlog;
struct gw_events;
struct gw_engine_scraper;
struct bus;
struct bus_tunnels;
struct gw_workers;
struct batch_svc;
struct event;
struct evbuffer;

#define GW_REQUEST_ID_MAX 64 /* longest X-Request-Id taken from a client */

/* Who may call a route. */
enum gw_access {
    GW_PUBLIC, /* anyone */
    GW_KEY,    /* any valid key or the admin token (anyone when auth is off) */
    GW_ADMIN,  /* the admin token (anyone when auth is off) */
};

struct gw_app {
    struct event_base *base;
    struct cfg *cfg;
    struct http_server *server;
    struct upstream_pool *pool;
    struct sup_manager *mgr;
    struct gw_logs *logs;
    char *active_profile;  /* name of the active profile, or NULL */
    struct gw_reloader *reloader;
    struct store *store;
    struct auth *auth;
    struct auth_caller caller; /* of the request being routed, until a handler takes it */
    char request_id[GW_REQUEST_ID_MAX + 1]; /* of the request being routed */
    bool is_debug_request;  /* it asked for X-Log-Level: debug */
    uint64_t request_seq;   /* numbers generated request ids */
    uint64_t request_id_salt;
    unsigned selector_rotor; /* turns between equally loaded spillover targets */
    unsigned route_rotor;    /* turns between a model's backends (gw_route.h) */
    struct gw_stats *stats;
    struct gw_reqlog *reqlog;
    struct gw_events *events;
    struct gw_engine_scraper *engine_scraper;
    /* Distributed mode (gw_bus.c): the bus, its tunnels, and either the registry of workers
     * (a gateway) or the heartbeat (a worker). */
    struct bus *bus;
    struct bus_tunnels *tunnels;
    struct gw_workers *workers;
    struct gw_backends *backends; /* the URL backends of models with `backends:` */
    struct event *heartbeat;
    char bus_id[65];
    size_t bus_capacity;
    struct batch_svc *batch; /* the Batch API (src/batch); NULL on a worker */
    struct cfg **old_cfgs; /* replaced by reloads, kept while retiring models use them */
    size_t n_old_cfgs;
    int64_t started_unix_s;
    uint64_t started_ms;
    /* Graceful shutdown. */
    bool is_stopping;
    uint64_t stop_deadline_ms;
    struct event *stop_timer;
    gw_stopped_fn stopped_cb;
    void *stopped_arg;
};

/* Leaves the bus (worker or gateway); safe when never joined. */
void gw_bus_close(struct gw_app *app);

/* Returns the hash of the start of DOC's prompt (its first two messages, or the first 1 KiB
 * of "prompt"), the key of prefix-affinity routing; 0 when it has none. */
uint64_t gw_prefix_hash(json_t *doc);

/* Answers REQ with an OpenAI error body; adds Retry-After when RETRY_AFTER_S > 0. */
void gw_reply_error(struct http_request *req, int status, const char *message, const char *code,
                    int retry_after_s);

/* Returns the OpenAI error code for a model manager error STATUS (429, 502, 503, 507). */
const char *gw_model_error_code(int status);

/* Answers REQ with a JSON document (reference taken). */
void gw_reply_json(struct http_request *req, int status, json_t *doc);

/* Answers REQ, which waited for a store job that ended with RC, and clears its cancel
 * callback: 200 with DOC (reference taken, also when not sent), or 500 storage_error. REQ
 * NULL (its client went away) only releases DOC. */
void gw_reply_stored(struct http_request *req, int rc, json_t *doc);

/* Answers REQ as gw_reply_stored() does with a page of ROWS (reference taken):
 * {"object":"list","data":ROWS,"has_more":HAS_MORE}. */
void gw_reply_page(struct http_request *req, int rc, json_t *rows, bool has_more);

/* gw_query.c: query parameters of GET handlers. Each reads parameter NAME of REQ when given
 * and answers 400 naming it when malformed. */

/* Reads NAME, percent-decoded, into OUT (SIZE bytes). Returns 1 when given, 0 when absent,
 * or -1 after answering 400 (a bad escape, or longer than SIZE - 1). */
int gw_query_param(struct http_request *req, const char *name, char *out, size_t size);

/* Reads NAME as a time (unix seconds, or a UTC date or RFC 3339 date-time: ig_parse_time())
 * into *OUT when given. Returns 0, or -1 after answering 400. */
int gw_query_time(struct http_request *req, const char *name, int64_t *out);

/* Reads NAME as an integer from MIN to MAX (at most IG_PARSE_INT_MAX) into *OUT when given;
 * WHAT describes a valid value in the 400 (NULL: "an integer from MIN to MAX"). Returns 0,
 * or -1 after answering 400. */
int gw_query_int(struct http_request *req, const char *name, int64_t min, int64_t max,
                 const char *what, int64_t *out);

/* Proxies an OpenAI/llama.cpp inference request routed by its body's "model". */
void gw_proxy_handle(struct gw_app *app, struct http_request *req);

/* How a call translated from another API (gw_ollama.c) has its answer translated back. */
struct gw_xlate_ops {
    const char *stream_type; /* Content-Type of the translated stream */
    /* Appends to OUT the translation of upstream stream bytes DATA; DATA NULL: the end. */
    void (*stream)(void *state, const char *data, size_t len, struct evbuffer *out);
    /* Appends to OUT the translated stream's last line for an upstream failure MESSAGE. */
    void (*stream_error)(void *state, const char *message, struct evbuffer *out);
    /* Replaces a whole upstream response BODY of STATUS by its translation; returns whether
     * it did (the body is then JSON). */
    bool (*body)(void *state, int status, struct evbuffer *body);
    /* Frees STATE. */
    void (*free)(void *state);
};

/* Proxies REQ as the OpenAI request DOC (borrowed) to API_PATH (static), like
 * gw_proxy_handle(); OPS translate the answer with STATE (taken: freed with OPS->free). */
void gw_proxy_translated(struct gw_app *app, struct http_request *req, const char *api_path,
                         json_t *doc, const struct gw_xlate_ops *ops, void *state);

/* GET /api/version (Ollama's API, gw_ollama.c): {"version"}. */
void gw_ollama_version(struct gw_app *app, struct http_request *req);

/* GET /api/tags: the models in Ollama's list shape. */
void gw_ollama_tags(struct gw_app *app, struct http_request *req);

/* GET /api/ps: the running models in Ollama's shape. */
void gw_ollama_ps(struct gw_app *app, struct http_request *req);

/* POST /api/show {"model"}: one model's details in Ollama's shape. */
void gw_ollama_show(struct gw_app *app, struct http_request *req);

/* POST /api/chat: proxied as /v1/chat/completions, answered in Ollama's shape. */
void gw_ollama_chat(struct gw_app *app, struct http_request *req);

/* POST /api/generate: proxied as a chat (or /v1/completions when raw), answered in Ollama's
 * shape. */
void gw_ollama_generate(struct gw_app *app, struct http_request *req);

/* POST /api/embed: proxied as /v1/embeddings, answered in Ollama's shape. */
void gw_ollama_embed(struct gw_app *app, struct http_request *req);

/* Returns whether PATH is one of Ollama's routes, whose errors are {"error": message}. */
bool gw_ollama_is_path(const char *path);

/* GET /v1/models: OpenAI's list plus aliases and state. */
void gw_models_list(struct gw_app *app, struct http_request *req);

/* GET /running: llama-swap's list of running models. */
void gw_models_running(struct gw_app *app, struct http_request *req);

/* GET /models: every model with its state, in llama.cpp's router shape. */
void gw_models_router_list(struct gw_app *app, struct http_request *req);

/* POST /models/load {"model"}: starts a model; answers once it is ready or failed. */
void gw_models_load(struct gw_app *app, struct http_request *req);

/* POST /models/unload {"model"}, POST /api/models/unload[/MODEL]: stops one model or all. */
void gw_models_unload(struct gw_app *app, struct http_request *req);

/* GET /status: version, uptime and every model's state and queue. */
void gw_models_status(struct gw_app *app, struct http_request *req);

/* POST /admin/reload, /models/rescan: reloads the config file (models_dir rescanned);
 * answers when done with what changed or why not. */
void gw_admin_reload(struct gw_app *app, struct http_request *req);

/* Creates the reloader of APP (a pipe and an event); NULL when out of resources. */
struct gw_reloader *gw_reloader_new(struct gw_app *app);

/* Waits for a reload thread still running, then frees; NULL is a no-op. */
void gw_reloader_free(struct gw_reloader *r);

/* Starts a reload, or asks for another one after the running one; REQ (or NULL) gets the
 * outcome. */
void gw_reload_request(struct gw_app *app, struct http_request *req);

/* Returns what NAME is pinned to by the active profile ("" when the pin disables it), or
 * NULL when no active pin names it. */
const char *gw_profile_pin(const struct gw_app *app, const char *name);

/* Like gw_profile_pin() for the longest pin that PATH starts with (whole segments); sets
 * *LEN to that pin's length (0 when none). */
const char *gw_profile_pin_prefix(const struct gw_app *app, const char *path, size_t *len);

/* GET /api/profiles: {"active": name|null, "profiles": [{id, description, pins}]}. */
void gw_profiles_list(struct gw_app *app, struct http_request *req);

/* PUT /api/profiles/active {"name": NAME|null}: switches the active profile. */
void gw_profiles_activate(struct gw_app *app, struct http_request *req);

/* Creates the log hub: hooks the process log and MGR's model output. NULL when out of
 * memory; free with gw_logs_free(). */
struct gw_logs *gw_logs_new(struct sup_manager *mgr);

/* Ends every live log stream (at shutdown, so they do not hold the grace period). */
void gw_logs_close_readers(struct gw_logs *logs);

/* Unhooks and frees the log hub; NULL is a no-op. */
void gw_logs_free(struct gw_logs *logs);

/* GET /logs: the combined log history as text. */
void gw_logs_handle(struct gw_app *app, struct http_request *req);

/* GET /logs/stream[/SOURCE]: history then live log output. */
void gw_logs_stream(struct gw_app *app, struct http_request *req);

/* GET /ui, /ui/...: the dashboard's embedded files ("/ui" redirects to "/ui/"). */
void gw_ui_handle(struct gw_app *app, struct http_request *req);

/* ANY /upstream/MODEL/PATH: passes the request to MODEL's server unchanged (starting it). */
void gw_proxy_upstream(struct gw_app *app, struct http_request *req);

/* Passes REQ (its method and body) to PATH on the worker the router picks for model MC, a
 * model only workers serve (borrowed from the registry), and answers what it answers; as
 * it comes when IS_STREAM (a log stream), else once complete unless it is SSE. */
void gw_forward_to_worker(struct gw_app *app, struct http_request *req,
                          const struct cfg_model *mc, const char *path, bool is_stream);

/* Opens the database (storage.path or the default) and the key table; 0 or IG_EIO (*CAUSE). */
int gw_auth_open(struct gw_app *app, char **cause) IG_WUR;

/* Flushes usage and closes the key table and the database. */
void gw_auth_close(struct gw_app *app);

/* Identifies REQ's caller into app->caller and checks LEVEL; answers 401/403 and returns
 * false when refused. */
bool gw_auth_check(struct gw_app *app, struct http_request *req, enum gw_access level);

/* Moves app->caller (the routed request's) to OUT, for a handler that outlives the route. */
void gw_auth_take_caller(struct gw_app *app, struct auth_caller *out);

/* Releases app->caller when the handler did not take it. */
void gw_auth_end_route(struct gw_app *app);

/* GET/POST /admin/keys, DELETE/PATCH /admin/keys/NAME. */
void gw_admin_keys(struct gw_app *app, struct http_request *req);

/* GET /admin/audit?since&until&action&actor&limit&before: audit rows, newest first. */
void gw_admin_audit(struct gw_app *app, struct http_request *req);

/* GET /v1/usage?from&to&group_by&key: usage rows of the caller's key (any key for admin). */
void gw_usage(struct gw_app *app, struct http_request *req);

/* One finished inference request: for metrics, the request log and /events. Strings are
 * borrowed for the call. */
struct gw_request_record {
    int64_t ts_ms;              /* wall clock when it arrived (unix milliseconds) */
    const char *request_id;
    const char *key;            /* the key's name; "-" without auth */
    const char *model;          /* the configured model id; NULL when none matched */
    const char *asked_model;    /* what the client asked for (logged when none matched) */
    const char *endpoint;       /* the request path */
    const char *client;         /* the client's address */
    const char *error;          /* the error message answered, or NULL */
    const char *upstream_error; /* the upstream's failure: "connect", "timeout", "status",
                                 * "stream", "too_large", or NULL */
    int status;                 /* answered; 499 when the client went away first */
    bool is_stream;
    uint64_t prompt_tokens, completion_tokens;
    uint64_t streamed_tokens;   /* of completion_tokens, already counted while streaming */
    int64_t ttft_ms;            /* to the first body byte from the model; -1: none */
    int64_t queue_ms;           /* waiting for the model; -1: never got it */
    int64_t duration_ms;
    uint64_t bytes_in, bytes_out;
    const char *backend;        /* "local", or the worker's id; NULL when not routed */
    const char *route;          /* why that backend (routing strategy), or NULL */
};

/* Creates the metrics and per-model counters; NULL when out of memory. */
struct gw_stats *gw_stats_new(void);

/* Frees the metrics; NULL is a no-op. */
void gw_stats_free(struct gw_stats *st);

/* Counts N generated tokens of MODEL (a configured id, or NULL) now, for live rates. */
void gw_stats_tokens(struct gw_app *app, const char *model, uint64_t n);

/* Records a finished request: metrics, counters, the request log, /events. */
void gw_stats_request(struct gw_app *app, const struct gw_request_record *r);

/* Records a model state change: metrics, the model event log, /events. */
void gw_stats_model_event(struct gw_app *app, const char *model, const char *state,
                          const char *event, const char *detail, uint64_t elapsed_ms);

/* Sets the request counters and rates of MODEL (NULL: of all models) into OBJ. */
void gw_stats_status_json(struct gw_app *app, const char *model, json_t *obj);

/* GET /workers: the workers on the bus, as the registry sees them (gw_workers_json()). */
void gw_workers_handle(struct gw_app *app, struct http_request *req);

/* Answers /metrics REQ with OUT (the gateway's own metrics; taken) followed by every live
 * worker's, read through tunnels within a short deadline (those that miss it are left out). */
void gw_remote_metrics(struct gw_app *app, struct http_request *req, struct evbuffer *out);

/* GET /metrics: Prometheus text format. */
void gw_metrics_handle(struct gw_app *app, struct http_request *req);

/* Appends the engines' metrics, scraped from each running model, renamed per model. */
void gw_engine_metrics_render(struct gw_app *app, struct evbuffer *out);

/* Starts scraping engine metrics every few seconds while /metrics is being read. */
void gw_engine_metrics_touch(struct gw_app *app);

/* Creates the engine metrics scraper of APP; NULL when out of memory. */
struct gw_engine_scraper *gw_engine_scraper_new(struct gw_app *app);

/* Cancels running scrapes and frees; NULL is a no-op. */
void gw_engine_scraper_free(struct gw_engine_scraper *sc);

/* Returns the /status document (caller owns). */
json_t *gw_status_json(struct gw_app *app);

/* Returns a request-log row for R as JSON (caller owns). */
json_t *gw_request_record_json(const struct gw_request_record *r);

/* Creates the request log writer (flushes every second); NULL when out of memory. */
struct gw_reqlog *gw_reqlog_new(struct gw_app *app);

/* Writes what is pending, then frees; NULL is a no-op. */
void gw_reqlog_free(struct gw_reqlog *log);

/* Queues what is pending for the writer thread now. */
void gw_reqlog_flush(struct gw_reqlog *log);

/* Adds a request row (copied). LOG may be NULL. */
void gw_reqlog_add(struct gw_reqlog *log, const struct gw_request_record *r);

/* Adds a model event row (copied). LOG may be NULL. */
void gw_reqlog_event(struct gw_reqlog *log, int64_t ts_ms, const char *model, const char *event,
                     const char *detail);

/* GET /admin/requests?model&key&status&endpoint&since&until&limit&before: the request log. */
void gw_admin_requests(struct gw_app *app, struct http_request *req);

/* GET /admin/events?model&event&since&until&limit&before: model events. */
void gw_admin_events(struct gw_app *app, struct http_request *req);

/* Creates the /events hub; NULL when out of memory. */
struct gw_events *gw_events_new(struct gw_app *app);

/* Ends every /events stream (at shutdown). */
void gw_events_close(struct gw_events *hub);

/* Ends the streams and frees; NULL is a no-op. */
void gw_events_free(struct gw_events *hub);

/* Sends a model state change to /events listeners. HUB may be NULL. */
void gw_events_model(struct gw_events *hub, int64_t ts_ms, const char *model, const char *state,
                     const char *event, const char *detail);

/* Sends a finished request to /events listeners. HUB may be NULL. */
void gw_events_request(struct gw_events *hub, const struct gw_request_record *r);

/* GET /events: server-sent events (model, request, status). */
void gw_events_handle(struct gw_app *app, struct http_request *req);

/* Applies a model's stripParams, setParams and useModelName to DOC; returns whether the body
 * changed. */
bool gw_apply_filters(const struct cfg_model *mc, json_t *doc);

/* Returns whether model C is known to lack what PATH needs (embeddings, or text generation),
 * with a message in MSG. Unknown capabilities (no GGUF file read) pass. */
bool gw_lacks_capability(const struct cfg_model *c, const char *path, char *msg, size_t size);

/* Returns the most tokens the request DOC may generate: the largest of max_tokens,
 * max_completion_tokens and n_predict, LONG_MAX when one is negative or not an integer, -1
 * when none is given. */
long gw_requested_max_tokens(json_t *doc);

/* Writes into OUT (SIZE bytes) the upstream URL of a request to PATH, with query QUERY (or
 * NULL), for a model whose proxy is PROXY. Returns the length, or -1 when it does not fit. */
int gw_upstream_url(char *out, size_t size, const char *proxy, const char *path,
                    const char *query) IG_WUR;

/* Returns how many routes the gateway has. */
size_t gw_route_count(void);

/* Sets the path (a prefix when it ends in '/'), method ("*": any) and access of route I. */
void gw_route_info(size_t i, const char **path, const char **method, enum gw_access *access);

/* GET /openapi.json: an OpenAPI 3.1 description of every route. */
void gw_openapi_handle(struct gw_app *app, struct http_request *req);

#endif
