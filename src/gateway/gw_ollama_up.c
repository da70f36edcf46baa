/*
 * Ollama hosts as upstreams (gw_ollama_up.h).
 *
 * Requests: /v1/chat/completions becomes /api/chat, /v1/completions /api/generate and
 * /v1/embeddings /api/embed. The model sent is the model's useModelName, else its id. Sampling
 * fields go into Ollama's "options" (max_tokens becomes num_predict, a stop string a list),
 * response_format into "format". "stream" is always sent: Ollama streams unless told not to.
 * A text completion is sent "raw" (no chat template, as OpenAI's completions are), except with
 * a suffix, which Ollama fills through the model's template.
 *
 * Answers: Ollama streams NDJSON, one object per line, the last with "done": true and its
 * counts (prompt_eval_count, eval_count) and durations (nanoseconds). Each line becomes an
 * OpenAI chunk (chat.completion.chunk or text_completion); the done line becomes the chunk with
 * the finish_reason, carrying llama-server's "timings" (so the meter, which reads the
 * translated bytes, counts tokens even when the client asked for no usage chunk), then the
 * usage chunk when stream_options.include_usage asked for it, then "data: [DONE]". An error
 * line ({"error": "..."}) mid-stream becomes an OpenAI error event, and a stream that ends
 * without its done line one too. A whole answer becomes OpenAI's JSON with "usage"; an error
 * answer ({"error": "..."}) OpenAI's error shape with the upstream's status.
 */
#include "gw_ollama_up.h"

#include "cfg.h"
#include "gw_call.h"
#include "http_server.h"
#include "http_upstream.h"
#include "ig_base64.h"
#include "ig_errbody.h"
#include "ig_json.h"
#include "ig_log.h"
#include "ig_time.h"
#include "sup_manager.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 64
#define MAX_LINE_BYTES (4u << 20) /* an NDJSON line longer than this is skipped */
#define MAX_MODEL_NAME 255

enum up_kind {
    UP_CHAT,       /* /v1/chat/completions -> /api/chat */
    UP_COMPLETION, /* /v1/completions -> /api/generate */
    UP_EMBED,      /* /v1/embeddings -> /api/embed */
};

struct gw_ollama_up {
    struct gw_call *call;
    const struct upstream_callbacks *inner; /* the call's own callbacks */
    void *inner_arg;
    enum up_kind kind;
    char *body; /* the Ollama request (owned) */
    size_t body_len;
    bool is_stream;      /* the client asked for a stream */
    bool is_usage_asked; /* stream_options.include_usage */
    bool is_base64;      /* embeddings: encoding_format "base64" */
    /* Per transfer (reset for a retry): */
    bool is_sse;         /* the answer is translated to server-sent events */
    bool is_done;        /* the done line (or an error) was translated */
    bool has_role;       /* the first chat chunk (with "role") was sent */
    bool is_overflow;    /* skipping the rest of an overlong line */
    char *line;          /* the NDJSON line being received */
    size_t len, cap;
    int64_t created_s;
    char id[GW_REQUEST_ID_MAX + 16];
    char model[MAX_MODEL_NAME + 1]; /* the model sent; the answer's when it names one */
};

static const struct {
    const char *openai, *ollama;
} option_names[] = {
    {"temperature", "temperature"},
    {"top_p", "top_p"},
    {"top_k", "top_k"},
    {"min_p", "min_p"},
    {"seed", "seed"},
    {"presence_penalty", "presence_penalty"},
    {"frequency_penalty", "frequency_penalty"},
    {"repeat_penalty", "repeat_penalty"},
    {"max_tokens", "num_predict"},
    {"max_completion_tokens", "num_predict"},
    {"n_predict", "num_predict"},
};

void gw_ollama_up_free(struct gw_ollama_up *up)
{
    if (up == NULL)
        return;
    free(up->body);
    free(up->line);
    free(up);
}

/* Returns the options object for the sampling fields of OpenAI request SRC (caller owns), or
 * NULL with a message in *BAD. */
