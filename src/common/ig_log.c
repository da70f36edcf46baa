/* Logging: one line per message, written with a single write() so lines do not interleave. */
#include "ig_log.h"
#include "ig_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum ig_log_level min_level = IG_LOG_INFO;
static int is_json_format;
static ig_log_hook_fn hook_fn;
static void *hook_arg;

void ig_log_set_hook(ig_log_hook_fn fn, void *arg)
{
    hook_fn = fn;
    hook_arg = arg;
}

void ig_log_set_json(int is_json)
{
    is_json_format = is_json;
}

/* Appends TEXT to LINE at *N as JSON string content (quotes not included), leaving room for
 * the closing '"}', a newline and the NUL: an escape is at most 6 bytes. */
static void json_escape(char *line, int *n, int size, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && *n + 6 < size - 4;
         p++) {
        if (*p == '"' || *p == '\\') {
            line[(*n)++] = '\\';
            line[(*n)++] = (char)*p;
        } else if (*p < 0x20) {
            *n += snprintf(line + *n, (size_t)(size - *n), "\\u%04x", *p);
        } else {
            line[(*n)++] = (char)*p;
        }
    }
}

/* Formats one JSON log line into LINE: time, level, REQUEST_ID (or NULL), message. Returns
 * its length without a newline (at most SIZE - 2). */
static int format_json(char *line, int size, const char *stamp, const char *level,
                       const char *request_id, const char *msg)
{
    int n = snprintf(line, (size_t)size, "{\"ts\":\"%s\",\"level\":\"%s\"", stamp, level);

    if (request_id != NULL) {
        n += snprintf(line + n, (size_t)(size - n), ",\"request_id\":\"");
        json_escape(line, &n, size, request_id);
        line[n++] = '"';
    }
    n += snprintf(line + n, (size_t)(size - n), ",\"msg\":\"");
    json_escape(line, &n, size, msg);
    line[n++] = '"';
    line[n++] = '}';
    return n;
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

/* Prints one line (see ig_log()), for the request REQUEST_ID when not NULL. */
static void vlog(enum ig_log_level level, const char *request_id, const char *fmt, va_list ap)
{
    static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[2048], msg[1536], stamp[64];
    struct timespec now;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (is_json_format)
        n = format_json(line, (int)sizeof(line), stamp, names[level], request_id, msg);
    else
        n = snprintf(line, sizeof(line), "%s %-5s %s%s%s%s", stamp, tags[level],
                     request_id != NULL ? "[" : "", request_id != NULL ? request_id : "",
                     request_id != NULL ? "] " : "", msg);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (hook_fn != NULL)
        hook_fn(line, (size_t)n, hook_arg);
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void ig_log(enum ig_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!ig_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, NULL, fmt, ap);
    va_end(ap);
}

void ig_log_request(enum ig_log_level level, const char *request_id, const char *fmt, ...)
{
    va_list ap;

    if (!ig_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, request_id, fmt, ap);
    va_end(ap);
}
