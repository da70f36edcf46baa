/*
 * GET /events: live updates as server-sent events, for the dashboard and tools.
 *
 *   event: model    data: {"ts", "model", "state", "event", "detail"}   a state change
 *   event: request  data: one request-log row (as in /admin/requests)   a request ended
 *   event: status   data: the /status document, every second            also a heartbeat
 *
 * `?types=model,request` picks some. A listener whose socket is full misses events rather
 * than holding memory; when it drains it gets `event: dropped` with the count. Listeners
 * end at shutdown.
 */
#include "gw_internal.h"
#include "http_server.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define STATUS_EVERY_MS 1000
#define MAX_LISTENERS 256

enum { WANT_MODEL = 1, WANT_REQUEST = 2, WANT_STATUS = 4 };

struct listener {
    struct gw_events *hub;
    struct http_request *req;
    unsigned wants;
    bool is_paused;
    size_t dropped;
    LIST_ENTRY(listener) link;
};

struct gw_events {
    struct gw_app *app;
    LIST_HEAD(, listener) listeners;
    size_t n_listeners;
    struct event *tick;
};

/* Unlinks and frees L. */
static void listener_free(struct listener *l)
{
    LIST_REMOVE(l, link);
    l->hub->n_listeners--;
    if (l->hub->n_listeners == 0)
        evtimer_del(l->hub->tick);
    free(l);
}

/* Writes TEXT (LEN bytes) to L unless its socket is full. */
static void listener_write(struct listener *l, const char *text, size_t len)
{
    if (l->is_paused) {
        l->dropped++;
        return;
    }
    if (http_stream_write(l->req, text, len) == 1)
        l->is_paused = true;
}

/* Formats event TYPE with DOC (reference taken) as SSE text (caller frees); sets *LEN. */
static char *format_event(const char *type, json_t *doc, size_t *len)
{
    char *json = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    char *text = NULL;
    int n;

    json_decref(doc);
    if (json == NULL)
        return NULL;
    n = asprintf(&text, "event: %s\ndata: %s\n\n", type, json);
    free(json);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return text;
}

/* Sends event TYPE with DOC (reference taken) to L alone. */
static void send_event(struct listener *l, const char *type, json_t *doc)
{
    size_t len;
    char *text = format_event(type, doc, &len);

    if (text != NULL)
        listener_write(l, text, len);
    free(text);
}

/* Sends event TYPE with DOC (reference taken) to every listener wanting WANT. */
static void broadcast(struct gw_events *hub, unsigned want, const char *type, json_t *doc)
{
    size_t len;
    char *text = format_event(type, doc, &len);
    struct listener *l;

    if (text == NULL)
        return;
    LIST_FOREACH(l, &hub->listeners, link)
        if ((l->wants & want) != 0)
            listener_write(l, text, len);
    free(text);
}

/* Returns whether anyone listens for WANT. */
static bool is_wanted(const struct gw_events *hub, unsigned want)
{
    const struct listener *l;

    if (hub == NULL)
        return false;
    LIST_FOREACH(l, &hub->listeners, link)
        if ((l->wants & want) != 0)
            return true;
    return false;
}

void gw_events_model(struct gw_events *hub, int64_t ts_ms, const char *model, const char *state,
                     const char *event, const char *detail)
{
    if (!is_wanted(hub, WANT_MODEL))
        return;
    json_t *doc = json_pack("{s:I, s:s, s:s, s:s}", "ts", (json_int_t)ts_ms, "model", model,
                            "state", state, "event", event);
    if (doc != NULL && detail != NULL)
        json_object_set_new(doc, "detail", json_string(detail));
    broadcast(hub, WANT_MODEL, "model", doc);
}

void gw_events_request(struct gw_events *hub, const struct gw_request_record *r)
{
    if (!is_wanted(hub, WANT_REQUEST))
        return;
    broadcast(hub, WANT_REQUEST, "request", gw_request_record_json(r));
}

