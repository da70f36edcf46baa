/* Unit tests for the strict multipart/form-data parser of file uploads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "batch_multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT "multipart/form-data; boundary=XyZ"

/* Parses BODY sent with CONTENT_TYPE into PARTS; returns the rc (the cause is freed). */
static int parse(const char *content_type, const char *body, struct batch_mp_part *parts,
                 size_t *n)
{
    char *cause = NULL;
    int rc = batch_multipart_parse(content_type, body, strlen(body), parts, BATCH_MP_MAX_PARTS, n,
                                   &cause);
    if (rc != 0)
        assert_non_null(cause);
    free(cause);
    return rc;
}

static void test_batch_multipart_reads_fields_and_file(void **state)
{
    struct batch_mp_part parts[BATCH_MP_MAX_PARTS];
    size_t n = 0;
    const char *body = "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                       "batch\r\n"
                       "--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
                       "Content-Type: application/octet-stream\r\n\r\n"
                       "{\"a\":1}\r\n--X\n{\"b\":2}\n\r\n"
                       "--XyZ--\r\n";
    (void)state;
    assert_int_equal(parse(CT, body, parts, &n), 0);
    assert_int_equal(n, 2);
    const struct batch_mp_part *purpose = batch_mp_find(parts, n, "purpose");
    const struct batch_mp_part *file = batch_mp_find(parts, n, "file");
    assert_non_null(purpose);
    assert_false(purpose->has_filename);
    assert_int_equal(purpose->len, 5);
    assert_memory_equal(purpose->data, "batch", 5);
    assert_non_null(file);
    assert_true(file->has_filename);
    assert_string_equal(file->filename, "in.jsonl");
    assert_int_equal(file->len, strlen("{\"a\":1}\r\n--X\n{\"b\":2}\n"));
    assert_null(batch_mp_find(parts, n, "other"));
}

static void test_batch_multipart_takes_a_quoted_boundary(void **state)
{
    struct batch_mp_part parts[BATCH_MP_MAX_PARTS];
    size_t n = 0;
    (void)state;
    assert_int_equal(parse("multipart/form-data; boundary=\"a b\"",
                           "--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--",
                           parts, &n),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(parts[0].name, "x");
    assert_int_equal(parts[0].len, 1);
}

static void test_batch_multipart_rejects_malformed_bodies(void **state)
{
    struct batch_mp_part parts[BATCH_MP_MAX_PARTS];
    size_t n = 0;
    (void)state;
    assert_int_equal(parse("application/json", "{}", parts, &n), IG_EINVAL);
    assert_int_equal(parse("multipart/form-data", "--XyZ--", parts, &n), IG_EINVAL);
    assert_int_equal(parse(CT, "junk--XyZ--", parts, &n), IG_EINVAL);
    /* No closing boundary. */
    assert_int_equal(parse(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
                           parts, &n),
                     IG_EINVAL);
    /* A part without a name, without a disposition, with a bare LF. */
    assert_int_equal(parse(CT, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--",
                           parts, &n),
                     IG_EINVAL);
    assert_int_equal(parse(CT, "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", parts,
                           &n),
                     IG_EINVAL);
    assert_int_equal(parse(CT, "--XyZ\nContent-Disposition: form-data; name=a\n\nx\n--XyZ--",
                           parts, &n),
                     IG_EINVAL);
    /* An unterminated quoted name. */
    assert_int_equal(parse(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n"
                               "--XyZ--", parts, &n),
                     IG_EINVAL);
}

static void test_batch_multipart_caps_parts_and_headers(void **state)
{
    struct batch_mp_part parts[BATCH_MP_MAX_PARTS];
    size_t n = 0, len = 0;
    char *body = malloc(64 * 1024);
    (void)state;
    assert_non_null(body);
    for (int i = 0; i <= BATCH_MP_MAX_PARTS; i++)
        len += (size_t)snprintf(body + len, 64 * 1024 - len,
                                "--XyZ\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n",
                                i);
    snprintf(body + len, 64 * 1024 - len, "--XyZ--");
    assert_int_equal(parse(CT, body, parts, &n), IG_EINVAL);
    /* Part headers beyond BATCH_MP_MAX_HEAD. */
    len = (size_t)snprintf(body, 64 * 1024, "--XyZ\r\nContent-Disposition: form-data; name=a\r\nX: ");
    memset(body + len, 'h', BATCH_MP_MAX_HEAD + 10);
    len += BATCH_MP_MAX_HEAD + 10;
    snprintf(body + len, 64 * 1024 - len, "\r\n\r\nv\r\n--XyZ--");
    assert_int_equal(parse(CT, body, parts, &n), IG_EINVAL);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_multipart_reads_fields_and_file),
        cmocka_unit_test(test_batch_multipart_takes_a_quoted_boundary),
        cmocka_unit_test(test_batch_multipart_rejects_malformed_bodies),
        cmocka_unit_test(test_batch_multipart_caps_parts_and_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
