/* Loop side of the hand-off: turns the inference thread's output into JSON and SSE replies. */
#include "engine_internal.h"

#include "http_server.h"
#include "ig_base64.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENG_FINGERPRINT "b0-infergate"
#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/*
 * Shapes follow llama-server (tools/server, key order included): a chat stream opens with a
 * delta {"role":"assistant","content":null}, sends {"content":…} deltas, then a chunk with
 * finish_reason and delta {}; with stream_options.include_usage one more chunk with
 * "choices":[] and "usage"; "timings" ride on the last chunk; then "data: [DONE]". The
 * native /completion stream has no [DONE].
 */

void eng_task_free(struct eng_task *task)
{
    if (task == NULL)
        return;
    free(task->prompt);
    for (int i = 0; task->inputs != NULL && i < task->n_inputs; i++)
        free(task->inputs[i]);
    free(task->inputs);
    free(task->input_lens);
    eng_sampling_release(&task->sampling);
    eng_text_release(&task->content);
    eng_text_release(&task->pending);
    eng_probs_release(&task->probs);
    eng_probs_release(&task->pending_probs);
    free(task->prompt_text);
    free(task->embd);
    free(task);
}

/* Returns the OpenAI finish_reason of TASK. */
static const char *finish_reason(const struct eng_task *task)
{
    return task->finish == ENG_FINISH_LENGTH ? "length" : "stop";
}

/* Returns the timings object of TASK (new reference). */
static json_t *timings_json(const struct eng_task *task)
{
    int pn = task->n_prompt - task->n_cache; /* llama-server: evaluated, cache excluded */
    int gn = task->n_predicted;
    double pms = task->prompt_ms > 0.001 ? task->prompt_ms : 0.001;
    double gms = task->predicted_ms > 0.001 ? task->predicted_ms : 0.001;
    return json_pack("{s:i,s:i,s:f,s:f,s:f,s:i,s:f,s:f,s:f}", "cache_n", task->n_cache, "prompt_n",
                     pn, "prompt_ms", pms, "prompt_per_token_ms", pn > 0 ? pms / pn : 0.0,
                     "prompt_per_second", 1000.0 * pn / pms, "predicted_n", gn, "predicted_ms", gms,
                     "predicted_per_token_ms", gn > 0 ? gms / gn : 0.0, "predicted_per_second",
                     1000.0 * gn / gms);
}

/* Returns the usage object of TASK (new reference). */
static json_t *usage_json(const struct eng_task *task)
{
    return json_pack("{s:i,s:i,s:i}", "completion_tokens", task->n_predicted, "prompt_tokens",
                     task->n_prompt, "total_tokens", task->n_predicted + task->n_prompt);
}

/* Adds created, model, system_fingerprint and object to O. */
static void add_meta(json_t *o, const struct eng_task *task, const char *object)
{
    json_object_set_new(o, "created", json_integer(task->created));
    json_object_set_new(o, "model", json_string(eng_model_name(task->engine)));
    json_object_set_new(o, "system_fingerprint", json_string(ENG_FINGERPRINT));
    json_object_set_new(o, "object", json_string(object));
}

/* Returns a JSON string of TEXT (valid UTF-8 by construction). */
static json_t *text_json(const char *text, size_t len)
{
    json_t *s = json_stringn(text != NULL ? text : "", text != NULL ? len : 0);
    return s != NULL ? s : json_string("");
}

/* Returns the llama.cpp stop_type of TASK. */
static const char *stop_type(const struct eng_task *task)
{
    if (task->finish == ENG_FINISH_STOP)
        return "word";
    return task->finish == ENG_FINISH_EOS ? "eos" : "limit";
}

/* Returns the records not yet sent as a JSON array and marks them sent (new reference). */
static json_t *unsent_probs(struct eng_task *task)
{
    size_t stride = (size_t)task->sampling.n_probs + 1;
    size_t total = task->probs.len / stride;
    json_t *arr = eng_probs_json(task->engine, &task->probs, task->sampling.n_probs,
                                 task->n_probs_sent, total);
    task->n_probs_sent = total;
    return arr;
}

