/*
 * Internals of the bus tunnels shared by bus_tunnel.c (tunnels, their streams, the
 * protocol) and bus_recover.c (what makes them survive a NATS failover: answers kept until
 * acknowledged, resends, probes). Not for use outside src/bus.
 */
#ifndef IG_BUS_TUNNEL_INTERNAL_H
#define IG_BUS_TUNNEL_INTERNAL_H

#include "bus_tunnel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus_msg;
struct event;
struct evbuffer;

#define N_BUCKETS 16384
#define MIN_PART (64u << 10)
#define HEADERS_ROOM 512 /* of a message's payload, kept for its headers */
#define SUBJECT_MAX 192
#define SWEEP_MS 250          /* stall deadlines and keep-alives are checked this often */
#define KEEPALIVE_MIN_MS 250  /* a worker keeps a silent tunnel alive at most this often */
#define KEEPALIVE_MAX_MS 5000
#define ACK_MS 250            /* a gateway acknowledges what came at most this often */
#define RESYNC_MS 500         /* a gateway repeats an unanswered resend request this often */
#define FIRST_PROBE_MS 1000   /* a gateway that heard nothing of a request this long asks */
#define LINGER_MS 5000        /* a worker keeps an ended answer this long for resends... */
#define MAX_LINGERING (32u << 20) /* ...within this many bytes over all tunnels */
#define MAX_RETAINED (8u << 20)   /* unacknowledged bytes a worker keeps per tunnel */
#define MAX_DONE_BYTES (64u << 10) /* a gateway's list of ended answers goes at this size */

/* Worker: a sent part of an answer, kept until the gateway acknowledges it. */
struct part {
    struct part *next;
    unsigned long long seq;
    bool is_end;
    size_t len;
    char data[];
};

struct tunnel {
    struct bus_tunnels *owner;
    char id[2 * BUS_ID_MAX + 24];   /* "<gateway>-<n>" */
    char out_subject[SUBJECT_MAX];  /* where this side's bytes go */
    char reply[SUBJECT_MAX];        /* gateway side: the reply subject of the requests */
    char worker[BUS_ID_MAX + 1];    /* gateway side: the worker dialled */
    const struct http_stream_sink *sink; /* the local end's, until it closes or is told */
    void *end;                           /* the end */
    struct evbuffer *out;           /* worker side: the answer not yet sent */
    unsigned long long out_seq, in_seq;
    bool is_peer_ended;             /* the other side sent its terminal message */
    bool has_sent_end;              /* worker side: the terminal message is out */
    bool is_dirty;                  /* worker side: OUT is waiting for the flush */
    bool has_input;                 /* bytes of the peer reached the local end */
    uint64_t last_in_ms;            /* gateway: when the peer's last message came */
    uint64_t last_out_ms;           /* worker: when our last message went */
    unsigned keepalive_ms;          /* worker: keep-alive after this much silence; 0: none */
    struct part *kept, *kept_tail;  /* worker: sent, not yet acknowledged */
    size_t kept_bytes;
    bool is_lingering;              /* worker: ended, kept for resends until linger_until_ms */
    uint64_t linger_until_ms;
    unsigned long long acked_seq;   /* gateway: the in_seq last acknowledged */
    uint64_t acked_ms;
    bool has_heard;                 /* gateway: a message of the worker came for it */
    bool is_resyncing;              /* gateway: asked for a resend, nothing heard since */
    uint64_t resync_ms;
    struct tunnel *next_in_bucket;
    struct tunnel *prev, *next;     /* in ALL, or in the lingering list */
    struct tunnel *next_dirty;
};

/* Gateway: the ids of a worker's answers that came whole since the last sweep (Ig-Done). */
struct done_list {
    struct done_list *next;
    char worker[BUS_ID_MAX + 1];
    char *ids; /* "id\n" each */
    size_t len, cap;
};

struct bus_tunnels {
    struct bus *bus;
    struct event_base *base;
    char self[BUS_ID_MAX + 1];
    unsigned long long next_n;
    struct tunnel *buckets[N_BUCKETS];
    struct tunnel *all;
    size_t n_open;         /* tunnels in use (lingering ones are not) */
    size_t lingering_bytes;
    struct tunnel *linger_head, *linger_tail; /* worker: ended tunnels, oldest first */
    struct event *sweep;   /* stall deadlines (gateway), keep-alives (worker) */
    unsigned stall_ms;     /* gateway: a tunnel silent this long ends; 0: never */
    struct done_list *done; /* gateway: answers to report whole, per worker */
    /* Worker side. */
    bool is_serving;
    size_t capacity;
    bus_accept_fn accept;
    void *accept_arg;
    struct tunnel *dirty;    /* answers to send at the end of this loop turn */
    struct event *flush_ev;
};

/* Returns the open tunnel named ID, or NULL. */
struct tunnel *tunnel_find(struct bus_tunnels *t, const char *id);

/* Frees TN; its local end is told the end (unless it closed it). */
void tunnel_free(struct tunnel *tn);

/* Worker: forgets the kept parts before sequence number SEQ (the gateway has them). */
void tunnel_drop_kept(struct tunnel *tn, unsigned long long seq);

/* Worker: keeps a copy of the part SEQ just sent (DATA, END) for a resend; the oldest parts
 * go beyond MAX_RETAINED. */
void tunnel_keep_part(struct tunnel *tn, unsigned long long seq, const char *data, size_t len,
                      bool is_end);

/* Returns how often a gateway with stall deadline STALL_MS asks its workers to keep a silent
 * tunnel alive: four times per deadline, within KEEPALIVE_MIN_MS..KEEPALIVE_MAX_MS. */
unsigned tunnel_keepalive_for(unsigned stall_ms);

/* Worker: sends the kept parts again, as they were. */
void tunnel_resend_kept(struct tunnel *tn);

/* Gateway: asks TN's worker to send its answer again from the next part expected. */
void tunnel_ask_resend(struct tunnel *tn);

/* Gateway: acknowledges the parts of TN's answer received so far. */
void tunnel_acknowledge(struct tunnel *tn);

/* Worker: tells the gateway that TN is still being worked on. */
void tunnel_keep_alive(struct tunnel *tn);

/* Gateway: how long TN may stay silent before it asks its worker where the answer is (a
 * message lost in a NATS failover, the request itself or a part): soon when nothing came
 * yet, else after two keep-alives missed. The answer is the rest of the answer, a
 * keep-alive, or "lost" for a request the worker never got. */
uint64_t tunnel_probe_after(const struct bus_tunnels *t, const struct tunnel *tn);

/* Gateway: TN's answer came whole; its worker is told at the next sweep (or sooner when
 * the list is long) so that it forgets the copy it keeps for resends. */
void tunnel_note_done(struct tunnel *tn);

/* Gateway: sends each worker the list of its answers that came whole (Ig-Done), and empties
 * the lists. */
void tunnels_send_done(struct bus_tunnels *t);

/* Worker: a gateway's Ig-Done list: the answers named are forgotten (they came whole). */
void tunnels_take_done(struct bus_tunnels *t, const struct bus_msg *msg);

/* Worker: a gateway acknowledges parts of tunnel ID's answer (Ig-Ack: the next it
 * expects) or asks for them again (Ig-Resend: from the one it expects; a tunnel not known
 * here is answered Ig-End: lost, and the gateway fails or retries the request). */
void tunnel_control(struct bus_tunnels *t, const struct bus_msg *msg, const char *id);

#endif
