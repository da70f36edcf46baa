/* Unit tests for the choice between a model's backends: least-loaded prefers a loaded
 * backend, then the lightest, then the fastest; round-robin turns; priority fails over in
 * order; prefix-affinity keeps a prefix on one backend until it is overloaded; full and
 * tripped backends are taken only when nothing else is left, excluded ones never. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw_route.h"

/* A backend with the model loaded (or not) and LOAD requests; AFFINITY its stable id. */
static struct gw_route_cand cand(bool is_ready, int load, uint64_t affinity)
{
    return (struct gw_route_cand){.is_ready = is_ready, .load = load, .affinity_id = affinity};
}

static void test_least_loaded(void **state)
{
    struct gw_route_cand c[3] = {cand(true, 4, 1), cand(true, 1, 2), cand(false, 0, 3)};
    unsigned rotor = 0;
    const char *why;
    (void)state;

    assert_int_equal(gw_route_pick(GW_LEAST_LOADED, c, 3, 0, &rotor, &why), 1);
    c[1].load = 4; /* equal loads: the lower recent TTFT wins */
    c[0].ttft_ms = 80;
    c[1].ttft_ms = 20;
    assert_int_equal(gw_route_pick(GW_LEAST_LOADED, c, 3, 0, &rotor, &why), 1);
    c[0].is_ready = c[1].is_ready = false; /* nothing loaded: the lightest cold one */
    assert_int_equal(gw_route_pick(GW_LEAST_LOADED, c, 3, 0, &rotor, &why), 2);
    assert_string_equal(why, "least-loaded: cold");
}

static void test_ties_turn(void **state)
{
    struct gw_route_cand c[3] = {cand(true, 0, 1), cand(true, 0, 2), cand(true, 0, 3)};
    unsigned rotor = 0, seen[3] = {0};
    const char *why;
    (void)state;

    for (int i = 0; i < 30; i++)
        seen[gw_route_pick(GW_LEAST_LOADED, c, 3, 0, &rotor, &why)]++;
    assert_int_equal(seen[0], 10);
    assert_int_equal(seen[1], 10);
    assert_int_equal(seen[2], 10);
}

static void test_round_robin_and_exclusion(void **state)
{
    struct gw_route_cand c[3] = {cand(true, 9, 1), cand(true, 0, 2), cand(false, 0, 3)};
    unsigned rotor = 0;
    const char *why;
    (void)state;

    assert_int_equal(gw_route_pick(GW_ROUND_ROBIN, c, 3, 0, &rotor, &why), 0);
    assert_int_equal(gw_route_pick(GW_ROUND_ROBIN, c, 3, 0, &rotor, &why), 1);
    assert_int_equal(gw_route_pick(GW_ROUND_ROBIN, c, 3, 0, &rotor, &why), 2);
    c[0].is_excluded = true;
    assert_int_equal(gw_route_pick(GW_ROUND_ROBIN, c, 3, 0, &rotor, &why), 1);
    c[1].is_excluded = c[2].is_excluded = true;
    assert_int_equal(gw_route_pick(GW_ROUND_ROBIN, c, 3, 0, &rotor, &why), -1);
    assert_int_equal(gw_route_pick(GW_LEAST_LOADED, c, 0, 0, &rotor, &why), -1);
}

static void test_priority_fails_over(void **state)
{
    struct gw_route_cand c[3] = {cand(false, 50, 1), cand(true, 0, 2), cand(true, 0, 3)};
    unsigned rotor = 0;
    const char *why;
    (void)state;

    assert_int_equal(gw_route_pick(GW_PRIORITY, c, 3, 0, &rotor, &why), 0);
    c[0].is_tripped = true;
    assert_int_equal(gw_route_pick(GW_PRIORITY, c, 3, 0, &rotor, &why), 1);
    assert_string_equal(why, "priority: failover");
    c[1].is_full = true;
    assert_int_equal(gw_route_pick(GW_PRIORITY, c, 3, 0, &rotor, &why), 2);
    c[2].is_full = true; /* all full or tripped: the first full one */
    assert_int_equal(gw_route_pick(GW_PRIORITY, c, 3, 0, &rotor, &why), 1);
}

