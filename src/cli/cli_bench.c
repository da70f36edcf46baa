/*
 * `infergate bench MODEL`: a small load generator against a running server. N chat
 * completions go out with at most C in flight (one libcurl multi handle, which keeps the
 * connections alive between requests); it prints the request rate, latency and, streamed,
 * time-to-first-token percentiles, and the completion tokens per second (from each answer's
 * usage, or counted chunks when a stream reports none). One unmeasured request goes first,
 * so that loading the model is not part of the figures (--no-warmup to include it). The run
 * is bounded: N and C are capped, and whatever is in flight at --timeout counts as failed.
 */
#include "cli.h"
#include "cli_http.h"
#include "cli_sse.h"
#include "ig_json.h"
#include "ig_time.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REQUESTS 1000000L
#define MAX_CONCURRENCY 1024L
#define MAX_TIMEOUT_S 86400.0
#define MAX_BODY_BYTES (4u << 20)
#define MAX_EVENT_BYTES (1u << 20)
#define MAX_JSON_DEPTH 64
#define MAX_STATUSES 16
#define POLL_MS 100

static const char usage_text[] =
    "usage: infergate bench MODEL [-n REQUESTS] [-c CONCURRENCY] [--stream] [--max-tokens N]\n"
    "                       [--prompt TEXT] [--timeout SECONDS] [--no-warmup] [--json]\n"
    "                       " CLI_SERVER_USAGE "\n";

static volatile sig_atomic_t interrupted;

/* SIGINT: stop sending, report what finished. */
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* One request in flight. */
struct slot {
    struct bench *bench;
    CURL *easy;
    struct curl_slist *headers;
    struct cli_sse *sse;
    struct cli_buf body;
    bool has_head, is_sse;
    long status;
    uint64_t start_us, first_us;
    long chunks, tokens; /* tokens: from usage, -1 when none came */
    char *stream_error;
};

/* The run: options, slots and results. */
struct bench {
    struct cli_server *server;
    const char *model, *prompt;
    long n, concurrency, max_tokens;
    double timeout_s;
    bool is_stream, is_json, has_warm_up;
    char *request_body;
    struct slot *slots;
    long started, finished, ok;
    double *latency_ms, *ttft_ms; /* of successful requests, n_ok of each */
    long n_ttft;
    long long tokens;
    bool has_counted_chunks; /* some tokens were counted chunks, not usage */
    long statuses[MAX_STATUSES][2]; /* {status (0: no answer), count} of failures */
    int n_statuses;
    char *first_error;
};

/* Returns the value at percentile PCT of the N sorted values V (nearest rank), or NAN. */
static double percentile(const double *v, long n, double pct)
{
    long rank;

    if (n <= 0)
        return NAN;
    rank = (long)(pct / 100.0 * (double)n);
    if ((double)rank < pct / 100.0 * (double)n)
        rank++; /* the ceiling */
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

/* qsort comparison of doubles. */
static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Handles one SSE event of a streamed answer. */
static int on_event(const char *data, size_t len, void *arg)
{
    struct slot *s = arg;
    char err[160];
    json_t *doc, *delta, *tokens;
    const char *text;

    if (strcmp(data, "[DONE]") == 0)
        return 0;
    doc = ig_json_parse(data, len, MAX_JSON_DEPTH, err, sizeof(err));
    if (doc == NULL)
        return IG_EPROTO;
    if (json_object_get(doc, "error") != NULL && s->stream_error == NULL)
        s->stream_error = cli_error_text(0, data, len);
    delta = json_object_get(json_array_get(json_object_get(doc, "choices"), 0), "delta");
    text = json_string_value(json_object_get(delta, "content"));
    if (text != NULL && text[0] != '\0') {
        if (s->first_us == 0)
            s->first_us = ig_now_us();
        s->chunks++;
    }
    tokens = json_object_get(json_object_get(doc, "usage"), "completion_tokens");
    if (json_is_integer(tokens))
        s->tokens = (long)json_integer_value(tokens);
    json_decref(doc);
    return 0;
}

/* libcurl write callback: SSE for a 200 event stream, collected otherwise. */
static size_t on_data(char *bytes, size_t size, size_t n, void *arg)
{
    struct slot *s = arg;
    size_t len = size * n;

    if (!s->has_head) {
        const char *type = NULL;
        s->has_head = true;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
        curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &type);
        s->is_sse = s->status == 200 && type != NULL &&
                    strncasecmp(type, "text/event-stream", 17) == 0;
    }
    if (s->is_sse)
        return cli_sse_feed(s->sse, bytes, len) == 0 ? len : 0;
    return cli_buf_append(&s->body, bytes, len) == 0 ? len : 0;
}

