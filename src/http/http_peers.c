/*
 * Per-address connection counts: a fixed array of buckets with chained entries, an entry
 * per address with connections open (freed when its count drops to zero), so memory is
 * bounded by the number of open connections, which max_connections bounds.
 */
#include "http_peers.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define N_BUCKETS 1024u

struct peer_entry {
    struct http_peer_key key;
    size_t count;
    struct peer_entry *next;
};

struct http_peers {
    struct peer_entry *buckets[N_BUCKETS];
    size_t n_addresses;
};

bool http_peer_key_from(const struct sockaddr *sa, struct http_peer_key *key)
{
    memset(key, 0, sizeof(*key));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key->bytes[10] = 0xff;
        key->bytes[11] = 0xff;
        memcpy(key->bytes + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* FNV-1a over the key's bytes. */
static size_t bucket_of(const struct http_peer_key *key)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < sizeof(key->bytes); i++) {
        h ^= key->bytes[i];
        h *= 16777619u;
    }
    return h % N_BUCKETS;
}

/* Returns the slot pointing at KEY's entry (the entry may be NULL: not found). */
static struct peer_entry **find_slot(const struct http_peers *peers,
                                     const struct http_peer_key *key)
{
    struct peer_entry **slot = (struct peer_entry **)&peers->buckets[bucket_of(key)];

    while (*slot != NULL && memcmp((*slot)->key.bytes, key->bytes, sizeof(key->bytes)) != 0)
        slot = &(*slot)->next;
    return slot;
}

struct http_peers *http_peers_new(void)
{
    return calloc(1, sizeof(struct http_peers));
}

void http_peers_free(struct http_peers *peers)
{
    if (peers == NULL)
        return;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        while (peers->buckets[i] != NULL) {
            struct peer_entry *e = peers->buckets[i];
            peers->buckets[i] = e->next;
            free(e);
        }
    }
    free(peers);
}

size_t http_peers_count(const struct http_peers *peers, const struct http_peer_key *key)
{
    struct peer_entry *e = *find_slot(peers, key);

    return e != NULL ? e->count : 0;
}

int http_peers_add(struct http_peers *peers, const struct http_peer_key *key)
{
    struct peer_entry **slot = find_slot(peers, key);

    if (*slot == NULL) {
        struct peer_entry *e = calloc(1, sizeof(*e));
        if (e == NULL)
            return -1;
        e->key = *key;
        *slot = e;
        peers->n_addresses++;
    }
    (*slot)->count++;
    return 0;
}

void http_peers_remove(struct http_peers *peers, const struct http_peer_key *key)
{
    struct peer_entry **slot = find_slot(peers, key);
    struct peer_entry *e = *slot;

    if (e == NULL)
        return;
    if (--e->count > 0)
        return;
    *slot = e->next;
    free(e);
    peers->n_addresses--;
}

size_t http_peers_addresses(const struct http_peers *peers)
{
    return peers->n_addresses;
}
