/* The batches' rows, input validation and output files (see batch_db.h). */
#include "batch_db.h"
#include "ig_json.h"
#include "ig_log.h"
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_MAX 64
#define CUSTOM_ID_MAX 512

#define BATCH_COLUMNS                                                                              \
    "id, endpoint, errors, input_file_id, completion_window, status, output_file_id, "           \
    "error_file_id, created_at, in_progress_at, expires_at, finalizing_at, completed_at, "       \
    "failed_at, expired_at, cancelling_at, cancelled_at, total, metadata, "                      \
    "(SELECT count(*) FROM batch_results r WHERE r.batch_id = b.id AND r.is_ok), "               \
    "(SELECT count(*) FROM batch_results r WHERE r.batch_id = b.id AND NOT r.is_ok)"

/* Returns column I of ST as a JSON string or null. */
static json_t *text_or_null(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v != NULL ? json_string(v) : json_null();
}

/* Returns column I of ST as a JSON integer or null. */
static json_t *int_or_null(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
               ? json_null()
               : json_integer((json_int_t)sqlite3_column_int64(st, i));
}

/* Returns column I of ST (JSON text) parsed, or null. */
static json_t *json_or_null(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    json_t *doc = v != NULL ? json_loads(v, 0, NULL) : NULL;
    return doc != NULL ? doc : json_null();
}

/* Returns the batch object of the current row of ST (BATCH_COLUMNS); caller owns. */
static json_t *batch_json(sqlite3_stmt *st)
{
    static const char *const times[] = {"created_at", "in_progress_at", "expires_at",
                                        "finalizing_at", "completed_at", "failed_at",
                                        "expired_at", "cancelling_at", "cancelled_at"};
    json_t *doc = json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                            text_or_null(st, 0), "object", "batch", "endpoint",
                            text_or_null(st, 1), "errors", json_or_null(st, 2), "input_file_id",
                            text_or_null(st, 3), "completion_window", text_or_null(st, 4),
                            "status", text_or_null(st, 5), "output_file_id",
                            text_or_null(st, 6), "error_file_id", text_or_null(st, 7));

    if (doc == NULL)
        return NULL;
    for (int i = 0; i < 9; i++)
        json_object_set_new(doc, times[i], int_or_null(st, 8 + i));
    json_object_set_new(doc, "request_counts",
                        json_pack("{s:I, s:I, s:I}", "total",
                                  (json_int_t)sqlite3_column_int64(st, 17), "completed",
                                  (json_int_t)sqlite3_column_int64(st, 19), "failed",
                                  (json_int_t)sqlite3_column_int64(st, 20)));
    json_object_set_new(doc, "metadata", json_or_null(st, 18));
    return doc;
}

json_t *batch_db_get_owned(struct sqlite3 *db, const char *sql, const char *id,
                           const struct batch_who *who, json_t *(*row)(struct sqlite3_stmt *st))
{
    sqlite3_stmt *st = store_stmt(db, sql);
    json_t *doc = NULL;

    if (st == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, who->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, who->is_admin);
    if (sqlite3_step(st) == SQLITE_ROW)
        doc = row(st);
    sqlite3_reset(st);
    return doc;
}

json_t *batch_db_get(struct sqlite3 *db, const char *id, const struct batch_who *who)
{
    return batch_db_get_owned(db, "SELECT " BATCH_COLUMNS " FROM batches b WHERE id = ? AND "
                                  "(owner = ? OR ?)",
                              id, who, batch_json);
}

int batch_db_insert(struct sqlite3 *db, const struct batch_new *b, const struct batch_who *who)
{
    sqlite3_stmt *st = store_stmt(db, "SELECT purpose FROM files WHERE id = ? AND "
                                      "(owner = ? OR ?)");
    char *metadata = b->metadata != NULL ? json_dumps(b->metadata, JSON_COMPACT) : NULL;
    int rc = IG_EIO;

    if (st == NULL)
        goto out;
    sqlite3_bind_text(st, 1, b->input_file_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, who->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, who->is_admin);
    rc = sqlite3_step(st) != SQLITE_ROW ? IG_ENOENT
         : strcmp((const char *)sqlite3_column_text(st, 0), "batch") != 0 ? IG_EINVAL
                                                                          : 0;
    sqlite3_reset(st);
    if (rc != 0)
        goto out;
    rc = IG_EIO;
    st = store_stmt(db, "INSERT INTO batches (id, owner, endpoint, input_file_id, "
                        "completion_window, status, metadata, created_at) VALUES "
                        "(?, ?, ?, ?, '24h', 'validating', ?, ?)");
    if (st == NULL)
        goto out;
    sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, b->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, b->input_file_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, metadata, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, b->created_at);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
