/* Usage rows accumulated in memory and written in batches (see auth_usage.h). */
#include "auth_usage.h"
#include "ig_log.h"
#include "ig_time.h"
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PENDING 4096

/* Usage not yet written: one row's increments. */
struct usage_row {
    char key_name[AUTH_NAME_MAX];
    char model[256];
    int64_t hour;
    uint64_t requests, prompt_tokens, completion_tokens, errors, latency_ms;
};

struct usage_log {
    struct store *st;
    struct usage_row *pending;
    size_t n_pending;
};

struct usage_log *usage_log_new(struct store *st)
{
    struct usage_log *log = calloc(1, sizeof(*log));
    if (log != NULL)
        log->st = st;
    return log;
}

void usage_log_free(struct usage_log *log)
{
    if (log == NULL)
        return;
    usage_log_flush(log);
    free(log->pending);
    free(log);
}

/* Returns the pending row of NAME x MODEL x HOUR, made when absent; NULL when full. */
static struct usage_row *pending_row(struct usage_log *a, const char *name, const char *model,
                                     int64_t hour)
{
    struct usage_row *row;

    for (size_t i = 0; i < a->n_pending; i++)
        if (a->pending[i].hour == hour && strcmp(a->pending[i].key_name, name) == 0 &&
            strcmp(a->pending[i].model, model) == 0)
            return &a->pending[i];
    if (a->n_pending == MAX_PENDING)
        usage_log_flush(a);
    if (a->pending == NULL)
        a->pending = malloc(MAX_PENDING * sizeof(*a->pending)); /* rows are zeroed as made */
    if (a->pending == NULL || a->n_pending == MAX_PENDING)
        return NULL;
    row = &a->pending[a->n_pending++];
    memset(row, 0, sizeof(*row));
    snprintf(row->key_name, sizeof(row->key_name), "%s", name);
    snprintf(row->model, sizeof(row->model), "%s", model);
    row->hour = hour;
    return row;
}

void usage_log_add(struct usage_log *a, const char *name, const char *model, uint64_t requests,
                   const struct auth_usage *u)
{
    struct usage_row *row = pending_row(a, name, model, ig_unix_s() / 3600 * 3600);

    if (row == NULL)
        return;
    row->requests += requests;
    row->prompt_tokens += u->prompt_tokens;
    row->completion_tokens += u->completion_tokens;
    row->errors += u->is_error ? 1 : 0;
    row->latency_ms += u->latency_ms;
}

/* Adds an unwritten row back to the pending ones (its own hour). */
static void requeue_row(struct usage_log *a, const struct usage_row *r)
{
    struct usage_row *row = pending_row(a, r->key_name, r->model, r->hour);

    if (row == NULL)
        return;
    row->requests += r->requests;
    row->prompt_tokens += r->prompt_tokens;
    row->completion_tokens += r->completion_tokens;
    row->errors += r->errors;
    row->latency_ms += r->latency_ms;
}

/* A batch of usage rows for the writer. */
struct usage_batch {
    struct usage_log *a;
    struct usage_row *rows;
    size_t n;
};

static int usage_job(sqlite3 *db, void *arg)
{
    struct usage_batch *b = arg;
    sqlite3_stmt *stmt = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO usage_hourly (key_name, model, hour, requests, prompt_tokens,"
            " completion_tokens, errors, latency_ms_sum) VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT (key_name, model, hour) DO UPDATE SET"
            " requests = requests + excluded.requests,"
            " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
            " completion_tokens = completion_tokens + excluded.completion_tokens,"
            " errors = errors + excluded.errors,"
            " latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum",
            -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const struct usage_row *r = &b->rows[i];
        sqlite3_reset(stmt);
        sqlite3_bind_text(stmt, 1, r->key_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, r->model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, r->hour);
        sqlite3_bind_int64(stmt, 4, (sqlite3_int64)r->requests);
        sqlite3_bind_int64(stmt, 5, (sqlite3_int64)r->prompt_tokens);
        sqlite3_bind_int64(stmt, 6, (sqlite3_int64)r->completion_tokens);
        sqlite3_bind_int64(stmt, 7, (sqlite3_int64)r->errors);
        sqlite3_bind_int64(stmt, 8, (sqlite3_int64)r->latency_ms);
        if (sqlite3_step(stmt) != SQLITE_DONE)
            rc = IG_EIO;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static void usage_done(int rc, void *arg)
{
    struct usage_batch *b = arg;
    if (rc != 0) { /* e.g. the file locked by another process: they go with the next flush */
        ig_error("usage: %zu rows could not be written (%s); retrying", b->n, ig_strerror(rc));
        for (size_t i = 0; i < b->n; i++)
            requeue_row(b->a, &b->rows[i]);
    }
    free(b->rows);
    free(b);
}

void usage_log_flush(struct usage_log *a)
{
    struct usage_batch *b;

    if (a->n_pending == 0 || (b = calloc(1, sizeof(*b))) == NULL)
        return;
    b->a = a;
    b->rows = a->pending;
    b->n = a->n_pending;
    if (store_submit(a->st, usage_job, usage_done, b) != 0) {
        free(b); /* the writer is saturated or stopped: keep them for the next flush */
        return;
    }
    a->pending = NULL;
    a->n_pending = 0;
}

