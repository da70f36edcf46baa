/*
 * The NATS connection on the libevent loop (bus.h).
 *
 * cnats runs in its event-loop mode: it starts no reader thread, the loop watches the
 * socket and calls cnats to read and write, and every subscription is synchronous and
 * drained on the loop right after each read, so a message costs no thread hand-off. cnats
 * still has threads of its own (reconnecting, the ping timer, connection callbacks); what
 * they ask of the loop (watch a new socket, flush, a state change) goes through the
 * inbox: a queue under a mutex plus an eventfd. The inbox outlives the bus (those threads
 * may still hold it) and is reference-counted by the bus and by the connection (released
 * by its closed callback); the last one frees it.
 *
 * Writes are coalesced: a publish appends to cnats's buffer and asks for a flush, which
 * runs once per loop iteration after the callbacks that published; only a write that
 * does not go out whole waits for the socket to be writable.
 */
#include "bus.h"

#include "bus_frame.h"
#include "cfg.h"
#include "ig_log.h"

#include <event2/event.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_URLS 32
#define RECONNECT_WAIT_MS 250
#define PING_INTERVAL_MS 5000
#define IO_BUF_SIZE (256 * 1024)
#define DEFAULT_MAX_PAYLOAD (1u << 20)
#define REAP_DELAY_US 5000 /* messages are destroyed in batches (see defer_destroy()) */
#define REAP_BATCH 1024

struct bus_sub {
    natsSubscription *sub;
    bus_msg_fn cb;
    void *arg;
};

#define STACK_FRAME 4096 /* frames up to this size are built on the stack */

/* A received message with its header block parsed. */
struct bus_msg {
    natsMsg *m;
    struct bus_frame frame;
};

/* A connection state change told by a cnats thread. */
struct state_change {
    bool is_up;
};

/* The socket watch cnats asks for (any thread); the loop makes its events match. */
struct io_wish {
    int fd; /* -1: detached */
    unsigned gen; /* bumped per attach: a new socket may reuse the old one's number */
    bool want_read;
    bool want_write;
};

/* What cnats's threads touch. */
struct inbox {
    pthread_mutex_t lock;
    atomic_int refs;
    int wake_fd;
    pthread_t loop_thread;
    struct bus *bus;     /* for calls on the loop thread; NULL once the bus is closing */
    bool is_wake_armed;  /* the loop has been woken and has not yet taken the queue */
    struct io_wish io;
    struct state_change *q;
    size_t len, cap;
};

struct bus {
    struct event_base *base;
    struct inbox *inbox;
    natsConnection *nc;
    struct event *wake_ev;
    struct event *flush_ev;   /* deferred flush of what this iteration published */
    struct event *read_ev;    /* on io_fd */
    struct event *write_ev;   /* on io_fd, only while a write is partial */
    int io_fd;
    unsigned io_gen;          /* the attach the events were made for */
    bool is_reading;          /* read_ev is added */
    struct bus_sub **subs;
    size_t n_subs;
    natsMsg **dead;           /* messages done with, destroyed by the reaper */
    size_t n_dead, dead_cap;
    struct event *reap_ev;
    bool is_up;
    bus_state_fn state_cb;
    void *state_arg;
};

/* Drops a reference to INBOX; the last frees it. */
static void inbox_unref(struct inbox *inbox)
{
    if (atomic_fetch_sub(&inbox->refs, 1) != 1)
        return;
    free(inbox->q);
    close(inbox->wake_fd);
    pthread_mutex_destroy(&inbox->lock);
    free(inbox);
}

/* Marks a wake-up pending; returns whether the caller must ring (INBOX's lock held). */
static bool arm_wake(struct inbox *inbox)
{
    if (inbox->is_wake_armed)
        return false;
    inbox->is_wake_armed = true;
    return true;
}

/* Wakes the loop (any thread). */
static void ring(struct inbox *inbox)
{
    uint64_t one = 1;
    ssize_t n = write(inbox->wake_fd, &one, sizeof(one));
    (void)n; /* a full counter still wakes the loop */
}

/* Returns whether the caller is the loop thread of a live bus. */
static bool on_loop_thread(const struct inbox *inbox)
{
    return pthread_equal(pthread_self(), inbox->loop_thread) && inbox->bus != NULL;
}

