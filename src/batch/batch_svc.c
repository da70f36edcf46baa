/*
 * The batch service on the event loop (batch.h, batch_svc.h).
 *
 * A batch goes validating -> in_progress -> finalizing -> completed (or failed at
 * validation, cancelling -> cancelled, expired after its 24 h window). Each transition is
 * a store job, so the database always says where a batch stands and a restart resumes it.
 *
 * Lines arrive from JetStream (batch_js.c) and run in batch_line.c; this file keeps the
 * batches' runs, validates and queues their input, resumes them at start-up and ends them.
 */
#include "batch.h"
#include "batch_db.h"
#include "batch_js.h"
#include "batch_svc.h"
#include "cfg.h"
#include "gw_internal.h"
#include "ig_log.h"
#include "ig_time.h"
#include "store.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPIRY_CHECK_S 30

/* Where a batch of this process stands. */
/* ---------------------------------------------------------------- anchor -- */

struct batch_anchor *batch_anchor_take(struct batch_svc *svc)
{
    svc->anchor->refs++;
    return svc->anchor;
}

struct batch_svc *batch_anchor_svc(const struct batch_anchor *a)
{
    return a->svc;
}

void batch_anchor_release(struct batch_anchor *a)
{
    if (--a->refs == 0 && a->svc == NULL)
        free(a);
}

/* ------------------------------------------------------------------ runs -- */

/* Returns batch ID's run, or NULL. */
struct batch_run *batch_run_find(struct batch_svc *svc, const char *id)
{
    for (struct batch_run *r = svc->runs; r != NULL; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

/* Adds a run for batch ID (NULL when out of memory). */
static struct batch_run *add_run(struct batch_svc *svc, const char *id, const char *owner,
                                 const char *endpoint, const char *input_file_id)
{
    struct batch_run *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->owner, sizeof(r->owner), "%s", owner);
    snprintf(r->endpoint, sizeof(r->endpoint), "%s", endpoint);
    snprintf(r->input_file_id, sizeof(r->input_file_id), "%s", input_file_id);
    r->expires_at = ig_unix_s() + 86400;
    r->next = svc->runs;
    svc->runs = r;
    return r;
}

/* Sizes RUN's bitmaps for TOTAL lines (HAS_RESULT taken when not NULL); -1 out of memory. */
static int size_run(struct batch_run *r, long total, uint8_t *has_result)
{
    r->total = total;
    r->has_result = has_result != NULL ? has_result : calloc((size_t)total / 8 + 1, 1);
    r->is_running = calloc((size_t)total / 8 + 1, 1);
    return r->has_result != NULL && r->is_running != NULL ? 0 : -1;
}

/* Removes and frees RUN. */
static void drop_run(struct batch_svc *svc, struct batch_run *run)
{
    for (struct batch_run **p = &svc->runs; *p != NULL; p = &(*p)->next) {
        if (*p == run) {
            *p = run->next;
            break;
        }
    }
    free(run->has_result);
    free(run->is_running);
    free(run);
}

/* A status job on a batch: its id, owner, status, and what it reads back. */
struct status_job {
    struct batch_anchor *anchor;
    char id[BATCH_ID_MAX + 1];
    char owner[AUTH_NAME_MAX];
    char dir[BATCH_PATH_MAX];
    const char *status;
    int64_t now;
};

static int finish_job(sqlite3 *db, void *arg)
{
    struct status_job *j = arg;
    return batch_db_finish(db, j->dir, j->id, j->owner, j->status, j->now);
}

static void finish_done(int rc, void *arg)
{
    struct status_job *j = arg;
    struct batch_svc *svc = batch_anchor_svc(j->anchor);
    struct batch_run *run = svc != NULL ? batch_run_find(svc, j->id) : NULL;

    if (rc != 0)
        ig_error("batches: %s could not be ended (%s); it ends at the next start", j->id,
                 ig_strerror(rc));
    else
        ig_info("batches: %s %s", j->id, j->status);
    if (run != NULL)
        drop_run(svc, run);
    batch_anchor_release(j->anchor);
    free(j);
}

/* Submits JOB with DONE, or frees it (logged) when the store refuses. */
static void submit_status(struct batch_svc *svc, struct status_job *j, store_job_fn job,
                          store_done_fn done)
{
    if (store_submit(svc->app->store, job, done, j) != 0) {
        ig_error("batches: the database refused work on %s; it resumes at the next start",
                 j->id);
        batch_anchor_release(j->anchor);
        free(j);
    }
}

/* Returns a status job for RUN ending with STATUS; NULL out of memory (logged). */
static struct status_job *status_job_new(struct batch_svc *svc, struct batch_run *run,
                                         const char *status)
{
    struct status_job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        ig_error("batches: out of memory ending %s", run->id);
        return NULL;
    }
    j->anchor = batch_anchor_take(svc);
    snprintf(j->id, sizeof(j->id), "%s", run->id);
    snprintf(j->owner, sizeof(j->owner), "%s", run->owner);
    snprintf(j->dir, sizeof(j->dir), "%s", svc->dir);
    j->status = status;
    j->now = ig_unix_s();
    return j;
}

