/*
 * Model manager.
 *
 * Every state change asks for a scheduling pass, which runs from its own zero-delay event
 * (never from inside a caller), so callbacks never re-enter the manager. A pass:
 *   1. serves waiters of ready models (within concurrencyLimit);
 *   2. picks the "winner": the model with the highest routing.scheduler fifo priority, then
 *      the one whose oldest waiting request is oldest of all;
 *   3. marks running models that cannot run beside the winner as draining: they admit no
 *      new requests, and stop as soon as their in-flight requests are done. A busy model
 *      first goes on serving its own traffic for up to limits.swap_wait_s (see
 *      may_keep_serving), so interleaved requests do not swap per request;
 *   4. starts the winner once nothing conflicting runs.
 * This is llama-swap's behaviour (a swap waits for in-flight requests of the model being
 * replaced) with FIFO fairness between models, so alternating traffic cannot starve one.
 *
 * Coexistence follows llama-swap's groups: models without a group share one implicit
 * group with swap=true, exclusive=true. Two members of one group conflict when the group
 * swaps; members of different groups conflict when the starting one's group is exclusive
 * and the other's is not persistent.
 */
#include "sup_manager.h"
#include "cfg.h"
#include "http_upstream.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"
#include "sup_argv.h"
#include "sup_proc.h"
#include "sup_ring.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>

#define RING_BYTES (64u << 10)
#define HEALTH_FIRST_MS 5
#define HEALTH_INTERVAL_MS 100 /* the polling interval once a start takes long */
#define HEALTH_REQUEST_MS 2000
#define ERROR_TAIL_LINES 8
#define SHUTDOWN_POLL_MS 20
#define BACKOFF_FIRST_MS 1000u     /* second retry in a row waits this long, then doubles */
#define BACKOFF_MAX_MS 60000u
#define BACKOFF_RESET_MS 60000u    /* ready this long before a crash: not a crash loop */
#define BACKOFF_MARGIN_MS 500u     /* least time left in the queue after a back-off ends */
#define ACTIVE_GAP_MS 250u         /* a model idle this long yields to a waiting model at once */

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
    sup_retired_fn retired_cb; /* a retired model was freed: older configs may be unused */
    void *retired_arg;
    bool is_shutting_down;
    sup_stopped_fn stopped_cb;
    void *stopped_arg;
    struct event *stopped_ev;
};

static void model_stop(struct sup_model *m);
static void model_release(struct sup_model *m);
static uint64_t ram_in_use(const struct sup_manager *mgr);
static void warn_oversized(const struct sup_manager *mgr);

const char *sup_state_name(enum sup_state state)
{
    static const char *const names[] = {"unloaded", "starting", "ready", "stopping", "failed"};
    return names[state];
}

/* The one transition function: logs and records every state change. */
static void set_state(struct sup_model *m, enum sup_state next)
{
    if (m->state == next)
        return;
    ig_info("model %s: %s -> %s", m->cfg->id, sup_state_name(m->state), sup_state_name(next));
    m->state = next;
}

/* Asks for a scheduling pass on the next loop iteration. */
static void request_schedule(struct sup_manager *mgr)
{
    event_active(mgr->schedule_ev, EV_TIMEOUT, 0);
}

/* Returns whether M has a process (or is a proxy-only model marked ready). */
static bool is_running(const struct sup_model *m)
{
    return m->state == SUP_STARTING || m->state == SUP_READY || m->state == SUP_STOPPING;
}

/* Returns whether A and B would use the same process slot: the same id or the same port. */
static bool same_slot(const struct sup_model *a, const struct sup_model *b)
{
    return strcmp(a->cfg->id, b->cfg->id) == 0 || (a->cfg->port > 0 && a->cfg->port == b->cfg->port);
}

