/*
 * Engine metrics re-exported by /metrics: each ready model with a process of its own
 * (infergate-engine, llama-server with --metrics) has its GET /metrics read every
 * SCRAPE_EVERY_MS while someone reads the gateway's /metrics (it stops SCRAPE_IDLE_MS after
 * the last read). Each sample is renamed `llamacpp:X` -> `infergate_engine_X` and labelled
 * with the model id, so slots busy and KV cache use show per model. A model without a
 * /metrics endpoint (404, refused) is skipped until its process changes. Counters and
 * gauges only; the first read after a quiet spell shows what the previous scrape saw.
 */
#include "cfg.h"
#include "gw_internal.h"
#include "http_upstream.h"
#include "ig_time.h"
#include "metrics.h"
#include "sup_manager.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAPE_EVERY_MS 5000
#define SCRAPE_IDLE_MS 60000
#define SCRAPE_TIMEOUT_MS 2000
#define MAX_BODY (256u << 10)
#define MAX_SAMPLES 256 /* per model */
#define NAME_MAX_LEN 128

/* One sample of a model's engine. */
struct sample {
    char family[NAME_MAX_LEN + 8]; /* renamed (+ "_total") */
    char type[16];
    char *help;   /* owned */
    char *labels; /* owned: the labels inside the braces, or NULL */
    char value[40];
};

/* What was last read from one model. */
struct engine_scrape {
    struct engine_scrape *next;
    struct gw_app *app;
    char *model_id;
    int pid;             /* of the process scraped; a new one is tried again */
    bool has_no_metrics; /* its server answered 404 or refused */
    struct upstream_req *ureq;
    struct evbuffer *body;
    bool is_truncated; /* the body passed MAX_BODY: the scrape is dropped */
    int status;
    struct sample *samples;
    size_t n_samples;
    uint64_t seen_ms; /* when it was last scraped */
    bool is_live;     /* still a model of the config (marked by each scrape pass) */
};

struct gw_engine_scraper {
    struct engine_scrape *models;
    struct event *timer;
    uint64_t touched_ms;
};

/* Frees the samples of S. */
static void samples_clear(struct engine_scrape *s)
{
    for (size_t i = 0; i < s->n_samples; i++) {
        free(s->samples[i].help);
        free(s->samples[i].labels);
    }
    free(s->samples);
    s->samples = NULL;
    s->n_samples = 0;
}

/* Writes the exported name for upstream NAME (LEN bytes) into OUT; false when unusable. */
static bool rename_family(const char *name, size_t len, char *out, size_t size)
{
    size_t prefix = len > 9 && strncmp(name, "llamacpp:", 9) == 0 ? 9 : 0;
    int n;

    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != ':')
            return false;
    n = snprintf(out, size, "infergate_engine_%.*s", (int)(len - prefix), name + prefix);
    if (n < 0 || (size_t)n >= size)
        return false;
    for (char *p = out; *p != '\0'; p++)
        if (*p == ':')
            *p = '_';
    return true;
}

/* The HELP and TYPE of the family being parsed. */
struct family_meta {
    char name[NAME_MAX_LEN];
    char type[16];
    char *help;
};

