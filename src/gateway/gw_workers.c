/* The gateway's registry of workers (gw_workers.h). */
#include "gw_workers.h"

#include "bus.h"
#include "bus_tunnel.h"
#include "cfg.h"
#include "gw_internal.h"
#include "ig_json.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 1024
#define MAX_REMOTE_MODELS 4096
#define MAX_MODELS_PER_WORKER 256
#define SILENT_MS 3000  /* three missed heartbeats */
#define SWEEP_MS 250
#define TRIP_FAILURES 3
#define TRIP_MS 5000
#define TTFT_WEIGHT 0.2 /* of the newest sample in the moving average */

struct worker_model {
    size_t remote;        /* index into the registry's models */
    bool is_ready;
    struct gw_load load;  /* its requests in flight + queued there (gw_route.h) */
    int limit;            /* its concurrencyLimit there; 0: none */
    bool is_full;         /* it refused one of ours as busy since the last heartbeat */
    char state[16];       /* as the worker reports it: ready, starting, unloaded... */
};

struct worker {
    char id[BUS_ID_MAX + 1];
    char version[32];
    uint64_t last_seen_ms, joined_ms;
    int capacity;
    struct gw_load load;  /* requests in flight there (the tunnels it serves) */
    bool is_busy;
    double tok_s;
    json_int_t resend_bytes; /* its copies of answers kept for resends, last reported */
    struct worker_model *models;
    size_t n_models;
    double ttft_ms;       /* moving average of ours; 0 until one */
    int failures;         /* in a row */
    uint64_t tripped_until_ms;
    uint64_t affinity_id;
};

struct remote_model {
    struct cfg_model *mc;
    size_t n_workers; /* live workers serving it, recounted per heartbeat */
    struct gw_wait *head, *tail; /* requests waiting for room, oldest first */
    size_t n_waiting;
    bool has_news;    /* room may have come: look at the queue on the next turn */
};

struct gw_wait {
    struct gw_workers *ws;
    size_t model;     /* index of the remote model */
    struct gw_wait *prev, *next;
    struct event *timer;
    gw_wait_fn cb;
    void *arg;
};

struct gw_workers {
    struct gw_app *app;
    struct event *sweep;
    struct worker **w;
    size_t n;
    struct remote_model *models;
    size_t n_models;
    struct event *wake; /* looks at the queues with news, on a loop turn of its own */
};

static void note_room(struct gw_workers *ws, size_t model);
static void wait_free(struct gw_wait *wait);
static void on_wake(evutil_socket_t fd, short what, void *arg);

/* Returns the worker ID, or NULL. */
static struct worker *find_worker(struct gw_workers *ws, const char *id)
{
    for (size_t i = 0; i < ws->n; i++)
        if (strcmp(ws->w[i]->id, id) == 0)
            return ws->w[i];
    return NULL;
}

