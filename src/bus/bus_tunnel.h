/*
 * Byte tunnels over the bus: one HTTP exchange between a gateway and a worker, carried as
 * NATS messages (docs/DISTRIBUTED.md, "Protocol").
 *
 * The gateway opens a tunnel as an in-memory stream of its HTTP client (http_upstream.h),
 * which writes the request and reads the answer as on a TCP connection. The bytes go
 * to `infergate.v1.workers.<worker>.infer` in messages of at most the server's payload,
 * numbered by the header Ig-Seq and named by Ig-Id (the tunnel's id, "<gateway>-<n>"),
 * with the reply subject `_INBOX.<gateway>.<n>`. The worker serves: on a new Ig-Id it makes
 * a socketpair, hands one end to its HTTP server, and sends what the server answers back
 * to the reply subject, numbered the same way; when the server closes the connection it
 * sends a terminal message (Ig-End: ok). A worker at capacity answers at once with
 * Ig-End: busy and no bytes. A gateway whose client hangs up first publishes
 * `infergate.v1.cancel.<id>`; the worker closes its end, which cancels the request.
 * A message out of sequence ends the tunnel: the socket closes and the HTTP client sees a
 * truncated answer.
 */
#ifndef IG_BUS_TUNNEL_H
#define IG_BUS_TUNNEL_H

#include "http_upstream.h"
#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>

struct bus;
struct event_base;
struct bus_tunnels;

#define BUS_ID_MAX 64 /* longest worker or gateway id: [A-Za-z0-9_-] */

/* Worker side: serves the connected socket FD as an accepted client named PEER; returns 0
 * (FD taken) or -1 (FD still the caller's). */
typedef int (*bus_accept_fn)(int fd, const char *peer, void *arg);

/* Makes the tunnel table of SELF_ID (a gateway's or worker's id) on BUS; NULL with *CAUSE
 * (caller frees) on failure. */
struct bus_tunnels *bus_tunnels_new(struct bus *bus, struct event_base *base,
                                    const char *self_id, char **cause);

/* Closes every tunnel and frees; NULL is a no-op. */
void bus_tunnels_free(struct bus_tunnels *t);

/* Gateway side: opens a tunnel to WORKER as a stream of the HTTP client CLIENT, fed
 * through SINK; returns it with *OPS (an upstream_open_stream_fn), or NULL. */
void *bus_tunnel_open(struct bus_tunnels *t, const char *worker,
                      const struct upstream_stream_sink *sink, void *client,
                      const struct upstream_stream_ops **ops);

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

/* Returns whether ID is a usable worker or gateway id (1-64 of [A-Za-z0-9_-]). */
bool bus_id_valid(const char *id);

#endif