/* Every second while someone listens: the status document. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_events *hub = arg;
    struct timeval tv = {STATUS_EVERY_MS / 1000, 0};
    (void)fd;
    (void)what;

    if (is_wanted(hub, WANT_STATUS))
        broadcast(hub, WANT_STATUS, "status", gw_status_json(hub->app));
    if (hub->n_listeners > 0)
        evtimer_add(hub->tick, &tv);
}

struct gw_events *gw_events_new(struct gw_app *app)
{
    struct gw_events *hub = calloc(1, sizeof(*hub));

    if (hub == NULL)
        return NULL;
    hub->app = app;
    LIST_INIT(&hub->listeners);
    hub->tick = evtimer_new(app->base, tick_cb, hub);
    if (hub->tick == NULL) {
        free(hub);
        return NULL;
    }
    return hub;
}

void gw_events_close(struct gw_events *hub)
{
    if (hub == NULL)
        return;
    while (!LIST_EMPTY(&hub->listeners)) {
        struct listener *l = LIST_FIRST(&hub->listeners);
        struct http_request *req = l->req;
        http_request_set_cancel_cb(req, NULL, NULL);
        http_request_set_drain_cb(req, NULL, NULL);
        listener_free(l);
        http_stream_end(req);
    }
}

void gw_events_free(struct gw_events *hub)
{
    if (hub == NULL)
        return;
    gw_events_close(hub);
    event_free(hub->tick);
    free(hub);
}

static void on_gone(struct http_request *req, void *arg)
{
    (void)req;
    listener_free(arg);
}

/* The socket drained: say how much was missed. */
static void on_drained(struct http_request *req, void *arg)
{
    struct listener *l = arg;
    char text[96];
    (void)req;

    l->is_paused = false;
    if (l->dropped > 0) {
        int n = snprintf(text, sizeof(text), "event: dropped\ndata: {\"events\":%zu}\n\n",
                         l->dropped);
        l->dropped = 0;
        listener_write(l, text, (size_t)n);
    }
}

/* Parses ?types=a,b into a WANT_ mask; 0 when a name is unknown or the value malformed. */
static unsigned parse_types(const char *query)
{
    char buf[128];
    unsigned wants = 0;
    int rc = ig_query_param(query, "types", buf, sizeof(buf));

    if (rc == 0)
        return WANT_MODEL | WANT_REQUEST | WANT_STATUS;
    if (rc < 0)
        return 0;
    for (char *t = buf, *comma; t != NULL && *t != '\0'; t = comma != NULL ? comma + 1 : NULL) {
        comma = strchr(t, ',');
        if (comma != NULL)
            *comma = '\0';
        unsigned w = strcmp(t, "model") == 0     ? WANT_MODEL
                     : strcmp(t, "request") == 0 ? WANT_REQUEST
                     : strcmp(t, "status") == 0  ? WANT_STATUS
                                                 : 0;
        if (w == 0)
            return 0;
        wants |= w;
    }
    return wants;
}

void gw_events_handle(struct gw_app *app, struct http_request *req)
{
    struct gw_events *hub = app->events;
    unsigned wants = parse_types(http_request_query(req));
    struct timeval every = {STATUS_EVERY_MS / 1000, 0};
    struct listener *l;

    if (wants == 0) {
        gw_reply_error(req, 400, "types: a comma-separated list of model, request, status",
                       "invalid_request_error", 0);
        return;
    }
    if (app->is_stopping || hub->n_listeners >= MAX_LISTENERS) {
        gw_reply_error(req, 503,
                       app->is_stopping ? "the server is shutting down" : "too many listeners",
                       "overloaded", 1);
        return;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    l->hub = hub;
    l->req = req;
    l->wants = wants;
    LIST_INSERT_HEAD(&hub->listeners, l, link);
    hub->n_listeners++;
    http_request_set_cancel_cb(req, on_gone, l);
    http_request_set_drain_cb(req, on_drained, l);
    http_response_add_header(req, "X-Accel-Buffering", "no"); /* http_stream_start adds no-cache */
    http_stream_start(req, 200, "text/event-stream");
    listener_write(l, ": infergate events\n\n", 20);
    if ((wants & WANT_STATUS) != 0)
        send_event(l, "status", gw_status_json(app)); /* the present state at once */
    if (!evtimer_pending(hub->tick, NULL))
        evtimer_add(hub->tick, &every);
}
