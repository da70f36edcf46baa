/*
 * Access to the gateway's routes: who is calling (auth_identify) and whether the route
 * allows them; the admin API for keys (/admin/keys) and the usage API (/v1/usage).
 *
 * Levels: public routes (liveness) need nothing; API routes need a key or the admin token;
 * admin routes need the admin token, or, when none is configured, one of llama-swap's
 * `apiKeys` (as llama-swap lets them do everything). auth.keys and database keys are never
 * admins.
 */
#include "auth.h"
#include "auth_keys.h"
#include "batch.h"
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "store.h"

#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_USAGE_ROWS 10000

int gw_auth_open(struct gw_app *app, char **cause)
{
    char path[4096];

    if (app->cfg->storage.path != NULL)
        snprintf(path, sizeof(path), "%s", app->cfg->storage.path);
    else
        store_default_path(path, sizeof(path));
    if (store_open(path, true, &app->store, cause) != 0)
        return IG_EIO;
    app->auth = auth_new(app->store, app->cfg, cause);
    if (app->auth == NULL)
        return IG_EIO;
    if (store_start(app->store, app->base, cause) != 0 || auth_start(app->auth, app->base) != 0)
        return IG_EIO;
    ig_info("storage: %s; auth %s", path, auth_is_on(app->auth) ? "on" : "off");
    return 0;
}

void gw_auth_close(struct gw_app *app)
{
    /* Order matters: pending usage goes to the writer, the writer finishes and delivers its
     * results while the key table they update still exists, and only then does it go. */
    if (app->auth != NULL)
        auth_flush(app->auth);
    store_stop(app->store);
    auth_free(app->auth);
    app->auth = NULL;
    store_free(app->store);
    app->store = NULL;
}

/* Returns the credential REQ carries: "Authorization: Bearer X", or "x-api-key: X". */
static const char *credential_of(const struct http_request *req)
{
    const char *v = http_request_header(req, "Authorization");

    if (v != NULL && strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7;
        while (*v == ' ')
            v++;
        return v;
    }
    v = http_request_header(req, "x-api-key");
    return v != NULL ? v : http_request_header(req, "api-key");
}

bool gw_auth_check(struct gw_app *app, struct http_request *req, enum gw_access level)
{
    struct auth_refusal r;

    char owner[AUTH_NAME_MAX];
    int rc;

    memset(&app->caller, 0, sizeof(app->caller));
    if (level == GW_PUBLIC)
        return true;
    /* A batch's line runs as the key that created the batch (src/batch). */
    rc = batch_svc_internal_owner(app->batch, req, owner, sizeof(owner))
             ? auth_identify_name(app->auth, owner, &app->caller, &r)
             : auth_identify(app->auth, credential_of(req), &app->caller, &r);
    if (rc != 0) {
        http_response_add_header(req, "WWW-Authenticate", "Bearer");
        gw_reply_error(req, r.status, r.message, r.code, 0);
        return false;
    }
    if (level == GW_ADMIN && !app->caller.is_admin) {
        auth_caller_release(app->auth, &app->caller);
        gw_reply_error(req, 403,
                       auth_has_admin_token(app->auth)
                           ? "this endpoint needs the admin token (auth.admin_token)"
                           : "this endpoint needs the admin token, and none is configured: set "
                             "auth.admin_token",
                       "admin_required", 0);
        return false;
    }
    return true;
}

void gw_auth_take_caller(struct gw_app *app, struct auth_caller *out)
{
    *out = app->caller;
    memset(&app->caller, 0, sizeof(app->caller));
}

void gw_auth_end_route(struct gw_app *app)
{
    auth_caller_release(app->auth, &app->caller);
}

/* ------------------------------------------------------------ /admin/keys -- */

/* An admin API call on its way through the writer thread. */
struct key_call {
    struct gw_app *app;
    struct http_request *req; /* NULL once the client is gone */
    char actor[AUTH_NAME_MAX], client[64], name[128];
    struct auth_key_spec spec;
    char key[AUTH_KEY_CHARS + 1];
    json_t *changes; /* PATCH body; list result for GET */
    struct auth_key_spec *keys; /* every key after the change, read in the same transaction */
    size_t n_keys;
    char *cause;
    int action; /* 0 create, 1 revoke, 2 update, 3 list */
};

/* The client went away: forget the request. */
static void key_call_cancel(struct http_request *req, void *arg)
{
    struct key_call *kc = arg;
    (void)req;
    kc->req = NULL;
}

