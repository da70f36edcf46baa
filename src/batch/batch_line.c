/*
 * A batch's lines on the event loop (see batch_svc.c for the whole picture).
 *
 * A line arrives from JetStream and runs as a real HTTP request into the gateway's own
 * server, over an in-memory pipe adopted as a connection named "batch" (batch_pipe.h), so
 * that routing, limits and usage apply as for any client. The request carries this process's random token and
 * the batch's owner key: gw_auth_check() takes that owner as the caller only when both the
 * connection and the token are the service's own. The answer is stored as the line's
 * result (INSERT OR IGNORE on (batch, line)) and only then is the message acknowledged: a
 * crash in between runs the line again, and the output still has one result for it. A
 * request that never got an answer from a model (no connection, the gateway's 502/503/504,
 * a 429) is handed back with a delay and tried up to MAX_DELIVERIES times, then recorded
 * as failed.
 */
#include "batch.h"
#include "batch_db.h"
#include "batch_js.h"
#include "batch_pipe.h"
#include "batch_svc.h"
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "http_upstream.h"
#include "ig_json.h"
#include "ig_log.h"
#include "store.h"

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_HEADER "X-Infergate-Batch-Token"
#define OWNER_HEADER "X-Infergate-Batch-Owner"
#define INTERNAL_PEER "batch"
#define MAX_DELIVERIES 5
#define RETRY_DELAY_MS 1000
#define MAX_RESPONSE_BYTES (16u << 20)
#define JSON_DEPTH_MAX 64

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


/* Takes C off the list of the service's calls. */
static void call_unlink(struct line_call *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (c->svc->calls == c)
        c->svc->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* The decision on a line's message is made: releases the call. */
static void call_free(struct line_call *c)
{
    call_unlink(c);
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
    batch_set_bit(run->is_running, c->line, false);
    run->in_flight--;
    call_free(c);
    batch_run_maybe_finish(svc, run);
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
            batch_set_bit(c->run->has_result, c->line, true);
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
    call_unlink(c); /* detached: the job owns the call until record_done() */
}

/* Opens the connection of a line's request: an in-memory pipe into the gateway's own
 * server (batch_pipe.h). */
static void *open_internal(void *arg, const struct http_stream_sink *sink, void *client,
                           const struct http_stream_ops **ops)
{
    struct line_call *c = arg;
    struct gw_app *app = c->svc->app;

    if (app->server == NULL || app->is_stopping)
        return NULL;
    return batch_pipe_open(app->server, INTERNAL_PEER, sink, client, ops);
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
    batch_set_bit(run->is_running, c->line, true);
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
    spec.open_stream = open_internal;
    spec.open_stream_arg = c;
    c->ureq = upstream_start(svc->app->pool, &spec, &cbs, c);
    if (c->ureq == NULL)
        line_end(c, RETRY_DELAY_MS);
}

void batch_line_on_msg(struct batch_js_msg *msg, void *arg)
{
    struct batch_svc *svc = arg;
    struct batch_run *run = batch_run_find(svc, msg->batch_id);

    if (svc->app->is_stopping) {
        batch_js_drop(svc->js, msg);
    } else if (run == NULL || run->state != RUN_IN_PROGRESS || msg->line < 0 ||
               msg->line >= run->total || batch_bit(run->has_result, msg->line)) {
        batch_js_ack(svc->js, msg); /* ended, cancelled, or already answered: not run */
    } else if (batch_bit(run->is_running, msg->line)) {
        batch_js_drop(svc->js, msg); /* delivered again while running: decided by the run */
    } else {
        run_line(svc, run, msg);
    }
}

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

void batch_line_drop_all(struct batch_svc *svc)
{
    while (svc->calls != NULL) {
        struct line_call *c = svc->calls;
        if (c->ureq != NULL)
            upstream_cancel(c->ureq);
        c->ureq = NULL;
        if (c->msg != NULL)
            batch_js_drop(svc->js, c->msg);
        c->msg = NULL;
        call_free(c);
    }
}
