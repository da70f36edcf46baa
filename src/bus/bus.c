/*
 * The NATS connection and its bridge to the libevent loop (bus.h).
 *
 * cnats delivers messages on its own threads. Each callback appends the message to the
 * inbox's queue under a mutex and wakes the loop through an eventfd (once per batch); the
 * loop takes the whole queue and runs the subscribers' callbacks. The inbox outlives the
 * bus: cnats may still be inside a callback while the bus is freed, so the inbox is
 * reference-counted by the bus, by each subscription (released by cnats's on-complete
 * callback, after its last message callback) and by the connection (released by its
 * closed callback), and the last one frees it.
 */
#include "bus.h"

#include "cfg.h"
#include "ig_log.h"

#include <event2/event.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_URLS 32
#define RECONNECT_WAIT_MS 250
#define PING_INTERVAL_MS 5000
#define DEFAULT_MAX_PAYLOAD (1u << 20)

struct bus_sub {
    struct bus *bus;
    struct inbox *inbox;
    natsSubscription *sub;
    bus_msg_fn cb;
    void *arg;
};

struct bus_msg {
    natsMsg *m;
};

struct queued {
    natsMsg *m;
    struct bus_sub *sub; /* NULL: a connection state change */
    bool is_up;
};

/* What cnats's threads touch. */
struct inbox {
    pthread_mutex_t lock;
    atomic_int refs;
    int wake_fd;
    bool is_closing;     /* the bus is gone: drop what arrives */
    bool is_wake_armed;  /* the loop has been woken and has not yet taken the queue */
    struct queued *q;
    size_t len, cap;
};

struct bus {
    struct event_base *base;
    struct inbox *inbox;
    natsConnection *nc;
    struct event *wake_ev;
    struct bus_sub **subs;
    size_t n_subs;
    struct queued *work; /* the queue taken by the loop */
    size_t work_cap;
    atomic_bool is_up;
    bus_state_fn state_cb;
    void *state_arg;
};

/* Drops a reference to INBOX; the last frees it with what it still holds. */
static void inbox_unref(struct inbox *inbox)
{
    if (atomic_fetch_sub(&inbox->refs, 1) != 1)
        return;
    for (size_t i = 0; i < inbox->len; i++)
        natsMsg_Destroy(inbox->q[i].m);
    free(inbox->q);
    close(inbox->wake_fd);
    pthread_mutex_destroy(&inbox->lock);
    free(inbox);
}

/* Queues an entry (any thread); wakes the loop when the queue was empty. */
static void inbox_push(struct inbox *inbox, natsMsg *m, struct bus_sub *sub, bool is_up)
{
    bool must_wake = false;

    pthread_mutex_lock(&inbox->lock);
    if (!inbox->is_closing && inbox->len == inbox->cap) {
        size_t cap = inbox->cap > 0 ? inbox->cap * 2 : 64;
        struct queued *q = realloc(inbox->q, cap * sizeof(*q));
        if (q != NULL) {
            inbox->q = q;
            inbox->cap = cap;
        }
    }
    if (inbox->is_closing || inbox->len == inbox->cap) {
        pthread_mutex_unlock(&inbox->lock);
        if (m != NULL)
            natsMsg_Destroy(m); /* closing, or out of memory: the message is lost */
        return;
    }
    inbox->q[inbox->len++] = (struct queued){m, sub, is_up};
    if (!inbox->is_wake_armed) {
        inbox->is_wake_armed = true;
        must_wake = true;
    }
    pthread_mutex_unlock(&inbox->lock);
    if (must_wake) {
        uint64_t one = 1;
        ssize_t n = write(inbox->wake_fd, &one, sizeof(one));
        (void)n; /* a full counter still wakes the loop */
    }
}

/* cnats thread: a message for subscription CLOSURE. */
static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct bus_sub *s = closure;
    (void)nc;
    (void)sub;
    inbox_push(s->inbox, msg, s, false);
}

/* cnats thread: the subscription's last callback has returned. */
static void on_sub_complete(void *closure)
{
    inbox_unref(closure);
}

/* cnats thread: connection lost. */
static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    inbox_push(closure, NULL, NULL, false);
}

/* cnats thread: connection (re)established. */
static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    inbox_push(closure, NULL, NULL, true);
}

/* cnats thread: the connection is closed for good; its callbacks are over. */
static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    inbox_unref(closure);
}

