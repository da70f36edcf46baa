/* Byte tunnels over the bus (bus_tunnel.h). */
#include "bus_tunnel.h"
#include "bus_tunnel_internal.h"

#include "bus.h"
#include "ig_errbody.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

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
struct tunnel *tunnel_find(struct bus_tunnels *t, const char *id)
{
    for (struct tunnel *tn = *bucket_of(t, id); tn != NULL; tn = tn->next_in_bucket)
        if (strcmp(tn->id, id) == 0)
            return tn;
    return NULL;
}

/* Takes TN off the list of answers waiting for the flush. */
static void undirty(struct tunnel *tn)
{
    struct tunnel **p = &tn->owner->dirty;

    if (!tn->is_dirty)
        return;
    while (*p != NULL && *p != tn)
        p = &(*p)->next_dirty;
    if (*p == tn)
        *p = tn->next_dirty;
    tn->is_dirty = false;
}

/* Takes TN out of its list: all tunnels, or the lingering ones. */
static void unlink_tunnel(struct tunnel *tn)
{
    struct bus_tunnels *t = tn->owner;

    if (tn->prev != NULL)
        tn->prev->next = tn->next;
    else if (tn->is_lingering)
        t->linger_head = tn->next;
    else
        t->all = tn->next;
    if (tn->next != NULL)
        tn->next->prev = tn->prev;
    else if (tn->is_lingering)
        t->linger_tail = tn->prev;
    tn->prev = tn->next = NULL;
}

/* Worker: keeps the ended TN a while for a gateway that missed its answer (the oldest
 * lingering tunnels go beyond MAX_LINGERING). */
static void linger(struct tunnel *tn)
{
    struct bus_tunnels *t = tn->owner;
    const struct http_stream_sink *sink = tn->sink;

    unlink_tunnel(tn);
    tn->sink = NULL;
    if (sink != NULL) /* the server still holds it (it refused bytes): tell it the end */
        sink->on_end(tn->end);
    tn->is_lingering = true;
    tn->linger_until_ms = ig_now_ms() + LINGER_MS;
    t->n_open--;
    t->lingering_bytes += tn->kept_bytes;
    tn->prev = t->linger_tail;
    if (t->linger_tail != NULL)
        t->linger_tail->next = tn;
    else
        t->linger_head = tn;
    t->linger_tail = tn;
    while (t->lingering_bytes > MAX_LINGERING && t->linger_head != tn)
        tunnel_free(t->linger_head);
}

/* Frees TN; its local end is told the end (unless it closed it). */
void tunnel_free(struct tunnel *tn)
{
    struct bus_tunnels *t = tn->owner;
    struct tunnel **p = bucket_of(t, tn->id);
    const struct http_stream_sink *sink = tn->sink;

    if (sink != NULL) {
        tn->sink = NULL;
        sink->on_end(tn->end);
    }
    undirty(tn);
    while (*p != NULL && *p != tn)
        p = &(*p)->next_in_bucket;
    if (*p == tn)
        *p = tn->next_in_bucket;
    unlink_tunnel(tn);
    if (tn->is_lingering)
        t->lingering_bytes -= tn->kept_bytes;
    else
        t->n_open--;
    while (tn->kept != NULL) {
        struct part *next = tn->kept->next;
        free(tn->kept);
        tn->kept = next;
    }
    if (tn->out != NULL)
        evbuffer_free(tn->out);
    free(tn);
}

/* Sends this side's bytes DATA (with the terminal message END, or NULL) to the peer. A
 * gateway's first message asks for keep-alives (Ig-Keepalive-Ms) when it has a deadline. */