/* Returns the index of remote model NAME, adding it (with CAPS) if new; -1 at the cap. */
static long remote_index(struct gw_workers *ws, const char *name, unsigned caps)
{
    struct remote_model *grown;
    struct cfg_model *mc;

    for (size_t i = 0; i < ws->n_models; i++) {
        if (strcmp(ws->models[i].mc->id, name) == 0) {
            ws->models[i].mc->caps = caps;
            return (long)i;
        }
    }
    if (ws->n_models >= MAX_REMOTE_MODELS)
        return -1;
    grown = realloc(ws->models, (ws->n_models + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    ws->models = grown;
    mc = cfg_model_new_remote(name, caps);
    if (mc == NULL)
        return -1;
    ws->models[ws->n_models] = (struct remote_model){.mc = mc};
    return (long)ws->n_models++;
}

/* Returns the entry of W for remote model INDEX, or NULL. */
static struct worker_model *model_on(struct worker *w, size_t index)
{
    for (size_t j = 0; j < w->n_models; j++)
        if (w->models[j].remote == index)
            return &w->models[j];
    return NULL;
}

/* Takes the models of heartbeat DOC into W, keeping our count of requests on each. */
static void take_models(struct gw_workers *ws, struct worker *w, json_t *models)
{
    size_t i, n_taken = 0, n = json_is_array(models) ? json_array_size(models) : 0;
    struct worker_model *list;

    if (n > MAX_MODELS_PER_WORKER)
        n = MAX_MODELS_PER_WORKER;
    list = calloc(n > 0 ? n : 1, sizeof(*list));
    if (list == NULL)
        return;
    for (i = 0; i < n && list != NULL; i++) {
        json_t *m = json_array_get(models, i);
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *state = json_string_value(json_object_get(m, "state"));
        long index;

        if (id == NULL || id[0] == '\0' || strlen(id) > 256)
            continue;
        index = remote_index(ws, id, (unsigned)json_integer_value(json_object_get(m, "caps")));
        if (index < 0)
            continue;
        list[n_taken].remote = (size_t)index;
        list[n_taken].is_ready = state != NULL && strcmp(state, "ready") == 0;
        snprintf(list[n_taken].state, sizeof(list[n_taken].state), "%s",
                 state != NULL ? state : "unknown");
        gw_load_report(&list[n_taken].load, (int)json_integer_value(json_object_get(m, "load")));
        list[n_taken].limit = (int)json_integer_value(json_object_get(m, "limit"));
        n_taken++;
    }
    for (i = 0; i < n_taken; i++) {
        const struct worker_model *old = model_on(w, list[i].remote);
        list[i].load.ours = old != NULL ? old->load.ours : 0;
    }
    w->n_models = n_taken;
    free(w->models);
    w->models = list;
}

/* Recounts how many live workers serve each remote model. */
static void recount(struct gw_workers *ws)
{
    for (size_t i = 0; i < ws->n_models; i++)
        ws->models[i].n_workers = 0;
    for (size_t i = 0; i < ws->n; i++)
        for (size_t j = 0; j < ws->w[i]->n_models; j++)
            ws->models[ws->w[i]->models[j].remote].n_workers++;
}

/* A heartbeat on infergate.v1.workers.<id>.hb. */
static void on_heartbeat(struct bus *bus, const struct bus_msg *msg, void *arg)
{
    struct gw_workers *ws = arg;
    const char *subject = bus_msg_subject(msg) + strlen("infergate.v1.workers.");
    char id[BUS_ID_MAX + 1];
    size_t len, id_len = strcspn(subject, ".");
    const char *data = bus_msg_data(msg, &len);
    json_t *doc;
    struct worker *w;
    (void)bus;

    if (id_len == 0 || id_len > BUS_ID_MAX || strcmp(subject + id_len, ".hb") != 0)
        return;
    memcpy(id, subject, id_len);
    id[id_len] = '\0';
    if (!bus_id_valid(id))
        return;
    doc = ig_json_parse(data, len, 8, NULL, 0);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return;
    }
    w = find_worker(ws, id);
    if (w == NULL && ws->n < MAX_WORKERS) {
        struct worker **grown = realloc(ws->w, (ws->n + 1) * sizeof(*grown));
        if (grown != NULL) {
            ws->w = grown;
            w = calloc(1, sizeof(*w));
        }
        if (w != NULL) {
            snprintf(w->id, sizeof(w->id), "%s", id);
            w->joined_ms = ig_now_ms();
            w->affinity_id = ig_fnv1a(id, strlen(id), IG_FNV1A_INIT);
            ws->w[ws->n++] = w;
            ig_info("worker %s joined (%s)", id, json_string_value(json_object_get(doc, "version"))
                                                     ? json_string_value(json_object_get(doc, "version"))
                                                     : "?");
        }
    }
    if (w != NULL) {
        const char *version = json_string_value(json_object_get(doc, "version"));
        w->last_seen_ms = ig_now_ms();
        snprintf(w->version, sizeof(w->version), "%s", version != NULL ? version : "");
        w->capacity = (int)json_integer_value(json_object_get(doc, "capacity"));
        gw_load_report(&w->load, (int)json_integer_value(json_object_get(doc, "in_flight")));
        w->is_busy = json_is_true(json_object_get(doc, "busy"));
        w->tok_s = json_number_value(json_object_get(doc, "tok_s"));
        w->resend_bytes = json_integer_value(json_object_get(doc, "resend_bytes"));
        take_models(ws, w, json_object_get(doc, "models"));
        recount(ws);
        for (size_t j = 0; j < w->n_models; j++)
            note_room(ws, w->models[j].remote);
    }
    json_decref(doc);
}

/* Drops worker I (silent): its tunnels end, its models leave routing. */
static void drop_worker(struct gw_workers *ws, size_t i)
{
    struct worker *w = ws->w[i];

    ig_warn("worker %s lost: no heartbeat for %d s; %d request(s) of ours there end", w->id,
            SILENT_MS / 1000, w->load.ours);
    bus_tunnels_drop_worker(ws->app->tunnels, w->id);
    free(w->models);
    free(w);
    ws->w[i] = ws->w[--ws->n];
    recount(ws);
}

/* Every SWEEP_MS: drop the silent workers. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct gw_workers *ws = arg;
    uint64_t now = ig_now_ms();
    (void)fd;
    (void)what;

    for (size_t i = ws->n; i-- > 0;)
        if (now - ws->w[i]->last_seen_ms > SILENT_MS)
            drop_worker(ws, i);
}

struct gw_workers *gw_workers_new(struct gw_app *app)
{
    struct gw_workers *ws = calloc(1, sizeof(*ws));
    struct timeval tv = {0, SWEEP_MS * 1000};

    if (ws == NULL)
        return NULL;
    ws->app = app;
    ws->sweep = event_new(app->base, -1, EV_PERSIST, on_sweep, ws);
    ws->wake = event_new(app->base, -1, 0, on_wake, ws);
    if (ws->sweep == NULL || ws->wake == NULL ||
        bus_subscribe(app->bus, "infergate.v1.workers.*.hb", on_heartbeat, ws) != 0) {
        gw_workers_free(ws);
        return NULL;
    }
    evtimer_add(ws->sweep, &tv);
    return ws;
}

void gw_workers_free(struct gw_workers *ws)
{
    if (ws == NULL)
        return;
    if (ws->sweep != NULL)
        event_free(ws->sweep);
    if (ws->wake != NULL)
        event_free(ws->wake);
    for (size_t i = 0; i < ws->n_models; i++) /* their requests are gone with the server */
        while (ws->models[i].head != NULL)
            wait_free(ws->models[i].head);
    for (size_t i = 0; i < ws->n; i++) {
        free(ws->w[i]->models);
        free(ws->w[i]);
    }
    free(ws->w);
    for (size_t i = 0; i < ws->n_models; i++)
        cfg_model_free_remote(ws->models[i].mc);
    free(ws->models);
    free(ws);
}

