/*
 * Ollama's API in front: /api/version, /api/tags, /api/ps and /api/show answered from the
 * catalog and the supervisor; /api/chat, /api/generate and /api/embed translated to OpenAI
 * requests and sent through the proxy (routing, on-demand start, auth and metering are the
 * OpenAI routes'), whose answers gw_ollama_xlate.c translates back. See docs/API.md.
 *
 * Ollama names models "name:tag"; infergate's ids have no tag, so tools see ids as they are,
 * and a name ending in ":latest" that matches no model is looked up without it.
 */
#include "cfg.h"
#include "gguf_meta.h"
#include "gw_internal.h"
#include "gw_ollama.h"
#include "http_server.h"
#include "ig_json.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 64
#define LATEST_TAG ":latest"

/* Ollama's routes, whose errors are {"error": message}. */
static const char *const ollama_paths[] = {
    "/api/version", "/api/tags", "/api/ps", "/api/show", "/api/chat", "/api/generate",
    "/api/embed",
};

bool gw_ollama_is_path(const char *path)
{
    for (size_t i = 0; i < sizeof(ollama_paths) / sizeof(ollama_paths[0]); i++)
        if (strcmp(path, ollama_paths[i]) == 0)
            return true;
    return false;
}

char *gw_ollama_error_body(const char *message)
{
    json_t *doc = json_pack("{s:s}", "error", message);
    char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return body;
}

void gw_ollama_version(struct gw_app *app, struct http_request *req)
{
    (void)app;
    gw_reply_json(req, 200, json_pack("{s:s}", "version", IG_VERSION));
}

/* Writes PARAMS as Ollama's parameter_size ("7.6B", "494M") into OUT; "" when unknown. */
static void parameter_size(json_int_t params, char *out, size_t size)
{
    if (params >= 1000000000)
        snprintf(out, size, "%.1fB", (double)params / 1e9);
    else if (params >= 1000000)
        snprintf(out, size, "%.0fM", (double)params / 1e6);
    else if (params > 0)
        snprintf(out, size, "%.0fK", (double)params / 1e3);
    else
        out[0] = '\0';
}

/* Returns Ollama's "details" of model C from its GGUF metadata where known (caller owns). */
static json_t *details_json(const struct cfg_model *c)
{
    const char *arch = json_string_value(json_object_get(c->details, "architecture"));
    const char *quant = json_string_value(json_object_get(c->details, "quantization"));
    char params[32];

    parameter_size(json_integer_value(json_object_get(c->details, "parameters")), params,
                   sizeof(params));
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "parent_model", "", "format",
                     c->gguf_path != NULL ? "gguf" : "", "family", arch != NULL ? arch : "",
                     "families", arch != NULL ? json_pack("[s]", arch) : json_null(),
                     "parameter_size", params, "quantization_level",
                     quant != NULL ? quant : "");
}

/* Writes a stable digest of model C (SHA-256 of its id and file, in hex) into OUT. */
static void model_digest(const struct cfg_model *c, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    char text[1024];
    int n = snprintf(text, sizeof(text), "%s\n%s", c->id,
                     c->gguf_path != NULL ? c->gguf_path : "");

    out[0] = '\0';
    if (n < 0 ||
        EVP_Digest(text, strnlen(text, sizeof(text)), md, &md_len, EVP_sha256(), NULL) != 1)
        return;
    for (unsigned i = 0; i < md_len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Returns the bytes model C's files take: the GGUF size when known, else its memory. */
static json_int_t model_size(const struct cfg_model *c)
{
    json_int_t size = json_integer_value(json_object_get(c->details, "size_bytes"));

    return size > 0 ? size : (json_int_t)c->mem_bytes;
}

/* Returns Ollama's object for model C (name, model, size, digest, details; caller owns). */
static json_t *model_json(const struct cfg_model *c)
{
    char digest[65];

    model_digest(c, digest);
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "name", c->id, "model", c->id, "size",
                     model_size(c), "digest", digest, "details", details_json(c));
}

void gw_ollama_tags(struct gw_app *app, struct http_request *req)
{
    json_t *models = json_array();
    char modified[IG_UTC_CHARS + 1];

    ig_format_utc(app->started_unix_s, modified);
    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        json_t *obj;
        if (c->unlisted || !auth_allows_model(&app->caller, c->id))
            continue; /* a key with an allow-list sees its models only */
        obj = model_json(c);
        json_object_set_new(obj, "modified_at", json_string(modified));
        json_array_append_new(models, obj);
    }
    gw_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

void gw_ollama_ps(struct gw_app *app, struct http_request *req)
{
    json_t *models = json_array();
    int64_t now_s = ig_unix_ms() / 1000;
    char expires[IG_UTC_CHARS + 1];

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model *m = sup_find(app->mgr, c->id);
        struct sup_model_info info;
        json_int_t ctx = json_integer_value(
            json_object_get(json_object_get(c->details, "memory"), "ctx_size"));
        json_t *obj;
        if (m == NULL || !auth_allows_model(&app->caller, c->id))
            continue;
        sup_model_info(m, &info);
        if (info.state != SUP_READY)
            continue;
        /* An idle model unloads ttl_s after its last request; without a ttl it stays. */
        ig_format_utc(c->ttl_s > 0 ? now_s + c->ttl_s - (int64_t)(info.idle_ms / 1000)
                                   : IG_UNIX_S_MAX,
                      expires);
        obj = model_json(c);
        json_object_set_new(obj, "expires_at", json_string(expires));
        json_object_set_new(obj, "size", json_integer((json_int_t)c->mem_bytes));
        json_object_set_new(obj, "size_vram", json_integer((json_int_t)c->vram_bytes));
        if (ctx > 0)
            json_object_set_new(obj, "context_length", json_integer(ctx));
        json_array_append_new(models, obj);
    }
    gw_reply_json(req, 200, json_pack("{s:o}", "models", models));
}