/* Returns whether MGR has a memory budget. */
static bool has_budget(const struct sup_manager *mgr)
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
            if (m != winner && is_running(m) && m->cfg->cmd != NULL &&
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
static bool conflicts(const struct sup_model *a, const struct sup_model *b)
{
    bool is_implicit_swap = !has_budget(a->mgr);

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
static uint64_t ram_in_use(const struct sup_manager *mgr)
{
    const struct sup_model *m;
    uint64_t sum = 0;

    TAILQ_FOREACH(m, &mgr->all, link)
        if (is_running(m) && m->proc != NULL)
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
            (m->group != NULL && m->group->persistent) || conflicts(winner, m))
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
static bool make_room(struct sup_manager *mgr, struct sup_model *winner)
{
    uint64_t budget = mgr->cfg->budget.ram_bytes, used = ram_in_use(mgr), freed = 0;
    struct sup_model *m;

    TAILQ_FOREACH(m, &mgr->all, link)
        m->is_evicted = false;
    if (!has_budget(mgr) || winner == NULL || is_running(winner))
        return true;
    TAILQ_FOREACH(m, &mgr->all, link) {
        if (is_running(m) && m->proc != NULL && m != winner &&
            (m->state == SUP_STOPPING || m->is_retiring || m->is_draining || conflicts(winner, m)))
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

/* Unlinks and frees a waiter without calling it. */
static void waiter_free(struct sup_waiter *w)
{
    if (w->fail_status != 0) {
        TAILQ_REMOVE(&w->model->errors, w, link);
    } else {
        TAILQ_REMOVE(&w->model->waiters, w, link);
        w->model->n_waiters--;
    }
    event_free(w->timer);
    free(w->fail_message);
    free(w);
}

/* Calls a waiter with a result and frees it. */
static void waiter_finish(struct sup_waiter *w, int status, const char *message, int retry_s)
{
    struct sup_model *m = w->model;
    sup_ready_fn cb = w->cb;
    void *arg = w->arg;

    waiter_free(w);
    cb(m, status, message, retry_s, arg);
}

/* Fails every waiter of M. */
static void fail_waiters(struct sup_model *m, int status, const char *message, int retry_s)
{
    while (!TAILQ_EMPTY(&m->waiters))
        waiter_finish(TAILQ_FIRST(&m->waiters), status, message, retry_s);
}

/* Returns whether M admits one more request now. */
static bool admits(const struct sup_model *m)
{
    return m->state == SUP_READY && !m->is_draining && !m->mgr->is_shutting_down &&
           (m->cfg->concurrency_limit <= 0 || m->in_flight < m->cfg->concurrency_limit);
}

/* Hands the model to waiters while it admits them. */
static void serve_waiters(struct sup_model *m)
{
    while (!TAILQ_EMPTY(&m->waiters) && admits(m)) {
        m->in_flight++;
        evtimer_del(m->ttl_timer);
        waiter_finish(TAILQ_FIRST(&m->waiters), 0, NULL, 0);
    }
}

/* Records the reason a model failed, with the tail of its output. */
static void set_error(struct sup_model *m, const char *reason)
{
    char *tail = m->ring != NULL ? sup_ring_tail(m->ring, ERROR_TAIL_LINES) : NULL;

    free(m->last_error);
    if (asprintf(&m->last_error, "%s%s%s", reason, tail != NULL && tail[0] ? "; last output: " : "",
                 tail != NULL ? tail : "") < 0)
        m->last_error = NULL;
    free(tail);
    ig_warn("model %s: %s", m->cfg->id, m->last_error != NULL ? m->last_error : reason);
}

/* Stops health polling. */
static void cancel_health(struct sup_model *m)
{
    evtimer_del(m->health_timer);
    if (m->health_req != NULL) {
        upstream_cancel(m->health_req);
        m->health_req = NULL;
    }
}

/* Returns how long a request may wait in a model's queue, in seconds. */
static int queue_wait_s(const struct sup_manager *mgr)
{
    return mgr->cfg->limits.queue_timeout_s > 0 ? mgr->cfg->limits.queue_timeout_s
                                                : mgr->cfg->health_check_timeout_s;
}

/* Counts a failed start or a crash and sets the back-off before the next start: the first
 * retry is immediate, then 1 s, 2 s, 4 s ... up to BACKOFF_MAX_MS. The count restarts when a
 * model serves a request, or had been ready for BACKOFF_RESET_MS before it crashed, so only
 * a model that cannot start or dies before serving anything is held back. */
static void count_failure(struct sup_model *m)
{
    uint64_t now = ig_now_ms(), delay = 0;

    if (m->ready_ms != 0 && now - m->ready_ms >= BACKOFF_RESET_MS)
        m->failures = 0;
    m->failures++;
    if (m->failures >= 2) {
        int shift = m->failures - 2 < 6 ? m->failures - 2 : 6;
        delay = (uint64_t)BACKOFF_FIRST_MS << shift;
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
    }
    m->retry_after_ms = now + delay;
}

/* Marks a start as failed: fails waiters with 502, stops what runs. */
static void fail_start(struct sup_model *m, const char *reason)
{
    set_error(m, reason);
    count_failure(m);
    cancel_health(m);
    m->has_failed = true;
    if (m->proc != NULL) {
        model_stop(m);
    } else {
        set_state(m, SUP_FAILED);
    }
    fail_waiters(m, 502, m->last_error != NULL ? m->last_error : reason, 0);
    request_schedule(m->mgr);
}

/* A model's process exited. */
static void on_exit_cb(struct sup_proc *proc, int status, void *arg)
{
    struct sup_model *m = arg;
    char reason[128];
    (void)proc;

    m->proc = NULL;
    m->exit_status = status;
    cancel_health(m);
    evtimer_del(m->kill_timer);
    if (WIFEXITED(status))
        snprintf(reason, sizeof(reason), "process exited with status %d", WEXITSTATUS(status));
    else
        snprintf(reason, sizeof(reason), "process killed by signal %d", WTERMSIG(status));
    if (m->state == SUP_STARTING) {
        set_error(m, reason);
        count_failure(m);
        set_state(m, SUP_FAILED);
        fail_waiters(m, 502, m->last_error != NULL ? m->last_error : reason, 0);
    } else if (m->state == SUP_READY) {
        set_error(m, reason);
        count_failure(m);
        set_state(m, SUP_FAILED);
    } else {
        if (!m->has_failed && m->ready_ms != 0)
            m->failures = 0; /* a requested stop of a model that had been ready */
        set_state(m, m->has_failed ? SUP_FAILED : SUP_UNLOADED);
    }
    m->is_draining = false;
    m->is_unload_requested = false;
    request_schedule(m->mgr);
}

/* Passes child output to the output hook and logs it at debug level. */
static void on_output_cb(const char *data, size_t len, void *arg)
{
    struct sup_model *m = arg;
    if (m->mgr->output_cb != NULL)
        m->mgr->output_cb(m, data, len, m->mgr->output_arg);
    if (ig_log_enabled(IG_LOG_DEBUG))
        ig_debug("[%s] %.*s", m->cfg->id, (int)(len > 0 && data[len - 1] == '\n' ? len - 1 : len),
                 data);
}

/* The model became healthy. */
static void become_ready(struct sup_model *m)
{
    cancel_health(m);
    free(m->last_error);
    m->last_error = NULL;
    m->ready_ms = ig_now_ms();
    m->last_used_ms = m->ready_ms;
    ig_info("model %s: ready in %llu ms", m->cfg->id,
            (unsigned long long)(m->ready_ms - m->started_ms));
    set_state(m, SUP_READY);
    request_schedule(m->mgr);
}

/* Returns the delay before the next health check: 5 ms at first, growing by 1 ms per 20 ms
 * of start-up to HEALTH_INTERVAL_MS, so a model that loads fast is seen ready within a few
 * ms (a check costs one local GET) and a slow one is not polled needlessly. */
static struct timeval health_interval(const struct sup_model *m)
{
    uint64_t ms = HEALTH_FIRST_MS + (ig_now_ms() - m->started_ms) / 20;
    struct timeval tv = {0, (suseconds_t)((ms < HEALTH_INTERVAL_MS ? ms : HEALTH_INTERVAL_MS) * 1000)};
    return tv;
}

/* Health check finished: ready on a 200, else poll again until the deadline. */
static void health_done(struct upstream_req *ureq, int rc, const char *message, void *arg)
{
    struct sup_model *m = arg;
    struct timeval tv = health_interval(m);
    (void)ureq;
    (void)message;

    m->health_req = NULL;
    if (m->state != SUP_STARTING)
        return;
    if (rc == 0 && m->health_status == 200) {
        become_ready(m);
        return;
    }
    if (ig_now_ms() >= m->start_deadline_ms) {
        char reason[160];
        snprintf(reason, sizeof(reason), "not healthy after %d s (healthCheckTimeout)",
                 m->mgr->cfg->health_check_timeout_s);
        fail_start(m, reason);
        return;
    }
    evtimer_add(m->health_timer, &tv);
}

/* Records the status of a health response. */
static void health_headers(struct upstream_req *ureq, int status, const char *ct, void *arg)
{
    struct sup_model *m = arg;
    (void)ureq;
    (void)ct;
    m->health_status = status;
}

/* Polls the model's health endpoint. */
static void health_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    static const struct upstream_callbacks callbacks = {
        .on_headers = health_headers, .on_data = NULL, .on_done = health_done};
    struct sup_model *m = arg;
    struct upstream_spec spec = {.method = "GET",
                                 .url = m->health_url,
                                 .timeout_ms = HEALTH_REQUEST_MS,
                                 .connect_timeout_ms = HEALTH_REQUEST_MS};
    (void)fd;
    (void)what;

    if (m->state != SUP_STARTING)
        return;
    m->health_status = 0;
    m->health_req = upstream_start(m->mgr->pool, &spec, &callbacks, m);
    if (m->health_req == NULL)
        fail_start(m, "out of memory");
}

/* Spawns the model's command and starts health polling. */
static void model_start(struct sup_model *m)
{
    char **argv = NULL;
    char *cause = NULL;
    int argc = 0;

    free(m->last_error);
    m->last_error = NULL;
    m->has_failed = false;
    m->started_ms = ig_now_ms();
    m->ready_ms = 0;
    if (m->cfg->cmd == NULL) {
        set_state(m, SUP_READY);
        request_schedule(m->mgr);
        return;
    }
    if (sup_argv_split(m->cfg->cmd, &argv, &argc, &cause) != 0) {
        fail_start(m, cause != NULL ? cause : "invalid cmd");
        free(cause);
        return;
    }
    m->proc = sup_proc_spawn(m->mgr->procs, argv, m->cfg->env.items, m->cfg->env.len, m->ring,
                             on_exit_cb, on_output_cb, m, &cause);
    sup_argv_free(argv);
    if (m->proc == NULL) {
        fail_start(m, cause != NULL ? cause : "cannot start process");
        free(cause);
        return;
    }
    ig_info("model %s: started pid %d: %s", m->cfg->id, (int)sup_proc_pid(m->proc), m->cfg->cmd);
    set_state(m, SUP_STARTING);
    if (m->cfg->check_endpoint != NULL && strcmp(m->cfg->check_endpoint, "none") == 0) {
        become_ready(m);
        return;
    }
    m->start_deadline_ms = m->started_ms + (uint64_t)m->mgr->cfg->health_check_timeout_s * 1000u;
    struct timeval tv = {0, HEALTH_FIRST_MS * 1000};
    evtimer_add(m->health_timer, &tv);
}

/* A cmdStop process exited. */
static void helper_exit_cb(struct sup_proc *proc, int status, void *arg)
{
    struct sup_model *m = arg;
    (void)proc;
    (void)status;
    m->n_helpers--;
    request_schedule(m->mgr);
}

/* Runs cmdStop for M; returns whether it was started. */
static bool run_cmd_stop(struct sup_model *m)
{
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)sup_proc_pid(m->proc));
    char *line = ig_replace_all(m->cfg->cmd_stop, "${PID}", pid);
    char **argv = NULL, *cause = NULL;
    int argc = 0;
    bool is_started = false;

    if (line != NULL && sup_argv_split(line, &argv, &argc, &cause) == 0) {
        is_started = sup_proc_spawn(m->mgr->procs, argv, NULL, 0, m->ring, helper_exit_cb,
                                    on_output_cb, m, &cause) != NULL;
        if (is_started)
            m->n_helpers++;
        sup_argv_free(argv);
    }
    if (!is_started)
        ig_warn("model %s: cmdStop failed (%s); sending SIGTERM", m->cfg->id,
                cause != NULL ? cause : "invalid command");
    free(cause);
    free(line);
    return is_started;
}

/* Stops M: cmdStop or SIGTERM to its group, SIGKILL after its unloadTimeout. */
static void model_stop(struct sup_model *m)
{
    struct timeval tv = {m->cfg->unload_timeout_s, 0};

    cancel_health(m);
    evtimer_del(m->ttl_timer);
    if (m->proc == NULL) {
        if (m->state != SUP_FAILED)
            set_state(m, SUP_UNLOADED);
        m->is_draining = false;
        m->is_unload_requested = false;
        request_schedule(m->mgr);
        return;
    }
    if (m->state == SUP_STOPPING)
        return;
    set_state(m, SUP_STOPPING);
    if (m->cfg->cmd_stop == NULL || !run_cmd_stop(m))
        sup_proc_signal(m->proc, SIGTERM);
    evtimer_add(m->kill_timer, &tv);
}

/* Grace period over: kill the group. */
static void kill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sup_model *m = arg;
    (void)fd;
    (void)what;
    if (m->proc != NULL) {
        ig_warn("model %s: did not stop in %d s (unloadTimeout), sending SIGKILL", m->cfg->id,
                m->cfg->unload_timeout_s);
        sup_proc_signal(m->proc, SIGKILL);
    }
}

