/* Unit tests for the choice a selector makes: warm prefers a ready, then a starting target;
 * pin always takes its first; spillover fills active targets up to its setting, then starts
 * the next cold one, and never picks a stopping or unknown target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw_selectors.h"

/* A local target in STATE with LOAD requests. */
static struct gw_sel_target local(enum sup_state state, int load)
{
    return (struct gw_sel_target){.is_known = true, .state = state, .load = load};
}

/* A proxy-only target with LOAD requests (its state says nothing about loading). */
static struct gw_sel_target remote(int load)
{
    return (struct gw_sel_target){
        .is_known = true, .is_remote = true, .state = SUP_READY, .load = load};
}

static void test_warm_prefers_ready_then_starting_then_first(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[3] = {local(SUP_UNLOADED, 0), local(SUP_STARTING, 0),
                                 local(SUP_READY, 0)};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_WARM, t, 3, 1, &rotor), 2);
    t[2] = local(SUP_UNLOADED, 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_WARM, t, 3, 1, &rotor), 1);
    t[1] = local(SUP_FAILED, 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_WARM, t, 3, 1, &rotor), 0); /* cold start */
    t[0] = local(SUP_READY, 5);
    t[1] = local(SUP_READY, 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_WARM, t, 3, 1, &rotor), 0); /* load ignored */
}

static void test_pin_always_takes_the_first_target(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[2] = {local(SUP_UNLOADED, 3), local(SUP_READY, 0)};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_PIN, t, 2, 1, &rotor), 0);
    t[0] = local(SUP_STOPPING, 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_PIN, t, 2, 1, &rotor), 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_PIN, t, 0, 1, &rotor), -1);
}

static void test_spillover_starts_the_first_cold_target_when_none_is_active(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[3] = {local(SUP_STOPPING, 0), local(SUP_UNLOADED, 0),
                                 local(SUP_UNLOADED, 0)};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 3, 1, &rotor), 1);
}

static void test_spillover_fills_an_active_target_up_to_its_setting(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[2] = {local(SUP_READY, 1), local(SUP_UNLOADED, 0)};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 2, &rotor), 0);
    t[0].load = 2; /* at the setting: the next target starts */
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 2, &rotor), 1);
    t[1] = local(SUP_STARTING, 1); /* both active: the least loaded */
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 2, &rotor), 1);
    t[1].load = 3; /* every target full and none cold: still the least loaded */
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 2, &rotor), 0);
}

static void test_spillover_counts_a_busy_unloaded_target_as_active(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[2] = {local(SUP_UNLOADED, 1), local(SUP_UNLOADED, 0)};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 2, &rotor), 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 1, &rotor), 1);
}

static void test_spillover_turns_between_equally_loaded_targets(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[3] = {local(SUP_READY, 0), local(SUP_UNLOADED, 0), local(SUP_READY, 0)};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 3, 1, &rotor), 0);
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 3, 1, &rotor), 2);
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 3, 1, &rotor), 0);
}

static void test_spillover_treats_remote_targets_by_their_load(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[2] = {remote(0), local(SUP_READY, 0)};
    (void)state;
    /* An idle remote target is cold, so the running local one takes the request. */
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 1, &rotor), 1);
    t[1].load = 1;
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 1, &rotor), 0);
}

static void test_spillover_fails_without_usable_targets(void **state)
{
    unsigned rotor = 0;
    struct gw_sel_target t[2] = {local(SUP_STOPPING, 2), {0}};
    (void)state;
    assert_int_equal(gw_selector_pick(CFG_SELECT_SPILLOVER, t, 2, 1, &rotor), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warm_prefers_ready_then_starting_then_first),
        cmocka_unit_test(test_pin_always_takes_the_first_target),
        cmocka_unit_test(test_spillover_starts_the_first_cold_target_when_none_is_active),
        cmocka_unit_test(test_spillover_fills_an_active_target_up_to_its_setting),
        cmocka_unit_test(test_spillover_counts_a_busy_unloaded_target_as_active),
        cmocka_unit_test(test_spillover_turns_between_equally_loaded_targets),
        cmocka_unit_test(test_spillover_treats_remote_targets_by_their_load),
        cmocka_unit_test(test_spillover_fails_without_usable_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