/* libcurl write callback collecting an answer into a struct cli_buf. */
static size_t on_answer(char *bytes, size_t size, size_t n, void *arg)
{
    return cli_buf_append(arg, bytes, size * n) == 0 ? size * n : 0;
}

/* Starts the next request in slot S; returns 0 or -1. */
static int start(struct bench *b, struct slot *s, CURLM *multi)
{
    *s = (struct slot){.bench = b, .body = {.max = MAX_BODY_BYTES}, .tokens = -1};
    s->sse = cli_sse_new(MAX_EVENT_BYTES, on_event, s);
    s->easy = cli_server_easy(b->server, "POST", "/v1/chat/completions", b->request_body,
                              &s->headers);
    if (s->sse == NULL || s->easy == NULL)
        return -1;
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    s->start_us = ig_now_us();
    if (curl_multi_add_handle(multi, s->easy) != CURLM_OK)
        return -1;
    b->started++;
    return 0;
}

/* Releases what slot S holds. */
static void release(struct slot *s, CURLM *multi)
{
    if (s->easy != NULL) {
        curl_multi_remove_handle(multi, s->easy);
        curl_easy_cleanup(s->easy);
    }
    curl_slist_free_all(s->headers);
    cli_sse_free(s->sse);
    cli_buf_free(&s->body);
    free(s->stream_error);
    *s = (struct slot){0};
}

/* Counts a failed request of HTTP STATUS (0: none), keeping the first reason, TEXT (taken). */
static void count_failure(struct bench *b, long status, char *text)
{
    int i;

    for (i = 0; i < b->n_statuses && b->statuses[i][0] != status; i++)
        ;
    if (i == b->n_statuses && i < MAX_STATUSES)
        b->statuses[b->n_statuses++][0] = status;
    if (i < MAX_STATUSES)
        b->statuses[i][1]++;
    if (b->first_error == NULL)
        b->first_error = text;
    else
        free(text);
}

/* Records the end of slot S's request with libcurl's RESULT. */
static void record(struct bench *b, struct slot *s, CURLcode result)
{
    uint64_t now = ig_now_us();
    long tokens = s->tokens;

    b->finished++;
    if (result != CURLE_OK) {
        count_failure(b, s->has_head ? s->status : 0,
                      cli_transport_text(b->server, result, NULL));
        return;
    }
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200) {
        count_failure(b, s->status, cli_error_text(s->status, s->body.data, s->body.len));
        return;
    }
    if (s->stream_error != NULL) {
        count_failure(b, 200, s->stream_error);
        s->stream_error = NULL;
        return;
    }
    if (!s->is_sse) {
        char err[160];
        json_t *doc = ig_json_parse(s->body.data != NULL ? s->body.data : "", s->body.len,
                                    MAX_JSON_DEPTH, err, sizeof(err));
        json_t *n = json_object_get(json_object_get(doc, "usage"), "completion_tokens");
        tokens = json_is_integer(n) ? (long)json_integer_value(n) : -1;
        json_decref(doc);
    }
    if (tokens < 0) {
        tokens = s->chunks;
        b->has_counted_chunks = true;
    }
    b->tokens += tokens;
    b->latency_ms[b->ok] = (double)(now - s->start_us) / 1000.0;
    if (s->is_sse && s->first_us > 0)
        b->ttft_ms[b->n_ttft++] = (double)(s->first_us - s->start_us) / 1000.0;
    b->ok++;
}

