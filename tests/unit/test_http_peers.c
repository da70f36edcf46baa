/* Unit tests for the per-address connection counts (limits.max_connections_per_ip). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Makes a key for the IPv4 address TEXT. */
static struct http_peer_key v4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};
    struct http_peer_key key;

    assert_int_equal(inet_pton(AF_INET, text, &sa.sin_addr), 1);
    assert_true(http_peer_key_from((struct sockaddr *)&sa, &key));
    return key;
}

/* Makes a key for the IPv6 address TEXT. */
static struct http_peer_key v6(const char *text)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(99)};
    struct http_peer_key key;

    assert_int_equal(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
    assert_true(http_peer_key_from((struct sockaddr *)&sa, &key));
    return key;
}

static void test_http_peers_counts_per_address(void **state)
{
    struct http_peers *p = http_peers_new();
    struct http_peer_key a = v4("10.0.0.1"), b = v4("10.0.0.2");
    (void)state;

    assert_non_null(p);
    assert_int_equal(http_peers_count(p, &a), 0);
    assert_int_equal(http_peers_add(p, &a), 0);
    assert_int_equal(http_peers_add(p, &a), 0);
    assert_int_equal(http_peers_add(p, &b), 0);
    assert_int_equal(http_peers_count(p, &a), 2);
    assert_int_equal(http_peers_count(p, &b), 1);
    assert_int_equal(http_peers_addresses(p), 2);
    http_peers_remove(p, &a);
    assert_int_equal(http_peers_count(p, &a), 1);
    http_peers_remove(p, &a);
    assert_int_equal(http_peers_count(p, &a), 0);
    assert_int_equal(http_peers_addresses(p), 1);
    http_peers_remove(p, &a); /* not counted: no effect */
    assert_int_equal(http_peers_count(p, &b), 1);
    http_peers_free(p);
    http_peers_free(NULL);
}

static void test_http_peers_ipv4_mapped_is_the_same_client(void **state)
{
    struct http_peers *p = http_peers_new();
    struct http_peer_key a = v4("192.0.2.7"), mapped = v6("::ffff:192.0.2.7"), other = v6("::1");
    (void)state;

    assert_memory_equal(a.bytes, mapped.bytes, sizeof(a.bytes));
    assert_int_equal(http_peers_add(p, &a), 0);
    assert_int_equal(http_peers_count(p, &mapped), 1);
    assert_int_equal(http_peers_count(p, &other), 0);
    http_peers_free(p);
}

static void test_http_peers_many_addresses(void **state)
{
    struct http_peers *p = http_peers_new();
    char text[32];
    (void)state;

    for (int i = 0; i < 5000; i++) {
        snprintf(text, sizeof(text), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
        struct http_peer_key k = v4(text);
        assert_int_equal(http_peers_add(p, &k), 0);
    }
    assert_int_equal(http_peers_addresses(p), 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(text, sizeof(text), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
        struct http_peer_key k = v4(text);
        assert_int_equal(http_peers_count(p, &k), 1);
        http_peers_remove(p, &k);
    }
    assert_int_equal(http_peers_addresses(p), 2500);
    http_peers_free(p); /* frees what is left */
}

static void test_http_peers_other_families_have_no_key(void **state)
{
    struct sockaddr sa = {.sa_family = AF_UNIX};
    struct http_peer_key key;
    (void)state;
    assert_false(http_peer_key_from(&sa, &key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_peers_counts_per_address),
        cmocka_unit_test(test_http_peers_ipv4_mapped_is_the_same_client),
        cmocka_unit_test(test_http_peers_many_addresses),
        cmocka_unit_test(test_http_peers_other_families_have_no_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