static json_t *options_json(json_t *src, const char **bad)
{
    json_t *options = json_object(), *v;

    for (size_t i = 0; options != NULL && i < sizeof(option_names) / sizeof(option_names[0]); i++) {
        v = json_object_get(src, option_names[i].openai);
        if (v != NULL && !json_is_null(v))
            json_object_set(options, option_names[i].ollama, v);
    }
    v = json_object_get(src, "stop");
    if (options == NULL || v == NULL || json_is_null(v))
        return options;
    if (json_is_string(v)) {
        json_object_set_new(options, "stop", json_pack("[O]", v));
    } else if (json_is_array(v)) {
        json_object_set(options, "stop", v);
    } else {
        *bad = "stop must be a string or an array of strings";
        json_decref(options);
        options = NULL;
    }
    return options;
}

/* Sets Ollama's "format" into DOC for OpenAI's response_format RF; returns an error message,
 * or NULL. */
static const char *set_format(json_t *doc, json_t *rf)
{
    const char *type = json_string_value(json_object_get(rf, "type"));
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");

    if (rf == NULL || json_is_null(rf) || (type != NULL && strcmp(type, "text") == 0))
        return NULL;
    if (type != NULL && strcmp(type, "json_object") == 0) {
        json_object_set_new(doc, "format", json_string("json"));
        return NULL;
    }
    if (type != NULL && strcmp(type, "json_schema") == 0 && json_is_object(schema)) {
        json_object_set(doc, "format", schema);
        return NULL;
    }
    return "response_format must be text, json_object, or json_schema with a schema";
}

/* Appends OpenAI content part PART to TEXT and IMAGES (Ollama's base64 list); returns an error
 * message, or NULL. */
static const char *add_part(json_t *part, struct evbuffer *text, json_t *images)
{
    const char *type = json_string_value(json_object_get(part, "type"));
    const char *url = json_string_value(json_object_get(json_object_get(part, "image_url"), "url"));
    const char *comma = url != NULL ? strchr(url, ',') : NULL;

    if (type != NULL && strcmp(type, "text") == 0 &&
        json_is_string(json_object_get(part, "text"))) {
        evbuffer_add(text, json_string_value(json_object_get(part, "text")),
                     json_string_length(json_object_get(part, "text")));
        return NULL;
    }
    if (type != NULL && strcmp(type, "image_url") == 0 && comma != NULL &&
        strncmp(url, "data:", 5) == 0 && strstr(url, ";base64,") == comma - 7) {
        json_array_append_new(images, json_string(comma + 1));
        return NULL;
    }
    return "an Ollama upstream takes text parts and images as data: URLs (base64) only";
}

/* Returns Ollama's message for OpenAI message M (caller owns), or NULL with *BAD set. */
static json_t *message_json(json_t *m, const char **bad)
{
    json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content"), *part;
    json_t *msg = NULL, *images = json_array();
    struct evbuffer *text = evbuffer_new();
    size_t i;

    if (!json_is_string(role) || json_object_get(m, "tool_calls") != NULL ||
        strcmp(json_string_value(role), "tool") == 0) {
        *bad = json_is_string(role) ? "tool calls are not translated for Ollama upstreams yet"
                                    : "each message needs a string role";
        goto out;
    }
    if (text == NULL || images == NULL)
        goto out;
    if (json_is_string(content))
        evbuffer_add(text, json_string_value(content), json_string_length(content));
    else if (json_is_array(content)) {
        json_array_foreach(content, i, part) {
            if (*bad == NULL)
                *bad = add_part(part, text, images);
        }
    } else if (content != NULL && !json_is_null(content))
        *bad = "message content must be a string or an array of parts";
    if (*bad != NULL)
        goto out;
    msg = json_pack("{s:O, s:s%}", "role", role, "content", evbuffer_pullup(text, -1),
                    evbuffer_get_length(text));
    if (msg != NULL && json_array_size(images) > 0)
        json_object_set(msg, "images", images);
out:
    if (text != NULL)
        evbuffer_free(text);
    json_decref(images);
    return msg;
}

/* Sets the chat fields of OpenAI request SRC into Ollama request DOC; returns an error message,
 * or NULL. */
