/* Small string helpers. */
#include "ig_text.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

char *ig_replace_all(const char *text, const char *token, const char *value)
{
    size_t tlen = strlen(token), vlen = strlen(value), cap = strlen(text) + 1, n = 0;
    char *out;

    for (const char *q = strstr(text, token); q != NULL; q = strstr(q + tlen, token))
        cap += vlen;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (const char *p = text; *p != '\0';) {
        if (strncmp(p, token, tlen) == 0) {
            memcpy(out + n, value, vlen);
            n += vlen;
            p += tlen;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

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

long ig_percent_decode(const char *text, size_t len, bool is_form, char *out, size_t size)
{
    size_t o = 0;

    if (size == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(text[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(text[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && is_form) {
            c = ' ';
        } else if (c == '\0') {
            goto bad;
        }
        if (o + 1 >= size)
            goto bad;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
bad:
    out[0] = '\0';
    return -1;
}

int ig_query_param(const char *query, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=')
            return ig_percent_decode(p + n + 1, len - n - 1, true, out, size) < 0 ? -1 : 1;
        if (len == n && strncmp(p, name, n) == 0) /* "name" alone: an empty value */
            return ig_percent_decode("", 0, true, out, size) < 0 ? -1 : 1;
        p = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

long long ig_parse_int(const char *text)
{
    long long v = 0;
    const char *p = text;

    for (; *p >= '0' && *p <= '9' && v <= IG_PARSE_INT_MAX; p++)
        v = v * 10 + (*p - '0');
    return p != text && *p == '\0' && v <= IG_PARSE_INT_MAX ? v : -1;
}

/* Returns the length of the valid UTF-8 sequence at P (1-4), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *p)
{
    size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
               : (p[0] & 0xF8) == 0xF0                  ? 4
                                                        : 0;

    if (n == 0 || (n == 2 && p[0] < 0xC2) || (n == 4 && p[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((n == 3 && p[0] == 0xE0 && p[1] < 0xA0) || (n == 3 && p[0] == 0xED && p[1] >= 0xA0) ||
        (n == 4 && p[0] == 0xF0 && p[1] < 0x90) || (n == 4 && p[0] == 0xF4 && p[1] >= 0x90))
        return 0; /* overlong forms, surrogates, beyond U+10FFFF */
    return n;
}

void ig_utf8_copy(char *out, size_t size, const char *text)
{
    size_t o = 0;

    if (size == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0';) {
        size_t n = utf8_sequence(p);
        if (n == 0) { /* an invalid byte becomes '?' */
            if (o + 1 >= size)
                break;
            out[o++] = '?';
            p++;
            continue;
        }
        if (o + n >= size)
            break;
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
}

size_t ig_format_u64(char *buf, uint64_t v)
{
    char tmp[21];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

size_t ig_concat(char *out, size_t size, const char *const *parts)
{
    size_t at = 0;

    if (size == 0)
        return 0;
    for (; *parts != NULL; parts++) {
        size_t n = strlen(*parts);

        if (n > size - 1 - at)
            n = size - 1 - at;
        memcpy(out + at, *parts, n);
        at += n;
    }
    out[at] = '\0';
    return at;
}

uint64_t ig_fnv1a(const void *data, size_t len, uint64_t h)
{
    const uint8_t *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}
