/* Unit tests for src/common and the supervisor's output ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ig_base64.h"
#include "ig_errbody.h"
#include "ig_error.h"
#include "ig_json.h"
#include "ig_sysmem.h"
#include "ig_text.h"
#include "ig_time.h"
#include "sup_ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_error_table_has_messages(void **state)
{
    (void)state;
    assert_string_equal(ig_strerror(0), "success");
    assert_string_equal(ig_strerror(IG_ENOMEM), "out of memory");
    assert_string_equal(ig_strerror(IG_ESPAWN), "cannot start process");
    assert_string_equal(ig_strerror(-999), "unknown error");
}

static void test_error_body_has_openai_shape(void **state)
{
    char *body = ig_error_body(404, "The model `x` does not exist", "model_not_found");
    json_t *doc = json_loads(body, 0, NULL);
    (void)state;
    assert_non_null(doc);
    json_t *err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "The model `x` does not exist");
    assert_string_equal(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "model_not_found");
    json_decref(doc);
    free(body);
    body = ig_error_body(502, "down", NULL);
    assert_string_equal(body,
                        "{\"error\":{\"message\":\"down\",\"type\":\"server_error\",\"code\":null}}");
    free(body);
    assert_string_equal(ig_error_type(429), "rate_limit_error");
    assert_string_equal(ig_error_type(401), "authentication_error");
}

static void test_json_depth_cap_skips_strings(void **state)
{
    (void)state;
    assert_true(ig_json_depth_ok("{\"a\":[[1]]}", 11, 3));
    assert_false(ig_json_depth_ok("{\"a\":[[1]]}", 11, 2));
    assert_true(ig_json_depth_ok("{\"a\":\"[[[[\\\"[[\"}", 16, 1));
}

static void test_json_parse_reports_errors(void **state)
{
    char err[128];
    char deep[300];
    (void)state;
    json_t *doc = ig_json_parse("{\"model\":\"x\"}", 13, 8, err, sizeof(err));
    assert_non_null(doc);
    json_decref(doc);
    assert_null(ig_json_parse("{\"model\":", 9, 8, err, sizeof(err)));
    assert_non_null(strstr(err, "invalid JSON"));
    memset(deep, '[', sizeof(deep));
    assert_null(ig_json_parse(deep, sizeof(deep), 64, err, sizeof(err)));
    assert_non_null(strstr(err, "deeper than 64"));
}

static void test_base64_matches_rfc4648(void **state)
{
    static const char *const cases[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                           {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                           {"foobar", "Zm9vYmFy"}};
    char out[32];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ig_base64_len(strlen(cases[i][0])), strlen(cases[i][1]));
        ig_base64_encode(cases[i][0], strlen(cases[i][0]), out);
        assert_string_equal(out, cases[i][1]);
    }
}

static void test_replace_all(void **state)
{
    char *s = ig_replace_all("kill ${PID}; wait ${PID}", "${PID}", "4242");
    (void)state;
    assert_string_equal(s, "kill 4242; wait 4242");
    free(s);
    s = ig_replace_all("--port ${PORT}${PORT}", "${PORT}", "");
    assert_string_equal(s, "--port ");
    free(s);
    s = ig_replace_all("no token", "${X}", "y");
    assert_string_equal(s, "no token");
    free(s);
}

/* Writes TEXT to DIR/NAME with MODE. */
static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_sysmem_detects_gpus(void **state)
{
    char root[] = "/tmp/ig-sysmem-XXXXXX", dir[600], *old_path = NULL;
    (void)state;
    assert_non_null(mkdtemp(root));
    /* Two DRM cards with VRAM, a connector entry and a card without the file. */
    const char *dirs[] = {"drm", "drm/card0", "drm/card0/device", "drm/card1", "drm/card1/device",
                          "drm/card0-HDMI-A-1", "drm/card2", "bin"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, dirs[i]);
        assert_int_equal(mkdir(dir, 0700), 0);
    }
    snprintf(dir, sizeof(dir), "%s/drm", root);
    write_file(dir, "card0/device/mem_info_vram_total", "1073741824\n", 0600);
    write_file(dir, "card1/device/mem_info_vram_total", "2147483648\n", 0600);
    write_file(dir, "card0-HDMI-A-1/mem_info_vram_total", "99\n", 0600);
    /* nvidia-smi as the driver prints it: MiB per GPU, one line each. */
    old_path = strdup(getenv("PATH") != NULL ? getenv("PATH") : "/usr/bin:/bin");
    snprintf(dir, sizeof(dir), "%s/bin:/usr/bin:/bin", root);
    setenv("PATH", dir, 1);
    snprintf(dir, sizeof(dir), "%s/bin", root);
    write_file(dir, "nvidia-smi", "#!/bin/sh\necho 81559\necho 81559\n", 0700);
    snprintf(dir, sizeof(dir), "%s/drm", root);
    assert_int_equal(ig_vram_total_bytes(dir), (2ull * 81559 << 20) + (3ull << 30));
    /* A failing nvidia-smi (no driver) counts nothing. */
    snprintf(dir, sizeof(dir), "%s/bin", root);
    write_file(dir, "nvidia-smi", "#!/bin/sh\necho 'NVIDIA-SMI has failed'\nexit 9\n", 0700);
    snprintf(dir, sizeof(dir), "%s/drm", root);
    assert_int_equal(ig_vram_total_bytes(dir), 3ull << 30);
    snprintf(dir, sizeof(dir), "%s/none", root);
    assert_int_equal(ig_vram_total_bytes(dir), 0);
    setenv("PATH", old_path, 1);
    free(old_path);
    assert_true(ig_ram_total_bytes() > (64ull << 20));
    snprintf(dir, sizeof(dir), "rm -rf '%s'", root);
    assert_int_equal(system(dir), 0);
}

