/*
 * Private to src/batch: the batch service's loop side (batch_svc.c), used by the API
 * handlers (batch_api.c). It holds the batches being worked on, runs their lines as they
 * come from JetStream and ends each batch once every line has a result.
 */
#ifndef IG_BATCH_SVC_H
#define IG_BATCH_SVC_H

#include "batch_internal.h"

struct batch_svc;

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
