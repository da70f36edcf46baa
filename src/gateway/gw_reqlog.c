/*
 * The request log and model events in SQLite: rows gathered in memory and written by the
 * store's writer thread in one transaction a second (the flush window: a crash loses at
 * most that much), old rows pruned by age (storage.retention_days) and count
 * (storage.max_log_rows) every PRUNE_EVERY_S; read back by GET /admin/requests and
 * GET /admin/events with filters and paging (newest first, `before=ID` for the next page).
 */
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "store.h"

#include <event2/event.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_MS 1000
#define PRUNE_EVERY_S 600
#define MAX_PENDING 16384 /* rows held while the writer is slow; beyond it rows are dropped */
#define MAX_PAGE 1000
#define DEFAULT_PAGE 100
#define REQUEST_COLS 18    /* parameters of one request row */
#define ROWS_PER_INSERT 32 /* request rows per INSERT: 576 parameters, under SQLite's 999 */
#define REQUEST_HEAD                                                                              \
    "INSERT INTO requests (ts_ms, request_id, key_name, model, endpoint, status, stream,"         \
    " prompt_tokens, completion_tokens, ttft_ms, queue_ms, duration_ms, bytes_in, bytes_out,"     \
    " client, error, backend, route) VALUES "
#define REQUEST_TUPLE "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

/* One row waiting to be written: a request (is_event false) or a model event. */
struct log_row {
    bool is_event;
    struct gw_request_record r; /* strings point into text */
    char *text;                 /* the strings, one allocation */
};

struct gw_reqlog {
    struct gw_app *app;
    struct log_row *pending;
    size_t n_pending, cap;
    size_t n_dropped;
    struct event *flush_ev;
    int64_t pruned_s; /* when the last prune was queued (monotonic seconds) */
};

/* A batch for the writer: rows to insert, or a prune. */
struct log_batch {
    struct log_row *rows;
    size_t n;
    int retention_days;
    int max_rows;
    bool is_prune;
};

/* Copies the strings of R into one allocation owned by ROW. */
static bool row_copy(struct log_row *row, const struct gw_request_record *r)
{
    const char *src[] = {r->request_id, r->key,    r->model, r->asked_model,
                         r->endpoint,   r->client, r->error, r->backend, r->route};
    const char **dst[] = {&row->r.request_id, &row->r.key,    &row->r.model,
                          &row->r.asked_model, &row->r.endpoint, &row->r.client,
                          &row->r.error,      &row->r.backend, &row->r.route};
    size_t n = sizeof(src) / sizeof(src[0]), total = 0, at = 0;

    row->r = *r;
    row->r.upstream_error = NULL; /* not logged; static anyway */
    for (size_t i = 0; i < n; i++)
        total += src[i] != NULL ? strlen(src[i]) + 1 : 0;
    row->text = malloc(total > 0 ? total : 1);
    if (row->text == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == NULL) {
            *dst[i] = NULL;
            continue;
        }
        size_t len = strlen(src[i]) + 1;
        memcpy(row->text + at, src[i], len);
        *dst[i] = row->text + at;
        at += len;
    }
    return true;
}

/* Appends a row (copied) to the pending ones; counts a drop when full. */
static void pending_add(struct gw_reqlog *log, bool is_event, const struct gw_request_record *r)
{
    if (log->n_pending == log->cap) {
        size_t cap = log->cap > 0 ? log->cap * 2 : 64;
        struct log_row *rows = cap <= MAX_PENDING ? realloc(log->pending, cap * sizeof(*rows))
                                                  : NULL;
        if (rows == NULL) {
            log->n_dropped++;
            return;
        }
        log->pending = rows;
        log->cap = cap;
    }
    struct log_row *row = &log->pending[log->n_pending];
    row->is_event = is_event;
    if (!row_copy(row, r)) {
        log->n_dropped++;
        return;
    }
    log->n_pending++;
}

void gw_reqlog_add(struct gw_reqlog *log, const struct gw_request_record *r)
{
    if (log != NULL)
        pending_add(log, false, r);
}

void gw_reqlog_event(struct gw_reqlog *log, int64_t ts_ms, const char *model, const char *event,
                     const char *detail)
{
    /* An event travels in a record: model, the event name as endpoint, detail as error. */
    struct gw_request_record r = {.ts_ms = ts_ms, .model = model, .endpoint = event,
                                  .error = detail};
    if (log != NULL)
        pending_add(log, true, &r);
}