static int send_part(struct tunnel *tn, const char *data, size_t len, const char *end)
{
    char seq[24], keepalive[24];
    struct bus_header h[4] = {{"Ig-Seq", seq}, {"Ig-Id", tn->id}};
    size_t n_headers = 2;

    if (end != NULL)
        h[n_headers++] = (struct bus_header){"Ig-End", end};
    if (tn->out_seq == 0 && !tn->owner->is_serving && tn->owner->stall_ms > 0) {
        ig_format_u64(keepalive, tunnel_keepalive_for(tn->owner->stall_ms));
        h[n_headers++] = (struct bus_header){"Ig-Keepalive-Ms", keepalive};
    }
    tn->last_out_ms = ig_now_ms();
    ig_format_u64(seq, tn->out_seq);
    if (tn->owner->is_serving)
        tunnel_keep_part(tn, tn->out_seq, data, len, end != NULL);
    tn->out_seq++;
    return bus_publish(tn->owner->bus, tn->out_subject, tn->reply[0] != '\0' ? tn->reply : NULL,
                       h, n_headers, data, len);
}

/* Sends every byte of OUT in parts that fit the server's payload with their headers, the
 * last one carrying END (or NULL; with no bytes, END goes alone). Returns 0 or -1. */
static int send_all(struct tunnel *tn, struct evbuffer *out, const char *end)
{
    size_t max = bus_max_payload(tn->owner->bus);

    max = max > HEADERS_ROOM + MIN_PART ? max - HEADERS_ROOM : MIN_PART;
    do {
        size_t left = evbuffer_get_length(out), len = left < max ? left : max;
        const char *data = len > 0 ? (const char *)evbuffer_pullup(out, (ssize_t)len) : NULL;

        if ((len > 0 && data == NULL) || send_part(tn, data, len, len == left ? end : NULL) != 0)
            return -1;
        evbuffer_drain(out, len);
    } while (evbuffer_get_length(out) > 0);
    return 0;
}

/* Sends a terminal message END to REPLY for tunnel ID without making a tunnel. */
static void send_refusal(struct bus_tunnels *t, const char *reply, const char *id,
                         const char *end)
{
    struct bus_header h[3] = {{"Ig-Seq", "0"}, {"Ig-Id", id}, {"Ig-End", end}};

    if (bus_publish(t->bus, reply, NULL, h, 3, NULL, 0) != 0)
        ig_debug("nats: cannot answer %s to %s", end, reply);
}

/* Makes a tunnel named ID; NULL when out of memory. */
static struct tunnel *tunnel_new(struct bus_tunnels *t, const char *id)
{
    struct tunnel *tn = calloc(1, sizeof(*tn));
    struct tunnel **b;

