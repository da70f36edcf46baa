/*
 * `infergate chat MODEL`: a streaming chat with a running server. Each line read from stdin
 * is a user message (or a /command); the reply streams from POST /v1/chat/completions
 * (stream: true, stream_options.include_usage) and the conversation is kept and sent again
 * with every turn. After each reply a line on stderr gives the time to the first token and
 * the generation speed.
 *
 * On a terminal (stdin a tty) there is a prompt and Ctrl-C stops a reply; otherwise nothing
 * but the replies is written to stdout, one reply per input line, and the chat ends at EOF.
 * A model that is still loading answers late: after LOADING_CHECK_MS without an answer the
 * chat asks GET /status, and says so while the model's state is "starting".
 */
#include "cli.h"
#include "cli_http.h"
#include "cli_sse.h"
#include "ig_json.h"
#include "ig_time.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_LINE_BYTES (1u << 20)
#define MAX_EVENT_BYTES (1u << 20)
#define MAX_REPLY_BYTES (16u << 20)
#define MAX_BODY_BYTES (1u << 20)
#define MAX_JSON_DEPTH 64
#define LOADING_CHECK_MS 700
#define STATUS_TIMEOUT_MS 2000
#define POLL_MS 100
#define EVENT_DONE 1 /* a callback's "stop here, all is well" */

static const char usage_text[] =
    "usage: infergate chat MODEL [--system TEXT] [--max-tokens N] " CLI_SERVER_USAGE "\n"
    "  then type messages; /model NAME switches model, /reset forgets the conversation,\n"
    "  /quit ends (as does EOF); a line starting with // sends a literal /\n";

static volatile sig_atomic_t interrupted;

/* SIGINT: stop the reply in progress (or the chat, at the prompt). */
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* The chat session. */
struct chat {
    struct cli_server *server;
    char *model;
    char *previous_model; /* before the last /model, to go back to if it is unknown */
    const char *system;
    long max_tokens; /* 0: not sent */
    json_t *history; /* the messages so far */
    bool is_tty;     /* stdin is a terminal: prompt, colours, non-fatal 404 after /model */
    bool has_failed; /* a turn failed (exit status 1 when not interactive) */
};

/* The GET /status check made while a reply is slow to start. */
struct status_check {
    CURL *easy;
    struct curl_slist *headers;
    struct cli_buf body;
};

/* One reply being received. */
struct turn {
    struct chat *chat;
    CURL *easy;
    struct cli_sse *sse;
    bool has_head, is_sse, is_done;
    long status;
    struct cli_buf body;  /* a non-SSE answer (an error, or JSON) */
    struct cli_buf reply; /* the assistant's text */
    char *stream_error;   /* an error event inside the stream */
    int feed_rc;
    uint64_t start_us, first_token_us, end_us;
    long chunks;
    long completion_tokens; /* from usage; -1 when none came */
    bool is_loading_shown, ends_with_newline;
    int loading_percent_shown; /* the load progress last printed; -1: none */
};

/* Clears the "loading" line of T if one is shown on a terminal. */
static void clear_loading(struct turn *t)
{
    if (t->is_loading_shown && t->chat->is_tty)
        fprintf(stderr, "\r\033[K");
    t->is_loading_shown = false;
}

/* Writes the text of a delta to stdout (reasoning dimmed, on a terminal only). */
static void show_text(struct turn *t, const char *text, bool is_reasoning)
{
    size_t n = strlen(text);

    if (n == 0)
        return;
    if (is_reasoning) {
        if (t->chat->is_tty)
            printf("\033[2m%s\033[0m", text);
        fflush(stdout);
        return;
    }
    if (t->first_token_us == 0)
        t->first_token_us = ig_now_us();
    fwrite(text, 1, n, stdout);
    fflush(stdout);
    t->ends_with_newline = text[n - 1] == '\n';
    if (cli_buf_append(&t->reply, text, n) != 0)
        t->feed_rc = IG_ETOOBIG;
}

/* Takes the counts of a usage object. */
static void take_usage(struct turn *t, json_t *usage)
{
    json_t *n = json_object_get(usage, "completion_tokens");

    if (json_is_integer(n))
        t->completion_tokens = (long)json_integer_value(n);
}

