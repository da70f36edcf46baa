/*
 * The database and its writer thread (see store.h).
 *
 * Jobs go into a FIFO under a mutex; the writer takes up to BATCH_MAX of them, runs them in
 * one BEGIN IMMEDIATE ... COMMIT with a savepoint each, then hands the results to the loop
 * through a pipe. With WAL and synchronous=NORMAL a commit is an append to the log (no
 * fsync), so a crash of the process loses only the jobs not yet committed: at most one
 * batch plus what waits behind it, which the callers bound (usage is flushed every second).
 */
#include "store.h"
#include "ig_log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ig_time.h"

#define BATCH_MAX 512
#define BUSY_TIMEOUT_MS 5000

/* A queued job, then its result on the way back to the loop. */
struct store_item {
    store_job_fn job;
    store_done_fn done;
    void *arg;
    int rc;
    uint64_t queued_ms;
    struct store_item *next;
};

/* A FIFO of items. */
struct store_fifo {
    struct store_item *head, *tail;
    size_t len;
};

struct store {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store_fifo jobs;    /* waiting for the writer (mu) */
    struct store_fifo results; /* committed, waiting for the loop (mu) */
    bool has_external_change;  /* seen by the writer, not yet told to the loop (mu) */
    bool is_stopping;          /* (mu) */
    bool is_started;
    pthread_t thread;
    int wake[2]; /* writer -> loop */
    struct event *wake_ev;
    int64_t data_version; /* writer thread only */
    uint64_t polled_ms;   /* writer thread only: when data_version was last read */
    void (*change_cb)(void *arg);
    void *change_arg;
};

/* The schema, one step per version; a database at version N gets steps N+1.. applied. */
static const char *const migrations[] = {
    /* 1: keys, usage, audit. */
    "CREATE TABLE keys ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  hash BLOB NOT NULL UNIQUE,"      /* HMAC-SHA256(server secret, key): never the key */
    "  prefix TEXT NOT NULL,"           /* the first characters, to recognise it */
    "  models TEXT,"                    /* JSON array of allowed model ids, NULL: all */
    "  rpm INTEGER NOT NULL DEFAULT 0,"
    "  tpm INTEGER NOT NULL DEFAULT 0,"
    "  concurrency INTEGER NOT NULL DEFAULT 0,"
    "  max_tokens INTEGER NOT NULL DEFAULT 0,"
    "  budget_tokens INTEGER NOT NULL DEFAULT 0,"
    "  expires_at INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE usage_hourly ("
    "  key_name TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  hour INTEGER NOT NULL," /* unix seconds at the start of the hour */
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  errors INTEGER NOT NULL DEFAULT 0,"
    "  latency_ms_sum INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (key_name, model, hour)"
    ") WITHOUT ROWID;"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT,"
    "  detail TEXT,"
    "  client TEXT"
    ");",
    /* 2: the request log and model events. */
    "CREATE TABLE requests ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"        /* unix milliseconds when the request arrived */
    "  request_id TEXT NOT NULL,"
    "  key_name TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  stream INTEGER NOT NULL DEFAULT 0,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  ttft_ms INTEGER,"               /* NULL: no body byte came */
    "  queue_ms INTEGER,"              /* waiting for the model; NULL: never admitted */
    "  duration_ms INTEGER NOT NULL,"
    "  bytes_in INTEGER NOT NULL DEFAULT 0,"
    "  bytes_out INTEGER NOT NULL DEFAULT 0,"
    "  client TEXT,"
    "  error TEXT"
    ");"
    "CREATE INDEX requests_ts ON requests (ts_ms);"
    "CREATE TABLE model_events ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  model TEXT NOT NULL,"
    "  event TEXT NOT NULL,"           /* load, ready, unload, evict, stopped, crash, failed, restart */
    "  detail TEXT"
    ");"
    "CREATE INDEX model_events_ts ON model_events (ts_ms);",
    /* 3: which backend served a request, and why (distributed mode). */
    ("ALTER TABLE requests ADD COLUMN backend TEXT;"
     "ALTER TABLE requests ADD COLUMN route TEXT;"),
    /* 4: the Batch API's files, batches and per-line results (src/batch). */
    "CREATE TABLE files ("
    "  id TEXT PRIMARY KEY,"           /* file-... */
    "  owner TEXT NOT NULL,"           /* the key name that uploaded it (or the batch's) */
    "  bytes INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  filename TEXT NOT NULL,"
    "  purpose TEXT NOT NULL"
    ");"
    "CREATE TABLE batches ("
    "  id TEXT PRIMARY KEY,"           /* batch_... */
    "  owner TEXT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  input_file_id TEXT NOT NULL,"
    "  completion_window TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  errors TEXT,"                   /* JSON: OpenAI's errors object, or NULL */
    "  metadata TEXT,"                 /* JSON object, or NULL */
    "  output_file_id TEXT,"
    "  error_file_id TEXT,"
    "  total INTEGER NOT NULL DEFAULT 0,"    /* requests in the input file */
    "  enqueued INTEGER NOT NULL DEFAULT 0," /* requests 0..enqueued-1 are on JetStream */
    "  created_at INTEGER NOT NULL,"
    "  in_progress_at INTEGER, expires_at INTEGER, finalizing_at INTEGER,"
    "  completed_at INTEGER, failed_at INTEGER, expired_at INTEGER,"
    "  cancelling_at INTEGER, cancelled_at INTEGER"
    ");"
    "CREATE TABLE batch_results ("
    "  batch_id TEXT NOT NULL,"
    "  line INTEGER NOT NULL,"         /* the request's index in the input file, from 0 */
    "  is_ok INTEGER NOT NULL,"        /* 2xx answer: output file; else the error file */
    "  result TEXT NOT NULL,"          /* the output line, JSON */
    "  PRIMARY KEY (batch_id, line)"
    ") WITHOUT ROWID;",
};