/* Binds text or NULL. */
static void bind_text(sqlite3_stmt *stmt, int i, const char *text)
{
    if (text != NULL)
        sqlite3_bind_text(stmt, i, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(stmt, i);
}

/* Binds V, or NULL when negative (not measured). */
static void bind_ms(sqlite3_stmt *stmt, int i, int64_t v)
{
    if (v >= 0)
        sqlite3_bind_int64(stmt, i, v);
    else
        sqlite3_bind_null(stmt, i);
}

/* Binds R as the request row at parameters AT+1..AT+REQUEST_COLS of STMT. */
static void bind_request(sqlite3_stmt *stmt, int at, const struct gw_request_record *r)
{
    sqlite3_bind_int64(stmt, at + 1, r->ts_ms);
    bind_text(stmt, at + 2, r->request_id != NULL ? r->request_id : "");
    bind_text(stmt, at + 3, r->key != NULL ? r->key : "-");
    bind_text(stmt, at + 4,
              r->model != NULL ? r->model : (r->asked_model != NULL ? r->asked_model : ""));
    bind_text(stmt, at + 5, r->endpoint != NULL ? r->endpoint : "");
    sqlite3_bind_int(stmt, at + 6, r->status);
    sqlite3_bind_int(stmt, at + 7, r->is_stream ? 1 : 0);
    sqlite3_bind_int64(stmt, at + 8, (sqlite3_int64)r->prompt_tokens);
    sqlite3_bind_int64(stmt, at + 9, (sqlite3_int64)r->completion_tokens);
    bind_ms(stmt, at + 10, r->ttft_ms);
    bind_ms(stmt, at + 11, r->queue_ms);
    sqlite3_bind_int64(stmt, at + 12, r->duration_ms);
    sqlite3_bind_int64(stmt, at + 13, (sqlite3_int64)r->bytes_in);
    sqlite3_bind_int64(stmt, at + 14, (sqlite3_int64)r->bytes_out);
    bind_text(stmt, at + 15, r->client);
    bind_text(stmt, at + 16, r->error);
    bind_text(stmt, at + 17, r->backend);
    bind_text(stmt, at + 18, r->route);
}

/* Returns the kept INSERT of N request rows (N <= ROWS_PER_INSERT), or NULL. */
static sqlite3_stmt *request_insert(sqlite3 *db, size_t n)
{
    static const char tuple[] = REQUEST_TUPLE;
    char sql[sizeof(REQUEST_HEAD) + ROWS_PER_INSERT * sizeof(tuple)];
    size_t at = sizeof(REQUEST_HEAD) - 1;

    memcpy(sql, REQUEST_HEAD, at);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sql[at++] = ',';
        memcpy(sql + at, tuple, sizeof(tuple) - 1);
        at += sizeof(tuple) - 1;
    }
    sql[at] = '\0';
    return store_stmt(db, sql);
}

/* Inserts the N request rows at ROWS with STMT, an INSERT of N rows. */
static int insert_requests(sqlite3_stmt *stmt, const struct log_row *rows, size_t n)
{
    sqlite3_reset(stmt);
    for (size_t i = 0; i < n; i++)
        bind_request(stmt, (int)i * REQUEST_COLS, &rows[i].r);
    return sqlite3_step(stmt) == SQLITE_DONE ? 0 : IG_EIO;
}

/* Inserts one model event row with STMT. */
static int insert_event(sqlite3_stmt *stmt, const struct gw_request_record *r)
{
    sqlite3_reset(stmt);
    sqlite3_bind_int64(stmt, 1, r->ts_ms);
    bind_text(stmt, 2, r->model != NULL ? r->model : "");
    bind_text(stmt, 3, r->endpoint != NULL ? r->endpoint : "");
    bind_text(stmt, 4, r->error);
    return sqlite3_step(stmt) == SQLITE_DONE ? 0 : IG_EIO;
}