/* Handles one SSE event of the reply; returns 0, EVENT_DONE at [DONE], or an error. */
static int on_event(const char *data, size_t len, void *arg)
{
    struct turn *t = arg;
    char err[160];
    json_t *doc, *choice, *delta, *e;

    if (strcmp(data, "[DONE]") == 0)
        return EVENT_DONE;
    doc = ig_json_parse(data, len, MAX_JSON_DEPTH, err, sizeof(err));
    if (doc == NULL)
        return IG_EPROTO;
    e = json_object_get(doc, "error");
    if (e != NULL) {
        char *text = json_dumps(doc, JSON_COMPACT);
        free(t->stream_error);
        t->stream_error = text != NULL ? cli_error_text(0, text, strlen(text)) : NULL;
        free(text);
        json_decref(doc);
        return EVENT_DONE;
    }
    choice = json_array_get(json_object_get(doc, "choices"), 0);
    delta = json_object_get(choice, "delta");
    if (json_is_string(json_object_get(delta, "reasoning_content")))
        show_text(t, json_string_value(json_object_get(delta, "reasoning_content")), true);
    if (json_is_string(json_object_get(delta, "content"))) {
        const char *text = json_string_value(json_object_get(delta, "content"));
        if (text[0] != '\0')
            t->chunks++;
        show_text(t, text, false);
    }
    if (json_is_object(json_object_get(doc, "usage")))
        take_usage(t, json_object_get(doc, "usage"));
    json_decref(doc);
    return 0;
}

/* libcurl write callback of the reply: SSE for a 200 event stream, collected otherwise. */
static size_t on_data(char *bytes, size_t size, size_t n, void *arg)
{
    struct turn *t = arg;
    size_t len = size * n;

    if (!t->has_head) {
        const char *type = NULL;
        t->has_head = true;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
        t->is_sse = t->status == 200 && type != NULL &&
                    strncasecmp(type, "text/event-stream", 17) == 0;
        clear_loading(t);
    }
    if (!t->is_sse)
        return cli_buf_append(&t->body, bytes, len) == 0 ? len : 0;
    if (t->is_done)
        return len;
    int rc = cli_sse_feed(t->sse, bytes, len);
    if (t->feed_rc == 0) /* an error show_text() set while feeding wins */
        t->feed_rc = rc;
    if (t->feed_rc == EVENT_DONE) {
        t->feed_rc = 0;
        t->is_done = true;
        t->end_us = ig_now_us();
    }
    return t->feed_rc == 0 ? len : 0;
}

/* libcurl write callback of the status check. */
static size_t on_status_data(char *bytes, size_t size, size_t n, void *arg)
{
    return cli_buf_append(arg, bytes, size * n) == 0 ? size * n : 0;
}

/* Starts a GET /status on MULTI for T; a failure to start only skips the check. */
static void start_status_check(struct turn *t, CURLM *multi, struct status_check *sc)
{
    sc->body = (struct cli_buf){.max = CLI_MAX_JSON_BYTES};
    sc->easy = cli_server_easy(t->chat->server, "GET", "/status", NULL, &sc->headers);
    if (sc->easy == NULL)
        return;
    curl_easy_setopt(sc->easy, CURLOPT_TIMEOUT_MS, (long)STATUS_TIMEOUT_MS);
    curl_easy_setopt(sc->easy, CURLOPT_WRITEFUNCTION, on_status_data);
    curl_easy_setopt(sc->easy, CURLOPT_WRITEDATA, &sc->body);
    if (curl_multi_add_handle(multi, sc->easy) != CURLM_OK) {
        curl_easy_cleanup(sc->easy);
        sc->easy = NULL;
    }
}

/* Says that model ID is loading, with its PROGRESS (0..1, or null) when the server knows it:
 * redrawn in place on a terminal, else a line at first and at every 10% more. */
static void show_loading(struct turn *t, const char *id, json_t *progress)
{
    double waited_s = (double)(ig_now_us() - t->start_us) / 1e6;
    int percent = json_is_number(progress) ? (int)(json_number_value(progress) * 100) : -1;
    char done[16] = "";

    if (percent >= 0)
        snprintf(done, sizeof(done), " %d%%", percent);
    if (t->chat->is_tty) {
        fprintf(stderr, "\r\033[2mloading %s...%s %.0fs\033[0m\033[K", id, done, waited_s);
    } else if (!t->is_loading_shown || (percent >= 0 && (t->loading_percent_shown < 0 ||
                                                         percent >= t->loading_percent_shown + 10))) {
        fprintf(stderr, "infergate chat: model '%s' is loading...%s\n", id, done);
        t->loading_percent_shown = percent;
    }
    t->is_loading_shown = true;
}

