/* Loop tests for child processes: exit status, output capture, group signals, exec errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sup_proc.h"
#include "sup_ring.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

struct fixture {
    struct event_base *base;
    struct sup_procs *procs;
    struct sup_ring *ring;
    int n_exits;
    int status;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->procs = sup_procs_new(f->base);
    f->ring = sup_ring_new(4096);
    assert_non_null(f->procs);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sup_procs_free(f->procs);
    sup_ring_free(f->ring);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void on_exit_cb(struct sup_proc *proc, int status, void *arg)
{
    struct fixture *f = arg;
    (void)proc;
    f->n_exits++;
    f->status = status;
    event_base_loopexit(f->base, NULL);
}

/* Runs the loop for at most 10 s. */
static void run_loop(struct fixture *f)
{
    struct timeval limit = {10, 0};
    event_base_loopexit(f->base, &limit);
    event_base_dispatch(f->base);
}

static void test_proc_reports_exit_status_and_output(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {"sh", "-c", "echo out; echo err >&2; echo $GREETING; exit 3", NULL};
    char *env[] = {"GREETING=hello-env"};
    struct sup_proc *p = sup_proc_spawn(f->procs, argv, env, 1, f->ring, on_exit_cb, NULL, f,
                                        NULL);
    assert_non_null(p);
    assert_int_equal(sup_procs_alive(f->procs), 1);
    run_loop(f);
    assert_int_equal(f->n_exits, 1);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 3);
    assert_int_equal(sup_procs_alive(f->procs), 0);
    char *tail = sup_ring_tail(f->ring, 10);
    assert_string_equal(tail, "out\nerr\nhello-env\n");
    free(tail);
}

static void test_proc_missing_program_fails_with_cause(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {"/nonexistent/program", NULL};
    char *cause = NULL;
    assert_null(sup_proc_spawn(f->procs, argv, NULL, 0, NULL, on_exit_cb, NULL, f, &cause));
    assert_non_null(cause);
    assert_non_null(strstr(cause, "No such file"));
    free(cause);
    /* The failed child is still reaped, without calling back. */
    while (sup_procs_alive(f->procs) > 0)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(f->n_exits, 0);
}

static void test_proc_signal_reaches_the_whole_group(void **state)
{
    struct fixture *f = *state;
    /* The shell's child (sleep) is in the same group and must die too. */
    char *argv[] = {"sh", "-c", "sleep 30 & wait", NULL};
    struct sup_proc *p = sup_proc_spawn(f->procs, argv, NULL, 0, NULL, on_exit_cb, NULL, f, NULL);
    assert_non_null(p);
    pid_t pid = sup_proc_pid(p);
    sup_proc_signal(p, SIGTERM);
    run_loop(f);
    assert_int_equal(f->n_exits, 1);
    assert_true(WIFSIGNALED(f->status));
    assert_int_equal(WTERMSIG(f->status), SIGTERM);
    /* No member of the group is left (polled: the kernel reaps asynchronously). */
    for (int i = 0; i < 500 && kill(-pid, 0) == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(kill(-pid, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proc_reports_exit_status_and_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_missing_program_fails_with_cause, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proc_signal_reaches_the_whole_group, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
