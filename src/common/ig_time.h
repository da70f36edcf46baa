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

/* Parses TEXT as YYYY-MM-DD or an RFC 3339 UTC date-time, YYYY-MM-DDTHH:MM:SS[.fraction]Z
 * (the fraction ignored), into unix seconds; -1 if not. */
int64_t ig_parse_utc(const char *text);

/* The latest time ig_parse_time() and ig_format_utc() take: 9999-12-31T23:59:59Z. */
#define IG_UNIX_S_MAX 253402300799LL

/* Parses a time given by a client: unix seconds (digits only), or what ig_parse_utc() takes.
 * Returns unix seconds, or -1 when it is neither (or past IG_UNIX_S_MAX). */
int64_t ig_parse_time(const char *text);

/* Characters of a formatted UTC time: "2026-11-23T10:00:00Z". */
#define IG_UTC_CHARS 20

/* Writes UNIX_S as an RFC 3339 UTC date-time ("2026-11-23T10:00:00Z") into OUT. */
void ig_format_utc(int64_t unix_s, char out[IG_UTC_CHARS + 1]);

#endif
