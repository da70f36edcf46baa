/* Splits a command line into argv like a POSIX shell would, without running a shell. */
#ifndef IG_SUP_ARGV_H
#define IG_SUP_ARGV_H

#include "ig_error.h"

/*
 * Splits CMDLINE into words: whitespace separates; '...' is literal; "..." allows \" \\ \$ \`
 * escapes; a backslash outside quotes escapes the next char and backslash-newline is
 * dropped. No expansion of any kind. On success *ARGV is a NULL-terminated array (caller
 * frees with sup_argv_free()) and *ARGC its length. Unterminated quotes give IG_EINVAL and
 * a reason in *CAUSE (caller frees). An empty command line is IG_EINVAL too.
 */
int sup_argv_split(const char *cmdline, char ***argv, int *argc, char **cause) IG_WUR;

/* Frees an argv from sup_argv_split(); NULL is a no-op. */
void sup_argv_free(char **argv);

#endif