static void test_prefix_affinity(void **state)
{
    struct gw_route_cand c[3] = {cand(true, 0, 11), cand(true, 0, 22), cand(true, 0, 33)};
    unsigned rotor = 0, hits[3] = {0};
    const char *why;
    int first;
    (void)state;

    first = gw_route_pick(GW_PREFIX_AFFINITY, c, 3, 12345, &rotor, &why);
    for (int i = 0; i < 10; i++) /* the same prefix, the same backend */
        assert_int_equal(gw_route_pick(GW_PREFIX_AFFINITY, c, 3, 12345, &rotor, &why), first);
    for (uint64_t h = 1; h <= 300; h++) /* different prefixes spread */
        hits[gw_route_pick(GW_PREFIX_AFFINITY, c, 3, h * 7919, &rotor, &why)]++;
    assert_true(hits[0] > 50 && hits[1] > 50 && hits[2] > 50);
    c[first].load = 10; /* overloaded: least-loaded takes over */
    assert_int_not_equal(gw_route_pick(GW_PREFIX_AFFINITY, c, 3, 12345, &rotor, &why), first);
    c[first].load = 2; /* within the slack: stays */
    assert_int_equal(gw_route_pick(GW_PREFIX_AFFINITY, c, 3, 12345, &rotor, &why), first);
}

/* The worker's report already counts our requests that reached it: only ours started or
 * ended since the report change the estimate. */
static void test_load_counts_ours_once(void **state)
{
    struct gw_load l = {0};
    (void)state;

    gw_load_add(&l, 1);
    gw_load_add(&l, 1);
    assert_int_equal(gw_load_estimate(&l), 2);
    gw_load_report(&l, 3); /* our 2 and another gateway's 1 */
    assert_int_equal(gw_load_estimate(&l), 3);
    gw_load_add(&l, 1); /* one more of ours */
    assert_int_equal(gw_load_estimate(&l), 4);
    gw_load_add(&l, -1); /* one that was in the report ends */
    gw_load_add(&l, -1);
    assert_int_equal(gw_load_estimate(&l), 2);
    gw_load_report(&l, 2);
    assert_int_equal(gw_load_estimate(&l), 2);
}

/* A report taken before our requests reached the worker: ours now is the floor. */
static void test_load_floor_is_ours(void **state)
{
    struct gw_load l = {0};
    (void)state;

    for (int i = 0; i < 5; i++)
        gw_load_add(&l, 1);
    gw_load_report(&l, 0);
    assert_int_equal(gw_load_estimate(&l), 5);
    gw_load_add(&l, -1);
    assert_int_equal(gw_load_estimate(&l), 4);
    gw_load_report(&l, 0); /* they all ended there: ours says 4 are still ours */
    for (int i = 0; i < 4; i++)
        gw_load_add(&l, -1);
    assert_int_equal(gw_load_estimate(&l), 0);
    gw_load_add(&l, -1); /* never below zero */
    assert_int_equal(gw_load_estimate(&l), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(gw_strategy_from_name(NULL), GW_LEAST_LOADED);
    assert_int_equal(gw_strategy_from_name("round-robin"), GW_ROUND_ROBIN);
    assert_int_equal(gw_strategy_from_name("priority"), GW_PRIORITY);
    assert_int_equal(gw_strategy_from_name("prefix-affinity"), GW_PREFIX_AFFINITY);
    assert_string_equal(gw_strategy_name(GW_PREFIX_AFFINITY), "prefix-affinity");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_loaded),        cmocka_unit_test(test_ties_turn),
        cmocka_unit_test(test_round_robin_and_exclusion), cmocka_unit_test(test_priority_fails_over),
        cmocka_unit_test(test_prefix_affinity),     cmocka_unit_test(test_names),
        cmocka_unit_test(test_load_counts_ours_once), cmocka_unit_test(test_load_floor_is_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