static int finalizing_job(sqlite3 *db, void *arg)
{
    struct status_job *j = arg;
    return batch_db_set_status(db, j->id, "finalizing", j->now);
}

static void finalizing_done(int rc, void *arg)
{
    struct status_job *j = arg;
    struct batch_svc *svc = batch_anchor_svc(j->anchor);

    if (rc != 0 || svc == NULL) {
        finish_done(rc != 0 ? rc : IG_ECANCELED, j);
        return;
    }
    j->now = ig_unix_s();
    submit_status(svc, j, finish_job, finish_done);
}

/* Ends RUN when nothing of it runs any more and it is complete, cancelled or expired: the
 * output and error files are written and the batch gets its final status. */
void batch_run_maybe_finish(struct batch_svc *svc, struct batch_run *run)
{
    struct status_job *j;

    if (run->in_flight > 0 || run->state == RUN_FINISHING || run->state == RUN_VALIDATING)
        return;
    if (run->state == RUN_IN_PROGRESS && run->n_done < run->total)
        return;
    j = status_job_new(svc, run, run->state == RUN_STOPPING ? run->end_status : "completed");
    if (j == NULL)
        return;
    run->state = RUN_FINISHING;
    if (strcmp(j->status, "completed") == 0)
        submit_status(svc, j, finalizing_job, finalizing_done);
    else
        submit_status(svc, j, finish_job, finish_done);
}

/* ------------------------------------------------------------- enqueuing -- */

/* Batch validation or re-reading of lines, on the writer thread. */
struct validate_job {
    struct batch_anchor *anchor;
    char id[BATCH_ID_MAX + 1];
    char input_file_id[BATCH_ID_MAX + 1];
    char endpoint[32];
    char dir[BATCH_PATH_MAX];
    size_t max_bytes;
    long first;
    char **lines;
    size_t n;
    bool is_cancelled;
};

static int validate_job(sqlite3 *db, void *arg)
{
    struct validate_job *v = arg;
    return batch_db_validate(db, v->dir, v->id, v->input_file_id, v->endpoint, v->max_bytes,
                             v->first, &v->lines, &v->n, &v->is_cancelled);
}

static void validate_done(int rc, void *arg)
{
    struct validate_job *v = arg;
    struct batch_svc *svc = batch_anchor_svc(v->anchor);
    struct batch_run *run = svc != NULL ? batch_run_find(svc, v->id) : NULL;

    if (run == NULL || rc != 0) {
        if (rc != 0)
            ig_error("batches: validating %s failed (%s); retried at the next start", v->id,
                     ig_strerror(rc));
        if (run != NULL)
            drop_run(svc, run);
    } else if (v->is_cancelled) {
        run->state = RUN_STOPPING;
        run->end_status = "cancelled";
        batch_run_maybe_finish(svc, run);
    } else if (v->n == 0 && v->first == 0) {
        ig_info("batches: %s failed validation", v->id);
        drop_run(svc, run);
    } else {
        if (v->first == 0 && size_run(run, (long)v->n, NULL) != 0) {
            ig_error("batches: out of memory for %s; it resumes at the next start", v->id);
            drop_run(svc, run);
        } else {
            run->state = run->state == RUN_VALIDATING ? RUN_IN_PROGRESS : run->state;
            if (batch_js_publish(svc->js, v->id, v->first, v->lines, v->n) != 0)
                ig_error("batches: out of memory queueing %s; it resumes at the next start",
                         v->id);
            v->lines = NULL;
            v->n = 0;
        }
    }
    for (size_t i = 0; i < v->n; i++)
        free(v->lines[i]);
    free(v->lines);
    batch_anchor_release(v->anchor);
    free(v);
}

/* Validates RUN's input (FIRST 0) or re-reads its lines from FIRST, then queues them. */
static void start_validation(struct batch_svc *svc, struct batch_run *run, long first)
{
    struct validate_job *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        drop_run(svc, run);
        return;
    }
    v->anchor = batch_anchor_take(svc);
    snprintf(v->id, sizeof(v->id), "%s", run->id);
    snprintf(v->input_file_id, sizeof(v->input_file_id), "%s", run->input_file_id);
    snprintf(v->endpoint, sizeof(v->endpoint), "%s", run->endpoint);
    snprintf(v->dir, sizeof(v->dir), "%s", svc->dir);
    v->max_bytes = svc->max_file_bytes;
    v->first = first;
    if (store_submit(svc->app->store, validate_job, validate_done, v) != 0) {
        ig_error("batches: the database refused to validate %s", run->id);
        validate_done(IG_EBUSY, v);
    }
}

