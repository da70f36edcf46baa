/* Switching a running manager to a new config: keep, replace, add and retire models. */
#include "sup_internal.h"
#include "cfg.h"
#include "ig_log.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* Moves every waiter of FROM to the end of TO's queue (a reload replaced FROM by TO). */
static void move_waiters(struct sup_model *from, struct sup_model *to)
{
    while (!TAILQ_EMPTY(&from->waiters)) {
        struct sup_waiter *w = TAILQ_FIRST(&from->waiters);
        TAILQ_REMOVE(&from->waiters, w, link);
        from->n_waiters--;
        w->model = to;
        TAILQ_INSERT_TAIL(&to->waiters, w, link);
        to->n_waiters++;
    }
}

/* Marks M as replaced or removed: it admits nothing more and stops once idle. */
static void retire(struct sup_model *m)
{
    m->is_retiring = true;
    m->is_unload_requested = true;
    evtimer_del(m->ttl_timer);
}

/* Returns the model of MGR's current config whose id is exactly ID, or NULL. */
static struct sup_model *active_by_id(const struct sup_manager *mgr, const char *id)
{
    const struct cfg_model *c = cfg_find_model(mgr->cfg, id);
    return c != NULL && strcmp(c->id, id) == 0 ? mgr->active[c - mgr->cfg->models] : NULL;
}

int sup_manager_reload(struct sup_manager *mgr, const struct cfg *cfg,
                       struct sup_reload_summary *summary)
{
    struct sup_model **active = calloc(cfg->n_models > 0 ? cfg->n_models : 1, sizeof(*active));
    struct sup_reload_summary sum = {0};

    if (active == NULL)
        return IG_ENOMEM;
    /* First create what is new, so running out of memory changes nothing. */
    for (size_t i = 0; i < cfg->n_models; i++) {
        struct sup_model *old = active_by_id(mgr, cfg->models[i].id);
        if (old != NULL && cfg_model_same_process(old->cfg, &cfg->models[i]))
            continue;
        if ((active[i] = sup_model_new(mgr, cfg, &cfg->models[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                if (active[j] != NULL)
                    sup_model_release(active[j]);
            free(active);
            return IG_ENOMEM;
        }
        if (old != NULL) {
            ig_info("model %s: changed by the reload; the new version starts after the old one "
                    "stops", cfg->models[i].id);
            sum.changed++;
        } else {
            sum.added++;
        }
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (active[i] != NULL)
            continue;
        active[i] = active_by_id(mgr, cfg->models[i].id);
        active[i]->cfg = &cfg->models[i]; /* ttl, aliases, filters... apply at once */
        active[i]->group = cfg_model_group(cfg, cfg->models[i].id);
        sum.kept++;
    }
    /* Old models that were not kept retire; their queued requests move to the new version
     * of the same id, or fail when the id is gone. */
    for (size_t i = 0; i < mgr->cfg->n_models; i++) {
        struct sup_model *old = mgr->active[i];
        const struct cfg_model *c = cfg_find_model(cfg, old->cfg->id);
        struct sup_model *next =
            c != NULL && strcmp(c->id, old->cfg->id) == 0 ? active[c - cfg->models] : NULL;
        if (next == old)
            continue;
        retire(old);
        if (next != NULL) {
            move_waiters(old, next);
        } else {
            ig_info("model %s: removed by the reload; it stops once idle", old->cfg->id);
            sup_fail_waiters(old, 503, "the model was removed by a configuration reload", 1);
            sum.removed++;
        }
    }
    free(mgr->active);
    mgr->active = active;
    mgr->cfg = cfg;
    sup_warn_oversized(mgr);
    if (summary != NULL)
        *summary = sum;
    sup_request_schedule(mgr);
    return 0;
}

bool sup_manager_uses_cfg(const struct sup_manager *mgr, const struct cfg *cfg)
{
    const struct sup_model *m;

    if (mgr->cfg == cfg)
        return true;
    TAILQ_FOREACH(m, &mgr->all, link)
        if (m->cfg >= cfg->models && m->cfg < cfg->models + cfg->n_models)
            return true;
    return false;
}
