/* Small string helpers. */
#include "ig_text.h"

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
