/*
 * Open connections counted per client address, for limits.max_connections_per_ip.
 * IPv4 addresses are kept as IPv4-mapped IPv6 addresses, so a client counts once whether
 * it reaches a dual-stack listener over IPv4 or IPv6-mapped IPv4.
 */
#ifndef IG_HTTP_PEERS_H
#define IG_HTTP_PEERS_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
struct http_peers;

/* A client address as a 16-byte key. */
struct http_peer_key {
    unsigned char bytes[16];
};

/* Fills *KEY from SA (AF_INET or AF_INET6); returns false for other families. */
bool http_peer_key_from(const struct sockaddr *sa, struct http_peer_key *key);

/* Creates an empty table; NULL when out of memory. Free with http_peers_free(). */
struct http_peers *http_peers_new(void);

/* Frees the table; NULL is a no-op. */
void http_peers_free(struct http_peers *peers);

/* Returns how many connections KEY has open. */
size_t http_peers_count(const struct http_peers *peers, const struct http_peer_key *key);

/* Counts one more connection of KEY; returns 0, or -1 when out of memory (not counted). */
int http_peers_add(struct http_peers *peers, const struct http_peer_key *key);

/* Counts one connection of KEY less (one that http_peers_add() counted). */
void http_peers_remove(struct http_peers *peers, const struct http_peer_key *key);

/* Returns how many addresses have connections open. */
size_t http_peers_addresses(const struct http_peers *peers);

#endif
