/*
 * /v1/files: uploads (multipart/form-data, fields purpose and file), listing, metadata,
 * content and deletion, in OpenAI's shapes. Contents are files named by id under "files"
 * beside the database, metadata rows in its files table; both are written, read and
 * removed by store jobs on the writer thread, so the loop never touches the disk. A key
 * sees only the files it uploaded (and its batches' outputs); the admin sees all.
 */
#include "batch.h"
#include "batch_internal.h"
#include "batch_multipart.h"
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_MAX 10000

/* Purposes a client may upload with (OpenAI's); only "batch" files feed batches. */
static const char *const upload_purposes[] = {"batch", "user_data", "assistants", "fine-tune",
                                              "vision", "evals", NULL};

void batch_new_id(const char *prefix, char *out, size_t size)
{
    unsigned char r[12];
    char hex[sizeof(r) * 2 + 1];

    if (RAND_bytes(r, sizeof(r)) != 1) { /* no entropy: time and a counter still differ */
        static unsigned counter;
        uint64_t x = ig_now_us() ^ ((uint64_t)getpid() << 40) ^ ++counter;
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)(x >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(out, size, "%s%s", prefix, hex);
}

bool batch_id_ok(const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (n == BATCH_ID_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                   (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

void batch_files_dir(struct gw_app *app, char *out, size_t size)
{
    const char *db = store_path(app->store), *slash = strrchr(db, '/');

    if (slash == NULL)
        snprintf(out, size, "files");
    else
        snprintf(out, size, "%.*s/files", (int)(slash - db), db);
}

void batch_who_of(struct gw_app *app, struct batch_who *who)
{
    snprintf(who->owner, sizeof(who->owner), "%s", app->caller.name);
    who->is_admin = app->caller.is_admin;
}

/* Writes DATA (LEN bytes) to PATH through a temporary file renamed over it; 0 or -1. */
static int write_whole(const char *path, const char *data, size_t len)
{
    char tmp[BATCH_FILE_PATH_MAX + 8];
    int fd, rc = -1;
    size_t done = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        done += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto out;
    rc = 0;
out:
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0)
        (void)unlink(tmp);
    return rc;
}

int batch_db_file_write(struct sqlite3 *db, const char *dir, const char *id, const char *owner,
                        const char *filename, const char *purpose, const char *data, size_t len,
                        int64_t created_at)
{
    char path[BATCH_FILE_PATH_MAX];
    sqlite3_stmt *st;

    (void)mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    if (write_whole(path, data, len) != 0) {
        ig_error("files: cannot write %s: %s", path, strerror(errno));
        return IG_EIO;
    }
    st = store_stmt(db, "INSERT INTO files (id, owner, bytes, created_at, filename, purpose) "
                        "VALUES (?, ?, ?, ?, ?, ?)");
    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)len);
    sqlite3_bind_int64(st, 4, created_at);
    sqlite3_bind_text(st, 5, filename, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, purpose, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        (void)unlink(path);
        return IG_EIO;
    }
    return 0;
}

/* Returns the file object of the current row of ST (id, bytes, created_at, filename,
 * purpose); caller owns. */
static json_t *row_json(sqlite3_stmt *st)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:n}", "id",
                     (const char *)sqlite3_column_text(st, 0), "object", "file", "bytes",
                     (json_int_t)sqlite3_column_int64(st, 1), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 2), "filename",
                     (const char *)sqlite3_column_text(st, 3), "purpose",
                     (const char *)sqlite3_column_text(st, 4), "status", "processed",
                     "status_details");
}

#define FILE_COLUMNS "id, bytes, created_at, filename, purpose"

json_t *batch_db_file_get(struct sqlite3 *db, const char *id, const struct batch_who *who)
{
    return batch_db_get_owned(db, "SELECT " FILE_COLUMNS " FROM files WHERE id = ? AND "
                                  "(owner = ? OR ?)",
                              id, who, row_json);
}

