/* Hashing of presented API keys with a memo (see auth_hasher.h). */
#include "auth_hasher.h"
#include "ig_text.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_SLOTS 256       /* a power of two */
#define MEMO_KEY_BYTES 160   /* longer keys are hashed every time */

struct memo_slot {
    uint8_t len; /* 0: empty */
    char key[MEMO_KEY_BYTES];
    uint8_t hash[AUTH_HASH_BYTES];
};

struct auth_hasher {
    EVP_MAC *mac;
    EVP_MAC_CTX *keyed; /* initialised with the secret; each hash works on a copy */
    uint8_t secret[AUTH_SECRET_BYTES];
    struct memo_slot memo[MEMO_SLOTS];
};

/* FNV-1a of KEY: picks the memo slot (the comparison that follows is constant-time). */
static size_t slot_of(const char *key, size_t len)
{
    uint64_t h = ig_fnv1a(key, len, IG_FNV1A_INIT);

    return (size_t)(h ^ (h >> 32)) & (MEMO_SLOTS - 1);
}

struct auth_hasher *auth_hasher_new(const uint8_t secret[AUTH_SECRET_BYTES])
{
    struct auth_hasher *h = calloc(1, sizeof(*h));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};

    if (h == NULL)
        return NULL;
    memcpy(h->secret, secret, AUTH_SECRET_BYTES);
    h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    h->keyed = h->mac != NULL ? EVP_MAC_CTX_new(h->mac) : NULL;
    if (h->keyed == NULL || EVP_MAC_init(h->keyed, secret, AUTH_SECRET_BYTES, params) != 1) {
        auth_hasher_free(h);
        return NULL;
    }
    return h;
}

/* HMAC of KEY from a copy of the keyed context; falls back to the one-shot form. */
static void compute(struct auth_hasher *h, const char *key, size_t len,
                    uint8_t hash[AUTH_HASH_BYTES])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(h->keyed);
    size_t out_len = 0;
    bool is_done = ctx != NULL && EVP_MAC_update(ctx, (const unsigned char *)key, len) == 1 &&
                   EVP_MAC_final(ctx, hash, &out_len, AUTH_HASH_BYTES) == 1 &&
                   out_len == AUTH_HASH_BYTES;

    EVP_MAC_CTX_free(ctx);
    if (!is_done)
        auth_key_hash(h->secret, key, len, hash);
}

void auth_hasher_hash(struct auth_hasher *h, const char *key, size_t len,
                      uint8_t hash[AUTH_HASH_BYTES])
{
    if (len > 0 && len <= MEMO_KEY_BYTES) {
        const struct memo_slot *s = &h->memo[slot_of(key, len)];
        if (s->len == len && CRYPTO_memcmp(s->key, key, len) == 0) {
            memcpy(hash, s->hash, AUTH_HASH_BYTES);
            return;
        }
    }
    compute(h, key, len, hash);
}

void auth_hasher_remember(struct auth_hasher *h, const char *key, size_t len,
                          const uint8_t hash[AUTH_HASH_BYTES])
{
    if (len == 0 || len > MEMO_KEY_BYTES)
        return;
    struct memo_slot *s = &h->memo[slot_of(key, len)];
    OPENSSL_cleanse(s, sizeof(*s));
    memcpy(s->key, key, len);
    memcpy(s->hash, hash, AUTH_HASH_BYTES);
    s->len = (uint8_t)len;
}

void auth_hasher_free(struct auth_hasher *h)
{
    if (h == NULL)
        return;
    EVP_MAC_CTX_free(h->keyed);
    EVP_MAC_free(h->mac);
    OPENSSL_cleanse(h, sizeof(*h));
    free(h);
}
