/*
 * GET /openapi.json: an OpenAPI 3.1 document built from the route table and the
 * descriptions below. A route with no description here is still listed, with the summary
 * "undocumented" (the e2e test that keeps docs/API.md in sync refuses that). Prefix routes
 * ("/admin/keys/") appear under their templated form ("/admin/keys/{name}").
 */
#include "gw_internal.h"
#include "http_server.h"

#include <stdio.h>
#include <string.h>

/* What a route takes and answers, for the document. */
enum body_kind { BODY_NONE, BODY_JSON, BODY_INFERENCE };
enum reply_kind {
    REPLY_JSON, REPLY_INFERENCE, REPLY_TEXT, REPLY_SSE, REPLY_METRICS, REPLY_ANY, REPLY_NDJSON
};

struct route_doc {
    const char *path;     /* as in the route table */
    const char *method;   /* as in the route table */
    const char *template; /* the OpenAPI path; NULL: PATH */
    const char *methods;  /* for "*" routes: the methods it serves, comma-separated */
    const char *tag;
    const char *summary;
    enum body_kind body;
    enum reply_kind reply;
};

static const struct route_doc docs[] = {
    {"/healthz", "GET", NULL, NULL, "health", "Process alive", BODY_NONE, REPLY_JSON},
    {"/health", "GET", NULL, NULL, "health", "Process alive (llama.cpp's name)", BODY_NONE,
     REPLY_JSON},
    {"/readyz", "GET", NULL, NULL, "health",
     "Ready: config loaded, database open, a model can serve (503 with reasons otherwise)",
     BODY_NONE, REPLY_JSON},
    {"/openapi.json", "GET", NULL, NULL, "health", "This document", BODY_NONE, REPLY_JSON},
    {"/v1/models", "GET", NULL, NULL, "models", "OpenAI model list (a key sees its models)",
     BODY_NONE, REPLY_JSON},
    {"/running", "GET", NULL, NULL, "models", "Running models (llama-swap)", BODY_NONE,
     REPLY_JSON},
    {"/workers", "GET", NULL, NULL, "admin", "Workers on the bus (distributed mode)", BODY_NONE,
     REPLY_JSON},
    {"/unload", "GET", NULL, NULL, "models", "Stop every model (llama-swap)", BODY_NONE,
     REPLY_TEXT},
    {"/unload", "POST", NULL, NULL, "models", "Stop every model (llama-swap)", BODY_NONE,
     REPLY_TEXT},
    {"/models", "GET", NULL, NULL, "models", "Every model with state and capabilities",
     BODY_NONE, REPLY_JSON},
    {"/models/load", "POST", NULL, NULL, "models", "Start a model; answers when it is ready",
     BODY_JSON, REPLY_JSON},
    {"/models/unload", "POST", NULL, NULL, "models", "Stop a model", BODY_JSON, REPLY_JSON},
    {"/api/models/unload", "POST", NULL, NULL, "models", "Stop every model (llama-swap UI)",
     BODY_NONE, REPLY_TEXT},
    {"/api/models/unload/", "POST", "/api/models/unload/{model}", NULL, "models",
     "Stop one model (llama-swap UI)", BODY_NONE, REPLY_TEXT},
    {"/status", "GET", NULL, NULL, "observability",
     "Version, uptime, models, queues, budget, request counters and rates", BODY_NONE,
     REPLY_JSON},
    {"/metrics", "GET", NULL, NULL, "observability", "Prometheus metrics", BODY_NONE,
     REPLY_METRICS},
    {"/events", "GET", NULL, NULL, "observability",
     "Live model, request and status events (server-sent events)", BODY_NONE, REPLY_SSE},
    {"/admin/requests", "GET", NULL, NULL, "observability",
     "The request log, newest first, with filters and paging", BODY_NONE, REPLY_JSON},
    {"/admin/events", "GET", NULL, NULL, "observability",
     "Model events (load, ready, unload, evict, crash...), newest first", BODY_NONE,
     REPLY_JSON},
    {"/v1/usage", "GET", NULL, NULL, "keys", "Token usage by key, model, hour or day",
     BODY_NONE, REPLY_JSON},
    {"/admin/keys", "*", NULL, "get,post", "keys", "List keys; make a key (shown once)",
     BODY_JSON, REPLY_JSON},
    {"/admin/keys/", "*", "/admin/keys/{name}", "patch,delete", "keys",
     "Change a key's limits; revoke a key (name percent-encoded)", BODY_JSON, REPLY_JSON},
    {"/admin/audit", "GET", NULL, NULL, "keys",
     "Audit log of key changes (who, what, when, from where), newest first, with filters and "
     "paging",
     BODY_NONE, REPLY_JSON},
    {"/admin/reload", "POST", NULL, NULL, "admin", "Re-read the config file", BODY_NONE,
     REPLY_JSON},
    {"/models/rescan", "POST", NULL, NULL, "admin", "Rescan models_dir (reloads the config)",
     BODY_NONE, REPLY_JSON},
    {"/api/profiles", "GET", NULL, NULL, "admin", "Profiles and the active one (llama-swap)",
     BODY_NONE, REPLY_JSON},
    {"/api/profiles/active", "PUT", NULL, NULL, "admin", "Switch the active profile",
     BODY_JSON, REPLY_JSON},
    {"/logs", "GET", NULL, NULL, "logs", "Log history as text", BODY_NONE, REPLY_TEXT},
    {"/logs/stream", "GET", NULL, NULL, "logs", "Log history, then live lines", BODY_NONE,
     REPLY_TEXT},
    {"/logs/stream/", "GET", "/logs/stream/{source}", NULL, "logs",
     "One source's log: proxy, upstream or a model", BODY_NONE, REPLY_TEXT},
    {"/upstream/", "*", "/upstream/{model}/{path}", "get,post,put,patch,delete", "inference",
     "Pass a request to a model's own server (llama-swap)", BODY_NONE, REPLY_ANY},
    {"/ui", "GET", NULL, NULL, "dashboard", "Redirect to the dashboard (/ui/)", BODY_NONE,
     REPLY_TEXT},
    {"/ui/*", "GET", "/ui/{file}", NULL, "dashboard",
     "The dashboard's files (/ui/ is its page); /ui/auth.json says whether auth is on",
     BODY_NONE, REPLY_ANY},
    {"/api/version", "GET", NULL, NULL, "ollama", "Ollama: the version", BODY_NONE, REPLY_JSON},
    {"/api/tags", "GET", NULL, NULL, "ollama", "Ollama: the models (a key sees its models)",
     BODY_NONE, REPLY_JSON},
    {"/api/ps", "GET", NULL, NULL, "ollama", "Ollama: the running models", BODY_NONE,
     REPLY_JSON},
    {"/api/show", "POST", NULL, NULL, "ollama", "Ollama: one model's details", BODY_JSON,
     REPLY_JSON},
    {"/api/chat", "POST", NULL, NULL, "ollama", "Ollama chat (NDJSON stream by default)",
     BODY_INFERENCE, REPLY_NDJSON},
    {"/api/generate", "POST", NULL, NULL, "ollama",
     "Ollama generate (NDJSON stream by default)", BODY_INFERENCE, REPLY_NDJSON},
    {"/api/embed", "POST", NULL, NULL, "ollama", "Ollama embeddings", BODY_INFERENCE,
     REPLY_JSON},
    {"/v1/files", "*", NULL, "get,post", "batches",
     "List files; upload a file (multipart/form-data: purpose, file)", BODY_NONE, REPLY_JSON},
    {"/v1/files/*/content", "GET", "/v1/files/{id}/content", NULL, "batches",
     "A file's content", BODY_NONE, REPLY_ANY},
    {"/v1/files/", "*", "/v1/files/{id}", "get,delete", "batches", "A file object; delete it",
     BODY_NONE, REPLY_JSON},
    {"/v1/batches", "*", NULL, "get,post", "batches",
     "List batches; create a batch from an uploaded JSONL file (OpenAI Batch API)", BODY_JSON,
     REPLY_JSON},
    {"/v1/batches/*/cancel", "POST", "/v1/batches/{id}/cancel", NULL, "batches",
     "Cancel a batch", BODY_NONE, REPLY_JSON},
    {"/v1/batches/", "GET", "/v1/batches/{id}", NULL, "batches", "A batch object", BODY_NONE,
     REPLY_JSON},
    {"/v1/chat/completions", "POST", NULL, NULL, "inference", "OpenAI chat completion",
     BODY_INFERENCE, REPLY_INFERENCE},
    {"/v1/completions", "POST", NULL, NULL, "inference", "OpenAI text completion",
     BODY_INFERENCE, REPLY_INFERENCE},
    {"/v1/embeddings", "POST", NULL, NULL, "inference", "OpenAI embeddings", BODY_INFERENCE,
     REPLY_JSON},
    {"/v1/rerank", "POST", NULL, NULL, "inference", "Rerank documents (llama.cpp)",
     BODY_INFERENCE, REPLY_JSON},
    {"/v1/reranking", "POST", NULL, NULL, "inference", "Rerank documents (llama.cpp)",
     BODY_INFERENCE, REPLY_JSON},
    {"/rerank", "POST", NULL, NULL, "inference", "Rerank documents (llama.cpp)",
     BODY_INFERENCE, REPLY_JSON},
    {"/reranking", "POST", NULL, NULL, "inference", "Rerank documents (llama.cpp)",
     BODY_INFERENCE, REPLY_JSON},
    {"/completion", "POST", NULL, NULL, "inference", "llama.cpp completion", BODY_INFERENCE,
     REPLY_INFERENCE},
    {"/completions", "POST", NULL, NULL, "inference", "llama.cpp completion", BODY_INFERENCE,
     REPLY_INFERENCE},
    {"/infill", "POST", NULL, NULL, "inference", "llama.cpp code infill", BODY_INFERENCE,
     REPLY_INFERENCE},
    {"/embedding", "POST", NULL, NULL, "inference", "llama.cpp embedding", BODY_INFERENCE,
     REPLY_JSON},
    {"/embeddings", "POST", NULL, NULL, "inference", "llama.cpp embeddings", BODY_INFERENCE,
     REPLY_JSON},
};