int batch_db_file_read(const char *dir, const char *id, size_t max_bytes, char **data,
                       size_t *len)
{
    char path[BATCH_FILE_PATH_MAX];
    struct stat sb;
    int fd, rc = IG_ENOENT;
    char *buf = NULL;
    size_t done = 0;

    *data = NULL;
    *len = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return IG_ENOENT;
    if (fstat(fd, &sb) != 0)
        goto out;
    rc = IG_ETOOBIG;
    if ((uint64_t)sb.st_size > max_bytes)
        goto out;
    rc = IG_ENOMEM;
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL)
        goto out;
    rc = IG_EIO;
    while (done < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)sb.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        done += (size_t)n;
    }
    buf[done] = '\0';
    *data = buf;
    *len = done;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------- requests -- */

enum file_action { FILE_UPLOAD, FILE_LIST, FILE_GET, FILE_CONTENT, FILE_DELETE };

/* A files call on its way through the writer thread. */
struct file_call {
    struct http_request *req; /* NULL once the client is gone */
    enum file_action action;
    struct batch_who who;
    char dir[BATCH_PATH_MAX];
    char id[BATCH_ID_MAX + 1], after[BATCH_ID_MAX + 1];
    char filename[BATCH_MP_FILENAME_MAX], purpose[32];
    char *data; /* the upload (a copy), or the content read */
    size_t len;
    int64_t created_at, limit;
    bool is_ascending;
    json_t *doc;
};

/* The client went away: forget the request. */
static void file_call_cancel(struct http_request *req, void *arg)
{
    struct file_call *fc = arg;
    (void)req;
    fc->req = NULL;
}

/* Writer thread: lists the files FC may see into fc->doc (an array). */
static int list_files(sqlite3 *db, struct file_call *fc)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc = IG_EIO;

    snprintf(sql, sizeof(sql),
             "SELECT " FILE_COLUMNS " FROM files WHERE (owner = ?1 OR ?2) AND (?3 = '' OR "
             "purpose = ?3) AND (?4 = '' OR rowid %s (SELECT rowid FROM files WHERE id = ?4)) "
             "ORDER BY rowid %s LIMIT ?5",
             fc->is_ascending ? ">" : "<", fc->is_ascending ? "ASC" : "DESC");
    fc->doc = json_array();
    if (fc->doc == NULL || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, fc->who.owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, fc->who.is_admin);
    sqlite3_bind_text(st, 3, fc->purpose, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, fc->after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, fc->limit + 1); /* one more tells has_more */
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(fc->doc, row_json(st));
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Writer thread: deletes file fc->id when FC may, unless a running batch reads it. */
static int delete_file(sqlite3 *db, struct file_call *fc)
{
    char path[BATCH_FILE_PATH_MAX];
    sqlite3_stmt *st;

    st = store_stmt(db, "SELECT 1 FROM batches WHERE input_file_id = ? AND status IN "
                        "('validating', 'in_progress', 'finalizing', 'cancelling')");
    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, fc->id, -1, SQLITE_STATIC);
    bool is_busy = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    if (is_busy)
        return IG_EBUSY;
    st = store_stmt(db, "DELETE FROM files WHERE id = ? AND (owner = ? OR ?)");
    if (st == NULL)
        return IG_EIO;
    sqlite3_bind_text(st, 1, fc->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fc->who.owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, fc->who.is_admin);
    if (sqlite3_step(st) != SQLITE_DONE)
        return IG_EIO;
    if (sqlite3_changes(db) == 0)
        return IG_ENOENT;
    snprintf(path, sizeof(path), "%s/%s", fc->dir, fc->id);
    (void)unlink(path);
    return 0;
}