/* Sends one request that is not measured, so that the model is loaded before the clock
 * starts; returns 0, or -1 after printing why it failed. */
/* libcurl progress callback of the warm-up: Ctrl-C aborts it. */
static int warm_up_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
    (void)arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return interrupted ? 1 : 0;
}

static int warm_up(struct bench *b)
{
    struct curl_slist *headers = NULL;
    struct cli_buf answer = {.max = MAX_BODY_BYTES};
    char *body = NULL, *text = NULL, errbuf[CURL_ERROR_SIZE] = "";
    json_t *doc = json_pack("{s:s, s:[{s:s, s:s}], s:i}", "model", b->model, "messages", "role",
                            "user", "content", b->prompt, "max_tokens", 1);
    CURL *h = NULL;
    CURLcode res;
    long status = 0;
    int rc = -1;

    body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    h = body != NULL ? cli_server_easy(b->server, "POST", "/v1/chat/completions", body, &headers)
                     : NULL;
    if (h == NULL)
        goto out;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(b->timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, warm_up_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    res = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK)
        text = cli_transport_text(b->server, res, errbuf);
    else if (status != 200)
        text = cli_error_text(status, answer.data, answer.len);
    else
        rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "infergate bench: the warm-up request failed: %s\n",
                text != NULL ? text : "out of memory");
    free(text);
    free(body);
    json_decref(doc);
    cli_buf_free(&answer);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

/* Runs the requests; returns the wall time in seconds. */
static double run(struct bench *b)
{
    CURLM *multi = curl_multi_init();
    uint64_t start_us = ig_now_us(), deadline_us = start_us + (uint64_t)(b->timeout_s * 1e6);
    long in_flight = 0;

    if (multi == NULL)
        return 0;
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, b->concurrency);
    for (long i = 0; i < b->concurrency && b->started < b->n; i++) {
        if (start(b, &b->slots[i], multi) != 0) {
            release(&b->slots[i], multi);
            count_failure(b, 0, strdup("out of memory"));
            b->finished++;
            continue;
        }
        in_flight++;
    }
    while (in_flight > 0) {
        int running = 0, queued = 0;
        CURLMsg *msg;

        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
            struct slot *s = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            record(b, s, msg->data.result);
            release(s, multi);
            in_flight--;
            if (b->started < b->n && !interrupted && ig_now_us() < deadline_us) {
                if (start(b, s, multi) == 0)
                    in_flight++;
                else
                    release(s, multi);
            }
        }
        if (in_flight == 0)
            break;
        if (interrupted || ig_now_us() >= deadline_us) {
            for (long i = 0; i < b->concurrency; i++) {
                if (b->slots[i].easy == NULL)
                    continue;
                b->finished++;
                count_failure(b, 0, strdup(interrupted ? "interrupted" : "over --timeout"));
                release(&b->slots[i], multi);
            }
            break;
        }
        curl_multi_poll(multi, NULL, 0, POLL_MS, NULL);
    }
    curl_multi_cleanup(multi);
    return (double)(ig_now_us() - start_us) / 1e6;
}

/* Returns V as a JSON number, or null when it is not one (no samples). */
static json_t *real_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

/* Returns {"p50","p90","p99","max"} of the N sorted values V. */
static json_t *percentiles_json(const double *v, long n)
{
    json_t *obj = json_object();

    json_object_set_new(obj, "p50", real_or_null(percentile(v, n, 50)));
    json_object_set_new(obj, "p90", real_or_null(percentile(v, n, 90)));
    json_object_set_new(obj, "p99", real_or_null(percentile(v, n, 99)));
    json_object_set_new(obj, "max", real_or_null(percentile(v, n, 100)));
    return obj;
}