/* cnats thread: queues a connection state change for the loop. */
static void push_state(struct inbox *inbox, bool is_up)
{
    bool must_ring;

    pthread_mutex_lock(&inbox->lock);
    if (inbox->len == inbox->cap) {
        size_t cap = inbox->cap > 0 ? inbox->cap * 2 : 8;
        struct state_change *q = realloc(inbox->q, cap * sizeof(*q));
        if (q != NULL) {
            inbox->q = q;
            inbox->cap = cap;
        }
    }
    if (inbox->len < inbox->cap) /* out of memory: the change is lost, the next one tells */
        inbox->q[inbox->len++] = (struct state_change){is_up};
    must_ring = arm_wake(inbox);
    pthread_mutex_unlock(&inbox->lock);
    if (must_ring)
        ring(inbox);
}

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

/* Makes the socket's events match cnats's wish (loop thread). */
static void apply_io(struct bus *bus)
{
    struct io_wish io;

    pthread_mutex_lock(&bus->inbox->lock);
    io = bus->inbox->io;
    pthread_mutex_unlock(&bus->inbox->lock);
    if (io.fd != bus->io_fd || io.gen != bus->io_gen) {
        if (bus->read_ev != NULL)
            event_free(bus->read_ev);
        if (bus->write_ev != NULL)
            event_free(bus->write_ev);
        bus->read_ev = bus->write_ev = NULL;
        bus->io_fd = io.fd;
        bus->io_gen = io.gen;
        bus->is_reading = false;
        if (io.fd >= 0) {
            bus->read_ev = event_new(bus->base, io.fd, EV_READ | EV_PERSIST, on_readable, bus);
            bus->write_ev = event_new(bus->base, io.fd, EV_WRITE | EV_PERSIST, on_writable,
                                      bus);
        }
    }
    if (bus->read_ev != NULL && io.want_read != bus->is_reading) {
        if (io.want_read)
            event_add(bus->read_ev, NULL);
        else
            event_del(bus->read_ev);
        bus->is_reading = io.want_read;
    }
    if (bus->write_ev == NULL)
        return;
    if (!io.want_write)
        event_del(bus->write_ev);
    else if (!event_pending(bus->write_ev, EV_WRITE, NULL))
        event_active(bus->flush_ev, 0, 0); /* once, after this iteration's publishes */
}

/* Records a change of cnats's socket wish (FD, or IO_KEEP; READ and WRITE 0, 1, or -1 to
 * keep) and applies it: now on the loop thread, else by waking the loop. */
#define IO_KEEP (-2)
static void wish_io(struct inbox *inbox, int fd, int read, int write)
{
    bool is_here = on_loop_thread(inbox), must_ring = false;

    pthread_mutex_lock(&inbox->lock);
    if (fd != IO_KEEP)
        inbox->io.fd = fd;
    if (fd >= 0)
        inbox->io.gen++; /* an attach */
    if (read >= 0)
        inbox->io.want_read = read;
    if (write >= 0)
        inbox->io.want_write = write;
    if (!is_here)
        must_ring = arm_wake(inbox);
    pthread_mutex_unlock(&inbox->lock);
    if (is_here)
        apply_io(inbox->bus);
    else if (must_ring)
        ring(inbox);
}

/* cnats: watch the connection's (new) socket FD, reading. */
static natsStatus io_attach(void **user, void *loop, natsConnection *nc, natsSock fd)
{
    (void)nc;
    *user = loop;
    wish_io(loop, (int)fd, 1, -1);
    return NATS_OK;
}

/* cnats: start or stop reading. */
static natsStatus io_read(void *user, bool add)
{
    wish_io(user, IO_KEEP, add, -1);
    return NATS_OK;
}

/* cnats: bytes are buffered (ADD), or all went out. */
static natsStatus io_write(void *user, bool add)
{
    wish_io(user, IO_KEEP, -1, add);
    return NATS_OK;
}

/* cnats: the connection is closed; stop watching. */
static natsStatus io_detach(void *user)
{
    wish_io(user, -1, 0, 0);
    return NATS_OK;
}

/* Loop: destroys the messages done with. */
static void reap(struct bus *bus)
{
    for (size_t i = 0; i < bus->n_dead; i++)
        natsMsg_Destroy(bus->dead[i]);
    bus->n_dead = 0;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap(arg);
}

