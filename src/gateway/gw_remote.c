/*
 * Remote models in the gateway's operational endpoints (docs/DISTRIBUTED.md): GET /workers
 * (the registry of workers), and the workers' own metrics in /metrics.
 *
 * /metrics: when workers are on the bus, each one's GET /metrics is read through a tunnel
 * of its own, as a request is, within SCRAPE_TIMEOUT_MS; a worker that does not answer in
 * time (or answers too much) is left out of this answer. Its families are renamed
 * `infergate_X` -> `infergate_worker_X` (other names get the prefix too), so they never
 * clash with the gateway's own families of the same name, and each sample is labelled
 * worker="<id>"; the samples of one family from every worker are printed together under one
 * HELP and TYPE, as the text format requires.
 */
#include "bus_tunnel.h"
#include "gw_backends.h"
#include "gw_internal.h"
#include "gw_workers.h"
#include "http_server.h"
#include "http_upstream.h"
#include "ig_log.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAPE_TIMEOUT_MS 1500
#define MAX_SCRAPED_WORKERS 64
#define MAX_SCRAPE_BYTES (1u << 20) /* of one worker's answer */
#define MAX_FAMILIES 4096
#define NAME_MAX_LEN 200
#define PREFIX "infergate_worker_"

void gw_workers_handle(struct gw_app *app, struct http_request *req)
{
    json_t *backends = json_array();

    gw_backends_json(app->backends, backends); /* the models' URL backends, as routed */
    gw_reply_json(req, 200, json_pack("{s:s, s:o, s:o}", "object", "list", "data",
                                      gw_workers_json(app->workers), "backends",
                                      backends != NULL ? backends : json_null()));
}

/* One worker's /metrics being read. */
struct scrape {
    struct metrics_fetch *fetch;
    char worker[BUS_ID_MAX + 1];
    struct upstream_req *ureq;
    struct evbuffer *body;
    int status;
    bool is_truncated;
};

/* A GET /metrics waiting for its workers. */
struct metrics_fetch {
    struct gw_app *app;
    struct http_request *req;
    struct evbuffer *out; /* the gateway's own metrics, then the workers' */
    struct scrape scrapes[MAX_SCRAPED_WORKERS];
    size_t n, n_pending;
};

/* One metric family gathered from every worker. */
struct family {
    char name[sizeof(PREFIX) + NAME_MAX_LEN];
    char type[16];
    char *help; /* owned */
    struct evbuffer *samples;
};

struct families {
    struct family *f;
    size_t n;
};

/* Writes the exported name of worker metric NAME (LEN bytes) into OUT; false when unusable. */
static bool rename_metric(const char *name, size_t len, char *out, size_t size)
{
    size_t skip = len > 10 && strncmp(name, "infergate_", 10) == 0 ? 10 : 0;

    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return false;
    }
    return snprintf(out, size, PREFIX "%.*s", (int)(len - skip), name + skip) < (int)size;
}

/* Returns family NAME of FS, added when new; NULL at the cap or out of memory. */
static struct family *family_of(struct families *fs, const char *name)
{
    struct family *grown;

    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->f[i].name, name) == 0)
            return &fs->f[i];
    if (fs->n >= MAX_FAMILIES)
        return NULL;
    grown = realloc(fs->f, (fs->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    fs->f = grown;
    memset(&fs->f[fs->n], 0, sizeof(fs->f[0]));
    snprintf(fs->f[fs->n].name, sizeof(fs->f[0].name), "%s", name);
    fs->f[fs->n].samples = evbuffer_new();
    if (fs->f[fs->n].samples == NULL)
        return NULL;
    return &fs->f[fs->n++];
}

/* Returns the end of the label set starting at P ('{'), quotes and escapes minded; NULL when
 * it does not close. */
static const char *labels_end(const char *p)
{
    bool is_quoted = false;

    for (p++; *p != '\0'; p++) {
        if (is_quoted && *p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '"')
            is_quoted = !is_quoted;
        else if (!is_quoted && *p == '}')
            return p;
    }
    return NULL;
}

/* Takes one line of worker WORKER's metrics into FS; *CURRENT is the family being read. */
static void take_line(struct families *fs, const char *worker, const char *line,
                      struct family **current)
{
    char name[sizeof(PREFIX) + NAME_MAX_LEN];
    size_t len;

    if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
        const char *what = line + 7;
        struct family *f;
        len = strcspn(what, " ");
        if (!rename_metric(what, len, name, sizeof(name)) || (f = family_of(fs, name)) == NULL)
            return;
        what += len + (what[len] == ' ');
        if (line[2] == 'H' && f->help == NULL)
            f->help = strdup(what);
        else if (line[2] == 'T' && f->type[0] == '\0')
            snprintf(f->type, sizeof(f->type), "%s", what);
        *current = f;
        return;
    }
    if (line[0] == '#' || line[0] == '\0')
        return;
    len = strcspn(line, "{ ");
    if (!rename_metric(line, len, name, sizeof(name)))
        return;
    /* Histogram and summary samples (_bucket, _sum, _count) belong to the family above. */
    if (*current == NULL || strncmp(name, (*current)->name, strlen((*current)->name)) != 0)
        *current = family_of(fs, name);
    if (*current == NULL)
        return;
    if (line[len] == '{') {
        const char *end = labels_end(line + len);
        if (end == NULL)
            return;
        evbuffer_add_printf((*current)->samples, "%s{worker=\"%s\"%s%.*s}%s\n", name, worker,
                            end > line + len + 1 ? "," : "", (int)(end - line - len - 1),
                            line + len + 1, end + 1);
    } else {
        evbuffer_add_printf((*current)->samples, "%s{worker=\"%s\"}%s\n", name, worker,
                            line + len);
    }
}