/* Loop: runs the callbacks of everything queued. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct bus *bus = arg;
    struct inbox *inbox = bus->inbox;
    uint64_t count;
    struct queued *taken;
    size_t n, taken_cap;
    (void)what;

    if (read(fd, &count, sizeof(count)) < 0) {
        /* nothing to read: another wake-up took it */
    }
    pthread_mutex_lock(&inbox->lock);
    taken = inbox->q;
    taken_cap = inbox->cap;
    n = inbox->len;
    inbox->q = bus->work;
    inbox->cap = bus->work_cap;
    inbox->len = 0;
    inbox->is_wake_armed = false;
    pthread_mutex_unlock(&inbox->lock);
    bus->work = taken;
    bus->work_cap = taken_cap;
    for (size_t i = 0; i < n; i++) {
        struct queued *e = &taken[i];

        if (e->sub == NULL) {
            if (atomic_load(&bus->is_up) != e->is_up) {
                atomic_store(&bus->is_up, e->is_up);
                ig_log(e->is_up ? IG_LOG_INFO : IG_LOG_WARN, "nats: %s",
                       e->is_up ? "connected" : "disconnected; reconnecting");
                if (bus->state_cb != NULL)
                    bus->state_cb(bus, e->is_up, bus->state_arg);
            }
            continue;
        }
        struct bus_msg msg = {e->m};
        e->sub->cb(bus, &msg, e->sub->arg);
        natsMsg_Destroy(e->m);
        e->m = NULL;
    }
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
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, true);
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
static struct inbox *inbox_new(void)
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
    return inbox;
}

struct bus *bus_open(struct event_base *base, const struct cfg_nats *nats, const char *name,
                     char **cause)
{
    struct bus *bus = calloc(1, sizeof(*bus));
    natsOptions *opts = NULL;
    natsStatus s;
    const char *what = "library";

    if (bus == NULL || (bus->inbox = inbox_new()) == NULL) {
        free(bus);
        *cause = strdup("out of memory");
        return NULL;
    }
    bus->base = base;
    atomic_init(&bus->is_up, false);
    bus->wake_ev = event_new(base, bus->inbox->wake_fd, EV_READ | EV_PERSIST, on_wake, bus);
    s = bus->wake_ev != NULL ? natsOptions_Create(&opts) : NATS_NO_MEMORY;
    if (s == NATS_OK)
        s = set_options(opts, nats, name, bus->inbox, &what);
    if (s == NATS_OK) {
        atomic_fetch_add(&bus->inbox->refs, 1); /* the connection's, until on_closed */
        s = natsConnection_Connect(&bus->nc, opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            ig_warn("nats: %s not reachable yet; retrying in the background", nats->urls);
            s = NATS_OK;
        } else if (s == NATS_OK) {
            atomic_store(&bus->is_up, true);
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
    pthread_mutex_lock(&bus->inbox->lock);
    bus->inbox->is_closing = true;
    pthread_mutex_unlock(&bus->inbox->lock);
    for (size_t i = 0; i < bus->n_subs; i++) {
        natsSubscription_Unsubscribe(bus->subs[i]->sub);
        natsSubscription_Destroy(bus->subs[i]->sub);
    }
    if (bus->nc != NULL) {
        natsConnection_Close(bus->nc);
        natsConnection_Destroy(bus->nc);
    }
    if (bus->wake_ev != NULL)
        event_free(bus->wake_ev);
    /* Subscriptions' structs are kept until here: the queue may still name them. */
    pthread_mutex_lock(&bus->inbox->lock);
    for (size_t i = 0; i < bus->inbox->len; i++)
        natsMsg_Destroy(bus->inbox->q[i].m);
    bus->inbox->len = 0;
    pthread_mutex_unlock(&bus->inbox->lock);
    for (size_t i = 0; i < bus->n_subs; i++)
        free(bus->subs[i]);
    free(bus->subs);
    free(bus->work);
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
    return atomic_load(&bus->is_up);
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
    *s = (struct bus_sub){bus, bus->inbox, NULL, cb, arg};
    st = natsConnection_Subscribe(&s->sub, bus->nc, subject, on_nats_msg, s);
    if (st == NATS_OK) {
        atomic_fetch_add(&bus->inbox->refs, 1);
        if (natsSubscription_SetOnCompleteCB(s->sub, on_sub_complete, bus->inbox) != NATS_OK)
            atomic_fetch_sub(&bus->inbox->refs, 1); /* not counted: keep the inbox alive */
    }
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
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, reply, data, (int)len);

    for (size_t i = 0; s == NATS_OK && i < n_headers; i++)
        s = natsMsgHeader_Set(m, headers[i].name, headers[i].value);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(bus->nc, m);
    natsMsg_Destroy(m);
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
    *len = (size_t)natsMsg_GetDataLength(msg->m);
    return natsMsg_GetData(msg->m);
}

const char *bus_msg_header(const struct bus_msg *msg, const char *name)
{
    const char *value = NULL;
    return natsMsgHeader_Get(msg->m, name, &value) == NATS_OK ? value : NULL;
}

void bus_library_close(void)
{
    nats_CloseAndWait(2000);
}
