/* Completion endpoints of fake-llama-server: request parsing, response shapes, streaming. */
#include "fake.h"

#include "ig_error.h"
#include "ig_time.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Wire shapes follow llama-server (tools/server/server-task.cpp, nlohmann ordered_json, so
 * key order is insertion order):
 *  - chat stream: the first token's result carries an extra chunk with
 *    delta {"role":"assistant","content":null}; every token then a delta {"content":...};
 *    the final result a chunk with finish_reason and delta {}; with
 *    stream_options.include_usage one more chunk with "choices":[] and "usage"; "timings"
 *    ride on the last chunk; then "data: [DONE]".
 *  - /v1/completions stream: "text" per token; the final chunk has "text":"" plus usage.
 *  - /completion stream: {"content","tokens","stop":false,...} per token, then the full
 *    final object with "content":"" and "stop":true; no [DONE].
 * Every SSE event is "data: <json>\n\n".
 */

/* One completion request from parse to reply; heap-allocated, listed while in flight. */
struct fake_job {
    struct fake_server *srv;
    struct evhttp_request *req;
    struct evhttp_connection *evcon; /* set while we watch for the client closing */
    struct event *timer;
    struct evbuffer *chunk; /* scratch for one SSE write (streams only) */
    struct fake_job *prev;
    struct fake_job *next;
    json_t *root; /* request body (a reference), owner of the borrowed strings */
    const char *path;
    struct fake_cmpl_params params;
    struct fake_text text;
    uint64_t seq;
    uint64_t start_us;
    uint64_t next_token_us; /* when the next streamed token is due (monotonic) */
    long long created;
    int tokens_sent;
    bool is_bad_json;
    bool is_crashing;
    char id[FAKE_ID_LEN];
};

/* Returns the common event fields of JOB: id, path, tokens sent, stream flag. */
static json_t *event_fields(const struct fake_job *job)
{
    return json_pack("{s:I,s:s,s:i,s:b}", "id", (json_int_t)job->seq, "path", job->path,
                     "tokens_sent", job->tokens_sent, "stream", job->params.is_stream);
}

/* Logs event NAME for JOB with its id, path and token count. */
static void job_event(const struct fake_job *job, const char *name)
{
    if (job->srv->events != NULL)
        fake_event(job->srv, name, event_fields(job));
}

/* Logs the "done" event of a completed response. */
static void job_event_done(const struct fake_job *job, int status)
{
    json_t *fields;

    if (job->srv->events == NULL)
        return;
    fields = event_fields(job);
    json_object_set_new(fields, "status", json_integer(status));
    json_object_set_new(fields, "tokens", json_integer(job->text.n_tokens));
    fake_event(job->srv, "done", fields);
}

/* Returns "stop" when a stop string ended the text, else "length". */
static const char *finish_reason(const struct fake_job *job)
{
    return job->text.is_stopped ? "stop" : "length";
}

/* Appends ',"timings":{...}' for PREDICTED_N tokens: prompt time is synthetic, generation time
 * is the real time since the request arrived. */
static void write_timings(struct evbuffer *b, const struct fake_job *job, int predicted_n)
{
    int prompt_n = job->params.prompt_tokens;
    double prompt_ms = prompt_n * 0.05;
    double predicted_ms = (double)(ig_now_us() - job->start_us) / 1000.0;

    if (predicted_ms < 0.001)
        predicted_ms = 0.001;
    evbuffer_add_printf(b,
                        ",\"timings\":{\"cache_n\":0,\"prompt_n\":%d,\"prompt_ms\":%.3f,\"prompt_"
                        "per_token_ms\":%.3f,"
                        "\"prompt_per_second\":%.3f,\"predicted_n\":%d,\"predicted_ms\":%.3f,"
                        "\"predicted_per_token_ms\":%.3f,\"predicted_per_second\":%.3f}",
                        prompt_n, prompt_ms, prompt_ms / prompt_n, 1000.0 * prompt_n / prompt_ms,
                        predicted_n, predicted_ms,
                        predicted_n > 0 ? predicted_ms / predicted_n : 0.0,
                        predicted_n > 0 ? 1000.0 * predicted_n / predicted_ms : 0.0);
}

