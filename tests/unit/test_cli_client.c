/* Unit tests for the CLI's client pieces: the SSE parser, number formatting, error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli_fmt.h"
#include "cli_http.h"
#include "cli_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The events a parser delivered, joined with '|'. */
struct seen {
    char text[1024];
    int count;
    int stop_at; /* return 7 from this event on (1-based), 0: never */
};

static int collect(const char *data, size_t len, void *arg)
{
    struct seen *s = arg;
    size_t used = strlen(s->text);

    assert_int_equal(strlen(data), len);
    snprintf(s->text + used, sizeof(s->text) - used, "%s%s", s->count > 0 ? "|" : "", data);
    s->count++;
    return s->stop_at > 0 && s->count >= s->stop_at ? 7 : 0;
}

/* Feeds TEXT to a new parser in pieces of PIECE bytes; returns the last feed's result. */
static int feed_in_pieces(struct seen *s, const char *text, size_t piece, size_t max)
{
    struct cli_sse *p = cli_sse_new(max, collect, s);
    size_t n = strlen(text);
    int rc = 0;

    assert_non_null(p);
    for (size_t i = 0; i < n && rc == 0; i += piece)
        rc = cli_sse_feed(p, text + i, n - i < piece ? n - i : piece);
    cli_sse_free(p);
    return rc;
}

static void test_sse_events_survive_any_split(void **state)
{
    const char *stream = "data: {\"a\":1}\n\n: comment\n\ndata:b\r\ndata: c\r\n\r\n"
                         "event: x\nid: 4\ndata: [DONE]\r\rdata: unfinished";
    (void)state;
    for (size_t piece = 1; piece <= strlen(stream); piece++) {
        struct seen s = {0};
        assert_int_equal(feed_in_pieces(&s, stream, piece, 64), 0);
        assert_string_equal(s.text, "{\"a\":1}|b\nc|[DONE]");
        assert_int_equal(s.count, 3);
    }
}

static void test_sse_callback_result_stops_parsing(void **state)
{
    struct seen s = {.stop_at = 1};
    (void)state;
    assert_int_equal(feed_in_pieces(&s, "data: one\n\ndata: two\n\n", 100, 64), 7);
    assert_string_equal(s.text, "one");
}

static void test_sse_caps_lines_and_events(void **state)
{
    char line[200];
    struct seen s = {0};
    (void)state;
    memset(line, 'x', sizeof(line));
    memcpy(line, "data: ", 6);
    line[sizeof(line) - 1] = '\0';
    assert_int_equal(feed_in_pieces(&s, line, 7, 64), IG_ETOOBIG);
    /* Two lines that fit one by one but not joined. */
    assert_int_equal(feed_in_pieces(&s, "data: 0123456789\ndata: 0123456789\n\n", 3, 16),
                     IG_ETOOBIG);
    assert_int_equal(s.count, 0);
}

static void test_fmt_bytes_durations_rates(void **state)
{
    char buf[32];
    (void)state;
    cli_fmt_bytes(512, buf, sizeof(buf));
    assert_string_equal(buf, "512 B");
    cli_fmt_bytes(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1.50 KiB");
    cli_fmt_bytes(12900000, buf, sizeof(buf));
    assert_string_equal(buf, "12.3 MiB");
    cli_fmt_bytes(4370000000ULL, buf, sizeof(buf));
    assert_string_equal(buf, "4.07 GiB");
    cli_fmt_duration(0.84, buf, sizeof(buf));
    assert_string_equal(buf, "0.8s");
    cli_fmt_duration(192, buf, sizeof(buf));
    assert_string_equal(buf, "3m12s");
    cli_fmt_duration(7500, buf, sizeof(buf));
    assert_string_equal(buf, "2h05m");
    cli_fmt_duration(-1, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    cli_fmt_rate(12.44, buf, sizeof(buf));
    assert_string_equal(buf, "12.4");
    cli_fmt_rate(-1, buf, sizeof(buf));
    assert_string_equal(buf, "-");
}

static void test_error_text_reads_openai_errors(void **state)
{
    const char *body =
        "{\"error\":{\"message\":\"no such model\",\"type\":\"invalid_request_error\","
        "\"code\":\"model_not_found\"}}";
    char *text;
    (void)state;
    text = cli_error_text(404, body, strlen(body));
    assert_string_equal(text, "no such model (HTTP 404, model_not_found)");
    free(text);
    body = "{\"error\":{\"message\":\"bad key\"}}";
    text = cli_error_text(401, body, strlen(body));
    assert_non_null(strstr(text, "bad key (HTTP 401)"));
    assert_non_null(strstr(text, "INFERGATE_TOKEN"));
    free(text);
    text = cli_error_text(502, "<html>\r\nBad Gateway</html>", 26);
    assert_string_equal(text, "<html>  Bad Gateway</html> (HTTP 502)");
    free(text);
}

static void test_buf_refuses_past_its_cap(void **state)
{
    struct cli_buf b = {.max = 8};
    (void)state;
    assert_int_equal(cli_buf_append(&b, "12345", 5), 0);
    assert_int_equal(cli_buf_append(&b, "678", 3), 0);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(cli_buf_append(&b, "9", 1), IG_ETOOBIG);
    assert_int_equal(b.len, 8);
    cli_buf_free(&b);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_events_survive_any_split),
        cmocka_unit_test(test_sse_callback_result_stops_parsing),
        cmocka_unit_test(test_sse_caps_lines_and_events),
        cmocka_unit_test(test_fmt_bytes_durations_rates),
        cmocka_unit_test(test_error_text_reads_openai_errors),
        cmocka_unit_test(test_buf_refuses_past_its_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