/* Loop: destroys M soon. cnats hands every destroyed message to its collector thread and
 * wakes it when idle: one wake-up (two futex calls and a thread switch) per message when
 * messages are destroyed one at a time, one per batch this way. */
static void defer_destroy(struct bus *bus, natsMsg *m)
{
    if (bus->n_dead == bus->dead_cap) {
        size_t cap = bus->dead_cap > 0 ? bus->dead_cap * 2 : 64;
        natsMsg **dead = cap <= REAP_BATCH ? realloc(bus->dead, cap * sizeof(*dead)) : NULL;

        if (dead == NULL) {
            reap(bus);
            natsMsg_Destroy(m);
            return;
        }
        bus->dead = dead;
        bus->dead_cap = cap;
    }
    bus->dead[bus->n_dead++] = m;
    if (!evtimer_pending(bus->reap_ev, NULL)) {
        struct timeval tv = {0, REAP_DELAY_US};
        evtimer_add(bus->reap_ev, &tv);
    }
}

/* Loop: hands every queued message of every subscription to its callback, in the order
 * the subscriptions were made. */
static void drain_subs(struct bus *bus)
{
    for (size_t i = 0; i < bus->n_subs; i++) {
        struct bus_sub *s = bus->subs[i];
        int pending = 0;

        if (natsSubscription_GetPending(s->sub, &pending, NULL) != NATS_OK)
            continue;
        for (; pending > 0; pending--) {
            natsMsg *m = NULL;
            natsStatus st = natsSubscription_NextMsg(&m, s->sub, 0);

            if (st == NATS_NO_RESPONDERS)
                continue; /* a status message, destroyed by cnats */
            if (st != NATS_OK)
                break;
            struct bus_msg msg;
            msg.m = m;
            bus_frame_parse(&msg.frame, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
            s->cb(bus, &msg, s->arg);
            defer_destroy(bus, m);
        }
    }
}

/* Loop: the socket is readable. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct bus *bus = arg;
    (void)fd;
    (void)what;
    natsConnection_ProcessReadEvent(bus->nc);
    drain_subs(bus);
}

/* Loop: a partial write can go on. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct bus *bus = arg;
    (void)fd;
    (void)what;
    natsConnection_ProcessWriteEvent(bus->nc);
}

/* Loop: writes what this iteration published; waits for the socket if it did not all go. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct bus *bus = arg;
    bool is_partial;
    (void)fd;
    (void)what;

    natsConnection_ProcessWriteEvent(bus->nc);
    pthread_mutex_lock(&bus->inbox->lock);
    is_partial = bus->inbox->io.want_write && bus->inbox->io.fd == bus->io_fd;
    pthread_mutex_unlock(&bus->inbox->lock);
    if (is_partial && bus->write_ev != NULL)
        event_add(bus->write_ev, NULL);
}

/* Loop: cnats's threads asked for something (socket watch, state change). */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct bus *bus = arg;
    struct inbox *inbox = bus->inbox;
    struct state_change *taken;
    uint64_t count;
    size_t n;
    (void)what;

    if (read(fd, &count, sizeof(count)) < 0) {
        /* nothing to read: another wake-up took it */
    }
    pthread_mutex_lock(&inbox->lock);
    taken = inbox->q;
    n = inbox->len;
    inbox->q = NULL;
    inbox->len = inbox->cap = 0;
    inbox->is_wake_armed = false;
    pthread_mutex_unlock(&inbox->lock);
    apply_io(bus);
    drain_subs(bus);
    for (size_t i = 0; i < n; i++) {
        if (bus->is_up == taken[i].is_up)
            continue;
        bus->is_up = taken[i].is_up;
        ig_log(bus->is_up ? IG_LOG_INFO : IG_LOG_WARN, "nats: %s",
               bus->is_up ? "connected" : "disconnected; reconnecting");
        if (bus->state_cb != NULL)
            bus->state_cb(bus, bus->is_up, bus->state_arg);
    }
    free(taken);
}

/* cnats thread: connection lost. */
static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    push_state(closure, false);
}

/* cnats thread: connection (re)established. */
static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    push_state(closure, true);
}

/* cnats thread: the connection is closed for good; its callbacks are over. */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    inbox_unref(closure);
}

/* Splits the comma-separated URLS into at most MAX_URLS entries of LIST (pointers into
 * BUF, a copy); returns the count. */
