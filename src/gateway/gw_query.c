/* Query-string helpers shared by the gateway's GET handlers. */
#include "gw_internal.h"
#include "ig_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns the value of hex digit C, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool gw_query_param(const char *query, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t o = 0;
            for (const char *v = p + n + 1; *v != '\0' && *v != '&' && o + 1 < size; v++) {
                int hi = *v == '%' ? hex_value(v[1]) : -1;
                int lo = hi >= 0 ? hex_value(v[2]) : -1;
                if (lo >= 0) {
                    buf[o++] = (char)(hi * 16 + lo);
                    v += 2;
                } else {
                    buf[o++] = *v == '+' ? ' ' : *v;
                }
            }
            buf[o] = '\0';
            return true;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return false;
}

int64_t gw_parse_time(const char *text)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);

    return end != text && *end == '\0' && v >= 0 ? (int64_t)v : ig_parse_utc(text);
}
