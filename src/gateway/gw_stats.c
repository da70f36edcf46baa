/*
 * The gateway's numbers: Prometheus metrics (GET /metrics), per-model counters and recent
 * rates for /status, and the fan-out of each finished request and model state change to
 * the request log (gw_reqlog.c) and live listeners (gw_events.c).
 *
 * Label values are bounded: `model` is a configured model id or "other" (unknown names a
 * client sends never become labels), `key` a key's name ("-" without auth), `status` an
 * HTTP status. Rates (tok/s, requests/s) are sums over the last RATE_WINDOW_S whole
 * seconds; streamed tokens count as they pass, so a long generation shows its speed live.
 */
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "ig_text.h"
#include "ig_time.h"
#include "metrics.h"
#include "store.h"
#include "sup_manager.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_S 16         /* seconds of per-second counts kept */
#define RATE_WINDOW_S 5   /* rates average the last this many whole seconds */
#define MODEL_BUCKETS 64
#define MAX_MODELS 4096   /* ids seen across reloads; beyond it new ids share "other" */

/* Per-second counts over the last RING_S seconds. */
struct rate_ring {
    int64_t second[RING_S];
    uint64_t count[RING_S];
};

/* The series a model's requests touch most, found once (their families are never cleared,
 * so the pointers stay valid): the per-request cost is then a compare, not a hash. */
struct series_cache {
    struct metric_series *duration, *ttft, *queue_wait;
    struct metric_series *requests; /* for last_status and last_key */
    struct metric_series *prompt_tokens, *completion_tokens; /* for tokens_key */
    int last_status;
    char last_key[128], tokens_key[128];
};

struct model_stats {
    struct model_stats *next;
    char *id;
    uint64_t requests, prompt_tokens, completion_tokens, errors;
    struct rate_ring tokens, reqs;
    struct series_cache series;
};

struct gw_stats {
    struct metrics *reg;
    struct metric_family *requests, *duration, *ttft, *queue_wait, *prompt_tokens,
        *completion_tokens, *upstream_errors, *load_duration, *model_events;
    /* Recomputed at each scrape. */
    struct metric_family *model_state, *in_flight, *queue_depth, *tok_per_s, *budget,
        *store_lag, *uptime, *info, *connections;
    struct model_stats *by_id[MODEL_BUCKETS];
    size_t n_models;
    struct model_stats all; /* totals over every model */
};

static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2.5,   5,    10,    30,   60,  120, 300};
static const double ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,    2.5,   5,    10,  30};
static const double wait_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120};
static const double load_buckets[] = {0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300};

/* Adds N to the count of second NOW of R. */
static void ring_add(struct rate_ring *r, int64_t now, uint64_t n)
{
    size_t i = (size_t)(now % RING_S);

    if (r->second[i] != now) {
        r->second[i] = now;
        r->count[i] = 0;
    }
    r->count[i] += n;
}

/* Returns R's average per second over the RATE_WINDOW_S whole seconds before NOW. */
static double ring_rate(const struct rate_ring *r, int64_t now)
{
    uint64_t sum = 0;

    for (int64_t s = now >= RATE_WINDOW_S ? now - RATE_WINDOW_S : 0; s < now; s++) {
        size_t i = (size_t)(s % RING_S);
        if (r->second[i] == s)
            sum += r->count[i];
    }
    return (double)sum / RATE_WINDOW_S;
}

/* Returns the seconds clock the rates use (monotonic). */
static int64_t now_s(void)
{
    return (int64_t)(ig_now_ms() / 1000);
}

/* FNV-1a of ID. */
static size_t bucket_of(const char *id)
{
    return (size_t)(ig_fnv1a(id, strlen(id), IG_FNV1A_INIT) % MODEL_BUCKETS);
}

/* Returns the stats of model ID (made at first use), or NULL when ID is NULL, the table is
 * full or memory is out. */
static struct model_stats *model_stats(struct gw_stats *st, const char *id)
{
    struct model_stats *ms;
    size_t b;

    if (id == NULL)
        return NULL;
    b = bucket_of(id);
    for (ms = st->by_id[b]; ms != NULL; ms = ms->next)
        if (strcmp(ms->id, id) == 0)
            return ms;
    if (st->n_models >= MAX_MODELS || (ms = calloc(1, sizeof(*ms))) == NULL)
        return NULL;
    ms->id = strdup(id);
    if (ms->id == NULL) {
        free(ms);
        return NULL;
    }
    ms->next = st->by_id[b];
    st->by_id[b] = ms;
    st->n_models++;
    return ms;
}