static int split_urls(const char *urls, char *buf, size_t size, const char **list)
{
    int n = 0;

    snprintf(buf, size, "%s", urls);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p != NULL && n < MAX_URLS;
         p = strtok_r(NULL, ",", &save))
        list[n++] = p;
    return n;
}

/* Fills OPTS from NATS; returns NATS_OK or the failing status with *WHAT naming it. */
static natsStatus set_options(natsOptions *opts, const struct cfg_nats *nats, const char *name,
                              struct inbox *inbox, const char **what)
{
    char buf[4096];
    const char *urls[MAX_URLS];
    int n = split_urls(nats->urls, buf, sizeof(buf), urls);
    natsStatus s;

    *what = "servers";
    s = natsOptions_SetServers(opts, urls, n);
    if (s == NATS_OK && (*what = "name") != NULL)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK && nats->token != NULL && (*what = "token") != NULL)
        s = natsOptions_SetToken(opts, nats->token);
    if (s == NATS_OK && nats->user != NULL && (*what = "user") != NULL)
        s = natsOptions_SetUserInfo(opts, nats->user, nats->password);
    if (s == NATS_OK && nats->creds_file != NULL && (*what = "credentials") != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(opts, nats->creds_file, NULL);
    if (s == NATS_OK && nats->ca_file != NULL && (*what = "tls.ca") != NULL) {
        s = natsOptions_SetSecure(opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(opts, nats->ca_file);
    }
    if (s == NATS_OK && nats->cert_file != NULL && (*what = "tls.cert") != NULL) {
        s = natsOptions_SetSecure(opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCertificatesChain(opts, nats->cert_file, nats->key_file);
    }
    *what = "options";
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(opts, inbox, io_attach, io_read, io_write, io_detach);
    if (s == NATS_OK)
        s = natsOptions_SetIOBufSize(opts, IO_BUF_SIZE);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, true); /* no flusher thread */
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_reconnected, inbox);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, inbox);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, inbox);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, inbox);
    return s;
}

/* Makes the inbox with its eventfd (one reference, the bus's); NULL on failure. */
static struct inbox *inbox_new(struct bus *bus)
{
    struct inbox *inbox = calloc(1, sizeof(*inbox));

    if (inbox == NULL)
        return NULL;
    inbox->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (inbox->wake_fd < 0) {
        free(inbox);
        return NULL;
    }
    pthread_mutex_init(&inbox->lock, NULL);
    atomic_init(&inbox->refs, 1);
    inbox->loop_thread = pthread_self();
    inbox->bus = bus;
    inbox->io.fd = -1;
    return inbox;
}

struct bus *bus_open(struct event_base *base, const struct cfg_nats *nats, const char *name,
                     char **cause)
{
    struct bus *bus = calloc(1, sizeof(*bus));
    natsOptions *opts = NULL;
    natsStatus s;
    const char *what = "library";

    if (bus == NULL || (bus->inbox = inbox_new(bus)) == NULL) {
        free(bus);
        *cause = strdup("out of memory");
        return NULL;
    }
    bus->base = base;
    bus->io_fd = -1;
    bus->wake_ev = event_new(base, bus->inbox->wake_fd, EV_READ | EV_PERSIST, on_wake, bus);
    bus->flush_ev = event_new(base, -1, 0, on_flush, bus);
    bus->reap_ev = evtimer_new(base, on_reap, bus);
    s = bus->wake_ev != NULL && bus->flush_ev != NULL && bus->reap_ev != NULL
            ? natsOptions_Create(&opts)
            : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = set_options(opts, nats, name, bus->inbox, &what);
    if (s == NATS_OK) {
        atomic_fetch_add(&bus->inbox->refs, 1); /* the connection's, until on_closed */
        s = natsConnection_Connect(&bus->nc, opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            ig_warn("nats: %s not reachable yet; retrying in the background", nats->urls);
            s = NATS_OK;
        } else if (s == NATS_OK) {
            bus->is_up = true;
            ig_info("nats: connected (%s)", nats->urls);
        } else {
            atomic_fetch_sub(&bus->inbox->refs, 1);
        }
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        if (asprintf(cause, "nats %s: %s", what, natsStatus_GetText(s)) < 0)
            *cause = NULL;
        bus_free(bus);
        return NULL;
    }
    event_add(bus->wake_ev, NULL);
    return bus;
}