out:
    free(metadata);
    return rc;
}

int batch_db_list(struct sqlite3 *db, const struct batch_who *who, const char *after,
                  long limit, json_t **out)
{
    sqlite3_stmt *st = store_stmt(
        db, "SELECT " BATCH_COLUMNS " FROM batches b WHERE (owner = ?1 OR ?2) AND (?3 = '' OR "
            "rowid < (SELECT rowid FROM batches WHERE id = ?3)) ORDER BY rowid DESC LIMIT ?4");

    *out = json_array();
    if (st == NULL || *out == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, who->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, who->is_admin);
    sqlite3_bind_text(st, 3, after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, limit + 1);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(*out, batch_json(st));
    sqlite3_reset(st);
    return 0;
}

int batch_db_cancel(struct sqlite3 *db, const char *id, const struct batch_who *who,
                    int64_t now)
{
    sqlite3_stmt *st = store_stmt(db, "UPDATE batches SET status = 'cancelling', cancelling_at "
                                      "= ? WHERE id = ? AND (owner = ? OR ?) AND status IN "
                                      "('validating', 'in_progress')");
    int rc = IG_EIO;

    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, who->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, who->is_admin);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
    sqlite3_reset(st);
    if (rc == 0 && sqlite3_changes(db) == 0) {
        json_t *doc = batch_db_get(db, id, who);
        rc = doc == NULL ? IG_ENOENT : IG_EINVAL;
        json_decref(doc);
    }
    return rc;
}

/* Appends a line error (code, message, 1-based file line LINE, param or NULL) to ERRORS,
 * up to BATCH_MAX_ERRORS. */
static void add_error(json_t *errors, const char *code, const char *message, long line,
                      const char *param)
{
    if (json_array_size(errors) < BATCH_MAX_ERRORS)
        json_array_append_new(errors, json_pack("{s:s, s:s, s:s?, s:I}", "code", code,
                                                "message", message, "param", param, "line",
                                                (json_int_t)line));
}

/* Checks the request line DOC (file line LINE) for ENDPOINT; SEEN holds the custom ids so
 * far. Returns whether it is valid, else adds its error. */
static bool check_line(json_t *doc, long line, const char *endpoint, json_t *seen, json_t *errors)
{
    json_t *custom_id = json_object_get(doc, "custom_id"), *body = json_object_get(doc, "body");
    const char *method = json_string_value(json_object_get(doc, "method"));
    const char *url = json_string_value(json_object_get(doc, "url"));
    const char *cid = json_string_value(custom_id);

    if (!json_is_object(doc)) {
        add_error(errors, "invalid_json_line", "This line is not a JSON object.", line, NULL);
    } else if (cid == NULL || cid[0] == '\0' || strlen(cid) > CUSTOM_ID_MAX) {
        add_error(errors, "missing_required_parameter",
                  "Each request needs a custom_id: a string of 1 to 512 characters.", line,
                  "custom_id");
    } else if (json_object_get(seen, cid) != NULL) {
        add_error(errors, "duplicate_custom_id",
                  "The custom_id for this request is a duplicate of another request. The "
                  "custom_id parameter must be unique for each individual request in a batch.",
                  line, "custom_id");
    } else if (method == NULL || strcmp(method, "POST") != 0) {
        add_error(errors, "invalid_method", "The method of a request must be POST.", line,
                  "method");
    } else if (url == NULL || strcmp(url, endpoint) != 0) {
        add_error(errors, "invalid_url",
                  "The URL provided for this request does not match the batch endpoint.", line,
                  "url");
    } else if (!json_is_object(body)) {
        add_error(errors, "missing_required_parameter", "The body of a request must be an "
                                                        "object.", line, "body");
    } else if (!json_is_string(json_object_get(body, "model"))) {
        add_error(errors, "missing_required_parameter", "The body of a request needs a model.",
                  line, "body.model");
    } else if (json_is_true(json_object_get(body, "stream"))) {
        add_error(errors, "invalid_value", "Streaming is not supported in a batch.", line,
                  "body.stream");
    } else {
        json_object_set_new(seen, cid, json_true());
        return true;
    }
    return false;
}

