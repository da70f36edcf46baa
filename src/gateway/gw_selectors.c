/*
 * Selectors, resolved per request as llama-swap does (its selector middleware runs after
 * profile pins and before filters and routing, and the request then goes on as if it had
 * named the target):
 * - warm: the first target that is ready, else the first that is starting, else the first
 *   (which the request then starts);
 * - pin: always the first target;
 * - spillover: targets that are running, starting or busy are "active", the others "cold";
 *   the least loaded active target takes the request while it has fewer than `spillover`
 *   requests, otherwise the first cold target is started; when every target is active the
 *   least loaded one takes it anyway. Stopping targets are skipped. A proxy-only target
 *   (peer or URL) has no process, so it counts as active only while it has requests.
 * One difference: llama-swap counts only the requests a selector itself routed; the load
 * here is the model's own (in flight plus queued), so direct requests to a target count too.
 */
#include "gw_selectors.h"

#include "auth.h"
#include "gw_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TARGETS 64 /* targets considered per selector; later ones are ignored */

/* Returns the first target in STATE among the N of T, or -1. */
static int first_in_state(const struct gw_sel_target *t, size_t n, enum sup_state state)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].is_known && t[i].state == state)
            return (int)i;
    return -1;
}

/* Returns whether spillover may send to target T (it exists and is not stopping). */
static bool is_usable(const struct gw_sel_target *t)
{
    return t->is_known && (t->is_remote || t->state != SUP_STOPPING);
}

/* Returns whether spillover treats target T as active (serving or about to). */
static bool is_active(const struct gw_sel_target *t)
{
    if (t->is_remote)
        return t->load > 0;
    return t->state == SUP_READY || t->state == SUP_STARTING || t->load > 0;
}

/* Spillover's choice; see the comment at the top. */
static int pick_spillover(const struct gw_sel_target *t, size_t n, int spillover, unsigned *rotor)
{
    int cold = -1, min_load = -1, n_tied = 0, pick = -1;

    for (size_t i = 0; i < n; i++) {
        if (!is_usable(&t[i]))
            continue;
        if (!is_active(&t[i]) && cold < 0)
            cold = (int)i;
        else if (is_active(&t[i]) && (min_load < 0 || t[i].load < min_load))
            min_load = t[i].load;
    }
    if (min_load < 0 || (min_load >= spillover && cold >= 0))
        return cold;
    for (size_t i = 0; i < n; i++)
        if (is_usable(&t[i]) && is_active(&t[i]) && t[i].load == min_load)
            n_tied++;
    for (size_t i = 0, k = 0; i < n && pick < 0; i++)
        if (is_usable(&t[i]) && is_active(&t[i]) && t[i].load == min_load &&
            k++ == *rotor % (unsigned)n_tied)
            pick = (int)i;
    (*rotor)++;
    return pick;
}

int gw_selector_pick(enum cfg_selector_strategy strategy, const struct gw_sel_target *t, size_t n,
                     int spillover, unsigned *rotor)
{
    int pick;

    if (n == 0)
        return -1;
    switch (strategy) {
    case CFG_SELECT_WARM:
        pick = first_in_state(t, n, SUP_READY);
        if (pick < 0)
            pick = first_in_state(t, n, SUP_STARTING);
        return pick < 0 ? 0 : pick;
    case CFG_SELECT_SPILLOVER:
        return pick_spillover(t, n, spillover < 1 ? 1 : spillover, rotor);
    case CFG_SELECT_PIN:
    default:
        return 0;
    }
}

/* Fills T with the state of each of SEL's targets (at most MAX_TARGETS); returns how many. */
static size_t read_targets(struct gw_app *app, const struct cfg_selector *sel,
                           struct gw_sel_target *t)
{
    size_t n = sel->targets.len < MAX_TARGETS ? sel->targets.len : MAX_TARGETS;