static void test_parse_utc_dates_and_times(void **state)
{
    (void)state;
    assert_int_equal(ig_parse_utc("1970-01-02"), 86400);
    assert_int_equal(ig_parse_utc("2027-01-31T12:00:00Z"), 1801396800);
    assert_int_equal(ig_parse_utc("2027-1-31"), -1);
    assert_int_equal(ig_parse_utc("2027-13-01"), -1);
    assert_int_equal(ig_parse_utc("2027-01-31T12:00:00"), -1);
    assert_int_equal(ig_parse_utc("2027-01-31x"), -1);
    assert_int_equal(ig_parse_utc("2027-01-31T12:00:00.250Z"), 1801396800);
    assert_int_equal(ig_parse_utc("2027-01-31T12:00:00.Z"), -1);
    assert_int_equal(ig_parse_utc("2027-01-31T1:2:3Z"), -1);
}

static void test_parse_time_takes_unix_seconds_or_utc(void **state)
{
    char out[IG_UTC_CHARS + 1];
    (void)state;
    assert_int_equal(ig_parse_time("0"), 0);
    assert_int_equal(ig_parse_time("1801396800"), 1801396800);
    assert_int_equal(ig_parse_time("2027-01-31T12:00:00Z"), 1801396800);
    assert_int_equal(ig_parse_time("-5"), -1);
    assert_int_equal(ig_parse_time("12abc"), -1);
    assert_int_equal(ig_parse_time(""), -1);
    assert_int_equal(ig_parse_time("99999999999999999999999"), -1);
    assert_int_equal(ig_parse_time("1801396800123"), 1801396800123LL); /* milliseconds */
    assert_int_equal(ig_parse_int("0"), 0);
    assert_int_equal(ig_parse_int("999999999999999"), IG_PARSE_INT_MAX);
    assert_int_equal(ig_parse_int("1000000000000000"), -1);
    assert_int_equal(ig_parse_int("+1"), -1);
    assert_int_equal(ig_parse_int(" 1"), -1);
    assert_int_equal(ig_parse_int("1 "), -1);
    assert_int_equal(ig_parse_int(""), -1);
    ig_format_utc(1801396800, out);
    assert_string_equal(out, "2027-01-31T12:00:00Z");
    ig_format_utc(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
}

static void test_percent_decode_is_strict(void **state)
{
    char out[16];
    (void)state;
    assert_int_equal(ig_percent_decode("team%20a%2Fb", 12, false, out, sizeof(out)), 8);
    assert_string_equal(out, "team a/b");
    assert_int_equal(ig_percent_decode("a+b", 3, false, out, sizeof(out)), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(ig_percent_decode("a+b", 3, true, out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(ig_percent_decode("%e2%82%ac", 9, false, out, sizeof(out)), 3);
    assert_string_equal(out, "\xe2\x82\xac");
    const char *bad[] = {"%", "%4", "%zz", "a%g1", "%00", "x%2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ig_percent_decode(bad[i], strlen(bad[i]), false, out, sizeof(out)), -1);
    assert_int_equal(ig_percent_decode("0123456789abcdef", 16, false, out, sizeof(out)), -1);
    assert_int_equal(ig_percent_decode("0123456789abcde", 15, false, out, sizeof(out)), 15);
}

static void test_query_param_finds_and_decodes(void **state)
{
    char out[32] = "untouched";
    (void)state;
    assert_int_equal(ig_query_param("a=1&actor=cli%3Aroot&b", "actor", out, sizeof(out)), 1);
    assert_string_equal(out, "cli:root");
    assert_int_equal(ig_query_param("a=1&actor=cli%3Aroot&b", "b", out, sizeof(out)), 1);
    assert_string_equal(out, "");
    assert_int_equal(ig_query_param("xactor=1&act=2", "actor", out, sizeof(out)), 0);
    assert_int_equal(ig_query_param("", "a", out, sizeof(out)), 0);
    assert_int_equal(ig_query_param("a=x+y&a=2", "a", out, sizeof(out)), 1);
    assert_string_equal(out, "x y");
    assert_int_equal(ig_query_param("a=%zz", "a", out, sizeof(out)), -1);
}

static void test_ring_keeps_newest_bytes(void **state)
{
    struct sup_ring *ring = sup_ring_new(16);
    char *tail;
    (void)state;
    sup_ring_append(ring, "line1\nline2\n", 12);
    sup_ring_append(ring, "line3\nline4\n", 12);
    assert_int_equal(sup_ring_size(ring), 16);
    tail = sup_ring_tail(ring, 2);
    assert_string_equal(tail, "line3\nline4\n");
    free(tail);
    tail = sup_ring_tail(ring, 10);
    assert_string_equal(tail, "ne2\nline3\nline4\n");
    free(tail);
    sup_ring_append(ring, "0123456789abcdefXYZ", 19);
    tail = sup_ring_tail(ring, 5);
    assert_string_equal(tail, "3456789abcdefXYZ");
    free(tail);
    sup_ring_free(ring);
    sup_ring_free(NULL);
}

static void test_format_u64_writes_every_digit(void **state)
{
    char num[24];
    (void)state;
    assert_int_equal(ig_format_u64(num, 18446744073709551615ull), 20);
    assert_string_equal(num, "18446744073709551615");
    assert_int_equal(ig_format_u64(num, 0), 1);
    assert_string_equal(num, "0");
}

static void test_concat_cuts_to_fit(void **state)
{
    char out[12];
    (void)state;
    assert_int_equal(ig_concat(out, sizeof(out), (const char *[]){"gw", "-", "42", NULL}), 5);
    assert_string_equal(out, "gw-42");
    assert_int_equal(ig_concat(out, sizeof(out), (const char *[]){"_INBOX.", "abcdef", NULL}),
                     11);
    assert_string_equal(out, "_INBOX.abcd");
    assert_int_equal(ig_concat(out, sizeof(out), (const char *[]){"", NULL}), 0);
    assert_string_equal(out, "");
    assert_int_equal(ig_concat(out, 1, (const char *[]){"x", NULL}), 0);
    assert_string_equal(out, "");
    out[0] = '#';
    assert_int_equal(ig_concat(out, 0, (const char *[]){"x", NULL}), 0);
    assert_int_equal(out[0], '#'); /* nothing written */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table_has_messages),
        cmocka_unit_test(test_error_body_has_openai_shape),
        cmocka_unit_test(test_json_depth_cap_skips_strings),
        cmocka_unit_test(test_json_parse_reports_errors),
        cmocka_unit_test(test_base64_matches_rfc4648),
        cmocka_unit_test(test_replace_all),
        cmocka_unit_test(test_format_u64_writes_every_digit),
        cmocka_unit_test(test_concat_cuts_to_fit),
        cmocka_unit_test(test_ring_keeps_newest_bytes),
        cmocka_unit_test(test_parse_utc_dates_and_times),
        cmocka_unit_test(test_parse_time_takes_unix_seconds_or_utc),
        cmocka_unit_test(test_percent_decode_is_strict),
        cmocka_unit_test(test_query_param_finds_and_decodes),
        cmocka_unit_test(test_sysmem_detects_gpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
