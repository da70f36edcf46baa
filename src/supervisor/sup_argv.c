/*
 * POSIX-shell-like word splitting for model commands, without a shell: quotes and
 * backslashes are honoured, nothing is expanded ($VAR, globs, ~ stay literal).
 */
#include "sup_argv.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct words {
    char **argv;
    int argc;
    char *cur; /* current word being built, NULL between words */
    size_t len;
};

/* Appends C to the current word (starting one if needed). */
static int word_add(struct words *w, char c, size_t cap)
{
    if (w->cur == NULL) {
        w->cur = malloc(cap + 1);
        w->len = 0;
        if (w->cur == NULL)
            return -1;
    }
    w->cur[w->len++] = c;
    w->cur[w->len] = '\0';
    return 0;
}

/* Starts a word even if it stays empty (for "" and ''). */
static int word_touch(struct words *w, size_t cap)
{
    if (w->cur != NULL)
        return 0;
    if (word_add(w, 'x', cap) != 0)
        return -1;
    w->len = 0;
    w->cur[0] = '\0';
    return 0;
}

/* Ends the current word, if any, moving it into argv. */
static int word_end(struct words *w)
{
    char **argv;

    if (w->cur == NULL)
        return 0;
    argv = realloc(w->argv, ((size_t)w->argc + 2) * sizeof(*argv));
    if (argv == NULL)
        return -1;
    w->argv = argv;
    w->argv[w->argc++] = w->cur;
    w->argv[w->argc] = NULL;
    w->cur = NULL;
    return 0;
}

/* Splits the double-quoted part starting after P's opening quote; returns the end or NULL. */
static const char *split_double(struct words *w, const char *p, size_t cap, int *rc)
{
    *rc = word_touch(w, cap);
    while (*rc == 0 && *p != '"') {
        if (*p == '\0')
            return NULL;
        if (p[0] == '\\' && p[1] == '\n') {
            p += 2;
            continue;
        }
        if (p[0] == '\\' && p[1] != '\0' && strchr("\"\\$`", p[1]) != NULL)
            p++;
        *rc = word_add(w, *p++, cap);
    }
    return p + 1;
}

/* Splits CMDLINE into W; returns 0, IG_ENOMEM, or IG_EINVAL with a reason in *CAUSE. */
static int split(struct words *w, const char *cmdline, char **cause)
{
    size_t cap = strlen(cmdline);
    const char *p = cmdline;
    int rc = 0;

    while (rc == 0 && *p != '\0') {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            rc = word_end(w);
            p++;
        } else if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (end == NULL)
                goto unterminated;
            rc = word_touch(w, cap);
            while (rc == 0 && ++p < end)
                rc = word_add(w, *p, cap);
            p = end + 1;
        } else if (*p == '"') {
            p = split_double(w, p + 1, cap, &rc);
            if (p == NULL)
                goto unterminated;
        } else if (*p == '\\') {
            if (p[1] == '\0')
                break; /* a final lone backslash continues nothing: dropped */
            if (p[1] != '\n')
                rc = word_add(w, p[1], cap);
            p += 2;
        } else {
            rc = word_add(w, *p++, cap);
        }
    }
    if (rc == 0)
        rc = word_end(w);
    return rc == 0 ? 0 : IG_ENOMEM;
unterminated:
    *cause = strdup("unterminated quote in command line");
    return IG_EINVAL;
}

/* Splits CMDLINE into a NULL-terminated argv; see sup_argv.h. */
int sup_argv_split(const char *cmdline, char ***argv, int *argc, char **cause)
{
    struct words w = {NULL, 0, NULL, 0};
    int rc;

    *argv = NULL;
    *argc = 0;
    *cause = NULL;
    rc = split(&w, cmdline, cause);
    if (rc == 0 && w.argc == 0) {
        *cause = strdup("empty command line");
        rc = IG_EINVAL;
    }
    if (rc != 0) {
        free(w.cur);
        sup_argv_free(w.argv);
        return rc;
    }
    *argv = w.argv;
    *argc = w.argc;
    return 0;
}

/* Frees an argv from sup_argv_split(); NULL is a no-op. */
void sup_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p != NULL; p++)
        free(*p);
    free(argv);
}