/* Appends ',"usage":{...}' as OpenAI counts it. */
static void write_usage(struct evbuffer *b, const struct fake_job *job)
{
    evbuffer_add_printf(b,
                        ",\"usage\":{\"completion_tokens\":%d,\"prompt_tokens\":%d,"
                        "\"total_tokens\":%d}",
                        job->text.n_tokens, job->params.prompt_tokens,
                        job->text.n_tokens + job->params.prompt_tokens);
}

/* Appends '"created":..,"model":..,"system_fingerprint":..,"object":"OBJECT"'. */
static void write_meta(struct evbuffer *b, const struct fake_job *job, const char *object)
{
    evbuffer_add_printf(b,
                        "\"created\":%lld,\"model\":%s,\"system_fingerprint\":\"" FAKE_FINGERPRINT
                        "\",\"object\":\"%s\"",
                        job->created, job->srv->model_json, object);
}

/* Appends the non-streamed chat.completion object. */
static void write_chat(struct evbuffer *b, const struct fake_job *job)
{
    evbuffer_add_printf(b,
                        "{\"choices\":[{\"finish_reason\":\"%s\",\"index\":0,\"message\":"
                        "{\"role\":\"assistant\",\"content\":",
                        finish_reason(job));
    fake_json_str(b, job->text.text, job->text.len);
    evbuffer_add(b, "}}],", 4);
    write_meta(b, job, "chat.completion");
    write_usage(b, job);
    evbuffer_add_printf(b, ",\"id\":\"%s\"", job->id);
    write_timings(b, job, job->text.n_tokens);
    evbuffer_add(b, "}", 1);
}

/* Appends a text_completion object: TEXT and FINISH (a JSON literal) in its one choice;
 * IS_FINAL adds usage and timings. */
static void write_oai_cmpl(struct evbuffer *b, const struct fake_job *job, const char *text,
                           size_t len, const char *finish, bool is_final)
{
    evbuffer_add(b, "{\"choices\":[{\"text\":", 20);
    fake_json_str(b, text, len);
    evbuffer_add_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":%s}],", finish);
    write_meta(b, job, "text_completion");
    if (is_final)
        write_usage(b, job);
    evbuffer_add_printf(b, ",\"id\":\"%s\"", job->id);
    if (is_final || job->params.timings_per_token)
        write_timings(b, job, is_final ? job->text.n_tokens : job->tokens_sent);
    evbuffer_add(b, "}", 1);
}

/* Appends the request's stop strings as a JSON array. */
static void write_stop_array(struct evbuffer *b, const struct fake_gen_req *g)
{
    evbuffer_add(b, "[", 1);
    for (size_t i = 0; i < g->n_stops; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        fake_json_str(b, g->stops[i], g->stop_lens[i]);
    }
    evbuffer_add(b, "]", 1);
}

/* Appends llama.cpp's native final /completion object (CONTENT empty when streamed). */
static void write_native_final(struct evbuffer *b, const struct fake_job *job, bool is_stream)
{
    const struct fake_gen_req *g = &job->params.gen;
    json_t *prompt = json_object_get(job->root, "prompt");
    int stop = job->text.stop_index;

    evbuffer_add(b, "{\"index\":0,\"content\":", 21);
    fake_json_str(b, is_stream ? "" : job->text.text, is_stream ? 0 : job->text.len);
    evbuffer_add_printf(b,
                        ",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":%s,"
                        "\"tokens_predicted\":%d,\"tokens_evaluated\":%d,\"generation_settings\":"
                        "{\"seed\":%lld,\"temperature\":0.8,\"n_predict\":%d,\"max_tokens\":%d,"
                        "\"stream\":%s,\"stop\":",
                        job->srv->model_json, job->text.n_tokens, job->params.prompt_tokens,
                        (long long)g->seed, g->n_predict, g->n_predict,
                        is_stream ? "true" : "false");
    write_stop_array(b, g);
    evbuffer_add(b, "},\"prompt\":", 11);
    fake_json_str(b, json_is_string(prompt) ? json_string_value(prompt) : "",
                  json_is_string(prompt) ? json_string_length(prompt) : 0);
    evbuffer_add_printf(b,
                        ",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"%s\","
                        "\"stopping_word\":",
                        job->text.is_stopped ? "word" : "limit");
    fake_json_str(b, stop >= 0 ? g->stops[stop] : "", stop >= 0 ? g->stop_lens[stop] : 0);
    evbuffer_add_printf(b, ",\"tokens_cached\":%d", job->params.prompt_tokens);
    write_timings(b, job, job->text.n_tokens);
    evbuffer_add(b, "}", 1);
}

