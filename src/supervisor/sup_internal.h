/*
 * The model manager's insides, shared by its files only: sup_manager.c (state machine,
 * scheduling pass, requests), sup_place.c (who may run beside whom: groups, matrix, memory
 * budget), sup_health.c (health polling while starting), sup_reload.c (switching to a new config), sup_query.c (snapshots and hooks).
 */
#ifndef IG_SUP_INTERNAL_H
#define IG_SUP_INTERNAL_H

#include "sup_manager.h"

#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct cfg_model_set;

struct sup_waiter {
    struct sup_model *model;
    sup_ready_fn cb;
    void *arg;
    uint64_t enqueued_ms;
    struct event *timer;
    int fail_status; /* non-zero: deliver this error when the timer fires */
    int retry_after_s;
    char *fail_message;
    TAILQ_ENTRY(sup_waiter) link;
};

TAILQ_HEAD(waiter_list, sup_waiter);

struct sup_model {
    struct sup_manager *mgr;
    const struct cfg_model *cfg;
    const struct cfg_group *group;
    enum sup_state state;
    struct sup_proc *proc;
    struct sup_ring *ring;
    struct waiter_list waiters; /* requests waiting for the model */
    struct waiter_list errors;  /* answers known at once, delivered on the next turn */
    size_t n_waiters;           /* of WAITERS only */
    int in_flight;
    bool is_draining;
    bool is_unload_requested;
    bool has_failed; /* the current stop follows a failed start */
    struct event *health_timer;
    struct upstream_req *health_req;
    int health_status;
    struct event *kill_timer;
    struct event *ttl_timer;
    uint64_t start_deadline_ms;
    uint64_t started_ms;
    uint64_t ready_ms;         /* when it last became ready */
    uint64_t state_ms;         /* when it entered its current state */
    double load_progress;      /* 0..1 as its engine reports it while starting; -1: unknown */
    uint64_t last_used_ms;     /* when a request last ended (or started) */
    uint64_t retry_after_ms;   /* crash back-off: no start before this */
    int failures;              /* consecutive failed starts and crashes */
    int exit_status;           /* raw wait status of the last exit; -1 when none */
    char *health_url;
    char *last_error;
    int n_helpers;       /* cmdStop processes still running (they write to RING) */
    bool is_retiring;    /* replaced or removed by a reload: stops, then is freed */
    bool is_evicted;     /* this pass: must stop so that the winner fits the budget */
    TAILQ_ENTRY(sup_model) link;
};

TAILQ_HEAD(model_list, sup_model);

struct sup_manager {
    struct event_base *base;
    struct upstream_pool *pool;
    const struct cfg *cfg;
    struct sup_procs *procs;
    struct model_list all;     /* every model, retiring ones too */
    struct sup_model **active; /* by index of cfg->models */
    struct event *schedule_ev;
    struct event *recheck_ev; /* re-runs the pass when a back-off or a swap wait ends */
    const struct sup_model *matrix_winner;      /* the model matrix_set was chosen for */
    const struct cfg_model_set *matrix_set;     /* its set (NULL: it runs alone) */
    uint64_t recheck_ms;      /* earliest such time found by the running pass; 0 = none */
    sup_model_output_fn output_cb;
    void *output_arg;
    sup_state_fn state_cb;
    void *state_arg;
    sup_retired_fn retired_cb; /* a retired model was freed: older configs may be unused */
    void *retired_arg;
    bool is_shutting_down;
    sup_stopped_fn stopped_cb;
    void *stopped_arg;
    struct event *stopped_ev;
};

/* Returns whether M has a process (or is a proxy-only model marked ready). */
static inline bool sup_is_running(const struct sup_model *m)
{
    return m->state == SUP_STARTING || m->state == SUP_READY || m->state == SUP_STOPPING;
}

/* sup_query.c */
/* Names the change of M from its state to NEXT for the state hook ("load", "ready"...). */
const char *sup_event_name(const struct sup_model *m, enum sup_state next);

/* sup_manager.c */
/* Asks for a scheduling pass on the next loop iteration. */
void sup_request_schedule(struct sup_manager *mgr);
/* Creates the model for config entry C of CFG and links it into MGR; NULL when out of
 * memory. */
struct sup_model *sup_model_new(struct sup_manager *mgr, const struct cfg *cfg,
                                const struct cfg_model *c);
/* Unlinks and frees a model without callbacks. */
void sup_model_release(struct sup_model *m);
/* Fails every waiter of M. */
void sup_fail_waiters(struct sup_model *m, int status, const char *message, int retry_s);

/* The one transition function: logs and records every state change. */
void sup_set_state(struct sup_model *m, enum sup_state next);
/* Marks a start as failed: fails waiters with 502, stops what runs. */
void sup_fail_start(struct sup_model *m, const char *reason);

/* sup_health.c */
/* Starts polling a model that was just spawned (first check after 5 ms), failing it after
 * healthCheckTimeout. */
void sup_health_start(struct sup_model *m);
/* Stops health polling. */
void sup_health_cancel(struct sup_model *m);
/* The model became healthy: ready, and a scheduling pass. */
void sup_become_ready(struct sup_model *m);
/* The health timer (event callback; ARG is the model): polls the model's health endpoint. */
void sup_health_timer_cb(evutil_socket_t fd, short what, void *arg);

/* sup_place.c */
/* Returns whether MGR has a memory budget (RAM, VRAM or both). */
bool sup_has_budget(const struct sup_manager *mgr);
/* Returns whether A and B would use the same process slot: the same id or the same port. */
bool sup_same_slot(const struct sup_model *a, const struct sup_model *b);
/* Returns whether starting A requires B to stop (groups, or the matrix router). */
bool sup_conflicts(const struct sup_model *a, const struct sup_model *b);
/* Estimated memory held, by budget dimension. */
struct sup_usage {
    uint64_t ram, vram;
};
/* Returns the estimated memory of the models holding it now (stopping ones included). */
struct sup_usage sup_usage(const struct sup_manager *mgr);
/* Returns the budget ("ram" or "vram") that model C exceeds on its own, or NULL. */
const char *sup_exceeds_budget(const struct sup_manager *mgr, const struct cfg_model *c);
/* Returns whether WINNER fits beside the models holding memory now (true without budget). */
bool sup_fits_now(const struct sup_manager *mgr, const struct sup_model *winner);
/* With a budget: marks the models that must stop for WINNER to fit (is_evicted); returns
 * whether WINNER fits once they are gone (nothing is marked when it cannot). */
bool sup_make_room(struct sup_manager *mgr, struct sup_model *winner);
/* Warns about models that can never fit the budget. */
void sup_warn_oversized(const struct sup_manager *mgr);
/* Logs that M is evicted to make room for WINNER, with the budget figures. */
void sup_log_eviction(const struct sup_model *m, const struct sup_model *winner);

#endif
