/* HTTP routes of infergate-engine: request parsing into tasks and the small endpoints. */
#include "engine_internal.h"

#include "http_server.h"
#include "ig_errbody.h"
#include "ig_json.h"
#include "ig_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))
#define ENG_JSON_MAX_DEPTH 64
#define ENG_MAX_TOKENS_IN 1048576

enum route {
    ROUTE_HEALTH,
    ROUTE_MODELS,
    ROUTE_PROPS,
    ROUTE_SLOTS,
    ROUTE_METRICS,
    ROUTE_CHAT,
    ROUTE_OAI_CMPL,
    ROUTE_NATIVE,
    ROUTE_OAI_EMBD,
    ROUTE_NATIVE_EMBD,
    ROUTE_TOKENIZE,
    ROUTE_DETOKENIZE
};

/* One path and its method. */
struct route_entry {
    const char *path;
    enum route route;
    bool is_post;
};

static const struct route_entry routes[] = {
    {"/health", ROUTE_HEALTH, false},         {"/v1/health", ROUTE_HEALTH, false},
    {"/v1/models", ROUTE_MODELS, false},      {"/models", ROUTE_MODELS, false},
    {"/props", ROUTE_PROPS, false},           {"/slots", ROUTE_SLOTS, false},
    {"/metrics", ROUTE_METRICS, false},       {"/v1/chat/completions", ROUTE_CHAT, true},
    {"/chat/completions", ROUTE_CHAT, true},  {"/v1/completions", ROUTE_OAI_CMPL, true},
    {"/completion", ROUTE_NATIVE, true},      {"/completions", ROUTE_NATIVE, true},
    {"/v1/embeddings", ROUTE_OAI_EMBD, true}, {"/embeddings", ROUTE_NATIVE_EMBD, true},
    {"/embedding", ROUTE_NATIVE_EMBD, true},  {"/tokenize", ROUTE_TOKENIZE, true},
    {"/detokenize", ROUTE_DETOKENIZE, true},
};

void eng_reply_json(struct http_request *req, json_t *v)
{
    char *s = v != NULL ? json_dumps(v, JSON_FLAGS) : NULL;
    json_decref(v);
    if (s == NULL) {
        eng_reply_error(req, 500, "server_error", "out of memory");
        return;
    }
    http_respond(req, 200, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}

void eng_reply_error(struct http_request *req, int status, const char *type, const char *message)
{
    json_t *v = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status, "message", message, "type",
                          type != NULL ? type : ig_error_type(status));
    char *s = v != NULL ? json_dumps(v, JSON_FLAGS) : NULL;
    json_decref(v);
    if (s == NULL) {
        http_respond(req, 500, "application/json", "{}", 2);
        return;
    }
    http_respond(req, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}

const char *eng_model_name(const struct engine *e)
{
    if (e->opts->alias != NULL)
        return e->opts->alias;
    const char *slash = strrchr(e->opts->model_path, '/');
    return slash != NULL ? slash + 1 : e->opts->model_path;
}

/*
 * Tokenizes LEN bytes of TEXT into a malloc'd array (caller frees); *N gets the count.
 * NULL when out of memory or too long.
 */
static llama_token *tokenize(const struct engine *e, const char *text, size_t len, bool add_special,
                             int *n)
{
    if (len > ENG_MAX_PROMPT_BYTES)
        return NULL;
    int cap = (int)len + 8;
    llama_token *tokens = malloc((size_t)cap * sizeof(*tokens));
    if (tokens == NULL)
        return NULL;
    *n = llama_tokenize(e->vocab, text, (int32_t)len, tokens, cap, add_special, true);
    if (*n < 0) {
        free(tokens);
        return NULL;
    }
    return tokens;
}

/* Sets TASK's prompt from a completion "prompt" (string, [string] or token ids). */
static const char *parse_prompt(const struct engine *e, json_t *prompt, struct eng_task *task)
{
    if (json_is_array(prompt) && json_array_size(prompt) == 1 &&
        json_is_string(json_array_get(prompt, 0)))
        prompt = json_array_get(prompt, 0);
    if (json_is_string(prompt)) {
        task->prompt_text = strdup(json_string_value(prompt));
        task->prompt = tokenize(e, json_string_value(prompt), json_string_length(prompt), true,
                                &task->n_prompt);
        return task->prompt != NULL && task->prompt_text != NULL ? NULL : "'prompt' is too long";
    }
    size_t n = json_array_size(prompt);
    if (!json_is_array(prompt) || n == 0 || n > ENG_MAX_TOKENS_IN)
        return "'prompt' must be a string or an array of token ids";
    task->prompt = malloc(n * sizeof(*task->prompt));
    if (task->prompt == NULL)
        return "out of memory";
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_array_get(prompt, i);
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= e->n_vocab)
            return "'prompt' must be a string or an array of valid token ids";
        task->prompt[i] = (llama_token)json_integer_value(id);
    }
    task->n_prompt = (int)n;
    return NULL;
}