/* Parses TEXT (LEN bytes, NUL-terminated) into request lines for ENDPOINT: fills LINES
 * (compact JSON text of each request from FIRST on; *N) and returns NULL, or returns the
 * errors (an array, caller owns). */
static json_t *parse_input(char *text, size_t len, const char *endpoint, long first,
                           char ***lines, size_t *n)
{
    json_t *errors = json_array(), *seen = json_object();
    char **out = NULL;
    size_t n_out = 0, cap = 0;
    long line_no = 0, index = 0;
    char *p = text, *end = text + len;

    while (p < end && errors != NULL && seen != NULL) {
        char *eol = memchr(p, '\n', (size_t)(end - p)), err[160];
        size_t line_len = (size_t)((eol != NULL ? eol : end) - p);
        json_t *doc;

        line_no++;
        if (line_len > 0 && p[line_len - 1] == '\r')
            line_len--;
        if (strspn(p, " \t\r") >= line_len) { /* a blank line: skipped */
            p = eol != NULL ? eol + 1 : end;
            continue;
        }
        doc = line_len <= BATCH_LINE_MAX ? ig_json_parse(p, line_len, JSON_DEPTH_MAX, err,
                                                         sizeof(err))
                                         : NULL;
        if (line_len > BATCH_LINE_MAX) {
            add_error(errors, "line_too_large",
                      "A request line may have at most 1000000 bytes (one JetStream message).",
                      line_no, NULL);
        } else if (doc == NULL) {
            add_error(errors, "invalid_json_line",
                      "This line is not parseable as valid JSON.", line_no, NULL);
        } else if (check_line(doc, line_no, endpoint, seen, errors) && index >= first &&
                   json_array_size(errors) == 0) {
            if (n_out == cap) {
                size_t new_cap = cap == 0 ? 64 : cap * 2;
                char **grown = realloc(out, new_cap * sizeof(*out));
                if (grown == NULL)
                    break;
                out = grown;
                cap = new_cap;
            }
            out[n_out] = json_dumps(doc, JSON_COMPACT);
            if (out[n_out] != NULL)
                n_out++;
        }
        json_decref(doc);
        index++;
        if (index > BATCH_MAX_LINES) {
            json_array_clear(errors);
            add_error(errors, "batch_too_large", "A batch may hold at most 50000 requests.",
                      line_no, NULL);
            break;
        }
        p = eol != NULL ? eol + 1 : end;
    }
    if (errors != NULL && json_array_size(errors) == 0 && index == 0)
        add_error(errors, "empty_file", "The input file has no requests.", 1, NULL);
    json_decref(seen);
    if (errors == NULL || json_array_size(errors) > 0 ||
        n_out != (size_t)(index > first ? index - first : 0)) {
        for (size_t i = 0; i < n_out; i++)
            free(out[i]);
        free(out);
        if (errors != NULL && json_array_size(errors) == 0) /* out of memory */
            add_error(errors, "internal_error", "out of memory", 1, NULL);
        return errors != NULL ? errors : json_array();
    }
    json_decref(errors);
    *lines = out;
    *n = n_out;
    return NULL;
}

/* Ends batch ID as failed with ERRORS (an array, borrowed). */
static int fail_batch(struct sqlite3 *db, const char *id, json_t *errors)
{
    json_t *doc = json_pack("{s:s, s:O}", "object", "list", "data", errors);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    sqlite3_stmt *st = store_stmt(db, "UPDATE batches SET status = 'failed', failed_at = "
                                      "strftime('%s', 'now'), errors = ? WHERE id = ? AND "
                                      "status IN ('validating', 'in_progress')");
    int rc = IG_EIO;

    if (st != NULL && text != NULL) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
        sqlite3_reset(st);
    }
    free(text);
    json_decref(doc);
    return rc;
}