void bus_free(struct bus *bus)
{
    if (bus == NULL)
        return;
    bus->inbox->bus = NULL; /* from here cnats's calls only touch the inbox */
    for (size_t i = 0; i < bus->n_subs; i++) {
        natsSubscription_Unsubscribe(bus->subs[i]->sub);
        natsSubscription_Destroy(bus->subs[i]->sub);
        free(bus->subs[i]);
    }
    if (bus->nc != NULL) {
        natsConnection_ProcessWriteEvent(bus->nc); /* what this turn published (cancels, ends) */
        natsConnection_Close(bus->nc);
        natsConnection_Destroy(bus->nc);
    }
    if (bus->read_ev != NULL)
        event_free(bus->read_ev);
    if (bus->write_ev != NULL)
        event_free(bus->write_ev);
    if (bus->flush_ev != NULL)
        event_free(bus->flush_ev);
    if (bus->reap_ev != NULL)
        event_free(bus->reap_ev);
    reap(bus);
    free(bus->dead);
    if (bus->wake_ev != NULL)
        event_free(bus->wake_ev);
    free(bus->subs);
    inbox_unref(bus->inbox);
    free(bus);
}

void bus_set_state_cb(struct bus *bus, bus_state_fn cb, void *arg)
{
    bus->state_cb = cb;
    bus->state_arg = arg;
}

bool bus_is_up(const struct bus *bus)
{
    return bus->is_up;
}

int bus_subscribe(struct bus *bus, const char *subject, bus_msg_fn cb, void *arg)
{
    struct bus_sub *s = calloc(1, sizeof(*s));
    struct bus_sub **subs = realloc(bus->subs, (bus->n_subs + 1) * sizeof(*subs));
    natsStatus st;

    if (subs != NULL)
        bus->subs = subs;
    if (s == NULL || subs == NULL) {
        free(s);
        return IG_ENOMEM;
    }
    *s = (struct bus_sub){NULL, cb, arg};
    st = natsConnection_SubscribeSync(&s->sub, bus->nc, subject);
    if (st == NATS_OK) /* drained at once after each read: the default caps never bind */
        st = natsSubscription_SetPendingLimits(s->sub, -1, -1);
    if (st != NATS_OK) {
        ig_error("nats: cannot subscribe to %s: %s", subject, natsStatus_GetText(st));
        natsSubscription_Destroy(s->sub);
        free(s);
        return IG_EIO;
    }
    bus->subs[bus->n_subs++] = s;
    return 0;
}

int bus_publish(struct bus *bus, const char *subject, const char *reply,
                const struct bus_header *headers, size_t n_headers, const void *data,
                size_t len)
{
    char stack[STACK_FRAME], *frame = stack;
    size_t size = bus_frame_head_size(headers, n_headers);
    natsStatus s;

    if (size > 0 && size + len > sizeof(stack))
        frame = malloc(size + len);
    if (frame == NULL)
        return IG_EIO;
    if (size > 0) { /* the header block, then the body */
        bus_frame_write_head(frame, headers, n_headers);
        if (len > 0)
            memcpy(frame + size, data, len);
        data = frame;
        len += size;
    }
    s = reply != NULL ? natsConnection_PublishRequest(bus->nc, subject, reply, data, (int)len)
                      : natsConnection_Publish(bus->nc, subject, data, (int)len);
    if (frame != stack)
        free(frame);
    if (s != NATS_OK) {
        ig_debug("nats: publish to %s failed: %s", subject, natsStatus_GetText(s));
        return IG_EIO;
    }
    return 0;
}

size_t bus_max_payload(const struct bus *bus)
{
    int64_t max = natsConnection_GetMaxPayload(bus->nc);
    return max > 0 ? (size_t)max : DEFAULT_MAX_PAYLOAD;
}

const char *bus_msg_subject(const struct bus_msg *msg)
{
    return natsMsg_GetSubject(msg->m);
}

const char *bus_msg_reply(const struct bus_msg *msg)
{
    const char *reply = natsMsg_GetReply(msg->m);
    return reply != NULL ? reply : "";
}

const char *bus_msg_data(const struct bus_msg *msg, size_t *len)
{
    *len = msg->frame.len;
    return msg->frame.data;
}

const char *bus_msg_header(const struct bus_msg *msg, const char *name)
{
    return bus_frame_header(&msg->frame, name);
}

void bus_library_close(void)
{
    nats_CloseAndWait(2000);
}