/* Returns the native /completion object with CONTENT (new reference). */
static json_t *native_json(struct eng_task *task, const char *content, size_t len, bool is_final)
{
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(0));
    json_object_set_new(o, "content", text_json(content, len));
    json_object_set_new(o, "tokens", json_array());
    if (task->sampling.has_probs)
        json_object_set_new(o, "completion_probabilities", unsent_probs(task));
    if (!is_final) {
        json_object_set_new(o, "stop", json_false());
        json_object_set_new(o, "id_slot", json_integer(task->slot_id));
        json_object_set_new(o, "tokens_predicted", json_integer(task->n_seen));
        json_object_set_new(o, "tokens_evaluated", json_integer(task->n_prompt));
        return o;
    }
    json_object_set_new(o, "id_slot", json_integer(task->slot_id));
    json_object_set_new(o, "stop", json_true());
    json_object_set_new(o, "model", json_string(eng_model_name(task->engine)));
    json_object_set_new(o, "tokens_predicted", json_integer(task->n_predicted));
    json_object_set_new(o, "tokens_evaluated", json_integer(task->n_prompt));
    json_object_set_new(
        o, "generation_settings",
        json_pack("{s:I,s:f,s:i,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:i,s:i}", "seed",
                  (json_int_t)task->sampling.seed, "temperature",
                  (double)task->sampling.temperature, "top_k", task->sampling.top_k, "top_p",
                  (double)task->sampling.top_p, "min_p", (double)task->sampling.min_p, "typical_p",
                  (double)task->sampling.typical_p, "repeat_last_n", task->sampling.repeat_last_n,
                  "repeat_penalty", (double)task->sampling.repeat_penalty, "presence_penalty",
                  (double)task->sampling.presence_penalty, "frequency_penalty",
                  (double)task->sampling.frequency_penalty, "n_probs", task->sampling.n_probs,
                  "n_predict", task->sampling.n_predict));
    json_object_set_new(o, "prompt",
                        json_string(task->prompt_text != NULL ? task->prompt_text : ""));
    json_object_set_new(o, "has_new_line",
                        json_boolean(memchr(task->content.data != NULL ? task->content.data : "",
                                            '\n', task->content.len) != NULL));
    json_object_set_new(o, "truncated", json_false());
    json_object_set_new(o, "stop_type", json_string(stop_type(task)));
    json_object_set_new(o, "stopping_word",
                        json_string(task->stopping_word != NULL ? task->stopping_word : ""));
    json_object_set_new(o, "tokens_cached", json_integer(task->n_prompt + task->n_predicted));
    json_object_set_new(o, "timings", timings_json(task));
    return o;
}

/* Returns a chat.completion.chunk with CHOICES (stolen) and optional usage/timings. */
static json_t *chat_chunk(const struct eng_task *task, json_t *choices, bool with_usage,
                          bool with_timings)
{
    json_t *o = json_object();
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "created", json_integer(task->created));
    json_object_set_new(o, "id", json_string(task->id));
    json_object_set_new(o, "model", json_string(eng_model_name(task->engine)));
    json_object_set_new(o, "system_fingerprint", json_string(ENG_FINGERPRINT));
    json_object_set_new(o, "object", json_string("chat.completion.chunk"));
    if (with_usage)
        json_object_set_new(o, "usage", usage_json(task));
    if (with_timings)
        json_object_set_new(o, "timings", timings_json(task));
    return o;
}

/* Returns a text_completion object with TEXT; IS_FINAL adds finish_reason, usage, timings. */
static json_t *oai_cmpl_json(const struct eng_task *task, const char *text, size_t len,
                             bool is_final)
{
    json_t *o = json_object();
    json_t *choice = json_object();
    json_object_set_new(choice, "text", text_json(text, len));
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason",
                        is_final ? json_string(finish_reason(task)) : json_null());
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    add_meta(o, task, "text_completion");
    if (is_final)
        json_object_set_new(o, "usage", usage_json(task));
    json_object_set_new(o, "id", json_string(task->id));
    if (is_final)
        json_object_set_new(o, "timings", timings_json(task));
    return o;
}

/* Writes V (stolen) as one SSE event "data: <json>\n\n"; returns 1 when the client is slow. */
static int sse_send(struct http_request *req, json_t *v)
{
    char *s = json_dumps(v, JSON_FLAGS);
    int is_slow = 0;
    json_decref(v);
    if (s == NULL)
        return 0;
    size_t n = strlen(s);
    char *line = malloc(n + 8);
    if (line != NULL) {
        memcpy(line, "data: ", 6);
        memcpy(line + 6, s, n);
        memcpy(line + 6 + n, "\n\n", 2);
        is_slow = http_stream_write(req, line, n + 8);
    }
    free(line);
    free(s);
    return is_slow;
}

