/*
 * Configuration reloads (SIGHUP, POST /admin/reload, POST /models/rescan). Reading the file
 * and scanning models_dir (GGUF heads) is blocking work, so it runs on a worker thread; the
 * loop only applies the result. Asks that arrive while a reload runs are answered by the
 * next one, which starts as soon as the current one is applied (the file may have changed
 * after the worker read it).
 */
#include "cfg.h"
#include "gw_backends.h"
#include "gw_internal.h"
#include "http_front.h"
#include "http_server.h"
#include "ig_log.h"
#include "model_catalog.h"
#include "sup_manager.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

/* An admin request waiting for a reload's outcome. */
struct waiter {
    struct gw_reloader *r;
    struct http_request *req;
    bool is_next; /* for the reload after the running one */
    TAILQ_ENTRY(waiter) link;
};

struct gw_reloader {
    struct gw_app *app;
    int pipe_fds[2];
    struct event *done_ev;
    pthread_t thread;
    bool is_running;
    bool is_again; /* asked again while running */
    TAILQ_HEAD(, waiter) waiters;
    /* Written by the worker before it signals, read by the loop after. */
    const char *path;
    const struct cfg *prev;
    struct cfg *next;
    char *cause;
    int rc;
    struct http_front_prep *front; /* infergate-net: NEXT's certificate, loaded by the worker */
};

/* Frees replaced configs that no model refers to any more. */
static void free_unused_cfgs(struct gw_app *app)
{
    size_t kept = 0;

    for (size_t i = 0; i < app->n_old_cfgs; i++) {
        if (app->mgr != NULL && sup_manager_uses_cfg(app->mgr, app->old_cfgs[i]))
            app->old_cfgs[kept++] = app->old_cfgs[i];
        else
            cfg_free(app->old_cfgs[i]);
    }
    app->n_old_cfgs = kept;
}

/* The manager freed a retired model: free the configs nothing uses any more. */
static void on_model_retired(void *arg)
{
    free_unused_cfgs(arg);
}

/* Warns about settings a reload cannot change on a running server. */
static void warn_restart_only(const struct cfg *old, const struct cfg *next)
{
    if (strcmp(old->listen_host, next->listen_host) != 0 || old->listen_port != next->listen_port)
        ig_warn("reload: a changed listen address applies after a restart");
    if (old->limits.max_body_bytes != next->limits.max_body_bytes ||
        old->limits.max_header_bytes != next->limits.max_header_bytes ||
        old->limits.idle_timeout_s != next->limits.idle_timeout_s)
        ig_warn("reload: changed max_body_bytes, max_header_bytes or idle_timeout_s apply after "
                "a restart");
    if ((old->storage.path == NULL) != (next->storage.path == NULL) ||
        (old->storage.path != NULL && strcmp(old->storage.path, next->storage.path) != 0))
        ig_warn("reload: a changed storage.path applies after a restart");
}

/* Switches APP to NEXT (taken); returns 0 with SUMMARY, or IG_ENOMEM (NEXT freed). */
static int apply(struct gw_app *app, struct cfg *next, struct sup_reload_summary *summary)
{
    struct cfg **grown = realloc(app->old_cfgs, (app->n_old_cfgs + 1) * sizeof(*grown));
    enum ig_log_level level;

    if (grown != NULL)
        app->old_cfgs = grown;
    if (grown == NULL || sup_manager_reload(app->mgr, next, summary) != 0) {
        cfg_free(next);
        return IG_ENOMEM;
    }
    for (size_t i = 0; i < next->warnings.len; i++)
        ig_warn("%s", next->warnings.items[i]);
    warn_restart_only(app->cfg, next);
    app->old_cfgs[app->n_old_cfgs++] = app->cfg;
    app->cfg = next;
    gw_backends_prune(app->backends, next); /* URL backends removed from the config */
    auth_set_config(app->auth, next); /* keys, apiKeys, admin token */
    free(app->active_profile); /* as in llama-swap, a reload selects no profile */
    app->active_profile = NULL;
    if (next->log_level != NULL && ig_log_parse_level(next->log_level, &level) == 0)
        ig_log_set_level(level);
    ig_log_set_json(next->is_log_json);
    free_unused_cfgs(app);
    ig_info("reloaded %s: %d model(s) kept, %d changed, %d added, %d removed", next->path,
            summary->kept, summary->changed, summary->added, summary->removed);
    return 0;
}

