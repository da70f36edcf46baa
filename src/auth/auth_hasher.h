/*
 * Hashing of presented API keys on the request path: HMAC-SHA256 with the server secret
 * from a context keyed once, and a memo of keys that recently matched, so a client sending
 * the same key on every request pays the HMAC once. The memo is a fixed table (no growth);
 * its entries are wiped when replaced and when the hasher is freed. Loop thread only.
 */
#ifndef IG_AUTH_HASHER_H
#define IG_AUTH_HASHER_H

#include <stddef.h>
#include <stdint.h>

#include "auth_keys.h"

struct auth_hasher;

/* Returns a hasher for SECRET, or NULL when OpenSSL cannot make one. */
struct auth_hasher *auth_hasher_new(const uint8_t secret[AUTH_SECRET_BYTES]);

/* Sets HASH to HMAC-SHA256(secret, KEY[0..LEN)), from the memo when KEY is in it. */
void auth_hasher_hash(struct auth_hasher *h, const char *key, size_t len,
                      uint8_t hash[AUTH_HASH_BYTES]);

/* Remembers that KEY hashes to HASH (call it for keys that matched a live key only). */
void auth_hasher_remember(struct auth_hasher *h, const char *key, size_t len,
                          const uint8_t hash[AUTH_HASH_BYTES]);

/* Wipes the memo and frees H (NULL is fine). */
void auth_hasher_free(struct auth_hasher *h);

#endif
