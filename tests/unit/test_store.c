/* Unit tests for src/store: migrations, jobs on the writer thread, batching, rollback of a
 * failing job, completions on the loop, changes made by another connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store.h"

#include <event2/event.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A temporary directory per test. */
static int dir_setup(void **state)
{
    char *dir = strdup("/tmp/ig-store-XXXXXX");
    if (dir == NULL || mkdtemp(dir) == NULL)
        return -1;
    *state = dir;
    return 0;
}

static int dir_teardown(void **state)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
    free(*state);
    return system(cmd) == 0 ? 0 : -1;
}

/* Completion counters. */
struct tally {
    int ok, failed;
    struct event_base *base;
    int expected;
};

/* One job's argument: the tally its completion counts in, and its data. */
struct job_arg {
    struct tally *t;
    int value;
    long long counts[2];
};

/* Inserts one row (ARG's value) into t, a table made by make_table. */
static int insert_job(sqlite3 *db, void *arg)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d)", ((struct job_arg *)arg)->value);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : IG_EIO;
}

/* Inserts a row then fails: its insert must be rolled back alone. */
static int failing_job(sqlite3 *db, void *arg)
{
    (void)arg;
    (void)sqlite3_exec(db, "INSERT INTO t VALUES (-1)", NULL, NULL, NULL);
    return IG_EINVAL;
}

static int make_table(sqlite3 *db, void *arg)
{
    (void)arg;
    return sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t (v INTEGER)", NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : IG_EIO;
}

/* Counts rows of t (and negative ones) into ARG's counts. */
static int count_job(sqlite3 *db, void *arg)
{
    long long *counts = ((struct job_arg *)arg)->counts;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(v < 0), 0) FROM t", -1, &stmt, NULL) != SQLITE_OK)
        return IG_EIO;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        counts[0] = sqlite3_column_int64(stmt, 0);
        counts[1] = sqlite3_column_int64(stmt, 1);
    }
    sqlite3_finalize(stmt);
    return 0;
}

static void tally_done(int rc, void *arg)
{
    struct tally *t = ((struct job_arg *)arg)->t;
    if (rc == 0)
        t->ok++;
    else
        t->failed++;
    if (t->ok + t->failed == t->expected)
        event_base_loopbreak(t->base);
}

