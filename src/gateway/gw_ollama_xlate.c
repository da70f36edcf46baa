/*
 * OpenAI answers translated back to Ollama's shapes, for calls from gw_ollama.c.
 *
 * A stream of server-sent events becomes NDJSON: one object per content chunk
 * {"model","created_at","message":{"role","content"},"done":false} (or "response" for
 * /api/generate), then a final one with "done":true, "done_reason" and the counts and
 * durations (nanoseconds) Ollama reports. The final object is written at "data: [DONE]", or
 * when the upstream ends without one. Counts come from the usage chunk the translated request
 * asks for (stream_options.include_usage); durations from llama-server's "timings" when sent.
 * An upstream error event, or a failure mid-stream, becomes Ollama's {"error": message} line,
 * which its clients raise.
 */
#include "gw_ollama.h"
#include "ig_json.h"
#include "ig_text.h"
#include "ig_time.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE_BYTES (4u << 20) /* an SSE line longer than this is skipped */
#define MAX_JSON_DEPTH 64
#define MAX_MODEL_NAME 255

struct gw_ollama_state {
    enum gw_ollama_kind kind;
    bool is_stream;
    bool is_done;          /* the final (or error) line is written */
    bool is_overflow;      /* skipping the rest of an overlong line */
    uint64_t started_us;
    char *line;            /* the SSE line being received */
    size_t len, cap;
    char done_reason[32];
    json_int_t prompt_tokens, completion_tokens;
    double prompt_ms, predicted_ms; /* llama-server's timings; 0 when not sent */
    char model[MAX_MODEL_NAME + 1];
};

struct gw_ollama_state *gw_ollama_state_new(enum gw_ollama_kind kind, const char *model,
                                            bool is_stream)
{
    struct gw_ollama_state *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->kind = kind;
    st->is_stream = is_stream;
    st->started_us = ig_now_us();
    ig_utf8_copy(st->model, sizeof(st->model), model); /* cut between characters: JSON-safe */
    snprintf(st->done_reason, sizeof(st->done_reason), "stop");
    return st;
}

/* Frees a state; NULL is a no-op. */
static void state_free(void *arg)
{
    struct gw_ollama_state *st = arg;

    if (st == NULL)
        return;
    free(st->line);
    free(st);
}

/* Returns a new object {"model","created_at"} of ST (caller owns). */
static json_t *head_json(const struct gw_ollama_state *st)
{
    char now[32];

    ig_format_utc_ms(ig_unix_ms(), now, sizeof(now));
    return json_pack("{s:s, s:s}", "model", st->model, "created_at", now);
}

/* Sets the generated TEXT (and THINKING, or NULL) into OBJ as ST's route shows them. */
static void set_text(const struct gw_ollama_state *st, json_t *obj, const char *text,
                     const char *thinking)
{
    if (st->kind == GW_OLLAMA_CHAT) {
        json_t *msg = json_pack("{s:s, s:s}", "role", "assistant", "content", text);
        if (msg != NULL && thinking != NULL && thinking[0] != '\0')
            json_object_set_new(msg, "thinking", json_string(thinking));
        json_object_set_new(obj, "message", msg);
    } else {
        json_object_set_new(obj, "response", json_string(text));
        if (thinking != NULL && thinking[0] != '\0')
            json_object_set_new(obj, "thinking", json_string(thinking));
    }
}

