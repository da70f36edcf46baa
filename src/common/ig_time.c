/* Clock helpers and UTC date parsing. */
#include "ig_time.h"
#include "ig_text.h"

#include <stdio.h>
#include <time.h>

uint64_t ig_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ig_now_ms(void)
{
    return ig_now_us() / 1000u;
}

int64_t ig_unix_s(void)
{
    return (int64_t)time(NULL);
}

int64_t ig_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ig_format_utc_ms(int64_t ms, char *buf, unsigned size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int64_t ig_parse_utc(const char *text)
{
    struct tm tm = {0};
    const char *p;
    int n = 0;

    if (sscanf(text, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
        return -1;
    p = text + 10;
    if (*p != '\0') {
        n = 0; /* %n is only written when the whole format matched */
        if (sscanf(p, "T%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 9)
            return -1;
        p += n;
        if (*p == '.' && p[1] >= '0' && p[1] <= '9') /* fractions of a second: ignored */
            for (p++; *p >= '0' && *p <= '9'; p++)
                ;
        if (p[0] != 'Z' || p[1] != '\0')
            return -1;
    }
    if (tm.tm_year < 1970 || tm.tm_year > 9999 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
        tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

int64_t ig_parse_time(const char *text)
{
    long long v = ig_parse_int(text);

    return v >= 0 ? (int64_t)v : ig_parse_utc(text);
}

void ig_format_utc(int64_t unix_s, char out[IG_UTC_CHARS + 1])
{
    struct tm tm;
    time_t t = (time_t)unix_s;

    if (unix_s < 0 || unix_s > IG_UNIX_S_MAX || gmtime_r(&t, &tm) == NULL ||
        strftime(out, IG_UTC_CHARS + 1, "%Y-%m-%dT%H:%M:%SZ", &tm) != IG_UTC_CHARS)
        snprintf(out, IG_UTC_CHARS + 1, "1970-01-01T00:00:00Z");
}