/* Prints the results of a run that took SECONDS as JSON. */
static void print_json(const struct bench *b, double seconds)
{
    json_t *doc = json_object(), *errors = json_object();

    for (int i = 0; i < b->n_statuses; i++) {
        char key[24];
        snprintf(key, sizeof(key), "%ld", b->statuses[i][0]);
        json_object_set_new(errors, key, json_integer(b->statuses[i][1]));
    }
    json_object_set_new(doc, "model", json_string(b->model));
    json_object_set_new(doc, "requests", json_integer(b->n));
    json_object_set_new(doc, "concurrency", json_integer(b->concurrency));
    json_object_set_new(doc, "stream", json_boolean(b->is_stream));
    json_object_set_new(doc, "ok", json_integer(b->ok));
    json_object_set_new(doc, "failed", json_integer(b->finished - b->ok));
    json_object_set_new(doc, "errors", errors);
    json_object_set_new(doc, "first_error",
                        b->first_error != NULL ? json_string(b->first_error) : json_null());
    json_object_set_new(doc, "seconds", json_real(seconds));
    json_object_set_new(doc, "rps", json_real(seconds > 0 ? (double)b->ok / seconds : 0));
    json_object_set_new(doc, "latency_ms", percentiles_json(b->latency_ms, b->ok));
    json_object_set_new(doc, "ttft_ms",
                        b->is_stream ? percentiles_json(b->ttft_ms, b->n_ttft) : json_null());
    json_object_set_new(doc, "completion_tokens", json_integer(b->tokens));
    json_object_set_new(doc, "tok_per_s",
                        json_real(seconds > 0 ? (double)b->tokens / seconds : 0));
    json_object_set_new(doc, "tokens_from",
                        json_string(b->has_counted_chunks ? "chunks" : "usage"));
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    printf("\n");
    json_decref(doc);
}

/* Prints the results of a run that took SECONDS. */
static void report(struct bench *b, double seconds)
{
    double rps = seconds > 0 ? (double)b->ok / seconds : 0;
    double tps = seconds > 0 ? (double)b->tokens / seconds : 0;
    const double *lat = b->latency_ms, *ttft = b->ttft_ms;

    qsort(b->latency_ms, (size_t)b->ok, sizeof(double), compare_doubles);
    qsort(b->ttft_ms, (size_t)b->n_ttft, sizeof(double), compare_doubles);
    if (b->is_json) {
        print_json(b, seconds);
        return;
    }
    printf("%ld requests to %s at %s, %ld at a time%s\n", b->n, b->model,
           cli_server_url(b->server), b->concurrency, b->is_stream ? ", streamed" : "");
    printf("ok %ld, failed %ld in %.2f s: %.2f req/s\n", b->ok, b->finished - b->ok, seconds,
           rps);
    for (int i = 0; i < b->n_statuses; i++)
        printf("  %ld x %s%ld\n", b->statuses[i][1], b->statuses[i][0] > 0 ? "HTTP " : "no answer",
               b->statuses[i][0]);
    if (b->first_error != NULL)
        printf("  first error: %s\n", b->first_error);
    if (b->ok > 0)
        printf("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", percentile(lat, b->ok, 50),
               percentile(lat, b->ok, 90), percentile(lat, b->ok, 99),
               percentile(lat, b->ok, 100));
    if (b->n_ttft > 0)
        printf("TTFT ms:    p50 %.1f  p90 %.1f  p99 %.1f\n", percentile(ttft, b->n_ttft, 50),
               percentile(ttft, b->n_ttft, 90), percentile(ttft, b->n_ttft, 99));
    printf("tokens: %lld completion, %.1f tok/s (%s)\n", b->tokens, tps,
           b->has_counted_chunks ? "counted chunks" : "from usage");
}

/* Parses a number option's VALUE within [MIN, MAX] into *OUT; returns 0, or 2 after printing
 * the problem. */
