/* Routing between a model's backends (gw_route.h). */
#include "gw_route.h"

#include "ig_text.h"

#include <string.h>

/* Over this many requests above the least-loaded candidate, prefix-affinity gives up the
 * prefix's backend (its KV cache) for the least-loaded one. */
#define AFFINITY_SLACK 4

void gw_load_report(struct gw_load *l, int reported)
{
    l->reported = reported > 0 ? reported : 0;
    l->delta = 0;
}

void gw_load_add(struct gw_load *l, int n)
{
    l->delta += n;
    l->ours += n;
    if (l->ours < 0)
        l->ours = 0;
}

int gw_load_estimate(const struct gw_load *l)
{
    int estimate = l->reported + l->delta;

    return estimate > l->ours ? estimate : l->ours;
}

enum gw_strategy gw_strategy_from_name(const char *name)
{
    if (name == NULL)
        return GW_LEAST_LOADED;
    if (strcmp(name, "round-robin") == 0)
        return GW_ROUND_ROBIN;
    if (strcmp(name, "priority") == 0)
        return GW_PRIORITY;
    if (strcmp(name, "prefix-affinity") == 0)
        return GW_PREFIX_AFFINITY;
    return GW_LEAST_LOADED;
}

const char *gw_strategy_name(enum gw_strategy s)
{
    static const char *const names[] = {"least-loaded", "round-robin", "priority",
                                        "prefix-affinity"};
    return names[s];
}

/* Returns the candidate's tier: 0 usable, 1 full, 2 tripped, 3 excluded (never taken). */
static int tier(const struct gw_route_cand *c)
{
    return c->is_excluded ? 3 : c->is_tripped ? 2 : c->is_full ? 1 : 0;
}

/* Returns the best tier among the N candidates. */
static int best_tier(const struct gw_route_cand *c, size_t n)
{
    int best = 3;

    for (size_t i = 0; i < n; i++)
        if (tier(&c[i]) < best)
            best = tier(&c[i]);
    return best;
}

/* Returns whether A is less loaded than B: loaded model first, then load, then TTFT. */
static bool is_lighter(const struct gw_route_cand *a, const struct gw_route_cand *b)
{
    if (a->is_ready != b->is_ready)
        return a->is_ready;
    if (a->load != b->load)
        return a->load < b->load;
    return a->ttft_ms > 0 && (b->ttft_ms <= 0 || a->ttft_ms < b->ttft_ms);
}

/* Least-loaded among tier T, ties taken in turn from *ROTOR. */
static int least_loaded(const struct gw_route_cand *c, size_t n, int t, unsigned *rotor)
{
    int best = -1;

    for (size_t k = 0; k < n; k++) {
        size_t i = (k + *rotor) % n;
        if (tier(&c[i]) == t && (best < 0 || is_lighter(&c[i], &c[best])))
            best = (int)i;
    }
    (*rotor)++;
    return best;
}

int gw_route_pick(enum gw_strategy s, const struct gw_route_cand *c, size_t n,
                  uint64_t prefix_hash, unsigned *rotor, const char **reason)
{
    int t = best_tier(c, n), pick = -1;
    uint64_t best_score = 0;

    *reason = "no backend";
    if (n == 0 || t == 3)
        return -1;
    if (s == GW_PRIORITY) {
        for (size_t i = 0; i < n && pick < 0; i++)
            if (tier(&c[i]) == t)
                pick = (int)i;
        *reason = pick == 0 ? "priority: first" : "priority: failover";
    } else if (s == GW_ROUND_ROBIN) {
        for (size_t k = 0; k < n && pick < 0; k++) {
            size_t i = (k + *rotor) % n;
            if (tier(&c[i]) == t)
                pick = (int)i;
        }
        *rotor = (unsigned)(pick + 1);
        *reason = "round-robin";
    } else if (s == GW_PREFIX_AFFINITY) {
        int lightest = least_loaded(c, n, t, rotor);
        for (size_t i = 0; i < n; i++) { /* rendezvous hashing: stable as backends come, go */
            uint64_t score = ig_fnv1a(&c[i].affinity_id, sizeof(c[i].affinity_id), prefix_hash);
            if (tier(&c[i]) == t && (pick < 0 || score > best_score)) {
                pick = (int)i;
                best_score = score;
            }
        }
        *reason = "prefix-affinity";
        if (pick >= 0 && lightest >= 0 && c[pick].load > c[lightest].load + AFFINITY_SLACK) {
            pick = lightest;
            *reason = "prefix-affinity: its backend is overloaded, least-loaded";
        }
    } else {
        pick = least_loaded(c, n, t, rotor);
        *reason = pick >= 0 && c[pick].is_ready ? "least-loaded" : "least-loaded: cold";
    }
    if (t == 1)
        *reason = "every backend is at capacity: least bad";
    else if (t == 2)
        *reason = "every backend is tripped: trying one";
    return pick;
}
