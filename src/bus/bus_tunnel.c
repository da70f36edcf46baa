/* Byte tunnels over the bus (bus_tunnel.h). */
#include "bus_tunnel.h"

#include "bus.h"
#include "ig_log.h"
#include "ig_text.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_BUCKETS 1024
#define READ_CHUNK (64u << 10)
#define MAX_PENDING (64u << 20) /* bytes received but not yet taken by the local side */
#define SUBJECT_MAX 192
#define HEADERS_ROOM 512 /* of a message's payload, kept for its headers */

struct tunnel {
    struct bus_tunnels *owner;
    char id[2 * BUS_ID_MAX + 24];   /* "<gateway>-<n>" */
    char out_subject[SUBJECT_MAX];  /* where this side's bytes go */
    char reply[SUBJECT_MAX];        /* gateway side: the reply subject of the requests */
    char worker[BUS_ID_MAX + 1];    /* gateway side: the worker dialled */
    const struct upstream_stream_sink *sink; /* gateway side: the HTTP client's, until it */
    void *client;                            /* closes or is told the end */
    int fd;                         /* worker side: the socket of the local HTTP server */
    struct event *read_ev, *write_ev;
    struct evbuffer *pending;       /* received, to write into FD */
    unsigned long long out_seq, in_seq;
    bool is_peer_ended;             /* the other side sent its terminal message */
    struct tunnel *next_in_bucket;
    struct tunnel *prev, *next;     /* all tunnels */
};

struct bus_tunnels {
    struct bus *bus;
    struct event_base *base;
    char self[BUS_ID_MAX + 1];
    unsigned long long next_n;
    struct tunnel *buckets[N_BUCKETS];
    struct tunnel *all;
    size_t n_open;
    /* Worker side. */
    bool is_serving;
    size_t capacity;
    bus_accept_fn accept;
    void *accept_arg;
};

bool bus_id_valid(const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return n > 0 && n <= BUS_ID_MAX;
}

/* Returns the bucket of ID. */
static struct tunnel **bucket_of(struct bus_tunnels *t, const char *id)
{
    return &t->buckets[ig_fnv1a(id, strlen(id), IG_FNV1A_INIT) % N_BUCKETS];
}

/* Returns the open tunnel named ID, or NULL. */
static struct tunnel *find(struct bus_tunnels *t, const char *id)
{
    for (struct tunnel *tn = *bucket_of(t, id); tn != NULL; tn = tn->next_in_bucket)
        if (strcmp(tn->id, id) == 0)
            return tn;
    return NULL;
}

/* Closes and frees TN; a gateway's HTTP client is told the end. */
static void tunnel_free(struct tunnel *tn)
{
    struct bus_tunnels *t = tn->owner;
    struct tunnel **p = bucket_of(t, tn->id);
    const struct upstream_stream_sink *sink = tn->sink;

    if (sink != NULL) {
        tn->sink = NULL;
        sink->on_end(tn->client);
    }

    while (*p != NULL && *p != tn)
        p = &(*p)->next_in_bucket;
    if (*p == tn)
        *p = tn->next_in_bucket;
    if (tn->prev != NULL)
        tn->prev->next = tn->next;
    else
        t->all = tn->next;
    if (tn->next != NULL)
        tn->next->prev = tn->prev;
    t->n_open--;
    if (tn->read_ev != NULL)
        event_free(tn->read_ev);
    if (tn->write_ev != NULL)
        event_free(tn->write_ev);
    if (tn->pending != NULL)
        evbuffer_free(tn->pending);
    if (tn->fd >= 0)
        close(tn->fd);
    free(tn);
}

/* Sends this side's bytes DATA (or a terminal message END with no bytes) to the peer. */
static int send_part(struct tunnel *tn, const char *data, size_t len, const char *end)
{
    char seq[24];
    struct bus_header h[3] = {{"Ig-Seq", seq}, {"Ig-Id", tn->id}, {"Ig-End", end}};
    size_t n_headers = end != NULL ? 3 : 2;

    snprintf(seq, sizeof(seq), "%llu", tn->out_seq++);
    return bus_publish(tn->owner->bus, tn->out_subject, tn->reply[0] != '\0' ? tn->reply : NULL,
                       h, n_headers, data, len);
}

/* Sends a terminal message END to REPLY for tunnel ID without making a tunnel. */
static void send_refusal(struct bus_tunnels *t, const char *reply, const char *id,
                         const char *end)
{
    struct bus_header h[3] = {{"Ig-Seq", "0"}, {"Ig-Id", id}, {"Ig-End", end}};

    if (bus_publish(t->bus, reply, NULL, h, 3, NULL, 0) != 0)
        ig_debug("nats: cannot answer %s to %s", end, reply);
}