/* Ends the status check SC; when it says T's model is starting, tells the user. */
static void finish_status_check(struct turn *t, CURLM *multi, struct status_check *sc)
{
    char err[160];
    json_t *doc = NULL, *m;
    size_t i;
    long status = 0;

    curl_easy_getinfo(sc->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200 && sc->body.data != NULL)
        doc = ig_json_parse(sc->body.data, sc->body.len, MAX_JSON_DEPTH, err, sizeof(err));
    json_array_foreach(json_object_get(doc, "models"), i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *state = json_string_value(json_object_get(m, "state"));
        if (id == NULL || state == NULL || strcmp(id, t->chat->model) != 0)
            continue;
        if (strcmp(state, "starting") == 0 && !t->has_head)
            show_loading(t, id, json_object_get(m, "load_progress"));
    }
    json_decref(doc);
    curl_multi_remove_handle(multi, sc->easy);
    curl_easy_cleanup(sc->easy);
    curl_slist_free_all(sc->headers);
    cli_buf_free(&sc->body);
    sc->easy = NULL;
    sc->headers = NULL;
}

/* Runs T's transfer to its end, checking on a slow start; returns the transfer's result
 * (CURLE_ABORTED_BY_CALLBACK after Ctrl-C). */
static CURLcode run_transfer(struct turn *t)
{
    CURLM *multi = curl_multi_init();
    struct status_check sc = {0};
    uint64_t next_check_ms = ig_now_ms() + LOADING_CHECK_MS;
    CURLcode result = CURLE_OUT_OF_MEMORY;
    bool is_finished = false;

    interrupted = 0; /* a Ctrl-C that came as the last reply ended is not for this one */
    if (multi == NULL || curl_multi_add_handle(multi, t->easy) != CURLM_OK)
        goto out;
    while (!is_finished) {
        int running = 0, queued = 0;
        CURLMsg *msg;

        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            if (msg->easy_handle == t->easy) {
                result = msg->data.result;
                is_finished = true;
            } else if (msg->easy_handle == sc.easy) {
                finish_status_check(t, multi, &sc);
                next_check_ms = ig_now_ms() + 1000;
            }
        }
        if (is_finished)
            break;
        if (interrupted) {
            result = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (!t->has_head && sc.easy == NULL && ig_now_ms() >= next_check_ms)
            start_status_check(t, multi, &sc);
        if (curl_multi_poll(multi, NULL, 0, POLL_MS, NULL) != CURLM_OK)
            break;
    }
out:
    if (sc.easy != NULL) {
        curl_multi_remove_handle(multi, sc.easy);
        curl_easy_cleanup(sc.easy);
        curl_slist_free_all(sc.headers);
        cli_buf_free(&sc.body);
    }
    if (multi != NULL) {
        curl_multi_remove_handle(multi, t->easy);
        curl_multi_cleanup(multi);
    }
    return result;
}

