/*
 * The app on the bus (docs/DISTRIBUTED.md). A gateway joins: it dials workers through
 * tunnels and keeps the registry of workers from their heartbeats. A worker serves: every
 * tunnel opened to it becomes a client connection of its own HTTP server (no socket
 * listens), and once a second it publishes its heartbeat: models with their states,
 * capabilities and loads, requests in flight, capacity, tokens per second, memory budget
 * use and version.
 */
#include "bus.h"
#include "bus_tunnel.h"
#include "cfg.h"
#include "gw_internal.h"
#include "gw_workers.h"
#include "http_server.h"
#include "ig_log.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000

/* Writes a bus id made from NAME into OUT (characters outside [A-Za-z0-9_-] become '-'). */
static void sanitize_id(const char *name, char *out, size_t size)
{
    size_t n = 0;

    for (; name[n] != '\0' && n + 1 < size && n < BUS_ID_MAX; n++) {
        char c = name[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        out[n] = ok ? c : '-';
    }
    out[n] = '\0';
}

static void on_bus_state(struct bus *bus, bool is_up, void *arg);

/* Opens APP's bus under connection name NAME; returns 0 or -1 with *CAUSE. */
static int open_bus(struct gw_app *app, const char *name, char **cause)
{
    if (app->cfg->nats.urls == NULL) {
        *cause = strdup("no nats url configured (nats: in the config, or --nats)");
        return -1;
    }
    app->bus = bus_open(app->base, &app->cfg->nats, name, cause);
    return app->bus != NULL ? 0 : -1;
}

int gw_bus_join(struct gw_app *app, char **cause)
{
    char host[128] = "gateway", id[BUS_ID_MAX + 1], name[BUS_ID_MAX - 12];
    unsigned long long salt = app->request_id_salt ^ ig_now_us();

    if (app->cfg->nats.name != NULL)
        snprintf(host, sizeof(host), "%s", app->cfg->nats.name);
    else
        (void)gethostname(host, sizeof(host) - 1);
    sanitize_id(host, name, sizeof(name));
    snprintf(id, sizeof(id), "%.50s-%012llx", name, salt & 0xffffffffffffULL);
    if (open_bus(app, id, cause) != 0)
        return -1;
    app->tunnels = bus_tunnels_new(app->bus, app->base, id, cause);
    if (app->tunnels == NULL)
        return -1;
    if (bus_tunnels_set_stall(app->tunnels, (unsigned)app->cfg->nats.stall_timeout_s * 1000u) !=
        0) {
        *cause = strdup("out of memory");
        return -1;
    }
    bus_set_state_cb(app->bus, on_bus_state, app);
    app->workers = gw_workers_new(app);
    if (app->workers == NULL) {
        *cause = strdup("cannot subscribe to worker heartbeats");
        return -1;
    }
    ig_info("nats: gateway %s routes to workers (strategy %s)", id,
            app->cfg->nats.strategy != NULL ? app->cfg->nats.strategy : "least-loaded");
    return 0;
}

/* Worker: a tunnel becomes a client connection of the HTTP server. */
static int accept_tunnel(void *stream, const struct http_stream_ops *ops, const char *peer,
                         const struct http_stream_sink **sink, void **end, void *arg)
{
    struct gw_app *app = arg;
    return app->server != NULL && !app->is_stopping
               ? http_server_adopt(app->server, stream, ops, peer, sink, end)
               : -1;
}

/* Worker: the heartbeat document (caller owns). */
static json_t *heartbeat_json(struct gw_app *app)
{
    json_t *models = json_array(), *all = json_object(), *doc;
    uint64_t ram = 0, vram = 0;
    size_t active = bus_tunnels_active(app->tunnels);

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model *m = sup_find(app->mgr, c->id);
        struct sup_model_info info;

        if (m == NULL || c->unlisted)
            continue;
        sup_model_info(m, &info);
        json_array_append_new(models, json_pack("{s:s, s:s, s:i, s:I, s:i}", "id", c->id,
                                                "state", sup_state_name(info.state), "caps",
                                                (int)c->caps, "load",
                                                (json_int_t)info.in_flight + (json_int_t)info.waiting,
                                                "limit", c->concurrency_limit));
    }
    sup_budget_in_use(app->mgr, &ram, &vram);
    gw_stats_status_json(app, NULL, all);
    doc = json_pack("{s:s, s:s, s:i, s:I, s:I, s:b, s:f, s:o, s:{s:I, s:I, s:I, s:I}}", "id",
                    app->bus_id, "version", IG_VERSION, "interval_ms", HEARTBEAT_MS, "capacity",
                    (json_int_t)app->bus_capacity, "in_flight", (json_int_t)active, "busy",
                    active >= app->bus_capacity,
                    "tok_s", json_number_value(json_object_get(all, "tok_per_s")), "models",
                    models, "budget", "ram_used", (json_int_t)ram, "ram_total",
                    (json_int_t)app->cfg->budget.ram_bytes, "vram_used", (json_int_t)vram,
                    "vram_total", (json_int_t)app->cfg->budget.vram_bytes);
    json_decref(all);
    json_object_set_new(doc, "resend_bytes",
                        json_integer((json_int_t)bus_tunnels_kept_bytes(app->tunnels)));
    return doc;
}