/* Writes the streamed events for a new piece of text; returns 1 when the client is slow. */
static int stream_delta(struct eng_task *task, const char *text, size_t len)
{
    int is_slow = 0;
    if (len == 0)
        return 0;
    switch (task->api) {
    case ENG_API_CHAT: {
        json_t *choice = json_pack("{s:n,s:i,s:{s:o}}", "finish_reason", "index", 0, "delta",
                                   "content", text_json(text, len));
        if (task->sampling.has_probs)
            json_object_set_new(choice, "logprobs",
                                json_pack("{s:o}", "content", unsent_probs(task)));
        is_slow = sse_send(task->req, chat_chunk(task, json_pack("[o]", choice), false, false));
        break;
    }
    case ENG_API_OAI_CMPL:
        is_slow = sse_send(task->req, oai_cmpl_json(task, text, len, false));
        break;
    case ENG_API_NATIVE:
        is_slow = sse_send(task->req, native_json(task, text, len, false));
        break;
    case ENG_API_EMBD:
        break;
    }
    return is_slow;
}

/* Writes the closing events of a stream and ends it. */
static void stream_final(struct eng_task *task)
{
    if (task->finish == ENG_FINISH_ERROR) {
        json_t *err = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 500, "message", task->error,
                                "type", "server_error");
        sse_send(task->req, err);
    } else if (task->api == ENG_API_CHAT) {
        json_t *choice =
            json_pack("{s:s,s:i,s:{}}", "finish_reason", finish_reason(task), "index", 0, "delta");
        if (task->sampling.has_probs)
            json_object_set_new(choice, "logprobs",
                                json_pack("{s:o}", "content", unsent_probs(task)));
        sse_send(task->req,
                 chat_chunk(task, json_pack("[o]", choice), false, !task->include_usage));
        if (task->include_usage)
            sse_send(task->req, chat_chunk(task, json_array(), true, true));
    } else if (task->api == ENG_API_OAI_CMPL) {
        sse_send(task->req, oai_cmpl_json(task, "", 0, true));
    } else {
        sse_send(task->req, native_json(task, "", 0, true));
    }
    if (task->api != ENG_API_NATIVE)
        (void)http_stream_write(task->req, "data: [DONE]\n\n", 14);
    http_stream_end(task->req);
}

/* The slow client caught up: let the slot decode again. */
static void on_drain(struct http_request *req, void *arg)
{
    struct eng_task *task = arg;
    (void)req;
    task->has_asked_pause = false;
    eng_resume(task->engine, task);
}

/*
 * Pauses TASK's slot when a write left its client's buffer over the high-water mark
 * (IS_SLOW), and resumes it when a later write found it below. The drain callback alone is
 * not enough: the slot decodes one more step before it sees the pause, and when the client
 * has read everything by the time that token is written, the write empties the buffer
 * itself, no writable event is left pending, and the drain callback never comes: the slot
 * stayed paused until the client went away.
 */
static void flow_control(struct eng_task *task, int is_slow)
{
    if (is_slow == 1 && !task->has_asked_pause) {
        task->has_asked_pause = true;
        eng_pause(task->engine, task);
    } else if (is_slow == 0 && task->has_asked_pause) {
        task->has_asked_pause = false;
        eng_resume(task->engine, task);
    }
}

void eng_stream_open(struct eng_task *task)
{
    http_request_set_drain_cb(task->req, on_drain, task);
    http_response_add_header(task->req, "Server", "llama.cpp");
    http_stream_start(task->req, 200, "text/event-stream");
    task->has_started_stream = true;
    if (task->api == ENG_API_CHAT) {
        json_t *choices = json_pack("[{s:n,s:i,s:{s:s,s:n}}]", "finish_reason", "index", 0, "delta",
                                    "role", "assistant", "content");
        sse_send(task->req, chat_chunk(task, choices, false, false));
    }
}

/* Returns the embeddings reply of TASK (new reference): OpenAI list or llama.cpp's array. */
static json_t *embd_json(const struct eng_task *task, bool is_native)
{
    int dim = task->engine->n_embd;
    json_t *data = json_array();
    for (int i = 0; i < task->n_inputs; i++) {
        const float *v = task->embd + (size_t)i * (size_t)dim;
        json_t *vec;
        if (task->is_base64 && !is_native) {
            char *text = malloc(ig_base64_len((size_t)dim * sizeof(float)) + 1);
            if (text != NULL)
                ig_base64_encode(v, (size_t)dim * sizeof(float), text);
            vec = text != NULL ? json_string(text) : json_null();
            free(text);
        } else {
            vec = json_array();
            for (int d = 0; d < dim; d++)
                json_array_append_new(vec, json_real(v[d]));
        }
        if (is_native)
            json_array_append_new(data, json_pack("{s:i,s:[o]}", "index", i, "embedding", vec));
        else
            json_array_append_new(data, json_pack("{s:o,s:i,s:s}", "embedding", vec, "index", i,
                                                  "object", "embedding"));
    }
    if (is_native)
        return data;
    return json_pack("{s:s,s:s,s:o,s:{s:i,s:i}}", "model", eng_model_name(task->engine), "object",
                     "list", "data", data, "usage", "prompt_tokens", task->n_embd_tokens,
                     "total_tokens", task->n_embd_tokens);
}

