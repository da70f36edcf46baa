/*
 * The batch service on the event loop (batch.h, batch_svc.h).
 *
 * A batch goes validating -> in_progress -> finalizing -> completed (or failed at
 * validation, cancelling -> cancelled, expired after its 24 h window). Each transition is
 * a store job, so the database always says where a batch stands and a restart resumes it.
 *
 * A line arrives from JetStream (batch_js.c) and runs as a real HTTP request into the
 * gateway's own server, over a socketpair adopted as a connection named "batch", so that
 * routing, limits and usage apply as for any client. The request carries this process's
 * random token and the batch's owner key: gw_auth_check() takes that owner as the caller
 * only when both the connection and the token are the service's own. The answer is stored
 * as the line's result (INSERT OR IGNORE on (batch, line)) and only then is the message
 * acknowledged: a crash in between runs the line again, and the output still has one
 * result for it. A request that never got an answer from a model (no connection, the
 * gateway's 502/503/504, a 429) is handed back with a delay and tried up to
 * MAX_DELIVERIES times, then recorded as failed.
 */
#include "batch.h"
#include "batch_db.h"
#include "batch_js.h"
#include "batch_svc.h"
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "http_upstream.h"
#include "ig_json.h"
#include "ig_log.h"
#include "ig_time.h"
#include "store.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOKEN_HEADER "X-Infergate-Batch-Token"
#define OWNER_HEADER "X-Infergate-Batch-Owner"
#define INTERNAL_PEER "batch"
#define MAX_DELIVERIES 5
#define RETRY_DELAY_MS 1000
#define MAX_RESPONSE_BYTES (16u << 20)
#define EXPIRY_CHECK_S 30
#define JSON_DEPTH_MAX 64

/* Where a batch of this process stands. */
enum run_state { RUN_VALIDATING, RUN_IN_PROGRESS, RUN_STOPPING, RUN_FINISHING };

/* A batch being worked on. */
struct batch_run {
    char id[BATCH_ID_MAX + 1];
    char owner[AUTH_NAME_MAX];
    char endpoint[32];
    char input_file_id[BATCH_ID_MAX + 1];
    enum run_state state;
    const char *end_status; /* RUN_STOPPING: "cancelled" or "expired" */
    long total, n_done;
    uint8_t *has_result, *is_running; /* a bit per line */
    int in_flight;
    int64_t expires_at;
    struct batch_run *next;
};

struct batch_anchor {
    struct batch_svc *svc;
    int refs;
};

/* One line running as a request into the gateway. */
struct line_call {
    struct batch_svc *svc;
    struct batch_run *run;
    struct batch_js_msg *msg;
    long line;
    struct upstream_req *ureq;
    char *body;
    char *custom_id;
    struct evbuffer *answer;
    bool is_too_large;
    int status;
    char request_id[BATCH_ID_MAX + 32];
    char url[64];
    char id_header[BATCH_ID_MAX + 48];
    char token_header[128];
    char owner_header[2 * AUTH_NAME_MAX + 48];
    struct line_call *prev, *next;
};

struct batch_svc {
    struct gw_app *app;
    struct batch_anchor *anchor;
    struct batch_js *js;
    char *unavailable;
    char token[65];
    char gateway[80];
    char dir[BATCH_PATH_MAX];
    size_t max_file_bytes;
    struct batch_run *runs;
    struct line_call *calls;
    struct event *expiry;
};

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

/* Returns whether bit I of MAP is set. */
static bool bit(const uint8_t *map, long i)
{
    return (map[i / 8] >> (i % 8)) & 1u;
}

