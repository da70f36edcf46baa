/* Unit tests for the gateway's token meter: usage from JSON bodies and SSE streams, split
 * anywhere; counting when the upstream reports nothing; caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw_meter.h"

#include <stdlib.h>
#include <string.h>

/* Meters TEXT fed in pieces of STEP bytes; returns prompt and completion. */
static void meter(bool is_stream, const char *text, size_t step, uint64_t *p, uint64_t *c)
{
    struct gw_meter m;
    size_t len = strlen(text);

    gw_meter_init(&m, is_stream, 7);
    for (size_t i = 0; i < len; i += step)
        gw_meter_feed(&m, text + i, len - i < step ? len - i : step);
    gw_meter_finish(&m, p, c);
}

static void test_meter_reads_usage_of_a_json_body(void **state)
{
    uint64_t p, c;
    (void)state;
    meter(false, "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,"
                 "\"total_tokens\":17}}", 3, &p, &c);
    assert_int_equal(p, 12);
    assert_int_equal(c, 5);
    meter(false, "{\"object\":\"list\",\"usage\":{\"prompt_tokens\":9,\"total_tokens\":9}}", 100,
          &p, &c);
    assert_int_equal(p, 9); /* embeddings */
    assert_int_equal(c, 0);
    meter(false, "{\"content\":\"x\",\"tokens_evaluated\":4,\"tokens_predicted\":2}", 1, &p, &c);
    assert_int_equal(p, 4); /* llama.cpp /completion */
    assert_int_equal(c, 2);
    /* Text that quotes "usage" is not mistaken for the usage object. */
    meter(false, "{\"choices\":[{\"message\":{\"content\":\"the \\\"usage\\\": {\\\"prompt_tokens\\\": 99}\"}}],"
                 "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}", 7, &p, &c);
    assert_int_equal(p, 2);
    assert_int_equal(c, 3);
    meter(false, "{\"choices\":[{\"message\":{\"content\":\"the \\\"usage\\\": {\\\"prompt_tokens\\\": 99, "
                 "\\\"completion_tokens\\\": 9}\"}}]}", 5, &p, &c);
    assert_int_equal(p, 7); /* no usage object: the estimate, not the quoted text's 99 */
    assert_int_equal(c, 0);
    meter(false, "not json", 2, &p, &c);
    assert_int_equal(p, 7); /* nothing reported: the request's estimate */
    assert_int_equal(c, 0);
}

static void test_meter_reads_stream_usage_split_anywhere(void **state)
{
    static const char stream[] =
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":2}}\n\n"
        "data: [DONE]\n\n";
    uint64_t p, c;
    (void)state;
    for (size_t step = 1; step < sizeof(stream); step += 7) {
        meter(true, stream, step, &p, &c);
        assert_int_equal(p, 30);
        assert_int_equal(c, 2);
    }
}

static void test_meter_counts_chunks_without_usage(void **state)
{
    uint64_t p, c;
    (void)state;
    meter(true,
          "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
          "data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\n"
          "data: {\"choices\":[{\"text\":\"b\"}]}\n\n"
          ": comment\n\n"
          "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}", /* no final newline */
          5, &p, &c);
    assert_int_equal(p, 7);
    assert_int_equal(c, 3);
    /* llama.cpp's timings in the last chunk are taken when there is no usage. */
    meter(true, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"timings\":{\"prompt_n\":11,"
                "\"predicted_n\":1}}\n\n", 4, &p, &c);
    assert_int_equal(p, 11);
    assert_int_equal(c, 1);
}

static void test_meter_caps_what_it_buffers(void **state)
{
    size_t n = GW_METER_MAX_LINE + 100;
    char *line = malloc(n + 16);
    uint64_t p, c;
    struct gw_meter m;
    (void)state;
    memcpy(line, "data: ", 6);
    memset(line + 6, 'x', n - 6);
    memcpy(line + n, "\n\n", 3);
    meter(true, line, 4096, &p, &c);
    assert_int_equal(c, 1); /* an oversized event counts as text, unparsed */
    gw_meter_init(&m, false, 3);
    for (size_t i = 0; i < GW_METER_MAX_BODY / 4096 + 2; i++)
        gw_meter_feed(&m, line, 4096);
    gw_meter_finish(&m, &p, &c);
    assert_int_equal(p, 3); /* too large to parse, no usage in its tail: estimates */
    assert_int_equal(c, (GW_METER_MAX_BODY / 4096 + 2) * 4096 / 4);
    /* A large body (logprobs, long text) still has its usage read from the tail. */
    gw_meter_init(&m, false, 3);
    gw_meter_feed(&m, "{\"choices\":[{\"text\":\"", 21);
    for (size_t i = 0; i < GW_METER_MAX_BODY / 4096 + 2; i++)
        gw_meter_feed(&m, line + 6, 4096);
    static const char end[] = "\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":70000}}";
    for (size_t i = 0; i < sizeof(end) - 1; i += 10)
        gw_meter_feed(&m, end + i, sizeof(end) - 1 - i < 10 ? sizeof(end) - 1 - i : 10);
    gw_meter_finish(&m, &p, &c);
    assert_int_equal(p, 5);
    assert_int_equal(c, 70000);
    free(line);
    assert_int_equal(gw_meter_estimate_tokens(0), 0);
    assert_int_equal(gw_meter_estimate_tokens(9), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meter_reads_usage_of_a_json_body),
        cmocka_unit_test(test_meter_reads_stream_usage_split_anywhere),
        cmocka_unit_test(test_meter_counts_chunks_without_usage),
        cmocka_unit_test(test_meter_caps_what_it_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