static int key_job(sqlite3 *db, void *arg)
{
    struct key_call *kc = arg;
    static const char *const actions[] = {"key.create", "key.revoke", "key.update"};
    char *detail = kc->changes != NULL ? json_dumps(kc->changes, JSON_COMPACT) : NULL;
    int rc;

    switch (kc->action) {
    case 0:
        rc = auth_db_insert(db, &kc->spec, &kc->cause);
        break;
    case 1:
        rc = auth_db_revoke(db, kc->name);
        break;
    case 2:
        rc = auth_db_update(db, kc->name, kc->changes, &kc->cause);
        break;
    default:
        json_decref(kc->changes);
        kc->changes = NULL;
        free(detail);
        return auth_db_list(db, &kc->changes);
    }
    if (rc == 0)
        rc = auth_db_audit(db, kc->actor, actions[kc->action], kc->name, detail, kc->client);
    if (rc == 0)
        rc = auth_db_load(db, &kc->keys, &kc->n_keys);
    free(detail);
    return rc;
}

static void key_done(int rc, void *arg)
{
    struct key_call *kc = arg;
    struct http_request *req = kc->req;

    if (kc->action != 3 && rc == 0) { /* in force before the answer: for the next request */
        auth_set_db_keys(kc->app->auth, kc->keys, kc->n_keys);
        kc->keys = NULL;
    }
    if (req != NULL) {
        http_request_set_cancel_cb(req, NULL, NULL);
        if (rc == IG_ENOENT)
            gw_reply_error(req, 404, "no such active key", "key_not_found", 0);
        else if (rc == IG_EINVAL)
            gw_reply_error(req, 400, kc->cause != NULL ? kc->cause : "invalid request",
                           "invalid_request_error", 0);
        else if (rc != 0)
            gw_reply_error(req, 500, "the database failed; see the server log", "storage_error", 0);
        else if (kc->action == 0)
            gw_reply_json(req, 201,
                          json_pack("{s:s, s:s, s:s, s:I}", "name", kc->spec.name, "key", kc->key,
                                    "prefix", kc->spec.prefix, "created_at",
                                    (json_int_t)kc->spec.created_at));
        else if (kc->action == 3)
            gw_reply_json(req, 200,
                          json_pack("{s:s, s:O}", "object", "list", "data", kc->changes));
        else
            gw_reply_json(req, 200, json_pack("{s:s, s:b}", "name", kc->name, "success", 1));
    }
    OPENSSL_cleanse(kc->key, sizeof(kc->key));
    for (size_t i = 0; kc->keys != NULL && i < kc->n_keys; i++)
        json_decref(kc->keys[i].models);
    free(kc->keys);
    json_decref(kc->spec.models);
    json_decref(kc->changes);
    free(kc->cause);
    free(kc);
}

/* Submits KC for REQ; answers 503 when the writer is saturated. */
static void submit_key_call(struct gw_app *app, struct http_request *req, struct key_call *kc)
{
    kc->app = app;
    kc->req = req;
    snprintf(kc->actor, sizeof(kc->actor), "%s", app->caller.name);
    snprintf(kc->client, sizeof(kc->client), "%s", http_request_peer(req));
    if (store_submit(app->store, key_job, key_done, kc) != 0) {
        kc->req = NULL;
        key_done(IG_EBUSY, kc);
        gw_reply_error(req, 503, "the database is busy; retry", "storage_busy", 1);
        return;
    }
    http_request_set_cancel_cb(req, key_call_cancel, kc);
}

/* Reads REQ's JSON object body; answers 400 and returns NULL when it is not one. */
static json_t *json_body(struct http_request *req)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    json_t *doc = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, NULL);

    if (!json_is_object(doc)) {
        json_decref(doc);
        gw_reply_error(req, 400, "expected a JSON object body", "invalid_request_error", 0);
        return NULL;
    }
    return doc;
}

