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

/* Returns whether MGR has a memory budget (RAM, VRAM or both). */
bool sup_has_budget(const struct sup_manager *mgr)
{
    return mgr->cfg->budget.ram_bytes > 0 || mgr->cfg->budget.vram_bytes > 0;
}

/* Returns the budget ("ram" or "vram") that model C exceeds on its own, or NULL. */
const char *sup_exceeds_budget(const struct sup_manager *mgr, const struct cfg_model *c)
{
    const struct cfg_budget *b = &mgr->cfg->budget;

    if (b->ram_bytes > 0 && c->mem_bytes > b->ram_bytes)
        return "ram";
    if (b->vram_bytes > 0 && c->vram_bytes > b->vram_bytes)
        return "vram";
    return NULL;
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
struct sup_usage sup_usage(const struct sup_manager *mgr)
{
    const struct sup_model *m;
    struct sup_usage u = {0, 0};

    TAILQ_FOREACH(m, &mgr->all, link)
        if (sup_is_running(m) && m->proc != NULL) {
            u.ram += m->cfg->mem_bytes;
            u.vram += m->cfg->vram_bytes;
        }
    return u;
}

/* Returns whether USED plus model C stays within MGR's budget. */
static bool fits(const struct sup_manager *mgr, struct sup_usage used, const struct cfg_model *c)
{
    const struct cfg_budget *b = &mgr->cfg->budget;

    return (b->ram_bytes == 0 || used.ram + c->mem_bytes <= b->ram_bytes) &&
           (b->vram_bytes == 0 || used.vram + c->vram_bytes <= b->vram_bytes);
}

/* Returns whether WINNER fits beside the models holding memory now. */
bool sup_fits_now(const struct sup_manager *mgr, const struct sup_model *winner)
{
    return !sup_has_budget(mgr) || fits(mgr, sup_usage(mgr), winner->cfg);
}

/* Returns the least recently used running model that may be evicted for WINNER and frees
 * some of what is short (RAM when NEED_RAM, VRAM when NEED_VRAM), idle ones before busy
 * ones, or NULL. */
static struct sup_model *pick_victim(struct sup_manager *mgr, const struct sup_model *winner,
                                     bool need_ram, bool need_vram)
{
    struct sup_model *m, *best = NULL;

    TAILQ_FOREACH(m, &mgr->all, link) {
        bool is_idle = m->in_flight == 0 && TAILQ_EMPTY(&m->waiters);
        bool frees = (need_ram && m->cfg->mem_bytes > 0) || (need_vram && m->cfg->vram_bytes > 0);
        if (m == winner || m->is_evicted || m->is_retiring || m->is_draining ||
            m->state != SUP_READY || m->proc == NULL || !frees ||
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

/* With a budget: marks as evicted the models that must stop for WINNER to fit in RAM and
 * VRAM (memory of models already stopping or in WINNER's way counts as freed). Returns
 * whether WINNER fits once they are gone. */
bool sup_make_room(struct sup_manager *mgr, struct sup_model *winner)
{
    const struct cfg_budget *b = &mgr->cfg->budget;
    struct sup_usage left = sup_usage(mgr);
    struct sup_model *m;

    TAILQ_FOREACH(m, &mgr->all, link)
        m->is_evicted = false;
    if (!sup_has_budget(mgr) || winner == NULL || sup_is_running(winner))
        return true;
    TAILQ_FOREACH(m, &mgr->all, link) {
        if (sup_is_running(m) && m->proc != NULL && m != winner &&
            (m->state == SUP_STOPPING || m->is_retiring || m->is_draining || sup_conflicts(winner, m))) {
            left.ram -= m->cfg->mem_bytes;
            left.vram -= m->cfg->vram_bytes;
        }
    }
    while (!fits(mgr, left, winner->cfg)) {
        bool need_ram = b->ram_bytes > 0 && left.ram + winner->cfg->mem_bytes > b->ram_bytes;
        bool need_vram = b->vram_bytes > 0 && left.vram + winner->cfg->vram_bytes > b->vram_bytes;
        struct sup_model *victim = pick_victim(mgr, winner, need_ram, need_vram);
        if (victim == NULL) {
            /* Not enough even with every candidate gone (persistent models hold the rest):
             * evict nothing, the request waits. */
            TAILQ_FOREACH(m, &mgr->all, link)
                m->is_evicted = false;
            return false;
        }
        victim->is_evicted = true;
        left.ram -= victim->cfg->mem_bytes;
        left.vram -= victim->cfg->vram_bytes;
    }
    return true;
}

void sup_budget_in_use(const struct sup_manager *mgr, uint64_t *ram_bytes, uint64_t *vram_bytes)
{
    struct sup_usage u = sup_usage(mgr);

    *ram_bytes = u.ram;
    *vram_bytes = u.vram;
}

/* Warns about models that can never fit the budget. */
void sup_warn_oversized(const struct sup_manager *mgr)
{
    const struct cfg *cfg = mgr->cfg;

    for (size_t i = 0; i < cfg->n_models; i++) {
        const struct cfg_model *c = &cfg->models[i];
        const char *which = sup_exceeds_budget(mgr, c);
        bool is_ram = which != NULL && strcmp(which, "ram") == 0;
        if (which != NULL)
            ig_warn("model %s needs an estimated %llu MiB of %s, more than budget.%s (%llu MiB): "
                    "requests for it will get a 507",
                    c->id, (unsigned long long)((is_ram ? c->mem_bytes : c->vram_bytes) >> 20),
                    is_ram ? "RAM" : "GPU memory", which,
                    (unsigned long long)((is_ram ? cfg->budget.ram_bytes : cfg->budget.vram_bytes) >> 20));
    }
}

/* Logs that M is evicted to make room for WINNER, with the figures. */
void sup_log_eviction(const struct sup_model *m, const struct sup_model *winner)
{
    const struct cfg_budget *b = &m->mgr->cfg->budget;
    struct sup_usage used = sup_usage(m->mgr);

    ig_info("model %s: evicted (least recently used) to make room for %s: it needs %llu MiB "
            "of RAM and %llu MiB of VRAM; in use: %llu of %llu MiB RAM, %llu of %llu MiB VRAM "
            "(0: no budget)",
            m->cfg->id, winner->cfg->id, (unsigned long long)(winner->cfg->mem_bytes >> 20),
            (unsigned long long)(winner->cfg->vram_bytes >> 20),
            (unsigned long long)(used.ram >> 20), (unsigned long long)(b->ram_bytes >> 20),
            (unsigned long long)(used.vram >> 20), (unsigned long long)(b->vram_bytes >> 20));
}