static int file_job(sqlite3 *db, void *arg)
{
    struct file_call *fc = arg;
    int rc;

    switch (fc->action) {
    case FILE_UPLOAD:
        rc = batch_db_file_write(db, fc->dir, fc->id, fc->who.owner, fc->filename, fc->purpose,
                                 fc->data, fc->len, fc->created_at);
        if (rc == 0)
            fc->doc = batch_db_file_get(db, fc->id, &fc->who);
        return rc;
    case FILE_LIST:
        return list_files(db, fc);
    case FILE_DELETE:
        return delete_file(db, fc);
    case FILE_GET:
    case FILE_CONTENT:
        break;
    }
    fc->doc = batch_db_file_get(db, fc->id, &fc->who);
    if (fc->doc == NULL)
        return IG_ENOENT;
    if (fc->action == FILE_GET)
        return 0;
    free(fc->data);
    fc->data = NULL;
    return batch_db_file_read(fc->dir, fc->id, SIZE_MAX / 2, &fc->data, &fc->len);
}

/* Answers a files call that ended with RC. */
static void answer(struct file_call *fc, int rc)
{
    struct http_request *req = fc->req;
    char msg[160];

    if (rc == IG_ENOENT) {
        snprintf(msg, sizeof(msg), "No such File object: %s", fc->id);
        gw_reply_error(req, 404, msg, "file_not_found", 0);
    } else if (rc == IG_EBUSY) {
        snprintf(msg, sizeof(msg), "file %s is the input of a batch still running", fc->id);
        gw_reply_error(req, 409, msg, "file_in_use", 0);
    } else if (rc != 0) {
        gw_reply_error(req, 500, "the database or the files directory failed; see the server "
                                 "log", "storage_error", 0);
    } else if (fc->action == FILE_CONTENT) {
        http_respond(req, 200, "application/octet-stream", fc->data, fc->len);
    } else if (fc->action == FILE_DELETE) {
        gw_reply_json(req, 200, json_pack("{s:s, s:s, s:b}", "id", fc->id, "object", "file",
                                          "deleted", 1));
    } else if (fc->action == FILE_LIST) {
        bool has_more = json_array_size(fc->doc) > (size_t)fc->limit;
        if (has_more)
            json_array_remove(fc->doc, json_array_size(fc->doc) - 1);
        gw_reply_page(req, 0, json_incref(fc->doc), has_more);
    } else {
        gw_reply_json(req, 200, json_incref(fc->doc));
    }
}

static void file_done(int rc, void *arg)
{
    struct file_call *fc = arg;

    if (fc->req != NULL) {
        http_request_set_cancel_cb(fc->req, NULL, NULL);
        answer(fc, rc);
    }
    json_decref(fc->doc);
    free(fc->data);
    free(fc);
}

/* Reads the upload of REQ into FC; returns 0, or -1 after answering. */
static int read_upload(struct gw_app *app, struct http_request *req, struct file_call *fc)
{
    struct batch_mp_part parts[BATCH_MP_MAX_PARTS];
    const struct batch_mp_part *purpose, *file;
    size_t body_len = 0, n = 0;
    const char *body = http_request_body(req, &body_len);
    char *cause = NULL, msg[160];
    bool is_known = false;

    if (batch_multipart_parse(http_request_header(req, "content-type"), body, body_len, parts,
                              BATCH_MP_MAX_PARTS, &n, &cause) != 0) {
        gw_reply_error(req, 400, cause != NULL ? cause : "invalid multipart body",
                       "invalid_request_error", 0);
        free(cause);
        return -1;
    }
    purpose = batch_mp_find(parts, n, "purpose");
    file = batch_mp_find(parts, n, "file");
    if (purpose == NULL || file == NULL || !file->has_filename) {
        gw_reply_error(req, 400, "expected the fields 'purpose' and 'file' (a file part with a "
                                 "filename)", "missing_required_parameter", 0);
        return -1;
    }
    for (size_t i = 0; upload_purposes[i] != NULL; i++)
        is_known = is_known || (strlen(upload_purposes[i]) == purpose->len &&
                                memcmp(upload_purposes[i], purpose->data, purpose->len) == 0);
    if (!is_known) {
        gw_reply_error(req, 400, "'purpose' must be one of batch, user_data, assistants, "
                                 "fine-tune, vision, evals", "invalid_value", 0);
        return -1;
    }
    if (file->len > (size_t)app->cfg->batches.max_file_bytes) {
        snprintf(msg, sizeof(msg), "the file has %zu bytes; at most %d are accepted "
                                   "(batches.max_file_bytes)", file->len,
                 app->cfg->batches.max_file_bytes);
        gw_reply_error(req, 413, msg, "file_too_large", 0);
        return -1;
    }
    fc->data = malloc(file->len > 0 ? file->len : 1);
    if (fc->data == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return -1;
    }
    memcpy(fc->data, file->data, file->len);
    fc->len = file->len;
    memcpy(fc->purpose, purpose->data, purpose->len);
    fc->purpose[purpose->len] = '\0';
    ig_utf8_copy(fc->filename, sizeof(fc->filename), file->filename);
    batch_new_id("file-", fc->id, sizeof(fc->id));
    fc->created_at = ig_unix_s();
    return 0;
}

