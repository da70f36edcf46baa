/*
 * Which models may run beside which: llama-swap groups, the matrix router, the memory budget.
 *
 * Coexistence follows llama-swap's groups: models without a group share one implicit
 * group with swap=true, exclusive=true (unless a budget is set). Two members of one group
 * conflict when the group swaps; members of different groups conflict when the starting
 * one's group is exclusive and the other's is not persistent.
 */
#include "sup_internal.h"
#include "cfg.h"
#include "ig_log.h"

#include <string.h>

/* Returns whether A and B would use the same process slot: the same id or the same port. */
bool sup_same_slot(const struct sup_model *a, const struct sup_model *b)
{
    return strcmp(a->cfg->id, b->cfg->id) == 0 || (a->cfg->port > 0 && a->cfg->port == b->cfg->port);
}

/* Returns whether MGR has a memory budget. */
bool sup_has_budget(const struct sup_manager *mgr)
{
    return mgr->cfg->budget.ram_bytes > 0;
}

/* Returns M's index in its manager's current config, or -1 (retiring, of an older one). */
static long model_index(const struct sup_model *m)
{
    const struct cfg *cfg = m->mgr->cfg;
    return m->cfg >= cfg->models && m->cfg < cfg->models + cfg->n_models
               ? (long)(m->cfg - cfg->models)
               : -1;
}

/* llama-swap's matrix solver: among the sets that contain WINNER, the one whose running
 * models outside it cost least to evict (evict_costs, default 1), the first on ties; NULL
 * when no set contains it (it then runs alone). */
static const struct cfg_model_set *matrix_choose(struct sup_manager *mgr,
                                                 const struct sup_model *winner)
{
    const struct cfg_matrix *mx = &mgr->cfg->matrix;
    const struct cfg_model_set *best = NULL;
    long best_cost = 0, w = model_index(winner);
    const struct sup_model *m;

    for (size_t i = 0; w >= 0 && i < mx->n_sets; i++) {
        const struct cfg_model_set *set = &mx->sets[i];
        long cost = 0;
        if (!cfg_matrix_set_has(set, (size_t)w))
            continue;
        TAILQ_FOREACH(m, &mgr->all, link) {
            long k = model_index(m);
            if (m != winner && sup_is_running(m) && m->cfg->cmd != NULL &&
                (k < 0 || !cfg_matrix_set_has(set, (size_t)k)))
                cost += k < 0 ? 0 : (size_t)k < mx->n_costs ? mx->evict_costs[k] : 1;
        }
        if (best == NULL || cost < best_cost) {
            best = set;
            best_cost = cost;
        }
    }
    return best;
}

/* Returns whether starting A requires B to stop under the matrix router. */
static bool matrix_conflicts(const struct sup_model *a, const struct sup_model *b)
{
    struct sup_manager *mgr = a->mgr;
    long k = model_index(b);

    if (mgr->matrix_winner != a) {
        mgr->matrix_set = matrix_choose(mgr, a);
        mgr->matrix_winner = a;
    }
    return mgr->matrix_set == NULL || k < 0 || !cfg_matrix_set_has(mgr->matrix_set, (size_t)k);
}

/* Returns whether starting A requires B to stop. Ungrouped models form one implicit group
 * that swaps (one at a time, as in llama-swap) unless a memory budget is set: then they run
 * side by side while they fit, and the budget decides what stops. */
bool sup_conflicts(const struct sup_model *a, const struct sup_model *b)
{
    bool is_implicit_swap = !sup_has_budget(a->mgr);

    if (a == b || a->cfg->cmd == NULL || b->cfg->cmd == NULL)
        return false; /* proxy-only models run no process and never swap */
    if (a->mgr->cfg->matrix.is_active)
        return matrix_conflicts(a, b);
    if (a->group == b->group)
        return a->group == NULL ? is_implicit_swap : a->group->swap;
    if (a->group == NULL)
        return is_implicit_swap && (b->group == NULL || !b->group->persistent);
    return a->group->exclusive && (b->group == NULL || !b->group->persistent);
}

/* Returns the estimated memory of the models holding it now (stopping ones included). */
uint64_t sup_ram_used(const struct sup_manager *mgr)
{
    const struct sup_model *m;
    uint64_t sum = 0;

    TAILQ_FOREACH(m, &mgr->all, link)
        if (sup_is_running(m) && m->proc != NULL)
            sum += m->cfg->mem_bytes;
    return sum;
}

/* Returns the least recently used running model that may be evicted for WINNER, idle ones
 * before busy ones, or NULL. */
static struct sup_model *pick_victim(struct sup_manager *mgr, const struct sup_model *winner)
{
    struct sup_model *m, *best = NULL;

    TAILQ_FOREACH(m, &mgr->all, link) {
        bool is_idle = m->in_flight == 0 && TAILQ_EMPTY(&m->waiters);
        if (m == winner || m->is_evicted || m->is_retiring || m->is_draining ||
            m->state != SUP_READY || m->proc == NULL || m->cfg->mem_bytes == 0 ||
            (m->group != NULL && m->group->persistent) || sup_conflicts(winner, m))
            continue;
        if (best == NULL) {
            best = m;
            continue;
        }
        bool is_best_idle = best->in_flight == 0 && TAILQ_EMPTY(&best->waiters);
        if ((is_idle && !is_best_idle) ||
            (is_idle == is_best_idle && m->last_used_ms < best->last_used_ms))
            best = m;
    }
    return best;
}

/* With a budget: marks as evicted the models that must stop for WINNER to fit (memory of
 * models already stopping or in WINNER's way counts as freed). Returns whether WINNER fits
 * once they are gone. */
bool sup_make_room(struct sup_manager *mgr, struct sup_model *winner)
{
    uint64_t budget = mgr->cfg->budget.ram_bytes, used = sup_ram_used(mgr), freed = 0;
    struct sup_model *m;

    TAILQ_FOREACH(m, &mgr->all, link)
        m->is_evicted = false;
    if (!sup_has_budget(mgr) || winner == NULL || sup_is_running(winner))
        return true;
    TAILQ_FOREACH(m, &mgr->all, link) {
        if (sup_is_running(m) && m->proc != NULL && m != winner &&
            (m->state == SUP_STOPPING || m->is_retiring || m->is_draining || sup_conflicts(winner, m)))
            freed += m->cfg->mem_bytes;
    }
    while (used - freed + winner->cfg->mem_bytes > budget) {
        struct sup_model *victim = pick_victim(mgr, winner);
        if (victim == NULL) {
            /* Not enough even with every candidate gone (persistent models hold the rest):
             * evict nothing, the request waits. */
            TAILQ_FOREACH(m, &mgr->all, link)
                m->is_evicted = false;
            return false;
        }
        victim->is_evicted = true;
        freed += victim->cfg->mem_bytes;
    }
    return true;
}

uint64_t sup_ram_in_use(const struct sup_manager *mgr)
{
    return sup_ram_used(mgr);
}

/* Warns about models that can never fit the budget. */
void sup_warn_oversized(const struct sup_manager *mgr)
{
    const struct cfg *cfg = mgr->cfg;

    for (size_t i = 0; sup_has_budget(mgr) && i < cfg->n_models; i++)
        if (cfg->models[i].mem_bytes > cfg->budget.ram_bytes)
            ig_warn("model %s needs an estimated %llu MiB, more than budget.ram (%llu MiB): "
                    "requests for it will get a 507",
                    cfg->models[i].id, (unsigned long long)(cfg->models[i].mem_bytes >> 20),
                    (unsigned long long)(cfg->budget.ram_bytes >> 20));
}
