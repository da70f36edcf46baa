/* Counters, gauges and histograms in Prometheus' text format (see metrics.h). */
#include "metrics.h"
#include "ig_text.h"

#include <event2/buffer.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_BUCKETS 256 /* per family; chains stay short under METRICS_MAX_SERIES */
#define MAX_BUCKETS 32

struct metric_series {
    struct metric_series *next_in_hash, *next; /* hash chain; creation order */
    uint64_t hash;
    const struct metric_family *family;
    char *values[METRICS_MAX_LABELS];
    double value;            /* counter/gauge; a histogram's sum */
    uint64_t count;          /* a histogram's observations */
    uint64_t *bucket_counts; /* a histogram's, not cumulative */
};

struct metric_family {
    struct metric_family *next;
    enum metric_type type;
    char *name, *help;
    size_t n_labels;
    char *label_names[METRICS_MAX_LABELS];
    double buckets[MAX_BUCKETS];
    size_t n_buckets;
    struct metric_series *hash[HASH_BUCKETS];
    struct metric_series *first, *last;
    size_t n_series;
};

struct metrics {
    struct metric_family *first, *last;
};

struct metrics *metrics_new(void)
{
    return calloc(1, sizeof(struct metrics));
}

/* Frees one series. */
static void series_free(struct metric_series *s)
{
    for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
        free(s->values[i]);
    free(s->bucket_counts);
    free(s);
}

void metric_family_clear(struct metric_family *f)
{
    struct metric_series *s = f->first, *next;

    for (; s != NULL; s = next) {
        next = s->next;
        series_free(s);
    }
    memset(f->hash, 0, sizeof(f->hash));
    f->first = f->last = NULL;
    f->n_series = 0;
}

/* Frees one family. */
static void family_free(struct metric_family *f)
{
    metric_family_clear(f);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->label_names[i]);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_free(struct metrics *m)
{
    struct metric_family *f, *next;

    if (m == NULL)
        return;
    for (f = m->first; f != NULL; f = next) {
        next = f->next;
        family_free(f);
    }
    free(m);
}

struct metric_family *metrics_family(struct metrics *m, enum metric_type type, const char *name,
                                     const char *help, size_t n_labels,
                                     const char *const *label_names, const double *buckets,
                                     size_t n_buckets)
{
    struct metric_family *f = calloc(1, sizeof(*f));
    bool is_ok = f != NULL && n_labels <= METRICS_MAX_LABELS && n_buckets <= MAX_BUCKETS;

    if (!is_ok) {
        free(f);
        return NULL;
    }
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help);
    is_ok = f->name != NULL && f->help != NULL;
    f->n_labels = n_labels;
    for (size_t i = 0; i < n_labels; i++) {
        f->label_names[i] = strdup(label_names[i]);
        is_ok = is_ok && f->label_names[i] != NULL;
    }
    if (type == METRIC_HISTOGRAM && n_buckets > 0)
        memcpy(f->buckets, buckets, n_buckets * sizeof(*buckets));
    f->n_buckets = type == METRIC_HISTOGRAM ? n_buckets : 0;
    if (!is_ok) {
        family_free(f);
        return NULL;
    }
    if (m->last != NULL)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
}

/* FNV-1a over the label values, each ended by a 0x1f separator. */
static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = IG_FNV1A_INIT;

    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] != NULL ? values[i] : "";
        h = ig_fnv1a("\x1f", 1, ig_fnv1a(v, strlen(v), h));
    }
    return h;
}

/* Returns the existing series of F for VALUES (hashed to H), or NULL. */
static struct metric_series *find_series(struct metric_family *f, const char *const *values,
                                         uint64_t h)
{
    for (struct metric_series *s = f->hash[h % HASH_BUCKETS]; s != NULL; s = s->next_in_hash) {
        size_t i = 0;
        if (s->hash != h)
            continue;
        while (i < f->n_labels && strcmp(s->values[i], values[i] != NULL ? values[i] : "") == 0)
            i++;
        if (i == f->n_labels)
            return s;
    }
    return NULL;
}

/* Makes the series of F for VALUES (hashed to H); NULL when out of memory. */
static struct metric_series *add_series(struct metric_family *f, const char *const *values,
                                        uint64_t h)
{
    struct metric_series *s = calloc(1, sizeof(*s));
    bool is_ok = s != NULL;

    for (size_t i = 0; is_ok && i < f->n_labels; i++) {
        s->values[i] = strdup(values[i] != NULL ? values[i] : "");
        is_ok = s->values[i] != NULL;
    }
    if (is_ok && f->type == METRIC_HISTOGRAM) {
        s->bucket_counts = calloc(f->n_buckets + 1, sizeof(*s->bucket_counts));
        is_ok = s->bucket_counts != NULL;
    }
    if (!is_ok) {
        if (s != NULL)
            series_free(s);
        return NULL;
    }
    s->hash = h;
    s->family = f;
    s->next_in_hash = f->hash[h % HASH_BUCKETS];
    f->hash[h % HASH_BUCKETS] = s;
    if (f->last != NULL)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    f->n_series++;
    return s;
}