/* Notes the finish reason, usage and timings of OpenAI answer (or chunk) DOC in ST. */
static void note_end_fields(struct gw_ollama_state *st, json_t *doc)
{
    json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
    const char *reason = json_string_value(json_object_get(choice, "finish_reason"));
    json_t *usage = json_object_get(doc, "usage"), *timings = json_object_get(doc, "timings");

    if (reason != NULL)
        snprintf(st->done_reason, sizeof(st->done_reason), "%s",
                 strcmp(reason, "length") == 0 ? "length" : "stop");
    if (json_is_object(usage)) {
        st->prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        st->completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    if (json_is_object(timings)) {
        st->prompt_ms = json_number_value(json_object_get(timings, "prompt_ms"));
        st->predicted_ms = json_number_value(json_object_get(timings, "predicted_ms"));
    }
}

/* Sets "done":true and the counts and durations Ollama ends an answer with into OBJ. */
static void set_done_fields(const struct gw_ollama_state *st, json_t *obj)
{
    json_object_set_new(obj, "done", json_true());
    json_object_set_new(obj, "done_reason", json_string(st->done_reason));
    json_object_set_new(obj, "total_duration",
                        json_integer((json_int_t)(ig_now_us() - st->started_us) * 1000));
    json_object_set_new(obj, "load_duration", json_integer(0));
    json_object_set_new(obj, "prompt_eval_count", json_integer(st->prompt_tokens));
    json_object_set_new(obj, "prompt_eval_duration",
                        json_integer((json_int_t)(st->prompt_ms * 1e6)));
    json_object_set_new(obj, "eval_count", json_integer(st->completion_tokens));
    json_object_set_new(obj, "eval_duration", json_integer((json_int_t)(st->predicted_ms * 1e6)));
}

/* Appends OBJ (reference taken) as one NDJSON line to OUT. */
static void write_line(struct evbuffer *out, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

    if (text != NULL)
        evbuffer_add_printf(out, "%s\n", text);
    free(text);
    json_decref(obj);
}

/* Appends ST's final line to OUT, once. */
static void write_final(struct gw_ollama_state *st, struct evbuffer *out)
{
    json_t *obj;

    if (st->is_done)
        return;
    st->is_done = true;
    obj = head_json(st);
    if (obj == NULL)
        return;
    set_text(st, obj, "", NULL);
    set_done_fields(st, obj);
    write_line(out, obj);
}

/* Appends Ollama's error line for MESSAGE to OUT and ends ST's stream. */
static void write_error(void *arg, const char *message, struct evbuffer *out)
{
    struct gw_ollama_state *st = arg;

    if (st->is_done) /* the final line is out: the answer is complete, say nothing more */
        return;
    st->is_done = true;
    write_line(out, json_pack("{s:s}", "error", message));
}

/* Returns the message of an OpenAI error body DOC, or NULL. */
static const char *error_message(json_t *doc)
{
    json_t *error = json_object_get(doc, "error");

    if (json_is_string(error))
        return json_string_value(error);
    return json_string_value(json_object_get(error, "message"));
}

/* Translates one SSE data PAYLOAD (NUL-terminated) of ST's stream into OUT. */
static void translate_event(struct gw_ollama_state *st, const char *payload, size_t len,
                            struct evbuffer *out)
{
    char err[128];
    json_t *doc, *choice, *delta, *obj;
    const char *text, *thinking, *message;

    if (strcmp(payload, "[DONE]") == 0) {
        write_final(st, out);
        return;
    }
    doc = ig_json_parse(payload, len, MAX_JSON_DEPTH, err, sizeof(err));
    if (!json_is_object(doc)) {
        json_decref(doc);
        return; /* not JSON (a comment or keep-alive): nothing for the client */
    }
    message = json_object_get(doc, "error") != NULL ? error_message(doc) : NULL;
    if (json_object_get(doc, "error") != NULL) {
        write_error(st, message != NULL ? message : "the model failed", out);
        json_decref(doc);
        return;
    }
    note_end_fields(st, doc);
    choice = json_array_get(json_object_get(doc, "choices"), 0);
    delta = json_object_get(choice, "delta");
    text = json_string_value(json_object_get(delta != NULL ? delta : choice,
                                             delta != NULL ? "content" : "text"));
    thinking = json_string_value(json_object_get(delta, "reasoning_content"));
    if ((text != NULL && text[0] != '\0') || (thinking != NULL && thinking[0] != '\0')) {
        obj = head_json(st);
        if (obj != NULL) {
            set_text(st, obj, text != NULL ? text : "", thinking);
            json_object_set_new(obj, "done", json_false());
            write_line(out, obj);
        }
    }
    json_decref(doc);
}

/* Handles one complete SSE line of ST (without its newline). */
static void handle_line(struct gw_ollama_state *st, char *line, size_t len, struct evbuffer *out)
{
    size_t skip = 5;

    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len < 5 || memcmp(line, "data:", 5) != 0 || st->is_done)
        return;
    while (skip < len && line[skip] == ' ')
        skip++;
    translate_event(st, line + skip, len - skip, out);
}

