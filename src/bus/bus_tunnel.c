/* Byte tunnels over the bus (bus_tunnel.h). */
#include "bus_tunnel.h"

#include "bus.h"
#include "ig_errbody.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"

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
#define SWEEP_MS 250          /* stall deadlines and keep-alives are checked this often */
#define KEEPALIVE_MIN_MS 250  /* a worker keeps a silent tunnel alive at most this often */
#define KEEPALIVE_MAX_MS 5000

struct tunnel {
    struct bus_tunnels *owner;
    char id[2 * BUS_ID_MAX + 24];   /* "<gateway>-<n>" */
    char out_subject[SUBJECT_MAX];  /* where this side's bytes go */
    char reply[SUBJECT_MAX];        /* gateway side: the reply subject of the requests */
    char worker[BUS_ID_MAX + 1];    /* gateway side: the worker dialled */
    int fd;
    struct event *read_ev, *write_ev;
    struct evbuffer *pending;       /* received, to write into FD */
    unsigned long long out_seq, in_seq;
    bool is_peer_ended;             /* the other side sent its terminal message */
    bool has_input;                 /* bytes of the peer reached the local side */
    uint64_t last_in_ms;            /* gateway: when the peer's last message came */
    uint64_t last_out_ms;           /* worker: when our last message went */
    unsigned keepalive_ms;          /* worker: keep-alive after this much silence; 0: none */
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
    struct event *sweep;   /* stall deadlines (gateway), keep-alives (worker) */
    unsigned stall_ms;     /* gateway: a tunnel silent this long ends; 0: never */
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

/* Closes and frees TN. */
static void tunnel_free(struct tunnel *tn)
{
    struct bus_tunnels *t = tn->owner;
    struct tunnel **p = bucket_of(t, tn->id);

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

/* Returns how often a gateway with stall deadline STALL_MS asks its workers to keep a silent
 * tunnel alive: four times per deadline, within KEEPALIVE_MIN_MS..KEEPALIVE_MAX_MS. */
static unsigned keepalive_for(unsigned stall_ms)
{
    unsigned ms = stall_ms / 4;

    return ms < KEEPALIVE_MIN_MS ? KEEPALIVE_MIN_MS : ms > KEEPALIVE_MAX_MS ? KEEPALIVE_MAX_MS : ms;
}

/* Sends this side's bytes DATA (or a terminal message END with no bytes) to the peer. A
 * gateway's first message asks for keep-alives (Ig-Keepalive-Ms) when it has a deadline. */
static int send_part(struct tunnel *tn, const char *data, size_t len, const char *end)
{
    char seq[24], keepalive[16];
    struct bus_header h[4] = {{"Ig-Seq", seq}, {"Ig-Id", tn->id}};
    size_t n_headers = 2;

    if (end != NULL)
        h[n_headers++] = (struct bus_header){"Ig-End", end};
    if (tn->out_seq == 0 && !tn->owner->is_serving && tn->owner->stall_ms > 0) {
        snprintf(keepalive, sizeof(keepalive), "%u", keepalive_for(tn->owner->stall_ms));
        h[n_headers++] = (struct bus_header){"Ig-Keepalive-Ms", keepalive};
    }
    tn->last_out_ms = ig_now_ms();
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

/* Makes a tunnel named ID on FD (taken on success); NULL when out of memory. */
static struct tunnel *tunnel_new(struct bus_tunnels *t, const char *id, int fd)
{
    struct tunnel *tn = calloc(1, sizeof(*tn));
    struct tunnel **b;

    if (tn == NULL)
        return NULL;
    tn->owner = t;
    tn->fd = fd;
    tn->last_in_ms = tn->last_out_ms = ig_now_ms();
    snprintf(tn->id, sizeof(tn->id), "%s", id);
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
    b = bucket_of(t, tn->id);
    tn->next_in_bucket = *b;
    *b = tn;
    tn->next = t->all;
    if (t->all != NULL)
        t->all->prev = tn;
    t->all = tn;
    t->n_open++;
    event_add(tn->read_ev, NULL);
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

/*
 * Gateway: answers the local side (the HTTP client) itself with STATUS and an OpenAI error
 * MESSAGE of CODE, as the worker's server would have, when no byte of the worker's answer
 * came: a worker at capacity becomes 429 (as a model at its concurrencyLimit answers), so
 * the gateway treats both alike. Returns -1 when TN was freed.
 */
static int answer_locally(struct tunnel *tn, int status, const char *reason,
                          const char *message, const char *code)
{
    char *body = ig_error_body(status, message, code);

    if (body == NULL) {
        tunnel_free(tn);
        return -1;
    }
    evbuffer_add_printf(tn->pending,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        status, reason, strlen(body), body);
    free(body);
    tn->is_peer_ended = true;
    tn->has_input = true;
    return flush_pending(tn);
}

/* Takes a numbered part of the peer's bytes; returns -1 when TN was freed. */
static int take_part(struct tunnel *tn, const struct bus_msg *msg)
{
    const char *seq = bus_msg_header(msg, "Ig-Seq");
    const char *end = bus_msg_header(msg, "Ig-End");
    size_t len;
    const char *data = bus_msg_data(msg, &len);
    char expected[24];

    tn->last_in_ms = ig_now_ms();
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
        if (strcmp(end, "busy") == 0 && !tn->owner->is_serving && !tn->has_input)
            return answer_locally(tn, 429, "Too Many Requests", "the worker is at capacity",
                                  "worker_busy");
        tunnel_free(tn); /* failed: the client sees no answer, or a cut one */
        return -1;
    }
    if (evbuffer_get_length(tn->pending) + len > MAX_PENDING) {
        ig_warn("nats: tunnel %s: the local side does not read; ending it", tn->id);
        tunnel_free(tn);
        return -1;
    }
    if (len > 0) {
        evbuffer_add(tn->pending, data, len);
        tn->has_input = true;
    }
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

    if (tn != NULL && bus_msg_header(msg, "Ig-Alive") != NULL)
        tn->last_in_ms = ig_now_ms(); /* the worker is there, still working on it */
    else if (tn != NULL)
        (void)take_part(tn, msg);
}

/*
 * Gateway: TN got no message for the stall deadline. Its worker is frozen, cut off, or a
 * message was lost: the request is cancelled there, and the HTTP client gets a 504 when
 * nothing of the answer came yet, else a cut answer (its stream ends with an error).
 */
static void stall(struct tunnel *tn)
{
    char subject[SUBJECT_MAX], message[160];

    ig_warn("nats: tunnel %s to worker %s: no message for %u ms (nats.stall_timeout_s); "
            "ending it", tn->id, tn->worker, tn->owner->stall_ms);
    snprintf(subject, sizeof(subject), "infergate.v1.cancel.%s", tn->id);
    if (bus_publish(tn->owner->bus, subject, NULL, NULL, 0, NULL, 0) != 0)
        ig_debug("nats: cannot cancel %s", tn->id);
    if (tn->has_input) {
        tunnel_free(tn);
        return;
    }
    snprintf(message, sizeof(message), "worker %s sent nothing for %u s (stall deadline)",
             tn->worker, tn->owner->stall_ms / 1000);
    (void)answer_locally(tn, 504, "Gateway Timeout", message, "worker_stalled");
}

/* Worker: tells the gateway that TN is still being worked on. */
static void keep_alive(struct tunnel *tn)
{
    struct bus_header h[2] = {{"Ig-Id", tn->id}, {"Ig-Alive", "1"}};

    tn->last_out_ms = ig_now_ms();
    if (bus_publish(tn->owner->bus, tn->out_subject, NULL, h, 2, NULL, 0) != 0)
        ig_debug("nats: cannot keep %s alive", tn->id);
}

/* Every SWEEP_MS: ends the tunnels past their stall deadline (gateway), keeps the silent
 * ones alive (worker). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct bus_tunnels *t = arg;
    uint64_t now = ig_now_ms();
    struct tunnel *tn, *next;
    (void)fd;
    (void)what;

    for (tn = t->all; tn != NULL; tn = next) {
        next = tn->next;
        if (t->is_serving && tn->keepalive_ms > 0 && now - tn->last_out_ms >= tn->keepalive_ms)
            keep_alive(tn);
        else if (!t->is_serving && t->stall_ms > 0 && !tn->is_peer_ended &&
                 now - tn->last_in_ms >= t->stall_ms)
            stall(tn);
    }
}

/* Starts the sweep of T if it is not running; 0 or IG_ENOMEM. */
static int start_sweep(struct bus_tunnels *t)
{
    struct timeval tv = {0, SWEEP_MS * 1000};

    if (t->sweep == NULL)
        t->sweep = event_new(t->base, -1, EV_PERSIST, on_sweep, t);
    if (t->sweep == NULL)
        return IG_ENOMEM;
    return evtimer_add(t->sweep, &tv) == 0 ? 0 : IG_ENOMEM;
}

int bus_tunnels_set_stall(struct bus_tunnels *t, unsigned stall_ms)
{
    t->stall_ms = stall_ms;
    return stall_ms > 0 ? start_sweep(t) : 0;
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
    if (t->sweep != NULL)
        event_free(t->sweep);
    free(t);
}

int bus_tunnel_dial(struct bus_tunnels *t, const char *worker)
{
    int sv[2];
    char id[sizeof(((struct tunnel *)0)->id)];
    struct tunnel *tn;
    unsigned long long n = ++t->next_n;

    if (!bus_id_valid(worker) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    snprintf(id, sizeof(id), "%s-%llu", t->self, n);
    tn = tunnel_new(t, id, sv[0]);
    if (tn == NULL) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    snprintf(tn->worker, sizeof(tn->worker), "%s", worker);
    snprintf(tn->out_subject, sizeof(tn->out_subject), "infergate.v1.workers.%s.infer", worker);
    snprintf(tn->reply, sizeof(tn->reply), "_INBOX.%s.%llu", t->self, n);
    return sv[1];
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
    if (bus_msg_header(msg, "Ig-Keepalive-Ms") != NULL) {
        long long ms = ig_parse_int(bus_msg_header(msg, "Ig-Keepalive-Ms"));
        tn->keepalive_ms = ms < 0 ? 0
                           : ms < KEEPALIVE_MIN_MS ? KEEPALIVE_MIN_MS
                           : ms > KEEPALIVE_MAX_MS ? KEEPALIVE_MAX_MS
                                                   : (unsigned)ms;
    }
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
    return start_sweep(t);
}
