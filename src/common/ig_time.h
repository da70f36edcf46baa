/* Clock helpers, and UTC times as clients write them. */
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

/* Parses TEXT as YYYY-MM-DD or an RFC 3339 UTC date-time, YYYY-MM-DDTHH:MM:SS[.fraction]Z
 * (the fraction ignored), into unix seconds; -1 if not. */
int64_t ig_parse_utc(const char *text);

/* The latest time ig_format_utc() writes: 9999-12-31T23:59:59Z. */
#define IG_UNIX_S_MAX 253402300799LL

/* Parses a time given by a client: a number (digits only, as ig_parse_int() reads them:
 * unix seconds, or milliseconds for a caller that tells them apart by size), or what
 * ig_parse_utc() takes (unix seconds). Returns it, or -1 when it is neither. */
int64_t ig_parse_time(const char *text);

/* Characters of a formatted UTC time: "2026-11-23T10:00:00Z". */
#define IG_UTC_CHARS 20

/* Writes UNIX_S as an RFC 3339 UTC date-time ("2026-11-23T10:00:00Z") into OUT. */
void ig_format_utc(int64_t unix_s, char out[IG_UTC_CHARS + 1]);

#endif
