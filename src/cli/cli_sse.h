/* An incremental parser of server-sent events, as the CLI reads them from a stream. */
#ifndef IG_CLI_SSE_H
#define IG_CLI_SSE_H

#include <stddef.h>

#include "ig_error.h"

/* Called with each event's data (its data: lines joined by '\n', NUL-terminated, borrowed for
 * the call); returning nonzero stops the parser and cli_sse_feed() returns that value. */
typedef int (*cli_sse_event_fn)(const char *data, size_t len, void *arg);

/* An SSE parser. */
struct cli_sse;

/* Returns a parser calling FN(data, len, ARG) per event whose data is at most MAX_EVENT_BYTES
 * (a longer line or event is an error). Caller frees with cli_sse_free(); NULL when out of
 * memory. */
struct cli_sse *cli_sse_new(size_t max_event_bytes, cli_sse_event_fn fn, void *arg);

/* Frees P (NULL is a no-op). */
void cli_sse_free(struct cli_sse *p);

/* Feeds N bytes of a stream, in any pieces. Returns 0, IG_ETOOBIG for an event or line over
 * the cap, IG_ENOMEM, or the nonzero value a callback returned (the rest is not parsed). */
int cli_sse_feed(struct cli_sse *p, const char *bytes, size_t n) IG_WUR;

#endif