/* Appends the whole non-streamed response body for JOB's API. */
static void write_response(struct evbuffer *b, const struct fake_job *job)
{
    char finish[16];

    if (job->is_bad_json)
        evbuffer_add(b, "{\"truncated\":", 13); /* never closed: invalid JSON */
    switch (job->params.api) {
    case FAKE_API_CHAT:
        write_chat(b, job);
        break;
    case FAKE_API_OAI_CMPL:
        snprintf(finish, sizeof(finish), "\"%s\"", finish_reason(job));
        write_oai_cmpl(b, job, job->text.text, job->text.len, finish, true);
        break;
    case FAKE_API_NATIVE:
        write_native_final(b, job, false);
        break;
    }
}

/* Appends the opening of one SSE event; the first content event of a bad-JSON job is broken. */
static void sse_begin(struct evbuffer *b, struct fake_job *job)
{
    evbuffer_add(b, "data: ", 6);
    if (job->is_bad_json) {
        evbuffer_add(b, "{\"truncated\":", 13);
        job->is_bad_json = false;
    }
}

/* Appends one chat.completion.chunk event whose choices array is CHOICES (raw JSON) or, when
 * DELTA is set, a content delta of LEN bytes; WITH_TIMINGS adds timings for N tokens. */
static void sse_chat_chunk(struct evbuffer *b, struct fake_job *job, const char *choices,
                           const char *delta, size_t len, bool with_usage, bool with_timings)
{
    sse_begin(b, job);
    evbuffer_add(b, "{\"choices\":[", 12);
    if (delta != NULL) {
        evbuffer_add(b, "{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":", 51);
        fake_json_str(b, delta, len);
        evbuffer_add(b, "}}", 2);
    } else {
        evbuffer_add(b, choices, strlen(choices));
    }
    evbuffer_add_printf(
        b,
        "],\"created\":%lld,\"id\":\"%s\",\"model\":%s,\"system_fingerprint\":\"" FAKE_FINGERPRINT
        "\",\"object\":\"chat.completion.chunk\"",
        job->created, job->id, job->srv->model_json);
    if (with_usage)
        write_usage(b, job);
    if (with_timings)
        write_timings(b, job, job->tokens_sent);
    evbuffer_add(b, "}\n\n", 3);
}

/* Appends the SSE event(s) for token I, whose new text is LEN bytes at DELTA (maybe empty). */
static void sse_token(struct evbuffer *b, struct fake_job *job, int i, const char *delta,
                      size_t len)
{
    bool with_timings = job->params.timings_per_token;

    switch (job->params.api) {
    case FAKE_API_CHAT:
        if (i == 0)
            sse_chat_chunk(b, job,
                           "{\"finish_reason\":null,\"index\":0,\"delta\":"
                           "{\"role\":\"assistant\",\"content\":null}}",
                           NULL, 0, false, with_timings && len == 0);
        if (len > 0)
            sse_chat_chunk(b, job, NULL, delta, len, false, with_timings);
        break;
    case FAKE_API_OAI_CMPL:
        if (len == 0)
            break;
        sse_begin(b, job);
        write_oai_cmpl(b, job, delta, len, "null", false);
        evbuffer_add(b, "\n\n", 2);
        break;
    case FAKE_API_NATIVE:
        if (len == 0)
            break;
        sse_begin(b, job);
        evbuffer_add(b, "{\"index\":0,\"content\":", 21);
        fake_json_str(b, delta, len);
        evbuffer_add_printf(b,
                            ",\"tokens\":[],\"stop\":false,\"id_slot\":0,\"tokens_predicted\":%d,"
                            "\"tokens_evaluated\":%d",
                            i + 1, job->params.prompt_tokens);
        if (with_timings)
            write_timings(b, job, i + 1);
        evbuffer_add(b, "}\n\n", 3);
        break;
    }
}

/* Appends the closing SSE events: finish (+ usage) chunks and [DONE] for OpenAI shapes. */
static void sse_end(struct evbuffer *b, struct fake_job *job)
{
    char choice[96];
    char finish[16];

    switch (job->params.api) {
    case FAKE_API_CHAT:
        snprintf(choice, sizeof(choice), "{\"finish_reason\":\"%s\",\"index\":0,\"delta\":{}}",
                 finish_reason(job));
        sse_chat_chunk(b, job, choice, NULL, 0, false, !job->params.include_usage);
        if (job->params.include_usage)
            sse_chat_chunk(b, job, "", NULL, 0, true, true);
        evbuffer_add(b, "data: [DONE]\n\n", 14);
        break;
    case FAKE_API_OAI_CMPL:
        snprintf(finish, sizeof(finish), "\"%s\"", finish_reason(job));
        sse_begin(b, job);
        write_oai_cmpl(b, job, "", 0, finish, true);
        evbuffer_add(b, "\n\n", 2);
        evbuffer_add(b, "data: [DONE]\n\n", 14);
        break;
    case FAKE_API_NATIVE:
        sse_begin(b, job);
        write_native_final(b, job, true);
        evbuffer_add(b, "\n\n", 2);
        break;
    }
}

/* Unlinks JOB and releases everything it owns (not the request: libevent owns that). */
static void job_free(struct fake_job *job)
{
    struct fake_server *srv = job->srv;

    if (job->prev != NULL)
        job->prev->next = job->next;
    else if (srv->jobs == job)
        srv->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    if (job->evcon != NULL)
        evhttp_connection_set_closecb(job->evcon, NULL, NULL);
    if (job->timer != NULL)
        event_free(job->timer);
    if (job->chunk != NULL)
        evbuffer_free(job->chunk);
    json_decref(job->root);
    fake_text_release(&job->text);
    free(job);
}

/*
 * The client went away before the response finished. libevent has already detached the
 * request from the dying connection (its EOF path does that while the reply is not done), so
 * the request is ours to free now; then log the cancel and drop the job.
 */
static void job_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct fake_job *job = arg;

    (void)evcon;
    if (job->is_crashing)
        _exit(1);
    job_event(job, "cancel");
    job->evcon = NULL;
    if (evhttp_request_get_connection(job->req) == NULL)
        evhttp_request_free(job->req);
    job_free(job);
}