static const char *chat_fields(json_t *src, json_t *doc)
{
    json_t *given = json_object_get(src, "messages"), *messages, *m;
    const char *bad = NULL;
    size_t i;

    if (!json_is_array(given))
        return "messages must be an array";
    if (json_array_size(json_object_get(src, "tools")) > 0)
        return "tools are not translated for Ollama upstreams yet";
    messages = json_array();
    json_array_foreach(given, i, m) {
        json_t *msg = bad == NULL ? message_json(m, &bad) : NULL;
        if (msg == NULL && bad == NULL)
            bad = "out of memory";
        json_array_append_new(messages, msg);
    }
    json_object_set_new(doc, "messages", messages);
    return bad != NULL ? bad : set_format(doc, json_object_get(src, "response_format"));
}

/* Sets the text completion fields of OpenAI request SRC into DOC; returns an error message, or
 * NULL. */
static const char *completion_fields(json_t *src, json_t *doc)
{
    json_t *prompt = json_object_get(src, "prompt"), *suffix = json_object_get(src, "suffix");

    if (json_is_array(prompt) && json_array_size(prompt) == 1)
        prompt = json_array_get(prompt, 0);
    if (!json_is_string(prompt))
        return "prompt must be a string (one prompt per request for an Ollama upstream)";
    json_object_set(doc, "prompt", prompt);
    if (json_is_string(suffix) && json_string_length(suffix) > 0)
        json_object_set(doc, "suffix", suffix);
    else
        json_object_set_new(doc, "raw", json_true());
    return set_format(doc, json_object_get(src, "response_format"));
}

/* Sets the embedding fields of OpenAI request SRC into DOC for UP; returns an error message, or
 * NULL. */
static const char *embed_fields(struct gw_ollama_up *up, json_t *src, json_t *doc)
{
    json_t *input = json_object_get(src, "input"), *item;
    json_t *dims = json_object_get(src, "dimensions");
    const char *format = json_string_value(json_object_get(src, "encoding_format"));
    bool is_strings = json_is_string(input) || json_is_array(input);
    size_t i;

    json_array_foreach(input, i, item) {
        if (!json_is_string(item))
            is_strings = false;
    }
    if (!is_strings)
        return "input must be a string or an array of strings for an Ollama upstream";
    if (format != NULL && strcmp(format, "float") != 0 && strcmp(format, "base64") != 0)
        return "encoding_format must be float or base64";
    up->is_base64 = format != NULL && strcmp(format, "base64") == 0;
    json_object_set(doc, "input", input);
    if (json_is_integer(dims))
        json_object_set(doc, "dimensions", dims);
    return NULL;
}

/* Translates the call's OpenAI body into UP's Ollama body; returns an error message, or NULL. */
static const char *translate_request(struct gw_ollama_up *up, const struct cfg_model *mc)
{
    char err[128];
    json_t *src = ig_json_parse(up->call->body, up->call->body_len, MAX_JSON_DEPTH, err,
                                sizeof(err));
    json_t *doc = json_object(), *options = NULL;
    const char *name = mc->use_model_name != NULL ? mc->use_model_name : mc->id, *bad = NULL;

    if (!json_is_object(src) || doc == NULL) {
        bad = "request body must be a JSON object";
        goto out;
    }
    snprintf(up->model, sizeof(up->model), "%s", name);
    up->is_stream = json_is_true(json_object_get(src, "stream")) && up->kind != UP_EMBED;
    up->is_usage_asked =
        json_is_true(json_object_get(json_object_get(src, "stream_options"), "include_usage"));
    json_object_set_new(doc, "model", json_string(name));
    if (up->kind == UP_EMBED) {
        bad = embed_fields(up, src, doc);
    } else {
        bad = up->kind == UP_CHAT ? chat_fields(src, doc) : completion_fields(src, doc);
        options = bad == NULL ? options_json(src, &bad) : NULL;
        if (json_object_size(options) > 0)
            json_object_set(doc, "options", options);
    }
    json_object_set_new(doc, "stream", json_boolean(up->is_stream));
    if (json_is_string(json_object_get(src, "keep_alive")))
        json_object_set(doc, "keep_alive", json_object_get(src, "keep_alive"));
    if (bad == NULL) {
        up->body = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17));
        bad = up->body == NULL ? "out of memory" : NULL;
        up->body_len = up->body != NULL ? strlen(up->body) : 0;
    }
