/* Tunnels across a NATS failover (bus_tunnel_internal.h): a worker keeps each answer's
 * parts until the gateway acknowledges them (Ig-Ack while they come, Ig-Done lists once an
 * answer came whole) and sends them again when asked or after its own reconnect; a gateway
 * acknowledges, asks for what it misses after a reconnect, a gap or a silence, and retries
 * a request its worker never got ("lost"). */
#include "bus_tunnel_internal.h"

#include "bus.h"
#include "ig_log.h"
#include "ig_text.h"
#include "ig_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Worker: forgets the kept parts before sequence number SEQ (the gateway has them). */
void tunnel_drop_kept(struct tunnel *tn, unsigned long long seq)
{
    while (tn->kept != NULL && tn->kept->seq < seq) {
        struct part *next = tn->kept->next;

        tn->kept_bytes -= tn->kept->len;
        if (tn->is_lingering)
            tn->owner->lingering_bytes -= tn->kept->len;
        free(tn->kept);
        tn->kept = next;
    }
    if (tn->kept == NULL)
        tn->kept_tail = NULL;
}

/* Worker: keeps a copy of the part SEQ just sent (DATA, END) for a resend; the oldest parts
 * go beyond MAX_RETAINED. */
void tunnel_keep_part(struct tunnel *tn, unsigned long long seq, const char *data, size_t len,
                      bool is_end)
{
    struct part *p = malloc(sizeof(*p) + len);

    if (p == NULL)
        return; /* not kept: a resend of it cannot be served */
    *p = (struct part){NULL, seq, is_end, len};
    if (len > 0)
        memcpy(p->data, data, len);
    if (tn->kept_tail != NULL)
        tn->kept_tail->next = p;
    else
        tn->kept = p;
    tn->kept_tail = p;
    tn->kept_bytes += len;
    while (tn->kept_bytes > MAX_RETAINED && tn->kept != p)
        tunnel_drop_kept(tn, tn->kept->seq + 1);
}

/* Returns how often a gateway with stall deadline STALL_MS asks its workers to keep a silent
 * tunnel alive: four times per deadline, within KEEPALIVE_MIN_MS..KEEPALIVE_MAX_MS. */
unsigned tunnel_keepalive_for(unsigned stall_ms)
{
    unsigned ms = stall_ms / 4;

    return ms < KEEPALIVE_MIN_MS ? KEEPALIVE_MIN_MS : ms > KEEPALIVE_MAX_MS ? KEEPALIVE_MAX_MS : ms;
}

/* Worker: sends the kept parts again, as they were. */
void tunnel_resend_kept(struct tunnel *tn)
{
    char seq[24];

    for (const struct part *p = tn->kept; p != NULL; p = p->next) {
        struct bus_header h[3] = {{"Ig-Seq", seq}, {"Ig-Id", tn->id}, {"Ig-End", "ok"}};

        snprintf(seq, sizeof(seq), "%llu", p->seq);
        if (bus_publish(tn->owner->bus, tn->out_subject, NULL, h, p->is_end ? 3 : 2,
                        p->len > 0 ? p->data : NULL, p->len) != 0)
            return;
    }
    tn->last_out_ms = ig_now_ms();
}

/* Gateway: asks TN's worker to send its answer again from the next part expected. */
void tunnel_ask_resend(struct tunnel *tn)
{
    char seq[24];
    struct bus_header h[2] = {{"Ig-Id", tn->id}, {"Ig-Resend", seq}};

    snprintf(seq, sizeof(seq), "%llu", tn->in_seq);
    tn->is_resyncing = true;
    tn->resync_ms = ig_now_ms();
    if (bus_publish(tn->owner->bus, tn->out_subject, tn->reply, h, 2, NULL, 0) != 0)
        ig_debug("nats: cannot ask %s for a resend", tn->id);
}

