/*
 * Routing between the backends of one model: the gateway's own (a local process or URL)
 * and the workers that serve it over the bus. The choice is a pure function of what is
 * known about each candidate, so it is tested without a gateway (docs/DISTRIBUTED.md,
 * "Routing").
 */
#ifndef IG_GW_ROUTE_H
#define IG_GW_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_strategy {
    GW_LEAST_LOADED, /* fewest in flight + queued; loaded before cold; then lowest TTFT */
    GW_ROUND_ROBIN,
    GW_PRIORITY,        /* the first usable in order (failover) */
    GW_PREFIX_AFFINITY, /* same prompt prefix, same backend; least-loaded when it is full */
};

/* What the choice knows about one candidate (a plain value). */
struct gw_route_cand {
    bool is_ready;        /* the model is loaded there */
    bool is_full;         /* at capacity (a worker's heartbeat says busy) */
    bool is_tripped;      /* its circuit breaker is open after failures */
    bool is_excluded;     /* already tried by this request */
    int load;             /* requests in flight plus queued */
    double ttft_ms;       /* recent time to first token; 0 when unknown */
    uint64_t affinity_id; /* stable per backend, for prefix-affinity */
};

/*
 * A worker's load as this gateway estimates it. The worker reports its requests in flight
 * once a second, and that report already counts this gateway's requests that had reached
 * it; adding our whole count on top would count them twice. So only what changed since the
 * report is added: our requests started since, minus ours that ended since (they were in
 * it). Ours now is a floor: requests still on their way were not in the report.
 */
struct gw_load {
    int reported; /* in flight + queued in the last report */
    int delta;    /* ours started minus ours ended since that report */
    int ours;     /* this gateway's requests there now */
};

/* Takes a new report of REPORTED requests. */
void gw_load_report(struct gw_load *l, int reported);

/* One of our requests started (N 1) or ended (N -1) there. */
void gw_load_add(struct gw_load *l, int n);

/* Returns the estimated requests in flight + queued there now. */
int gw_load_estimate(const struct gw_load *l);

/* Returns the strategy named NAME (NULL: least-loaded); unknown names: least-loaded. */
enum gw_strategy gw_strategy_from_name(const char *name);

/* Returns the strategy's name. */
const char *gw_strategy_name(enum gw_strategy s);

/*
 * Picks a candidate among the N of C (in priority order) for strategy S: returns its index,
 * or -1 when every one is excluded. Full and tripped candidates are taken only when no other
 * is left. PREFIX_HASH is the request's prompt-prefix hash (prefix-affinity); *ROTOR turns
 * round-robin and breaks ties. *REASON is set to a short static text saying why.
 */
int gw_route_pick(enum gw_strategy s, const struct gw_route_cand *c, size_t n,
                  uint64_t prefix_hash, unsigned *rotor, const char **reason);

#endif