/*
 * Makes the connection report the client closing while we have not replied yet. evhttp
 * stops reading once a request body is complete; reading again with no read callback keeps
 * evhttp's own callbacks for writing and errors, so EOF reaches the close callback. (A
 * streamed reply gets the same from evhttp_send_reply_start().)
 */
static void watch_close(struct fake_job *job)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(job->evcon);
    bufferevent_data_cb read_cb;
    bufferevent_data_cb write_cb;
    bufferevent_event_cb event_cb;
    void *cb_arg;

    bufferevent_getcb(bev, &read_cb, &write_cb, &event_cb, &cb_arg);
    bufferevent_setcb(bev, NULL, write_cb, event_cb, cb_arg);
    bufferevent_enable(bev, EV_READ);
}

/* Arms JOB's timer for US microseconds. */
static void job_arm(struct fake_job *job, long long us)
{
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};

    evtimer_add(job->timer, &tv);
}

/* Arms the stream timer for the next token, keeping to the --token-us schedule so the delay
 * spent producing earlier tokens does not accumulate. */
static void job_arm_next_token(struct fake_job *job)
{
    uint64_t now = ig_now_us();

    job->next_token_us += (uint64_t)job->srv->opts->token_us;
    job_arm(job, job->next_token_us > now ? (long long)(job->next_token_us - now) : 0);
}