/* Deletes rows past the retention age and the row cap. */
static int prune(sqlite3 *db, int retention_days, int max_rows)
{
    sqlite3_stmt *stmt = NULL;
    int64_t cutoff = ig_unix_ms() - (int64_t)retention_days * 86400000;
    int rc = 0;
    static const char *const sql[] = {
        "DELETE FROM requests WHERE ts_ms < ?1",
        "DELETE FROM model_events WHERE ts_ms < ?1",
        "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?2",
        "DELETE FROM model_events WHERE id <= (SELECT MAX(id) FROM model_events) - ?2",
    };

    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]) && rc == 0; i++) {
        if (sqlite3_prepare_v2(db, sql[i], -1, &stmt, NULL) != SQLITE_OK)
            return IG_EIO;
        sqlite3_bind_int64(stmt, 1, cutoff);
        sqlite3_bind_int64(stmt, 2, max_rows);
        rc = sqlite3_step(stmt) == SQLITE_DONE ? 0 : IG_EIO;
        sqlite3_finalize(stmt);
    }
    return rc;
}

/* Writes the batch: request rows ROWS_PER_INSERT to a statement (one statement's overhead
 * for many rows), the rest and the events one by one; the statements are kept prepared. */
static int write_job(sqlite3 *db, void *arg)
{
    struct log_batch *b = arg;
    int rc = 0;

    for (size_t i = 0, k; i < b->n && rc == 0; i += k) {
        sqlite3_stmt *stmt;
        for (k = 0; i + k < b->n && k < ROWS_PER_INSERT && !b->rows[i + k].is_event;)
            k++;
        if (k == 0) {
            k = 1;
            stmt = store_stmt(db, "INSERT INTO model_events (ts_ms, model, event, detail)"
                                  " VALUES (?,?,?,?)");
            rc = stmt != NULL ? insert_event(stmt, &b->rows[i].r) : IG_EIO;
        } else {
            k = k == ROWS_PER_INSERT ? k : 1;
            stmt = request_insert(db, k);
            rc = stmt != NULL ? insert_requests(stmt, b->rows + i, k) : IG_EIO;
        }
        sqlite3_reset(stmt); /* no-op on NULL */
    }
    return rc;
}

/* Frees the rows of a batch. */
static void rows_free(struct log_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].text);
    free(rows);
}

/* Pruning runs as a job of its own: its failure must not roll back the rows written. */
static int prune_job(sqlite3 *db, void *arg)
{
    struct log_batch *b = arg;
    return prune(db, b->retention_days, b->max_rows);
}

static void write_done(int rc, void *arg)
{
    struct log_batch *b = arg;

    if (rc != 0)
        ig_error("request log: %s failed (%s)", b->is_prune ? "pruning" : "writing rows",
                 ig_strerror(rc));
    rows_free(b->rows, b->n);
    free(b);
}

/* Queues the retention job when it is due. */
static void prune_if_due(struct gw_reqlog *log, int64_t now)
{
    struct log_batch *b;

    if ((log->pruned_s != 0 && now - log->pruned_s < PRUNE_EVERY_S) ||
        (b = calloc(1, sizeof(*b))) == NULL)
        return;
    b->is_prune = true;
    b->retention_days = log->app->cfg->storage.retention_days;
    b->max_rows = log->app->cfg->storage.max_log_rows;
    if (store_submit(log->app->store, prune_job, write_done, b) != 0) {
        free(b);
        return;
    }
    log->pruned_s = now;
}

void gw_reqlog_flush(struct gw_reqlog *log)
{
    struct log_batch *b;

    if (log->n_dropped > 0) {
        ig_warn("request log: %zu rows dropped (the database writer is behind)", log->n_dropped);
        log->n_dropped = 0;
    }
    if (log->app->store == NULL)
        return;
    if (log->n_pending > 0 && (b = calloc(1, sizeof(*b))) != NULL) {
        b->rows = log->pending;
        b->n = log->n_pending;
        if (store_submit(log->app->store, write_job, write_done, b) != 0) {
            free(b); /* saturated or stopped: the rows wait for the next flush */
        } else {
            log->pending = NULL;
            log->n_pending = log->cap = 0;
        }
    }
    prune_if_due(log, (int64_t)(ig_now_ms() / 1000));
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_reqlog_flush(arg);
}

struct gw_reqlog *gw_reqlog_new(struct gw_app *app)
{
    struct gw_reqlog *log = calloc(1, sizeof(*log));
    struct timeval tv = {FLUSH_MS / 1000, (FLUSH_MS % 1000) * 1000};

    if (log == NULL)
        return NULL;
    log->app = app;
    log->flush_ev = event_new(app->base, -1, EV_PERSIST, flush_cb, log);
    if (log->flush_ev == NULL || event_add(log->flush_ev, &tv) != 0) {
        gw_reqlog_free(log);
        return NULL;
    }
    return log;
}

