/*
 * Metrics: counters, gauges and histograms with labels, rendered in Prometheus' text
 * exposition format (version 0.0.4). Single-threaded: every call on the loop's thread.
 * A family holds at most METRICS_MAX_SERIES label sets; further ones share one series whose
 * labels are all "other", so a flood of unexpected values cannot grow memory.
 */
#ifndef IG_METRICS_H
#define IG_METRICS_H

#include <stddef.h>

struct evbuffer;
struct metrics;
struct metric_family;
struct metric_series;

#define METRICS_MAX_SERIES 2000
#define METRICS_MAX_LABELS 4

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Creates an empty registry; NULL when out of memory. Free with metrics_free(). */
struct metrics *metrics_new(void);

/* Frees the registry, its families and series; NULL is a no-op. */
void metrics_free(struct metrics *m);

/*
 * Adds a family NAME (HELP, both copied) of TYPE with N_LABELS label names (at most
 * METRICS_MAX_LABELS, copied); a histogram takes N_BUCKETS ascending upper bounds (copied;
 * +Inf is implied). Returns the family (owned by M) or NULL when out of memory.
 */
struct metric_family *metrics_family(struct metrics *m, enum metric_type type, const char *name,
                                     const char *help, size_t n_labels,
                                     const char *const *label_names, const double *buckets,
                                     size_t n_buckets);

/* Returns the series of F for the label VALUES (one per label name; copied), made at its
 * first use; NULL only when out of memory. */
struct metric_series *metric_series(struct metric_family *f, const char *const *values);

/* Adds V to a counter or gauge series (NULL is a no-op). */
void metric_add(struct metric_series *s, double v);

/* Sets a gauge series to V (NULL is a no-op). */
void metric_set(struct metric_series *s, double v);

/* Records V in a histogram series (NULL is a no-op). */
void metric_observe(struct metric_series *s, double v);

/* Drops every series of F (gauges recomputed before each rendering). */
void metric_family_clear(struct metric_family *f);

/* Appends every family of M in the text exposition format to OUT. Returns 0 or -1 when out
 * of memory. */
int metrics_render(const struct metrics *m, struct evbuffer *out);

/* Appends VALUE to OUT as a Prometheus label value (quotes not included), escaping
 * backslash, double quote and newline. */
void metrics_escape_label(struct evbuffer *out, const char *value);

#endif