out:
    json_decref(options);
    json_decref(doc);
    json_decref(src);
    return bad;
}

/* Returns OpenAI's finish_reason for Ollama's done_reason in DOC. */
static const char *finish_reason(json_t *doc)
{
    const char *reason = json_string_value(json_object_get(doc, "done_reason"));

    return reason != NULL && strcmp(reason, "length") == 0 ? "length" : "stop";
}

/* Returns OpenAI's usage object for Ollama's counts in DOC (caller owns). */
static json_t *usage_json(json_t *doc)
{
    json_int_t p = json_integer_value(json_object_get(doc, "prompt_eval_count"));
    json_int_t c = json_integer_value(json_object_get(doc, "eval_count"));

    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", p, "completion_tokens", c,
                     "total_tokens", p + c);
}

/* Returns llama-server's "timings" for Ollama's counts and durations in DOC (caller owns). */
static json_t *timings_json(json_t *doc)
{
    return json_pack("{s:I, s:f, s:I, s:f}", "prompt_n",
                     json_integer_value(json_object_get(doc, "prompt_eval_count")), "prompt_ms",
                     (double)json_integer_value(json_object_get(doc, "prompt_eval_duration")) / 1e6,
                     "predicted_n", json_integer_value(json_object_get(doc, "eval_count")),
                     "predicted_ms",
                     (double)json_integer_value(json_object_get(doc, "eval_duration")) / 1e6);
}

/* Notes the model named by Ollama answer DOC as UP's. */
static void note_model(struct gw_ollama_up *up, json_t *doc)
{
    const char *model = json_string_value(json_object_get(doc, "model"));

    if (model != NULL && model[0] != '\0')
        snprintf(up->model, sizeof(up->model), "%s", model);
}

/* Returns an OpenAI answer or chunk head {"id","object","created","model"} (caller owns). */
static json_t *head_json(const struct gw_ollama_up *up, const char *object)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", up->id, "object", object, "created",
                     (json_int_t)up->created_s, "model", up->model);
}

/* Returns the choice of a chunk of UP with TEXT (and THINKING, or NULL) and REASON (NULL:
 * not the last) (caller owns). */
static json_t *chunk_choice(struct gw_ollama_up *up, const char *text, const char *thinking,
                            const char *reason)
{
    json_t *choice = json_pack("{s:i, s:s?}", "index", 0, "finish_reason", reason), *delta;

    if (choice == NULL)
        return NULL;
    if (up->kind == UP_COMPLETION) {
        json_object_set_new(choice, "text", json_string(text));
        json_object_set_new(choice, "logprobs", json_null());
        return choice;
    }
    delta = json_object();
    if (!up->has_role && delta != NULL)
        json_object_set_new(delta, "role", json_string("assistant"));
    up->has_role = true;
    if (text[0] != '\0' && delta != NULL)
        json_object_set_new(delta, "content", json_string(text));
    if (thinking != NULL && thinking[0] != '\0' && delta != NULL)
        json_object_set_new(delta, "reasoning_content", json_string(thinking));
    json_object_set_new(choice, "delta", delta);
    return choice;
}

/* Appends OBJ (taken) to OUT as one server-sent event. */
static void write_event(struct evbuffer *out, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

    if (text != NULL)
        evbuffer_add_printf(out, "data: %s\n\n", text);
    free(text);
    json_decref(obj);
}

/* Ends UP's stream with an OpenAI error event for MESSAGE, noted for the request log. */
static void write_stream_error(struct gw_ollama_up *up, const char *message, struct evbuffer *out)
{
    char *body = ig_error_body(502, message, "upstream_error");

    up->is_done = true;
    gw_call_note_error(up->call, message);
    up->call->upstream_error = "stream";
    if (body != NULL)
        evbuffer_add_printf(out, "data: %s\n\n", body);
    free(body);
}

/* Translates one NDJSON line (NUL-terminated) of UP's stream into OUT. */
static void translate_line(struct gw_ollama_up *up, const char *line, size_t len,
                           struct evbuffer *out)
{
    const char *object = up->kind == UP_CHAT ? "chat.completion.chunk" : "text_completion";
    char err[128];
    json_t *doc = ig_json_parse(line, len, MAX_JSON_DEPTH, err, sizeof(err)), *obj, *msg;
    const char *text, *thinking, *error;

