/* Read-only views of the manager (snapshots, lists), its hooks and the start-up preload. */
#include "sup_internal.h"
#include "cfg.h"
#include "ig_log.h"
#include "ig_time.h"
#include "sup_proc.h"
#include "sup_ring.h"

#include <string.h>
#include <sys/wait.h>

void sup_set_retired_hook(struct sup_manager *mgr, sup_retired_fn cb, void *arg)
{
    mgr->retired_cb = cb;
    mgr->retired_arg = arg;
}

void sup_set_state_hook(struct sup_manager *mgr, sup_state_fn cb, void *arg)
{
    mgr->state_cb = cb;
    mgr->state_arg = arg;
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
    out->retry_in_ms = m->retry_after_ms > now && !sup_is_running(m) ? m->retry_after_ms - now : 0;
    out->uptime_ms = m->state == SUP_READY && m->ready_ms != 0 ? now - m->ready_ms : 0;
    out->idle_ms = m->state == SUP_READY && m->in_flight == 0 && m->last_used_ms != 0
                       ? now - m->last_used_ms
                       : 0;
    out->load_progress = m->state == SUP_STARTING ? m->load_progress : -1;
}

char *sup_model_log_tail(const struct sup_model *m, size_t max_lines)
{
    return sup_ring_tail(m->ring, max_lines);
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
        if (!sup_is_running(m))
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

const char *sup_state_name(enum sup_state state)
{
    static const char *const names[] = {"unloaded", "starting", "ready", "stopping", "failed"};
    return names[state];
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

const char *sup_event_name(const struct sup_model *m, enum sup_state next)
{
    switch (next) {
    case SUP_STARTING:
        return m->failures > 0 ? "restart" : "load";
    case SUP_READY:
        return "ready";
    case SUP_STOPPING: /* killed after a failed start or a hang; else asked to stop */
        return m->has_failed ? "abort" : m->is_evicted ? "evict" : "unload";
    case SUP_FAILED: /* never ready in this run: a failed start; else a crash */
        return m->state == SUP_STARTING || m->ready_ms == 0 ? "failed" : "crash";
    case SUP_UNLOADED:
        break;
    }
    return "stopped";
}