static void on_fd_readable(evutil_socket_t fd, short what, void *arg);
static void on_fd_writable(evutil_socket_t fd, short what, void *arg);

/* Makes a tunnel named ID on FD (taken on success), or with no socket when FD is -1 (a
 * gateway's stream); NULL when out of memory. */
static struct tunnel *tunnel_new(struct bus_tunnels *t, const char *id, int fd)
{
    struct tunnel *tn = calloc(1, sizeof(*tn));
    struct tunnel **b;

    if (tn == NULL)
        return NULL;
    tn->owner = t;
    tn->fd = fd;
    snprintf(tn->id, sizeof(tn->id), "%s", id);
    if (fd >= 0) {
        tn->read_ev = event_new(t->base, fd, EV_READ | EV_PERSIST, on_fd_readable, tn);
        tn->write_ev = event_new(t->base, fd, EV_WRITE | EV_PERSIST, on_fd_writable, tn);
        tn->pending = evbuffer_new();
        if (tn->read_ev == NULL || tn->write_ev == NULL || tn->pending == NULL) {
            tn->fd = -1;
            if (tn->read_ev != NULL)
                event_free(tn->read_ev);
            if (tn->write_ev != NULL)
                event_free(tn->write_ev);
            if (tn->pending != NULL)
                evbuffer_free(tn->pending);
            free(tn);
            return NULL;
        }
        event_add(tn->read_ev, NULL);
    }
    b = bucket_of(t, tn->id);
    tn->next_in_bucket = *b;
    *b = tn;
    tn->next = t->all;
    if (t->all != NULL)
        t->all->prev = tn;
    t->all = tn;
    t->n_open++;
    return tn;
}

/* The local side closed or failed: a worker reports the end (unless HAS_SENT_END), a gateway
 * whose answer is not complete cancels the request. */
static void local_closed(struct tunnel *tn, bool has_sent_end)
{
    char subject[SUBJECT_MAX];

    if (tn->owner->is_serving) {
        if (!has_sent_end && send_part(tn, NULL, 0, "ok") != 0)
            ig_debug("nats: cannot end tunnel %s", tn->id);
    } else if (!tn->is_peer_ended) {
        snprintf(subject, sizeof(subject), "infergate.v1.cancel.%s", tn->id);
        if (bus_publish(tn->owner->bus, subject, NULL, NULL, 0, NULL, 0) != 0)
            ig_debug("nats: cannot cancel %s", tn->id);
    }
    tunnel_free(tn);
}

/* The local side wrote bytes (or closed): send them to the peer. What is there is read at
 * once, up to the payload size, so that an answer followed by the end of the exchange goes
 * in one message (a worker marks it Ig-End: ok). */
static void on_fd_readable(evutil_socket_t fd, short what, void *arg)
{
    struct tunnel *tn = arg;
    size_t max = bus_max_payload(tn->owner->bus), len = 0;
    char buf[READ_CHUNK];
    bool is_eof = false;
    (void)what;

    if (max > sizeof(buf))
        max = sizeof(buf);
    while (len < max) {
        ssize_t n = read(fd, buf + len, max - len);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        is_eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    if (len > 0 &&
        send_part(tn, buf, len, is_eof && tn->owner->is_serving ? "ok" : NULL) != 0) {
        ig_warn("nats: tunnel %s: cannot send; closing it", tn->id);
        tunnel_free(tn);
        return;
    }
    if (is_eof)
        local_closed(tn, len > 0);
}

/* Writes what is pending into the local side; after the peer's end, closes our writing
 * half once it is all out. Returns -1 when the local side is gone (TN freed). */
static int flush_pending(struct tunnel *tn)
{
    while (evbuffer_get_length(tn->pending) > 0) {
        int n = evbuffer_write(tn->pending, tn->fd);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_add(tn->write_ev, NULL);
            return 0;
        }
        if (n <= 0) {
            local_closed(tn, false);
            return -1;
        }
    }
    event_del(tn->write_ev);
    if (tn->is_peer_ended)
        shutdown(tn->fd, SHUT_WR);
    return 0;
}

static void on_fd_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)flush_pending(arg);
}

/* Gateway: hands the worker's bytes DATA to the HTTP client; at the worker's end (IS_END)
 * the tunnel is over. Returns -1 when TN was freed. */