const struct cfg_model *gw_workers_model(struct gw_workers *ws, const char *name)
{
    if (ws == NULL)
        return NULL;
    for (size_t i = 0; i < ws->n_models; i++)
        if (ws->models[i].n_workers > 0 && strcmp(ws->models[i].mc->id, name) == 0)
            return ws->models[i].mc;
    return NULL;
}

/* Returns whether model M of worker W can take no more requests now. */
static bool is_full(const struct worker *w, const struct worker_model *m)
{
    /* The heartbeat's "busy" was true when it was sent; with the capacity known, the load
     * estimate (that report corrected by our requests since) says it better: a request of
     * ours that ended since frees a place at once, not at the next heartbeat. */
    return (w->is_busy && w->capacity == 0) || m->is_full ||
           (w->capacity > 0 && gw_load_estimate(&w->load) >= w->capacity) ||
           (m->limit > 0 && gw_load_estimate(&m->load) >= m->limit);
}

bool gw_workers_has_seen(struct gw_workers *ws, const char *name)
{
    for (size_t i = 0; ws != NULL && i < ws->n_models; i++)
        if (strcmp(ws->models[i].mc->id, name) == 0)
            return true;
    return false;
}

size_t gw_workers_candidates(struct gw_workers *ws, const char *name, const char **ids,
                             struct gw_route_cand *out, size_t max)
{
    uint64_t now = ig_now_ms();
    size_t n = 0;

    for (size_t i = 0; ws != NULL && i < ws->n && n < max; i++) {
        struct worker *w = ws->w[i];
        for (size_t j = 0; j < w->n_models; j++) {
            const struct worker_model *m = &w->models[j];
            if (strcmp(ws->models[m->remote].mc->id, name) != 0)
                continue;
            out[n] = (struct gw_route_cand){
                .is_ready = m->is_ready,
                .is_full = is_full(w, m),
                .is_tripped = w->tripped_until_ms > now,
                .load = gw_load_estimate(&m->load),
                .ttft_ms = w->ttft_ms,
                .affinity_id = w->affinity_id,
            };
            ids[n++] = w->id;
            break;
        }
    }
    return n;
}

/* Returns the entry of model NAME on W, or NULL. */
static struct worker_model *model_named(struct gw_workers *ws, struct worker *w,
                                        const char *name)
{
    for (size_t j = 0; w != NULL && j < w->n_models; j++)
        if (strcmp(ws->models[w->models[j].remote].mc->id, name) == 0)
            return &w->models[j];
    return NULL;
}

void gw_workers_begin(struct gw_workers *ws, const char *id, const char *model)
{
    struct worker *w = find_worker(ws, id);
    struct worker_model *m = model_named(ws, w, model);

    if (w != NULL)
        gw_load_add(&w->load, 1);
    if (m != NULL)
        gw_load_add(&m->load, 1);
}