void batch_svc_created(struct batch_svc *svc, const char *id, const char *owner,
                       const char *endpoint, const char *input_file_id)
{
    struct batch_run *run = add_run(svc, id, owner, endpoint, input_file_id);

    if (run == NULL) {
        ig_error("batches: out of memory for %s; it resumes at the next start", id);
        return;
    }
    start_validation(svc, run, 0);
}

void batch_svc_cancelled(struct batch_svc *svc, const char *id)
{
    struct batch_run *run = batch_run_find(svc, id);

    if (run == NULL || run->state == RUN_STOPPING || run->state == RUN_FINISHING)
        return;
    if (run->state == RUN_VALIDATING)
        return; /* validation sees the cancel in the database and ends it */
    run->state = RUN_STOPPING;
    run->end_status = "cancelled";
    batch_run_maybe_finish(svc, run);
}

/* Progress of the publication: a store job records it. */
struct enqueued_job {
    char id[BATCH_ID_MAX + 1];
    long upto;
};

static int enqueued_job(sqlite3 *db, void *arg)
{
    struct enqueued_job *e = arg;
    return batch_db_set_enqueued(db, e->id, e->upto);
}

static void enqueued_done(int rc, void *arg)
{
    (void)rc;
    free(arg);
}

static void on_published(const char *batch_id, long upto, void *arg)
{
    struct batch_svc *svc = arg;
    struct enqueued_job *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return;
    snprintf(e->id, sizeof(e->id), "%s", batch_id);
    e->upto = upto;
    if (store_submit(svc->app->store, enqueued_job, enqueued_done, e) != 0)
        free(e);
}

static void on_state(const char *cause, void *arg)
{
    struct batch_svc *svc = arg;

    free(svc->unavailable);
    svc->unavailable = NULL;
    if (cause == NULL) {
        ig_info("batches: JetStream stream %s ready (consumer igbatch-%s)", BATCH_JS_STREAM,
                svc->gateway);
        return;
    }
    ig_warn("batches: %s", cause);
    if (asprintf(&svc->unavailable, "batches are unavailable: %s", cause) < 0)
        svc->unavailable = NULL;
}

/* --------------------------------------------------------------- start-up -- */

const char *batch_svc_unavailable(const struct batch_svc *svc)
{
    if (svc == NULL)
        return "batches run on gateways only";
    return svc->unavailable;
}

/* Every EXPIRY_CHECK_S: batches past their 24 h window stop and end as expired. */
static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    struct batch_svc *svc = arg;
    int64_t now = ig_unix_s();
    (void)fd;
    (void)what;

    for (struct batch_run *r = svc->runs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->state == RUN_IN_PROGRESS && now >= r->expires_at) {
            ig_warn("batches: %s expired (24 h window) with %ld of %ld lines done", r->id,
                    r->n_done, r->total);
            r->state = RUN_STOPPING;
            r->end_status = "expired";
            batch_run_maybe_finish(svc, r);
        }
    }
}

/* The batches the database holds, read at start-up. */
struct load_job {
    struct batch_anchor *anchor;
    struct batch_row *rows;
    size_t n;
};

static int load_job(sqlite3 *db, void *arg)
{
    struct load_job *l = arg;
    return batch_db_load(db, &l->rows, &l->n);
}

/* Takes up batch ROW again after a restart. */
static void resume(struct batch_svc *svc, struct batch_row *row)
{
    struct batch_run *run = add_run(svc, row->id, row->owner, row->endpoint, row->input_file_id);

    if (run == NULL || (strcmp(row->status, "validating") != 0 &&
                        size_run(run, row->total, row->has_result) != 0)) {
        ig_error("batches: out of memory resuming %s", row->id);
        if (run != NULL)
            drop_run(svc, run);
        return;
    }
    if (strcmp(row->status, "validating") != 0)
        row->has_result = NULL; /* taken */
    run->n_done = row->n_results;
    run->expires_at = row->expires_at;
    ig_info("batches: resuming %s (%s, %ld of %ld lines done)", row->id, row->status,
            row->n_results, row->total);
    if (strcmp(row->status, "validating") == 0) {
        start_validation(svc, run, 0);
        return;
    }
    run->state = RUN_IN_PROGRESS;
    if (strcmp(row->status, "finalizing") == 0) {
        run->n_done = run->total;
    } else if (strcmp(row->status, "cancelling") == 0) {
        run->state = RUN_STOPPING;
        run->end_status = "cancelled";
    } else if (row->enqueued < row->total) {
        start_validation(svc, run, row->enqueued); /* lines never published */
    }
    batch_run_maybe_finish(svc, run);
}