/* Parses a Prometheus text BODY into S's samples (counters and gauges). */
static void parse_body(struct engine_scrape *s, char *body)
{
    struct family_meta meta = {{0}, {0}, NULL};

    for (char *line = body, *next; line != NULL && s->n_samples < MAX_SAMPLES; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            char *name = line + 7, *rest = name + strcspn(name, " ");
            char renamed[NAME_MAX_LEN];
            if (*rest == '\0' || !rename_family(name, (size_t)(rest - name), renamed,
                                                sizeof(renamed)))
                continue;
            if (strcmp(meta.name, renamed) != 0) {
                free(meta.help);
                meta = (struct family_meta){{0}, {0}, NULL};
                snprintf(meta.name, sizeof(meta.name), "%s", renamed);
            }
            if (line[2] == 'H') {
                free(meta.help);
                meta.help = strdup(rest + 1);
            } else {
                snprintf(meta.type, sizeof(meta.type), "%s", rest + 1);
            }
            continue;
        }
        if (line[0] == '#' || line[0] == '\0')
            continue;
        size_t name_len = strcspn(line, "{ ");
        char renamed[NAME_MAX_LEN], *labels = NULL, *value;
        if (!rename_family(line, name_len, renamed, sizeof(renamed)) ||
            strcmp(renamed, meta.name) != 0 ||
            (strcmp(meta.type, "counter") != 0 && strcmp(meta.type, "gauge") != 0))
            continue;
        value = line + name_len;
        if (*value == '{') {
            char *close = strchr(value, '}');
            if (close == NULL)
                continue;
            labels = value + 1;
            *close = '\0';
            value = close + 1;
        }
        while (*value == ' ')
            value++;
        value[strcspn(value, " ")] = '\0'; /* a timestamp after the value is dropped */
        struct sample *sm = &s->samples[s->n_samples];
        memset(sm, 0, sizeof(*sm));
        /* Prometheus wants counters named *_total (llama.cpp has some that are not). */
        size_t fl = strlen(meta.name);
        bool needs_total = strcmp(meta.type, "counter") == 0 &&
                           (fl < 6 || strcmp(meta.name + fl - 6, "_total") != 0);
        snprintf(sm->family, sizeof(sm->family), "%s%s", meta.name, needs_total ? "_total" : "");
        snprintf(sm->type, sizeof(sm->type), "%s", meta.type);
        snprintf(sm->value, sizeof(sm->value), "%s", value);
        sm->help = strdup(meta.help != NULL ? meta.help : "engine metric");
        sm->labels = labels != NULL && labels[0] != '\0' ? strdup(labels) : NULL;
        s->n_samples++;
    }
    free(meta.help);
}

static int on_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct engine_scrape *s = arg;
    (void)ureq;

    if (s->is_truncated || evbuffer_get_length(s->body) + len > MAX_BODY)
        s->is_truncated = true;
    else
        evbuffer_add(s->body, data, len);
    return 0;
}

static void on_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct engine_scrape *s = arg;
    (void)ureq;
    (void)ct;
    s->status = status;
}

static void on_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct engine_scrape *s = arg;
    (void)ureq;
    (void)message;

    s->ureq = NULL;
    if (rc != 0 || s->status != 200 || s->is_truncated) {
        s->has_no_metrics = rc == 0 && (s->status == 404 || s->status == 501);
        samples_clear(s);
    } else {
        evbuffer_add(s->body, "", 1);
        samples_clear(s);
        s->samples = calloc(MAX_SAMPLES, sizeof(*s->samples));
        if (s->samples != NULL)
            parse_body(s, (char *)evbuffer_pullup(s->body, -1));
        s->seen_ms = ig_now_ms();
    }
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
}

/* Returns the scrape record of model ID, made when absent (NULL when out of memory). */
static struct engine_scrape *scrape_of(struct gw_app *app, const char *id)
{
    struct gw_engine_scraper *sc = app->engine_scraper;
    struct engine_scrape *s;

    for (s = sc->models; s != NULL; s = s->next)
        if (strcmp(s->model_id, id) == 0)
            return s;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->model_id = strdup(id)) == NULL || (s->body = evbuffer_new()) == NULL) {
        if (s != NULL)
            free(s->model_id);
        free(s);
        return NULL;
    }
    s->app = app;
    s->next = sc->models;
    sc->models = s;
    return s;
}

/* Frees the records of models a reload removed (none scraping: their transfers ended). */
static void drop_dead(struct gw_engine_scraper *sc)
{
    for (struct engine_scrape **at = &sc->models, *s; (s = *at) != NULL;) {
        if (s->is_live || s->ureq != NULL) {
            s->is_live = false;
            at = &s->next;
            continue;
        }
        *at = s->next;
        samples_clear(s);
        evbuffer_free(s->body);
        free(s->model_id);
        free(s);
    }
}