/* Sends the whole non-streamed reply of a finished TASK. */
static void reply_final(struct eng_task *task)
{
    json_t *o = NULL;
    if (task->finish == ENG_FINISH_ERROR) {
        int status = task->error_status > 0 ? task->error_status : 500;
        eng_reply_error(task->req, status, status == 500 ? "server_error" : NULL, task->error);
        return;
    }
    switch (task->api) {
    case ENG_API_CHAT:
        o = json_object();
        json_t *choice = json_pack("{s:s,s:i,s:{s:s,s:o}}", "finish_reason", finish_reason(task),
                                   "index", 0, "message", "role", "assistant", "content",
                                   text_json(task->content.data, task->content.len));
        if (task->sampling.has_probs)
            json_object_set_new(choice, "logprobs",
                                json_pack("{s:o}", "content", unsent_probs(task)));
        json_object_set_new(o, "choices", json_pack("[o]", choice));
        add_meta(o, task, "chat.completion");
        json_object_set_new(o, "usage", usage_json(task));
        json_object_set_new(o, "id", json_string(task->id));
        json_object_set_new(o, "timings", timings_json(task));
        break;
    case ENG_API_OAI_CMPL:
        o = oai_cmpl_json(task, task->content.data, task->content.len, true);
        break;
    case ENG_API_NATIVE:
        o = native_json(task, task->content.data, task->content.len, true);
        break;
    case ENG_API_EMBD:
        o = embd_json(task, task->is_stream); /* is_stream marks the native route here */
        break;
    }
    eng_reply_json(task->req, o);
}

/* Writes TASK's new TEXT and, once it is finished, its end; frees it when done. */
static void task_progress(struct eng_task *task, struct eng_text *text, bool is_finished)
{
    bool is_sse = task->is_stream && task->api != ENG_API_EMBD;
    /* A stream opens with its first output, so that an error found before it (a grammar that
     * does not parse) is still answered with its own status. */
    if (is_sse && task->req != NULL && !task->has_started_stream &&
        (text->len > 0 || (is_finished && task->finish != ENG_FINISH_ERROR)))
        eng_stream_open(task);
    if (task->req != NULL && text->len > 0) {
        if (is_sse)
            flow_control(task, stream_delta(task, text->data, text->len));
        if (eng_text_append(&task->content, text->data, text->len) != 0) {
            task->finish = ENG_FINISH_ERROR;
            snprintf(task->error, sizeof(task->error), "out of memory");
        }
    }
    if (!is_finished)
        return;
    if (task->req != NULL) {
        if (is_sse && task->has_started_stream)
            stream_final(task);
        else
            reply_final(task);
        task->req = NULL;
    }
    eng_task_free(task);
}

/* Handles the end of loading: ready, or a failure that stops the loop. */
static void check_load(struct engine *e, bool is_ready, bool is_failed)
{
    if (is_ready)
        e->is_ready_seen = true;
    if (is_failed && e->exit_code == 0) {
        e->exit_code = 1;
        event_base_loopbreak(e->base);
    }
}

void eng_on_notify(int fd, short what, void *arg)
{
    struct engine *e = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&e->mu);
    struct eng_task *list = e->ready_head;
    bool is_ready = e->is_ready;
    bool is_failed = e->is_load_failed;
    e->ready_head = NULL;
    pthread_mutex_unlock(&e->mu);
    check_load(e, is_ready, is_failed);
    while (list != NULL) {
        struct eng_task *task = list;
        pthread_mutex_lock(&e->mu);
        list = task->ready_next;
        task->is_listed = false;
        struct eng_text text = task->pending;
        memset(&task->pending, 0, sizeof(task->pending));
        if (eng_probs_move(&task->probs, &task->pending_probs) != 0) {
            task->finish = ENG_FINISH_ERROR;
            snprintf(task->error, sizeof(task->error), "out of memory");
        }
        bool is_finished = task->is_finished;
        task->n_seen = task->n_predicted;
        pthread_mutex_unlock(&e->mu);
        task_progress(task, &text, is_finished);
        eng_text_release(&text);
    }
}
