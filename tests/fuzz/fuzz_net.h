/*
 * What the harnesses on real loopback sockets share (fuzz_request_json, fuzz_sse and their
 * upstream, fuzz_stub.c): reading a non-blocking socket dry, closing one with a reset, and
 * the per-process set-up. Linking fuzz_net.c gives a harness its LLVMFuzzerInitialize().
 */
#ifndef IG_FUZZ_NET_H
#define IG_FUZZ_NET_H

#include <event2/util.h>

struct evbuffer;

/* Reads everything the non-blocking socket FD has into IN. Returns 0 when it would block
 * (more may come), 1 at EOF or on an error (the peer is gone). */
int fuzz_net_recv(evutil_socket_t fd, struct evbuffer *in);

/* Closes FD with a reset (SO_LINGER 0): fuzzing at thousands of runs a second leaves no
 * TIME_WAIT connection behind on either side to use up the loopback ports. */
void fuzz_net_close_reset(evutil_socket_t fd);

/* Once per process, as infergate's main() does: writes to a closed peer fail with EPIPE
 * instead of killing the process, and only errors are logged. Called by libFuzzer and by
 * replay_main.c. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
