/*
 * The JetStream side of batches: its own NATS connection on a thread of its own, where the
 * blocking js_ calls live. Each request line of a batch is one message of the work-queue
 * stream BATCH_JS_STREAM, on subject infergate.v1.batch.<gateway>.<batch id>, with the
 * message id "<batch id>:<line>" so that publishing a line again is deduplicated. The
 * gateway reads its own subjects through a durable pull consumer ("igbatch-<gateway>")
 * with at most CONCURRENCY messages unacknowledged.
 *
 * The loop talks to the thread through queues under a mutex: publish jobs and ack/nak
 * decisions go in (the thread is woken by a condition variable), received messages and
 * publish progress come back (the loop is woken by a pipe). Callbacks run on the loop.
 */
#ifndef IG_BATCH_JS_H
#define IG_BATCH_JS_H

#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct cfg_nats;
struct batch_js;

#define BATCH_JS_STREAM "IGBATCH"

/* A received line: its batch, its index, how often it was delivered, and its payload. */
struct batch_js_msg {
    char batch_id[72];
    long line;
    int deliveries;
    char *data; /* NUL-terminated */
    size_t len;
    void *nmsg; /* the thread's natsMsg: private */
};

/* What the thread reports to the loop. */
struct batch_js_callbacks {
    /* A line to run; MSG is the callee's, released by batch_js_ack() or batch_js_nak(). */
    void (*on_msg)(struct batch_js_msg *msg, void *arg);
    /* Lines 0..UPTO-1 of BATCH_ID are on the stream. */
    void (*on_published)(const char *batch_id, long upto, void *arg);
    /* The stream became usable (CAUSE NULL) or not (CAUSE says why; borrowed). */
    void (*on_state)(const char *cause, void *arg);
};

/* Starts the thread for gateway GATEWAY (a bus id) on the servers of NATS (read here only),
 * with at most CONCURRENCY lines unacknowledged and ACK_WAIT_MS before
 * JetStream delivers an unacknowledged line again. CB runs on BASE with ARG. At its first
 * connection the thread recreates its consumer, so that lines delivered to a previous
 * process of this gateway and never acknowledged are delivered again at once. Returns NULL
 * with *CAUSE (caller frees) when it cannot start. */
struct batch_js *batch_js_start(struct event_base *base, const struct cfg_nats *nats,
                                const char *gateway, int concurrency, long ack_wait_ms,
                                const struct batch_js_callbacks *cb, void *arg, char **cause);

/* Queues the publication of the N lines LINES (taken, each freed with free(), and the
 * array too) of BATCH_ID, which are lines FIRST..FIRST+N-1. Returns 0 or IG_ENOMEM (LINES
 * still freed). */
int batch_js_publish(struct batch_js *js, const char *batch_id, long first, char **lines,
                     size_t n) IG_WUR;

/* Acknowledges MSG (taken): its line is done and leaves the stream. */
void batch_js_ack(struct batch_js *js, struct batch_js_msg *msg);

/* Hands MSG (taken) back to be delivered again after DELAY_MS. */
void batch_js_nak(struct batch_js *js, struct batch_js_msg *msg, long delay_ms);

/* Releases MSG (taken) without a decision: JetStream delivers it again after the ack wait
 * (or at once to the next process of this gateway). */
void batch_js_drop(struct batch_js *js, struct batch_js_msg *msg);

/* Frees MSG (taken) after batch_js_free(): the message is not decided on. */
void batch_js_msg_free(struct batch_js_msg *msg);

/* Stops the thread (messages not acknowledged stay on the stream) and frees; NULL is a
 * no-op. */
void batch_js_free(struct batch_js *js);

#endif