static void load_done(int rc, void *arg)
{
    static const struct batch_js_callbacks cbs = {batch_line_on_msg, on_published, on_state};
    struct load_job *l = arg;
    struct batch_svc *svc = batch_anchor_svc(l->anchor);
    struct timeval tv = {EXPIRY_CHECK_S, 0};
    char *cause = NULL;

    if (svc != NULL && rc != 0) {
        ig_error("batches: cannot read the batches from the database (%s)", ig_strerror(rc));
        free(svc->unavailable);
        svc->unavailable = strdup("batches are unavailable: the database failed at start-up");
    } else if (svc != NULL) {
        long ack_wait_ms = (long)svc->app->cfg->limits.request_timeout_s * 1000 + 30000;
        svc->js = batch_js_start(svc->app->base, &svc->app->cfg->nats, svc->gateway,
                                 svc->app->cfg->batches.concurrency, ack_wait_ms, &cbs, svc,
                                 &cause);
        if (svc->js == NULL) {
            ig_error("%s", cause != NULL ? cause : "batches: cannot start");
            free(svc->unavailable);
            if (asprintf(&svc->unavailable, "batches are unavailable: %s",
                         cause != NULL ? cause : "cannot start") < 0)
                svc->unavailable = NULL;
            free(cause);
        } else {
            for (size_t i = 0; i < l->n; i++)
                resume(svc, &l->rows[i]);
            svc->expiry = event_new(svc->app->base, -1, EV_PERSIST, on_expiry, svc);
            if (svc->expiry != NULL)
                evtimer_add(svc->expiry, &tv);
        }
    }
    for (size_t i = 0; i < l->n; i++)
        free(l->rows[i].has_result);
    free(l->rows);
    batch_anchor_release(l->anchor);
    free(l);
}

/* Writes this gateway's name on the bus into OUT: nats.name, else the host name, with
 * characters outside A-Z a-z 0-9 _ - replaced by '-'. */
static void gateway_name(const struct cfg *cfg, char *out, size_t size)
{
    char host[128] = "gateway";

    if (cfg->nats.name != NULL)
        snprintf(host, sizeof(host), "%s", cfg->nats.name);
    else
        (void)gethostname(host, sizeof(host) - 1);
    snprintf(out, size, "%.63s", host);
    for (char *p = out; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            *p = '-';
}

int batch_svc_start(struct gw_app *app, char **cause)
{
    struct batch_svc *svc = calloc(1, sizeof(*svc));
    struct load_job *l = NULL;
    unsigned char r[32];

    if (svc == NULL || (svc->anchor = calloc(1, sizeof(*svc->anchor))) == NULL ||
        RAND_bytes(r, sizeof(r)) != 1) {
        if (svc != NULL)
            free(svc->anchor);
        free(svc);
        *cause = strdup("batches: out of memory (or no random bytes)");
        return IG_ENOMEM;
    }
    svc->anchor->svc = svc;
    svc->anchor->refs = 1;
    svc->app = app;
    app->batch = svc;
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(svc->token + 2 * i, 3, "%02x", r[i]);
    OPENSSL_cleanse(r, sizeof(r));
    batch_files_dir(app, svc->dir, sizeof(svc->dir));
    svc->max_file_bytes = (size_t)app->cfg->batches.max_file_bytes;
    if (app->cfg->nats.urls == NULL) {
        svc->unavailable = strdup("batches need a NATS server with JetStream: configure "
                                  "`nats: {url: nats://HOST:4222}` (nats-server -js)");
        return 0;
    }
    gateway_name(app->cfg, svc->gateway, sizeof(svc->gateway));
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        *cause = strdup("batches: out of memory");
        return IG_ENOMEM;
    }
    l->anchor = batch_anchor_take(svc);
    if (store_submit(app->store, load_job, load_done, l) != 0) {
        batch_anchor_release(l->anchor);
        free(l);
        *cause = strdup("batches: the database refused to read the batches");
        return IG_EIO;
    }
    return 0;
}

void batch_svc_free(struct batch_svc *svc)
{
    if (svc == NULL)
        return;
    if (svc->expiry != NULL)
        event_free(svc->expiry);
    batch_line_drop_all(svc); /* unacknowledged: they run again at the next start */
    batch_js_free(svc->js);
    while (svc->runs != NULL)
        drop_run(svc, svc->runs);
    svc->anchor->svc = NULL;
    batch_anchor_release(svc->anchor);
    free(svc->unavailable);
    free(svc);
}
