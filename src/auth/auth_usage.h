/*
 * Usage per key, model and hour: counted in memory as requests end, written to the
 * usage_hourly table in one store job per flush (every AUTH_FLUSH_MS, and before a usage
 * query so that it sees everything). A batch the database refuses is kept for the next one.
 */
#ifndef IG_AUTH_USAGE_H
#define IG_AUTH_USAGE_H

#include <stdint.h>

#include "auth.h"

struct store;
struct usage_log;

/* Creates an empty log writing to ST (borrowed). NULL when out of memory. */
struct usage_log *usage_log_new(struct store *st);

/* Adds REQUESTS requests with U's tokens, latency and error to NAME x MODEL x this hour. */
void usage_log_add(struct usage_log *log, const char *name, const char *model, uint64_t requests,
                   const struct auth_usage *u);

/* Queues what is pending as one store job. */
void usage_log_flush(struct usage_log *log);

/* Flushes and frees; NULL is a no-op. */
void usage_log_free(struct usage_log *log);

#endif
