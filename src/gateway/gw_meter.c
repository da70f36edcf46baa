/* Token metering of upstream responses (see gw_meter.h). */
#include "gw_meter.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void gw_meter_init(struct gw_meter *m, bool is_stream, uint64_t prompt_estimate)
{
    memset(m, 0, sizeof(*m));
    m->is_stream = is_stream;
    m->prompt_estimate = prompt_estimate;
}

uint64_t gw_meter_estimate_tokens(size_t len)
{
    return (len + 3) / 4;
}

/* Returns OBJ[KEY] as a count, or -1. */
static long long count_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long long)json_integer_value(v) : -1;
}

/* Takes counts from one JSON document (a body or an SSE event) when it has any. */
static void read_counts(struct gw_meter *m, json_t *doc)
{
    json_t *usage = json_object_get(doc, "usage"), *timings = json_object_get(doc, "timings");
    long long p = -1, c = -1;

    if (json_is_object(usage)) {
        p = count_of(usage, "prompt_tokens");
        c = count_of(usage, "completion_tokens");
        if (p >= 0 && c < 0)
            c = 0; /* embeddings report prompt tokens only */
    }
    if ((p < 0 || c < 0) && json_is_object(timings)) {
        p = count_of(timings, "prompt_n");
        c = count_of(timings, "predicted_n");
    }
    if (p < 0 || c < 0) { /* llama.cpp's /completion */
        p = count_of(doc, "tokens_evaluated");
        c = count_of(doc, "tokens_predicted");
    }
    if (p >= 0 && c >= 0) {
        m->prompt_tokens = (uint64_t)p;
        m->completion_tokens = (uint64_t)c;
        m->has_usage = true;
    }
}

/* Returns whether a streamed event carries generated text (chat delta, or completion text). */
static bool has_content(json_t *doc)
{
    json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
    json_t *delta = json_object_get(choice, "delta");
    const char *text = json_string_value(json_object_get(delta, "content"));

    if (text == NULL)
        text = json_string_value(json_object_get(delta, "reasoning_content"));
    if (text == NULL)
        text = json_string_value(json_object_get(choice, "text"));
    if (text == NULL)
        text = json_string_value(json_object_get(doc, "content")); /* /completion */
    return text != NULL && text[0] != '\0';
}

/* Returns whether the event of LEN bytes at LINE has a non-empty "content", "text" or
 * "reasoning_content" string (what has_content() finds, without parsing). */
static bool has_text_value(const char *line, size_t len)
{
    static const char *const keys[] = {"\"content\"", "\"text\"", "\"reasoning_content\""};
    const char *end = line + len;

    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(keys[k]);
        for (const char *p = line; (p = memmem(p, (size_t)(end - p), keys[k], n)) != NULL; p += n) {
            const char *v = p + n;
            while (v < end && (*v == ' ' || *v == ':'))
                v++;
            if (v + 1 < end && v[0] == '"' && v[1] != '"')
                return true;
        }
    }
    return false;
}

/* Handles one complete SSE line of LEN bytes. */
static void stream_line(struct gw_meter *m, const char *line, size_t len)
{
    json_t *doc;

    if (len < 5 || strncmp(line, "data:", 5) != 0)
        return;
    line += 5;
    len -= 5;
    while (len > 0 && *line == ' ') {
        line++;
        len--;
    }
    if (len == 6 && strncmp(line, "[DONE]", 6) == 0)
        return;
    /* Most events carry one token and no counts: those are only looked at, not parsed. */
    if (memmem(line, len, "\"usage\"", 7) == NULL && memmem(line, len, "\"timings\"", 9) == NULL &&
        memmem(line, len, "\"tokens_predicted\"", 18) == NULL) {
        if (has_text_value(line, len))
            m->content_chunks++;
        return;
    }
    doc = json_loadb(line, len, 0, NULL);
    if (json_is_object(doc)) {
        if (has_content(doc))
            m->content_chunks++;
        read_counts(m, doc);
    }
    json_decref(doc);
}

/* Appends LEN bytes to the buffer, up to CAP; returns false (and marks overflow) beyond. */
static bool buffer_add(struct gw_meter *m, const char *data, size_t len, size_t cap)
{
    if (m->is_overflow || m->len + len > cap) {
        m->is_overflow = true;
        return false;
    }
    if (m->len + len + 1 > m->cap) {
        size_t want = m->cap > 0 ? m->cap : 256;
        while (want < m->len + len + 1)
            want *= 2;
        char *grown = realloc(m->buf, want);
        if (grown == NULL) {
            m->is_overflow = true;
            return false;
        }
        m->buf = grown;
        m->cap = want;
    }
    memcpy(m->buf + m->len, data, len);
    m->len += len;
    return true;
}

/* Keeps the last GW_METER_TAIL bytes of a body too large to parse whole. */
static void keep_tail(struct gw_meter *m, const char *data, size_t len)
{
    if (len >= GW_METER_TAIL) {
        data += len - GW_METER_TAIL;
        len = GW_METER_TAIL;
    }
    if (m->cap < GW_METER_TAIL) {
        char *grown = realloc(m->buf, GW_METER_TAIL);
        if (grown == NULL) {
            m->len = 0;
            return;
        }
        m->buf = grown;
        m->cap = GW_METER_TAIL;
    }
    if (m->len > GW_METER_TAIL - len) {
        size_t drop = m->len - (GW_METER_TAIL - len);
        memmove(m->buf, m->buf + drop, m->len - drop);
        m->len -= drop;
    }
    memcpy(m->buf + m->len, data, len);
    m->len += len;
}