int batch_db_validate(struct sqlite3 *db, const char *dir, const char *id,
                      const char *input_file_id, const char *endpoint, size_t max_bytes,
                      long first, char ***lines, size_t *n, bool *is_cancelled)
{
    char *text = NULL;
    size_t len = 0;
    json_t *errors = NULL;
    int rc;

    *lines = NULL;
    *n = 0;
    *is_cancelled = false;
    rc = batch_db_file_read(dir, input_file_id, max_bytes, &text, &len);
    if (rc != 0) {
        errors = json_array();
        add_error(errors, rc == IG_ETOOBIG ? "file_too_large" : "file_not_found",
                  rc == IG_ETOOBIG ? "The input file is larger than batches.max_file_bytes."
                                   : "The input file cannot be read.", 1, NULL);
    } else {
        errors = parse_input(text, len, endpoint, first, lines, n);
    }
    free(text);
    if (errors != NULL) {
        rc = fail_batch(db, id, errors);
        json_decref(errors);
        return rc;
    }
    if (first > 0)
        return 0;
    sqlite3_stmt *st = store_stmt(db, "UPDATE batches SET status = 'in_progress', total = ?, "
                                      "in_progress_at = strftime('%s', 'now'), expires_at = "
                                      "created_at + 86400 WHERE id = ? AND status = 'validating'");
    rc = IG_EIO;
    if (st != NULL) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)*n);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
        sqlite3_reset(st);
        *is_cancelled = rc == 0 && sqlite3_changes(db) == 0;
    }
    if (rc == 0 && *is_cancelled) { /* total is still known, for request_counts */
        st = store_stmt(db, "UPDATE batches SET total = ? WHERE id = ?");
        if (st != NULL) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)*n);
            sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
            (void)sqlite3_step(st);
            sqlite3_reset(st);
        }
    }
    if (rc != 0 || *is_cancelled) {
        for (size_t i = 0; i < *n; i++)
            free((*lines)[i]);
        free(*lines);
        *lines = NULL;
        *n = 0;
    }
    return rc;
}

int batch_db_set_enqueued(struct sqlite3 *db, const char *id, long upto)
{
    sqlite3_stmt *st = store_stmt(db, "UPDATE batches SET enqueued = max(enqueued, ?) WHERE "
                                      "id = ?");
    int rc = IG_EIO;

    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_int64(st, 1, upto);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
    sqlite3_reset(st);
    return rc;
}

int batch_db_record(struct sqlite3 *db, const char *id, long line, bool is_ok,
                    const char *result, bool *is_new)
{
    sqlite3_stmt *st = store_stmt(db, "INSERT OR IGNORE INTO batch_results (batch_id, line, "
                                      "is_ok, result) VALUES (?, ?, ?, ?)");
    int rc = IG_EIO;

    *is_new = false;
    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, line);
    sqlite3_bind_int(st, 3, is_ok);
    sqlite3_bind_text(st, 4, result, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE) {
        rc = 0;
        *is_new = sqlite3_changes(db) > 0;
    }
    sqlite3_reset(st);
    return rc;
}

int batch_db_set_status(struct sqlite3 *db, const char *id, const char *status, int64_t now)
{
    char sql[160];
    sqlite3_stmt *st;
    int rc = IG_EIO;

    snprintf(sql, sizeof(sql), "UPDATE batches SET status = ?, %s_at = ? WHERE id = ?", status);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return IG_EIO;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
    sqlite3_finalize(st);
    return rc;
}

/* Appends TEXT and a newline to the growing buffer *BUF (*LEN, *CAP); -1 out of memory. */
static int append_line(char **buf, size_t *len, size_t *cap, const char *text)
{
    size_t n = strlen(text);

    if (*len + n + 2 > *cap) {
        size_t new_cap = (*cap == 0 ? 4096 : *cap) * 2 + n;
        char *grown = realloc(*buf, new_cap);
        if (grown == NULL)
            return -1;
        *buf = grown;
        *cap = new_cap;
    }
    memcpy(*buf + *len, text, n);
    (*buf)[*len + n] = '\n';
    *len += n + 1;
    return 0;
}