/* Appends the translation of stream bytes DATA (NULL: the stream ended) to OUT. */
static void translate_stream(void *arg, const char *data, size_t len, struct evbuffer *out)
{
    struct gw_ollama_state *st = arg;

    for (size_t i = 0; data != NULL && i < len; i++) {
        if (data[i] == '\n') {
            if (!st->is_overflow && st->line != NULL) {
                st->line[st->len] = '\0';
                handle_line(st, st->line, st->len, out);
            }
            st->len = 0;
            st->is_overflow = false;
            continue;
        }
        if (st->is_overflow)
            continue;
        if (st->len + 2 > st->cap) {
            size_t cap = st->cap == 0 ? 4096 : st->cap * 2;
            char *grown = cap <= MAX_LINE_BYTES ? realloc(st->line, cap) : NULL;
            if (grown == NULL) {
                st->is_overflow = true;
                continue;
            }
            st->line = grown;
            st->cap = cap;
        }
        st->line[st->len++] = data[i];
    }
    if (data == NULL) {
        if (st->len > 0 && !st->is_overflow) {
            st->line[st->len] = '\0';
            handle_line(st, st->line, st->len, out);
        }
        write_final(st, out);
    }
}

/* Returns Ollama's answer of ST for the OpenAI answer DOC (caller owns), or NULL. */
static json_t *translate_answer(struct gw_ollama_state *st, json_t *doc)
{
    json_t *obj, *choice, *msg, *item, *embeddings;
    const char *text;
    size_t i;

    if (st->kind == GW_OLLAMA_EMBED) {
        embeddings = json_array();
        json_array_foreach(json_object_get(doc, "data"), i, item)
            json_array_append(embeddings, json_object_get(item, "embedding"));
        return json_pack("{s:s, s:o, s:I, s:i, s:I}", "model", st->model, "embeddings",
                         embeddings, "total_duration",
                         (json_int_t)(ig_now_us() - st->started_us) * 1000, "load_duration", 0,
                         "prompt_eval_count",
                         json_integer_value(
                             json_object_get(json_object_get(doc, "usage"), "prompt_tokens")));
    }
    note_end_fields(st, doc);
    choice = json_array_get(json_object_get(doc, "choices"), 0);
    msg = json_object_get(choice, "message");
    obj = head_json(st);
    if (obj == NULL)
        return NULL;
    text = json_string_value(json_object_get(msg != NULL ? msg : choice,
                                             msg != NULL ? "content" : "text"));
    set_text(st, obj, text != NULL ? text : "",
             json_string_value(json_object_get(msg, "reasoning_content")));
    set_done_fields(st, obj);
    return obj;
}

/* Replaces the whole upstream answer BODY of STATUS by Ollama's: the answer, or
 * {"error": message} for a failure. */
static bool translate_body(void *arg, int status, struct evbuffer *body)
{
    struct gw_ollama_state *st = arg;
    size_t len = evbuffer_get_length(body);
    char err[128];
    json_t *doc = ig_json_parse((const char *)evbuffer_pullup(body, -1), len, MAX_JSON_DEPTH,
                                err, sizeof(err));
    json_t *obj = NULL;
    const char *message = error_message(doc);

    if (status >= 400 || !json_is_object(doc))
        obj = json_pack("{s:s}", "error",
                        message != NULL ? message
                        : status >= 400 ? "the model failed"
                                        : "the model answered with a body that is not JSON");
    else
        obj = translate_answer(st, doc);
    json_decref(doc);
    if (obj == NULL)
        return false;
    evbuffer_drain(body, len);
    write_line(body, obj);
    return true;
}

const struct gw_xlate_ops gw_ollama_ops = {
    .stream_type = "application/x-ndjson",
    .stream = translate_stream,
    .stream_error = write_error,
    .body = translate_body,
    .free = state_free,
};
