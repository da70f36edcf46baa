/* Logging: one line per message, written with a single write() so lines do not interleave. */
#include "ig_log.h"
#include "ig_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum ig_log_level min_level = IG_LOG_INFO;
static ig_log_hook_fn hook_fn;
static void *hook_arg;

void ig_log_set_hook(ig_log_hook_fn fn, void *arg)
{
    hook_fn = fn;
    hook_arg = arg;
}

void ig_log_set_level(enum ig_log_level level)
{
    min_level = level;
}

int ig_log_parse_level(const char *name, enum ig_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum ig_log_level)i;
            return 0;
        }
    }
    return IG_EINVAL;
}

int ig_log_enabled(enum ig_log_level level)
{
    return level >= min_level;
}

void ig_log(enum ig_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (!ig_log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 now.tv_nsec / 1000000, tags[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (hook_fn != NULL)
        hook_fn(line, (size_t)n, hook_arg);
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