void gw_workers_end(struct gw_workers *ws, const char *id, const char *model,
                    enum gw_worker_outcome outcome, int64_t ttft_ms)
{
    struct worker *w = find_worker(ws, id);
    struct worker_model *m = model_named(ws, w, model);

    if (w == NULL)
        return;
    gw_load_add(&w->load, -1);
    if (m != NULL) {
        gw_load_add(&m->load, -1);
        m->is_full = outcome == GW_WORKER_BUSY; /* else one of its places is free again */
    }
    for (size_t j = 0; outcome != GW_WORKER_BUSY && j < w->n_models; j++)
        note_room(ws, w->models[j].remote); /* the worker has a place more for each */
    if (outcome == GW_WORKER_BUSY || outcome == GW_WORKER_LEFT)
        return;
    if (outcome == GW_WORKER_FAILED) {
        if (++w->failures >= TRIP_FAILURES) {
            w->tripped_until_ms = ig_now_ms() + TRIP_MS;
            ig_warn("worker %s: %d failures in a row; out of routing for %d s", w->id,
                    w->failures, TRIP_MS / 1000);
        }
        return;
    }
    w->failures = 0;
    w->tripped_until_ms = 0;
    if (ttft_ms >= 0)
        w->ttft_ms = w->ttft_ms > 0 ? (1 - TTFT_WEIGHT) * w->ttft_ms + TTFT_WEIGHT * (double)ttft_ms
                                    : (double)ttft_ms;
}

/* Returns whether some live worker serving remote model INDEX has room now. */
static bool has_room(struct gw_workers *ws, size_t index)
{
    uint64_t now = ig_now_ms();

    for (size_t i = 0; i < ws->n; i++) {
        const struct worker_model *m = model_on(ws->w[i], index);
        if (m != NULL && !is_full(ws->w[i], m) && ws->w[i]->tripped_until_ms <= now)
            return true;
    }
    return false;
}

/* Unlinks WAIT from its queue and frees it. */
static void wait_free(struct gw_wait *wait)
{
    struct remote_model *rm = &wait->ws->models[wait->model];

    if (wait->prev != NULL)
        wait->prev->next = wait->next;
    else
        rm->head = wait->next;
    if (wait->next != NULL)
        wait->next->prev = wait->prev;
    else
        rm->tail = wait->prev;
    rm->n_waiting--;
    event_free(wait->timer);
    free(wait);
}

/* Ends WAIT, telling its request HAS_ROOM. */
static void wait_end(struct gw_wait *wait, bool has_room)
{
    gw_wait_fn cb = wait->cb;
    void *arg = wait->arg;

    wait_free(wait);
    cb(arg, has_room);
}

/* Room may have come for remote model INDEX: its queue is looked at on the next loop turn
 * (not from inside the heartbeat or the ending request that brought the news). */
static void note_room(struct gw_workers *ws, size_t index)
{
    if (ws->models[index].head == NULL)
        return;
    ws->models[index].has_news = true;
    event_active(ws->wake, EV_TIMEOUT, 0);
}

/* Sends waiting requests on, oldest first, while their model has room. Each routed one
 * counts at once in its worker's load; one that finds no room after all waits again at the
 * tail, so a pass takes each request at most once. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct gw_workers *ws = arg;
    (void)fd;
    (void)what;

    for (size_t k = 0; k < ws->n_models; k++) {
        size_t n = ws->models[k].n_waiting;

        if (!ws->models[k].has_news)
            continue;
        ws->models[k].has_news = false;
        while (n-- > 0 && ws->models[k].head != NULL && has_room(ws, k))
            wait_end(ws->models[k].head, true);
    }
}

/* A waiting request's time is up. */
static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wait_end(arg, false);
}

struct gw_wait *gw_workers_wait(struct gw_workers *ws, const char *name, gw_wait_fn cb,
                                void *arg)
{
    const struct cfg_nats *nats = &ws->app->cfg->nats;
    struct timeval tv = {nats->queue_timeout_s, 0};
    struct gw_wait *wait;
    struct remote_model *rm = NULL;
    size_t k;

    for (k = 0; k < ws->n_models && rm == NULL; k++)
        if (strcmp(ws->models[k].mc->id, name) == 0)
            rm = &ws->models[k];
    if (rm == NULL || nats->queue_timeout_s <= 0 || rm->n_waiting >= (size_t)nats->queue_length)
        return NULL;
    wait = calloc(1, sizeof(*wait));
    if (wait == NULL)
        return NULL;
    wait->timer = evtimer_new(ws->app->base, on_wait_timeout, wait);
    if (wait->timer == NULL) {
        free(wait);
        return NULL;
    }
    *wait = (struct gw_wait){.ws = ws, .model = k - 1, .prev = rm->tail, .timer = wait->timer,
                             .cb = cb, .arg = arg};
    if (rm->tail != NULL)
        rm->tail->next = wait;
    else
        rm->head = wait;
    rm->tail = wait;
    rm->n_waiting++;
    evtimer_add(wait->timer, &tv);
    if (has_room(ws, k - 1)) /* room came between the choice and now */
        note_room(ws, k - 1);
    return wait;
}

