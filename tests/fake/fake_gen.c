/* Deterministic "inference" for fake-llama-server: words, stop strings, embeddings, JSON out. */
#include "fake.h"

#include "ig_error.h"

#include <event2/buffer.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * The vocabulary. A token is one word; token 0 is the bare word and every later token is
 * " word", so concatenating the streamed pieces gives exactly the non-streamed content.
 */
static const char *const words[] = {
    "the",    "quick",  "brown",  "fox",    "jumps",  "over",   "lazy",   "dog",
    "alpha",  "beta",   "gamma",  "delta",  "river",  "stone",  "cloud",  "light",
    "shadow", "garden", "silver", "copper", "orange", "violet", "amber",  "forest",
    "ocean",  "desert", "market", "window", "paper",  "candle", "engine", "signal",
    "vector", "kernel", "socket", "buffer", "thread", "cache",  "token",  "model",
    "prompt", "answer", "simple", "bright", "quiet",  "rapid",  "gentle", "steady",
    "hollow", "narrow", "north",  "south",  "east",   "west",   "dawn",   "evening",
    "winter", "summer", "spring", "autumn", "music",  "rhythm", "echo",   "harbor",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))
#define MAX_PIECE_BYTES 9 /* " evening" plus slack; checked against the list below */

uint64_t fake_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t fake_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Returns whether C is ASCII whitespace. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int fake_count_words(const char *s, size_t n)
{
    int count = 0;
    bool is_in_word = false;

    for (size_t i = 0; i < n; i++) {
        if (is_space(s[i])) {
            is_in_word = false;
        } else if (!is_in_word) {
            is_in_word = true;
            count++;
        }
    }
    return count;
}

const char *fake_word(uint64_t i)
{
    return words[i % N_WORDS];
}

/* Points T's buffers at inline storage or heap storage big enough for N tokens. */
static int text_alloc(struct fake_text *t, int n)
{
    size_t text_bytes = (size_t)n * MAX_PIECE_BYTES + 1;

    t->text = t->inline_text;
    t->tok_end = t->inline_end;
    if (text_bytes > sizeof(t->inline_text)) {
        t->text = malloc(text_bytes);
        if (t->text == NULL)
            return IG_ENOMEM;
    }
    if ((size_t)n > sizeof(t->inline_end) / sizeof(t->inline_end[0])) {
        t->tok_end = malloc((size_t)n * sizeof(*t->tok_end));
        if (t->tok_end == NULL)
            return IG_ENOMEM;
    }
    return 0;
}

/*
 * Looks for any stop string completed by the piece that grew the text from OLD_LEN; returns
 * the earliest match offset and sets *WHICH, or returns -1. Only matches ending in the new
 * piece count, so a match is found on the token that completes it, as llama-server does.
 */
static long find_stop(const struct fake_text *t, size_t old_len, const struct fake_gen_req *g,
                      int *which)
{
    long best = -1;

    for (size_t s = 0; s < g->n_stops; s++) {
        size_t stop_len = g->stop_lens[s];
        size_t from = old_len >= stop_len ? old_len - stop_len + 1 : 0;
        const char *hit;

        if (stop_len == 0 || stop_len > t->len)
            continue;
        hit = memmem(t->text + from, t->len - from, g->stops[s], stop_len);
        if (hit != NULL && (best < 0 || hit - t->text < best)) {
            best = hit - t->text;
            *which = (int)s;
        }
    }
    return best;
}

int fake_text_generate(struct fake_text *t, const struct fake_gen_req *g)
{
    uint64_t base = fake_mix64(g->prompt_hash ^ fake_mix64((uint64_t)g->seed));
    int rc;

    t->len = 0;
    t->n_tokens = 0;
    t->is_stopped = false;
    t->stop_index = -1;
    rc = text_alloc(t, g->n_predict);
    if (rc != 0)
        return rc;
    for (int i = 0; i < g->n_predict; i++) {
        const char *w = fake_word(fake_mix64(base + (uint64_t)i));
        size_t old_len = t->len;
        long cut;

        if (i > 0)
            t->text[t->len++] = ' ';
        memcpy(t->text + t->len, w, strlen(w));
        t->len += strlen(w);
        t->tok_end[i] = (uint32_t)t->len;
        t->n_tokens = i + 1;
        cut = find_stop(t, old_len, g, &t->stop_index);
        if (cut >= 0) {
            t->len = (size_t)cut;
            t->is_stopped = true;
            break;
        }
    }
    for (int i = 0; i < t->n_tokens; i++) {
        if (t->tok_end[i] > t->len)
            t->tok_end[i] = (uint32_t)t->len;
    }
    t->text[t->len] = '\0';
    return 0;
}

void fake_text_release(struct fake_text *t)
{
    if (t->text != NULL && t->text != t->inline_text)
        free(t->text);
    if (t->tok_end != NULL && t->tok_end != t->inline_end)
        free(t->tok_end);
    t->text = NULL;
    t->tok_end = NULL;
}

void fake_embed(float *out, int dim, uint64_t key)
{
    double norm = 0.0;

    for (int j = 0; j < dim; j++) {
        uint64_t r = fake_mix64(key + (uint64_t)j * 0x9e3779b97f4a7c15ULL);
        double v = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0; /* [-1, 1) */

        out[j] = (float)v;
        norm += v * v;
    }
    norm = sqrt(norm);
    if (norm == 0.0)
        norm = 1.0;
    for (int j = 0; j < dim; j++)
        out[j] = (float)(out[j] / norm);
}

/* Appends the JSON escape for control or quote byte C. */
static void json_escape_byte(struct evbuffer *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

    switch (c) {
    case '"':
        evbuffer_add(b, "\\\"", 2);
        break;
    case '\\':
        evbuffer_add(b, "\\\\", 2);
        break;
    case '\n':
        evbuffer_add(b, "\\n", 2);
        break;
    case '\r':
        evbuffer_add(b, "\\r", 2);
        break;
    case '\t':
        evbuffer_add(b, "\\t", 2);
        break;
    case '\b':
        evbuffer_add(b, "\\b", 2);
        break;
    case '\f':
        evbuffer_add(b, "\\f", 2);
        break;
    default:
        evbuffer_add(b, esc, sizeof(esc));
        break;
    }
}

void fake_json_str(struct evbuffer *b, const char *s, size_t n)
{
    size_t run = 0;

    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        evbuffer_add(b, s + run, i - run);
        json_escape_byte(b, c);
        run = i + 1;
    }
    evbuffer_add(b, s + run, n - run);
    evbuffer_add(b, "\"", 1);
}