/* Idle for its TTL: unload. */
static void ttl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sup_model *m = arg;
    (void)fd;
    (void)what;
    if (m->state == SUP_READY && m->in_flight == 0 && m->n_waiters == 0) {
        ig_info("model %s: idle for its ttl, unloading", m->cfg->id);
        model_stop(m);
    }
}

/* Asks the running pass to run again at AT_MS (the earliest of all such asks wins). */
static void recheck_at(struct sup_manager *mgr, uint64_t at_ms)
{
    if (mgr->recheck_ms == 0 || at_ms < mgr->recheck_ms)
        mgr->recheck_ms = at_ms;
}

/* Returns the model to start next among those with waiters that cannot be served now: the
 * highest fifo priority, then the oldest waiting request. Models in a crash back-off are
 * left out (the pass runs again when the first back-off ends). */
static struct sup_model *pick_winner(struct sup_manager *mgr)
{
    struct sup_model *winner = NULL;
    uint64_t now = ig_now_ms();

    struct sup_model *m;

    TAILQ_FOREACH(m, &mgr->all, link) {
        if (TAILQ_EMPTY(&m->waiters) || (m->state == SUP_READY && !m->is_draining))
            continue;
        if (!is_running(m) && m->retry_after_ms > now) {
            recheck_at(mgr, m->retry_after_ms);
            continue;
        }
        if (has_budget(mgr) && m->cfg->mem_bytes > mgr->cfg->budget.ram_bytes)
            continue; /* can never fit: its requests got a 507 */
        if (winner == NULL || m->cfg->priority > winner->cfg->priority ||
            (m->cfg->priority == winner->cfg->priority &&
             TAILQ_FIRST(&m->waiters)->enqueued_ms < TAILQ_FIRST(&winner->waiters)->enqueued_ms))
            winner = m;
    }
    return winner;
}