/* Returns the request body for the next reply (caller frees), or NULL. */
static char *request_body(const struct chat *c)
{
    json_t *doc = json_pack("{s:s, s:O, s:b, s:{s:b}}", "model", c->model, "messages",
                            c->history, "stream", 1, "stream_options", "include_usage", 1);
    char *text;

    if (doc != NULL && c->max_tokens > 0)
        json_object_set_new(doc, "max_tokens", json_integer(c->max_tokens));
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* Shows the reply of a 200 answer that was not a stream (a server that ignored stream). */
static void show_plain_answer(struct turn *t)
{
    char err[160];
    json_t *doc = ig_json_parse(t->body.data != NULL ? t->body.data : "", t->body.len,
                                MAX_JSON_DEPTH, err, sizeof(err));
    json_t *msg = json_object_get(json_array_get(json_object_get(doc, "choices"), 0), "message");
    const char *text = json_string_value(json_object_get(msg, "content"));

    if (text != NULL) {
        t->chunks++;
        show_text(t, text, false);
    }
    take_usage(t, json_object_get(doc, "usage"));
    t->end_us = ig_now_us();
    json_decref(doc);
}

/* Prints the line with the time to the first token and the speed of T's reply. */
static void print_stats(const struct turn *t)
{
    long tokens = t->completion_tokens >= 0 ? t->completion_tokens : t->chunks;
    uint64_t end_us = t->end_us > 0 ? t->end_us : ig_now_us();
    uint64_t first_us = t->first_token_us > 0 ? t->first_token_us : end_us;
    double gen_s = (double)(end_us - first_us) / 1e6;
    char rate[32] = "-";

    if (gen_s < 0.001)
        gen_s = (double)(end_us - t->start_us) / 1e6;
    if (gen_s > 0 && tokens > 0)
        snprintf(rate, sizeof(rate), "%.1f", (double)tokens / gen_s);
    fprintf(stderr, "%s[%s: %ld %s, TTFT %.0f ms, %s tok/s]%s\n", t->chat->is_tty ? "\033[2m" : "",
            t->chat->model, tokens, t->completion_tokens >= 0 ? "tokens" : "chunks",
            (double)(first_us - t->start_us) / 1000.0, rate, t->chat->is_tty ? "\033[0m" : "");
}

/* Reports a failed turn; returns whether the failure ends the chat. */
static bool report_failure(struct chat *c, const char *text, long status)
{
    bool is_fatal = status == 401 || status == 403 || (status == 404 && !c->is_tty);

    fprintf(stderr, "infergate chat: %s\n", text != NULL ? text : "out of memory");
    c->has_failed = true;
    if (status == 404 && c->is_tty && c->previous_model != NULL) {
        fprintf(stderr, "infergate chat: back to model '%s'\n", c->previous_model);
        free(c->model);
        c->model = c->previous_model;
        c->previous_model = NULL;
    } else if (status == 404 && c->is_tty) {
        is_fatal = true;
    }
    return is_fatal;
}

/* Sends the conversation, shows the reply and keeps it. Returns 0, or -1 when the chat must
 * end (a fatal error). */
static int turn(struct chat *c)
{
    struct turn t = {.chat = c,
                     .body = {.max = MAX_BODY_BYTES},
                     .reply = {.max = MAX_REPLY_BYTES},
                     .completion_tokens = -1,
                     .loading_percent_shown = -1};
    struct curl_slist *headers = NULL;
    char *body = request_body(c), *text = NULL, errbuf[CURL_ERROR_SIZE] = "";
    bool is_ok = false, is_fatal = false;
    CURLcode result;

    t.sse = cli_sse_new(MAX_EVENT_BYTES, on_event, &t);
    t.easy = body != NULL ? cli_server_easy(c->server, "POST", "/v1/chat/completions", body,
                                            &headers)
                          : NULL;
    if (t.sse == NULL || t.easy == NULL) {
        is_fatal = report_failure(c, "out of memory", 0);
        goto out;
    }
    curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(t.easy, CURLOPT_ERRORBUFFER, errbuf);
    t.start_us = ig_now_us();
    result = run_transfer(&t);
    clear_loading(&t);
    if (result == CURLE_OK && t.has_head && !t.is_sse && t.status == 200)
        show_plain_answer(&t);
    /* Whatever came, the next output starts on a line of its own. */
    if (t.reply.len > 0 && !t.ends_with_newline)
        printf("\n");
    fflush(stdout);
    if (result == CURLE_ABORTED_BY_CALLBACK) {
        fprintf(stderr, "infergate chat: interrupted\n");
        interrupted = 0;
        is_fatal = !c->is_tty;
        goto out;
    }
    if (t.stream_error != NULL) {
        is_fatal = report_failure(c, t.stream_error, 0);
    } else if (result == CURLE_WRITE_ERROR && t.feed_rc != 0) {
        text = strdup(t.feed_rc == IG_ETOOBIG ? "the reply exceeds the CLI's limits"
                                              : "the server sent an invalid event");
        is_fatal = report_failure(c, text, 0);
    } else if (result != CURLE_OK) {
        text = cli_transport_text(c->server, result, errbuf);
        is_fatal = report_failure(c, text, 0) || result == CURLE_COULDNT_CONNECT;
    } else if (t.status != 200) {
        text = cli_error_text(t.status, t.body.data, t.body.len);
        is_fatal = report_failure(c, text, t.status);
    } else {
        if (t.reply.len == 0)
            printf("\n"); /* one line per reply, even an empty one */
        fflush(stdout);
        print_stats(&t);
        is_ok = true;
    }
out:
    if (is_ok) {
        json_array_append_new(c->history,
                              json_pack("{s:s, s:s}", "role", "assistant", "content",
                                        t.reply.data != NULL ? t.reply.data : ""));
    } else {
        /* The user message that got no answer is not kept. */
        json_array_remove(c->history, json_array_size(c->history) - 1);
    }
    free(text);
    free(body);
    free(t.stream_error);
    cli_buf_free(&t.body);
    cli_buf_free(&t.reply);
    cli_sse_free(t.sse);
    curl_slist_free_all(headers);
    curl_easy_cleanup(t.easy);
    return is_fatal ? -1 : 0;
}

/* Empties the conversation, keeping the system message if there is one. */
static void reset_history(struct chat *c)
{
    json_array_clear(c->history);
    if (c->system != NULL)
        json_array_append_new(c->history,
                              json_pack("{s:s, s:s}", "role", "system", "content", c->system));
}

/* Runs the /command LINE; returns 1 to end the chat, 0 to go on. */
static int command(struct chat *c, const char *line)
{
    if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0 || strcmp(line, "/q") == 0)
        return 1;
    if (strcmp(line, "/reset") == 0) {
        reset_history(c);
        if (c->is_tty)
            fprintf(stderr, "(conversation cleared)\n");
    } else if (strncmp(line, "/model ", 7) == 0 && line[7] != '\0') {
        char *name = strdup(line + 7);
        if (name == NULL)
            return 1;
        free(c->previous_model);
        c->previous_model = c->model;
        c->model = name;
        if (c->is_tty)
            fprintf(stderr, "(now talking to %s)\n", name);
    } else if (strcmp(line, "/help") == 0) {
        fprintf(stderr, "%s", usage_text);
    } else {
        fprintf(stderr, "infergate chat: unknown command '%s' (/model NAME, /reset, /quit, "
                        "/help)\n", line);
    }
    return 0;
}