/* Adds a family to ST's registry; labels given as a NULL-ended list. */
static struct metric_family *family(struct gw_stats *st, enum metric_type type, const char *name,
                                    const char *help, const char *const *labels,
                                    const double *buckets, size_t n_buckets)
{
    size_t n = 0;
    while (labels != NULL && labels[n] != NULL)
        n++;
    return metrics_family(st->reg, type, name, help, n, labels, buckets, n_buckets);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct gw_stats *gw_stats_new(void)
{
    static const char *const model_status_key[] = {"model", "status", "key", NULL};
    static const char *const model_key[] = {"model", "key", NULL};
    static const char *const model[] = {"model", NULL};
    static const char *const model_state[] = {"model", "state", NULL};
    static const char *const model_event[] = {"model", "event", NULL};
    static const char *const model_kind[] = {"model", "kind", NULL};
    static const char *const resource[] = {"resource", NULL};
    static const char *const version[] = {"version", NULL};
    struct gw_stats *st = calloc(1, sizeof(*st));

    if (st == NULL || (st->reg = metrics_new()) == NULL) {
        free(st);
        return NULL;
    }
    st->requests = family(st, METRIC_COUNTER, "infergate_requests_total",
                          "Inference requests answered, by model, HTTP status and key name.",
                          model_status_key, NULL, 0);
    st->duration = family(st, METRIC_HISTOGRAM, "infergate_request_duration_seconds",
                          "Time from the request to the end of its response.", model,
                          duration_buckets, N_OF(duration_buckets));
    st->ttft = family(st, METRIC_HISTOGRAM, "infergate_time_to_first_token_seconds",
                      "Time from the request to the first response byte from the model.", model,
                      ttft_buckets, N_OF(ttft_buckets));
    st->queue_wait = family(st, METRIC_HISTOGRAM, "infergate_queue_wait_seconds",
                            "Time a request waited for its model (loading, queue).", model,
                            wait_buckets, N_OF(wait_buckets));
    st->prompt_tokens = family(st, METRIC_COUNTER, "infergate_prompt_tokens_total",
                               "Prompt tokens, from the model's usage or estimated.", model_key,
                               NULL, 0);
    st->completion_tokens = family(st, METRIC_COUNTER, "infergate_completion_tokens_total",
                                   "Generated tokens, from the model's usage or counted.",
                                   model_key, NULL, 0);
    st->upstream_errors = family(st, METRIC_COUNTER, "infergate_upstream_errors_total",
                                 "Failed upstream requests: connect, status (>= 500), stream.",
                                 model_kind, NULL, 0);
    st->load_duration = family(st, METRIC_HISTOGRAM, "infergate_model_load_duration_seconds",
                               "Time from a model's start to its readiness.", model,
                               load_buckets, N_OF(load_buckets));
    st->model_events = family(st, METRIC_COUNTER, "infergate_model_events_total",
                              "Model state changes: load, restart, ready, unload, evict, "
                              "abort, stopped, crash, failed.",
                              model_event, NULL, 0);
    st->model_state = family(st, METRIC_GAUGE, "infergate_model_state",
                             "1 for the state each model is in, 0 for the others.", model_state,
                             NULL, 0);
    st->in_flight = family(st, METRIC_GAUGE, "infergate_requests_in_flight",
                           "Requests being served by each model.", model, NULL, 0);
    st->queue_depth = family(st, METRIC_GAUGE, "infergate_queue_depth",
                             "Requests waiting for each model.", model, NULL, 0);
    st->tok_per_s = family(st, METRIC_GAUGE, "infergate_generation_tokens_per_second",
                           "Generated tokens per second over the last 5 s.", model, NULL, 0);
    st->budget = family(st, METRIC_GAUGE, "infergate_budget_bytes",
                        "Memory budget and its estimated use: ram, ram_used, vram, vram_used.",
                        resource, NULL, 0);
    st->store_lag = family(st, METRIC_GAUGE, "infergate_store_writer_lag_seconds",
                           "Age of the oldest write waiting for the SQLite writer.", NULL, NULL, 0);
    st->connections = family(st, METRIC_GAUGE, "infergate_open_connections",
                             "Client connections open.", NULL, NULL, 0);
    st->uptime = family(st, METRIC_GAUGE, "infergate_uptime_seconds",
                        "Seconds since the gateway started.", NULL, NULL, 0);
    st->info = family(st, METRIC_GAUGE, "infergate_build_info", "The running version.", version,
                      NULL, 0);
    return st;
}

void gw_stats_free(struct gw_stats *st)
{
    if (st == NULL)
        return;
    for (size_t b = 0; b < MODEL_BUCKETS; b++) {
        struct model_stats *ms = st->by_id[b], *next;
        for (; ms != NULL; ms = next) {
            next = ms->next;
            free(ms->id);
            free(ms);
        }
    }
    metrics_free(st->reg);
    free(st);
}

void gw_stats_tokens(struct gw_app *app, const char *model, uint64_t n)
{
    struct model_stats *ms = model_stats(app->stats, model);
    int64_t now = now_s();

    if (n == 0)
        return;
    ring_add(&app->stats->all.tokens, now, n);
    if (ms != NULL)
        ring_add(&ms->tokens, now, n);
}

/* Adds a request's counts to MS (a model's or the totals). */
static void count_request(struct model_stats *ms, const struct gw_request_record *r, int64_t now)
{
    ms->requests++;
    ms->prompt_tokens += r->prompt_tokens;
    ms->completion_tokens += r->completion_tokens;
    ms->errors += r->status >= 400 ? 1 : 0;
    ring_add(&ms->reqs, now, 1);
}

/* Fills C (a model's cache, or a scratch one for "other") with the series of R. */
static void find_series(struct gw_stats *st, struct series_cache *c, const char *model,
                        const struct gw_request_record *r)
{
    bool has_tokens = r->prompt_tokens > 0 || r->completion_tokens > 0;
    char status[16];

    if (c->duration == NULL) {
        c->duration = metric_series(st->duration, &model);
        c->ttft = metric_series(st->ttft, &model);
        c->queue_wait = metric_series(st->queue_wait, &model);
    }
    if (c->requests == NULL || c->last_status != r->status || strcmp(c->last_key, r->key) != 0) {
        snprintf(status, sizeof(status), "%d", r->status);
        c->requests = metric_series(st->requests, (const char *[]){model, status, r->key});
        c->last_status = r->status;
        snprintf(c->last_key, sizeof(c->last_key), "%s", r->key);
    }
    if (has_tokens && (c->prompt_tokens == NULL || strcmp(c->tokens_key, r->key) != 0)) {
        c->prompt_tokens = metric_series(st->prompt_tokens, (const char *[]){model, r->key});
        c->completion_tokens =
            metric_series(st->completion_tokens, (const char *[]){model, r->key});
        snprintf(c->tokens_key, sizeof(c->tokens_key), "%s", r->key);
    }
}

void gw_stats_request(struct gw_app *app, const struct gw_request_record *r)
{
    struct gw_stats *st = app->stats;
    const char *model = r->model != NULL ? r->model : "other";
    struct model_stats *ms = model_stats(st, r->model);
    struct series_cache scratch = {0};
    struct series_cache *c = ms != NULL ? &ms->series : &scratch;
    int64_t now = now_s();

    /* A key name longer than the cache holds is looked up each time (never mismatched). */
    if (strlen(r->key) >= sizeof(c->last_key))
        c = &scratch;
    find_series(st, c, model, r);
    metric_add(c->requests, 1);
    metric_observe(c->duration, (double)r->duration_ms / 1000.0);
    if (r->ttft_ms >= 0)
        metric_observe(c->ttft, (double)r->ttft_ms / 1000.0);
    if (r->queue_ms >= 0)
        metric_observe(c->queue_wait, (double)r->queue_ms / 1000.0);
    if (r->prompt_tokens > 0 || r->completion_tokens > 0) {
        metric_add(c->prompt_tokens, (double)r->prompt_tokens);
        metric_add(c->completion_tokens, (double)r->completion_tokens);
    }
    if (r->upstream_error != NULL)
        metric_add(metric_series(st->upstream_errors, (const char *[]){model, r->upstream_error}),
                   1);
    count_request(&st->all, r, now);
    if (ms != NULL)
        count_request(ms, r, now);
    /* Tokens not yet counted while streaming (all of a whole response) go in now. */
    if (r->completion_tokens > r->streamed_tokens)
        gw_stats_tokens(app, r->model, r->completion_tokens - r->streamed_tokens);
    gw_reqlog_add(app->reqlog, r);
    gw_events_request(app->events, r);
}

void gw_stats_model_event(struct gw_app *app, const char *model, const char *state,
                          const char *event, const char *detail, uint64_t elapsed_ms)
{
    struct gw_stats *st = app->stats;
    int64_t ts_ms = ig_unix_ms();

    metric_add(metric_series(st->model_events, (const char *[]){model, event}), 1);
    if (strcmp(event, "ready") == 0 && elapsed_ms > 0) /* 0: a model with no process */
        metric_observe(metric_series(st->load_duration, &model), (double)elapsed_ms / 1000.0);
    gw_reqlog_event(app->reqlog, ts_ms, model, event, detail);
    gw_events_model(app->events, ts_ms, model, state, event, detail);
}

/* Sets the counter fields of MS (NULL: zeros) into OBJ. */
static void set_counts(json_t *obj, const struct model_stats *ms, int64_t now)
{
    static const struct model_stats none;

    if (ms == NULL)
        ms = &none;
    json_object_set_new(obj, "requests_total", json_integer((json_int_t)ms->requests));
    json_object_set_new(obj, "errors_total", json_integer((json_int_t)ms->errors));
    json_object_set_new(obj, "prompt_tokens_total", json_integer((json_int_t)ms->prompt_tokens));
    json_object_set_new(obj, "completion_tokens_total",
                        json_integer((json_int_t)ms->completion_tokens));
    json_object_set_new(obj, "rps", json_real(ring_rate(&ms->reqs, now)));
    json_object_set_new(obj, "tok_per_s", json_real(ring_rate(&ms->tokens, now)));
}

void gw_stats_status_json(struct gw_app *app, const char *model, json_t *obj)
{
    int64_t now = now_s();

    if (model == NULL)
        set_counts(obj, &app->stats->all, now);
    else
        set_counts(obj, model_stats(app->stats, model), now);
}

/* Sets the gauges that describe the present: model states, queues, budget, store. */
static void refresh_gauges(struct gw_app *app)
{
    struct gw_stats *st = app->stats;
    static const enum sup_state states[] = {SUP_UNLOADED, SUP_STARTING, SUP_READY, SUP_STOPPING,
                                            SUP_FAILED};
    uint64_t ram_used, vram_used;
    int64_t now = now_s();

    metric_family_clear(st->model_state);
    metric_family_clear(st->in_flight);
    metric_family_clear(st->queue_depth);
    metric_family_clear(st->tok_per_s);
    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const char *id = app->cfg->models[i].id;
        struct sup_model_info info;
        struct model_stats *ms = model_stats(st, id);
        sup_model_info(sup_find(app->mgr, id), &info);
        for (size_t s = 0; s < N_OF(states); s++)
            metric_set(metric_series(st->model_state,
                                     (const char *[]){id, sup_state_name(states[s])}),
                       info.state == states[s] ? 1 : 0);
        metric_set(metric_series(st->in_flight, &id), info.in_flight);
        metric_set(metric_series(st->queue_depth, &id), (double)info.waiting);
        metric_set(metric_series(st->tok_per_s, &id), ms != NULL ? ring_rate(&ms->tokens, now) : 0);
    }
    sup_budget_in_use(app->mgr, &ram_used, &vram_used);
    metric_set(metric_series(st->budget, (const char *[]){"ram"}), (double)app->cfg->budget.ram_bytes);
    metric_set(metric_series(st->budget, (const char *[]){"ram_used"}), (double)ram_used);
    metric_set(metric_series(st->budget, (const char *[]){"vram"}),
               (double)app->cfg->budget.vram_bytes);
    metric_set(metric_series(st->budget, (const char *[]){"vram_used"}), (double)vram_used);
    metric_set(metric_series(st->store_lag, NULL),
               app->store != NULL ? (double)store_lag_ms(app->store) / 1000.0 : 0);
    metric_set(metric_series(st->connections, NULL),
               (double)http_server_connections(app->server));
    metric_set(metric_series(st->uptime, NULL), (double)(ig_now_ms() - app->started_ms) / 1000.0);
    metric_set(metric_series(st->info, (const char *[]){IG_VERSION}), 1);
}

void gw_metrics_handle(struct gw_app *app, struct http_request *req)
{
    struct evbuffer *out = evbuffer_new();

    if (out == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    gw_engine_metrics_touch(app);
    refresh_gauges(app);
    metrics_render(app->stats->reg, out);
    gw_engine_metrics_render(app, out);
    gw_remote_metrics(app, req, out); /* the workers' too, then answers */
}