    if (tn == NULL)
        return NULL;
    tn->owner = t;
    tn->last_in_ms = tn->last_out_ms = ig_now_ms();
    ig_concat(tn->id, sizeof(tn->id), (const char *[]){id, NULL});
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

/* Worker: sends what is buffered of the answer, with the terminal message. */
static void send_end(struct tunnel *tn)
{
    if (tn->has_sent_end)
        return;
    tn->has_sent_end = true;
    undirty(tn);
    if (send_all(tn, tn->out, "ok") != 0)
        ig_debug("nats: cannot end tunnel %s", tn->id);
}

/* The local end is done (or takes no more): a worker sends the terminal message, a gateway
 * whose answer is not complete cancels the request; then TN is freed. */
static void local_closed(struct tunnel *tn)
{
    char subject[SUBJECT_MAX];

    if (tn->is_lingering)
        return; /* ended already */
    if (tn->owner->is_serving) {
        send_end(tn);
        if (tn->kept != NULL && tn->kept_bytes <= MAX_LINGERING) {
            linger(tn);
            return;
        }
    } else if (!tn->is_peer_ended) {
        snprintf(subject, sizeof(subject), "infergate.v1.cancel.%s", tn->id);
        if (bus_publish(tn->owner->bus, subject, NULL, NULL, 0, NULL, 0) != 0)
            ig_debug("nats: cannot cancel %s", tn->id);
    }
    tunnel_free(tn);
}

/* Stream op: the local end's bytes. A gateway sends them at once; a worker sends its
 * answer at the end of this loop turn, or with the terminal message when the server
 * closes first, so that an answer and its end go in one message. */
static int stream_send(void *stream, struct evbuffer *out)
{
    struct tunnel *tn = stream;
    struct bus_tunnels *t = tn->owner;

    if (!t->is_serving)
        return send_all(tn, out, NULL);
    if (tn->has_sent_end || evbuffer_add_buffer(tn->out, out) != 0)
        return -1;
    if (!tn->is_dirty) {
        tn->is_dirty = true;
        tn->next_dirty = t->dirty;
        t->dirty = tn;
        event_active(t->flush_ev, EV_TIMEOUT, 0);
    }
    return 0;
}

/* Stream op: the worker's server sends nothing more. */
static void stream_finish(void *stream)
{
    struct tunnel *tn = stream;

    if (tn->owner->is_serving)
        send_end(tn);
}

/* Stream op: the local end is done with the tunnel. */
static void stream_close(void *stream)
{
    struct tunnel *tn = stream;

    tn->sink = NULL;
    local_closed(tn);
}

static const struct http_stream_ops stream_ops = {stream_send, stream_finish, stream_close};

/* Worker, end of a loop turn: sends the answers written during it. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct bus_tunnels *t = arg;
    (void)fd;
    (void)what;

    while (t->dirty != NULL) {
        struct tunnel *tn = t->dirty;

        t->dirty = tn->next_dirty;
        tn->is_dirty = false;
        if (send_all(tn, tn->out, NULL) != 0) {
            ig_warn("nats: tunnel %s: cannot send; ending it", tn->id);
            tunnel_free(tn);
        }
    }
}

/*
 * Gateway: answers the local end (the HTTP client) itself with STATUS and an OpenAI error
 * MESSAGE of CODE, as the worker's server would have, when no byte of the worker's answer
 * came: a worker at capacity becomes 429 (as a model at its concurrencyLimit answers), so
 * the gateway treats both alike. Frees TN; returns -1.
 */
static int answer_locally(struct tunnel *tn, int status, const char *reason,
                          const char *message, const char *code)
{
    char *body = ig_error_body(status, message, code);
    char *answer = NULL;
    int len = body == NULL ? -1
                           : asprintf(&answer,
                                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                      status, reason, strlen(body), body);

    free(body);
    if (len > 0 && tn->sink != NULL)
        (void)tn->sink->on_data(tn->end, answer, (size_t)len);
    free(answer);
    tn->is_peer_ended = true;
    tunnel_free(tn);
    return -1;
}

/* Takes a numbered part of the peer's bytes into the local end; returns -1 when TN was
 * freed. */
static int take_part(struct tunnel *tn, const struct bus_msg *msg)
{
    const char *seq = bus_msg_header(msg, "Ig-Seq");
    const char *end = bus_msg_header(msg, "Ig-End");
    size_t len;
    const char *data = bus_msg_data(msg, &len);
    long long n = seq != NULL ? ig_parse_int(seq) : -1;

    tn->has_heard = true;
    if (n >= 0 && (unsigned long long)n < tn->in_seq)
        return 0; /* sent again after a reconnect, and it had come */
    if (n < 0 || (unsigned long long)n > tn->in_seq) {
        if (n >= 0 && !tn->owner->is_serving) { /* parts were lost: ask for them again */
            if (!tn->is_resyncing || tn->last_in_ms - tn->resync_ms >= RESYNC_MS)
                tunnel_ask_resend(tn);
            return 0;
        }
        ig_warn("nats: tunnel %s: part %s arrived, %llu expected; ending it", tn->id,
                seq != NULL ? seq : "(none)", tn->in_seq);
        tunnel_free(tn);
        return -1;
    }
    tn->in_seq++;
    tn->is_resyncing = false;
    tn->last_in_ms = ig_now_ms(); /* progress: duplicates and gaps are not (stall deadline) */
    if (end != NULL && strcmp(end, "ok") != 0) {
        ig_log(IG_LOG_INFO, "nats: tunnel %s to %s: %s", tn->id, tn->worker, end);
        if (strcmp(end, "busy") == 0 && !tn->owner->is_serving && !tn->has_input)
            return answer_locally(tn, 429, "Too Many Requests", "the worker is at capacity",
                                  "worker_busy");
        /* Never got the request (lost in a NATS failover): not the worker's fault, and safe
         * to send it there again. Answered like busy, so the gateway tries another worker
         * or waits for one, without counting it as a failure or ruling the worker out. */
        if (strcmp(end, "lost") == 0 && !tn->owner->is_serving && !tn->has_input)
            return answer_locally(tn, 429, "Too Many Requests",
                                  "the worker did not get the request (lost in a NATS failover)",
                                  "worker_lost");
        tunnel_free(tn); /* failed: the client sees no answer, or a cut one */
        return -1;
    }
    tn->has_input = tn->has_input || len > 0;
    if (len > 0 && tn->sink != NULL && tn->sink->on_data(tn->end, data, len) != 0) {
        ig_warn("nats: tunnel %s: the local side takes no more; ending it", tn->id);
        tn->is_peer_ended = end != NULL;
        local_closed(tn);
        return -1;
    }
    if (end == NULL)
        return 0;
    tn->is_peer_ended = true;
    if (!tn->owner->is_serving)
        tunnel_note_done(tn); /* the worker may forget its copy */
    tunnel_free(tn);
    return -1;
}

/* Gateway: a part of a worker's answer, on _INBOX.<self>.<n>. */
static void on_reply(struct bus *bus, const struct bus_msg *msg, void *arg)
{
    struct bus_tunnels *t = arg;
    const char *id = bus_msg_header(msg, "Ig-Id");
    struct tunnel *tn = id != NULL ? tunnel_find(t, id) : NULL;
    (void)bus;

    if (tn != NULL && bus_msg_header(msg, "Ig-Alive") != NULL) {
        const char *got = bus_msg_header(msg, "Ig-Got");
        long long n = got != NULL ? ig_parse_int(got) : -1;

        if (n >= 0 && (unsigned long long)n < tn->out_seq) {
            /* A part of the request was lost (it is sent once): the worker would wait for it
             * forever. Cancelled there; with nothing answered yet, it is retried. */
            ig_warn("nats: tunnel %s: worker %s got %lld of %llu parts of the request; "
                    "ending it", tn->id, tn->worker, n, tn->out_seq);
            local_closed(tn);
            return;
        }
        tn->last_in_ms = ig_now_ms(); /* the worker is there, still working on it */
        tn->has_heard = true;
        tn->is_resyncing = false;
    } else if (tn != NULL) {
        (void)take_part(tn, msg);
    }
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

/* Every SWEEP_MS: ends the tunnels past their stall deadline (gateway), keeps the silent
 * ones alive (worker), acknowledges answers, tells workers which came whole and asks for
 * lost parts (gateway). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct bus_tunnels *t = arg;
    uint64_t now = ig_now_ms();
    struct tunnel *tn, *next;
    (void)fd;
    (void)what;

    for (tn = t->all; tn != NULL; tn = next) {
        next = tn->next;
        if (t->is_serving) {
            if (tn->keepalive_ms > 0 && !tn->has_sent_end &&
                now - tn->last_out_ms >= tn->keepalive_ms)
                tunnel_keep_alive(tn);
        } else if (t->stall_ms > 0 && !tn->is_peer_ended && now - tn->last_in_ms >= t->stall_ms) {
            stall(tn);
        } else if (tn->is_resyncing ? now - tn->resync_ms >= RESYNC_MS
                                    : now - tn->last_in_ms >= tunnel_probe_after(t, tn)) {
            tunnel_ask_resend(tn);
        } else if (tn->in_seq > tn->acked_seq && now - tn->acked_ms >= ACK_MS) {
            tunnel_acknowledge(tn);
        }
    }
    while (t->linger_head != NULL && now >= t->linger_head->linger_until_ms)
        tunnel_free(t->linger_head);
    tunnels_send_done(t);
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
    return 0;
}

/* Returns where a process numbers its tunnels from: a random 48-bit point, so that a
 * restarted gateway does not reuse the ids (and reply subjects) of its previous run, which
 * a worker may still hold. */
static unsigned long long first_tunnel_number(void)
{
    uint64_t r = 0;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = ig_now_us() ^ ((uint64_t)getpid() << 32);
    return r & ((1ull << 48) - 1);
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
    if (t == NULL || (t->flush_ev = event_new(base, -1, 0, on_flush, t)) == NULL) {
        free(t);
        *cause = strdup("out of memory");
        return NULL;
    }
    t->bus = bus;
    t->base = base;
    t->next_n = first_tunnel_number();
    snprintf(t->self, sizeof(t->self), "%s", self_id);
    snprintf(subject, sizeof(subject), "_INBOX.%s.>", self_id);
    if (bus_subscribe(bus, subject, on_reply, t) != 0 || start_sweep(t) != 0) {
        bus_tunnels_free(t);
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
    while (t->linger_head != NULL)
        tunnel_free(t->linger_head);
    tunnels_send_done(t);
    if (t->sweep != NULL)
        event_free(t->sweep);
    event_free(t->flush_ev);
    free(t);
}

void *bus_tunnel_open(struct bus_tunnels *t, const char *worker,
                      const struct http_stream_sink *sink, void *client,
                      const struct http_stream_ops **ops)
{
    char id[sizeof(((struct tunnel *)0)->id)], num[24];
    struct tunnel *tn;
    unsigned long long n = ++t->next_n;

    if (!bus_id_valid(worker))
        return NULL;
    ig_format_u64(num, n); /* printf-free: this runs for every request */
    ig_concat(id, sizeof(id), (const char *[]){t->self, "-", num, NULL});
    tn = tunnel_new(t, id);
    if (tn == NULL)
        return NULL;
    tn->sink = sink;
    tn->end = client;
    ig_concat(tn->worker, sizeof(tn->worker), (const char *[]){worker, NULL});
    ig_concat(tn->out_subject, sizeof(tn->out_subject),
              (const char *[]){"infergate.v1.workers.", worker, ".infer", NULL});
    ig_concat(tn->reply, sizeof(tn->reply), (const char *[]){"_INBOX.", t->self, ".", num, NULL});
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

size_t bus_tunnels_kept_bytes(const struct bus_tunnels *t)
{
    size_t n = t->lingering_bytes;

    for (const struct tunnel *tn = t->all; tn != NULL; tn = tn->next)
        n += tn->kept_bytes;
    return n;
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
    (void)bus;

    if (id == NULL && bus_msg_header(msg, "Ig-Done") != NULL) {
        tunnels_take_done(t, msg);
        return;
    }
    if (id != NULL && seq == NULL) {
        tunnel_control(t, msg, id);
        return;
    }
    if (id == NULL || seq == NULL || strlen(id) >= sizeof(tn->id) ||
        strlen(reply) >= sizeof(tn->out_subject) || reply[0] == '\0')
        return; /* not ours to answer */
    tn = tunnel_find(t, id);
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
    tn = tunnel_new(t, id);
    if (tn != NULL && (tn->out = evbuffer_new()) == NULL) {
        tunnel_free(tn);
        tn = NULL;
    }
    snprintf(peer, sizeof(peer), "bus:%.*s", (int)strcspn(id, "-"), id);
    if (tn == NULL || t->accept(tn, &stream_ops, peer, &tn->sink, &tn->end, t->accept_arg) != 0) {
        if (tn != NULL)
            tunnel_free(tn);
        send_refusal(t, reply, id, "busy");
        return;
    }
    ig_concat(tn->out_subject, sizeof(tn->out_subject), (const char *[]){reply, NULL});
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
    struct tunnel *tn = tunnel_find(t, id);
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
