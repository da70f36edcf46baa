/*
 * Logs over HTTP, as llama-swap serves them: GET /logs (the combined history as text) and
 * GET /logs/stream[/SOURCE] (history, unless ?no-history, then live output as chunked
 * text until the client goes away). SOURCE is "proxy" (the gateway's own log lines),
 * "upstream" (every model's process output) or a model id or alias (that model's output).
 *
 * Model output lines are prefixed "[model-id] " in the combined and upstream logs. A slow
 * log reader never holds memory: while its socket is full, output is dropped for it and a
 * "[N bytes dropped]" line says so when it drains.
 */
#include "cfg.h"
#include "gw_internal.h"
#include "gw_workers.h"
#include "http_server.h"
#include "ig_log.h"
#include "sup_manager.h"
#include "sup_ring.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#define HISTORY_BYTES (256u << 10)
#define HISTORY_LINES 4000
#define PREFIX_MAX 160
#define SSE_LINE_MAX (16u << 10)

enum log_source { SOURCE_ALL, SOURCE_PROXY, SOURCE_UPSTREAM, SOURCE_MODEL };

struct log_reader {
    struct gw_logs *logs;
    struct http_request *req;
    enum log_source source;
    char *model_id; /* SOURCE_MODEL only (by id: a reload may replace the model) */
    bool is_paused;
    bool is_sse;          /* Accept: text/event-stream: one "data:" event per line */
    struct evbuffer *line; /* SSE: the current line until its newline */
    size_t dropped;
    LIST_ENTRY(log_reader) link;
};

struct gw_logs {
    struct sup_manager *mgr; /* whose output hook this is */
    struct sup_ring *all;
    struct sup_ring *proxy;
    struct sup_ring *upstream;
    LIST_HEAD(, log_reader) readers;
};

/* Frees a reader (already unlinked). */
static void reader_free(struct log_reader *r)
{
    if (r->line != NULL)
        evbuffer_free(r->line);
    free(r->model_id);
    free(r);
}

/* Writes DATA to the reader's socket; notes when it is full. */
static void reader_write(struct log_reader *r, const char *data, size_t len)
{
    if (http_stream_write(r->req, data, len) == 1)
        r->is_paused = true;
}

/* SSE readers: sends every complete line gathered so far as one event (a line longer than
 * SSE_LINE_MAX is sent in pieces). */
static void reader_send_events(struct log_reader *r)
{
    struct evbuffer_ptr nl;

    for (;;) {
        size_t have = evbuffer_get_length(r->line), n;
        nl = evbuffer_search(r->line, "\n", 1, NULL);
        if (nl.pos < 0 && have < SSE_LINE_MAX)
            return;
        n = nl.pos >= 0 ? (size_t)nl.pos : have;
        char *text = malloc(n + 9);
        if (text == NULL)
            return;
        memcpy(text, "data: ", 6);
        evbuffer_remove(r->line, text + 6, n);
        if (nl.pos >= 0)
            evbuffer_drain(r->line, 1);
        memcpy(text + 6 + n, "\n\n", 2);
        reader_write(r, text, n + 8);
        free(text);
    }
}

/* Sends DATA to one reader, or counts it as dropped while the reader's socket is full. */
static void reader_send(struct log_reader *r, const char *data, size_t len)
{
    if (r->is_paused) {
        r->dropped += len;
        return;
    }
    if (!r->is_sse) {
        reader_write(r, data, len);
        return;
    }
    evbuffer_add(r->line, data, len);
    reader_send_events(r);
}

/* Sends DATA from SOURCE (MODEL for model output) to every reader that follows it. */
static void broadcast(struct gw_logs *logs, enum log_source source, struct sup_model *model,
                      const char *data, size_t len)
{
    struct log_reader *r;

    LIST_FOREACH(r, &logs->readers, link) {
        bool wants = r->source == SOURCE_ALL || r->source == source ||
                     (r->source == SOURCE_MODEL && model != NULL &&
                      strcmp(r->model_id, sup_model_cfg(model)->id) == 0);
        if (wants)
            reader_send(r, data, len);
    }
}