/* Takes worker WORKER's metrics BODY (NUL-terminated, modified) into FS. */
static void take_body(struct families *fs, const char *worker, char *body)
{
    struct family *current = NULL;

    for (char *line = body; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        take_line(fs, worker, line, &current);
        line = next;
    }
}

/* Answers the fetch with the gateway's metrics and what the workers answered, and frees it. */
static void fetch_finish(struct metrics_fetch *f)
{
    struct families fs = {0};

    for (size_t i = 0; i < f->n; i++) {
        struct scrape *s = &f->scrapes[i];
        size_t len = evbuffer_get_length(s->body);
        char *text;

        if (s->status != 200 || s->is_truncated || len == 0)
            continue;
        text = malloc(len + 1);
        if (text == NULL)
            continue;
        evbuffer_remove(s->body, text, len);
        text[len] = '\0';
        take_body(&fs, s->worker, text);
        free(text);
    }
    for (size_t i = 0; i < fs.n; i++) {
        if (fs.f[i].help != NULL)
            evbuffer_add_printf(f->out, "# HELP %s %s\n", fs.f[i].name, fs.f[i].help);
        if (fs.f[i].type[0] != '\0')
            evbuffer_add_printf(f->out, "# TYPE %s %s\n", fs.f[i].name, fs.f[i].type);
        evbuffer_add_buffer(f->out, fs.f[i].samples);
        evbuffer_free(fs.f[i].samples);
        free(fs.f[i].help);
    }
    free(fs.f);
    http_request_set_cancel_cb(f->req, NULL, NULL);
    http_respond_buffer(f->req, 200, "text/plain; version=0.0.4; charset=utf-8", f->out);
    for (size_t i = 0; i < f->n; i++)
        evbuffer_free(f->scrapes[i].body);
    evbuffer_free(f->out);
    free(f);
}

/* The /metrics client went away: stop reading the workers. */
static void on_fetch_gone(struct http_request *req, void *arg)
{
    struct metrics_fetch *f = arg;
    (void)req;

    for (size_t i = 0; i < f->n; i++) {
        if (f->scrapes[i].ureq != NULL)
            upstream_cancel(f->scrapes[i].ureq);
        evbuffer_free(f->scrapes[i].body);
    }
    evbuffer_free(f->out);
    free(f);
}

static void on_scrape_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct scrape *s = arg;
    (void)ureq;
    (void)ct;
    s->status = status;
}

static int on_scrape_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct scrape *s = arg;
    (void)ureq;

    if (evbuffer_get_length(s->body) + len > MAX_SCRAPE_BYTES)
        s->is_truncated = true;
    else
        evbuffer_add(s->body, data, len);
    return 0;
}

static void on_scrape_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct scrape *s = arg;
    (void)ureq;

    s->ureq = NULL;
    if (rc != 0) {
        ig_debug("metrics of worker %s left out: %s", s->worker, message != NULL ? message : "");
        s->status = 0;
    }
    if (--s->fetch->n_pending == 0)
        fetch_finish(s->fetch);
}

/* Opens the tunnel of scrape ARG as the upstream client's stream. */
static void *open_scrape_tunnel(void *arg, const struct http_stream_sink *sink, void *client,
                                const struct http_stream_ops **ops)
{
    struct scrape *s = arg;
    return bus_tunnel_open(s->fetch->app->tunnels, s->worker, sink, client, ops);
}

void gw_remote_metrics(struct gw_app *app, struct http_request *req, struct evbuffer *out)
{
    static const struct upstream_callbacks callbacks = {
        .on_headers = on_scrape_headers, .on_data = on_scrape_data, .on_done = on_scrape_done};
    static const char *const headers[] = {"Connection: close", NULL};
    char ids[MAX_SCRAPED_WORKERS][BUS_ID_MAX + 1], url[BUS_ID_MAX + 32];
    size_t n = app->tunnels != NULL ? gw_workers_ids(app->workers, ids, MAX_SCRAPED_WORKERS) : 0;
    struct metrics_fetch *f = n > 0 ? calloc(1, sizeof(*f)) : NULL;

    if (f == NULL) {
        http_respond_buffer(req, 200, "text/plain; version=0.0.4; charset=utf-8", out);
        evbuffer_free(out);
        return;
    }
    f->app = app;
    f->req = req;
    f->out = out;
    for (size_t i = 0; i < n; i++) {
        struct scrape *s = &f->scrapes[f->n];
        struct upstream_spec spec = {.method = "GET", .url = url, .headers = headers,
                                     .timeout_ms = SCRAPE_TIMEOUT_MS,
                                     .connect_timeout_ms = SCRAPE_TIMEOUT_MS,
                                     .open_stream = open_scrape_tunnel, .open_stream_arg = s};

        s->fetch = f;
        snprintf(s->worker, sizeof(s->worker), "%.64s", ids[i]);
        snprintf(url, sizeof(url), "http://%.64s.worker/metrics", ids[i]);
        s->body = evbuffer_new();
        if (s->body == NULL)
            continue;
        s->ureq = upstream_start(app->pool, &spec, &callbacks, s);
        if (s->ureq == NULL) {
            evbuffer_free(s->body);
            continue;
        }
        f->n++;
        f->n_pending++;
    }
    if (f->n_pending == 0) {
        fetch_finish(f);
        return;
    }
    http_request_set_cancel_cb(req, on_fetch_gone, f);
}
