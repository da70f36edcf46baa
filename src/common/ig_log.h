/* Process-wide logging to stderr with levels; the level is set once at start-up. */
#ifndef IG_LOG_H
#define IG_LOG_H

#include <stddef.h>

enum ig_log_level { IG_LOG_DEBUG, IG_LOG_INFO, IG_LOG_WARN, IG_LOG_ERROR };

/* Sets the minimum level printed (read-only after start-up). */
void ig_log_set_level(enum ig_log_level level);

/* Parses "debug", "info", "warn" or "error"; returns 0 or IG_EINVAL. */
int ig_log_parse_level(const char *name, enum ig_log_level *out);

/* Returns whether messages at LEVEL are printed. */
int ig_log_enabled(enum ig_log_level level);

/* Switches to one JSON object per line: {"ts","level","msg"}, plus "request_id" for lines
 * of ig_log_request() (set at start-up, or on reload from the loop's thread). */
void ig_log_set_json(int is_json);

/* Receives every printed line (with its newline) on the thread that logged it. */
typedef void (*ig_log_hook_fn)(const char *line, size_t len, void *arg);

/* Sets the one hook that also receives printed lines (NULL removes it); set it from the
 * thread that logs, before or after start-up, never concurrently with logging. */
void ig_log_set_hook(ig_log_hook_fn fn, void *arg);

/* Prints one line "time level message" when LEVEL is enabled. */
void ig_log(enum ig_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like ig_log() for one request: its id in front ("[ID] message"), or as "request_id" in
 * JSON lines. */
void ig_log_request(enum ig_log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ig_debug(...) ig_log(IG_LOG_DEBUG, __VA_ARGS__)
#define ig_info(...) ig_log(IG_LOG_INFO, __VA_ARGS__)
#define ig_warn(...) ig_log(IG_LOG_WARN, __VA_ARGS__)
#define ig_error(...) ig_log(IG_LOG_ERROR, __VA_ARGS__)

#endif