/* Returns the description of route PATH/METHOD, or NULL. */
static const struct route_doc *doc_of(const char *path, const char *method)
{
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        if (strcmp(docs[i].path, path) == 0 && strcmp(docs[i].method, method) == 0)
            return &docs[i];
    return NULL;
}

/* Returns the response object for a reply kind. */
static json_t *responses(enum reply_kind reply)
{
    static const char *const types[] = {"application/json", "application/json", "text/plain",
                                        "text/event-stream", "text/plain", "*/*",
                                        "application/json"};
    json_t *content = json_object();
    json_t *error = json_pack("{s:s, s:{s:{s:{s:s}}}}", "description",
                              "An error in OpenAI's shape", "content", "application/json",
                              "schema", "$ref", "#/components/schemas/Error");

    json_object_set_new(content, types[reply], json_object());
    if (reply == REPLY_INFERENCE) /* "stream": true answers server-sent events */
        json_object_set_new(content, "text/event-stream", json_object());
    if (reply == REPLY_NDJSON) /* Ollama streams unless "stream": false */
        json_object_set_new(content, "application/x-ndjson", json_object());
    return json_pack("{s:{s:s, s:o}, s:o}", "200", "description", "Success", "content",
                     content, "default", error);
}

/* Returns the operation object for METHOD (lower case) of route D (or an undocumented one)
 * of ACCESS. */