/*
 * Returns whether running model M, which is in WINNER's way, may go on serving its own
 * requests for now instead of draining (swap-thrash avoidance). It may while it is active
 * (requests in flight or queued, or one ended less than ACTIVE_GAP_MS ago) and WINNER's
 * oldest request has waited less than limits.swap_wait_s. Interleaved traffic for two
 * models that cannot run together then swaps once per swap_wait_s, not once per request.
 */
static bool may_keep_serving(struct sup_model *m, const struct sup_model *winner, uint64_t now)
{
    uint64_t wait_ms = (uint64_t)m->mgr->cfg->limits.swap_wait_ms;
    uint64_t queue_ms = (uint64_t)queue_wait_s(m->mgr) * 1000u;
    uint64_t bound = TAILQ_FIRST(&winner->waiters)->enqueued_ms +
                     (wait_ms < queue_ms / 2 ? wait_ms : queue_ms / 2);

    if (m->state != SUP_READY || m->is_unload_requested || now >= bound)
        return false;
    if (m->in_flight > 0 || !TAILQ_EMPTY(&m->waiters)) {
        recheck_at(m->mgr, bound);
        return true;
    }
    if (m->last_used_ms + ACTIVE_GAP_MS > now) {
        recheck_at(m->mgr, m->last_used_ms + ACTIVE_GAP_MS < bound ? m->last_used_ms + ACTIVE_GAP_MS
                                                                 : bound);
        return true;
    }
    return false;
}

/* Frees retiring models once nothing refers to them any more. */
static void sweep_retired(struct sup_manager *mgr)
{
    struct sup_model *m, *next;

    for (m = TAILQ_FIRST(&mgr->all); m != NULL; m = next) {
        next = TAILQ_NEXT(m, link);
        if (m->is_retiring && m->proc == NULL && m->in_flight == 0 && m->n_helpers == 0 &&
            TAILQ_EMPTY(&m->waiters) && TAILQ_EMPTY(&m->errors) && !is_running(m)) {
            ig_debug("model %s: retired", m->cfg->id);
            model_release(m);
            if (mgr->retired_cb != NULL)
                mgr->retired_cb(mgr->retired_arg);
        }
    }
}