    if (!json_is_object(doc))
        goto out; /* a blank line, or not JSON: nothing for the client */
    error = json_string_value(json_object_get(doc, "error"));
    if (json_object_get(doc, "error") != NULL) {
        write_stream_error(up, error != NULL ? error : "the Ollama host failed", out);
        goto out;
    }
    note_model(up, doc);
    msg = json_object_get(doc, "message");
    text = json_string_value(json_object_get(up->kind == UP_CHAT ? msg : doc,
                                             up->kind == UP_CHAT ? "content" : "response"));
    thinking = json_string_value(json_object_get(up->kind == UP_CHAT ? msg : doc, "thinking"));
    if ((text != NULL && text[0] != '\0') ||
        (up->kind == UP_CHAT && thinking != NULL && thinking[0] != '\0')) {
        obj = head_json(up, object);
        if (obj != NULL)
            json_object_set_new(
                obj, "choices",
                json_pack("[o]", chunk_choice(up, text != NULL ? text : "", thinking, NULL)));
        write_event(out, obj);
    }
    if (!json_is_true(json_object_get(doc, "done")))
        goto out;
    up->is_done = true;
    obj = head_json(up, object);
    if (obj != NULL) {
        json_object_set_new(obj, "choices",
                            json_pack("[o]", chunk_choice(up, "", NULL, finish_reason(doc))));
        json_object_set_new(obj, "timings", timings_json(doc));
    }
    write_event(out, obj);
    if (up->is_usage_asked) {
        obj = head_json(up, object);
        if (obj != NULL)
            json_object_set_new(obj, "choices", json_array());
        if (obj != NULL)
            json_object_set_new(obj, "usage", usage_json(doc));
        write_event(out, obj);
    }
    evbuffer_add_printf(out, "data: [DONE]\n\n");
out:
    json_decref(doc);
}

/* Appends the translation of NDJSON stream bytes DATA (NULL: the stream ended) to OUT. */
static void translate_stream(struct gw_ollama_up *up, const char *data, size_t len,
                             struct evbuffer *out)
{
    for (size_t i = 0; data != NULL && i < len; i++) {
        if (data[i] == '\n') {
            if (!up->is_overflow && up->line != NULL && !up->is_done) {
                up->line[up->len] = '\0';
                translate_line(up, up->line, up->len, out);
            }
            up->len = 0;
            up->is_overflow = false;
            continue;
        }
        if (up->is_overflow)
            continue;
        if (up->len + 2 > up->cap) {
            size_t cap = up->cap == 0 ? 4096 : up->cap * 2;
            char *grown = cap <= MAX_LINE_BYTES ? realloc(up->line, cap) : NULL;
            if (grown == NULL) {
                up->is_overflow = true;
                continue;
            }
            up->line = grown;
            up->cap = cap;
        }
        up->line[up->len++] = data[i];
    }
    if (data != NULL)
        return;
    if (up->len > 0 && !up->is_overflow && !up->is_done) {
        up->line[up->len] = '\0';
        translate_line(up, up->line, up->len, out);
    }
    if (!up->is_done)
        write_stream_error(up, "the Ollama host ended the stream before it was done", out);
}

/* Returns VEC (an array of numbers) as base64 of little-endian float32s (caller owns). */
static json_t *base64_vector(json_t *vec)
{
    size_t n = json_array_size(vec);
    unsigned char *bytes = malloc(n * 4 + 1);
    char *text = malloc(ig_base64_len(n * 4) + 1);
    json_t *out = NULL;

    if (bytes != NULL && text != NULL) {
        for (size_t i = 0; i < n; i++) {
            float f = (float)json_number_value(json_array_get(vec, i));
            uint32_t bits;
            memcpy(&bits, &f, sizeof(bits));
            for (int b = 0; b < 4; b++)
                bytes[i * 4 + b] = (unsigned char)(bits >> (8 * b));
        }
        ig_base64_encode(bytes, n * 4, text);
        out = json_string(text);
    }
    free(bytes);
    free(text);
    return out;
}