    for (size_t i = 0; i < n; i++) {
        struct sup_model *m = sup_find(app->mgr, sel->targets.items[i]);
        struct sup_model_info info;

        memset(&t[i], 0, sizeof(t[i]));
        if (m == NULL)
            continue;
        sup_model_info(m, &info);
        t[i].is_known = true;
        t[i].is_remote = sup_model_cfg(m)->cmd == NULL;
        t[i].state = info.state;
        t[i].load = info.in_flight + (int)(info.waiting < 1000000 ? info.waiting : 1000000);
    }
    return n;
}

int gw_selector_apply(struct gw_app *app, json_t *doc, const char **name, bool *is_rewritten,
                      char *msg, size_t msg_len)
{
    const struct cfg_selector *sel = cfg_find_selector(app->cfg, *name);
    struct gw_sel_target t[MAX_TARGETS];
    size_t n;
    int pick;

    if (sel == NULL)
        return 0;
    n = read_targets(app, sel, t);
    pick = gw_selector_pick(sel->strategy, t, n, sel->spillover, &app->selector_rotor);
    if (pick < 0) {
        snprintf(msg, msg_len, "selector `%.200s` has no available target", sel->id);
        return -1;
    }
    *name = sel->targets.items[pick];
    json_object_set_new(doc, "model", json_string(*name));
    *is_rewritten = true;
    return 0;
}

/* Returns the state a listing shows for SEL: that of its first ready or starting target
 * (pin: of its first target only), else "unloaded", as llama-swap's "loaded" status. */
static const char *listed_state(struct gw_app *app, const struct cfg_selector *sel)
{
    for (size_t i = 0; i < sel->targets.len; i++) {
        struct sup_model *m = sup_find(app->mgr, sel->targets.items[i]);
        enum sup_state state = m != NULL ? sup_model_state(m) : SUP_UNLOADED;

        if (m != NULL && sup_model_cfg(m)->cmd != NULL &&
            (state == SUP_READY || state == SUP_STARTING))
            return sup_state_name(state);
        if (sel->strategy == CFG_SELECT_PIN)
            break;
    }
    return sup_state_name(SUP_UNLOADED);
}

/* Returns whether APP's caller may use some target of SEL. */
static bool caller_may_use(struct gw_app *app, const struct cfg_selector *sel)
{
    for (size_t i = 0; i < sel->targets.len; i++) {
        struct sup_model *m = sup_find(app->mgr, sel->targets.items[i]);
        if (m != NULL && auth_allows_model(&app->caller, sup_model_cfg(m)->id))
            return true;
    }
    return false;
}

void gw_selectors_list(struct gw_app *app, json_t *data, int64_t created)
{
    static const char *const strategies[] = {"warm", "pin", "spillover"};

    for (size_t i = 0; i < app->cfg->n_selectors; i++) {
        const struct cfg_selector *sel = &app->cfg->selectors[i];
        json_t *targets = json_array(), *obj, *about;

        for (size_t k = 0; k < sel->targets.len; k++)
            json_array_append_new(targets, json_string(sel->targets.items[k]));
        about = json_pack("{s:s, s:o}", "strategy", strategies[sel->strategy], "targets", targets);
        if (sel->unlisted || !caller_may_use(app, sel) || about == NULL) {
            json_decref(about);
            continue;
        }
        if (sel->strategy == CFG_SELECT_SPILLOVER)
            json_object_set_new(about, "spillover", json_integer(sel->spillover));
        obj = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:o}", "id", sel->id, "object", "model",
                        "created", (json_int_t)created, "owned_by", "infergate", "aliases",
                        json_array(), "state", listed_state(app, sel), "selector", about);
        if (obj == NULL)
            continue;
        if (sel->name != NULL)
            json_object_set_new(obj, "name", json_string(sel->name));
        if (sel->description != NULL)
            json_object_set_new(obj, "description", json_string(sel->description));
        if (sel->metadata != NULL)
            json_object_set(obj, "meta", sel->metadata);
        json_array_append_new(data, obj);
    }
}