/* The scheduling pass described at the top of this file. */
static void schedule_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sup_manager *mgr = arg;
    struct sup_model *winner, *m;
    bool is_blocked = false;
    uint64_t now = ig_now_ms();
    (void)fd;
    (void)what;

    if (mgr->is_shutting_down)
        return;
    mgr->recheck_ms = 0;
    /* Ready models serve their own queue first, so a model that just became ready is
     * never stopped before the requests that started it got their turn. */
    TAILQ_FOREACH(m, &mgr->all, link)
        serve_waiters(m);
    winner = pick_winner(mgr);
    mgr->matrix_winner = NULL; /* the running set changed: choose the matrix set afresh */
    if (!make_room(mgr, winner))
        is_blocked = true; /* what runs cannot make room now: wait (bounded by the queue) */
    TAILQ_FOREACH(m, &mgr->all, link) {
        bool is_in_way = winner != NULL && is_running(m) &&
                         (conflicts(winner, m) || m->is_evicted ||
                          (m->is_retiring && same_slot(winner, m)));
        bool was_draining = m->is_draining;
        m->is_draining = m->is_unload_requested ||
                         (is_in_way && (was_draining || !may_keep_serving(m, winner, now)));
        if (m->is_draining && !was_draining && m->is_evicted)
            ig_info("model %s: evicted (least recently used) to make room for %s: it needs "
                    "%llu MiB, %llu MiB of budget.ram's %llu MiB are in use",
                    m->cfg->id, winner->cfg->id,
                    (unsigned long long)(winner->cfg->mem_bytes >> 20),
                    (unsigned long long)(ram_in_use(mgr) >> 20),
                    (unsigned long long)(mgr->cfg->budget.ram_bytes >> 20));
        if (m->is_draining &&
            (m->state == SUP_STARTING || (m->state == SUP_READY && m->in_flight == 0)))
            model_stop(m);
        if (is_in_way)
            is_blocked = true;
    }
    if (winner != NULL && !is_running(winner) && !is_blocked &&
        (!has_budget(mgr) ||
         ram_in_use(mgr) + winner->cfg->mem_bytes <= mgr->cfg->budget.ram_bytes))
        model_start(winner);
    TAILQ_FOREACH(m, &mgr->all, link)
        serve_waiters(m); /* a model that stopped draining serves its queue */
    sweep_retired(mgr);
    if (mgr->recheck_ms != 0) {
        uint64_t delay = mgr->recheck_ms > now ? mgr->recheck_ms - now : 0;
        struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000 * 1000)};
        evtimer_add(mgr->recheck_ev, &tv);
    }
}

/* A waiter's timer: deliver a deferred error, or time out in the queue. */
static void waiter_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sup_waiter *w = arg;
    char message[160];
    (void)fd;
    (void)what;

    if (w->fail_status != 0) {
        char *text = w->fail_message;
        w->fail_message = NULL;
        waiter_finish(w, w->fail_status, text != NULL ? text : "unavailable", w->retry_after_s);
        free(text);
        return;
    }
    snprintf(message, sizeof(message), "model %s was not ready within %d s",
             w->model->cfg->id, w->model->mgr->cfg->limits.queue_timeout_s);
    waiter_finish(w, 503, message, 5);
}

/* Queues a waiter; FAIL_STATUS non-zero makes it an error delivered on the next turn. */
static int enqueue(struct sup_model *m, sup_ready_fn cb, void *arg, struct sup_waiter **out,
                   int fail_status, const char *fail_message, int retry_s)
{
    struct sup_waiter *w = calloc(1, sizeof(*w));
    struct timeval tv = {fail_status != 0 ? 0 : queue_wait_s(m->mgr), 0};

    if (w == NULL)
        return IG_ENOMEM;
    w->timer = evtimer_new(m->mgr->base, waiter_timer_cb, w);
    if (w->timer == NULL) {
        free(w);
        return IG_ENOMEM;
    }
    w->model = m;
    w->cb = cb;
    w->arg = arg;
    w->enqueued_ms = ig_now_ms();
    w->fail_status = fail_status;
    w->retry_after_s = retry_s;
    w->fail_message = fail_message != NULL ? strdup(fail_message) : NULL;
    if (fail_status != 0) {
        TAILQ_INSERT_TAIL(&m->errors, w, link);
    } else {
        TAILQ_INSERT_TAIL(&m->waiters, w, link);
        m->n_waiters++;
    }
    evtimer_add(w->timer, &tv);
    *out = w;
    if (fail_status == 0)
        request_schedule(m->mgr);
    return 1;
}

int sup_acquire(struct sup_model *m, sup_ready_fn cb, void *arg, struct sup_waiter **waiter)
{
    const struct cfg *cfg = m->mgr->cfg;

    if (m->mgr->is_shutting_down)
        return enqueue(m, cb, arg, waiter, 503, "server is shutting down", 5);
    if (m->is_retiring)
        return enqueue(m, cb, arg, waiter, 503, "the model was replaced by a configuration reload",
                       1);
    m->is_unload_requested = false;
    if (admits(m) && TAILQ_EMPTY(&m->waiters)) {
        m->in_flight++;
        evtimer_del(m->ttl_timer);
        return 0;
    }
    if (m->state == SUP_READY && !m->is_draining && m->cfg->concurrency_limit > 0)
        return enqueue(m, cb, arg, waiter, 429, "too many concurrent requests for this model",
                       1);
    if ((int)m->n_waiters >= cfg->limits.queue_length)
        return enqueue(m, cb, arg, waiter, 503, "too many requests waiting for this model", 1);
    if (has_budget(m->mgr) && m->cfg->mem_bytes > cfg->budget.ram_bytes) {
        char text[256];
        snprintf(text, sizeof(text),
                 "model %s needs an estimated %llu MiB, more than the whole budget.ram of "
                 "%llu MiB",
                 m->cfg->id, (unsigned long long)(m->cfg->mem_bytes >> 20),
                 (unsigned long long)(cfg->budget.ram_bytes >> 20));
        return enqueue(m, cb, arg, waiter, 507, text, 0);
    }
    /* A request waits out a back-off only when the start can begin a while before its own
     * queue deadline; otherwise waiting would end in a time-out anyway. */
    uint64_t now = ig_now_ms(), wait_ms = (uint64_t)queue_wait_s(m->mgr) * 1000u;
    uint64_t margin_ms = wait_ms / 2 < BACKOFF_MARGIN_MS ? wait_ms / 2 : BACKOFF_MARGIN_MS;
    if (!is_running(m) && m->retry_after_ms + margin_ms > now + wait_ms) {
        char *text = NULL;
        int retry_s = (int)((m->retry_after_ms - now + 999) / 1000);
        if (asprintf(&text, "model %s failed %d times in a row; next start in %d s; last error: %s",
                     m->cfg->id, m->failures, retry_s,
                     m->last_error != NULL ? m->last_error : "unknown") < 0)
            text = NULL;
        int rc = enqueue(m, cb, arg, waiter, 503, text != NULL ? text : "model back-off", retry_s);
        free(text);
        return rc;
    }
    return enqueue(m, cb, arg, waiter, 0, NULL, 0);
}