static json_t *operation(const struct route_doc *d, const char *method, enum gw_access access,
                         const char *id)
{
    json_t *op = json_pack("{s:s, s:s, s:[s], s:o}", "operationId", id, "summary",
                           d != NULL ? d->summary : "undocumented", "tags",
                           d != NULL ? d->tag : "other", "responses",
                           responses(d != NULL ? d->reply : REPLY_ANY));

    if (access != GW_PUBLIC)
        json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
    if (access == GW_ADMIN)
        json_object_set_new(op, "x-infergate-access", json_string("admin"));
    bool takes_body = strcmp(method, "post") == 0 || strcmp(method, "put") == 0 ||
                      strcmp(method, "patch") == 0;
    if (d != NULL && d->body != BODY_NONE && takes_body)
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:{s:{s:{s:s}}}}", "required",
                                      d->body == BODY_INFERENCE, "content", "application/json",
                                      "schema", "$ref",
                                      d->body == BODY_INFERENCE
                                          ? "#/components/schemas/InferenceRequest"
                                          : "#/components/schemas/Object"));
    return op;
}

/* Adds the path parameters named in TEMPLATE ("{name}") to the path item ITEM. */
static void add_parameters(json_t *item, const char *template)
{
    json_t *params = json_array();
    char name[64];

    for (const char *p = strchr(template, '{'); p != NULL; p = strchr(p + 1, '{')) {
        size_t n = strcspn(p + 1, "}");
        snprintf(name, sizeof(name), "%.*s", (int)n, p + 1);
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in",
                                                "path", "required", 1, "schema", "type",
                                                "string"));
    }
    if (json_array_size(params) > 0)
        json_object_set_new(item, "parameters", params);
    else
        json_decref(params);
}