/* Returns Ollama's capability names of model C (caller owns). */
static json_t *capabilities_json(const struct cfg_model *c)
{
    static const struct {
        unsigned cap;
        const char *name;
    } names[] = {{GGUF_CAP_COMPLETION, "completion"}, {GGUF_CAP_EMBEDDINGS, "embedding"},
                 {GGUF_CAP_TOOLS, "tools"},           {GGUF_CAP_REASONING, "thinking"},
                 {GGUF_CAP_VISION, "vision"}};
    json_t *list = json_array();

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((c->caps & names[i].cap) != 0)
            json_array_append_new(list, json_string(names[i].name));
    return list;
}

/* Parses REQ's body as a JSON object; answers 400 and returns NULL when it is not one. */
static json_t *parse_body(struct http_request *req)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    char err[256];
    json_t *doc = ig_json_parse(body, len, MAX_JSON_DEPTH, err, sizeof(err));

    if (doc == NULL || !json_is_object(doc)) {
        gw_reply_error(req, 400, doc == NULL ? err : "request body must be a JSON object",
                       "invalid_json", 0);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Returns the configured model NAME (or NAME without ":latest") names, or NULL. */
static struct sup_model *find_model(struct gw_app *app, const char *name)
{
    struct sup_model *m = sup_find(app->mgr, name);
    size_t len = strlen(name), tag = strlen(LATEST_TAG);
    char bare[512];

    if (m == NULL && len > tag && len - tag < sizeof(bare) &&
        strcmp(name + len - tag, LATEST_TAG) == 0) {
        memcpy(bare, name, len - tag);
        bare[len - tag] = '\0';
        m = sup_find(app->mgr, bare);
    }
    return m;
}

void gw_ollama_show(struct gw_app *app, struct http_request *req)
{
    json_t *doc = parse_body(req), *info, *obj;
    const char *name = json_string_value(json_object_get(doc, "model"));
    struct sup_model *m;
    const struct cfg_model *c;
    char msg[300], modified[IG_UTC_CHARS + 1];

    if (doc == NULL)
        return;
    if (name == NULL)
        name = json_string_value(json_object_get(doc, "name")); /* older clients */
    m = name != NULL ? find_model(app, name) : NULL;
    if (m == NULL || !auth_allows_model(&app->caller, sup_model_cfg(m)->id)) {
        snprintf(msg, sizeof(msg), "model '%.200s' not found", name != NULL ? name : "");
        gw_reply_error(req, name != NULL ? 404 : 400, name != NULL ? msg : "model is required",
                       "model_not_found", 0);
        json_decref(doc);
        return;
    }
    c = sup_model_cfg(m);
    info = json_object();
    if (json_object_get(c->details, "architecture") != NULL) {
        const char *arch = json_string_value(json_object_get(c->details, "architecture"));
        char key[160];
        json_object_set_new(info, "general.architecture", json_string(arch));
        json_object_set(info, "general.parameter_count",
                        json_object_get(c->details, "parameters"));
        snprintf(key, sizeof(key), "%.100s.context_length", arch);
        json_object_set(info, key, json_object_get(c->details, "context_length"));
        snprintf(key, sizeof(key), "%.100s.embedding_length", arch);
        json_object_set(info, key, json_object_get(c->details, "embedding_length"));
        snprintf(key, sizeof(key), "%.100s.block_count", arch);
        json_object_set(info, key, json_object_get(c->details, "layers"));
    }
    ig_format_utc(app->started_unix_s, modified);
    obj = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s}", "license", "", "modelfile", "",
                    "parameters", "", "template", "", "details", details_json(c), "model_info",
                    info, "capabilities", capabilities_json(c), "modified_at", modified);
    gw_reply_json(req, 200, obj);
    json_decref(doc);
}