static int give_part(struct tunnel *tn, const char *data, size_t len, bool is_end)
{
    if (len > 0 && tn->sink->on_data(tn->client, data, len) != 0) {
        ig_warn("nats: tunnel %s: the client does not read; ending it", tn->id);
        tn->is_peer_ended = is_end;
        local_closed(tn, false);
        return -1;
    }
    if (!is_end)
        return 0;
    tn->is_peer_ended = true;
    tunnel_free(tn);
    return -1;
}

/* Takes a numbered part of the peer's bytes; returns -1 when TN was freed. */
static int take_part(struct tunnel *tn, const struct bus_msg *msg)
{
    const char *seq = bus_msg_header(msg, "Ig-Seq");
    const char *end = bus_msg_header(msg, "Ig-End");
    size_t len;
    const char *data = bus_msg_data(msg, &len);
    char expected[24];

    snprintf(expected, sizeof(expected), "%llu", tn->in_seq);
    if (seq == NULL || strcmp(seq, expected) != 0) {
        ig_warn("nats: tunnel %s: part %s arrived, %s expected; ending it", tn->id,
                seq != NULL ? seq : "(none)", expected);
        tunnel_free(tn);
        return -1;
    }
    tn->in_seq++;
    if (end != NULL && strcmp(end, "ok") != 0) {
        ig_log(IG_LOG_INFO, "nats: tunnel %s to %s: %s", tn->id, tn->worker, end);
        tunnel_free(tn); /* busy or failed before answering: the client sees no answer */
        return -1;
    }
    if (tn->sink != NULL)
        return give_part(tn, data, len, end != NULL);
    if (evbuffer_get_length(tn->pending) + len > MAX_PENDING) {
        ig_warn("nats: tunnel %s: the local side does not read; ending it", tn->id);
        tunnel_free(tn);
        return -1;
    }
    if (len > 0)
        evbuffer_add(tn->pending, data, len);
    if (end != NULL)
        tn->is_peer_ended = true;
    return flush_pending(tn);
}

/* Gateway: a part of a worker's answer, on _INBOX.<self>.<n>. */
static void on_reply(struct bus *bus, const struct bus_msg *msg, void *arg)
{
    struct bus_tunnels *t = arg;
    const char *id = bus_msg_header(msg, "Ig-Id");
    struct tunnel *tn = id != NULL ? find(t, id) : NULL;
    (void)bus;

    if (tn != NULL)
        (void)take_part(tn, msg);
}

struct bus_tunnels *bus_tunnels_new(struct bus *bus, struct event_base *base,
                                    const char *self_id, char **cause)
{
    struct bus_tunnels *t;
    char subject[SUBJECT_MAX];

    if (!bus_id_valid(self_id)) {
        if (asprintf(cause, "'%s' is not a usable bus id (1-64 of A-Z a-z 0-9 _ -)", self_id) < 0)
            *cause = NULL;
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        *cause = strdup("out of memory");
        return NULL;
    }
    t->bus = bus;
    t->base = base;
    snprintf(t->self, sizeof(t->self), "%s", self_id);
    snprintf(subject, sizeof(subject), "_INBOX.%s.>", self_id);
    if (bus_subscribe(bus, subject, on_reply, t) != 0) {
        free(t);
        *cause = strdup("cannot subscribe to the reply subject");
        return NULL;
    }
    return t;
}

void bus_tunnels_free(struct bus_tunnels *t)
{
    if (t == NULL)
        return;
    while (t->all != NULL)
        tunnel_free(t->all);
    free(t);
}

/* Gateway stream: sends the HTTP client's bytes, in parts that fit the server's payload
 * with their headers. */
static int stream_send(void *stream, struct evbuffer *out)
{
    struct tunnel *tn = stream;
    size_t max = bus_max_payload(tn->owner->bus);

    max = max > HEADERS_ROOM + READ_CHUNK ? max - HEADERS_ROOM : READ_CHUNK;
    while (evbuffer_get_length(out) > 0) {
        size_t len = evbuffer_get_length(out) < max ? evbuffer_get_length(out) : max;
        const char *data = (const char *)evbuffer_pullup(out, (ssize_t)len);

        if (data == NULL || send_part(tn, data, len, NULL) != 0)
            return -1;
        evbuffer_drain(out, len);
    }
    return 0;
}

/* Gateway stream: the HTTP client is done; an unfinished request is cancelled. */
static void stream_close(void *stream)
{
    struct tunnel *tn = stream;

    tn->sink = NULL;
    local_closed(tn, false);
}

