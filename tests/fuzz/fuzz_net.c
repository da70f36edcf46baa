/* Socket helpers and set-up shared by the loopback harnesses; see fuzz_net.h. */
#include "fuzz_net.h"
#include "ig_log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

int fuzz_net_recv(evutil_socket_t fd, struct evbuffer *in)
{
    char buf[16384];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            evbuffer_add(in, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : 1;
    }
}

void fuzz_net_close_reset(evutil_socket_t fd)
{
    struct linger lg = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    ig_log_set_level(IG_LOG_ERROR);
    return 0;
}