/* POST /admin/keys {name, models?, rpm?, ..., expires_in?: "30d"}: makes a key, shown once. */
static void create_key(struct gw_app *app, struct http_request *req)
{
    json_t *doc = json_body(req), *v;
    const char *name = json_string_value(json_object_get(doc, "name")), *bad;
    struct key_call *kc;

    if (doc == NULL)
        return;
    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(kc->spec.name)) {
        json_decref(doc);
        gw_reply_error(req, 400, "name: expected a string of 1 to 127 characters",
                       "invalid_request_error", 0);
        return;
    }
    if ((bad = auth_name_refusal(app->auth, name)) != NULL) {
        json_decref(doc);
        gw_reply_error(req, 400, bad, "invalid_request_error", 0);
        return;
    }
    v = json_object_get(doc, "expires_in");
    int64_t expires_in = json_is_string(v) ? auth_parse_duration(json_string_value(v)) : 0;
    if (v != NULL && expires_in <= 0) {
        json_decref(doc);
        gw_reply_error(req, 400, "expires_in: expected a duration like 30d, 12h, 90m",
                       "invalid_request_error", 0);
        return;
    }
    json_t *limits = json_deep_copy(doc);
    json_object_del(limits, "name");
    json_object_del(limits, "expires_in");
    bad = auth_check_fields(limits);
    if (bad != NULL || (kc = calloc(1, sizeof(*kc))) == NULL) {
        gw_reply_error(req, bad != NULL ? 400 : 500, bad != NULL ? bad : "out of memory",
                       "invalid_request_error", 0);
        json_decref(limits);
        json_decref(doc);
        return;
    }
    snprintf(kc->spec.name, sizeof(kc->spec.name), "%s", name);
    snprintf(kc->name, sizeof(kc->name), "%s", name);
    auth_fill_spec(&kc->spec, limits);
    if (expires_in > 0)
        kc->spec.expires_at = ig_unix_s() + expires_in;
    kc->changes = limits;
    json_decref(doc);
    if (auth_make_key(app->auth, &kc->spec, kc->key) != 0) {
        key_done(IG_EIO, kc);
        gw_reply_error(req, 500, "cannot generate a key", "internal_error", 0);
        return;
    }
    kc->action = 0;
    submit_key_call(app, req, kc);
}

void gw_admin_keys(struct gw_app *app, struct http_request *req)
{
    const char *path = http_request_path(req), *method = http_request_method(req);
    const char *raw = strncmp(path, "/admin/keys/", 12) == 0 ? path + 12 : "";
    struct key_call *kc;
    char name[sizeof(kc->name)];

    /* NAME is a path segment: a name with spaces or '/' comes percent-encoded. */
    if (ig_percent_decode(raw, strlen(raw), false, name, sizeof(name)) < 0) {
        gw_reply_error(req, 400,
                       "key name in the path: a malformed percent escape, or longer than 127 "
                       "characters",
                       "invalid_request_error", 0);
        return;
    }
    if (name[0] == '\0' && strcmp(method, "POST") == 0) {
        create_key(app, req);
        return;
    }
    bool is_list = name[0] == '\0' && strcmp(method, "GET") == 0;
    bool is_revoke = name[0] != '\0' && strcmp(method, "DELETE") == 0;
    bool is_update = name[0] != '\0' && strcmp(method, "PATCH") == 0;
    if (!is_list && !is_revoke && !is_update) {
        gw_reply_error(req, 405, "use GET or POST /admin/keys, DELETE or PATCH /admin/keys/NAME",
                       "method_not_allowed", 0);
        return;
    }
    json_t *changes = is_update ? json_body(req) : NULL;
    if ((is_update && changes == NULL) || (kc = calloc(1, sizeof(*kc))) == NULL) {
        if (changes != NULL)
            gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        json_decref(changes);
        return;
    }
    snprintf(kc->name, sizeof(kc->name), "%s", name);
    kc->changes = changes;
    kc->action = is_list ? 3 : is_revoke ? 1 : 2;
    submit_key_call(app, req, kc);
}

/* ------------------------------------------------------------- /v1/usage -- */

/* A usage query on its way through the writer thread. */
struct usage_call {
    struct http_request *req; /* NULL once the client is gone */
    char key[AUTH_NAME_MAX];  /* only this key's rows; "" for all (admin) */
    int64_t from, to;
    bool by_key, by_model, by_hour, by_day;
    json_t *rows;
};

static void usage_call_cancel(struct http_request *req, void *arg)
{
    struct usage_call *uc = arg;
    (void)req;
    uc->req = NULL;
}