/* Timer callback while crashing: exits once everything sent so far has left the socket buffer. */
static void job_crash_poll(evutil_socket_t fd, short what, void *arg)
{
    struct fake_job *job = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(job->evcon);

    (void)fd;
    (void)what;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        _exit(1);
    job_arm(job, 1000);
}

/* Simulates the upstream dying: logs "crash", flushes what was emitted, then _exit(1). */
static void job_crash(struct fake_job *job)
{
    job_event(job, "crash");
    if (job->evcon == NULL || !job->params.is_stream)
        _exit(1);
    job->is_crashing = true;
    event_free(job->timer);
    job->timer = evtimer_new(job->srv->base, job_crash_poll, job);
    if (job->timer == NULL)
        _exit(1);
    job_arm(job, 0);
}

/* Completes a streamed response: final events, end of the chunked body, "done". */
static void stream_finish(struct fake_job *job)
{
    sse_end(job->chunk, job);
    evhttp_send_reply_chunk(job->req, job->chunk);
    evhttp_connection_set_closecb(job->evcon, NULL, NULL);
    job->evcon = NULL;
    evhttp_send_reply_end(job->req);
    job_event_done(job, 200);
    job_free(job);
}

/* Returns whether --crash-after-tokens fires before the next token of JOB. */
static bool should_crash(const struct fake_job *job)
{
    long crash = job->srv->opts->crash_after_tokens;

    return crash >= 0 && job->tokens_sent >= crash && job->tokens_sent < job->text.n_tokens;
}

/* Returns whether --hang-after-tokens fires before the next token of JOB. */
static bool should_hang(const struct fake_job *job)
{
    long hang = job->srv->opts->hang_after_tokens;

    return hang >= 0 && job->tokens_sent >= hang && job->tokens_sent < job->text.n_tokens;
}

/* Returns whether --crash-after-tokens cuts JOB's generation short at all. */
static bool crash_applies(const struct fake_job *job)
{
    long crash = job->srv->opts->crash_after_tokens;

    return crash >= 0 && job->text.n_tokens > crash;
}

/* Returns whether --hang-after-tokens cuts JOB's generation short at all. */
static bool hang_applies(const struct fake_job *job)
{
    long hang = job->srv->opts->hang_after_tokens;

    return hang >= 0 && job->text.n_tokens > hang;
}

/* Stream timer: emits one token as its own chunk, or the end, or applies a fault knob. */
static void stream_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fake_job *job = arg;
    int i = job->tokens_sent;

    (void)fd;
    (void)what;
    if (should_hang(job)) {
        job_event(job, "hang"); /* keep the connection open, send nothing more */
        return;
    }
    if (i < job->text.n_tokens && !should_crash(job)) {
        uint32_t from = i == 0 ? 0 : job->text.tok_end[i - 1];

        job->tokens_sent++;
        sse_token(job->chunk, job, i, job->text.text + from, job->text.tok_end[i] - from);
    }
    if (job->tokens_sent == job->text.n_tokens) {
        stream_finish(job);
        return;
    }
    evhttp_send_reply_chunk(job->req, job->chunk);
    if (should_crash(job))
        job_crash(job);
    else
        job_arm_next_token(job);
}

/* Delayed non-stream timer: the whole generation time has passed; reply (or crash). */
static void delayed_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fake_job *job = arg;

    (void)fd;
    (void)what;
    if (crash_applies(job)) {
        job->tokens_sent = (int)job->srv->opts->crash_after_tokens;
        job_crash(job); /* does not return for a non-streamed response */
        return;
    }
    evhttp_connection_set_closecb(job->evcon, NULL, NULL);
    job->evcon = NULL;
    job->tokens_sent = job->text.n_tokens;
    write_response(evhttp_request_get_output_buffer(job->req), job);
    fake_reply_json(job->req, 200);
    job_event_done(job, 200);
    job_free(job);
}

