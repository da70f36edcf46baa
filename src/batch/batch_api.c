/*
 * /v1/batches in OpenAI's shapes: create (POST, {input_file_id, endpoint,
 * completion_window: "24h", metadata}), list (GET, ?after&limit), retrieve (GET /ID) and
 * cancel (POST /ID/cancel). Each answer comes from a store job; creation and cancellation
 * then hand the batch to the service (batch_svc.c), which does the work.
 */
#include "batch.h"
#include "batch_db.h"
#include "batch_svc.h"
#include "gw_internal.h"
#include "http_server.h"
#include "ig_json.h"
#include "ig_time.h"
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 20
#define LIST_MAX 100
#define METADATA_MAX_KEYS 16
#define METADATA_KEY_MAX 64
#define METADATA_VALUE_MAX 512

enum api_action { API_CREATE, API_LIST, API_GET, API_CANCEL };

/* A batches call on its way through the writer thread. */
struct api_call {
    struct http_request *req; /* NULL once the client is gone */
    struct batch_anchor *anchor;
    enum api_action action;
    struct batch_who who;
    struct batch_new b;
    char after[BATCH_ID_MAX + 1];
    int64_t limit;
    json_t *doc;
};

/* The client went away: forget the request. */
static void api_call_cancel(struct http_request *req, void *arg)
{
    struct api_call *ac = arg;
    (void)req;
    ac->req = NULL;
}

static int api_job(sqlite3 *db, void *arg)
{
    struct api_call *ac = arg;
    int rc;

    switch (ac->action) {
    case API_CREATE:
        rc = batch_db_insert(db, &ac->b, &ac->who);
        break;
    case API_LIST:
        return batch_db_list(db, &ac->who, ac->after, ac->limit, &ac->doc);
    case API_CANCEL:
        rc = batch_db_cancel(db, ac->b.id, &ac->who, ig_unix_s());
        break;
    default:
        rc = 0;
        break;
    }
    if (rc == 0 || rc == IG_EINVAL) { /* a refused cancel answers with the batch's status */
        ac->doc = batch_db_get(db, ac->b.id, &ac->who);
        if (ac->doc == NULL && rc == 0)
            rc = ac->action == API_CREATE ? IG_EIO : IG_ENOENT;
    }
    return rc;
}

/* Answers a list: OpenAI's page with first_id, last_id and has_more. */
static void answer_list(struct api_call *ac)
{
    bool has_more = json_array_size(ac->doc) > (size_t)ac->limit;
    size_t n;
    json_t *page;

    if (has_more)
        json_array_remove(ac->doc, json_array_size(ac->doc) - 1);
    n = json_array_size(ac->doc);
    page = json_pack("{s:s, s:O, s:o, s:o, s:b}", "object", "list", "data", ac->doc, "first_id",
                     n > 0 ? json_incref(json_object_get(json_array_get(ac->doc, 0), "id"))
                           : json_null(),
                     "last_id",
                     n > 0 ? json_incref(json_object_get(json_array_get(ac->doc, n - 1), "id"))
                           : json_null(),
                     "has_more", has_more);
    gw_reply_json(ac->req, 200, page);
}

/* Answers a call that ended with RC. */
static void answer(struct api_call *ac, int rc)
{
    struct http_request *req = ac->req;
    char msg[200];

    if (rc == IG_ENOENT && ac->action == API_CREATE) {
        snprintf(msg, sizeof(msg), "No such File object: %s", ac->b.input_file_id);
        gw_reply_error(req, 404, msg, "file_not_found", 0);
    } else if (rc == IG_ENOENT) {
        snprintf(msg, sizeof(msg), "No batch found with id '%s'.", ac->b.id);
        gw_reply_error(req, 404, msg, "batch_not_found", 0);
    } else if (rc == IG_EINVAL && ac->action == API_CREATE) {
        snprintf(msg, sizeof(msg), "file %s was not uploaded with purpose 'batch'",
                 ac->b.input_file_id);
        gw_reply_error(req, 400, msg, "invalid_file_purpose", 0);
    } else if (rc == IG_EINVAL) {
        snprintf(msg, sizeof(msg), "Cannot cancel a batch with status '%s'.",
                 json_string_value(json_object_get(ac->doc, "status")) != NULL
                     ? json_string_value(json_object_get(ac->doc, "status"))
                     : "?");
        gw_reply_error(req, 409, msg, "batch_not_cancellable", 0);
    } else if (rc != 0) {
        gw_reply_error(req, 500, "the database failed; see the server log", "storage_error", 0);
    } else if (ac->action == API_LIST) {
        answer_list(ac);
    } else {
        gw_reply_json(req, 200, json_incref(ac->doc));
    }
}

static void api_done(int rc, void *arg)
{
    struct api_call *ac = arg;
    struct batch_svc *svc = batch_anchor_svc(ac->anchor);

    if (rc == 0 && svc != NULL && ac->action == API_CREATE)
        batch_svc_created(svc, ac->b.id, ac->b.owner, ac->b.endpoint, ac->b.input_file_id);
    if (rc == 0 && svc != NULL && ac->action == API_CANCEL)
        batch_svc_cancelled(svc, ac->b.id);
    if (ac->req != NULL) {
        http_request_set_cancel_cb(ac->req, NULL, NULL);
        answer(ac, rc);
    }
    batch_anchor_release(ac->anchor);
    json_decref(ac->b.metadata);
    json_decref(ac->doc);
    free(ac);
}

/* Returns NULL when DOC is acceptable batch metadata (null, or an object of at most 16
 * string values), else why not. */
