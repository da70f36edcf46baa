/*
 * Private to src/batch: the batch service's loop side (batch_svc.c, batch_line.c), used by
 * the API handlers (batch_api.c). It holds the batches being worked on, runs their lines as
 * they come from JetStream and ends each batch once every line has a result.
 */
#ifndef IG_BATCH_SVC_H
#define IG_BATCH_SVC_H

#include "batch_internal.h"
#include "batch_js.h"

#include <stdbool.h>
#include <stdint.h>

struct event;
struct line_call;

/* Where a batch of this process stands. */
enum run_state { RUN_VALIDATING, RUN_IN_PROGRESS, RUN_STOPPING, RUN_FINISHING };

/* A batch being worked on. */
struct batch_run {
    char id[BATCH_ID_MAX + 1];
    char owner[AUTH_NAME_MAX];
    char endpoint[32];
    char input_file_id[BATCH_ID_MAX + 1];
    enum run_state state;
    const char *end_status; /* RUN_STOPPING: "cancelled" or "expired" */
    long total, n_done;
    uint8_t *has_result, *is_running; /* a bit per line */
    int in_flight;
    int64_t expires_at;
    struct batch_run *next;
};

/* The service as store jobs see it: svc NULL once it is freed. */
struct batch_anchor {
    struct batch_svc *svc;
    int refs;
};

/* The service (app->batch). */
struct batch_svc {
    struct gw_app *app;
    struct batch_anchor *anchor;
    struct batch_js *js;
    char *unavailable;
    char token[65];
    char gateway[80];
    char dir[BATCH_PATH_MAX];
    size_t max_file_bytes;
    struct batch_run *runs;
    struct line_call *calls; /* running lines (batch_line.c) */
    struct event *expiry;
};

/* Returns whether bit I of MAP is set. */
static inline bool batch_bit(const uint8_t *map, long i)
{
    return (map[i / 8] >> (i % 8)) & 1u;
}

/* Sets bit I of MAP to V. */
static inline void batch_set_bit(uint8_t *map, long i, bool v)
{
    if (v)
        map[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        map[i / 8] &= (uint8_t)~(1u << (i % 8));
}

/* Returns batch ID's run, or NULL. */
struct batch_run *batch_run_find(struct batch_svc *svc, const char *id);

/* Ends RUN when nothing of it runs any more and it is complete, cancelled or expired. */
void batch_run_maybe_finish(struct batch_svc *svc, struct batch_run *run);

/* batch_line.c: a line from JetStream (MSG taken), run, recorded, then acknowledged. */
void batch_line_on_msg(struct batch_js_msg *msg, void *arg);

/* batch_line.c: cancels every running line, releasing its message unacknowledged. */
void batch_line_drop_all(struct batch_svc *svc);

/* Returns why batches cannot be created now (borrowed), or NULL when they can. SVC may be
 * NULL (not started: a worker). */
const char *batch_svc_unavailable(const struct batch_svc *svc);

/* A batch was stored as validating: validates its input and, when valid, queues its lines. */
void batch_svc_created(struct batch_svc *svc, const char *id, const char *owner,
                       const char *endpoint, const char *input_file_id);

/* Batch ID was stored as cancelling: stops running its lines and ends it once none runs. */
void batch_svc_cancelled(struct batch_svc *svc, const char *id);

/* A reference to SVC for a store job that may outlive it: batch_anchor_svc() returns SVC,
 * or NULL once it is freed. */
struct batch_anchor;
struct batch_anchor *batch_anchor_take(struct batch_svc *svc);
struct batch_svc *batch_anchor_svc(const struct batch_anchor *a);
void batch_anchor_release(struct batch_anchor *a);

#endif
