/*
 * Byte tunnels over the bus: one HTTP exchange between a gateway and a worker, carried as
 * NATS messages (docs/DISTRIBUTED.md, "Protocol"). Each end of a tunnel is an in-memory
 * stream (http_stream.h), no socket.
 *
 * The gateway opens a tunnel as the upstream connection of its HTTP client, which writes
 * the request and reads the answer as on a TCP connection. The bytes go to
 * `infergate.v1.workers.<worker>.infer` in messages of at most the server's payload,
 * numbered by the header Ig-Seq and named by Ig-Id (the tunnel's id, "<gateway>-<n>"),
 * with the reply subject `_INBOX.<gateway>.<n>`. The worker serves: on a new Ig-Id the
 * tunnel becomes a client connection of its HTTP server, and what the server answers goes
 * back to the reply subject, numbered the same way; the server's half close (or close)
 * sends the terminal message (Ig-End: ok), with the answer's last bytes when they are
 * still buffered, so a whole answer usually travels in one message. A worker at capacity
 * answers at once with Ig-End: busy and no bytes, which the gateway's end turns into an
 * HTTP 429 answer. A gateway whose client hangs up first
 * publishes `infergate.v1.cancel.<id>`; the worker ends the connection, which cancels the
 * request. A message out of sequence ends the tunnel: the HTTP client sees a truncated
 * answer.
 */
#ifndef IG_BUS_TUNNEL_H
#define IG_BUS_TUNNEL_H

#include "http_stream.h"
#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

struct bus;
struct event_base;
struct bus_tunnels;

#define BUS_ID_MAX 64 /* longest worker or gateway id: [A-Za-z0-9_-] */

/* Worker side: serves the stream STREAM (driven through OPS) as a client named PEER;
 * returns 0 with the serving end's *SINK and *END, or -1 (refused). */
typedef int (*bus_accept_fn)(void *stream, const struct http_stream_ops *ops, const char *peer,
                             const struct http_stream_sink **sink, void **end, void *arg);

/* Makes the tunnel table of SELF_ID (a gateway's or worker's id) on BUS; NULL with *CAUSE
 * (caller frees) on failure. */
struct bus_tunnels *bus_tunnels_new(struct bus *bus, struct event_base *base,
                                    const char *self_id, char **cause);

/* Closes every tunnel and frees; NULL is a no-op. */
void bus_tunnels_free(struct bus_tunnels *t);

/* Gateway side: opens a tunnel to WORKER as a stream of the HTTP client CLIENT, fed
 * through SINK; returns it with *OPS (an upstream_open_stream_fn), or NULL. */
void *bus_tunnel_open(struct bus_tunnels *t, const char *worker,
                      const struct http_stream_sink *sink, void *client,
                      const struct http_stream_ops **ops);

/* Gateway side: a tunnel that gets no message for STALL_MS (0: never) while its answer is
 * not complete ends: its worker gets a cancel, its client a 504 answer when nothing came
 * yet, else the end (a cut answer). Workers are asked for a keep-alive message after a
 * quarter of it of silence (header Ig-Keepalive-Ms on the first part), so a long silent
 * phase (prompt processing, a non-streamed answer) is not a stall. Returns 0 or IG_ENOMEM. */
int bus_tunnels_set_stall(struct bus_tunnels *t, unsigned stall_ms) IG_WUR;

/* The bus connection came back (possibly through another NATS server, having lost what
 * was in flight): a worker sends its unacknowledged answers again, a gateway asks for the
 * rest of each answer it is reading (Ig-Resend); the receiving side drops what it had. */
void bus_tunnels_reconnected(struct bus_tunnels *t);

/* Gateway side: ends every tunnel to WORKER (gone from the bus); their clients see the end. */
void bus_tunnels_drop_worker(struct bus_tunnels *t, const char *worker);

/* Gateway side: returns how many tunnels to WORKER are open. */
size_t bus_tunnels_open_to(const struct bus_tunnels *t, const char *worker);

/* Worker side: serves requests for worker SELF_ID, at most CAPACITY at once (more are
 * answered busy), handing each connection to ACCEPT(ARG). Returns 0 or IG_EIO. */
int bus_tunnels_serve(struct bus_tunnels *t, size_t capacity, bus_accept_fn accept, void *arg)
    IG_WUR;

/* Returns how many tunnels are open. */
size_t bus_tunnels_active(const struct bus_tunnels *t);

/* Worker: bytes of answers kept for resends (sent, not yet known to have arrived whole). */
size_t bus_tunnels_kept_bytes(const struct bus_tunnels *t);

/* Returns whether ID is a usable worker or gateway id (1-64 of [A-Za-z0-9_-]). */
bool bus_id_valid(const char *id);

#endif
