/*
 * A model's plain URL backends (its `backends:` list: several OpenAI-compatible servers for
 * one model): what the router knows of each — this gateway's requests there, consecutive
 * failures and the circuit breaker, recent time to first token (docs/DISTRIBUTED.md,
 * "Routing"). A tripped backend is left out for a while, then tried again by the next
 * request (half open): its answer closes or reopens the breaker.
 */
#ifndef IG_GW_BACKENDS_H
#define IG_GW_BACKENDS_H

#include "gw_route.h"
#include "gw_workers.h"

#include <stddef.h>
#include <stdint.h>

struct cfg;
struct cfg_model;
struct gw_backends;

/* Makes an empty table; NULL when out of memory. */
struct gw_backends *gw_backends_new(void);

/* Frees the table; NULL is a no-op. */
void gw_backends_free(struct gw_backends *bs);

/* Fills OUT and URLS (borrowed from MC, valid until the next reload) with the candidates of
 * model MC's backends, at most MAX; returns how many. */
size_t gw_backends_candidates(struct gw_backends *bs, const struct cfg_model *mc,
                              const char **urls, struct gw_route_cand *out, size_t max);

/* Writes the id by which a request remembers backend URL among those it tried. */
void gw_backends_id(const char *url, char *out, size_t size);

/* One of our requests for MODEL starts on backend URL. */
void gw_backends_begin(struct gw_backends *bs, const char *model, const char *url);

/* It ended with OUTCOME (GW_WORKER_*), TTFT_MS (negative when none) feeding the recent TTFT. */
void gw_backends_end(struct gw_backends *bs, const char *model, const char *url,
                     enum gw_worker_outcome outcome, int64_t ttft_ms);

/* Forgets the backends no model of CFG lists any more (and with nothing in flight). */
void gw_backends_prune(struct gw_backends *bs, const struct cfg *cfg);

/* Appends {model, url, in_flight, failures, tripped, ttft_ms} per backend to ARRAY (a
 * jansson array). */
void gw_backends_json(const struct gw_backends *bs, void *array);

#endif