/* Sets bit I of MAP to V. */
static void set_bit(uint8_t *map, long i, bool v)
{
    if (v)
        map[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        map[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* Returns batch ID's run, or NULL. */
static struct batch_run *find_run(struct batch_svc *svc, const char *id)
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
    struct batch_run *run = svc != NULL ? find_run(svc, j->id) : NULL;

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
static void maybe_finish(struct batch_svc *svc, struct batch_run *run)
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
    struct batch_run *run = svc != NULL ? find_run(svc, v->id) : NULL;

    if (run == NULL || rc != 0) {
        if (rc != 0)
            ig_error("batches: validating %s failed (%s); retried at the next start", v->id,
                     ig_strerror(rc));
        if (run != NULL)
            drop_run(svc, run);
    } else if (v->is_cancelled) {
        run->state = RUN_STOPPING;
        run->end_status = "cancelled";
        maybe_finish(svc, run);
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
    struct batch_run *run = find_run(svc, id);

    if (run == NULL || run->state == RUN_STOPPING || run->state == RUN_FINISHING)
        return;
    if (run->state == RUN_VALIDATING)
        return; /* validation sees the cancel in the database and ends it */
    run->state = RUN_STOPPING;
    run->end_status = "cancelled";
    maybe_finish(svc, run);
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

/* ----------------------------------------------------------- running lines -- */

/* The decision on a line's message is made: releases the call. */
static void call_free(struct line_call *c)
{
    struct batch_svc *svc = c->svc;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (svc->calls == c)
        svc->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->ureq != NULL)
        upstream_cancel(c->ureq);
    if (c->answer != NULL)
        evbuffer_free(c->answer);
    free(c->body);
    free(c->custom_id);
    free(c);
}


#define DECIDE_ACK (-1L)
#define DECIDE_DROP (-2L)

/* Ends the line of C: its message is acked (DECIDE_ACK), released (DECIDE_DROP) or handed
 * back to be delivered again in DECISION milliseconds. */
static void line_end(struct line_call *c, long decision)
{
    struct batch_svc *svc = c->svc;
    struct batch_run *run = c->run;

    if (decision == DECIDE_ACK)
        batch_js_ack(svc->js, c->msg);
    else if (decision == DECIDE_DROP)
        batch_js_drop(svc->js, c->msg);
    else
        batch_js_nak(svc->js, c->msg, decision);
    c->msg = NULL;
    set_bit(run->is_running, c->line, false);
    run->in_flight--;
    call_free(c);
    maybe_finish(svc, run);
}

/* A result on its way into the database; the call is detached from the service's list. */
struct record_job {
    struct batch_anchor *anchor;
    struct line_call *call;
    char id[BATCH_ID_MAX + 1];
    long line;
    bool is_ok, is_new;
    char *result;
};

static int record_job(sqlite3 *db, void *arg)
{
    struct record_job *r = arg;
    return batch_db_record(db, r->id, r->line, r->is_ok, r->result, &r->is_new);
}

static void record_done(int rc, void *arg)
{
    struct record_job *r = arg;
    struct batch_svc *svc = batch_anchor_svc(r->anchor);
    struct line_call *c = r->call;

    if (svc == NULL) { /* stopped meanwhile: the line runs again at the next start */
        batch_js_msg_free(c->msg);
        c->msg = NULL;
        if (c->answer != NULL)
            evbuffer_free(c->answer);
        free(c->body);
        free(c->custom_id);
        free(c);
    } else {
        if (rc == 0 && r->is_new) {
            set_bit(c->run->has_result, c->line, true);
            c->run->n_done++;
        }
        if (rc != 0)
            ig_error("batches: storing the result of %s line %ld failed (%s); retrying", r->id,
                     r->line, ig_strerror(rc));
        line_end(c, rc == 0 ? DECIDE_ACK : RETRY_DELAY_MS);
    }
    batch_anchor_release(r->anchor);
    free(r->result);
    free(r);
}

/* Returns the output line for C (caller frees): its answer, or ERROR_MESSAGE when it got
 * none. */
static char *result_line(struct line_call *c, const char *error_message, bool *is_ok)
{
    char id[BATCH_ID_MAX + 1], err[128];
    json_t *doc, *body = NULL;
    char *text;

    batch_new_id("batch_req_", id, sizeof(id));
    *is_ok = false;
    if (error_message != NULL) {
        doc = json_pack("{s:s, s:s?, s:n, s:{s:s, s:s}}", "id", id, "custom_id", c->custom_id,
                        "response", "error", "code", "request_failed", "message",
                        error_message);
    } else {
        size_t len = evbuffer_get_length(c->answer);
        const char *bytes = (const char *)evbuffer_pullup(c->answer, -1);
        body = bytes != NULL ? ig_json_parse(bytes, len, JSON_DEPTH_MAX, err, sizeof(err)) : NULL;
        if (body == NULL)
            body = json_stringn(bytes != NULL ? bytes : "", bytes != NULL ? len : 0);
        *is_ok = c->status >= 200 && c->status < 300;
        doc = json_pack("{s:s, s:s?, s:{s:i, s:s, s:o}, s:n}", "id", id, "custom_id",
                        c->custom_id, "response", "status_code", c->status, "request_id",
                        c->request_id, "body", body != NULL ? body : json_null(), "error");
    }
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* Stores the result of C, then acknowledges its message. */
static void record(struct line_call *c, const char *error_message)
{
    struct batch_svc *svc = c->svc;
    struct record_job *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->result = result_line(c, error_message, &r->is_ok)) == NULL) {
        free(r);
        line_end(c, RETRY_DELAY_MS);
        return;
    }
    r->anchor = batch_anchor_take(svc);
    r->call = c;
    snprintf(r->id, sizeof(r->id), "%s", c->run->id);
    r->line = c->line;
    if (store_submit(svc->app->store, record_job, record_done, r) != 0) {
        batch_anchor_release(r->anchor);
        free(r->result);
        free(r);
        line_end(c, RETRY_DELAY_MS);
        return;
    }
    /* Detached: the job owns the call until record_done(). */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (svc->calls == c)
        svc->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Opens the connection of a line's request: a socketpair whose other end becomes a
 * connection of the gateway's own server. */
static int open_internal(void *arg)
{
    struct line_call *c = arg;
    struct gw_app *app = c->svc->app;
    int sv[2];

    if (app->server == NULL || app->is_stopping ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    if (http_server_adopt(app->server, sv[1], INTERNAL_PEER) != 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    return sv[0];
}

static void on_line_headers(struct upstream_req *ureq, int status, const char *content_type,
                            void *arg)
{
    struct line_call *c = arg;
    (void)ureq;
    (void)content_type;
    c->status = status;
}

static int on_line_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct line_call *c = arg;
    (void)ureq;

    if (evbuffer_get_length(c->answer) + len > MAX_RESPONSE_BYTES)
        c->is_too_large = true;
    else
        evbuffer_add(c->answer, data, len);
    return 0;
}

static void on_line_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct line_call *c = arg;
    bool is_unanswered = rc != 0 || c->status == 429 || c->status == 502 || c->status == 503 ||
                         c->status == 504;
    char why[256];
    (void)ureq;

    c->ureq = NULL; /* freed by the pool after this returns */
    if (is_unanswered && c->svc->app->is_stopping) {
        line_end(c, DECIDE_DROP); /* the next start runs it */
        return;
    }
    if (is_unanswered && c->msg->deliveries < MAX_DELIVERIES) {
        ig_debug("batches: %s line %ld: %s; trying again", c->run->id, c->line,
                 rc != 0 ? message : "model unavailable");
        line_end(c, RETRY_DELAY_MS * c->msg->deliveries);
        return;
    }
    if (rc != 0) {
        snprintf(why, sizeof(why), "no answer after %d attempts: %s", c->msg->deliveries,
                 message != NULL ? message : ig_strerror(rc));
        record(c, why);
    } else if (c->is_too_large) {
        snprintf(why, sizeof(why), "the answer is larger than %u bytes", MAX_RESPONSE_BYTES);
        record(c, why);
    } else {
        record(c, NULL);
    }
}

/* Writes NAME as hex into OUT (SIZE bytes). */
static void hex_of(const char *name, char *out, size_t size)
{
    size_t i = 0;

    for (; name[i] != '\0' && 2 * i + 2 < size; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)name[i]);
    out[2 * i] = '\0';
}

/* Runs line MSG of RUN as a request into the gateway. */
static void run_line(struct batch_svc *svc, struct batch_run *run, struct batch_js_msg *msg)
{
    static const struct upstream_callbacks cbs = {on_line_headers, on_line_data, on_line_done};
    struct line_call *c = calloc(1, sizeof(*c));
    json_t *doc = NULL;
    char err[128], owner_hex[2 * AUTH_NAME_MAX + 1];
    const char *headers[6];
    struct upstream_spec spec = {0};

    if (c == NULL) {
        batch_js_nak(svc->js, msg, RETRY_DELAY_MS);
        return;
    }
    c->svc = svc;
    c->run = run;
    c->msg = msg;
    c->line = msg->line;
    c->answer = evbuffer_new();
    doc = ig_json_parse(msg->data, msg->len, JSON_DEPTH_MAX, err, sizeof(err));
    c->custom_id = strdup(json_string_value(json_object_get(doc, "custom_id")) != NULL
                              ? json_string_value(json_object_get(doc, "custom_id"))
                              : "");
    c->body = json_dumps(json_object_get(doc, "body"), JSON_COMPACT);
    json_decref(doc);
    set_bit(run->is_running, c->line, true);
    run->in_flight++;
    c->next = svc->calls;
    if (svc->calls != NULL)
        svc->calls->prev = c;
    svc->calls = c;
    if (c->answer == NULL || c->custom_id == NULL) {
        line_end(c, RETRY_DELAY_MS);
        return;
    }
    if (c->body == NULL) {
        record(c, "the request line is not valid JSON");
        return;
    }
    snprintf(c->request_id, sizeof(c->request_id), "%s-%ld", run->id, c->line);
    snprintf(c->url, sizeof(c->url), "http://batch.internal%s", run->endpoint);
    snprintf(c->id_header, sizeof(c->id_header), "X-Request-Id: %s", c->request_id);
    snprintf(c->token_header, sizeof(c->token_header), TOKEN_HEADER ": %s", svc->token);
    hex_of(run->owner, owner_hex, sizeof(owner_hex));
    snprintf(c->owner_header, sizeof(c->owner_header), OWNER_HEADER ": %s", owner_hex);
    headers[0] = "Content-Type: application/json";
    headers[1] = "Connection: close";
    headers[2] = c->id_header;
    headers[3] = c->token_header;
    headers[4] = c->owner_header;
    headers[5] = NULL;
    spec.method = "POST";
    spec.url = c->url;
    spec.headers = headers;
    spec.body = c->body;
    spec.body_len = strlen(c->body);
    spec.timeout_ms = (long)svc->app->cfg->limits.request_timeout_s * 1000 + 10000;
    spec.connect_timeout_ms = 5000;
    spec.open_socket = open_internal;
    spec.open_socket_arg = c;
    c->ureq = upstream_start(svc->app->pool, &spec, &cbs, c);
    if (c->ureq == NULL)
        line_end(c, RETRY_DELAY_MS);
}

static void on_msg(struct batch_js_msg *msg, void *arg)
{
    struct batch_svc *svc = arg;
    struct batch_run *run = find_run(svc, msg->batch_id);

    if (svc->app->is_stopping) {
        batch_js_drop(svc->js, msg);
    } else if (run == NULL || run->state != RUN_IN_PROGRESS || msg->line < 0 ||
               msg->line >= run->total || bit(run->has_result, msg->line)) {
        batch_js_ack(svc->js, msg); /* ended, cancelled, or already answered: not run */
    } else if (bit(run->is_running, msg->line)) {
        batch_js_drop(svc->js, msg); /* delivered again while running: decided by the run */
    } else {
        run_line(svc, run, msg);
    }
}

/* --------------------------------------------------------------- start-up -- */

bool batch_svc_internal_owner(const struct batch_svc *svc, const struct http_request *req,
                              char *owner, size_t size)
{
    const char *token, *hex;
    size_t n;

    if (svc == NULL || strcmp(http_request_peer(req), INTERNAL_PEER) != 0)
        return false;
    token = http_request_header(req, TOKEN_HEADER);
    hex = http_request_header(req, OWNER_HEADER);
    if (token == NULL || hex == NULL || strlen(token) != 64 ||
        CRYPTO_memcmp(token, svc->token, 64) != 0)
        return false;
    n = strlen(hex);
    if (n % 2 != 0 || n / 2 >= size)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return false;
        owner[i] = (char)v;
    }
    owner[n / 2] = '\0';
    return true;
}

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
            maybe_finish(svc, r);
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
    maybe_finish(svc, run);
}

static void load_done(int rc, void *arg)
{
    static const struct batch_js_callbacks cbs = {on_msg, on_published, on_state};
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
    while (svc->calls != NULL) { /* unacknowledged: they run again at the next start */
        struct line_call *c = svc->calls;
        if (c->ureq != NULL)
            upstream_cancel(c->ureq);
        c->ureq = NULL;
        if (c->msg != NULL)
            batch_js_drop(svc->js, c->msg);
        c->msg = NULL;
        call_free(c);
    }
    batch_js_free(svc->js);
    while (svc->runs != NULL)
        drop_run(svc, svc->runs);
    svc->anchor->svc = NULL;
    batch_anchor_release(svc->anchor);
    free(svc->unavailable);
    free(svc);
}