void gw_reqlog_free(struct gw_reqlog *log)
{
    if (log == NULL)
        return;
    if (log->flush_ev != NULL)
        event_free(log->flush_ev);
    if (log->app->store != NULL)
        gw_reqlog_flush(log);
    rows_free(log->pending, log->n_pending);
    free(log);
}

/* ------------------------------------------------------------------ reading -- */

/* A query of /admin/requests or /admin/events, run on the writer thread. */
struct log_query {
    struct http_request *req;
    bool is_events;
    char model[256], key[128], endpoint[128], event[64];
    int status; /* 0: any; 1..5: that class (2 = 2xx); else exact */
    int64_t since_ms, until_ms, before_id;
    int limit;
    json_t *rows;
    bool has_more;
};

/* Adds column I of STMT to ROW under NAME: integer, text or null as stored. */
static void set_column(json_t *row, const char *name, sqlite3_stmt *stmt, int i)
{
    switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
        json_object_set_new(row, name, json_integer(sqlite3_column_int64(stmt, i)));
        break;
    case SQLITE_NULL:
        json_object_set_new(row, name, json_null());
        break;
    default:
        json_object_set_new(row, name, json_string((const char *)sqlite3_column_text(stmt, i)));
    }
}

/* Builds the row object of the current result of STMT (columns named by sqlite). */
static json_t *row_json(sqlite3_stmt *stmt)
{
    json_t *row = json_object();
    char ts[32];

    for (int i = 0; i < sqlite3_column_count(stmt); i++)
        set_column(row, sqlite3_column_name(stmt, i), stmt, i);
    ig_format_utc_ms(sqlite3_column_int64(stmt, 1), ts, sizeof(ts));
    json_object_set_new(row, "ts", json_string(ts));
    return row;
}

static int query_job(sqlite3 *db, void *arg)
{
    struct log_query *q = arg;
    sqlite3_stmt *stmt = NULL;
    int step, n = 0;
    const char *sql =
        q->is_events
            ? "SELECT id, ts_ms, model, event, detail FROM model_events"
              " WHERE (?1 = '' OR model = ?1) AND (?4 = '' OR event = ?4)"
              " AND ts_ms >= ?6 AND ts_ms < ?7 AND id < ?8 ORDER BY id DESC LIMIT ?9"
            : "SELECT id, ts_ms, request_id, key_name AS key, model, endpoint, status,"
              " stream, prompt_tokens, completion_tokens, ttft_ms, queue_ms, duration_ms,"
              " bytes_in, bytes_out, client, error, backend, route FROM requests"
              " WHERE (?1 = '' OR model = ?1) AND (?2 = '' OR key_name = ?2)"
              " AND (?3 = '' OR endpoint = ?3)"
              " AND (?5 = 0 OR status = ?5 OR (?5 < 10 AND status / 100 = ?5))"
              " AND ts_ms >= ?6 AND ts_ms < ?7 AND id < ?8 ORDER BY id DESC LIMIT ?9";

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    sqlite3_bind_text(stmt, 1, q->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, q->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, q->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, q->event, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 5, q->status);
    sqlite3_bind_int64(stmt, 6, q->since_ms);
    sqlite3_bind_int64(stmt, 7, q->until_ms);
    sqlite3_bind_int64(stmt, 8, q->before_id);
    sqlite3_bind_int(stmt, 9, q->limit + 1); /* one more tells whether a next page exists */
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n++ == q->limit) {
            q->has_more = true;
            break;
        }
        json_t *row = row_json(stmt);
        if (!q->is_events)
            json_object_set_new(row, "stream", json_boolean(sqlite3_column_int(stmt, 7) != 0));
        json_array_append_new(q->rows, row);
    }
    sqlite3_finalize(stmt);
    return step == SQLITE_DONE || step == SQLITE_ROW ? 0 : IG_EIO;
}

static void query_done(int rc, void *arg)
{
    struct log_query *q = arg;

    gw_reply_page(q->req, rc, q->rows, q->has_more);
    free(q);
}

/* The client went away before the query ran: answer no one. */
static void query_cancel(struct http_request *req, void *arg)
{
    struct log_query *q = arg;
    (void)req;
    q->req = NULL;
}

