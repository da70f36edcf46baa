/* A model's plain URL backends and their health (gw_backends.h). */
#include "gw_backends.h"

#include "cfg.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BACKENDS 4096
#define TRIP_FAILURES 3
#define TRIP_MS 5000
#define TTFT_WEIGHT 0.2 /* of the newest sample in the moving average */

struct backend {
    char *model;
    char *url;
    int in_flight;
    int failures;          /* in a row */
    uint64_t tripped_until_ms;
    double ttft_ms;
};

struct gw_backends {
    struct backend *b;
    size_t n, cap;
};

struct gw_backends *gw_backends_new(void)
{
    return calloc(1, sizeof(struct gw_backends));
}

void gw_backends_free(struct gw_backends *bs)
{
    if (bs == NULL)
        return;
    for (size_t i = 0; i < bs->n; i++) {
        free(bs->b[i].model);
        free(bs->b[i].url);
    }
    free(bs->b);
    free(bs);
}

/* Returns backend URL of MODEL, made when MAKE (NULL when absent, full or out of memory). */
static struct backend *find(struct gw_backends *bs, const char *model, const char *url,
                            bool make)
{
    for (size_t i = 0; i < bs->n; i++)
        if (strcmp(bs->b[i].url, url) == 0 && strcmp(bs->b[i].model, model) == 0)
            return &bs->b[i];
    if (!make || bs->n >= MAX_BACKENDS)
        return NULL;
    if (bs->n == bs->cap) {
        size_t cap = bs->cap > 0 ? bs->cap * 2 : 16;
        struct backend *b = realloc(bs->b, cap * sizeof(*b));
        if (b == NULL)
            return NULL;
        bs->b = b;
        bs->cap = cap;
    }
    struct backend *b = &bs->b[bs->n];
    *b = (struct backend){.model = strdup(model), .url = strdup(url)};
    if (b->model == NULL || b->url == NULL) {
        free(b->model);
        free(b->url);
        return NULL;
    }
    bs->n++;
    return b;
}

size_t gw_backends_candidates(struct gw_backends *bs, const struct cfg_model *mc,
                              const char **urls, struct gw_route_cand *out, size_t max)
{
    uint64_t now = ig_now_ms();
    size_t n = 0;

    for (size_t i = 0; i < mc->backends.len && n < max; i++) {
        const char *url = mc->backends.items[i];
        const struct backend *b = find(bs, mc->id, url, true);

        urls[n] = url;
        out[n++] = (struct gw_route_cand){
            .is_ready = true, /* a server of its own: always "loaded" */
            .is_tripped = b != NULL && b->tripped_until_ms > now,
            .load = b != NULL ? b->in_flight : 0,
            .ttft_ms = b != NULL ? b->ttft_ms : 0,
            .affinity_id = ig_fnv1a(url, strlen(url), IG_FNV1A_INIT),
        };
    }
    return n;
}

void gw_backends_id(const char *url, char *out, size_t size)
{
    snprintf(out, size, "url:%016llx",
             (unsigned long long)ig_fnv1a(url, strlen(url), IG_FNV1A_INIT));
}

void gw_backends_begin(struct gw_backends *bs, const char *model, const char *url)
{
    struct backend *b = find(bs, model, url, true);

    if (b != NULL)
        b->in_flight++;
}

void gw_backends_end(struct gw_backends *bs, const char *model, const char *url,
                     enum gw_worker_outcome outcome, int64_t ttft_ms)
{
    struct backend *b = find(bs, model, url, false);

    if (b == NULL)
        return;
    if (b->in_flight > 0)
        b->in_flight--;
    if (outcome == GW_WORKER_BUSY || outcome == GW_WORKER_LEFT)
        return;
    if (outcome == GW_WORKER_FAILED) {
        if (++b->failures >= TRIP_FAILURES) {
            b->tripped_until_ms = ig_now_ms() + TRIP_MS;
            ig_warn("model %s: backend %s: %d failures in a row; out of routing for %d s",
                    model, url, b->failures, TRIP_MS / 1000);
        }
        return;
    }
    b->failures = 0;
    b->tripped_until_ms = 0;
    if (ttft_ms >= 0)
        b->ttft_ms = b->ttft_ms > 0 ? (1 - TTFT_WEIGHT) * b->ttft_ms + TTFT_WEIGHT * (double)ttft_ms
                                    : (double)ttft_ms;
}

/* Returns whether CFG's model MODEL lists URL among its backends. */
static bool is_listed(const struct cfg *cfg, const char *model, const char *url)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].id, model) == 0)
            for (size_t j = 0; j < cfg->models[i].backends.len; j++)
                if (strcmp(cfg->models[i].backends.items[j], url) == 0)
                    return true;
    return false;
}

void gw_backends_prune(struct gw_backends *bs, const struct cfg *cfg)
{
    size_t kept = 0;

    for (size_t i = 0; bs != NULL && i < bs->n; i++) {
        struct backend *b = &bs->b[i];

        if (b->in_flight > 0 || is_listed(cfg, b->model, b->url)) {
            bs->b[kept++] = *b;
            continue;
        }
        free(b->model);
        free(b->url);
    }
    if (bs != NULL)
        bs->n = kept;
}

void gw_backends_json(const struct gw_backends *bs, void *array)
{
    uint64_t now = ig_now_ms();

    for (size_t i = 0; bs != NULL && i < bs->n; i++) {
        const struct backend *b = &bs->b[i];
        json_array_append_new(array, json_pack("{s:s, s:s, s:i, s:i, s:b, s:f}", "model",
                                               b->model, "url", b->url, "in_flight",
                                               b->in_flight, "failures", b->failures, "tripped",
                                               b->tripped_until_ms > now, "ttft_ms", b->ttft_ms));
    }
}