void sup_waiter_cancel(struct sup_waiter *waiter)
{
    waiter_free(waiter);
}

void sup_release(struct sup_model *m)
{
    m->in_flight--;
    m->last_used_ms = ig_now_ms();
    if (m->state == SUP_READY)
        m->failures = 0; /* it served a request: whatever crashed before was not a loop */
    if (m->in_flight > 0)
        return;
    request_schedule(m->mgr); /* another model may be waiting for this one to idle */
    if (m->is_draining || !TAILQ_EMPTY(&m->waiters))
        return;
    int ttl_s = m->cfg->ttl_s < 0 ? m->mgr->cfg->global_ttl_s : m->cfg->ttl_s;
    if (ttl_s > 0 && m->state == SUP_READY && m->proc != NULL) {
        struct timeval tv = {ttl_s, 0};
        evtimer_add(m->ttl_timer, &tv);
    }
}

void sup_unload(struct sup_model *m)
{
    if (is_running(m)) {
        m->is_unload_requested = true;
    } else if (m->state == SUP_FAILED) {
        set_state(m, SUP_UNLOADED); /* the operator cleared it: no back-off either */
        m->failures = 0;
        m->retry_after_ms = 0;
    }
    request_schedule(m->mgr);
}

void sup_unload_all(struct sup_manager *mgr)
{
    for (size_t i = 0; i < mgr->cfg->n_models; i++)
        sup_unload(mgr->active[i]);
}

/* A preload got its model (or failed): it holds no request. */
static void on_preload_ready(struct sup_model *m, int status, const char *message,
                             int retry_after_s, void *arg)
{
    (void)retry_after_s;
    (void)arg;
    if (status == 0)
        sup_release(m);
    else
        ig_warn("preload of model %s failed: %s", m->cfg->id, message);
}

void sup_preload(struct sup_manager *mgr)
{
    for (size_t i = 0; i < mgr->cfg->preload.len; i++) {
        struct sup_model *m = sup_find(mgr, mgr->cfg->preload.items[i]);
        struct sup_waiter *waiter;
        if (m == NULL)
            continue;
        ig_info("preloading model %s", m->cfg->id);
        if (sup_acquire(m, on_preload_ready, NULL, &waiter) == 0)
            sup_release(m);
    }
}

bool sup_model_check_alive(struct sup_model *m)
{
    if (m->proc == NULL)
        return m->cfg->cmd == NULL && m->state == SUP_READY; /* proxy-only */
    sup_procs_reap(m->mgr->procs);
    return m->proc != NULL;
}

void sup_model_abort(struct sup_model *m, const char *reason)
{
    if (m->proc == NULL || m->state == SUP_STOPPING)
        return;
    set_error(m, reason);
    count_failure(m);
    m->has_failed = true;
    cancel_health(m);
    evtimer_del(m->ttl_timer);
    set_state(m, SUP_STOPPING);
    sup_proc_signal(m->proc, SIGKILL);
}

void sup_set_retired_hook(struct sup_manager *mgr, sup_retired_fn cb, void *arg)
{
    mgr->retired_cb = cb;
    mgr->retired_arg = arg;
}

void sup_set_output_hook(struct sup_manager *mgr, sup_model_output_fn cb, void *arg)
{
    mgr->output_cb = cb;
    mgr->output_arg = arg;
}

void sup_model_info(const struct sup_model *m, struct sup_model_info *out)
{
    uint64_t now = ig_now_ms();

    memset(out, 0, sizeof(*out));
    out->state = m->state;
    out->pid = m->proc != NULL ? (int)sup_proc_pid(m->proc) : 0;
    out->in_flight = m->in_flight;
    out->waiting = m->n_waiters;
    out->failures = m->failures;
    out->is_draining = m->is_draining;
    out->last_error = m->last_error;
    out->exit_code = m->exit_status < 0 ? -1
                     : WIFEXITED(m->exit_status) ? WEXITSTATUS(m->exit_status)
                                                  : 128 + WTERMSIG(m->exit_status);
    out->retry_in_ms = m->retry_after_ms > now && !is_running(m) ? m->retry_after_ms - now : 0;
    out->uptime_ms = m->state == SUP_READY && m->ready_ms != 0 ? now - m->ready_ms : 0;
    out->idle_ms = m->state == SUP_READY && m->in_flight == 0 && m->last_used_ms != 0
                       ? now - m->last_used_ms
                       : 0;
}

char *sup_model_log_tail(const struct sup_model *m, size_t max_lines)
{
    return sup_ring_tail(m->ring, max_lines);
}

/* Polls during shutdown until every child (cmdStop helpers too) exited, then reports. */
static void stopped_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sup_manager *mgr = arg;
    struct timeval tv = {0, SHUTDOWN_POLL_MS * 1000};
    (void)fd;
    (void)what;
    if (sup_procs_alive(mgr->procs) > 0) {
        evtimer_add(mgr->stopped_ev, &tv);
        return;
    }
    if (mgr->stopped_cb != NULL) {
        sup_stopped_fn cb = mgr->stopped_cb;
        mgr->stopped_cb = NULL;
        cb(mgr->stopped_arg);
    }
}

