/*
 * Model manager: one state machine per configured model (unloaded → starting → ready →
 * stopping, or failed), on-demand start, swapping by llama-swap's rules, bounded wait
 * queues, TTL unloads, and stopping every child on shutdown.
 *
 * A request asks for a model with sup_acquire(); when the model is ready its callback runs
 * with the model counted as busy, and the request must call sup_release() when done.
 */
#ifndef IG_SUP_MANAGER_H
#define IG_SUP_MANAGER_H

#include "ig_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct upstream_pool;
struct cfg;
struct cfg_model;
struct sup_manager;
struct sup_model;
struct sup_waiter;

enum sup_state { SUP_UNLOADED, SUP_STARTING, SUP_READY, SUP_STOPPING, SUP_FAILED };

/* Result of an acquire: STATUS 0 when ready, else the HTTP status to answer with
 * (429, 502, 503) and MESSAGE (borrowed, valid during the callback). */
typedef void (*sup_ready_fn)(struct sup_model *model, int status, const char *message,
                             int retry_after_s, void *arg);

/* Receives output of a model's process as it arrives (DATA borrowed). */
typedef void (*sup_model_output_fn)(struct sup_model *model, const char *data, size_t len, void *arg);

/* A snapshot of one model for status pages; strings borrowed until the next event. */
struct sup_model_info {
    enum sup_state state;
    int pid;               /* 0 when no process */
    int in_flight;         /* requests being served */
    size_t waiting;        /* requests queued */
    int failures;          /* consecutive failed starts or crashes */
    bool is_draining;      /* stopping once its requests end */
    int exit_code;         /* of the last exit: status, 128+signal, or -1 when none */
    const char *last_error; /* why it failed, with its last output lines; NULL when fine */
    uint64_t retry_in_ms;  /* crash back-off left before the next start */
    uint64_t uptime_ms;    /* time since it became ready (0 unless ready) */
    uint64_t idle_ms;      /* time since its last request ended (0 unless ready and idle) */
    double load_progress;  /* 0..1 while starting, as its engine reports it; -1: unknown */
};

/* Called once when shutdown finished (every child exited). */
typedef void (*sup_stopped_fn)(void *arg);

/* Creates a manager for CFG (borrowed; must outlive it) on BASE using POOL for health
 * checks. Returns NULL with *CAUSE (caller frees) on failure; free with sup_manager_free(). */
struct sup_manager *sup_manager_new(struct event_base *base, struct upstream_pool *pool,
                                    const struct cfg *cfg, char **cause);

/* What a reload did to the models. */
struct sup_reload_summary {
    int kept;    /* same process settings: kept running, new settings apply at once */
    int changed; /* process settings changed: the old one drains and stops, then restarts */
    int added;
    int removed; /* drain and stop; their queued requests get a 503 */
};

/* Switches MGR to CFG (borrowed; the previous one must stay alive while
 * sup_manager_uses_cfg() says so). Models are matched by id: unchanged ones keep running
 * with in-flight requests untouched; changed and removed ones finish their requests and
 * stop. Returns 0 (SUMMARY filled when not NULL) or IG_ENOMEM with nothing changed. */
int sup_manager_reload(struct sup_manager *mgr, const struct cfg *cfg,
                       struct sup_reload_summary *summary) IG_WUR;

/* Returns whether MGR still refers to CFG (current, or a model retired by a reload that has
 * not stopped yet). */
bool sup_manager_uses_cfg(const struct sup_manager *mgr, const struct cfg *cfg);

/* Kills every child at once (SIGKILL), reaps them and frees; NULL is a no-op. */
void sup_manager_free(struct sup_manager *mgr);

/* Returns the model for an id or alias (borrowed) or NULL. */
struct sup_model *sup_find(struct sup_manager *mgr, const char *name);

/* Returns the config of MODEL (borrowed). */
const struct cfg_model *sup_model_cfg(const struct sup_model *model);

/* Returns the state of MODEL. */
enum sup_state sup_model_state(const struct sup_model *model);

/* Returns the state's name: "unloaded", "starting", "ready", "stopping", "failed". */
const char *sup_state_name(enum sup_state state);

/*
 * Asks for MODEL. Returns 0 when it is ready now (busy count taken; CB not called), or 1
 * when the request waits: CB runs later exactly once unless sup_waiter_cancel() is called
 * on *WAITER first. Errors that are known at once (queue full, concurrency limit) also go
 * through CB later, never synchronously.
 */
int sup_acquire(struct sup_model *model, sup_ready_fn cb, void *arg,
                struct sup_waiter **waiter) IG_WUR;

/* Withdraws a waiting request; its callback will not run. */
void sup_waiter_cancel(struct sup_waiter *waiter);

/* Ends a request that acquired MODEL. */
void sup_release(struct sup_model *model);

/* Stops MODEL (now when idle, else when its requests end); clears a failed state. */
void sup_unload(struct sup_model *model);

/* Stops every model (idle ones now, busy ones when their requests end). */
void sup_unload_all(struct sup_manager *mgr);

/* Starts the models of hooks.on_startup.preload in order, as if each got a request. */
void sup_preload(struct sup_manager *mgr);

/* Reaps MODEL's process now if it exited (as SIGCHLD would, a moment later) and returns
 * whether it still runs. The proxy asks when its upstream refused or dropped a request. */
bool sup_model_check_alive(struct sup_model *model);

/* Kills MODEL's process at once (SIGKILL) because it hung: it shows failed with REASON, and
 * the next request starts it again (crash back-off applies). */
void sup_model_abort(struct sup_model *model, const char *reason);

/* Called after a model retired by a reload was freed (its config may now be unused). */
typedef void (*sup_retired_fn)(void *arg);

/* Sets the one retired-model hook (NULL removes it). */
void sup_set_retired_hook(struct sup_manager *mgr, sup_retired_fn cb, void *arg);

/*
 * Receives each state change of a model: EVENT names it ("load", "restart" after a crash,
 * "ready", "unload", "evict", "stopped", "crash", "failed"), DETAIL (borrowed, may be NULL)
 * says why, ELAPSED_MS is how long the model was in its previous state.
 */
typedef void (*sup_state_fn)(struct sup_model *model, enum sup_state state, const char *event,
                             const char *detail, uint64_t elapsed_ms, void *arg);

/* Sets the one state-change hook (NULL removes it). */
void sup_set_state_hook(struct sup_manager *mgr, sup_state_fn cb, void *arg);

/* Sets the hook receiving every model's process output (one hook; NULL removes it). */
void sup_set_output_hook(struct sup_manager *mgr, sup_model_output_fn cb, void *arg);

/* Fills OUT with a snapshot of MODEL. */
void sup_model_info(const struct sup_model *model, struct sup_model_info *out);

/* Returns a malloc'd copy of the last MAX_LINES lines MODEL's process wrote (caller frees),
 * or NULL when out of memory. */
char *sup_model_log_tail(const struct sup_model *model, size_t max_lines);

/* Fails waiting requests, stops every child (SIGTERM, then SIGKILL after the grace) and
 * calls CB when all have exited. */
void sup_shutdown(struct sup_manager *mgr, sup_stopped_fn cb, void *arg);

/* Returns a JSON array describing running models in llama-swap's /running shape
 * (caller owns the reference). */
json_t *sup_running_json(struct sup_manager *mgr);

/* Sets the estimated RAM and VRAM held by running models (stopping ones included). */
void sup_budget_in_use(const struct sup_manager *mgr, uint64_t *ram_bytes, uint64_t *vram_bytes);

/* Returns how many children are alive. */
size_t sup_children_alive(const struct sup_manager *mgr);

#endif
