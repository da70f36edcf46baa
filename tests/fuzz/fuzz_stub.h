/*
 * A loopback HTTP upstream for the fuzz harnesses that drive the gateway's upstream client:
 * it accepts connections on 127.0.0.1, reads each request (head and Content-Length body),
 * hands it to a callback, and writes the answer the harness gives it, piece by piece, one
 * piece per loop turn, so that the client sees the bytes in several reads.
 *
 * Sockets are closed with a reset, so that fuzzing at thousands of runs a second leaves no
 * TIME_WAIT connections behind to use up the loopback ports of the machine.
 */
#ifndef IG_FUZZ_STUB_H
#define IG_FUZZ_STUB_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct fuzz_stub;
struct fuzz_stub_conn;

/* Called once per complete request; HEAD (request line and headers, without the blank
 * line) and BODY are borrowed for the call. */
typedef void (*fuzz_stub_request_fn)(struct fuzz_stub_conn *conn, const char *head, size_t head_len,
                                     const char *body, size_t body_len, void *arg);

/* Listens on 127.0.0.1 (a free port) on BASE; NULL on failure. Free with fuzz_stub_free(). */
struct fuzz_stub *fuzz_stub_new(struct event_base *base, fuzz_stub_request_fn fn, void *arg);

/* Returns the port listened on. */
int fuzz_stub_port(const struct fuzz_stub *stub);

/* Queues LEN bytes of DATA (copied) as the next piece of CONN's answer. */
void fuzz_stub_write(struct fuzz_stub_conn *conn, const void *data, size_t len);

/* Ends CONN once its queued pieces are written and received: the client reads them, then
 * the end of the stream (a reset rather than a FIN, see fuzz_stub.c). */
void fuzz_stub_end(struct fuzz_stub_conn *conn);

/* Returns how many requests the stub has received. */
size_t fuzz_stub_requests(const struct fuzz_stub *stub);

/* Resets every connection, stops listening and frees; NULL is a no-op. */
void fuzz_stub_free(struct fuzz_stub *stub);

#endif