static int number(const char *name, const char *value, double min, double max, double *out)
{
    char *end = NULL;
    double v = strtod(value, &end);

    if (end == value || *end != '\0' || !(v >= min && v <= max)) {
        fprintf(stderr, "infergate bench: %s: expected a number from %g to %g, got '%s'\n", name,
                min, max, value);
        return 2;
    }
    *out = v;
    return 0;
}

/* Parses ARGV into B; returns 0, or 2 after printing the problem. */
static int parse(struct bench *b, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int taken = cli_server_option(b->server, argc, argv, &i);
        double x = 0;
        if (taken < 0)
            return 2;
        if (taken > 0)
            continue;
        if (strcmp(a, "-n") == 0 && v != NULL) {
            if (number(a, argv[++i], 1, (double)MAX_REQUESTS, &x) != 0)
                return 2;
            b->n = (long)x;
        } else if (strcmp(a, "-c") == 0 && v != NULL) {
            if (number(a, argv[++i], 1, (double)MAX_CONCURRENCY, &x) != 0)
                return 2;
            b->concurrency = (long)x;
        } else if (strcmp(a, "--max-tokens") == 0 && v != NULL) {
            if (number(a, argv[++i], 1, 1e9, &x) != 0)
                return 2;
            b->max_tokens = (long)x;
        } else if (strcmp(a, "--timeout") == 0 && v != NULL) {
            if (number(a, argv[++i], 0.1, MAX_TIMEOUT_S, &b->timeout_s) != 0)
                return 2;
        } else if (strcmp(a, "--prompt") == 0 && v != NULL) {
            b->prompt = argv[++i];
        } else if (strcmp(a, "--stream") == 0) {
            b->is_stream = true;
        } else if (strcmp(a, "--json") == 0) {
            b->is_json = true;
        } else if (strcmp(a, "--no-warmup") == 0) {
            b->has_warm_up = false;
        } else if (a[0] != '-' && b->model == NULL) {
            b->model = a;
        } else {
            fprintf(stderr, "infergate bench: unexpected argument '%s'\n%s", a, usage_text);
            return 2;
        }
    }
    if (b->model == NULL) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    if (b->concurrency > b->n)
        b->concurrency = b->n;
    return 0;
}

int cli_bench(int argc, char **argv)
{
    struct bench b = {.server = cli_server_new(),
                      .n = 32,
                      .concurrency = 4,
                      .max_tokens = 64,
                      .timeout_s = 300,
                      .has_warm_up = true,
                      .prompt = "Write a short story about a lighthouse keeper."};
    struct sigaction sa = {.sa_handler = on_sigint};
    json_t *body = NULL;
    double seconds;
    int rc = 2;

    if (b.server == NULL)
        return 1;
    if (parse(&b, argc, argv) != 0)
        goto out;
    rc = 1;
    body = json_pack("{s:s, s:[{s:s, s:s}], s:I, s:b}", "model", b.model, "messages", "role",
                     "user", "content", b.prompt, "max_tokens", (json_int_t)b.max_tokens,
                     "stream", b.is_stream);
    if (body != NULL && b.is_stream)
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    b.request_body = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    b.slots = calloc((size_t)b.concurrency, sizeof(*b.slots));
    b.latency_ms = calloc((size_t)b.n, sizeof(double));
    b.ttft_ms = calloc((size_t)b.n, sizeof(double));
    if (b.request_body == NULL || b.slots == NULL || b.latency_ms == NULL || b.ttft_ms == NULL)
        goto out;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (b.has_warm_up && warm_up(&b) != 0)
        goto out;
    seconds = run(&b);
    report(&b, seconds);
    rc = b.ok == b.n ? 0 : 1;
out:
    json_decref(body);
    free(b.request_body);
    free(b.slots);
    free(b.latency_ms);
    free(b.ttft_ms);
    free(b.first_error);
    cli_server_free(b.server);
    return rc;
}