/* Sets TASK's embedding inputs from "input" (or "content"): a string or strings. */
static const char *parse_inputs(const struct engine *e, json_t *root, struct eng_task *task)
{
    json_t *input = json_object_get(root, "input");
    if (input == NULL)
        input = json_object_get(root, "content");
    size_t n = json_is_string(input) ? 1 : json_array_size(input);
    if (n == 0 || n > ENG_MAX_INPUTS)
        return "'input' must be a string or an array of at most 256 strings";
    task->inputs = calloc(n, sizeof(*task->inputs));
    task->input_lens = calloc(n, sizeof(*task->input_lens));
    if (task->inputs == NULL || task->input_lens == NULL)
        return "out of memory";
    task->n_inputs = (int)n;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(input) ? input : json_array_get(input, i);
        if (!json_is_string(s))
            return "'input' must be a string or an array of strings";
        task->inputs[i] =
            tokenize(e, json_string_value(s), json_string_length(s), true, &task->input_lens[i]);
        if (task->inputs[i] == NULL)
            return "'input' is too long";
        if (task->input_lens[i] == 0 || task->input_lens[i] > e->n_batch)
            return "an input is empty or longer than the batch size";
    }
    return NULL;
}

/* Client went away: the task stays alive until the inference thread lets go of it. */
static void on_client_gone(struct http_request *req, void *arg)
{
    struct eng_task *task = arg;
    (void)req;
    task->req = NULL;
    eng_cancel(task->engine, task);
}

/* Writes a fresh "chatcmpl-" id of 32 letters and digits into TASK. */
static void make_id(struct engine *e, struct eng_task *task)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    memcpy(task->id, "chatcmpl-", 9);
    for (int i = 0; i < 32; i++) {
        e->id_state ^= e->id_state << 13;
        e->id_state ^= e->id_state >> 7;
        e->id_state ^= e->id_state << 17;
        task->id[9 + i] = alphabet[e->id_state % (sizeof(alphabet) - 1)];
    }
    task->id[41] = '\0';
}