int batch_db_finish(struct sqlite3 *db, const char *dir, const char *id, const char *owner,
                    const char *status, int64_t now)
{
    sqlite3_stmt *st = store_stmt(db, "SELECT is_ok, result FROM batch_results WHERE batch_id = "
                                      "? ORDER BY line");
    char *buf[2] = {NULL, NULL}, file_id[2][BATCH_ID_MAX + 1] = {"", ""}, name[160], sql[200];
    size_t len[2] = {0, 0}, cap[2] = {0, 0};
    int rc = IG_EIO;

    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int which = sqlite3_column_int(st, 0) ? 0 : 1;
        if (append_line(&buf[which], &len[which], &cap[which],
                        (const char *)sqlite3_column_text(st, 1)) != 0) {
            sqlite3_reset(st);
            goto out;
        }
    }
    sqlite3_reset(st);
    for (int i = 0; i < 2; i++) {
        if (len[i] == 0)
            continue;
        batch_new_id("file-", file_id[i], sizeof(file_id[i]));
        snprintf(name, sizeof(name), "%s_%s.jsonl", id, i == 0 ? "output" : "error");
        if (batch_db_file_write(db, dir, file_id[i], owner, name, "batch_output", buf[i], len[i],
                                now) != 0)
            goto out;
    }
    snprintf(sql, sizeof(sql), "UPDATE batches SET status = ?, %s_at = ?, output_file_id = ?, "
                               "error_file_id = ? WHERE id = ?", status);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, file_id[0][0] != '\0' ? file_id[0] : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, file_id[1][0] != '\0' ? file_id[1] : NULL, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
    sqlite3_finalize(st);
out:
    free(buf[0]);
    free(buf[1]);
    return rc;
}

/* Reads which lines of ROW have a result into its bitmap. */
static int load_results(struct sqlite3 *db, struct batch_row *row)
{
    sqlite3_stmt *st = store_stmt(db, "SELECT line FROM batch_results WHERE batch_id = ?");

    row->has_result = calloc((size_t)row->total / 8 + 1, 1);
    if (st == NULL || row->has_result == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, row->id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        long line = (long)sqlite3_column_int64(st, 0);
        if (line >= 0 && line < row->total && !(row->has_result[line / 8] & (1u << (line % 8)))) {
            row->has_result[line / 8] |= (uint8_t)(1u << (line % 8));
            row->n_results++;
        }
    }
    sqlite3_reset(st);
    return 0;
}

int batch_db_load(struct sqlite3 *db, struct batch_row **rows, size_t *n)
{
    sqlite3_stmt *st = store_stmt(db, "SELECT id, owner, endpoint, input_file_id, status, total, "
                                      "enqueued, coalesce(expires_at, created_at + 86400) FROM "
                                      "batches WHERE status IN ('validating', 'in_progress', "
                                      "'finalizing', 'cancelling') ORDER BY rowid");
    struct batch_row *out = NULL;
    size_t n_out = 0;
    int rc = 0;

    *rows = NULL;
    *n = 0;
    if (st == NULL)
        return IG_EIO;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        struct batch_row *grown = realloc(out, (n_out + 1) * sizeof(*out)), *r;
        if (grown == NULL) {
            rc = IG_ENOMEM;
            break;
        }
        out = grown;
        r = &out[n_out++];
        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(r->owner, sizeof(r->owner), "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(r->endpoint, sizeof(r->endpoint), "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(r->input_file_id, sizeof(r->input_file_id), "%s",
                 (const char *)sqlite3_column_text(st, 3));
        snprintf(r->status, sizeof(r->status), "%s", (const char *)sqlite3_column_text(st, 4));
        r->total = (long)sqlite3_column_int64(st, 5);
        r->enqueued = (long)sqlite3_column_int64(st, 6);
        r->expires_at = sqlite3_column_int64(st, 7);
    }
    sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < n_out; i++)
        rc = load_results(db, &out[i]);
    if (rc != 0) {
        for (size_t i = 0; i < n_out; i++)
            free(out[i].has_result);
        free(out);
        return rc;
    }
    *rows = out;
    *n = n_out;
    return 0;
}
