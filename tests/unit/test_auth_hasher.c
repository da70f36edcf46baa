/* Unit tests for src/auth/auth_hasher: the keyed context and the memo give the same digest
 * as a one-shot HMAC-SHA256, for remembered and unremembered keys alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth_hasher.h"

#include <stdio.h>
#include <string.h>

static const uint8_t secret[AUTH_SECRET_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                  12, 13, 14, 15, 16, 17, 18, 19, 20};

/* Asserts that H hashes KEY to the one-shot HMAC of it. */
static void assert_hashes_like_hmac(struct auth_hasher *h, const char *key)
{
    uint8_t want[AUTH_HASH_BYTES], got[AUTH_HASH_BYTES];

    auth_key_hash(secret, key, strlen(key), want);
    auth_hasher_hash(h, key, strlen(key), got);
    assert_memory_equal(got, want, AUTH_HASH_BYTES);
}

static void test_hasher_matches_hmac_with_and_without_the_memo(void **state)
{
    (void)state;
    struct auth_hasher *h = auth_hasher_new(secret);
    uint8_t hash[AUTH_HASH_BYTES], other[AUTH_HASH_BYTES];
    char key[64], longer[400];

    assert_non_null(h);
    assert_hashes_like_hmac(h, "what do ya want for nothing?");
    assert_hashes_like_hmac(h, "");
    /* Remembered keys come back from the memo with the same digest; hundreds of them
     * overwrite each other's slots without mixing digests up. */
    for (int i = 0; i < 600; i++) {
        snprintf(key, sizeof(key), "ig-key-number-%d", i);
        auth_hasher_hash(h, key, strlen(key), hash);
        auth_hasher_remember(h, key, strlen(key), hash);
        assert_hashes_like_hmac(h, key);
    }
    for (int i = 0; i < 600; i++) {
        snprintf(key, sizeof(key), "ig-key-number-%d", i);
        assert_hashes_like_hmac(h, key);
    }
    /* A key that differs in its last byte from a remembered one is hashed afresh. */
    auth_hasher_hash(h, "ig-key-number-1", 15, hash);
    auth_hasher_hash(h, "ig-key-number-2", 15, other);
    assert_memory_not_equal(hash, other, AUTH_HASH_BYTES);
    assert_hashes_like_hmac(h, "ig-key-number-2");
    /* Keys longer than the memo holds are still hashed right. */
    memset(longer, 'k', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    auth_hasher_hash(h, longer, strlen(longer), hash);
    auth_hasher_remember(h, longer, strlen(longer), hash);
    assert_hashes_like_hmac(h, longer);
    auth_hasher_free(h);
    auth_hasher_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hasher_matches_hmac_with_and_without_the_memo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
