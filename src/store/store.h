/*
 * SQLite storage: one database file in WAL mode, migrated to the current schema when it is
 * opened. A writer thread runs submitted jobs in batched transactions (each job in its own
 * savepoint, so a failing job leaves the others in) and reports each job's result on the
 * event loop once its batch is committed. Reads are jobs too, so the loop never waits on
 * SQLite and a read sees every write submitted before it.
 */
#ifndef IG_STORE_H
#define IG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_error.h"

struct event_base;
struct sqlite3;
struct sqlite3_stmt;
struct store;

/* Work on the database: runs on the writer thread (or the caller's, for store_run()) inside
 * a transaction. Returns 0, or an IG_E* code that rolls back this job's changes only. */
typedef int (*store_job_fn)(struct sqlite3 *db, void *arg);

/* A submitted job's result (0 or IG_E*), delivered on the event loop after the commit. */
typedef void (*store_done_fn)(int rc, void *arg);

/* Most jobs waiting at once; store_submit() refuses more with IG_EBUSY. */
#define STORE_MAX_PENDING 100000

/*
 * Opens (creating it and its directory) the database at PATH, switches it to WAL mode and
 * applies the schema migrations it lacks. IS_OWNER (the server, not a command-line tool that
 * may run beside it): a write-ahead log left by an unclean stop gets a full integrity check
 * first, logged. *OUT is released with store_free(). Returns 0, or IG_EIO with *CAUSE
 * (caller frees) naming the file and the reason.
 */
int store_open(const char *path, bool is_owner, struct store **out, char **cause) IG_WUR;

/* Starts the writer thread; completions and change notices come through BASE's loop. */
int store_start(struct store *st, struct event_base *base, char **cause) IG_WUR;

/* Queues JOB (DONE, may be NULL, is called with its result; ARG is borrowed until then).
 * Returns 0, or IG_EBUSY when STORE_MAX_PENDING jobs wait, or IG_EINVAL before store_start(). */
int store_submit(struct store *st, store_job_fn job, store_done_fn done, void *arg) IG_WUR;

/* Runs JOB at once on the caller's thread in its own transaction: command-line tools, and
 * start-up before store_start() (never after). Returns JOB's result, or IG_EIO. */
int store_run(struct store *st, store_job_fn job, void *arg) IG_WUR;

/* Registers CB (on the loop) for changes another process committed, e.g. `infergate keys`
 * on the same file; checked every STORE_POLL_MS while the writer is idle. */
void store_on_external_change(struct store *st, void (*cb)(void *arg), void *arg);
#define STORE_POLL_MS 250

/* Returns DB's prepared statement for SQL, kept across jobs (SQLITE_PREPARE_PERSISTENT) for
 * statements run often: prepared on first use, reset with its bindings cleared when handed
 * out again, finalized by store_free(). Use it within one job; never finalize it. Returns
 * NULL when SQL does not prepare. */
struct sqlite3_stmt *store_stmt(struct sqlite3 *db, const char *sql);

/* Returns how long the oldest waiting job has waited, in milliseconds (0 when none). */
uint64_t store_lag_ms(struct store *st);

/* Returns the path of the database file (borrowed). */
const char *store_path(const struct store *st);

/* Runs the jobs still queued, stops the writer thread and delivers the last completions
 * (on the caller's thread: call it from the loop's, while the jobs' owners still exist).
 * Later submissions are refused. No-op when not started. */
void store_stop(struct store *st);

/* store_stop(), then closes the database. store_free(NULL) is a no-op. */
void store_free(struct store *st);

/* Writes the default database path into BUF: $INFERGATE_STATE_DIR/infergate.db, else
 * $XDG_STATE_HOME/infergate/infergate.db, else ~/.local/state/infergate/infergate.db. */
void store_default_path(char *buf, size_t size);

#endif
