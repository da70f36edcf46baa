/*
 * Child processes: spawned without a shell in their own process group, tied to our life
 * with PR_SET_PDEATHSIG, output captured into a ring, exit noticed at once via SIGCHLD.
 */
#ifndef IG_SUP_PROC_H
#define IG_SUP_PROC_H

#include "ig_error.h"

#include <sys/types.h>

struct event_base;
struct sup_procs;
struct sup_proc;
struct sup_ring;

/* Called once when the child exited; STATUS is waitpid()'s. The proc is freed after. */
typedef void (*sup_exit_fn)(struct sup_proc *proc, int status, void *arg);

/* Called with each piece of child output (for logging); may be NULL. */
typedef void (*sup_output_fn)(const char *data, size_t len, void *arg);

/* Creates the registry of children on BASE and installs the SIGCHLD handler. Only one may
 * exist per process. Caller frees with sup_procs_free(). */
struct sup_procs *sup_procs_new(struct event_base *base);

/* Kills (SIGKILL) and reaps every remaining child, then frees; NULL is a no-op. */
void sup_procs_free(struct sup_procs *procs);

/* Returns how many children are alive (not yet reaped). */
size_t sup_procs_alive(const struct sup_procs *procs);

/* Detaches every child (no callback, no output kept from now on), e.g. before freeing
 * what their callbacks point to. */
void sup_procs_detach_all(struct sup_procs *procs);

/* Reaps every child that exited, running its exit callback, without waiting for SIGCHLD;
 * callbacks may spawn (every exit rescans). */
void sup_procs_reap(struct sup_procs *procs);

/*
 * Starts ARGV (argv[0] looked up in PATH) with the extra environment ENV ("K=V" list of
 * N_ENV, may be NULL), output appended to RING (borrowed; may be NULL) and passed to
 * ON_OUTPUT. Returns the proc (owned by the registry, freed after ON_EXIT) or NULL with
 * *CAUSE set (caller frees), e.g. when the program does not exist.
 */
struct sup_proc *sup_proc_spawn(struct sup_procs *procs, char *const *argv, char *const *env,
                                size_t n_env, struct sup_ring *ring, sup_exit_fn on_exit,
                                sup_output_fn on_output, void *arg, char **cause);

/* Sends SIG to the child's whole process group. */
void sup_proc_signal(struct sup_proc *proc, int sig);

/* Forgets the exit callback (the child is still reaped); used when its owner goes away. */
void sup_proc_detach(struct sup_proc *proc);

/* Returns the child's PID. */
pid_t sup_proc_pid(const struct sup_proc *proc);

#endif