/* Reads the list parameters of REQ into FC; returns 0, or -1 after answering. */
static int read_list_params(struct http_request *req, struct file_call *fc)
{
    char order[8] = "desc";

    fc->limit = LIST_MAX;
    if (gw_query_param(req, "purpose", fc->purpose, sizeof(fc->purpose)) < 0 ||
        gw_query_param(req, "after", fc->after, sizeof(fc->after)) < 0 ||
        gw_query_param(req, "order", order, sizeof(order)) < 0 ||
        gw_query_int(req, "limit", 1, LIST_MAX, NULL, &fc->limit) != 0)
        return -1;
    if (strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        gw_reply_error(req, 400, "'order' must be asc or desc", "invalid_value", 0);
        return -1;
    }
    fc->is_ascending = strcmp(order, "asc") == 0;
    return 0;
}

/* Sets FC's action and id from REQ's method and path; returns 0, or -1 after answering. */
static int read_target(struct http_request *req, struct file_call *fc)
{
    const char *method = http_request_method(req), *path = http_request_path(req);
    const char *rest = path + strlen("/v1/files/");
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    size_t id_len;

    if (path[strlen("/v1/files")] == '\0') {
        fc->action = strcmp(method, "POST") == 0 ? FILE_UPLOAD : FILE_LIST;
        if (fc->action == FILE_LIST && !is_get)
            goto bad_method;
        return 0;
    }
    id_len = strcspn(rest, "/");
    if (id_len > BATCH_ID_MAX)
        goto not_found;
    memcpy(fc->id, rest, id_len);
    fc->id[id_len] = '\0';
    if (!batch_id_ok(fc->id))
        goto not_found;
    if (strcmp(rest + id_len, "/content") == 0) {
        fc->action = FILE_CONTENT;
        if (!is_get)
            goto bad_method;
    } else if (rest[id_len] != '\0') {
        goto not_found;
    } else if (strcmp(method, "DELETE") == 0) {
        fc->action = FILE_DELETE;
    } else if (is_get) {
        fc->action = FILE_GET;
    } else {
        goto bad_method;
    }
    return 0;
not_found:
    gw_reply_error(req, 404, "no such endpoint", "not_found", 0);
    return -1;
bad_method:
    gw_reply_error(req, 405, "method not allowed here", "method_not_allowed", 0);
    return -1;
}

void batch_files_handle(struct gw_app *app, struct http_request *req)
{
    struct file_call *fc = calloc(1, sizeof(*fc));
    int rc = -1;

    if (fc == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    fc->req = req;
    batch_who_of(app, &fc->who);
    batch_files_dir(app, fc->dir, sizeof(fc->dir));
    if (read_target(req, fc) != 0)
        goto out;
    if (fc->action == FILE_UPLOAD && read_upload(app, req, fc) != 0)
        goto out;
    if (fc->action == FILE_LIST && read_list_params(req, fc) != 0)
        goto out;
    if (store_submit(app->store, file_job, file_done, fc) != 0) {
        gw_reply_error(req, 503, "the database is overloaded; retry", "storage_busy", 1);
        goto out;
    }
    http_request_set_cancel_cb(req, file_call_cancel, fc);
    rc = 0;
out:
    if (rc != 0) {
        free(fc->data);
        free(fc);
    }
}