void sup_shutdown(struct sup_manager *mgr, sup_stopped_fn cb, void *arg)
{
    struct sup_model *m;

    mgr->is_shutting_down = true;
    mgr->stopped_cb = cb;
    mgr->stopped_arg = arg;
    TAILQ_FOREACH(m, &mgr->all, link) {
        fail_waiters(m, 503, "server is shutting down", 5);
        if (m->proc != NULL)
            model_stop(m);
    }
    stopped_cb(-1, 0, mgr);
}

/* Creates the model for config entry C of CFG and links it into MGR; NULL when out of
 * memory. */
static struct sup_model *model_new(struct sup_manager *mgr, const struct cfg *cfg,
                                   const struct cfg_model *c)
{
    struct sup_model *m = calloc(1, sizeof(*m));
    const char *endpoint = c->check_endpoint != NULL ? c->check_endpoint : "/health";
    size_t plen = c->proxy != NULL ? strlen(c->proxy) : 0;

    if (m == NULL)
        return NULL;
    m->mgr = mgr;
    m->cfg = c;
    m->group = cfg_model_group(cfg, c->id);
    m->exit_status = -1;
    TAILQ_INIT(&m->waiters);
    TAILQ_INIT(&m->errors);
    m->ring = sup_ring_new(RING_BYTES);
    m->health_timer = evtimer_new(mgr->base, health_timer_cb, m);
    m->kill_timer = evtimer_new(mgr->base, kill_timer_cb, m);
    m->ttl_timer = evtimer_new(mgr->base, ttl_timer_cb, m);
    if (plen > 0 && c->proxy[plen - 1] == '/' && endpoint[0] == '/')
        plen--;
    if (asprintf(&m->health_url, "%.*s%s%s", (int)plen, c->proxy != NULL ? c->proxy : "",
                 endpoint[0] == '/' ? "" : "/", endpoint) < 0)
        m->health_url = NULL;
    TAILQ_INSERT_TAIL(&mgr->all, m, link);
    if (m->ring == NULL || m->health_timer == NULL || m->kill_timer == NULL ||
        m->ttl_timer == NULL || m->health_url == NULL) {
        model_release(m);
        return NULL;
    }
    return m;
}

struct sup_manager *sup_manager_new(struct event_base *base, struct upstream_pool *pool,
                                    const struct cfg *cfg, char **cause)
{
    struct sup_manager *mgr = calloc(1, sizeof(*mgr));

    if (mgr == NULL)
        goto fail;
    mgr->base = base;
    mgr->pool = pool;
    mgr->cfg = cfg;
    mgr->procs = sup_procs_new(base);
    mgr->schedule_ev = event_new(base, -1, 0, schedule_cb, mgr);
    mgr->recheck_ev = evtimer_new(base, schedule_cb, mgr);
    mgr->stopped_ev = evtimer_new(base, stopped_cb, mgr);
    TAILQ_INIT(&mgr->all);
    mgr->active = calloc(cfg->n_models > 0 ? cfg->n_models : 1, sizeof(*mgr->active));
    if (mgr->procs == NULL || mgr->schedule_ev == NULL || mgr->recheck_ev == NULL ||
        mgr->stopped_ev == NULL || mgr->active == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->n_models; i++)
        if ((mgr->active[i] = model_new(mgr, cfg, &cfg->models[i])) == NULL)
            goto fail;
    warn_oversized(mgr);
    return mgr;
fail:
    if (cause != NULL)
        *cause = strdup("out of memory creating the model manager");
    sup_manager_free(mgr);
    return NULL;
}

/* Unlinks and frees a model without callbacks. */
static void model_release(struct sup_model *m)
{
    TAILQ_REMOVE(&m->mgr->all, m, link);
    if (m->health_req != NULL)
        upstream_cancel(m->health_req);
    while (!TAILQ_EMPTY(&m->waiters))
        waiter_free(TAILQ_FIRST(&m->waiters));
    while (!TAILQ_EMPTY(&m->errors))
        waiter_free(TAILQ_FIRST(&m->errors));
    if (m->proc != NULL)
        sup_proc_detach(m->proc);
    if (m->health_timer != NULL)
        event_free(m->health_timer);
    if (m->kill_timer != NULL)
        event_free(m->kill_timer);
    if (m->ttl_timer != NULL)
        event_free(m->ttl_timer);
    sup_ring_free(m->ring);
    free(m->health_url);
    free(m->last_error);
    free(m);
}

void sup_manager_free(struct sup_manager *mgr)
{
    if (mgr == NULL)
        return;
    sup_procs_detach_all(mgr->procs); /* cmdStop helpers point at their models too */
    while (!TAILQ_EMPTY(&mgr->all))
        model_release(TAILQ_FIRST(&mgr->all));
    sup_procs_free(mgr->procs);
    if (mgr->schedule_ev != NULL)
        event_free(mgr->schedule_ev);
    if (mgr->recheck_ev != NULL)
        event_free(mgr->recheck_ev);
    if (mgr->stopped_ev != NULL)
        event_free(mgr->stopped_ev);
    free(mgr->active);
    free(mgr);
}

/* Moves every waiter of FROM to the end of TO's queue (a reload replaced FROM by TO). */
static void move_waiters(struct sup_model *from, struct sup_model *to)
{
    while (!TAILQ_EMPTY(&from->waiters)) {
        struct sup_waiter *w = TAILQ_FIRST(&from->waiters);
        TAILQ_REMOVE(&from->waiters, w, link);
        from->n_waiters--;
        w->model = to;
        TAILQ_INSERT_TAIL(&to->waiters, w, link);
        to->n_waiters++;
    }
}