/* Copies Ollama's "options" of SRC into the OpenAI request DST; returns an error message for
 * a bad one, or NULL. */
static const char *copy_options(json_t *src, json_t *dst)
{
    static const char *const same[] = {"temperature", "top_p",    "top_k",
                                       "seed",        "stop",     "min_p",
                                       "typical_p",   "repeat_penalty",
                                       "presence_penalty", "frequency_penalty"};
    json_t *options = json_object_get(src, "options"), *n;

    if (options == NULL || json_is_null(options))
        return NULL;
    if (!json_is_object(options))
        return "options must be an object";
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        if (json_object_get(options, same[i]) != NULL)
            json_object_set(dst, same[i], json_object_get(options, same[i]));
    n = json_object_get(options, "num_predict");
    if (n != NULL && !json_is_integer(n))
        return "options.num_predict must be an integer";
    if (n != NULL && json_integer_value(n) >= 0) /* -1: no limit, -2: fill the context */
        json_object_set(dst, "max_tokens", n);
    return NULL;
}

/* Starts the OpenAI request of Ollama request SRC in DST: model, stream (Ollama's default
 * is true), options, format. Returns an error message for a bad field, or NULL. */
static const char *common_fields(struct gw_app *app, json_t *src, json_t *dst, bool *is_stream)
{
    json_t *model = json_object_get(src, "model"), *stream = json_object_get(src, "stream");
    json_t *format = json_object_get(src, "format");
    struct sup_model *m;

    if (model != NULL && !json_is_string(model))
        return "model must be a string";
    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream))
        return "stream must be a boolean";
    *is_stream = stream == NULL || json_is_null(stream) || json_is_true(stream);
    if (model != NULL) {
        m = find_model(app, json_string_value(model));
        json_object_set_new(dst, "model", json_string(m != NULL ? sup_model_cfg(m)->id
                                                                : json_string_value(model)));
    }
    if (*is_stream) {
        json_object_set_new(dst, "stream", json_true());
        json_object_set_new(dst, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    if (json_is_string(format) && strcmp(json_string_value(format), "json") == 0)
        json_object_set_new(dst, "response_format", json_pack("{s:s}", "type", "json_object"));
    else if (json_is_object(format))
        json_object_set_new(dst, "response_format",
                            json_pack("{s:s, s:{s:s, s:O}}", "type", "json_schema",
                                      "json_schema", "name", "format", "schema", format));
    else if (format != NULL && !json_is_null(format) && !json_is_string(format))
        return "format must be \"json\" or a JSON schema";
    return copy_options(src, dst);
}

/* Returns the OpenAI message of Ollama message SRC (caller owns), or NULL when malformed.
 * Images become image_url parts with data URLs. */
static json_t *message_json(json_t *src)
{
    json_t *role = json_object_get(src, "role"), *content = json_object_get(src, "content");
    json_t *images = json_object_get(src, "images"), *parts, *msg;
    size_t i;
    json_t *image;

    if (!json_is_string(role) || (content != NULL && !json_is_string(content)))
        return NULL;
    msg = json_pack("{s:O, s:s}", "role", role, "content",
                    content != NULL ? json_string_value(content) : "");
    if (msg == NULL || json_array_size(images) == 0)
        return msg;
    parts = json_pack("[{s:s, s:O}]", "type", "text", "text", json_object_get(msg, "content"));
    json_array_foreach(images, i, image) {
        char *url;
        size_t len;
        if (!json_is_string(image) || parts == NULL)
            continue;
        len = json_string_length(image) + 32;
        url = malloc(len);
        if (url == NULL)
            continue;
        snprintf(url, len, "data:image/png;base64,%s", json_string_value(image));
        json_array_append_new(parts, json_pack("{s:s, s:{s:s}}", "type", "image_url",
                                               "image_url", "url", url));
        free(url);
    }
    json_object_set_new(msg, "content", parts);
    return msg;
}

/* Proxies OpenAI request DOC (taken) to PATH, translated back as KIND for the model the
 * client named in SRC. */
static void send_translated(struct gw_app *app, struct http_request *req, json_t *src,
                            json_t *doc, const char *path, enum gw_ollama_kind kind,
                            bool is_stream)
{
    const char *name = json_string_value(json_object_get(src, "model"));
    void *state = gw_ollama_state_new(kind, name != NULL ? name : "", is_stream);

    if (state == NULL)
        gw_reply_error(req, 500, "out of memory", "internal_error", 0);
    else
        gw_proxy_translated(app, req, path, doc, &gw_ollama_ops, state);
    json_decref(doc);
}

void gw_ollama_chat(struct gw_app *app, struct http_request *req)
{
    json_t *src = parse_body(req), *doc = json_object(), *messages = json_array(), *m;
    json_t *given = json_object_get(src, "messages");
    const char *bad = NULL;
    bool is_stream = true;
    size_t i;

    if (src == NULL)
        goto out;
    bad = common_fields(app, src, doc, &is_stream);
    if (bad == NULL && !json_is_array(given))
        bad = "messages must be an array";
    /* Tool calls are not translated yet (answers would lose them): say so instead. */
    if (bad == NULL && json_array_size(json_object_get(src, "tools")) > 0)
        bad = "tools are not supported on /api/chat yet; use /v1/chat/completions";
    json_array_foreach(given, i, m) {
        json_t *msg = bad == NULL ? message_json(m) : NULL;
        if (msg == NULL && bad == NULL)
            bad = "each message needs a string role and a string content";
        json_array_append_new(messages, msg);
    }
    if (bad != NULL) {
        gw_reply_error(req, 400, bad, "invalid_request_error", 0);
        goto out;
    }
    json_object_set(doc, "messages", messages);
    send_translated(app, req, src, doc, "/v1/chat/completions", GW_OLLAMA_CHAT, is_stream);
    doc = NULL;
out:
    json_decref(messages);
    json_decref(doc);
    json_decref(src);
}

/*
 * Ollama's /api/generate applies the model's chat template to the prompt unless "raw" is
 * set, so a templated prompt goes out as a chat (with "system" as a system message) and a
 * raw one as /v1/completions.
 */
void gw_ollama_generate(struct gw_app *app, struct http_request *req)
{
    json_t *src = parse_body(req), *doc = json_object();
    json_t *prompt, *system;
    const char *bad = NULL;
    bool is_stream = true, is_raw;

    if (src == NULL)
        goto out;
    prompt = json_object_get(src, "prompt");
    system = json_object_get(src, "system");
    is_raw = json_is_true(json_object_get(src, "raw"));
    bad = common_fields(app, src, doc, &is_stream);
    if (bad == NULL && prompt != NULL && !json_is_string(prompt))
        bad = "prompt must be a string";
    if (bad == NULL && system != NULL && !json_is_string(system) && !json_is_null(system))
        bad = "system must be a string";
    if (bad != NULL) {
        gw_reply_error(req, 400, bad, "invalid_request_error", 0);
        goto out;
    }
    if (is_raw) {
        json_object_set_new(doc, "prompt", json_string(prompt != NULL ? json_string_value(prompt)
                                                                      : ""));
        send_translated(app, req, src, doc, "/v1/completions", GW_OLLAMA_GENERATE, is_stream);
    } else {
        json_t *messages = json_array();
        if (json_is_string(system))
            json_array_append_new(messages, json_pack("{s:s, s:O}", "role", "system", "content",
                                                      system));
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "user", "content",
                                                  prompt != NULL ? json_string_value(prompt)
                                                                 : ""));
        json_object_set_new(doc, "messages", messages);
        send_translated(app, req, src, doc, "/v1/chat/completions", GW_OLLAMA_GENERATE,
                        is_stream);
    }
    doc = NULL;