/* Reads lines and answers them until EOF, /quit or a fatal error; returns the exit code. */
static int chat_loop(struct chat *c)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;

    for (;;) {
        ssize_t n;
        if (c->is_tty) {
            printf("\033[1m%s>\033[0m ", c->model);
            fflush(stdout);
        }
        n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (c->is_tty)
                printf("\n");
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if ((size_t)n > MAX_LINE_BYTES) {
            fprintf(stderr, "infergate chat: a message is limited to 1 MiB\n");
            c->has_failed = true;
            continue;
        }
        if (n == 0)
            continue;
        if (line[0] == '/' && line[1] != '/') {
            if (command(c, line) != 0)
                break;
            continue;
        }
        json_array_append_new(c->history, json_pack("{s:s, s:s}", "role", "user", "content",
                                                    line[0] == '/' ? line + 1 : line));
        if (turn(c) != 0) {
            rc = 1;
            break;
        }
    }
    free(line);
    if (rc == 0 && c->has_failed && !c->is_tty)
        rc = 1;
    return rc;
}

int cli_chat(int argc, char **argv)
{
    struct chat c = {.server = cli_server_new(), .is_tty = isatty(STDIN_FILENO) == 1};
    struct sigaction sa = {.sa_handler = on_sigint};
    int rc = 2;

    if (c.server == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
        int taken = cli_server_option(c.server, argc, argv, &i);
        char *end = NULL;
        if (taken < 0)
            goto out;
        if (taken > 0)
            continue;
        if (strcmp(argv[i], "--system") == 0 && i + 1 < argc) {
            c.system = argv[++i];
        } else if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc) {
            c.max_tokens = strtol(argv[++i], &end, 10);
            if (*end != '\0' || c.max_tokens <= 0) {
                fprintf(stderr, "infergate chat: --max-tokens: expected a number > 0\n");
                goto out;
            }
        } else if (argv[i][0] != '-' && c.model == NULL) {
            c.model = strdup(argv[i]);
        } else {
            fprintf(stderr, "infergate chat: unexpected argument '%s'\n%s", argv[i], usage_text);
            goto out;
        }
    }
    if (c.model == NULL) {
        fprintf(stderr, "%s", usage_text);
        goto out;
    }
    c.history = json_array();
    reset_history(&c);
    /* No SA_RESTART: Ctrl-C at the prompt ends the blocked read, which ends the chat. */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (c.is_tty)
        fprintf(stderr, "chatting with %s at %s; /help for commands, Ctrl-D to quit\n", c.model,
                cli_server_url(c.server));
    rc = chat_loop(&c);
out:
    json_decref(c.history);
    free(c.model);
    free(c.previous_model);
    cli_server_free(c.server);
    return rc;
}