/* The worker thread: loads and completes the config, then wakes the loop. It touches
 * nothing but R's result fields and the files it reads. */
static void *worker(void *arg)
{
    struct gw_reloader *r = arg;
    char byte = 1;

    r->rc = catalog_load(r->path, r->prev, &r->next, &r->cause);
    if (r->rc == 0 && cfg_keep_command_line(r->next, r->prev) != 0) { /* serve's flags */
        cfg_free(r->next);
        r->next = NULL;
        r->rc = IG_ENOMEM;
    }
    if (r->rc == 0)
        r->front = http_front_prepare(r->next); /* infergate-net: reads the certificate */
    /* One byte into an empty pipe cannot block or fail; no logging here (not thread-safe). */
    ssize_t n = write(r->pipe_fds[1], &byte, 1);
    (void)n;
    return NULL;
}

static void finish(struct gw_reloader *r, int rc, struct cfg *next, char *cause);

/* Starts a worker for the current config's file; a failure to start is answered at once. */
static void start(struct gw_reloader *r)
{
    r->path = r->app->cfg->path;
    r->prev = r->app->cfg;
    r->next = NULL;
    r->cause = NULL;
    r->rc = 0;
    r->is_running = pthread_create(&r->thread, NULL, worker, r) == 0;
    if (!r->is_running)
        finish(r, IG_ENOMEM, NULL, strdup("cannot start the reload thread"));
}

/* The waiter's client went away. */
static void on_waiter_gone(struct http_request *req, void *arg)
{
    struct waiter *w = arg;
    (void)req;
    TAILQ_REMOVE(&w->r->waiters, w, link);
    free(w);
}

/* Answers one waiter with the outcome; IS_BAD_CERTIFICATE: RC is the refusal of a
 * certificate that cannot be used. */
static void answer(struct waiter *w, int rc, bool is_bad_certificate, const char *cause,
                   const struct sup_reload_summary *sum)
{
    http_request_set_cancel_cb(w->req, NULL, NULL);
    if (rc == IG_ECANCELED)
        gw_reply_error(w->req, 503, "the server is shutting down", "model_unavailable", 0);
    else if (rc != 0 && is_bad_certificate) /* a valid file naming files that cannot serve */
        gw_reply_error(w->req, 422, cause != NULL ? cause : ig_strerror(rc), "invalid_certificate",
                       0);
    else if (rc != 0)
        gw_reply_error(w->req, rc == IG_ENOMEM ? 500 : 400,
                       cause != NULL ? cause : ig_strerror(rc), "invalid_config", 0);
    else
        gw_reply_json(w->req, 200,
                      json_pack("{s:b, s:{s:i, s:i, s:i, s:i}}", "success", 1, "models", "kept",
                                sum->kept, "changed", sum->changed, "added", sum->added,
                                "removed", sum->removed));
}

/* A reload ended with RC and NEXT (taken) or CAUSE (taken): apply, answer its waiters (all
 * of them when shutting down), and start the next reload if one was asked meanwhile. */