/* Starts a scrape of every ready model with a process. */
static void scrape_all(struct gw_app *app)
{
    static const struct upstream_callbacks cb = {on_headers, on_data, on_done};

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model_info info;
        struct engine_scrape *s;
        char url[2048];

        if (c->cmd == NULL || c->proxy == NULL)
            continue;
        sup_model_info(sup_find(app->mgr, c->id), &info);
        if ((s = scrape_of(app, c->id)) == NULL)
            continue;
        s->is_live = true;
        if (info.state != SUP_READY || info.pid <= 0) {
            samples_clear(s); /* a stopped model's last figures are not its present */
            s->pid = 0;
            continue;
        }
        if (s->pid != info.pid) {
            s->pid = info.pid;
            s->has_no_metrics = false;
            samples_clear(s);
        }
        if (s->has_no_metrics || s->ureq != NULL)
            continue;
        snprintf(url, sizeof(url), "%.*s/metrics", (int)strcspn(c->proxy, "?"), c->proxy);
        struct upstream_spec spec = {.method = "GET", .url = url,
                                     .timeout_ms = SCRAPE_TIMEOUT_MS,
                                     .connect_timeout_ms = SCRAPE_TIMEOUT_MS};
        s->status = 0;
        s->is_truncated = false;
        s->ureq = upstream_start(app->pool, &spec, &cb, s);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    struct timeval tv = {SCRAPE_EVERY_MS / 1000, 0};
    (void)fd;
    (void)what;

    if (app->is_stopping || ig_now_ms() - app->engine_scraper->touched_ms > SCRAPE_IDLE_MS)
        return;
    scrape_all(app);
    drop_dead(app->engine_scraper);
    evtimer_add(app->engine_scraper->timer, &tv);
}

void gw_engine_metrics_touch(struct gw_app *app)
{
    struct gw_engine_scraper *sc = app->engine_scraper;
    struct timeval now = {0, 0};

    if (sc == NULL)
        return;
    sc->touched_ms = ig_now_ms();
    if (!evtimer_pending(sc->timer, NULL))
        evtimer_add(sc->timer, &now);
}

/* Returns whether family NAME was printed already, by a sample before INDEX J of S or by a
 * model before S. */
static bool is_printed(const struct gw_engine_scraper *sc, const struct engine_scrape *s,
                       size_t j, const char *name)
{
    for (const struct engine_scrape *o = sc->models; o != NULL; o = o->next) {
        size_t end = o == s ? j : o->n_samples;
        for (size_t k = 0; k < end; k++)
            if (strcmp(o->samples[k].family, name) == 0)
                return true;
        if (o == s)
            return false;
    }
    return false;
}

void gw_engine_metrics_render(struct gw_app *app, struct evbuffer *out)
{
    struct gw_engine_scraper *sc = app->engine_scraper;

    if (sc == NULL)
        return;
    for (struct engine_scrape *s = sc->models; s != NULL; s = s->next) {
        for (size_t j = 0; j < s->n_samples; j++) {
            const struct sample *first = &s->samples[j];
            if (is_printed(sc, s, j, first->family))
                continue;
            evbuffer_add_printf(out, "# HELP %s %s (per model, from its engine)\n# TYPE %s %s\n",
                                first->family, first->help, first->family, first->type);
            /* Every sample of this family, from this model on. */
            for (struct engine_scrape *o = s; o != NULL; o = o->next) {
                for (size_t k = o == s ? j : 0; k < o->n_samples; k++) {
                    const struct sample *sm = &o->samples[k];
                    if (strcmp(sm->family, first->family) != 0)
                        continue;
                    evbuffer_add_printf(out, "%s{model=\"", sm->family);
                    metrics_escape_label(out, o->model_id);
                    evbuffer_add_printf(out, "\"%s%s} %s\n", sm->labels != NULL ? "," : "",
                                        sm->labels != NULL ? sm->labels : "", sm->value);
                }
            }
        }
    }
}

struct gw_engine_scraper *gw_engine_scraper_new(struct gw_app *app)
{
    struct gw_engine_scraper *sc = calloc(1, sizeof(*sc));

    if (sc == NULL)
        return NULL;
    sc->timer = evtimer_new(app->base, timer_cb, app);
    if (sc->timer == NULL) {
        free(sc);
        return NULL;
    }
    return sc;
}

void gw_engine_scraper_free(struct gw_engine_scraper *sc)
{
    struct engine_scrape *s, *next;

    if (sc == NULL)
        return;
    for (s = sc->models; s != NULL; s = next) {
        next = s->next;
        if (s->ureq != NULL)
            upstream_cancel(s->ureq);
        samples_clear(s);
        evbuffer_free(s->body);
        free(s->model_id);
        free(s);
    }
    event_free(sc->timer);
    free(sc);
}