/* Sets *CAUSE to "PATH: WHAT: SQLite's message". */
static void set_cause(char **cause, const char *path, const char *what, sqlite3 *db)
{
    if (cause != NULL && asprintf(cause, "%s: %s: %s", path, what,
                                  db != NULL ? sqlite3_errmsg(db) : "out of memory") < 0)
        *cause = NULL;
}

/* Runs SQL (no results); returns 0 or IG_EIO. */
static int exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : IG_EIO;
}

/* Returns the value of a one-integer query, or -1. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* Creates the directories above PATH (mode 0700). */
static void make_parent_dirs(const char *path)
{
    char dir[PATH_MAX];

    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        (void)mkdir(dir, 0700);
        *p = '/';
    }
}

/* Brings the schema up to date in one transaction. */
static int migrate(sqlite3 *db)
{
    size_t n = sizeof(migrations) / sizeof(migrations[0]);
    int64_t version;

    if (exec_sql(db, "BEGIN IMMEDIATE") != 0)
        return IG_EIO;
    if (exec_sql(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)") != 0)
        goto fail;
    version = query_int(db, "SELECT max(version) FROM schema_version");
    if (version < 0)
        version = 0;
    if ((size_t)version > n) {
        ig_error("database schema version %lld is newer than this infergate knows (%zu)",
                 (long long)version, n);
        goto fail;
    }
    for (size_t v = (size_t)version; v < n; v++) {
        char sql[96];
        if (exec_sql(db, migrations[v]) != 0)
            goto fail;
        snprintf(sql, sizeof(sql), "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%zu)",
                 v + 1);
        if (exec_sql(db, sql) != 0)
            goto fail;
    }
    return exec_sql(db, "COMMIT");
fail:
    (void)exec_sql(db, "ROLLBACK");
    return IG_EIO;
}

/* Returns whether PATH's write-ahead log was left behind: a clean close checkpoints and
 * removes it, so a non-empty one means the last process using the file did not close it. */
static bool was_left_open(const char *path)
{
    char wal[PATH_MAX + 8];
    struct stat sb;

    snprintf(wal, sizeof(wal), "%s-wal", path);
    return stat(wal, &sb) == 0 && sb.st_size > 0;
}

/* After an unclean stop: checks the whole file; returns 0 when SQLite finds it sound. */
static int check_integrity(sqlite3 *db, const char *path)
{
    sqlite3_stmt *stmt = NULL;
    const char *result = NULL;
    int rc = IG_EIO;

    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        result = (const char *)sqlite3_column_text(stmt, 0);
    if (result != NULL && strcmp(result, "ok") == 0) {
        ig_info("storage: %s was not closed cleanly (crash or kill); integrity check: ok", path);
        rc = 0;
    } else {
        ig_error("storage: %s failed its integrity check: %s", path,
                 result != NULL ? result : sqlite3_errmsg(db));
    }
    sqlite3_finalize(stmt);
    return rc;
}

int store_open(const char *path, bool is_owner, struct store **out, char **cause)
{
    struct store *st = calloc(1, sizeof(*st));
    int rc = IG_EIO;
    bool is_unclean;

    *out = NULL;
    if (st == NULL || (st->path = strdup(path)) == NULL) {
        free(st);
        set_cause(cause, path, "cannot open", NULL);
        return IG_ENOMEM;
    }
    st->wake[0] = st->wake[1] = -1;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    make_parent_dirs(path);
    is_unclean = is_owner && was_left_open(path);
    /* No mutex per connection: one thread uses it at a time (the caller's until store_start(),
     * then the writer's until store_stop()), and each call into SQLite would pay for it. */
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        set_cause(cause, path, "cannot open the database", st->db);
        goto out;
    }
    (void)chmod(path, 0600);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    if (exec_sql(st->db, "PRAGMA journal_mode=WAL") != 0 ||
        exec_sql(st->db, "PRAGMA synchronous=NORMAL") != 0 ||
        exec_sql(st->db, "PRAGMA foreign_keys=ON") != 0) {
        set_cause(cause, path, "cannot switch the database to WAL mode", st->db);
        goto out;
    }
    if (is_unclean && check_integrity(st->db, path) != 0) {
        set_cause(cause, path, "the database is damaged (see the log); restore a backup",
                  st->db);
        goto out;
    }
    if (migrate(st->db) != 0) {
        set_cause(cause, path, "cannot bring the database schema up to date", st->db);
        goto out;
    }
    st->data_version = query_int(st->db, "PRAGMA data_version");
    rc = 0;
out:
    if (rc != 0) {
        store_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* Appends ITEM to FIFO. */
static void fifo_push(struct store_fifo *f, struct store_item *item)
{
    item->next = NULL;
    if (f->tail != NULL)
        f->tail->next = item;
    else
        f->head = item;
    f->tail = item;
    f->len++;
}

/* Takes up to MAX items from the front of FIFO, as a list. */
static struct store_item *fifo_take(struct store_fifo *f, size_t max)
{
    struct store_item *first = f->head, *last = NULL, *it = f->head;
    size_t n = 0;

    while (it != NULL && n < max) {
        last = it;
        it = it->next;
        n++;
    }
    if (last == NULL)
        return NULL;
    f->head = last->next;
    if (f->head == NULL)
        f->tail = NULL;
    last->next = NULL;
    f->len -= n;
    return first;
}

struct sqlite3_stmt *store_stmt(struct sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;

    /* The connection's own list of statements is the cache: only a few are ever kept. */
    while ((stmt = sqlite3_next_stmt(db, stmt)) != NULL) {
        const char *text = sqlite3_sql(stmt);
        if (text != NULL && strcmp(text, sql) == 0 && !sqlite3_stmt_busy(stmt)) {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
            return stmt;
        }
    }
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        stmt = NULL;
    }
    return stmt;
}

/* Runs the jobs of LIST in one transaction, setting each item's rc. */
static void run_batch(sqlite3 *db, struct store_item *list)
{
    int batch_rc = exec_sql(db, "BEGIN IMMEDIATE");

    for (struct store_item *it = list; it != NULL; it = it->next) {
        if (batch_rc != 0) {
            it->rc = batch_rc;
            continue;
        }
        if (exec_sql(db, "SAVEPOINT job") != 0) {
            it->rc = IG_EIO;
            continue;
        }
        it->rc = it->job(db, it->arg);
        if (it->rc != 0)
            (void)exec_sql(db, "ROLLBACK TO job");
        (void)exec_sql(db, "RELEASE job");
    }
    if (batch_rc == 0 && exec_sql(db, "COMMIT") != 0) {
        ig_error("database commit failed: %s", sqlite3_errmsg(db));
        (void)exec_sql(db, "ROLLBACK");
        for (struct store_item *it = list; it != NULL; it = it->next)
            it->rc = IG_EIO;
    }
}

/* Wakes the loop (a byte on the pipe; a full pipe already wakes it). */
static void wake_loop(struct store *st)
{
    char b = 1;
    ssize_t n = write(st->wake[1], &b, 1);
    (void)n;
}

/* Reads data_version when STORE_POLL_MS have passed since the last read (called with mu
 * held, released meanwhile); a change by another connection is flagged for the loop. */
static void poll_changes(struct store *st)
{
    uint64_t now = ig_now_ms();

    if (now - st->polled_ms < STORE_POLL_MS)
        return;
    st->polled_ms = now;
    pthread_mutex_unlock(&st->mu);
    int64_t v = query_int(st->db, "PRAGMA data_version");
    bool is_changed = v >= 0 && v != st->data_version;
    st->data_version = v >= 0 ? v : st->data_version;
    pthread_mutex_lock(&st->mu);
    if (is_changed) {
        st->has_external_change = true;
        wake_loop(st);
    }
}

/* The writer thread. Changes by other processes are looked for every STORE_POLL_MS whether
 * the writer is idle or busy. */
static void *writer_main(void *arg)
{
    struct store *st = arg;

    pthread_mutex_lock(&st->mu);
    st->polled_ms = ig_now_ms();
    for (;;) {
        while (st->jobs.head == NULL && !st->is_stopping) {
            uint64_t due = st->polled_ms + STORE_POLL_MS, now = ig_now_ms();
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)((due > now ? due - now : 0) * 1000000ull);
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            (void)pthread_cond_timedwait(&st->cv, &st->mu, &until);
            if (!st->is_stopping)
                poll_changes(st);
        }
        if (st->jobs.head == NULL)
            break; /* stopping, and everything ran */
        struct store_item *batch = fifo_take(&st->jobs, BATCH_MAX);
        pthread_mutex_unlock(&st->mu);
        run_batch(st->db, batch);
        pthread_mutex_lock(&st->mu);
        while (batch != NULL) {
            struct store_item *next = batch->next;
            fifo_push(&st->results, batch);
            batch = next;
        }
        wake_loop(st);
        poll_changes(st);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Delivers the results and change notices the writer left (on the loop). */
static void deliver(struct store *st)
{
    struct store_item *list;
    bool is_changed;

    pthread_mutex_lock(&st->mu);
    list = fifo_take(&st->results, SIZE_MAX);
    is_changed = st->has_external_change;
    st->has_external_change = false;
    pthread_mutex_unlock(&st->mu);
    while (list != NULL) {
        struct store_item *next = list->next;
        if (list->done != NULL)
            list->done(list->rc, list->arg);
        free(list);
        list = next;
    }
    if (is_changed && st->change_cb != NULL)
        st->change_cb(st->change_arg);
}

/* The wake pipe is readable. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[256];
    (void)what;

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    deliver(arg);
}

int store_start(struct store *st, struct event_base *base, char **cause)
{
    if (pipe2(st->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        if (cause != NULL && asprintf(cause, "%s: cannot create a pipe: %s", st->path,
                                      strerror(errno)) < 0)
            *cause = NULL;
        return IG_EIO;
    }
    st->wake_ev = event_new(base, st->wake[0], EV_READ | EV_PERSIST, wake_cb, st);
    if (st->wake_ev == NULL || event_add(st->wake_ev, NULL) != 0) {
        if (cause != NULL)
            *cause = strdup("cannot watch the database writer's pipe");
        return IG_ENOMEM;
    }
    if (pthread_create(&st->thread, NULL, writer_main, st) != 0) {
        if (cause != NULL)
            *cause = strdup("cannot start the database writer thread");
        return IG_ENOMEM;
    }
    st->is_started = true;
    return 0;
}

int store_submit(struct store *st, store_job_fn job, store_done_fn done, void *arg)
{
    struct store_item *item;

    if (!st->is_started)
        return IG_EINVAL;
    item = calloc(1, sizeof(*item));
    if (item == NULL)
        return IG_ENOMEM;
    item->job = job;
    item->done = done;
    item->arg = arg;
    item->queued_ms = ig_now_ms();
    pthread_mutex_lock(&st->mu);
    if (st->jobs.len >= STORE_MAX_PENDING) {
        pthread_mutex_unlock(&st->mu);
        free(item);
        return IG_EBUSY;
    }
    fifo_push(&st->jobs, item);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

int store_run(struct store *st, store_job_fn job, void *arg)
{
    int rc;

    if (exec_sql(st->db, "BEGIN IMMEDIATE") != 0)
        return IG_EIO;
    rc = job(st->db, arg);
    if (rc == 0 && exec_sql(st->db, "COMMIT") != 0)
        rc = IG_EIO;
    if (rc != 0)
        (void)exec_sql(st->db, "ROLLBACK");
    return rc;
}

void store_on_external_change(struct store *st, void (*cb)(void *arg), void *arg)
{
    st->change_cb = cb;
    st->change_arg = arg;
}

uint64_t store_lag_ms(struct store *st)
{
    uint64_t lag = 0, now = ig_now_ms();

    pthread_mutex_lock(&st->mu);
    if (st->jobs.head != NULL && now > st->jobs.head->queued_ms)
        lag = now - st->jobs.head->queued_ms;
    pthread_mutex_unlock(&st->mu);
    return lag;
}

const char *store_path(const struct store *st)
{
    return st->path;
}

void store_stop(struct store *st)
{
    if (st == NULL || !st->is_started)
        return;
    pthread_mutex_lock(&st->mu);
    st->is_stopping = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->thread, NULL);
    st->is_started = false; /* what the last completions submit is refused, not lost */
    st->change_cb = NULL;
    deliver(st); /* the last results, so that their owners release what they hold */
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    store_stop(st);
    if (st->wake_ev != NULL)
        event_free(st->wake_ev);
    if (st->wake[0] >= 0)
        close(st->wake[0]);
    if (st->wake[1] >= 0)
        close(st->wake[1]);
    if (st->db != NULL) {
        sqlite3_stmt *stmt;
        while ((stmt = sqlite3_next_stmt(st->db, NULL)) != NULL)
            sqlite3_finalize(stmt); /* those store_stmt() kept */
        sqlite3_close(st->db);
    }
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st);
}

void store_default_path(char *buf, size_t size)
{
    const char *dir = getenv("INFERGATE_STATE_DIR"), *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");

    if (dir != NULL && dir[0] != '\0')
        snprintf(buf, size, "%s/infergate.db", dir);
    else if (xdg != NULL && xdg[0] != '\0')
        snprintf(buf, size, "%s/infergate/infergate.db", xdg);
    else
        snprintf(buf, size, "%s/.local/state/infergate/infergate.db",
                 home != NULL && home[0] != '\0' ? home : "/tmp");
}
