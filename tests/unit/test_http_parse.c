/* Unit tests for the HTTP request head parser and the upstream status line reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_head.h"
#include "http_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses TEXT; returns the rc and leaves HEAD for inspection. */
static int parse(struct http_head *head, const char *text, char **cause)
{
    return http_head_parse_text(head, text, strlen(text), cause);
}

static void test_http_parses_request_line_and_headers(void **state)
{
    struct http_head head;
    (void)state;
    assert_int_equal(parse(&head, "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\n"
                                  "Content-Type:  application/json \r\n\r\n", NULL), 0);
    assert_string_equal(head.method, "POST");
    assert_string_equal(head.path, "/v1/chat/completions");
    assert_string_equal(head.query, "x=1");
    assert_int_equal(head.minor, 1);
    assert_true(head.keep_alive);
    assert_string_equal(http_head_get(&head, "content-type"), "application/json");
    assert_null(http_head_get(&head, "accept"));
    http_head_release(&head);
}

static void test_http_keep_alive_rules(void **state)
{
    struct http_head head;
    (void)state;
    assert_int_equal(parse(&head, "GET / HTTP/1.0\r\n\r\n", NULL), 0);
    assert_false(head.keep_alive);
    http_head_release(&head);
    assert_int_equal(parse(&head, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", NULL), 0);
    assert_true(head.keep_alive);
    http_head_release(&head);
    assert_int_equal(parse(&head, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL),
                     0);
    assert_false(head.keep_alive);
    http_head_release(&head);
}

static void test_http_rejects_malformed_heads(void **state)
{
    static const char *const bad[] = {
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_head head;
        char *cause = NULL;
        assert_int_equal(parse(&head, bad[i], &cause), IG_EPROTO);
        assert_non_null(cause);
        free(cause);
        http_head_release(&head);
    }
}

static void test_http_rejects_other_versions(void **state)
{
    struct http_head head;
    char *cause = NULL;
    (void)state;
    assert_int_equal(parse(&head, "PRI * HTTP/2.0\r\n\r\n", &cause), IG_EPROTO);
    assert_int_equal(head.minor, -1);
    free(cause);
    http_head_release(&head);
}

static void test_http_content_length_checks(void **state)
{
    struct http_head head;
    long long n = 0;
    (void)state;
    assert_int_equal(parse(&head, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n",
                           NULL), 0);
    assert_int_equal(http_head_content_length(&head, &n), 0);
    assert_int_equal(n, 12);
    http_head_release(&head);
    assert_int_equal(parse(&head, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                           NULL), 0);
    assert_int_equal(http_head_content_length(&head, &n), IG_EPROTO);
    http_head_release(&head);
    assert_int_equal(parse(&head, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                                  "Content-Length: 2\r\n\r\n", NULL), 0);
    assert_int_equal(http_head_content_length(&head, &n), IG_EPROTO);
    http_head_release(&head);
    assert_int_equal(parse(&head, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", NULL), 0);
    assert_int_equal(http_head_content_length(&head, &n), 0);
    assert_int_equal(n, -1);
    http_head_release(&head);
}

static void test_http_caps_header_count(void **state)
{
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: x\r\n");
    struct http_head head;
    char *cause = NULL;
    (void)state;
    for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "X-%d: v\r\n", i);
    snprintf(text + n, sizeof(text) - n, "\r\n");
    assert_int_equal(parse(&head, text, &cause), IG_EPROTO);
    assert_string_equal(cause, "too many headers");
    free(cause);
    http_head_release(&head);
}

static void test_http_reads_upstream_status_lines(void **state)
{
    int minor = -1, status = -1;
    (void)state;

    assert_true(http_head_status("HTTP/1.1 200 OK\r\n", &minor, &status));
    assert_int_equal(minor, 1);
    assert_int_equal(status, 200);
    assert_true(http_head_status("HTTP/1.0  503\r\n", &minor, &status));
    assert_int_equal(minor, 0);
    assert_int_equal(status, 503);
    assert_false(http_head_status("HTTP/1.1 099 Odd\r\n", &minor, &status));
    assert_false(http_head_status("HTTP/1.1 20\r\n", &minor, &status));
    assert_false(http_head_status("HTTP/2 200\r\n", &minor, &status));
    assert_false(http_head_status("HTTP/1.", &minor, &status));
    assert_false(http_head_status("", &minor, &status));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parses_request_line_and_headers),
        cmocka_unit_test(test_http_keep_alive_rules),
        cmocka_unit_test(test_http_rejects_malformed_heads),
        cmocka_unit_test(test_http_rejects_other_versions),
        cmocka_unit_test(test_http_content_length_checks),
        cmocka_unit_test(test_http_caps_header_count),
        cmocka_unit_test(test_http_reads_upstream_status_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