/* Gateway: acknowledges the parts of TN's answer received so far. */
void tunnel_acknowledge(struct tunnel *tn)
{
    char seq[24];
    struct bus_header h[2] = {{"Ig-Id", tn->id}, {"Ig-Ack", seq}};

    snprintf(seq, sizeof(seq), "%llu", tn->in_seq);
    tn->acked_seq = tn->in_seq;
    tn->acked_ms = ig_now_ms();
    if (bus_publish(tn->owner->bus, tn->out_subject, NULL, h, 2, NULL, 0) != 0)
        ig_debug("nats: cannot acknowledge %s", tn->id);
}

/* Worker: tells the gateway that TN is still being worked on. */
void tunnel_keep_alive(struct tunnel *tn)
{
    char got[24];
    struct bus_header h[3] = {{"Ig-Id", tn->id}, {"Ig-Alive", "1"}, {"Ig-Got", got}};

    snprintf(got, sizeof(got), "%llu", tn->in_seq); /* parts of the request received */
    tn->last_out_ms = ig_now_ms();
    if (bus_publish(tn->owner->bus, tn->out_subject, NULL, h, 3, NULL, 0) != 0)
        ig_debug("nats: cannot keep %s alive", tn->id);
}

/* Gateway: how long TN may stay silent before it asks its worker where the answer is (a
 * message lost in a NATS failover, the request itself or a part): soon when nothing came
 * yet, else after two keep-alives missed. The answer is the rest of the answer, a
 * keep-alive, or "lost" for a request the worker never got. */
uint64_t tunnel_probe_after(const struct bus_tunnels *t, const struct tunnel *tn)
{
    if (!tn->has_heard)
        return FIRST_PROBE_MS;
    return t->stall_ms > 0 ? 2u * tunnel_keepalive_for(t->stall_ms) : 2u * KEEPALIVE_MAX_MS;
}

void bus_tunnels_reconnected(struct bus_tunnels *t)
{
    for (struct tunnel *tn = t->linger_head; tn != NULL; tn = tn->next)
        tunnel_resend_kept(tn);
    for (struct tunnel *tn = t->all; tn != NULL; tn = tn->next) {
        if (t->is_serving)
            tunnel_resend_kept(tn); /* the gateway drops what it had */
        else
            tunnel_ask_resend(tn);
    }
}

/* Worker: a gateway acknowledges parts of tunnel ID's answer (Ig-Ack: the next it
 * expects) or asks for them again (Ig-Resend: from the one it expects; a tunnel not known
 * here is answered Ig-End: lost, and the gateway fails or retries the request). */
void tunnel_control(struct bus_tunnels *t, const struct bus_msg *msg, const char *id)
{
    const char *ack = bus_msg_header(msg, "Ig-Ack"), *resend = bus_msg_header(msg, "Ig-Resend");
    struct tunnel *tn = tunnel_find(t, id);
    long long n = ig_parse_int(resend != NULL ? resend : ack != NULL ? ack : "");
    const char *reply = bus_msg_reply(msg);

    if (n < 0)
        return;
    if (tn == NULL) {
        if (resend != NULL && reply[0] != '\0') {
            struct bus_header h[3] = {{"Ig-Seq", resend}, {"Ig-Id", id}, {"Ig-End", "lost"}};
            if (bus_publish(t->bus, reply, NULL, h, 3, NULL, 0) != 0)
                ig_debug("nats: cannot answer lost to %s", reply);
        }
        return;
    }
    if (resend != NULL && (unsigned long long)n < tn->out_seq &&
        (tn->kept == NULL || tn->kept->seq > (unsigned long long)n)) {
        /* Parts it misses are no longer kept (beyond MAX_RETAINED): the answer cannot be
         * completed. The gateway cuts it; the request is cancelled here. */
        struct bus_header h[3] = {{"Ig-Seq", resend}, {"Ig-Id", id}, {"Ig-End", "error"}};
        ig_warn("nats: tunnel %s: part %s asked again is no longer kept; ending it", id, resend);
        if (bus_publish(t->bus, tn->out_subject, NULL, h, 3, NULL, 0) != 0)
            ig_debug("nats: cannot end %s", id);
        tunnel_free(tn);
        return;
    }
    tunnel_drop_kept(tn, (unsigned long long)n);
    if (resend == NULL) {
        if (tn->is_lingering && tn->kept == NULL)
            tunnel_free(tn); /* the gateway has it all */
        return;
    }
    if (tn->kept != NULL)
        tunnel_resend_kept(tn);
    else if (!tn->has_sent_end)
        tunnel_keep_alive(tn); /* nothing to send again: still working on it */
}