/* Marks M as replaced or removed: it admits nothing more and stops once idle. */
static void retire(struct sup_model *m)
{
    m->is_retiring = true;
    m->is_unload_requested = true;
    evtimer_del(m->ttl_timer);
}

/* Returns the model of MGR's current config whose id is exactly ID, or NULL. */
static struct sup_model *active_by_id(const struct sup_manager *mgr, const char *id)
{
    const struct cfg_model *c = cfg_find_model(mgr->cfg, id);
    return c != NULL && strcmp(c->id, id) == 0 ? mgr->active[c - mgr->cfg->models] : NULL;
}

int sup_manager_reload(struct sup_manager *mgr, const struct cfg *cfg,
                       struct sup_reload_summary *summary)
{
    struct sup_model **active = calloc(cfg->n_models > 0 ? cfg->n_models : 1, sizeof(*active));
    struct sup_reload_summary sum = {0};

    if (active == NULL)
        return IG_ENOMEM;
    /* First create what is new, so running out of memory changes nothing. */
    for (size_t i = 0; i < cfg->n_models; i++) {
        struct sup_model *old = active_by_id(mgr, cfg->models[i].id);
        if (old != NULL && cfg_model_same_process(old->cfg, &cfg->models[i]))
            continue;
        if ((active[i] = model_new(mgr, cfg, &cfg->models[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                if (active[j] != NULL)
                    model_release(active[j]);
            free(active);
            return IG_ENOMEM;
        }
        if (old != NULL) {
            ig_info("model %s: changed by the reload; the new version starts after the old one "
                    "stops", cfg->models[i].id);
            sum.changed++;
        } else {
            sum.added++;
        }
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (active[i] != NULL)
            continue;
        active[i] = active_by_id(mgr, cfg->models[i].id);
        active[i]->cfg = &cfg->models[i]; /* ttl, aliases, filters... apply at once */
        active[i]->group = cfg_model_group(cfg, cfg->models[i].id);
        sum.kept++;
    }
    /* Old models that were not kept retire; their queued requests move to the new version
     * of the same id, or fail when the id is gone. */
    for (size_t i = 0; i < mgr->cfg->n_models; i++) {
        struct sup_model *old = mgr->active[i];
        const struct cfg_model *c = cfg_find_model(cfg, old->cfg->id);
        struct sup_model *next =
            c != NULL && strcmp(c->id, old->cfg->id) == 0 ? active[c - cfg->models] : NULL;
        if (next == old)
            continue;
        retire(old);
        if (next != NULL) {
            move_waiters(old, next);
        } else {
            ig_info("model %s: removed by the reload; it stops once idle", old->cfg->id);
            fail_waiters(old, 503, "the model was removed by a configuration reload", 1);
            sum.removed++;
        }
    }
    free(mgr->active);
    mgr->active = active;
    mgr->cfg = cfg;
    warn_oversized(mgr);
    if (summary != NULL)
        *summary = sum;
    request_schedule(mgr);
    return 0;
}

uint64_t sup_ram_in_use(const struct sup_manager *mgr)
{
    return ram_in_use(mgr);
}

/* Warns about models that can never fit the budget. */
static void warn_oversized(const struct sup_manager *mgr)
{
    const struct cfg *cfg = mgr->cfg;

    for (size_t i = 0; has_budget(mgr) && i < cfg->n_models; i++)
        if (cfg->models[i].mem_bytes > cfg->budget.ram_bytes)
            ig_warn("model %s needs an estimated %llu MiB, more than budget.ram (%llu MiB): "
                    "requests for it will get a 507",
                    cfg->models[i].id, (unsigned long long)(cfg->models[i].mem_bytes >> 20),
                    (unsigned long long)(cfg->budget.ram_bytes >> 20));
}

bool sup_manager_uses_cfg(const struct sup_manager *mgr, const struct cfg *cfg)
{
    const struct sup_model *m;

    if (mgr->cfg == cfg)
        return true;
    TAILQ_FOREACH(m, &mgr->all, link)
        if (m->cfg >= cfg->models && m->cfg < cfg->models + cfg->n_models)
            return true;
    return false;
}

struct sup_model *sup_find(struct sup_manager *mgr, const char *name)
{
    const struct cfg_model *c = cfg_find_model(mgr->cfg, name);

    if (c == NULL)
        return NULL;
    return mgr->active[c - mgr->cfg->models];
}

const struct cfg_model *sup_model_cfg(const struct sup_model *model)
{
    return model->cfg;
}

enum sup_state sup_model_state(const struct sup_model *model)
{
    return model->state;
}

json_t *sup_running_json(struct sup_manager *mgr)
{
    json_t *list = json_array();
    const struct sup_model *m;

    TAILQ_FOREACH(m, &mgr->all, link) {
        int ttl_s = m->cfg->ttl_s < 0 ? mgr->cfg->global_ttl_s : m->cfg->ttl_s;
        if (!is_running(m))
            continue;
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s?, s:s?, s:i, s:s?, s:s?, s:i}", "model", m->cfg->id,
                            "state", sup_state_name(m->state), "cmd", m->cfg->cmd, "proxy",
                            m->cfg->proxy, "ttl", ttl_s, "name", m->cfg->name, "description",
                            m->cfg->description, "in_flight", m->in_flight));
        if (list == NULL)
            break;
    }
    return list;
}

size_t sup_children_alive(const struct sup_manager *mgr)
{
    return sup_procs_alive(mgr->procs);
}