/* ig_log hook: the gateway's own lines. */
static void on_log_line(const char *line, size_t len, void *arg)
{
    struct gw_logs *logs = arg;

    sup_ring_append(logs->proxy, line, len);
    sup_ring_append(logs->all, line, len);
    broadcast(logs, SOURCE_PROXY, NULL, line, len);
}

/* Manager hook: output of a model's process, prefixed per line for the shared logs. */
static void on_model_output(struct sup_model *model, const char *data, size_t len, void *arg)
{
    struct gw_logs *logs = arg;
    char prefix[PREFIX_MAX];
    int plen = snprintf(prefix, sizeof(prefix), "[%s] ", sup_model_cfg(model)->id);
    struct log_reader *r;
    size_t start = 0;

    if (plen < 0 || (size_t)plen >= sizeof(prefix))
        plen = 0;
    LIST_FOREACH(r, &logs->readers, link)
        if (r->source == SOURCE_MODEL && strcmp(r->model_id, sup_model_cfg(model)->id) == 0)
            reader_send(r, data, len);
    while (start < len) {
        const char *nl = memchr(data + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - data) + 1 : len;
        sup_ring_append(logs->upstream, prefix, (size_t)plen);
        sup_ring_append(logs->upstream, data + start, end - start);
        sup_ring_append(logs->all, prefix, (size_t)plen);
        sup_ring_append(logs->all, data + start, end - start);
        LIST_FOREACH(r, &logs->readers, link) {
            if (r->source == SOURCE_ALL || r->source == SOURCE_UPSTREAM) {
                reader_send(r, prefix, (size_t)plen);
                reader_send(r, data + start, end - start);
            }
        }
        start = end;
    }
}

struct gw_logs *gw_logs_new(struct sup_manager *mgr)
{
    struct gw_logs *logs = calloc(1, sizeof(*logs));

    if (logs == NULL)
        return NULL;
    logs->all = sup_ring_new(HISTORY_BYTES);
    logs->proxy = sup_ring_new(HISTORY_BYTES);
    logs->upstream = sup_ring_new(HISTORY_BYTES);
    LIST_INIT(&logs->readers);
    logs->mgr = mgr;
    if (logs->all == NULL || logs->proxy == NULL || logs->upstream == NULL) {
        gw_logs_free(logs);
        return NULL;
    }
    ig_log_set_hook(on_log_line, logs);
    sup_set_output_hook(mgr, on_model_output, logs);
    return logs;
}

/* Ends one reader's stream and frees it. */
static void reader_close(struct log_reader *r)
{
    LIST_REMOVE(r, link);
    http_request_set_cancel_cb(r->req, NULL, NULL);
    http_request_set_drain_cb(r->req, NULL, NULL);
    http_stream_end(r->req);
    reader_free(r);
}

void gw_logs_close_readers(struct gw_logs *logs)
{
    if (logs == NULL)
        return;
    while (!LIST_EMPTY(&logs->readers))
        reader_close(LIST_FIRST(&logs->readers));
}

void gw_logs_free(struct gw_logs *logs)
{
    if (logs == NULL)
        return;
    ig_log_set_hook(NULL, NULL);
    if (logs->mgr != NULL)
        sup_set_output_hook(logs->mgr, NULL, NULL);
    while (!LIST_EMPTY(&logs->readers)) {
        struct log_reader *r = LIST_FIRST(&logs->readers);
        LIST_REMOVE(r, link);
        reader_free(r);
    }
    sup_ring_free(logs->all);
    sup_ring_free(logs->proxy);
    sup_ring_free(logs->upstream);
    free(logs);
}

