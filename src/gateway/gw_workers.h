/*
 * The gateway's view of the workers on the bus (docs/DISTRIBUTED.md): built from their
 * heartbeats (`infergate.v1.workers.<id>.hb`, one a second), a worker silent for three is
 * dropped from routing and the requests it was serving end; it rejoins with its next
 * heartbeat. Per worker it keeps what routing needs: its models and their states, its load,
 * capacity, this gateway's requests in flight there, their recent TTFT and a circuit
 * breaker (3 failures in a row keep it out of routing for 5 s, then one request tries it).
 */
#ifndef IG_GW_WORKERS_H
#define IG_GW_WORKERS_H

#include "bus_tunnel.h"
#include "gw_route.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_app;
struct gw_workers;
struct cfg_model;

#define GW_MAX_CANDIDATES 16 /* backends one request chooses from */

/* Starts listening to heartbeats on APP's bus; NULL when out of memory or the subscription
 * fails. Free with gw_workers_free(). */
struct gw_workers *gw_workers_new(struct gw_app *app);

/* Frees the registry; NULL is a no-op. */
void gw_workers_free(struct gw_workers *ws);

/* Returns the config of NAME as the workers serve it (capabilities from their heartbeats),
 * or NULL when no live worker has it. Lives as long as the registry. */
const struct cfg_model *gw_workers_model(struct gw_workers *ws, const char *name);

/* Returns whether model NAME was served by some worker during this gateway's life (whether
 * or not one serves it now). */
bool gw_workers_has_seen(struct gw_workers *ws, const char *name);

/* Fills up to MAX candidates (and their worker ids in IDS, borrowed until the next loop
 * turn) for model NAME; returns the count. */
size_t gw_workers_candidates(struct gw_workers *ws, const char *name, const char **ids,
                             struct gw_route_cand *out, size_t max);

/* How a request of this gateway on a worker ended. */
enum gw_worker_outcome {
    GW_WORKER_OK,     /* answered (whatever the status) */
    GW_WORKER_BUSY,   /* refused at capacity: the worker's, or 429 at the model's
                       * concurrencyLimit; not a failure, the model counts as full there
                       * until the next heartbeat or the end of one of our requests there */
    GW_WORKER_FAILED, /* no answer, cut, stalled: counts for the circuit breaker */
    GW_WORKER_LEFT,   /* the client went away first: no verdict */
};

/* A request of this gateway for MODEL starts on worker ID. */
void gw_workers_begin(struct gw_workers *ws, const char *id, const char *model);

/* It ended with OUTCOME, TTFT_MS (negative when none) feeding the worker's recent TTFT. */
void gw_workers_end(struct gw_workers *ws, const char *id, const char *model,
                    enum gw_worker_outcome outcome, int64_t ttft_ms);

/* A request waiting for room on the workers of its model. */
struct gw_wait;

/* Told that a waiting request may be routed now (HAS_ROOM), or that its time is up. */
typedef void (*gw_wait_fn)(void *arg, bool has_room);

/*
 * Queues a request for model NAME while every worker serving it is at capacity: CB(ARG)
 * runs once, on a later loop turn, when a heartbeat shows room or one of this gateway's
 * requests there ends (oldest first), or after nats.queue_timeout_s. Returns the handle,
 * valid until CB runs or gw_workers_wait_cancel(); NULL when the model's queue holds
 * nats.queue_length requests already, queueing is off (queue_timeout_s 0) or out of memory.
 */
struct gw_wait *gw_workers_wait(struct gw_workers *ws, const char *name, gw_wait_fn cb,
                                void *arg);

/* Withdraws a waiting request (its client went away); CB will not run. NULL is a no-op. */
void gw_workers_wait_cancel(struct gw_wait *wait);

/* Appends an OpenAI model object for each model served only by workers (not in the local
 * config) to DATA, created at CREATED. */
void gw_workers_list_models(struct gw_workers *ws, json_t *data, int64_t created);

/* Appends to LIST (llama-swap's /running) an entry per model loaded on a worker: model,
 * state there, worker, worker_state (ready, busy or tripped) and in_flight. */
void gw_workers_running(struct gw_workers *ws, json_t *list);

/* Copies the ids of up to MAX live workers into IDS; returns how many. */
size_t gw_workers_ids(struct gw_workers *ws, char (*ids)[BUS_ID_MAX + 1], size_t max);

/* Returns the workers as JSON (caller owns): id, version, age of the last heartbeat, load,
 * capacity, models and their states. */
json_t *gw_workers_json(struct gw_workers *ws);

#endif
