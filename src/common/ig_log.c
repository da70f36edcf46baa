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

/* Appends TEXT to LINE at *N as JSON string content (quotes not included), within SIZE. */
static void json_escape(char *line, int *n, int size, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && *n < size - 8; p++) {
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

/* Formats one JSON log line into LINE: time, level, request id (from a leading "[ID] "),
 * message. Returns its length without a newline. */
static int format_json(char *line, int size, const char *stamp, const char *level,
                       const char *msg)
{
    int n = snprintf(line, (size_t)size, "{\"ts\":\"%s\",\"level\":\"%s\"", stamp, level);
    size_t id_len = msg[0] == '[' ? strcspn(msg + 1, "] ") : 0;

    if (id_len > 0 && id_len <= 64 && msg[id_len + 1] == ']' && msg[id_len + 2] == ' ') {
        n += snprintf(line + n, (size_t)(size - n), ",\"request_id\":\"%.*s\"", (int)id_len,
                      msg + 1);
        msg += id_len + 3;
    }
    n += snprintf(line + n, (size_t)(size - n), ",\"msg\":\"");
    json_escape(line, &n, size, msg);
    n += snprintf(line + n, (size_t)(size - n), "\"}");
    return n < size - 1 ? n : size - 2;
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
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[2048], msg[1536], stamp[64];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (!ig_log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (is_json_format)
        n = format_json(line, (int)sizeof(line), stamp, names[level], msg);
    else
        n = snprintf(line, sizeof(line), "%s %-5s %s", stamp, tags[level], msg);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (hook_fn != NULL)
        hook_fn(line, (size_t)n, hook_arg);
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
