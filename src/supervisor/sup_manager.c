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
 * Who may run beside whom (groups, matrix, budget) is sup_place.c's; health polling is
 * sup_health.c's; reloads are sup_reload.c's; read-only views are sup_query.c's.
 */
#include "sup_internal.h"
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
#define ERROR_TAIL_LINES 8
#define SHUTDOWN_POLL_MS 20
#define BACKOFF_FIRST_MS 1000u     /* second retry in a row waits this long, then doubles */
#define BACKOFF_MAX_MS 60000u
#define BACKOFF_RESET_MS 60000u    /* ready this long before a crash: not a crash loop */
#define BACKOFF_MARGIN_MS 500u     /* least time left in the queue after a back-off ends */
#define ACTIVE_GAP_MS 250u         /* a model idle this long yields to a waiting model at once */

static void model_stop(struct sup_model *m);

/* The one transition function: logs and records every state change. */
void sup_set_state(struct sup_model *m, enum sup_state next)
{
    uint64_t now = ig_now_ms();
    const char *event;
    bool was_starting = m->state == SUP_STARTING;

    if (m->state == next)
        return;
    ig_info("model %s: %s -> %s", m->cfg->id, sup_state_name(m->state), sup_state_name(next));
    event = sup_event_name(m, next);
    m->state = next;
    if (next == SUP_STARTING)
        m->load_progress = -1; /* until its engine reports some */
    if (m->mgr->state_cb != NULL)
        m->mgr->state_cb(m, next, event, next == SUP_FAILED ? m->last_error : NULL,
                         next == SUP_READY && !was_starting ? 0 /* no process to load */
                         : m->state_ms != 0                 ? now - m->state_ms
                                                            : 0,
                         m->mgr->state_arg);
    m->state_ms = now;
}

/* Asks for a scheduling pass on the next loop iteration. */
void sup_request_schedule(struct sup_manager *mgr)
{
    event_active(mgr->schedule_ev, EV_TIMEOUT, 0);
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
void sup_fail_waiters(struct sup_model *m, int status, const char *message, int retry_s)
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
void sup_fail_start(struct sup_model *m, const char *reason)
{
    set_error(m, reason);
    count_failure(m);
    sup_health_cancel(m);
    m->has_failed = true;
    if (m->proc != NULL) {
        model_stop(m);
    } else {
        sup_set_state(m, SUP_FAILED);
    }
    sup_fail_waiters(m, 502, m->last_error != NULL ? m->last_error : reason, 0);
    sup_request_schedule(m->mgr);
}

/* A model's process exited. */
static void on_exit_cb(struct sup_proc *proc, int status, void *arg)
{
    struct sup_model *m = arg;
    char reason[128];
    (void)proc;

    m->proc = NULL;
    m->exit_status = status;
    sup_health_cancel(m);
    evtimer_del(m->kill_timer);
    if (WIFEXITED(status))
        snprintf(reason, sizeof(reason), "process exited with status %d", WEXITSTATUS(status));
    else
        snprintf(reason, sizeof(reason), "process killed by signal %d", WTERMSIG(status));
    if (m->state == SUP_STARTING) {
        set_error(m, reason);
        count_failure(m);
        sup_set_state(m, SUP_FAILED);
        sup_fail_waiters(m, 502, m->last_error != NULL ? m->last_error : reason, 0);
    } else if (m->state == SUP_READY) {
        set_error(m, reason);
        count_failure(m);
        sup_set_state(m, SUP_FAILED);
    } else {
        if (!m->has_failed && m->ready_ms != 0)
            m->failures = 0; /* a requested stop of a model that had been ready */
        sup_set_state(m, m->has_failed ? SUP_FAILED : SUP_UNLOADED);
    }
    m->is_draining = false;
    m->is_unload_requested = false;
    sup_request_schedule(m->mgr);
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
        sup_set_state(m, SUP_READY);
        sup_request_schedule(m->mgr);
        return;
    }
    if (sup_argv_split(m->cfg->cmd, &argv, &argc, &cause) != 0) {
        sup_fail_start(m, cause != NULL ? cause : "invalid cmd");
        free(cause);
        return;
    }
    m->proc = sup_proc_spawn(m->mgr->procs, argv, m->cfg->env.items, m->cfg->env.len, m->ring,
                             on_exit_cb, on_output_cb, m, &cause);
    sup_argv_free(argv);
    if (m->proc == NULL) {
        sup_fail_start(m, cause != NULL ? cause : "cannot start process");
        free(cause);
        return;
    }
    ig_info("model %s: started pid %d: %s", m->cfg->id, (int)sup_proc_pid(m->proc), m->cfg->cmd);
    sup_set_state(m, SUP_STARTING);
    if (m->cfg->check_endpoint != NULL && strcmp(m->cfg->check_endpoint, "none") == 0) {
        sup_become_ready(m);
        return;
    }
    sup_health_start(m);
}