/* Adds route I of the table to PATHS. */
static void add_route(json_t *paths, size_t i)
{
    const char *path, *method;
    enum gw_access access;
    char methods[64], lower[16], id[160];

    gw_route_info(i, &path, &method, &access);
    const struct route_doc *d = doc_of(path, method);
    const char *template = d != NULL && d->template != NULL ? d->template : path;
    json_t *item = json_object_get(paths, template);

    if (item == NULL) {
        item = json_object();
        add_parameters(item, template);
        json_object_set_new(paths, template, item);
    }
    snprintf(methods, sizeof(methods), "%s",
             strcmp(method, "*") != 0 ? method : d != NULL && d->methods != NULL ? d->methods
                                                                                  : "get,post");
    for (char *m = methods, *comma; m != NULL && *m != '\0'; m = comma != NULL ? comma + 1 : NULL) {
        comma = strchr(m, ',');
        if (comma != NULL)
            *comma = '\0';
        size_t k = 0;
        for (; m[k] != '\0' && k + 1 < sizeof(lower); k++)
            lower[k] = (char)(m[k] >= 'A' && m[k] <= 'Z' ? m[k] - 'A' + 'a' : m[k]);
        lower[k] = '\0';
        snprintf(id, sizeof(id), "%s%s", lower, template);
        for (char *c = id; *c != '\0'; c++)
            if (*c == '/' || *c == '{' || *c == '}' || *c == '.')
                *c = '_';
        json_object_set_new(item, lower, operation(d, lower, access, id));
    }
}

void gw_openapi_handle(struct gw_app *app, struct http_request *req)
{
    json_t *paths = json_object();
    (void)app;

    for (size_t i = 0; i < gw_route_count(); i++)
        add_route(paths, i);
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:{s:{s:s, s:s}}, s:{s:{s:s, s:[s], s:{s:{s:s, "
        "s:{s:{s:s}, s:{s:s}, s:{s:[s,s]}}}}}, s:{s:s, s:[s], s:{s:{s:s}, s:{s:s}}}, "
        "s:{s:s}}}}",
        "openapi", "3.1.0", "info", "title", "infergate", "version", IG_VERSION, "description",
        "OpenAI-compatible LLM gateway: inference, models, keys, observability. See docs/API.md.",
        "paths", paths, "components", "securitySchemes", "bearer", "type", "http", "scheme",
        "bearer", "schemas", "Error", "type", "object", "required", "error", "properties",
        "error", "type", "object", "properties", "message", "type", "string", "type", "type",
        "string", "code", "type", "string", "null", "InferenceRequest", "type", "object",
        "required", "model", "properties", "model", "type", "string", "stream", "type",
        "boolean", "Object", "type", "object");
    gw_reply_json(req, 200, doc);
}