/* Parses a generation or embedding request into a task and submits it. */
static void handle_task(struct engine *e, struct http_request *req, enum route route, json_t *root)
{
    struct eng_task *task = calloc(1, sizeof(*task));
    const char *problem = "out of memory";
    int status = 500;
    bool is_embd = route == ROUTE_OAI_EMBD || route == ROUTE_NATIVE_EMBD;

    if (task == NULL)
        goto fail;
    task->engine = e;
    task->req = req;
    task->created = (long long)ig_unix_s();
    task->slot_id = -1;
    make_id(e, task);
    status = 501;
    problem = is_embd ? "This server does not support embeddings. Start it with `--embeddings`"
                      : "This server does not support completions. Start it without "
                        "`--embeddings`";
    if (is_embd != e->opts->has_embeddings)
        goto fail;
    status = 400;
    if (is_embd) {
        task->api = ENG_API_EMBD;
        task->is_stream = route == ROUTE_NATIVE_EMBD; /* the native shape, never streamed */
        problem = parse_inputs(e, root, task);
        if (problem != NULL)
            goto fail;
        json_t *format = json_object_get(root, "encoding_format");
        if (format != NULL && !json_is_null(format)) {
            const char *f = json_string_value(format);
            if (f == NULL || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0)) {
                problem = "'encoding_format' must be \"float\" or \"base64\"";
                goto fail;
            }
            task->is_base64 = strcmp(f, "base64") == 0;
        }
    } else {
        task->api = route == ROUTE_CHAT       ? ENG_API_CHAT
                    : route == ROUTE_OAI_CMPL ? ENG_API_OAI_CMPL
                                              : ENG_API_NATIVE;
        task->is_stream = json_is_true(json_object_get(root, "stream"));
        task->include_usage =
            json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
        problem = eng_sampling_parse(root, &task->sampling, e, route == ROUTE_CHAT);
        if (problem != NULL)
            goto fail;
        if (route == ROUTE_CHAT) {
            char *text = eng_chat_format(e, json_object_get(root, "messages"), &problem);
            if (text == NULL)
                goto fail;
            task->prompt = tokenize(e, text, strlen(text), true, &task->n_prompt);
            free(text);
            problem = "the prompt is too long";
        } else {
            json_t *prompt = json_object_get(root, "prompt");
            problem = prompt == NULL ? "'prompt' is required" : parse_prompt(e, prompt, task);
        }
        if (task->prompt == NULL || (problem != NULL && route != ROUTE_CHAT))
            goto fail;
        if (task->n_prompt == 0) {
            problem = "the prompt is empty";
            goto fail;
        }
        if (task->n_prompt >= e->n_ctx_slot) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "the request exceeds the available context size: %d prompt tokens, the "
                     "context of a slot holds %d",
                     task->n_prompt, e->n_ctx_slot);
            eng_reply_error(req, 400, "exceed_context_size_error", msg);
            eng_task_free(task);
            return;
        }
    }
    http_request_set_cancel_cb(req, on_client_gone, task);
    eng_submit(e, task);
    return;
fail:
    eng_reply_error(req, status, status == 501 ? "not_supported_error" : NULL, problem);
    eng_task_free(task);
}

/* GET /v1/models: llama-server's mixed Ollama + OpenAI list with one model. */
static void handle_models(struct engine *e, struct http_request *req)
{
    const char *m = eng_model_name(e);
    json_t *v = json_pack(
        "{s:[{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[s],s:[s]}],s:s,s:[{s:s,s:[],s:[],s:s,s:I,s:s,"
        "s:{s:i,s:i,s:i,s:i,s:i,s:I}}]}",
        "models", "name", m, "model", m, "modified_at", "", "size", "", "digest", "", "type",
        "model", "description", "", "tags", "", "capabilities", "completion", "object", "list",
        "data", "id", m, "aliases", "tags", "object", "model", "created", (json_int_t)ig_unix_s(),
        "owned_by", "llamacpp", "meta", "vocab_type", llama_vocab_type(e->vocab), "n_vocab",
        e->n_vocab, "n_ctx", e->n_ctx, "n_ctx_train", llama_model_n_ctx_train(e->model), "n_embd",
        e->n_embd, "n_params", (json_int_t)llama_model_n_params(e->model));
    eng_reply_json(req, v);
}

/* Returns the text of TOKEN as a JSON string, or "" when it has none. */
static json_t *token_text_json(const struct engine *e, llama_token token)
{
    const char *text = token != LLAMA_TOKEN_NULL ? llama_vocab_get_text(e->vocab, token) : NULL;
    return json_string(text != NULL ? text : "");
}

