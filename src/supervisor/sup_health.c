/* Health checks of a starting model: poll its checkEndpoint until it answers 200. */
#include "sup_internal.h"
#include "cfg.h"
#include "http_upstream.h"
#include "ig_log.h"
#include "ig_time.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_FIRST_MS 5
#define HEALTH_INTERVAL_MS 100 /* the polling interval once a start takes long */
#define HEALTH_REQUEST_MS 2000

/* Stops health polling. */
void sup_health_cancel(struct sup_model *m)
{
    evtimer_del(m->health_timer);
    if (m->health_req != NULL) {
        upstream_cancel(m->health_req);
        m->health_req = NULL;
    }
}

/* The model became healthy. */
void sup_become_ready(struct sup_model *m)
{
    sup_health_cancel(m);
    free(m->last_error);
    m->last_error = NULL;
    m->ready_ms = ig_now_ms();
    m->last_used_ms = m->ready_ms;
    ig_info("model %s: ready in %llu ms", m->cfg->id,
            (unsigned long long)(m->ready_ms - m->started_ms));
    sup_set_state(m, SUP_READY);
    sup_request_schedule(m->mgr);
}

/* Returns the delay before the next health check: 5 ms at first, growing by 1 ms per 20 ms
 * of start-up to HEALTH_INTERVAL_MS, so a model that loads fast is seen ready within a few
 * ms (a check costs one local GET) and a slow one is not polled needlessly. */
static struct timeval health_interval(const struct sup_model *m)
{
    uint64_t ms = HEALTH_FIRST_MS + (ig_now_ms() - m->started_ms) / 20;
    struct timeval tv = {0, (suseconds_t)((ms < HEALTH_INTERVAL_MS ? ms : HEALTH_INTERVAL_MS) * 1000)};
    return tv;
}

/* Health check finished: ready on a 200, else poll again until the deadline. */
static void health_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct sup_model *m = arg;
    struct timeval tv = health_interval(m);
    (void)ureq;
    (void)message;

    m->health_req = NULL;
    if (m->state != SUP_STARTING)
        return;
    if (rc == 0 && m->health_status == 200) {
        sup_become_ready(m);
        return;
    }
    if (ig_now_ms() >= m->start_deadline_ms) {
        char reason[160];
        snprintf(reason, sizeof(reason), "not healthy after %d s (healthCheckTimeout)",
                 m->mgr->cfg->health_check_timeout_s);
        sup_fail_start(m, reason);
        return;
    }
    evtimer_add(m->health_timer, &tv);
}

/* Reads the load progress a starting engine reports in its 503 body ("progress":0.42 in
 * llama-server's error object, as infergate-engine adds it). */
static int health_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct sup_model *m = arg;
    char buf[512], *at, *end = NULL;
    double v;
    (void)ureq;

    if (m->health_status != 503 || len == 0)
        return 0;
    snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), data);
    at = strstr(buf, "\"progress\":");
    if (at == NULL)
        return 0;
    v = strtod(at + 11, &end);
    if (end != at + 11 && v >= 0 && v <= 1)
        m->load_progress = v;
    return 0;
}

/* Records the status of a health response. */
static void health_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct sup_model *m = arg;
    (void)ureq;
    (void)ct;
    m->health_status = status;
}

/* Polls the model's health endpoint. */
void sup_health_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    static const struct upstream_callbacks callbacks = {
        .on_headers = health_headers, .on_data = health_data, .on_done = health_done};
    struct sup_model *m = arg;
    struct upstream_spec spec = {.method = "GET",
                                 .url = m->health_url,
                                 .timeout_ms = HEALTH_REQUEST_MS,
                                 .connect_timeout_ms = HEALTH_REQUEST_MS};
    (void)fd;
    (void)what;

    if (m->state != SUP_STARTING)
        return;
    m->health_status = 0;
    m->health_req = upstream_start(m->mgr->pool, &spec, &callbacks, m);
    if (m->health_req == NULL)
        sup_fail_start(m, "out of memory");
}

void sup_health_start(struct sup_model *m)
{
    struct timeval tv = {0, HEALTH_FIRST_MS * 1000};

    m->start_deadline_ms = m->started_ms + (uint64_t)m->mgr->cfg->health_check_timeout_s * 1000u;
    m->load_progress = -1;
    evtimer_add(m->health_timer, &tv);
}