/* Reads time bound NAME (unix seconds or milliseconds, or an RFC 3339 UTC date) into *MS
 * when given. Returns 0, or -1 after answering 400. */
static int time_param(struct http_request *req, const char *name, int64_t *ms)
{
    int64_t t = -1;

    if (gw_query_time(req, name, &t) != 0)
        return -1;
    if (t >= 0)
        *ms = t >= 100000000000LL ? t : t * 1000; /* a 12-digit number is milliseconds */
    return 0;
}

/* GET /admin/requests and /admin/events: filters, then the query on the writer thread. */
static void handle_query(struct gw_app *app, struct http_request *req, bool is_events)
{
    struct log_query *q = calloc(1, sizeof(*q));
    int64_t status = 0, limit = DEFAULT_PAGE;

    if (q == NULL || (q->rows = json_array()) == NULL) {
        free(q);
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    q->req = req;
    q->is_events = is_events;
    q->until_ms = INT64_MAX;
    q->before_id = INT64_MAX;
    if (gw_query_param(req, "model", q->model, sizeof(q->model)) < 0 ||
        gw_query_param(req, "key", q->key, sizeof(q->key)) < 0 ||
        gw_query_param(req, "endpoint", q->endpoint, sizeof(q->endpoint)) < 0 ||
        gw_query_param(req, "event", q->event, sizeof(q->event)) < 0 ||
        gw_query_int(req, "status", 0, 999, "an HTTP status (404) or a class (4 for 4xx)",
                     &status) != 0 ||
        gw_query_int(req, "limit", 1, MAX_PAGE, NULL, &limit) != 0 ||
        gw_query_int(req, "before", 1, IG_PARSE_INT_MAX, "a row id from the previous page",
                     &q->before_id) != 0 ||
        time_param(req, "since", &q->since_ms) != 0 || time_param(req, "until", &q->until_ms) != 0) {
        json_decref(q->rows);
        free(q);
        return;
    }
    q->status = (int)status;
    q->limit = (int)limit;
    gw_reqlog_flush(app->reqlog); /* the query sees every request that already ended */
    if (store_submit(app->store, query_job, query_done, q) != 0) {
        json_decref(q->rows);
        free(q);
        gw_reply_error(req, 503, "the database is busy; retry", "storage_busy", 1);
        return;
    }
    http_request_set_cancel_cb(req, query_cancel, q);
}

void gw_admin_requests(struct gw_app *app, struct http_request *req)
{
    handle_query(app, req, false);
}

void gw_admin_events(struct gw_app *app, struct http_request *req)
{
    handle_query(app, req, true);
}

/* Sets NAME in ROW to V, or null when negative (not measured). */
static void set_ms(json_t *row, const char *name, int64_t v)
{
    json_object_set_new(row, name, v >= 0 ? json_integer(v) : json_null());
}

json_t *gw_request_record_json(const struct gw_request_record *r)
{
    char ts[32];
    json_t *row;

    ig_format_utc_ms(r->ts_ms, ts, sizeof(ts));
    row = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:b, s:I, s:I, s:I, s:I, s:I}", "ts",
                    ts, "ts_ms", (json_int_t)r->ts_ms, "request_id",
                    r->request_id != NULL ? r->request_id : "", "key",
                    r->key != NULL ? r->key : "-", "model",
                    r->model != NULL ? r->model : (r->asked_model != NULL ? r->asked_model : ""),
                    "endpoint", r->endpoint != NULL ? r->endpoint : "", "status", r->status,
                    "stream", r->is_stream, "prompt_tokens", (json_int_t)r->prompt_tokens,
                    "completion_tokens", (json_int_t)r->completion_tokens, "duration_ms",
                    (json_int_t)r->duration_ms, "bytes_in", (json_int_t)r->bytes_in, "bytes_out",
                    (json_int_t)r->bytes_out);
    if (row == NULL)
        return NULL;
    set_ms(row, "ttft_ms", r->ttft_ms);
    set_ms(row, "queue_ms", r->queue_ms);
    json_object_set_new(row, "client", r->client != NULL ? json_string(r->client) : json_null());
    json_object_set_new(row, "error", r->error != NULL ? json_string(r->error) : json_null());
    if (r->backend != NULL)
        json_object_set_new(row, "backend", json_string(r->backend));
    if (r->route != NULL)
        json_object_set_new(row, "route", json_string(r->route));
    return row;
}
