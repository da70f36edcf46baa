/*
 * GET /admin/audit: the rows of the `audit` table, newest first. Every change to a key is
 * written there, by the admin API (gw_auth.c) and by `infergate keys` (cli_keys.c), in the
 * transaction that makes the change. The query runs as a store job, so the loop never
 * waits on SQLite and the answer includes every change submitted before it.
 *
 * Paging goes backwards by id: a page holds the newest `limit` rows below `before` (all
 * rows when absent), and `has_more` says whether older ones match too; the next page is
 * asked with before=<the last id of this one>. Ids only grow, so pages neither skip nor
 * repeat rows while new ones are written.
 */
#include "gw_internal.h"
#include "http_server.h"
#include "ig_text.h"
#include "ig_time.h"
#include "store.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 1000

/* An audit query on its way through the writer thread. */
struct audit_call {
    struct http_request *req;    /* NULL once the client is gone */
    int64_t since, until;        /* at >= since and at < until */
    int64_t before;              /* id < before */
    char action[64], actor[256]; /* "" for any */
    int64_t limit;
    json_t *rows;
    bool has_more;
};

/* The client went away: forget the request. */
static void audit_call_cancel(struct http_request *req, void *arg)
{
    struct audit_call *ac = arg;
    (void)req;
    ac->req = NULL;
}

/* Returns column I of STMT as a JSON string, or null when it is NULL. */
static json_t *text_or_null(sqlite3_stmt *stmt, int i)
{
    const unsigned char *text = sqlite3_column_text(stmt, i);
    return text != NULL ? json_string((const char *)text) : json_null();
}

static int audit_job(sqlite3 *db, void *arg)
{
    struct audit_call *ac = arg;
    sqlite3_stmt *stmt = NULL;
    int64_t n = 0;
    int step;

    if (sqlite3_prepare_v2(db,
                           "SELECT id, at, actor, action, target, detail, client FROM audit"
                           " WHERE at >= ?1 AND at < ?2 AND id < ?3 AND (?4 = '' OR action = ?4)"
                           " AND (?5 = '' OR actor = ?5) ORDER BY id DESC LIMIT ?6",
                           -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    sqlite3_bind_int64(stmt, 1, ac->since);
    sqlite3_bind_int64(stmt, 2, ac->until);
    sqlite3_bind_int64(stmt, 3, ac->before);
    sqlite3_bind_text(stmt, 4, ac->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, ac->actor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6, ac->limit + 1); /* one more tells whether there are more */
    ac->rows = json_array();
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        char at[IG_UTC_CHARS + 1];
        if (n++ == ac->limit) {
            ac->has_more = true;
            break;
        }
        ig_format_utc(sqlite3_column_int64(stmt, 1), at);
        json_array_append_new(
            ac->rows, json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o}", "id",
                                (json_int_t)sqlite3_column_int64(stmt, 0), "at", at, "actor",
                                text_or_null(stmt, 2), "action", text_or_null(stmt, 3), "target",
                                text_or_null(stmt, 4), "detail", text_or_null(stmt, 5), "client",
                                text_or_null(stmt, 6)));
    }
    sqlite3_finalize(stmt);
    return step == SQLITE_DONE || step == SQLITE_ROW ? 0 : IG_EIO;
}

static void audit_done(int rc, void *arg)
{
    struct audit_call *ac = arg;

    gw_reply_page(ac->req, rc, ac->rows, ac->has_more);
    free(ac);
}

void gw_admin_audit(struct gw_app *app, struct http_request *req)
{
    struct audit_call *ac = calloc(1, sizeof(*ac));

    if (ac == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    ac->req = req;
    ac->until = IG_UNIX_S_MAX + 1;
    ac->before = INT64_MAX;
    ac->limit = AUDIT_LIMIT_DEFAULT;
    if (gw_query_time(req, "since", &ac->since) != 0 ||
        gw_query_time(req, "until", &ac->until) != 0 ||
        gw_query_param(req, "action", ac->action, sizeof(ac->action)) < 0 ||
        gw_query_param(req, "actor", ac->actor, sizeof(ac->actor)) < 0 ||
        gw_query_int(req, "limit", 1, AUDIT_LIMIT_MAX, NULL, &ac->limit) != 0 ||
        gw_query_int(req, "before", 1, IG_PARSE_INT_MAX, "a row id", &ac->before) != 0) {
        free(ac);
        return;
    }
    if (store_submit(app->store, audit_job, audit_done, ac) != 0) {
        free(ac);
        gw_reply_error(req, 503, "the database is busy; retry", "storage_busy", 1);
        return;
    }
    http_request_set_cancel_cb(req, audit_call_cancel, ac);
}