static const struct upstream_stream_ops stream_ops = {stream_send, stream_close};

void *bus_tunnel_open(struct bus_tunnels *t, const char *worker,
                      const struct upstream_stream_sink *sink, void *client,
                      const struct upstream_stream_ops **ops)
{
    char id[sizeof(((struct tunnel *)0)->id)];
    struct tunnel *tn;
    unsigned long long n = ++t->next_n;

    if (!bus_id_valid(worker))
        return NULL;
    snprintf(id, sizeof(id), "%s-%llu", t->self, n);
    tn = tunnel_new(t, id, -1);
    if (tn == NULL)
        return NULL;
    tn->sink = sink;
    tn->client = client;
    snprintf(tn->worker, sizeof(tn->worker), "%s", worker);
    snprintf(tn->out_subject, sizeof(tn->out_subject), "infergate.v1.workers.%s.infer", worker);
    snprintf(tn->reply, sizeof(tn->reply), "_INBOX.%s.%llu", t->self, n);
    *ops = &stream_ops;
    return tn;
}

void bus_tunnels_drop_worker(struct bus_tunnels *t, const char *worker)
{
    struct tunnel *tn = t->all, *next;

    for (; tn != NULL; tn = next) {
        next = tn->next;
        if (strcmp(tn->worker, worker) == 0)
            tunnel_free(tn);
    }
}

size_t bus_tunnels_open_to(const struct bus_tunnels *t, const char *worker)
{
    size_t n = 0;

    for (const struct tunnel *tn = t->all; tn != NULL; tn = tn->next)
        n += strcmp(tn->worker, worker) == 0;
    return n;
}

size_t bus_tunnels_active(const struct bus_tunnels *t)
{
    return t->n_open;
}

/* Worker: a part of a gateway's request. The first part (Ig-Seq 0) opens the tunnel. */
static void on_infer(struct bus *bus, const struct bus_msg *msg, void *arg)
{
    struct bus_tunnels *t = arg;
    const char *id = bus_msg_header(msg, "Ig-Id");
    const char *seq = bus_msg_header(msg, "Ig-Seq");
    const char *reply = bus_msg_reply(msg);
    struct tunnel *tn;
    char peer[BUS_ID_MAX + 16];
    int sv[2];
    (void)bus;

    if (id == NULL || seq == NULL || strlen(id) >= sizeof(tn->id) ||
        strlen(reply) >= sizeof(tn->out_subject) || reply[0] == '\0')
        return; /* not ours to answer */
    tn = find(t, id);
    if (tn != NULL) {
        (void)take_part(tn, msg);
        return;
    }
    if (strcmp(seq, "0") != 0)
        return; /* a part of a cancelled or ended request */
    if (t->n_open >= t->capacity) {
        send_refusal(t, reply, id, "busy");
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        send_refusal(t, reply, id, "error");
        return;
    }
    tn = tunnel_new(t, id, sv[0]);
    snprintf(peer, sizeof(peer), "bus:%.*s", (int)strcspn(id, "-"), id);
    if (tn == NULL || t->accept(sv[1], peer, t->accept_arg) != 0) {
        if (tn != NULL)
            tunnel_free(tn);
        else
            close(sv[0]);
        close(sv[1]);
        send_refusal(t, reply, id, "busy");
        return;
    }
    snprintf(tn->out_subject, sizeof(tn->out_subject), "%s", reply);
    (void)take_part(tn, msg);
}

/* Worker: a gateway's client went away. */
static void on_cancel(struct bus *bus, const struct bus_msg *msg, void *arg)
{
    struct bus_tunnels *t = arg;
    const char *id = bus_msg_subject(msg) + strlen("infergate.v1.cancel.");
    struct tunnel *tn = find(t, id);
    (void)bus;

    if (tn != NULL) {
        ig_debug("nats: tunnel %s cancelled by its gateway", id);
        tunnel_free(tn);
    }
}

int bus_tunnels_serve(struct bus_tunnels *t, size_t capacity, bus_accept_fn accept, void *arg)
{
    char subject[SUBJECT_MAX];

    t->is_serving = true;
    t->capacity = capacity;
    t->accept = accept;
    t->accept_arg = arg;
    snprintf(subject, sizeof(subject), "infergate.v1.workers.%s.infer", t->self);
    if (bus_subscribe(t->bus, subject, on_infer, t) != 0 ||
        bus_subscribe(t->bus, "infergate.v1.cancel.*", on_cancel, t) != 0)
        return IG_EIO;
    return 0;
}
