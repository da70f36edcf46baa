/* Monotonic clock helpers. */
#ifndef IG_TIME_H
#define IG_TIME_H

#include <stdint.h>

/* Returns the monotonic clock in milliseconds. */
uint64_t ig_now_ms(void);

/* Returns the monotonic clock in microseconds. */
uint64_t ig_now_us(void);

/* Returns wall-clock seconds since the epoch. */
int64_t ig_unix_s(void);

/* Returns wall-clock milliseconds since the epoch. */
int64_t ig_unix_ms(void);

/* Writes unix milliseconds MS as RFC 3339 UTC ("2026-11-23T15:04:05.123Z") into BUF (at least
 * 25 bytes). */
void ig_format_utc_ms(int64_t ms, char *buf, unsigned size);

/* Parses TEXT as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC) into unix seconds; -1 if not. */
int64_t ig_parse_utc(const char *text);

#endif