/* Gateway: publishes LIST's ids to its worker in messages that fit the server's payload,
 * each cut after an id, and empties it. */
static void send_done_list(struct bus_tunnels *t, struct done_list *list)
{
    char subject[SUBJECT_MAX];
    size_t max = bus_max_payload(t->bus), at = 0;

    max = max > HEADERS_ROOM + 1024 ? max - HEADERS_ROOM : 1024; /* ids are < 160 bytes */
    if (max > MAX_DONE_BYTES)
        max = MAX_DONE_BYTES;
    ig_concat(subject, sizeof(subject),
              (const char *[]){"infergate.v1.workers.", list->worker, ".infer", NULL});
    while (at < list->len) {
        size_t len = list->len - at;
        struct bus_header h[1] = {{"Ig-Done", "1"}};

        if (len > max) { /* cut after the last whole id that fits */
            const char *nl = memrchr(list->ids + at, '\n', max);
            len = nl != NULL ? (size_t)(nl - (list->ids + at)) + 1 : max;
        }
        if (bus_publish(t->bus, subject, NULL, h, 1, list->ids + at, len) != 0)
            ig_debug("nats: cannot tell %s which answers came", list->worker);
        at += len;
    }
    list->len = 0;
}

void tunnel_note_done(struct tunnel *tn)
{
    struct bus_tunnels *t = tn->owner;
    struct done_list *list = t->done;
    size_t n = strlen(tn->id);

    while (list != NULL && strcmp(list->worker, tn->worker) != 0)
        list = list->next;
    if (list == NULL) {
        list = calloc(1, sizeof(*list));
        if (list == NULL)
            return; /* not told: the worker forgets the answer after LINGER_MS */
        ig_concat(list->worker, sizeof(list->worker), (const char *[]){tn->worker, NULL});
        list->next = t->done;
        t->done = list;
    }
    if (list->len + n + 1 > list->cap) {
        size_t cap = list->cap > 0 ? list->cap * 2 : 4096;
        char *ids;

        while (cap < list->len + n + 1)
            cap *= 2;
        ids = realloc(list->ids, cap);
        if (ids == NULL)
            return;
        list->ids = ids;
        list->cap = cap;
    }
    memcpy(list->ids + list->len, tn->id, n);
    list->ids[list->len + n] = '\n';
    list->len += n + 1;
    if (list->len >= MAX_DONE_BYTES)
        send_done_list(t, list);
}

void tunnels_send_done(struct bus_tunnels *t)
{
    while (t->done != NULL) { /* lists are made again as answers come: no worker stays */
        struct done_list *list = t->done;

        t->done = list->next;
        if (list->len > 0)
            send_done_list(t, list);
        free(list->ids);
        free(list);
    }
}

void tunnels_take_done(struct bus_tunnels *t, const struct bus_msg *msg)
{
    size_t len, at = 0;
    const char *ids = bus_msg_data(msg, &len);
    char id[sizeof(((struct tunnel *)0)->id)];

    while (at < len) {
        const char *nl = memchr(ids + at, '\n', len - at);
        size_t n = (nl != NULL ? (size_t)(nl - ids) : len) - at;
        struct tunnel *tn;

        if (n > 0 && n < sizeof(id) && memchr(ids + at, '\0', n) == NULL) {
            memcpy(id, ids + at, n);
            id[n] = '\0';
            tn = tunnel_find(t, id);
            if (tn != NULL && tn->has_sent_end) {
                tunnel_drop_kept(tn, tn->out_seq);
                if (tn->is_lingering)
                    tunnel_free(tn);
            }
        }
        at += n + 1;
    }
}