/* Streams send one small write per token: like llama-server, turn off Nagle so a token is
 * not held back waiting for the client's delayed ACK. Only streams pay the extra syscall. */
static void set_no_delay(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    int one = 1;
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Starts JOB as an in-flight response (stream, slow, crashing or hanging); 0 or IG_ENOMEM. */
static int job_start(struct fake_job *job)
{
    struct fake_server *srv = job->srv;
    long long token_us = srv->opts->token_us;
    bool is_stream = job->params.is_stream;

    job->timer = evtimer_new(srv->base, is_stream ? stream_tick : delayed_tick, job);
    job->chunk = is_stream ? evbuffer_new() : NULL;
    if (job->timer == NULL || (is_stream && job->chunk == NULL))
        return IG_ENOMEM;
    job->next = srv->jobs;
    if (srv->jobs != NULL)
        srv->jobs->prev = job;
    srv->jobs = job;
    job->evcon = evhttp_request_get_connection(job->req);
    evhttp_connection_set_closecb(job->evcon, job_on_close, job);
    if (is_stream) {
        evhttp_add_header(evhttp_request_get_output_headers(job->req), "Content-Type",
                          "text/event-stream");
        evhttp_add_header(evhttp_request_get_output_headers(job->req), "Server", "llama.cpp");
        set_no_delay(job->evcon);
        evhttp_send_reply_start(job->req, 200, "OK");
        job->next_token_us = job->start_us;
        job_arm_next_token(job);
    } else if (hang_applies(job)) {
        watch_close(job);
        job->tokens_sent = (int)srv->opts->hang_after_tokens;
        job_event(job, "hang");
    } else {
        watch_close(job);
        job_arm(job, token_us *
                         (crash_applies(job) ? srv->opts->crash_after_tokens : job->text.n_tokens));
    }
    return 0;
}

/* Returns whether JOB needs the loop (stream, --token-us, or a fault that applies to it). */
static bool needs_job(const struct fake_job *job)
{
    return job->params.is_stream || job->srv->opts->token_us > 0 || crash_applies(job) ||
           hang_applies(job);
}

void fake_cmpl_handle(struct fake_server *srv, struct evhttp_request *req, enum fake_api api,
                      const char *path, json_t *root)
{
    struct fake_job *job = calloc(1, sizeof(*job));
    const char *problem;
    int status = 500;

    if (job == NULL) {
        fake_reply_error(req, 500, "server_error", "out of memory");
        return;
    }
    job->srv = srv;
    job->req = req;
    job->root = json_incref(root);
    job->path = path;
    job->seq = srv->request_seq;
    job->start_us = ig_now_us();
    job->created = (long long)ig_unix_s();
    problem = fake_cmpl_parse(root, api, &job->params);
    if (problem != NULL) {
        status = 400;
        fake_reply_error(req, status, "invalid_request_error", problem);
        goto out;
    }
    if (fake_text_generate(&job->text, &job->params.gen) != 0) {
        fake_reply_error(req, status, "server_error", "out of memory");
        goto out;
    }
    fake_make_id(srv, job->id);
    job->is_bad_json = fake_take_bad_json(srv);
    if (needs_job(job)) {
        if (job_start(job) == 0)
            return; /* the job replies, logs and frees itself */
        fake_reply_error(req, status, "server_error", "out of memory");
        goto out;
    }
    status = 200;
    job->tokens_sent = job->text.n_tokens;
    write_response(evhttp_request_get_output_buffer(req), job);
    fake_reply_json(req, status);
out:
    job_event_done(job, status);
    job_free(job);
}

void fake_cmpl_free_all(struct fake_server *srv)
{
    while (srv->jobs != NULL)
        job_free(srv->jobs);
}