/* Returns OpenAI's answer for Ollama's whole answer DOC to UP (caller owns), or NULL. */
static json_t *translate_answer(struct gw_ollama_up *up, json_t *doc)
{
    json_t *obj, *data, *vec, *msg = json_object_get(doc, "message"), *choice;
    const char *text, *thinking;
    size_t i;

    note_model(up, doc);
    if (up->kind == UP_EMBED) {
        data = json_array();
        json_array_foreach(json_object_get(doc, "embeddings"), i, vec)
            json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding",
                                                  "index", (json_int_t)i, "embedding",
                                                  up->is_base64 ? base64_vector(vec)
                                                                : json_incref(vec)));
        return json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                         up->model, "usage", "prompt_tokens",
                         json_integer_value(json_object_get(doc, "prompt_eval_count")),
                         "total_tokens",
                         json_integer_value(json_object_get(doc, "prompt_eval_count")));
    }
    obj = head_json(up, up->kind == UP_CHAT ? "chat.completion" : "text_completion");
    text = json_string_value(json_object_get(up->kind == UP_CHAT ? msg : doc,
                                             up->kind == UP_CHAT ? "content" : "response"));
    thinking = json_string_value(json_object_get(msg, "thinking"));
    if (up->kind == UP_CHAT) {
        choice = json_pack("{s:i, s:{s:s, s:s}, s:s}", "index", 0, "message", "role", "assistant",
                           "content", text != NULL ? text : "", "finish_reason",
                           finish_reason(doc));
        if (choice != NULL && thinking != NULL && thinking[0] != '\0')
            json_object_set_new(json_object_get(choice, "message"), "reasoning_content",
                                json_string(thinking));
    } else {
        choice = json_pack("{s:i, s:s, s:n, s:s}", "index", 0, "text", text != NULL ? text : "",
                           "logprobs", "finish_reason", finish_reason(doc));
    }
    if (obj != NULL) {
        json_object_set_new(obj, "choices", json_pack("[o]", choice));
        json_object_set_new(obj, "usage", usage_json(doc));
    }
    return obj;
}

/* Replaces UP's call's whole Ollama answer by OpenAI's: the answer, or the error shape with the
 * upstream's status (502 for a success that is not JSON). */
static void translate_body(struct gw_ollama_up *up)
{
    struct gw_call *call = up->call;
    struct evbuffer *body = call->response;
    size_t len = evbuffer_get_length(body);
    char err[128];
    json_t *doc = ig_json_parse((const char *)evbuffer_pullup(body, -1), len, MAX_JSON_DEPTH,
                                err, sizeof(err));
    json_t *answer = NULL;
    const char *message = json_string_value(json_object_get(doc, "error"));
    char *text = NULL;

    if (call->status < 400 && json_is_object(doc) && json_object_get(doc, "error") == NULL)
        answer = translate_answer(up, doc);
    if (answer != NULL) {
        text = json_dumps(answer, JSON_COMPACT | JSON_REAL_PRECISION(9));
    } else {
        if (call->status < 400)
            call->status = 502;
        text = ig_error_body(call->status,
                             message != NULL ? message
                             : json_is_object(doc)
                                 ? "the Ollama host failed"
                                 : "the Ollama host answered with a body that is not JSON",
                             "upstream_error");
    }
    if (text != NULL) {
        evbuffer_drain(body, len);
        evbuffer_add(body, text, strlen(text));
    }
    free(text);
    json_decref(answer);
    json_decref(doc);
}

/* Upstream response head: a stream's NDJSON is answered as server-sent events. */
static void on_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct gw_ollama_up *up = arg;
    (void)ct;

    up->is_sse = up->is_stream && status < 400;
    up->inner->on_headers(ureq, status, up->is_sse ? "text/event-stream" : "application/json",
                          up->inner_arg);
}

/* Hands the translated bytes in OUT (freed) to the call; returns its answer. UP may be gone
 * after this. */
static int deliver(struct gw_ollama_up *up, struct upstream_req *ureq, struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    int rc = n > 0 ? up->inner->on_data(ureq, (const char *)evbuffer_pullup(out, -1), n,
                                        up->inner_arg)
                   : 0;

    evbuffer_free(out);
    return rc;
}

