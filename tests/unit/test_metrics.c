/* Unit tests for src/metrics: exposition text of counters, gauges and histograms, label
 * escaping, and the cap on label sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders M into a NUL-terminated string (caller frees). */
static char *render(struct metrics *m)
{
    struct evbuffer *out = evbuffer_new();
    size_t n;
    char *text;

    assert_int_equal(metrics_render(m, out), 0);
    n = evbuffer_get_length(out);
    text = calloc(1, n + 1);
    evbuffer_remove(out, text, n);
    evbuffer_free(out);
    return text;
}

static void test_metrics_renders_counters_gauges_and_escaped_labels(void **state)
{
    (void)state;
    static const char *const labels[] = {"model", "status"};
    struct metrics *m = metrics_new();
    struct metric_family *c = metrics_family(m, METRIC_COUNTER, "t_requests_total", "Requests.",
                                             2, labels, NULL, 0);
    struct metric_family *g = metrics_family(m, METRIC_GAUGE, "t_up", "Up.", 0, NULL, NULL, 0);
    char *text;

    metric_add(metric_series(c, (const char *[]){"a", "200"}), 1);
    metric_add(metric_series(c, (const char *[]){"a", "200"}), 2);
    metric_add(metric_series(c, (const char *[]){"we\"ird\\\n", "500"}), 1);
    metric_set(metric_series(g, NULL), 0.25);
    text = render(m);
    assert_non_null(strstr(text, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(text, "t_requests_total{model=\"a\",status=\"200\"} 3\n"));
    assert_non_null(strstr(text, "t_requests_total{model=\"we\\\"ird\\\\\\n\",status=\"500\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE t_up gauge\nt_up 0.25\n"));
    free(text);
    metric_family_clear(g);
    text = render(m);
    assert_null(strstr(text, "t_up 0.25"));
    free(text);
    metrics_free(m);
}

static void test_metrics_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    static const char *const labels[] = {"model"};
    static const double bounds[] = {0.1, 1};
    struct metrics *m = metrics_new();
    struct metric_family *h = metrics_family(m, METRIC_HISTOGRAM, "t_seconds", "Time.", 1,
                                             labels, bounds, 2);
    struct metric_series *s = metric_series(h, (const char *[]){"a"});
    char *text;

    metric_observe(s, 0.05);
    metric_observe(s, 0.1); /* on the bound: counted in it */
    metric_observe(s, 0.5);
    metric_observe(s, 7);
    text = render(m);
    assert_non_null(strstr(text, "t_seconds_bucket{model=\"a\",le=\"0.1\"} 2\n"
                                 "t_seconds_bucket{model=\"a\",le=\"1\"} 3\n"
                                 "t_seconds_bucket{model=\"a\",le=\"+Inf\"} 4\n"
                                 "t_seconds_sum{model=\"a\"} 7.65\n"
                                 "t_seconds_count{model=\"a\"} 4\n"));
    free(text);
    metrics_free(m);
}

static void test_metrics_caps_label_sets_into_other(void **state)
{
    (void)state;
    static const char *const labels[] = {"model"};
    struct metrics *m = metrics_new();
    struct metric_family *c = metrics_family(m, METRIC_COUNTER, "t_total", "T.", 1, labels,
                                             NULL, 0);
    char name[32], *text;

    for (int i = 0; i < METRICS_MAX_SERIES + 50; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        metric_add(metric_series(c, (const char *[]){name}), 1);
    }
    text = render(m);
    assert_non_null(strstr(text, "t_total{model=\"m0\"} 1\n"));
    assert_null(strstr(text, "model=\"m2040\""));
    /* The cap leaves room for "other" by taking the first METRICS_MAX_SERIES sets. */
    assert_non_null(strstr(text, "t_total{model=\"other\"} 50\n"));
    free(text);
    metrics_free(m);
    metrics_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_renders_counters_gauges_and_escaped_labels),
        cmocka_unit_test(test_metrics_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_metrics_caps_label_sets_into_other),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