/* Worker: publishes the heartbeat. */
static void on_heartbeat_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    json_t *doc;
    char *text, subject[128];
    (void)fd;
    (void)what;

    if (!bus_is_up(app->bus) || app->is_stopping)
        return;
    doc = heartbeat_json(app);
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    snprintf(subject, sizeof(subject), "infergate.v1.workers.%s.hb", app->bus_id);
    if (text != NULL && bus_publish(app->bus, subject, NULL, NULL, 0, text, strlen(text)) != 0)
        ig_debug("nats: heartbeat not sent");
    free(text);
    json_decref(doc);
}

/* The connection came back: the tunnels recover what was in flight; a worker beats at
 * once so that gateways see it again. */
static void on_bus_state(struct bus *bus, bool is_up, void *arg)
{
    struct gw_app *app = arg;
    (void)bus;

    if (!is_up)
        return;
    if (app->tunnels != NULL)
        bus_tunnels_reconnected(app->tunnels);
    if (app->heartbeat != NULL)
        on_heartbeat_timer(-1, 0, arg);
}

int gw_bus_serve(struct gw_app *app, const char *name, size_t capacity, char **cause)
{
    struct timeval tv = {HEARTBEAT_MS / 1000, (HEARTBEAT_MS % 1000) * 1000};
    char host[128] = "worker";

    if (name != NULL)
        snprintf(host, sizeof(host), "%s", name);
    else if (app->cfg->nats.name != NULL)
        snprintf(host, sizeof(host), "%s", app->cfg->nats.name);
    else
        (void)gethostname(host, sizeof(host) - 1);
    sanitize_id(host, app->bus_id, sizeof(app->bus_id));
    if (name != NULL && strcmp(app->bus_id, name) != 0) {
        if (asprintf(cause, "--name '%s': only A-Z a-z 0-9 _ - (at most %d)", name,
                     BUS_ID_MAX) < 0)
            *cause = NULL;
        return -1;
    }
    app->bus_capacity = capacity;
    if (open_bus(app, app->bus_id, cause) != 0)
        return -1;
    app->tunnels = bus_tunnels_new(app->bus, app->base, app->bus_id, cause);
    if (app->tunnels == NULL)
        return -1;
    if (bus_tunnels_serve(app->tunnels, capacity, accept_tunnel, app) != 0) {
        *cause = strdup("cannot subscribe to the worker's subjects");
        return -1;
    }
    app->heartbeat = event_new(app->base, -1, EV_PERSIST, on_heartbeat_timer, app);
    if (app->heartbeat == NULL) {
        *cause = strdup("out of memory");
        return -1;
    }
    evtimer_add(app->heartbeat, &tv);
    bus_set_state_cb(app->bus, on_bus_state, app);
    on_heartbeat_timer(-1, 0, app);
    ig_info("nats: worker %s serving its models over the bus (capacity %zu)", app->bus_id,
            capacity);
    return 0;
}

void gw_bus_close(struct gw_app *app)
{
    if (app->heartbeat != NULL)
        event_free(app->heartbeat);
    app->heartbeat = NULL;
    gw_workers_free(app->workers);
    app->workers = NULL;
    bus_tunnels_free(app->tunnels);
    app->tunnels = NULL;
    bus_free(app->bus);
    app->bus = NULL;
}
