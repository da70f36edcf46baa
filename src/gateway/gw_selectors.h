/*
 * llama-swap's selectors: a virtual model id that each request resolves to one of its
 * targets by a strategy (warm, pin, spillover) from the targets' states and loads. The
 * choice itself is a pure function, so it is tested without a gateway.
 */
#ifndef IG_GW_SELECTORS_H
#define IG_GW_SELECTORS_H

#include "cfg.h"
#include "sup_manager.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_app;

/* What the choice knows about one target (a plain value). */
struct gw_sel_target {
    bool is_known;        /* the target names a model that exists now */
    bool is_remote;       /* proxy-only (a peer or URL): no process, no load state */
    enum sup_state state; /* of its model */
    int load;             /* requests in flight plus queued on its model */
};

/*
 * Picks a target for STRATEGY among the N targets T (in configured order): returns its
 * index, or -1 when none can serve (spillover with every target stopping or unknown).
 * SPILLOVER is the per-target load before spilling to the next; *ROTOR breaks ties between
 * equally loaded active targets in turn and is advanced when it does.
 */
int gw_selector_pick(enum cfg_selector_strategy strategy, const struct gw_sel_target *t, size_t n,
                     int spillover, unsigned *rotor);

/*
 * When *NAME (the request's model) is a selector of APP's config, picks its target, sets
 * *NAME to it (borrowed from the config) and DOC's "model" to it, and sets *IS_REWRITTEN.
 * Returns 0 (also when *NAME is no selector), or -1 with MSG (of MSG_LEN bytes) saying why
 * no target can serve.
 */
int gw_selector_apply(struct gw_app *app, json_t *doc, const char **name, bool *is_rewritten,
                      char *msg, size_t msg_len);

/* Appends an OpenAI model object for each listed selector of APP to DATA, as created at
 * CREATED (unix seconds). */
void gw_selectors_list(struct gw_app *app, json_t *data, int64_t created);

#endif