static void test_store_opens_in_wal_mode_with_schema(void **state)
{
    char path[256];
    struct store *st = NULL;
    char *cause = NULL;
    struct job_arg counts = {NULL, 0, {0, 0}};
    struct stat sb;

    snprintf(path, sizeof(path), "%s/sub/dir/ig.db", (char *)*state);
    assert_int_equal(store_open(path, true, &st, &cause), 0);
    assert_string_equal(store_path(st), path);
    assert_int_equal(store_run(st, make_table, NULL), 0);
    assert_int_equal(store_run(st, count_job, &counts), 0);
    assert_int_equal(counts.counts[0], 0);
    store_free(st);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* Reopening applies nothing twice; the schema has the tables. */
    assert_int_equal(store_open(path, true, &st, &cause), 0);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    assert_int_equal(sqlite3_exec(db, "SELECT backend, route FROM keys, usage_hourly, audit, requests, model_events",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "SELECT f.purpose, b.enqueued, r.result FROM files f, batches b, "
                                      "batch_results r", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(stmt, 0), 4);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    store_free(st);
}

static void test_store_refuses_an_unusable_path(void **state)
{
    struct store *st = NULL;
    char *cause = NULL;
    (void)state;
    assert_int_equal(store_open("/proc/no/such/ig.db", true, &st, &cause), IG_EIO);
    assert_null(st);
    assert_non_null(strstr(cause, "/proc/no/such/ig.db"));
    free(cause);
}

static void test_store_runs_jobs_in_order_and_rolls_back_a_failed_one(void **state)
{
    char path[256];
    struct store *st = NULL;
    struct event_base *base = event_base_new();
    struct tally t = {0, 0, base, 0};
    struct job_arg values[300], failing = {&t, 0, {0, 0}}, counts = {&t, 0, {0, 0}};
    char *cause = NULL;

    snprintf(path, sizeof(path), "%s/ig.db", (char *)*state);
    assert_int_equal(store_open(path, true, &st, &cause), 0);
    assert_int_equal(store_run(st, make_table, NULL), 0);
    assert_int_equal(store_submit(st, insert_job, tally_done, &values[0]), IG_EINVAL); /* not started */
    assert_int_equal(store_start(st, base, &cause), 0);
    for (int i = 0; i < 300; i++) {
        values[i] = (struct job_arg){&t, i, {0, 0}};
        assert_int_equal(store_submit(st, insert_job, tally_done, &values[i]), 0);
        if (i == 150)
            assert_int_equal(store_submit(st, failing_job, tally_done, &failing), 0);
    }
    assert_int_equal(store_submit(st, count_job, tally_done, &counts), 0);
    t.expected = 302;
    event_base_dispatch(base);
    assert_int_equal(t.ok, 301);
    assert_int_equal(t.failed, 1);
    assert_int_equal(counts.counts[0], 300); /* the count ran after every insert before it */
    assert_int_equal(counts.counts[1], 0);   /* the failed job's row was rolled back */
    store_free(st);
    event_base_free(base);
}

static void test_store_free_delivers_the_last_completions(void **state)
{
    char path[256];
    struct store *st = NULL;
    struct event_base *base = event_base_new();
    struct tally t = {0, 0, base, 1000};
    struct job_arg v = {&t, 7, {0, 0}};
    char *cause = NULL;

    snprintf(path, sizeof(path), "%s/ig.db", (char *)*state);
    assert_int_equal(store_open(path, true, &st, &cause), 0);
    assert_int_equal(store_run(st, make_table, NULL), 0);
    assert_int_equal(store_start(st, base, &cause), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(store_submit(st, insert_job, tally_done, &v), 0);
    store_free(st); /* without running the loop */
    assert_int_equal(t.ok, 50);
    event_base_free(base);
}

static void change_seen(void *arg)
{
    struct tally *t = arg; /* a change callback gets its own argument */
    t->ok++;
    event_base_loopbreak(t->base);
}

static void give_up(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void test_store_notices_changes_by_another_process(void **state)
{
    char path[256];
    struct store *st = NULL;
    struct event_base *base = event_base_new();
    struct tally t = {0, 0, base, 0};
    char *cause = NULL;
    sqlite3 *other = NULL;
    struct timeval limit = {10, 0};
    struct event *timeout = evtimer_new(base, give_up, base);

    snprintf(path, sizeof(path), "%s/ig.db", (char *)*state);
    assert_int_equal(store_open(path, true, &st, &cause), 0);
    assert_int_equal(store_start(st, base, &cause), 0);
    store_on_external_change(st, change_seen, &t);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "INSERT INTO audit (at, actor, action) VALUES (1, 'x', 'y')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    evtimer_add(timeout, &limit);
    event_base_dispatch(base);
    assert_int_equal(t.ok, 1);
    event_free(timeout);
    store_free(st);
    event_base_free(base);
}

/* Inserts V (ARG) twice with the kept statement; checks it is the same one, reset. */
static int kept_insert_job(sqlite3 *db, void *arg)
{
    static const char sql[] = "INSERT INTO t VALUES (?)";
    sqlite3_stmt *first = store_stmt(db, sql), *again;

    if (first == NULL || sqlite3_bind_int64(first, 1, *(long long *)arg) != SQLITE_OK ||
        sqlite3_step(first) != SQLITE_DONE)
        return IG_EIO;
    again = store_stmt(db, sql); /* bindings cleared: NULL inserted */
    if (again != first || sqlite3_step(again) != SQLITE_DONE ||
        store_stmt(db, "SELECT v FROM t") == first)
        return IG_EIO;
    return 0;
}

static void test_store_keeps_statements_across_jobs(void **state)
{
    char path[256];
    struct store *st = NULL;
    char *cause = NULL;
    struct job_arg counts = {NULL, 0, {0, 0}};
    long long v = -5;

    snprintf(path, sizeof(path), "%s/kept.db", (char *)*state);
    assert_int_equal(store_open(path, true, &st, &cause), 0);
    assert_int_equal(store_run(st, make_table, NULL), 0);
    assert_int_equal(store_run(st, kept_insert_job, &v), 0);
    v = 7;
    assert_int_equal(store_run(st, kept_insert_job, &v), 0);
    assert_int_equal(store_run(st, count_job, &counts), 0);
    assert_int_equal(counts.counts[0], 4);
    assert_int_equal(counts.counts[1], 1);
    store_free(st); /* finalizes the kept statements, or the close would fail and leak */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_opens_in_wal_mode_with_schema, dir_setup,
                                        dir_teardown),
        cmocka_unit_test(test_store_refuses_an_unusable_path),
        cmocka_unit_test_setup_teardown(test_store_runs_jobs_in_order_and_rolls_back_a_failed_one,
                                        dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_store_free_delivers_the_last_completions, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_store_notices_changes_by_another_process, dir_setup,
                                        dir_teardown),
        cmocka_unit_test_setup_teardown(test_store_keeps_statements_across_jobs, dir_setup,
                                        dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
