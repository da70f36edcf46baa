/*
 * Token metering of one upstream response: reads the usage the upstream reports (OpenAI's
 * "usage", llama.cpp's "timings" or tokens_evaluated/tokens_predicted), from a JSON body or
 * from server-sent events as they pass, and counts streamed tokens itself (one per content
 * chunk, prompt from its length) when the upstream reports none.
 */
#ifndef IG_GW_METER_H
#define IG_GW_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest SSE line or JSON body parsed whole; of a longer body only the last
 * GW_METER_TAIL bytes are kept and searched for its usage (which comes last). */
#define GW_METER_MAX_BODY (1u << 20)
#define GW_METER_MAX_LINE (64u << 10)
#define GW_METER_TAIL (64u << 10)

/* A meter (plain struct; release with gw_meter_clear()). */
struct gw_meter {
    bool is_stream;
    bool has_usage;            /* the upstream reported counts */
    uint64_t prompt_tokens;    /* reported, or estimated */
    uint64_t completion_tokens;
    uint64_t content_chunks;   /* streamed chunks that carried text */
    uint64_t prompt_estimate;  /* from the request, for when nothing is reported */
    char *buf;                 /* the body (JSON) or the current SSE line */
    size_t len, cap;
    bool is_overflow;          /* the current line or body exceeded its cap */
    uint64_t body_bytes;       /* of a non-streamed body */
};

/* Starts metering a response; PROMPT_ESTIMATE is the request's token estimate. */
void gw_meter_init(struct gw_meter *m, bool is_stream, uint64_t prompt_estimate);

/* Feeds LEN bytes of the response body. */
void gw_meter_feed(struct gw_meter *m, const char *data, size_t len);

/* Ends the response: sets *PROMPT and *COMPLETION (reported, else estimated) and frees the
 * buffer. */
void gw_meter_finish(struct gw_meter *m, uint64_t *prompt, uint64_t *completion);

/* Frees the buffer of an unfinished meter. */
void gw_meter_clear(struct gw_meter *m);

/* Returns a rough token count for a request body of LEN bytes (about 4 bytes a token). */
uint64_t gw_meter_estimate_tokens(size_t len);

#endif
