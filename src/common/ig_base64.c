/* Base64 encoding. */
#include "ig_base64.h"

#include <stdint.h>

size_t ig_base64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

void ig_base64_encode(const void *data, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i += 3) {
        size_t left = len - i;
        uint32_t v = (uint32_t)p[i] << 16;

        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        *out++ = tab[(v >> 18) & 63];
        *out++ = tab[(v >> 12) & 63];
        *out++ = left > 1 ? tab[(v >> 6) & 63] : '=';
        *out++ = left > 2 ? tab[v & 63] : '=';
    }
    *out = '\0';
}