/* A cmdStop process exited. */
static void helper_exit_cb(struct sup_proc *proc, int status, void *arg)
{
    struct sup_model *m = arg;
    (void)proc;
    (void)status;
    m->n_helpers--;
    sup_request_schedule(m->mgr);
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

    sup_health_cancel(m);
    evtimer_del(m->ttl_timer);
    if (m->proc == NULL) {
        if (m->state != SUP_FAILED)
            sup_set_state(m, SUP_UNLOADED);
        m->is_draining = false;
        m->is_unload_requested = false;
        sup_request_schedule(m->mgr);
        return;
    }
    if (m->state == SUP_STOPPING)
        return;
    sup_set_state(m, SUP_STOPPING);
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
        if (!sup_is_running(m) && m->retry_after_ms > now) {
            recheck_at(mgr, m->retry_after_ms);
            continue;
        }
        if (sup_exceeds_budget(mgr, m->cfg) != NULL)
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
            TAILQ_EMPTY(&m->waiters) && TAILQ_EMPTY(&m->errors) && !sup_is_running(m)) {
            ig_debug("model %s: retired", m->cfg->id);
            sup_model_release(m);
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
    if (!sup_make_room(mgr, winner))
        is_blocked = true; /* what runs cannot make room now: wait (bounded by the queue) */
    TAILQ_FOREACH(m, &mgr->all, link) {
        bool is_in_way = winner != NULL && sup_is_running(m) &&
                         (sup_conflicts(winner, m) || m->is_evicted ||
                          (m->is_retiring && sup_same_slot(winner, m)));
        bool was_draining = m->is_draining;
        m->is_draining = m->is_unload_requested ||
                         (is_in_way && (was_draining || !may_keep_serving(m, winner, now)));
        if (m->is_draining && !was_draining && m->is_evicted)
            sup_log_eviction(m, winner);
        if (m->is_draining &&
            (m->state == SUP_STARTING || (m->state == SUP_READY && m->in_flight == 0)))
            model_stop(m);
        if (is_in_way)
            is_blocked = true;
    }
    if (winner != NULL && !sup_is_running(winner) && !is_blocked && sup_fits_now(mgr, winner))
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
        sup_request_schedule(m->mgr);
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
    const char *over = sup_exceeds_budget(m->mgr, m->cfg);
    if (over != NULL) {
        bool is_ram = strcmp(over, "ram") == 0;
        char text[320];
        snprintf(text, sizeof(text),
                 "model %s needs an estimated %llu MiB of %s, more than the whole budget.%s of "
                 "%llu MiB",
                 m->cfg->id,
                 (unsigned long long)((is_ram ? m->cfg->mem_bytes : m->cfg->vram_bytes) >> 20),
                 is_ram ? "RAM" : "GPU memory", over,
                 (unsigned long long)((is_ram ? cfg->budget.ram_bytes : cfg->budget.vram_bytes) >>
                                      20));
        return enqueue(m, cb, arg, waiter, 507, text, 0);
    }
    /* A request waits out a back-off only when the start can begin a while before its own
     * queue deadline; otherwise waiting would end in a time-out anyway. */
    uint64_t now = ig_now_ms(), wait_ms = (uint64_t)queue_wait_s(m->mgr) * 1000u;
    uint64_t margin_ms = wait_ms / 2 < BACKOFF_MARGIN_MS ? wait_ms / 2 : BACKOFF_MARGIN_MS;
    if (!sup_is_running(m) && m->retry_after_ms + margin_ms > now + wait_ms) {
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
    sup_request_schedule(m->mgr); /* another model may be waiting for this one to idle */
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
    if (sup_is_running(m)) {
        m->is_unload_requested = true;
    } else if (m->state == SUP_FAILED) {
        sup_set_state(m, SUP_UNLOADED); /* the operator cleared it: no back-off either */
        m->failures = 0;
        m->retry_after_ms = 0;
    }
    sup_request_schedule(m->mgr);
}

void sup_unload_all(struct sup_manager *mgr)
{
    for (size_t i = 0; i < mgr->cfg->n_models; i++)
        sup_unload(mgr->active[i]);
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
    sup_health_cancel(m);
    evtimer_del(m->ttl_timer);
    sup_set_state(m, SUP_STOPPING);
    sup_proc_signal(m->proc, SIGKILL);
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
        sup_fail_waiters(m, 503, "server is shutting down", 5);
        if (m->proc != NULL)
            model_stop(m);
    }
    stopped_cb(-1, 0, mgr);
}

/* Creates the model for config entry C of CFG and links it into MGR; NULL when out of
 * memory. */
struct sup_model *sup_model_new(struct sup_manager *mgr, const struct cfg *cfg,
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
    m->health_timer = evtimer_new(mgr->base, sup_health_timer_cb, m);
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
        sup_model_release(m);
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
        if ((mgr->active[i] = sup_model_new(mgr, cfg, &cfg->models[i])) == NULL)
            goto fail;
    sup_warn_oversized(mgr);
    return mgr;
fail:
    if (cause != NULL)
        *cause = strdup("out of memory creating the model manager");
    sup_manager_free(mgr);
    return NULL;
}

/* Unlinks and frees a model without callbacks. */
void sup_model_release(struct sup_model *m)
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
        sup_model_release(TAILQ_FIRST(&mgr->all));
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

