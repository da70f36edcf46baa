/*
 * The OpenAI Batch API (docs/API.md, docs/DISTRIBUTED.md): /v1/files to upload JSONL input
 * and download results, /v1/batches to create, read, list and cancel batches. A batch's
 * requests are messages of a JetStream work queue, run by this gateway as requests into its
 * own HTTP server on behalf of the batch's owner key, with their results kept in the
 * database before their messages are acknowledged.
 */
#ifndef IG_BATCH_H
#define IG_BATCH_H

#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

struct gw_app;
struct http_request;
struct batch_svc;

/* Starts APP's batch service (app->batch): with a `nats:` config its JetStream thread, after
 * resuming the batches the database holds; without one, /v1/batches explains that batches
 * need NATS. Returns 0, or IG_ENOMEM with *CAUSE (caller frees). */
int batch_svc_start(struct gw_app *app, char **cause) IG_WUR;

/* Stops the JetStream thread (lines in flight stay unacknowledged: they run again on the
 * next start) and frees; NULL is a no-op. Call before the app's server and store go. */
void batch_svc_free(struct batch_svc *svc);

/* Returns whether REQ is one of SVC's own batch requests (an internal connection carrying
 * this process's secret token), writing the owner key's name into OWNER (SIZE bytes). A
 * request from the network never is. SVC may be NULL. */
bool batch_svc_internal_owner(const struct batch_svc *svc, const struct http_request *req,
                              char *owner, size_t size);

/* POST|GET /v1/files, GET|DELETE /v1/files/ID, GET /v1/files/ID/content. */
void batch_files_handle(struct gw_app *app, struct http_request *req);

/* POST|GET /v1/batches, GET /v1/batches/ID, POST /v1/batches/ID/cancel. */
void batch_api_handle(struct gw_app *app, struct http_request *req);

#endif
