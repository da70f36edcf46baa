/*
 * The batches' rows (store migration 4): run on the store's writer thread, inside its jobs.
 * Input validation and the output files are written here too, off the event loop.
 */
#ifndef IG_BATCH_DB_H
#define IG_BATCH_DB_H

#include "batch_internal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;

#define BATCH_MAX_LINES 50000  /* requests per batch, as OpenAI */
#define BATCH_MAX_ERRORS 100   /* line errors reported in a failed batch's errors */
#define BATCH_LINE_MAX 1000000 /* bytes of a request line: under NATS's default max_payload */

/* A batch to create. */
struct batch_new {
    char id[BATCH_ID_MAX + 1];
    char owner[AUTH_NAME_MAX];
    char endpoint[32];
    char input_file_id[BATCH_ID_MAX + 1];
    json_t *metadata; /* borrowed, or NULL */
    int64_t created_at;
};

/* A batch still to be worked on, as read at start-up. */
struct batch_row {
    char id[BATCH_ID_MAX + 1];
    char owner[AUTH_NAME_MAX];
    char endpoint[32];
    char input_file_id[BATCH_ID_MAX + 1];
    char status[16];
    long total, enqueued;
    int64_t expires_at;
    uint8_t *has_result; /* a bit per line (total bits), caller frees */
    long n_results;
};

/* Returns batch ID's object (caller owns) when WHO may see it, else NULL. */
json_t *batch_db_get(struct sqlite3 *db, const char *id, const struct batch_who *who);

/* Inserts B as "validating" after checking that WHO may read its input file, a "batch" one:
 * 0, IG_ENOENT (no such file), IG_EINVAL (not purpose batch) or IG_EIO. */
int batch_db_insert(struct sqlite3 *db, const struct batch_new *b, const struct batch_who *who)
    IG_WUR;

/* Lists into *OUT (an array, caller owns) at most LIMIT + 1 batches WHO may see, newest
 * first, those older than AFTER when not "". 0 or IG_EIO. */
int batch_db_list(struct sqlite3 *db, const struct batch_who *who, const char *after,
                  long limit, json_t **out) IG_WUR;

/* Moves batch ID to "cancelling" when it is validating or in progress: 0, IG_ENOENT, or
 * IG_EINVAL when its status does not allow it. */
int batch_db_cancel(struct sqlite3 *db, const char *id, const struct batch_who *who,
                    int64_t now) IG_WUR;

/*
 * Reads the input file of batch ID (under DIR, at most MAX_BYTES) and checks every line for
 * ENDPOINT. Valid: the batch goes in progress (when still validating; *IS_CANCELLED when it
 * was cancelled meanwhile) and *LINES (caller frees each and the array) holds the N request
 * lines from FIRST on. Invalid: the batch is failed with its errors and *N is 0. FIRST > 0
 * re-reads the lines of a batch already in progress without changing it. Returns 0 or
 * IG_EIO.
 */
int batch_db_validate(struct sqlite3 *db, const char *dir, const char *id,
                      const char *input_file_id, const char *endpoint, size_t max_bytes,
                      long first, char ***lines, size_t *n, bool *is_cancelled) IG_WUR;

/* Notes that lines 0..UPTO-1 of batch ID are on the stream. */
int batch_db_set_enqueued(struct sqlite3 *db, const char *id, long upto) IG_WUR;

/* Keeps RESULT (an output line) for LINE of batch ID unless it has one; *IS_NEW says
 * whether this one was kept. */
int batch_db_record(struct sqlite3 *db, const char *id, long line, bool is_ok,
                    const char *result, bool *is_new) IG_WUR;

/* Sets batch ID's status to STATUS ("finalizing", "cancelling"...) with its time. */
int batch_db_set_status(struct sqlite3 *db, const char *id, const char *status, int64_t now)
    IG_WUR;

/* Writes the output and error files of batch ID (owned by OWNER, under DIR) from its
 * results, in line order, and ends it with STATUS (completed, cancelled or expired). */
int batch_db_finish(struct sqlite3 *db, const char *dir, const char *id, const char *owner,
                    const char *status, int64_t now) IG_WUR;

/* Reads the batches not ended yet into *ROWS (caller frees each has_result and the array),
 * *N of them. */
int batch_db_load(struct sqlite3 *db, struct batch_row **rows, size_t *n) IG_WUR;

#endif