/* Returns the last occurrence of the key NEEDLE (a quoted name) in the LEN bytes at HAY that
 * is not inside a string (an escaped quote, \"usage\", is text), or NULL. */
static const char *find_last(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    const char *p;

    /* From one candidate first character to the previous (memrchr reads words, not bytes). */
    for (size_t left = len >= n ? len - n + 1 : 0;
         left > 0 && (p = memrchr(hay, needle[0], left)) != NULL; left = (size_t)(p - hay))
        if (p[1] == needle[1] && memcmp(p, needle, n) == 0 && (p == hay || p[-1] != '\\'))
            return p;
    return NULL;
}

/* Reads the unsigned integer after KEY (a quoted name) within [P, END); -1 if absent. */
static long long number_after(const char *p, const char *end, const char *key)
{
    size_t n = strlen(key);
    const char *at = memmem(p, (size_t)(end - p), key, n);
    unsigned long long v = 0;
    bool has_digit = false;

    if (at == NULL)
        return -1;
    for (p = at + n; p < end && (*p == ' ' || *p == ':'); p++)
        ;
    for (; p < end && *p >= '0' && *p <= '9' && v < (1ull << 60); p++, has_digit = true)
        v = v * 10 + (unsigned long long)(*p - '0');
    return has_digit ? (long long)v : -1;
}

/* Returns the end of the JSON object that starts at or after P (brace depth, strings
 * skipped), or END when it is not closed. */
static const char *object_end(const char *p, const char *end)
{
    int depth = 0;
    bool is_in_string = false;

    for (; p < end; p++) {
        if (is_in_string) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                is_in_string = false;
        } else if (*p == '"') {
            is_in_string = true;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}' && --depth <= 0) {
            return p + 1;
        }
    }
    return end;
}

/*
 * Reads the counts of a JSON body from its last "usage" (else "timings") object without
 * parsing the body: upstreams put it at the end, so the search from the end is short, and
 * only the two numbers are read. Returns whether counts were found.
 */
static bool read_from_end(struct gw_meter *m)
{
    static const char *const keys[][3] = {
        {"\"usage\"", "\"prompt_tokens\"", "\"completion_tokens\""},
        {"\"timings\"", "\"prompt_n\"", "\"predicted_n\""}};
    const char *end = m->buf + m->len;

    for (size_t k = 0; k < 2 && !m->has_usage; k++) {
        const char *at = find_last(m->buf, m->len, keys[k][0]);
        if (at == NULL)
            continue;
        const char *obj_end = object_end(at + strlen(keys[k][0]), end);
        long long p = number_after(at, obj_end, keys[k][1]);
        long long c = number_after(at, obj_end, keys[k][2]);
        if (p >= 0 && c < 0 && k == 0)
            c = 0; /* embeddings report prompt tokens only */
        if (p >= 0 && c >= 0) {
            m->prompt_tokens = (uint64_t)p;
            m->completion_tokens = (uint64_t)c;
            m->has_usage = true;
        }
    }
    return m->has_usage;
}

void gw_meter_feed(struct gw_meter *m, const char *data, size_t len)
{
    if (!m->is_stream) {
        m->body_bytes += len;
        if (m->is_overflow || !buffer_add(m, data, len, GW_METER_MAX_BODY))
            keep_tail(m, data, len);
        return;
    }
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - data) : len;
        (void)buffer_add(m, data, n, GW_METER_MAX_LINE);
        if (nl == NULL)
            return;
        if (!m->is_overflow) {
            size_t line_len = m->len;
            if (line_len > 0 && m->buf[line_len - 1] == '\r')
                line_len--;
            stream_line(m, m->buf, line_len);
        } else {
            m->content_chunks++; /* a huge event: count it as text */
        }
        m->len = 0;
        m->is_overflow = false;
        data += n + 1;
        len -= n + 1;
    }
}

void gw_meter_finish(struct gw_meter *m, uint64_t *prompt, uint64_t *completion)
{
    if (!m->is_stream && m->len > 0 && !read_from_end(m)) {
        if (!m->is_overflow) { /* llama.cpp's /completion: top-level counts */
            json_t *doc = json_loadb(m->buf, m->len, 0, NULL);
            if (json_is_object(doc))
                read_counts(m, doc);
            json_decref(doc);
        } else { /* nothing readable: about 4 bytes of JSON a token */
            m->content_chunks = m->body_bytes / 4;
        }
    } else if (m->is_stream && m->len > 0 && !m->is_overflow) {
        stream_line(m, m->buf, m->len); /* a last line without its newline */
    }
    if (m->has_usage) {
        *prompt = m->prompt_tokens;
        *completion = m->completion_tokens;
    } else {
        *prompt = m->prompt_estimate;
        *completion = m->content_chunks;
    }
    gw_meter_clear(m);
}

void gw_meter_clear(struct gw_meter *m)
{
    free(m->buf);
    m->buf = NULL;
    m->len = m->cap = 0;
}