struct metric_series *metric_series(struct metric_family *f, const char *const *values)
{
    static const char *const other[METRICS_MAX_LABELS] = {"other", "other", "other", "other"};
    uint64_t h;
    struct metric_series *s;

    if (f == NULL)
        return NULL;
    h = hash_values(values, f->n_labels);
    s = find_series(f, values, h);
    if (s != NULL)
        return s;
    if (f->n_series >= METRICS_MAX_SERIES) {
        h = hash_values(other, f->n_labels);
        s = find_series(f, other, h);
        return s != NULL ? s : add_series(f, other, h);
    }
    return add_series(f, values, h);
}

void metric_add(struct metric_series *s, double v)
{
    if (s != NULL)
        s->value += v;
}

void metric_set(struct metric_series *s, double v)
{
    if (s != NULL)
        s->value = v;
}

void metric_observe(struct metric_series *s, double v)
{
    size_t i = 0;

    if (s == NULL || s->bucket_counts == NULL)
        return;
    while (i < s->family->n_buckets && v > s->family->buckets[i])
        i++;
    s->bucket_counts[i]++; /* index n_buckets: only +Inf holds it */
    s->value += v;
    s->count++;
}

/* Appends {name="value",...} for S (with EXTRA_NAME="EXTRA_VALUE" last when given). */
static void write_labels(struct evbuffer *out, const struct metric_family *f,
                         const struct metric_series *s, const char *extra_name,
                         const char *extra_value)
{
    size_t n = 0;

    if (f->n_labels == 0 && extra_name == NULL)
        return;
    evbuffer_add(out, "{", 1);
    for (size_t i = 0; i < f->n_labels; i++, n++) {
        evbuffer_add_printf(out, "%s%s=\"", n > 0 ? "," : "", f->label_names[i]);
        metrics_escape_label(out, s->values[i]);
        evbuffer_add(out, "\"", 1);
    }
    if (extra_name != NULL)
        evbuffer_add_printf(out, "%s%s=\"%s\"", n > 0 ? "," : "", extra_name, extra_value);
    evbuffer_add(out, "}", 1);
}

/* Formats V as Prometheus does: integers without a fraction, +Inf/-Inf/NaN by name. */
static void format_value(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "NaN");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else if (snprintf(buf, size, "%.15g", v) > 0 && strtod(buf, NULL) != v)
        snprintf(buf, size, "%.17g", v); /* the shortest form that reads back the same */
}

/* Appends one histogram series: cumulative buckets, +Inf, sum and count. */
static void write_histogram(struct evbuffer *out, const struct metric_family *f,
                            const struct metric_series *s)
{
    uint64_t cumulative = 0;
    char le[64], num[64];

    for (size_t i = 0; i <= f->n_buckets; i++) {
        cumulative += s->bucket_counts[i];
        if (i < f->n_buckets)
            format_value(le, sizeof(le), f->buckets[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        evbuffer_add_printf(out, "%s_bucket", f->name);
        write_labels(out, f, s, "le", le);
        evbuffer_add_printf(out, " %llu\n", (unsigned long long)cumulative);
    }
    format_value(num, sizeof(num), s->value);
    evbuffer_add_printf(out, "%s_sum", f->name);
    write_labels(out, f, s, NULL, NULL);
    evbuffer_add_printf(out, " %s\n%s_count", num, f->name);
    write_labels(out, f, s, NULL, NULL);
    evbuffer_add_printf(out, " %llu\n", (unsigned long long)s->count);
}

int metrics_render(const struct metrics *m, struct evbuffer *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    char num[64];

    for (const struct metric_family *f = m->first; f != NULL; f = f->next) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                            type_names[f->type]);
        for (const struct metric_series *s = f->first; s != NULL; s = s->next) {
            if (f->type == METRIC_HISTOGRAM) {
                write_histogram(out, f, s);
                continue;
            }
            format_value(num, sizeof(num), s->value);
            evbuffer_add_printf(out, "%s", f->name);
            write_labels(out, f, s, NULL, NULL);
            evbuffer_add_printf(out, " %s\n", num);
        }
    }
    return 0;
}

void metrics_escape_label(struct evbuffer *out, const char *value)
{
    const char *run = value;

    for (const char *p = value;; p++) {
        if (*p != '\0' && *p != '\\' && *p != '"' && *p != '\n')
            continue;
        evbuffer_add(out, run, (size_t)(p - run));
        if (*p == '\0')
            return;
        evbuffer_add(out, *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\", 2);
        run = p + 1;
    }
}