/* GET /props: generation defaults, slots, model and template. */
static void handle_props(struct engine *e, struct http_request *req)
{
    const char *tmpl = e->opts->chat_template != NULL ? e->opts->chat_template : e->model_template;
    json_t *v = json_pack(
        "{s:{s:{s:I,s:f,s:i,s:f,s:f,s:i,s:i,s:b},s:i},s:i,s:s,s:s,s:{s:b,s:b,s:b},s:b,s:b,s:b,"
        "s:s,s:o,s:o,s:s,s:b}",
        "default_generation_settings", "params", "seed", (json_int_t)LLAMA_DEFAULT_SEED,
        "temperature", 0.8, "top_k", 40, "top_p", 0.95, "min_p", 0.05, "max_tokens", -1,
        "n_predict", -1, "stream", 0, "n_ctx", e->n_ctx_slot, "total_slots", e->opts->n_parallel,
        "model_alias", eng_model_name(e), "model_path", e->opts->model_path, "modalities", "vision",
        0, "video", 0, "audio", 0, "endpoint_slots", 1, "endpoint_props", 1, "endpoint_metrics",
        e->opts->has_metrics, "chat_template", tmpl != NULL ? tmpl : "", "bos_token",
        token_text_json(e, llama_vocab_bos(e->vocab)), "eos_token",
        token_text_json(e, llama_vocab_eos(e->vocab)), "build_info", "b0-infergate", "is_sleeping",
        0);
    eng_reply_json(req, v);
}

/* GET /slots: one entry per slot with is_processing. */
static void handle_slots(struct engine *e, struct http_request *req)
{
    json_t *v = json_array();
    for (int i = 0; i < e->opts->n_parallel; i++) {
        pthread_mutex_lock(&e->mu);
        bool is_busy = e->slot_busy[i];
        int n_decoded = e->slot_n_decoded[i];
        pthread_mutex_unlock(&e->mu);
        json_array_append_new(v,
                              json_pack("{s:i,s:i,s:i,s:b,s:b,s:[{s:i}]}", "id", i, "id_task", -1,
                                        "n_ctx", e->n_ctx_slot, "speculative", 0, "is_processing",
                                        is_busy, "next_token", "n_decoded", n_decoded));
    }
    eng_reply_json(req, v);
}

/* Returns TEXT as a JSON string after replacing invalid UTF-8 (new reference). */
static json_t *valid_text_json(const char *text, size_t len)
{
    struct eng_text t = {0};
    json_t *s = NULL;
    if (eng_utf8_append_valid(&t, text, len) == 0)
        s = json_stringn(t.data != NULL ? t.data : "", t.len);
    eng_text_release(&t);
    return s != NULL ? s : json_string("");
}

/* POST /tokenize: {"content","add_special","with_pieces"} → {"tokens":[…]}. */
static void handle_tokenize(struct engine *e, struct http_request *req, json_t *root)
{
    json_t *content = json_object_get(root, "content");
    bool with_pieces = json_is_true(json_object_get(root, "with_pieces"));
    int n = 0;
    if (!json_is_string(content)) {
        eng_reply_error(req, 400, NULL, "'content' must be a string");
        return;
    }
    llama_token *tokens = tokenize(e, json_string_value(content), json_string_length(content),
                                   json_is_true(json_object_get(root, "add_special")), &n);
    if (tokens == NULL) {
        eng_reply_error(req, 400, NULL, "'content' is too long");
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        char piece[256];
        if (!with_pieces) {
            json_array_append_new(arr, json_integer(tokens[i]));
            continue;
        }
        int len = llama_token_to_piece(e->vocab, tokens[i], piece, sizeof(piece), 0, true);
        json_array_append_new(arr, json_pack("{s:i,s:o}", "id", tokens[i], "piece",
                                             valid_text_json(piece, len > 0 ? (size_t)len : 0)));
    }
    free(tokens);
    eng_reply_json(req, json_pack("{s:o}", "tokens", arr));
}