static void finish(struct gw_reloader *r, int rc, struct cfg *next, char *cause)
{
    struct sup_reload_summary sum = {0};
    struct waiter *w, *next_w;
    bool is_stopping = r->app->is_stopping, is_bad_certificate = false;

    /* infergate-net: no reload turns auth off on a listener beyond loopback, and none applies
     * without its certificate (the whole reload is refused, the running one stays). */
    if (rc == 0 && !is_stopping && http_front_check_reload(r->app->server, next, &cause) != 0) {
        cfg_free(next);
        rc = IG_ECONFIG;
    } else if (rc == 0 && !is_stopping && http_front_check_certificate(r->front, &cause) != 0) {
        cfg_free(next);
        rc = IG_ECONFIG;
        is_bad_certificate = true;
    }
    if (rc == 0 && is_stopping) {
        cfg_free(next);
        rc = IG_ECANCELED;
    } else if (rc == 0) {
        rc = apply(r->app, next, &sum);
        if (rc != 0)
            cause = strdup("out of memory");
    } else {
        ig_error("reload of %s failed; keeping the running configuration:\n%s", r->path,
                 cause != NULL ? cause : ig_strerror(rc));
    }
    /* infergate-net: the front server takes the new certificate, CORS policy and limits. */
    if (rc == 0)
        http_front_commit(r->app->server, r->app->cfg, r->front);
    else
        http_front_prep_free(r->front);
    r->front = NULL;
    for (w = TAILQ_FIRST(&r->waiters); w != NULL; w = next_w) {
        next_w = TAILQ_NEXT(w, link);
        if (w->is_next && !is_stopping) {
            w->is_next = false;
            continue;
        }
        TAILQ_REMOVE(&r->waiters, w, link);
        answer(w, w->is_next ? IG_ECANCELED : rc, is_bad_certificate, cause, &sum);
        free(w);
    }
    free(cause);
    if (r->is_again && !is_stopping) {
        r->is_again = false;
        start(r);
    }
}

/* The worker woke the loop: join it and finish. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct gw_reloader *r = arg;
    char byte;
    (void)what;

    if (read(fd, &byte, 1) != 1 || !r->is_running)
        return;
    pthread_join(r->thread, NULL);
    r->is_running = false;
    /* Read after the join, and cleared before finish(): finish() may start the next reload,
     * whose worker writes these fields again (clearing them after it raced with that worker,
     * and a fast one's config was lost: a NULL config applied). */
    struct cfg *next = r->next;
    char *cause = r->cause;
    r->next = NULL;
    r->cause = NULL;
    finish(r, r->rc, next, cause);
}

struct gw_reloader *gw_reloader_new(struct gw_app *app)
{
    struct gw_reloader *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->app = app;
    TAILQ_INIT(&r->waiters);
    sup_set_retired_hook(app->mgr, on_model_retired, app);
    r->pipe_fds[0] = r->pipe_fds[1] = -1;
    if (pipe2(r->pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0 ||
        (r->done_ev = event_new(app->base, r->pipe_fds[0], EV_READ | EV_PERSIST, on_done, r)) ==
            NULL ||
        event_add(r->done_ev, NULL) != 0) {
        gw_reloader_free(r);
        return NULL;
    }
    return r;
}

void gw_reloader_free(struct gw_reloader *r)
{
    if (r == NULL)
        return;
    if (r->app->mgr != NULL)
        sup_set_retired_hook(r->app->mgr, NULL, NULL);
    if (r->is_running) {
        pthread_join(r->thread, NULL); /* it only reads files; it ends by itself */
        cfg_free(r->next);
        free(r->cause);
        http_front_prep_free(r->front); /* infergate-net */
    }
    while (!TAILQ_EMPTY(&r->waiters)) {
        struct waiter *w = TAILQ_FIRST(&r->waiters);
        TAILQ_REMOVE(&r->waiters, w, link);
        free(w);
    }
    if (r->done_ev != NULL)
        event_free(r->done_ev);
    for (int i = 0; i < 2; i++)
        if (r->pipe_fds[i] >= 0)
            close(r->pipe_fds[i]);
    free(r);
}

void gw_reload_request(struct gw_app *app, struct http_request *req)
{
    struct gw_reloader *r = app->reloader;

    if (app->is_stopping) {
        if (req != NULL)
            gw_reply_error(req, 503, "the server is shutting down", "model_unavailable", 0);
        return;
    }
    if (req != NULL) {
        struct waiter *w = calloc(1, sizeof(*w));
        if (w == NULL) {
            gw_reply_error(req, 500, "out of memory", "internal_error", 0);
            return;
        }
        w->r = r;
        w->req = req;
        w->is_next = r->is_running;
        TAILQ_INSERT_TAIL(&r->waiters, w, link);
        http_request_set_cancel_cb(req, on_waiter_gone, w);
    }
    if (r->is_running)
        r->is_again = true;
    else
        start(r);
}

void gw_admin_reload(struct gw_app *app, struct http_request *req)
{
    gw_reload_request(app, req);
}

void gw_app_request_reload(struct gw_app *app)
{
    gw_reload_request(app, NULL);
}