/* Upstream body bytes: a stream's are translated as they come; a whole answer is collected by
 * the call and translated at its end. */
static int on_data(struct upstream_req *ureq, const char *data, size_t len, void *arg)
{
    struct gw_ollama_up *up = arg;
    struct evbuffer *out;

    if (!up->is_sse)
        return up->inner->on_data(ureq, data, len, up->inner_arg);
    out = evbuffer_new();
    if (out == NULL)
        return 0;
    translate_stream(up, data, len, out);
    return deliver(up, ureq, out);
}

/* Upstream transfer finished: ends a stream's translation, or translates the whole answer,
 * then lets the call finish. */
static void on_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct gw_ollama_up *up = arg;
    const struct upstream_callbacks *inner = up->inner;
    void *inner_arg = up->inner_arg;
    struct evbuffer *out;

    if (rc == 0 && up->is_sse) {
        out = evbuffer_new();
        if (out != NULL) {
            translate_stream(up, NULL, 0, out);
            (void)deliver(up, ureq, out); /* a stream's on_data never ends the call */
        }
    } else if (rc == 0 && up->call->response != NULL) {
        translate_body(up);
    }
    inner->on_done(ureq, rc, message, inner_arg);
}

/* Returns the kind of a call to PATH, or -1 for a route an Ollama host has no equivalent of. */
static int kind_of(const char *path)
{
    if (strcmp(path, "/v1/chat/completions") == 0 || strcmp(path, "/chat/completions") == 0)
        return UP_CHAT;
    if (strcmp(path, "/v1/completions") == 0 || strcmp(path, "/completions") == 0)
        return UP_COMPLETION;
    if (strcmp(path, "/v1/embeddings") == 0 || strcmp(path, "/embeddings") == 0)
        return UP_EMBED;
    return -1;
}

int gw_ollama_up_wrap(struct gw_call *call, struct upstream_spec *spec,
                      const struct upstream_callbacks **cbs, void **arg)
{
    static const struct upstream_callbacks wrapped = {
        .on_headers = on_headers, .on_data = on_data, .on_done = on_done};
    static const char *const paths[] = {"/api/chat", "/api/generate", "/api/embed"};
    const struct cfg_model *mc = gw_call_cfg(call);
    const char *path = call->api_path != NULL ? call->api_path : http_request_path(call->req);
    struct gw_ollama_up *up = call->ollama_up;
    const char *bad = NULL;
    int kind = kind_of(path), rc = -1;

    if (mc->api != CFG_API_OLLAMA || call->upstream_path != NULL)
        return 0;
    if (up == NULL && kind < 0) {
        gw_call_reply_error(call, 400,
                            "this model's upstream is an Ollama host: only /v1/chat/completions, "
                            "/v1/completions and /v1/embeddings are translated for it",
                            "model_not_supported", 0);
        goto out;
    }
    if (up == NULL) {
        up = calloc(1, sizeof(*up));
        if (up == NULL) {
            gw_call_reply_error(call, 500, "out of memory", "internal_error", 0);
            goto out;
        }
        call->ollama_up = up;
        up->call = call;
        up->kind = (enum up_kind)kind;
        up->created_s = ig_unix_ms() / 1000;
        snprintf(up->id, sizeof(up->id), "%s-%s", kind == UP_CHAT ? "chatcmpl" : "cmpl",
                 call->request_id);
        bad = translate_request(up, mc);
        if (bad != NULL) {
            gw_call_reply_error(call, 400, bad, "invalid_request_error", 0);
            goto out;
        }
    }
    up->is_sse = up->is_done = up->has_role = up->is_overflow = false;
    up->len = 0;
    up->inner = *cbs;
    up->inner_arg = *arg;
    if (gw_upstream_url(call->url, sizeof(call->url), mc->proxy, paths[up->kind], NULL) < 0) {
        gw_call_reply_error(call, 414, "request URL too long for the upstream",
                            "invalid_request_error", 0);
        goto out;
    }
    call_log(call, "translated for Ollama: sending to %s", call->url);
    spec->method = "POST";
    spec->url = call->url;
    spec->body = up->body;
    spec->body_len = up->body_len;
    *cbs = &wrapped;
    *arg = up;
    rc = 0;
out:
    return rc;
}