/* POST /detokenize: {"tokens":[…]} → {"content"}. */
static void handle_detokenize(struct engine *e, struct http_request *req, json_t *root)
{
    json_t *ids = json_object_get(root, "tokens");
    size_t n = json_array_size(ids);
    struct eng_text text = {0};
    if (!json_is_array(ids) || n > ENG_MAX_TOKENS_IN) {
        eng_reply_error(req, 400, NULL, "'tokens' must be an array of token ids");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_array_get(ids, i);
        char piece[256];
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= e->n_vocab) {
            eng_text_release(&text);
            eng_reply_error(req, 400, NULL, "'tokens' must be an array of valid token ids");
            return;
        }
        int len = llama_token_to_piece(e->vocab, (llama_token)json_integer_value(id), piece,
                                       sizeof(piece), 0, false);
        if (len > 0 && eng_text_append(&text, piece, (size_t)len) != 0)
            break;
    }
    eng_reply_json(req, json_pack("{s:o}", "content", valid_text_json(text.data, text.len)));
    eng_text_release(&text);
}

/* Returns whether the model has loaded (asking the inference thread's flag once). */
static bool is_ready(struct engine *e)
{
    if (!e->is_ready_seen) {
        pthread_mutex_lock(&e->mu);
        e->is_ready_seen = e->is_ready;
        pthread_mutex_unlock(&e->mu);
    }
    return e->is_ready_seen;
}

/*
 * Replies llama-server's 503 "Loading model" error with the load progress (0..1) added as
 * error.progress, and a Retry-After.
 */
static void reply_loading(struct engine *e, struct http_request *req)
{
    pthread_mutex_lock(&e->mu);
    double progress = e->load_progress;
    pthread_mutex_unlock(&e->mu);
    json_t *v =
        json_pack("{s:{s:i,s:s,s:s,s:f}}", "error", "code", 503, "message", "Loading model", "type",
                  "unavailable_error", "progress", floor(progress * 100.0 + 0.5) / 100.0);
    char *s = v != NULL ? json_dumps(v, JSON_FLAGS) : NULL;
    json_decref(v);
    if (s == NULL) {
        eng_reply_error(req, 503, "unavailable_error", "Loading model");
        return;
    }
    http_response_add_header(req, "Retry-After", "1");
    http_respond(req, 503, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}

/* Parses the JSON body and dispatches the POST routes. */
static void handle_post(struct engine *e, struct http_request *req, enum route route)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    char err[160];
    json_t *root =
        ig_json_parse(body != NULL ? body : "", len, ENG_JSON_MAX_DEPTH, err, sizeof(err));
    if (!json_is_object(root)) {
        eng_reply_error(req, 400, NULL, root == NULL ? err : "the body must be a JSON object");
        json_decref(root);
        return;
    }
    if (route == ROUTE_TOKENIZE)
        handle_tokenize(e, req, root);
    else if (route == ROUTE_DETOKENIZE)
        handle_detokenize(e, req, root);
    else
        handle_task(e, req, route, root);
    json_decref(root);
}

void eng_http_handle(struct http_request *req, void *arg)
{
    struct engine *e = arg;
    const char *path = http_request_path(req);
    bool is_post = strcmp(http_request_method(req), "POST") == 0;
    const struct route_entry *r = NULL;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, path) == 0 && routes[i].is_post == is_post)
            r = &routes[i];
    }
    if (r == NULL) {
        eng_reply_error(req, 404, "not_found_error", "File Not Found");
        return;
    }
    if (!is_ready(e)) {
        reply_loading(e, req);
        return;
    }
    switch (r->route) {
    case ROUTE_HEALTH:
        http_respond(req, 200, "application/json; charset=utf-8", "{\"status\":\"ok\"}", 15);
        break;
    case ROUTE_MODELS:
        handle_models(e, req);
        break;
    case ROUTE_PROPS:
        handle_props(e, req);
        break;
    case ROUTE_SLOTS:
        handle_slots(e, req);
        break;
    case ROUTE_METRICS:
        if (e->opts->has_metrics)
            eng_metrics_reply(e, req);
        else
            eng_reply_error(req, 501, "not_supported_error",
                            "This server does not support metrics endpoint. Start it with "
                            "`--metrics`");
        break;
    default:
        handle_post(e, req, r->route);
        break;
    }
}