void gw_workers_wait_cancel(struct gw_wait *wait)
{
    if (wait != NULL)
        wait_free(wait);
}

void gw_workers_list_models(struct gw_workers *ws, json_t *data, int64_t created)
{
    for (size_t i = 0; ws != NULL && i < ws->n_models; i++) {
        const struct remote_model *rm = &ws->models[i];
        json_t *workers;

        if (rm->n_workers == 0 || sup_find(ws->app->mgr, rm->mc->id) != NULL ||
            !auth_allows_model(&ws->app->caller, rm->mc->id))
            continue;
        workers = json_array();
        for (size_t k = 0; k < ws->n; k++)
            for (size_t j = 0; j < ws->w[k]->n_models; j++)
                if (ws->w[k]->models[j].remote == i)
                    json_array_append_new(workers, json_string(ws->w[k]->id));
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", rm->mc->id,
                                              "object", "model", "created", (json_int_t)created,
                                              "owned_by", "infergate-worker", "workers",
                                              workers));
    }
}

/* Returns the routing state of worker W: tripped, busy or ready. */
static const char *worker_state(const struct worker *w, uint64_t now)
{
    if (w->tripped_until_ms > now)
        return "tripped";
    return (w->is_busy && w->capacity == 0) ||
                   (w->capacity > 0 && gw_load_estimate(&w->load) >= w->capacity)
               ? "busy"
               : "ready";
}

void gw_workers_running(struct gw_workers *ws, json_t *list)
{
    uint64_t now = ig_now_ms();

    for (size_t i = 0; ws != NULL && i < ws->n; i++) {
        const struct worker *w = ws->w[i];
        for (size_t j = 0; j < w->n_models; j++) {
            const struct worker_model *m = &w->models[j];
            if (strcmp(m->state, "unloaded") == 0 || strcmp(m->state, "failed") == 0)
                continue;
            json_array_append_new(
                list, json_pack("{s:s, s:s, s:s, s:s, s:i}", "model",
                                ws->models[m->remote].mc->id, "state", m->state, "worker",
                                w->id, "worker_state", worker_state(w, now), "in_flight",
                                gw_load_estimate(&m->load)));
        }
    }
}

size_t gw_workers_ids(struct gw_workers *ws, char (*ids)[BUS_ID_MAX + 1], size_t max)
{
    size_t n = 0;

    for (; ws != NULL && n < ws->n && n < max; n++)
        snprintf(ids[n], sizeof(ids[n]), "%s", ws->w[n]->id);
    return n;
}

json_t *gw_workers_json(struct gw_workers *ws)
{
    json_t *list = json_array();
    uint64_t now = ig_now_ms();

    for (size_t i = 0; ws != NULL && i < ws->n; i++) {
        const struct worker *w = ws->w[i];
        json_t *models = json_array(), *row;

        for (size_t j = 0; j < w->n_models; j++)
            json_array_append_new(
                models, json_pack("{s:s, s:s, s:i, s:i, s:b}", "id",
                                  ws->models[w->models[j].remote].mc->id, "state",
                                  w->models[j].state, "load",
                                  gw_load_estimate(&w->models[j].load), "limit",
                                  w->models[j].limit, "full", is_full(w, &w->models[j])));
        row = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:b, s:b, s:f, s:f, s:o}", "id",
                        w->id, "version", w->version, "last_heartbeat_ms",
                        (json_int_t)(now - w->last_seen_ms), "uptime_ms",
                        (json_int_t)(now - w->joined_ms), "capacity", w->capacity, "in_flight",
                        gw_load_estimate(&w->load), "ours", w->load.ours, "busy", w->is_busy,
                        "tripped", w->tripped_until_ms > now, "tok_s", w->tok_s, "ttft_ms",
                        w->ttft_ms, "models", models);
        json_object_set_new(row, "state", json_string(worker_state(w, now)));
        json_object_set_new(row, "resend_bytes", json_integer(w->resend_bytes));
        json_array_append_new(list, row);
    }
    return list;
}