static int usage_job(sqlite3 *db, void *arg)
{
    struct usage_call *uc = arg;
    char sql[1024], group[128] = "";
    sqlite3_stmt *stmt = NULL;
    int n = 0, step;

    /* Only fixed column names go into the statement; values are bound. */
    snprintf(group, sizeof(group), "%s%s%s%s", uc->by_key ? ", key_name" : "",
             uc->by_model ? ", model" : "", uc->by_hour ? ", hour" : "",
             uc->by_day ? ", hour / 86400 * 86400" : "");
    snprintf(sql, sizeof(sql),
             "SELECT %s, %s, %s, sum(requests), sum(prompt_tokens), sum(completion_tokens),"
             " sum(errors), sum(latency_ms_sum) FROM usage_hourly"
             " WHERE hour >= ?1 AND hour < ?2 AND (?3 = '' OR key_name = ?3)%s%s ORDER BY 1, 2, 3"
             " LIMIT %d",
             uc->by_key ? "key_name" : "NULL", uc->by_model ? "model" : "NULL",
             uc->by_hour ? "hour" : uc->by_day ? "hour / 86400 * 86400" : "NULL",
             group[0] != '\0' ? " GROUP BY " : "", group[0] != '\0' ? group + 2 : "",
             MAX_USAGE_ROWS);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    sqlite3_bind_int64(stmt, 1, uc->from);
    sqlite3_bind_int64(stmt, 2, uc->to);
    sqlite3_bind_text(stmt, 3, uc->key, -1, SQLITE_STATIC);
    uc->rows = json_array();
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW && n++ < MAX_USAGE_ROWS) {
        int64_t requests = sqlite3_column_int64(stmt, 3);
        if (requests == 0 && sqlite3_column_type(stmt, 3) == SQLITE_NULL)
            continue; /* the aggregate row of an empty selection */
        int64_t pt = sqlite3_column_int64(stmt, 4), ct = sqlite3_column_int64(stmt, 5);
        json_t *row = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "requests", (json_int_t)requests,
                                "prompt_tokens", (json_int_t)pt, "completion_tokens",
                                (json_int_t)ct, "total_tokens", (json_int_t)(pt + ct), "errors",
                                (json_int_t)sqlite3_column_int64(stmt, 6), "avg_latency_ms",
                                requests > 0 ? (double)sqlite3_column_int64(stmt, 7) / (double)requests
                                             : 0.0);
        if (uc->by_key)
            json_object_set_new(row, "key", json_string((const char *)sqlite3_column_text(stmt, 0)));
        if (uc->by_model)
            json_object_set_new(row, "model", json_string((const char *)sqlite3_column_text(stmt, 1)));
        if (uc->by_hour || uc->by_day)
            json_object_set_new(row, uc->by_hour ? "hour" : "day",
                                json_integer(sqlite3_column_int64(stmt, 2)));
        json_array_append_new(uc->rows, row);
    }
    sqlite3_finalize(stmt);
    return step == SQLITE_DONE || step == SQLITE_ROW ? 0 : IG_EIO;
}

static void usage_done(int rc, void *arg)
{
    struct usage_call *uc = arg;

    gw_reply_stored(uc->req, rc,
                    rc == 0 ? json_pack("{s:s, s:I, s:I, s:O}", "object", "list", "from",
                                        (json_int_t)uc->from, "to", (json_int_t)uc->to, "data",
                                        uc->rows)
                            : NULL);
    json_decref(uc->rows);
    free(uc);
}

void gw_usage(struct gw_app *app, struct http_request *req)
{
    char group[128] = "key,model";
    struct usage_call *uc = calloc(1, sizeof(*uc));
    int has_key = 0;

    if (uc == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    uc->req = req;
    uc->to = ig_unix_s() + 3600;
    /* A key sees its own usage only; the admin sees all, or one key with ?key=NAME. */
    if (gw_query_time(req, "from", &uc->from) != 0 || gw_query_time(req, "to", &uc->to) != 0 ||
        gw_query_param(req, "group_by", group, sizeof(group)) < 0 ||
        (has_key = gw_query_param(req, "key", uc->key, sizeof(uc->key))) < 0) {
        free(uc);
        return;
    }
    if (!app->caller.is_admin || has_key == 0)
        snprintf(uc->key, sizeof(uc->key), "%s", app->caller.is_admin ? "" : app->caller.name);
    for (char *g = group, *comma; g != NULL && *g != '\0'; g = comma != NULL ? comma + 1 : NULL) {
        comma = strchr(g, ',');
        if (comma != NULL)
            *comma = '\0';
        bool *flag = strcmp(g, "key") == 0     ? &uc->by_key
                     : strcmp(g, "model") == 0 ? &uc->by_model
                     : strcmp(g, "hour") == 0  ? &uc->by_hour
                     : strcmp(g, "day") == 0   ? &uc->by_day
                                               : NULL;
        if (flag == NULL) {
            free(uc);
            gw_reply_error(req, 400, "group_by: a comma-separated list of key, model, hour, day",
                           "invalid_request_error", 0);
            return;
        }
        *flag = true;
    }
    if (uc->by_hour && uc->by_day)
        uc->by_day = false;
    auth_flush(app->auth); /* the query runs after what is pending: it sees every request */
    if (store_submit(app->store, usage_job, usage_done, uc) != 0) {
        free(uc);
        gw_reply_error(req, 503, "the database is busy; retry", "storage_busy", 1);
        return;
    }
    http_request_set_cancel_cb(req, usage_call_cancel, uc);
}
