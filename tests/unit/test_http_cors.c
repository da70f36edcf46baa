/* Unit tests for the CORS policy: origin patterns, matching, header sanitising. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_cors.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

static void test_http_cors_pattern_validity(void **state)
{
    (void)state;
    assert_true(http_cors_pattern_is_valid("https://app.example.com"));
    assert_true(http_cors_pattern_is_valid("http://127.0.0.1:5173"));
    assert_true(http_cors_pattern_is_valid("http://[::1]:3000"));
    assert_true(http_cors_pattern_is_valid("https://*.example.com"));
    assert_true(http_cors_pattern_is_valid("chrome-extension://abcdef"));
    assert_true(http_cors_pattern_is_valid("null"));
    assert_false(http_cors_pattern_is_valid("https://app.example.com/"));
    assert_false(http_cors_pattern_is_valid("https://app.example.com/path"));
    assert_false(http_cors_pattern_is_valid("app.example.com"));
    assert_false(http_cors_pattern_is_valid("https://"));
    assert_false(http_cors_pattern_is_valid("https://a.*.com"));
    assert_false(http_cors_pattern_is_valid("https://*"));
    assert_false(http_cors_pattern_is_valid("https://a.com:99999x"));
    assert_false(http_cors_pattern_is_valid("https://a.com:"));
    assert_false(http_cors_pattern_is_valid("https://a b.com"));
    assert_false(http_cors_pattern_is_valid("*"));
}

static void test_http_cors_matching(void **state)
{
    (void)state;
    assert_true(http_cors_origin_matches("https://app.example.com", "https://app.example.com"));
    assert_true(http_cors_origin_matches("https://App.Example.com", "HTTPS://app.example.COM"));
    assert_false(http_cors_origin_matches("https://app.example.com", "http://app.example.com"));
    assert_false(
        http_cors_origin_matches("https://app.example.com", "https://app.example.com:8443"));
    assert_false(
        http_cors_origin_matches("https://app.example.com", "https://app.example.com.evil.net"));
    /* Default ports are what browsers leave out. */
    assert_true(http_cors_origin_matches("https://a.com:443", "https://a.com"));
    assert_true(http_cors_origin_matches("http://a.com", "http://a.com:80"));
    assert_false(http_cors_origin_matches("http://a.com:443", "http://a.com"));
    /* Subdomain wildcard: any depth, never the bare domain, same scheme and port. */
    assert_true(http_cors_origin_matches("https://*.example.com", "https://a.example.com"));
    assert_true(http_cors_origin_matches("https://*.example.com", "https://a.b.example.com"));
    assert_false(http_cors_origin_matches("https://*.example.com", "https://example.com"));
    assert_false(http_cors_origin_matches("https://*.example.com", "https://evilexample.com"));
    assert_false(http_cors_origin_matches("https://*.example.com", "http://a.example.com"));
    assert_false(http_cors_origin_matches("https://*.example.com", "https://a.example.com:8443"));
    assert_false(http_cors_origin_matches("https://*.example.com", "https://*.example.com"));
    /* "null" only matches itself. */
    assert_true(http_cors_origin_matches("null", "null"));
    assert_false(http_cors_origin_matches("https://a.com", "null"));
    assert_false(http_cors_origin_matches("null", "https://a.com"));
}

static void test_http_cors_sanitizes_requested_headers(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(http_cors_sanitize_headers(" authorization ,content-type,, x-stainless-os",
                                                out, sizeof(out)),
                     strlen("authorization, content-type, x-stainless-os"));
    assert_string_equal(out, "authorization, content-type, x-stainless-os");
    /* Names that are not tokens are dropped: nothing can be injected into our response. */
    http_cors_sanitize_headers("a\r\nSet-Cookie: x=1, b, c d, (e)", out, sizeof(out));
    assert_string_equal(out, "b");
    assert_int_equal(http_cors_sanitize_headers("", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* A list that does not fit is cut at a name. */
    assert_int_equal(http_cors_sanitize_headers("aaaa, bbbb, cccc", out, 11), 10);
    assert_string_equal(out, "aaaa, bbbb");
}

static void test_http_cors_policy_allows_listed_origins(void **state)
{
    const char *origins[] = {"https://app.example.com", "https://*.corp.example"};
    struct http_cors_options o = {.origins = origins, .n_origins = 2, .max_age_s = 60};
    struct http_cors *cors = http_cors_new(&o);
    struct evbuffer *out = evbuffer_new();
    char text[256] = "";
    (void)state;

    assert_non_null(cors);
    assert_true(http_cors_origin_allowed(cors, "https://app.example.com"));
    assert_true(http_cors_origin_allowed(cors, "https://x.corp.example"));
    assert_false(http_cors_origin_allowed(cors, "https://evil.example"));
    assert_false(http_cors_origin_allowed(cors, NULL));
    assert_false(http_cors_origin_allowed(cors, ""));
    http_cors_add_response_headers(cors, "https://evil.example", out);
    assert_int_equal(evbuffer_get_length(out), 0);
    http_cors_add_response_headers(cors, "https://app.example.com", out);
    evbuffer_remove(out, text, sizeof(text) - 1);
    assert_string_equal(text, "Access-Control-Allow-Origin: https://app.example.com\r\n"
                              "Vary: Origin\r\n"
                              "Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n");
    http_cors_free(cors);
    evbuffer_free(out);
}

static void test_http_cors_any_origin_answers_star_unless_credentials(void **state)
{
    const char *origins[] = {"https://app.example.com"};
    struct http_cors_options any = {.is_any_origin = true, .max_age_s = 86400};
    struct http_cors_options creds = {
        .origins = origins, .n_origins = 1, .allow_credentials = true};
    struct http_cors *a = http_cors_new(&any), *c = http_cors_new(&creds);
    struct evbuffer *out = evbuffer_new();
    char text[256] = "";
    (void)state;

    http_cors_add_response_headers(a, "https://anything.example", out);
    evbuffer_remove(out, text, sizeof(text) - 1);
    assert_string_equal(text, "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n"
                              "Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n");
    memset(text, 0, sizeof(text));
    http_cors_add_response_headers(c, "https://app.example.com", out);
    evbuffer_remove(out, text, sizeof(text) - 1);
    assert_string_equal(text, "Access-Control-Allow-Origin: https://app.example.com\r\n"
                              "Vary: Origin\r\n"
                              "Access-Control-Expose-Headers: X-Request-Id, Retry-After\r\n"
                              "Access-Control-Allow-Credentials: true\r\n");
    http_cors_free(a);
    http_cors_free(c);
    http_cors_free(NULL);
    evbuffer_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_cors_pattern_validity),
        cmocka_unit_test(test_http_cors_matching),
        cmocka_unit_test(test_http_cors_sanitizes_requested_headers),
        cmocka_unit_test(test_http_cors_policy_allows_listed_origins),
        cmocka_unit_test(test_http_cors_any_origin_answers_star_unless_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