static const char *metadata_refusal(json_t *doc)
{
    const char *key;
    json_t *v;

    if (doc == NULL || json_is_null(doc))
        return NULL;
    if (!json_is_object(doc) || json_object_size(doc) > METADATA_MAX_KEYS)
        return "'metadata' must be an object of at most 16 keys";
    json_object_foreach(doc, key, v) {
        if (strlen(key) > METADATA_KEY_MAX || !json_is_string(v) ||
            json_string_length(v) > METADATA_VALUE_MAX)
            return "'metadata' keys are at most 64 characters and values strings of at most "
                   "512";
    }
    return NULL;
}

/* Reads a create request of REQ into AC; returns 0, or -1 after answering. */
static int read_create(struct gw_app *app, struct http_request *req, struct api_call *ac)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len), *refusal;
    char err[160];
    json_t *doc = ig_json_parse(body != NULL ? body : "", len, 64, err, sizeof(err));
    const char *file = json_string_value(json_object_get(doc, "input_file_id"));
    const char *endpoint = json_string_value(json_object_get(doc, "endpoint"));
    const char *window = json_string_value(json_object_get(doc, "completion_window"));
    int rc = -1;

    if (!json_is_object(doc)) {
        gw_reply_error(req, 400, "the body must be a JSON object", "invalid_json", 0);
    } else if (file == NULL || !batch_id_ok(file)) {
        gw_reply_error(req, 400, "'input_file_id' is required: the id of a file uploaded with "
                                 "purpose 'batch'", "missing_required_parameter", 0);
    } else if (endpoint == NULL || (strcmp(endpoint, "/v1/chat/completions") != 0 &&
                                    strcmp(endpoint, "/v1/completions") != 0 &&
                                    strcmp(endpoint, "/v1/embeddings") != 0)) {
        gw_reply_error(req, 400, "'endpoint' must be /v1/chat/completions, /v1/completions or "
                                 "/v1/embeddings", "invalid_value", 0);
    } else if (window == NULL || strcmp(window, "24h") != 0) {
        gw_reply_error(req, 400, "'completion_window' must be '24h'", "invalid_value", 0);
    } else if ((refusal = metadata_refusal(json_object_get(doc, "metadata"))) != NULL) {
        gw_reply_error(req, 400, refusal, "invalid_value", 0);
    } else if ((refusal = batch_svc_unavailable(app->batch)) != NULL) {
        gw_reply_error(req, 503, refusal, "batches_unavailable", 0);
    } else {
        batch_new_id("batch_", ac->b.id, sizeof(ac->b.id));
        snprintf(ac->b.owner, sizeof(ac->b.owner), "%s", ac->who.owner);
        snprintf(ac->b.endpoint, sizeof(ac->b.endpoint), "%s", endpoint);
        snprintf(ac->b.input_file_id, sizeof(ac->b.input_file_id), "%s", file);
        ac->b.metadata = json_is_object(json_object_get(doc, "metadata"))
                             ? json_incref(json_object_get(doc, "metadata"))
                             : NULL;
        ac->b.created_at = ig_unix_s();
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

/* Sets AC's action and batch id from REQ's method and path; returns 0, or -1 after
 * answering. */
static int read_target(struct http_request *req, struct api_call *ac)
{
    const char *method = http_request_method(req), *path = http_request_path(req);
    const char *rest = path + strlen("/v1/batches/");
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    size_t id_len;

    if (path[strlen("/v1/batches")] == '\0') {
        ac->action = is_post ? API_CREATE : API_LIST;
        return is_post || is_get ? 0 : -2;
    }
    id_len = strcspn(rest, "/");
    if (id_len == 0 || id_len > BATCH_ID_MAX)
        return -1;
    memcpy(ac->b.id, rest, id_len);
    ac->b.id[id_len] = '\0';
    if (!batch_id_ok(ac->b.id))
        return -1;
    if (strcmp(rest + id_len, "/cancel") == 0) {
        ac->action = API_CANCEL;
        return is_post ? 0 : -2;
    }
    if (rest[id_len] != '\0')
        return -1;
    ac->action = API_GET;
    return is_get ? 0 : -2;
}

void batch_api_handle(struct gw_app *app, struct http_request *req)
{
    struct api_call *ac = calloc(1, sizeof(*ac));
    int rc;

    if (ac == NULL) {
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
        return;
    }
    ac->req = req;
    batch_who_of(app, &ac->who);
    rc = read_target(req, ac);
    if (rc == -1)
        gw_reply_error(req, 404, "no such endpoint", "not_found", 0);
    else if (rc == -2)
        gw_reply_error(req, 405, "method not allowed here", "method_not_allowed", 0);
    if (rc == 0 && ac->action == API_CREATE)
        rc = read_create(app, req, ac);
    if (rc == 0 && ac->action == API_LIST) {
        ac->limit = LIST_DEFAULT;
        if (gw_query_param(req, "after", ac->after, sizeof(ac->after)) < 0 ||
            gw_query_int(req, "limit", 1, LIST_MAX, NULL, &ac->limit) != 0)
            rc = -1;
    }
    if (rc == 0 && app->batch == NULL) {
        gw_reply_error(req, 503, batch_svc_unavailable(NULL), "batches_unavailable", 0);
        rc = -1;
    }
    if (rc == 0) {
        ac->anchor = batch_anchor_take(app->batch);
        if (store_submit(app->store, api_job, api_done, ac) != 0) {
            batch_anchor_release(ac->anchor);
            gw_reply_error(req, 503, "the database is overloaded; retry", "storage_busy", 1);
            rc = -1;
        } else {
            http_request_set_cancel_cb(req, api_call_cancel, ac);
            return;
        }
    }
    json_decref(ac->b.metadata);
    free(ac);
}