out:
    json_decref(doc);
    json_decref(src);
}

void gw_ollama_embed(struct gw_app *app, struct http_request *req)
{
    json_t *src = parse_body(req), *doc = json_object();
    json_t *input, *item, *model;
    const char *bad = NULL;
    size_t i;

    if (src == NULL)
        goto out;
    input = json_object_get(src, "input");
    model = json_object_get(src, "model");
    if (model != NULL && !json_is_string(model))
        bad = "model must be a string";
    else if (!json_is_string(input) && !json_is_array(input))
        bad = "input must be a string or an array of strings";
    json_array_foreach(input, i, item) {
        if (!json_is_string(item))
            bad = "input must be a string or an array of strings";
    }
    if (bad != NULL) {
        gw_reply_error(req, 400, bad, "invalid_request_error", 0);
        goto out;
    }
    if (model != NULL) {
        struct sup_model *m = find_model(app, json_string_value(model));
        json_object_set_new(doc, "model", json_string(m != NULL ? sup_model_cfg(m)->id
                                                                : json_string_value(model)));
    }
    json_object_set(doc, "input", input);
    if (json_is_integer(json_object_get(src, "dimensions")))
        json_object_set(doc, "dimensions", json_object_get(src, "dimensions"));
    send_translated(app, req, src, doc, "/v1/embeddings", GW_OLLAMA_EMBED, false);
    doc = NULL;
out:
    json_decref(doc);
    json_decref(src);
}
