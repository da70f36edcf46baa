/*
 * The NATS bus of distributed mode: one connection (cnats) whose messages are delivered on
 * the caller's libevent loop, so everything above it runs single-threaded like the rest of
 * the gateway. The connection dials out only, reconnects forever (every URL of the list in
 * turn) and re-subscribes by itself; publishes made while it is down are buffered by cnats.
 */
#ifndef IG_BUS_H
#define IG_BUS_H

#include "bus_frame.h"
#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cfg_nats;
struct bus;
struct bus_msg;

/* Called on the loop for each message of a subscription; MSG dies after it returns. */
typedef void (*bus_msg_fn)(struct bus *bus, const struct bus_msg *msg, void *arg);

/* Called on the loop when the connection goes down (IS_UP false) or comes back. */
typedef void (*bus_state_fn)(struct bus *bus, bool is_up, void *arg);


/* Connects to NATS as NATS describes (URLs, credentials, TLS) under the connection name
 * NAME. A server that cannot be reached yet is retried in the background. Returns the bus,
 * or NULL with *CAUSE (caller frees) when the options are unusable. */
struct bus *bus_open(struct event_base *base, const struct cfg_nats *nats, const char *name,
                     char **cause);

/* Closes the connection and frees; no callback runs after it. NULL is a no-op. */
void bus_free(struct bus *bus);

/* Sets the callback told when the connection drops or comes back. */
void bus_set_state_cb(struct bus *bus, bus_state_fn cb, void *arg);

/* Returns whether the connection is up now. */
bool bus_is_up(const struct bus *bus);

/* Subscribes to SUBJECT (wildcards allowed); CB(ARG) runs on the loop per message.
 * Returns 0 or IG_EIO. */
int bus_subscribe(struct bus *bus, const char *subject, bus_msg_fn cb, void *arg) IG_WUR;

/* Publishes DATA to SUBJECT with REPLY (or NULL) and the N_HEADERS HEADERS. Returns 0 or
 * IG_EIO (the connection is closed, or the message is over the server's maximum). */
int bus_publish(struct bus *bus, const char *subject, const char *reply,
                const struct bus_header *headers, size_t n_headers, const void *data,
                size_t len) IG_WUR;

/* Returns the largest message body the server takes (1 MiB when not known yet). */
size_t bus_max_payload(const struct bus *bus);

/* Message accessors: subject, reply subject ("" when none), body, a header (NULL when
 * absent). Strings are borrowed for the callback's duration. */
const char *bus_msg_subject(const struct bus_msg *msg);
const char *bus_msg_reply(const struct bus_msg *msg);
const char *bus_msg_data(const struct bus_msg *msg, size_t *len);
const char *bus_msg_header(const struct bus_msg *msg, const char *name);

/* Releases cnats's global state at process exit (after every bus is freed). */
void bus_library_close(void);

#endif
