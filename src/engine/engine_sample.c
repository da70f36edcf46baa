/* Sampling chains, stop strings and UTF-8 hold-back for generated text. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

int eng_text_append(struct eng_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap > 0 ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *data = realloc(t->data, cap);
        if (data == NULL)
            return -1;
        t->data = data;
        t->cap = cap;
    }
    if (n > 0)
        memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
    return 0;
}

void eng_text_release(struct eng_text *t)
{
    free(t->data);
    t->data = NULL;
    t->len = 0;
    t->cap = 0;
}

/* Returns the length of the UTF-8 sequence led by byte C, or 0 when C cannot lead one. */
static size_t utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

/*
 * Returns how many bytes of S (N bytes, N > 0) form one valid sequence: its length, 0 when
 * the first byte starts an invalid sequence, or -1 when S ends inside a sequence that may
 * still become valid. Overlong and surrogate forms are invalid.
 */
static int utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t want = utf8_seq_len(s[0]);
    if (want == 0)
        return 0;
    for (size_t i = 1; i < want; i++) {
        if (i >= n)
            return -1;
        unsigned char lo = 0x80, hi = 0xbf;
        if (i == 1 && s[0] == 0xe0)
            lo = 0xa0;
        else if (i == 1 && s[0] == 0xed)
            hi = 0x9f;
        else if (i == 1 && s[0] == 0xf0)
            lo = 0x90;
        else if (i == 1 && s[0] == 0xf4)
            hi = 0x8f;
        if (s[i] < lo || s[i] > hi)
            return 0;
    }
    return (int)want;
}

/*
 * Both functions below walk S sequence by sequence from its start; an invalid byte is one
 * step. Cutting only where the walk stops keeps pieces sanitised one by one equal to the
 * whole text sanitised at once, so streamed content equals the non-streamed content.
 */
int eng_utf8_append_valid(struct eng_text *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int len = utf8_valid_prefix(u + i, n - i);
        if (len > 0) {
            if (eng_text_append(out, s + i, (size_t)len) != 0)
                return -1;
            i += (size_t)len;
        } else {
            if (eng_text_append(out, "\xef\xbf\xbd", 3) != 0)
                return -1;
            i++;
        }
    }
    return 0;
}

size_t eng_utf8_complete_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int len = utf8_valid_prefix(u + i, n - i);
        if (len < 0)
            return i;
        i += len > 0 ? (size_t)len : 1;
    }
    return n;
}

/* Returns the length of the longest suffix of GEN[FROM..LEN) that is a proper prefix of STOP. */
static size_t stop_prefix_overlap(const char *gen, size_t from, size_t len, const char *stop)
{
    size_t stop_len = strlen(stop);
    size_t max = len - from < stop_len - 1 ? len - from : stop_len - 1;
    for (size_t k = max; k > 0; k--) {
        if (memcmp(gen + len - k, stop, k) == 0)
            return k;
    }
    return 0;
}

size_t eng_stop_scan(const struct eng_sampling *s, const char *gen, size_t len, size_t sent,
                     int *stop_index)
{
    size_t best = len;
    size_t hold = 0;
    *stop_index = -1;
    for (size_t i = 0; i < s->n_stops; i++) {
        size_t stop_len = strlen(s->stops[i]);
        /* A stop string may begin in text already held back, never in text already sent. */
        const char *hit = memmem(gen + sent, len - sent, s->stops[i], stop_len);
        if (hit != NULL && (size_t)(hit - gen) < best) {
            best = (size_t)(hit - gen);
            *stop_index = (int)i;
        }
    }
    if (*stop_index >= 0)
        return best;
    for (size_t i = 0; i < s->n_stops; i++) {
        size_t k = stop_prefix_overlap(gen, sent, len, s->stops[i]);
        if (k > hold)
            hold = k;
    }
    return sent + eng_utf8_complete_len(gen + sent, len - hold - sent);
}
