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