/* GET /logs: the combined history. */
void gw_logs_handle(struct gw_app *app, struct http_request *req)
{
    char *text = sup_ring_tail(app->logs->all, HISTORY_LINES);

    if (text == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    http_respond(req, 200, "text/plain; charset=utf-8", text, strlen(text));
    free(text);
}

/* The reader's client went away. */
static void on_reader_gone(struct http_request *req, void *arg)
{
    struct log_reader *r = arg;
    (void)req;
    LIST_REMOVE(r, link);
    reader_free(r);
}

/* The reader's socket drained: say what was dropped and go on. */
static void on_reader_drained(struct http_request *req, void *arg)
{
    struct log_reader *r = arg;
    char note[64];
    (void)req;

    r->is_paused = false;
    if (r->dropped > 0) {
        int n = snprintf(note, sizeof(note), "[%zu bytes dropped]\n", r->dropped);
        r->dropped = 0;
        reader_send(r, note, (size_t)n);
    }
}

/* Returns whether QUERY (the part after '?') has the flag NAME. */
static bool has_query_flag(const char *query, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = query; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && (p[n] == '\0' || p[n] == '&' || p[n] == '='))
            return true;
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
    return false;
}

/* GET /logs/stream[/SOURCE]: history then live output. */
void gw_logs_stream(struct gw_app *app, struct http_request *req)
{
    const char *path = http_request_path(req);
    const char *name = path + strlen("/logs/stream");
    struct log_reader *r = calloc(1, sizeof(*r));
    struct sup_model *model = NULL;
    struct sup_ring *history;
    char *text = NULL;

    if (r == NULL || app->is_stopping) {
        free(r);
        gw_reply_error(req, r == NULL ? 500 : 503,
                       r == NULL ? "out of memory" : "the server is shutting down",
                       r == NULL ? "internal_error" : "model_unavailable", 0);
        return;
    }
    if (*name == '/')
        name++;
    r->logs = app->logs;
    r->req = req;
    if (*name == '\0') {
        r->source = SOURCE_ALL;
    } else if (strcmp(name, "proxy") == 0) {
        r->source = SOURCE_PROXY;
    } else if (strcmp(name, "upstream") == 0) {
        r->source = SOURCE_UPSTREAM;
    } else if ((model = sup_find(app->mgr, name)) != NULL) {
        r->source = SOURCE_MODEL;
        r->model_id = strdup(sup_model_cfg(model)->id);
        if (r->model_id == NULL) {
            free(r);
            gw_reply_error(req, 500, "out of memory", "internal_error", 0);
            return;
        }
    } else if (gw_workers_model(app->workers, name) != NULL) {
        free(r); /* a model only workers serve: the stream of the worker the router picks */
        gw_forward_to_worker(app, req, gw_workers_model(app->workers, name), path, true);
        return;
    } else {
        free(r);
        gw_reply_error(req, 400, "invalid logger: use 'proxy', 'upstream' or a model's id",
                       "invalid_request_error", 0);
        return;
    }
    http_response_add_header(req, "X-Content-Type-Options", "nosniff");
    http_response_add_header(req, "X-Accel-Buffering", "no");
    const char *accept = http_request_header(req, "accept");
    r->is_sse = accept != NULL && strstr(accept, "text/event-stream") != NULL;
    if (r->is_sse && (r->line = evbuffer_new()) == NULL) {
        reader_free(r);
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    if (r->is_sse)
        http_response_add_header(req, "Cache-Control", "no-cache");
    http_stream_start(req, 200, r->is_sse ? "text/event-stream" : "text/plain; charset=utf-8");
    if (!has_query_flag(http_request_query(req), "no-history")) {
        history = r->source == SOURCE_PROXY      ? app->logs->proxy
                  : r->source == SOURCE_UPSTREAM ? app->logs->upstream
                                                 : app->logs->all;
        text = r->source == SOURCE_MODEL ? sup_model_log_tail(model, HISTORY_LINES)
                                         : sup_ring_tail(history, HISTORY_LINES);
        if (text != NULL && text[0] != '\0')
            reader_send(r, text, strlen(text));
        free(text);
    }
    LIST_INSERT_HEAD(&app->logs->readers, r, link);
    http_request_set_cancel_cb(req, on_reader_gone, r);
    http_request_set_drain_cb(req, on_reader_drained, r);
}
