/*
 * Child processes. fork() + exec in the child after: a new process group (so a stop signal
 * reaches grandchildren too), PR_SET_PDEATHSIG=SIGKILL (so a crash of infergate, even
 * kill -9, takes the children with it), default signal dispositions and an empty mask,
 * stdout+stderr on one pipe. An exec failure is reported through a close-on-exec pipe; the
 * parent's read of it returns as soon as exec succeeds or fails (microseconds).
 *
 * SIGCHLD arrives through libevent's signal handling; every alive child is then polled
 * with waitpid(pid, WNOHANG) so nothing is reaped that is not ours.
 */
#include "sup_proc.h"
#include "sup_ring.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUTPUT_CHUNK 4096

struct sup_proc {
    struct sup_procs *procs;
    pid_t pid;
    int out_fd;
    struct event *out_ev;
    struct sup_ring *ring;
    sup_exit_fn on_exit;
    sup_output_fn on_output;
    void *arg;
    struct sup_proc *prev, *next;
};

struct sup_procs {
    struct event_base *base;
    struct event *sigchld;
    struct sup_proc *list;
    size_t n_alive;
};

/* Reads child output into the ring; closes the pipe at EOF. */
static void output_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sup_proc *proc = arg;
    char buf[OUTPUT_CHUNK];
    ssize_t n;
    (void)what;

    n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        if (proc->ring != NULL)
            sup_ring_append(proc->ring, buf, (size_t)n);
        if (proc->on_output != NULL)
            proc->on_output(buf, (size_t)n, proc->arg);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    event_free(proc->out_ev);
    proc->out_ev = NULL;
    close(proc->out_fd);
    proc->out_fd = -1;
}

/* Drains what output is left, then unlinks and frees PROC. */
static void proc_free(struct sup_proc *proc)
{
    struct sup_procs *procs = proc->procs;

    char buf[OUTPUT_CHUNK];
    ssize_t n;

    while (proc->out_fd >= 0) {
        n = read(proc->out_fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (proc->ring != NULL)
            sup_ring_append(proc->ring, buf, (size_t)n);
        if (proc->on_output != NULL)
            proc->on_output(buf, (size_t)n, proc->arg);
    }
    if (proc->out_ev != NULL)
        event_free(proc->out_ev);
    if (proc->out_fd >= 0)
        close(proc->out_fd);
    if (proc->prev != NULL)
        proc->prev->next = proc->next;
    else
        procs->list = proc->next;
    if (proc->next != NULL)
        proc->next->prev = proc->prev;
    procs->n_alive--;
    free(proc);
}

/* SIGCHLD: reap now. */
static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    sup_procs_reap(arg);
}

void sup_procs_reap(struct sup_procs *procs)
{
    bool has_reaped;

    do {
        has_reaped = false;
        for (struct sup_proc *proc = procs->list; proc != NULL; proc = proc->next) {
            int status = 0;
            if (waitpid(proc->pid, &status, WNOHANG) != proc->pid)
                continue;
            /* Leftover members of its group (a wrapper's children) go with it. */
            kill(-proc->pid, SIGKILL);
            if (proc->on_exit != NULL)
                proc->on_exit(proc, status, proc->arg);
            proc_free(proc);
            has_reaped = true;
            break;
        }
    } while (has_reaped);
}

struct sup_procs *sup_procs_new(struct event_base *base)
{
    struct sup_procs *procs = calloc(1, sizeof(*procs));

    if (procs == NULL)
        return NULL;
    procs->base = base;
    procs->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, procs);
    if (procs->sigchld == NULL || evsignal_add(procs->sigchld, NULL) != 0) {
        sup_procs_free(procs);
        return NULL;
    }
    return procs;
}

void sup_procs_free(struct sup_procs *procs)
{
    if (procs == NULL)
        return;
    while (procs->list != NULL) {
        struct sup_proc *proc = procs->list;
        kill(-proc->pid, SIGKILL);
        while (waitpid(proc->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        proc_free(proc);
    }
    if (procs->sigchld != NULL)
        event_free(procs->sigchld);
    free(procs);
}

size_t sup_procs_alive(const struct sup_procs *procs)
{
    return procs->n_alive;
}

/* In the child: set up and exec; reports errno through ERR_FD on failure. */
static void child_exec(char *const *argv, char *const *env, size_t n_env, int out_fd,
                       int err_fd, pid_t parent)
{
    sigset_t none;
    int e;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    if (out_fd >= 0) {
        dup2(out_fd, STDOUT_FILENO);
        dup2(out_fd, STDERR_FILENO);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    for (size_t i = 0; i < n_env; i++)
        putenv(env[i]);
    execvp(argv[0], argv);
    e = errno;
    if (write(err_fd, &e, sizeof(e)) < 0)
        _exit(127);
    _exit(127);
}

/* Sets *CAUSE to a formatted message. */
static void set_cause(char **cause, const char *what, const char *arg, int err)
{
    if (cause != NULL && asprintf(cause, "%s %s: %s", what, arg, strerror(err)) < 0)
        *cause = NULL;
}

struct sup_proc *sup_proc_spawn(struct sup_procs *procs, char *const *argv, char *const *env,
                                size_t n_env, struct sup_ring *ring, sup_exit_fn on_exit,
                                sup_output_fn on_output, void *arg, char **cause)
{
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    struct sup_proc *proc = calloc(1, sizeof(*proc));
    pid_t parent = getpid(), pid;
    int child_errno = 0;
    ssize_t n;

    if (proc == NULL || pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        set_cause(cause, "cannot start", argv[0], errno);
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        set_cause(cause, "cannot fork for", argv[0], errno);
        goto fail;
    }
    if (pid == 0)
        child_exec(argv, env, n_env, out_pipe[1], err_pipe[1], parent);
    setpgid(pid, pid); /* also in the parent, so signals to the group work at once */
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    do {
        n = read(err_pipe[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(err_pipe[0]);
    err_pipe[0] = -1;
    proc->procs = procs;
    proc->pid = pid;
    proc->out_fd = out_pipe[0];
    proc->ring = ring;
    proc->on_exit = on_exit;
    proc->on_output = on_output;
    proc->arg = arg;
    proc->next = procs->list;
    if (procs->list != NULL)
        procs->list->prev = proc;
    procs->list = proc;
    procs->n_alive++;
    fcntl(proc->out_fd, F_SETFL, fcntl(proc->out_fd, F_GETFL) | O_NONBLOCK);
    proc->out_ev = event_new(procs->base, proc->out_fd, EV_READ | EV_PERSIST, output_cb, proc);
    if (proc->out_ev != NULL)
        event_add(proc->out_ev, NULL);
    if (n == (ssize_t)sizeof(child_errno)) {
        /* exec failed: the child exits at once; it is reaped through SIGCHLD. */
        proc->on_exit = NULL;
        set_cause(cause, "cannot run", argv[0], child_errno);
        return NULL;
    }
    return proc;
fail:
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    free(proc);
    return NULL;
}

void sup_proc_signal(struct sup_proc *proc, int sig)
{
    kill(-proc->pid, sig);
}

void sup_proc_detach(struct sup_proc *proc)
{
    proc->on_exit = NULL;
    proc->on_output = NULL;
    proc->ring = NULL;
}

void sup_procs_detach_all(struct sup_procs *procs)
{
    for (struct sup_proc *proc = procs != NULL ? procs->list : NULL; proc != NULL; proc = proc->next)
        sup_proc_detach(proc);
}

pid_t sup_proc_pid(const struct sup_proc *proc)
{
    return proc->pid;
}
