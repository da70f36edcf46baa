/*
 * Unit tests for the front server's hardening: the exposure rule, certificate loading, and
 * (in one event loop, with a raw client socket) nosniff and security headers, CORS, URL and
 * connection caps. Each loop test ends with a clean teardown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg.h"
#include "http_cors.h"
#include "http_front.h"
#include "http_server.h"
#include "http_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ exposure -- */

static void test_http_front_loopback_addresses(void **state)
{
    (void)state;
    assert_true(http_front_is_loopback("127.0.0.1"));
    assert_true(http_front_is_loopback("127.4.5.6"));
    assert_true(http_front_is_loopback("::1"));
    assert_true(http_front_is_loopback("::ffff:127.0.0.1"));
    assert_true(http_front_is_loopback("localhost"));
    assert_true(http_front_is_loopback("LocalHost"));
    assert_false(http_front_is_loopback("0.0.0.0"));
    assert_false(http_front_is_loopback("::"));
    assert_false(http_front_is_loopback("128.0.0.1"));
    assert_false(http_front_is_loopback("10.0.0.1"));
    assert_false(http_front_is_loopback("::ffff:10.0.0.1"));
    assert_false(http_front_is_loopback("example.com"));
    assert_false(http_front_is_loopback("localhost.example.com"));
    assert_false(http_front_is_loopback(""));
}

static void test_http_front_refuses_public_listen_without_auth(void **state)
{
    struct cfg *cfg = NULL;
    char *cause = NULL;
    const char *no_auth = "models: {}\n", *with_keys = "apiKeys: [sk-0123456789abcdef]\n";

    (void)state;
    assert_int_equal(cfg_load_string(no_auth, strlen(no_auth), "config", &cfg, &cause), 0);
    assert_int_equal(http_front_check_exposure("127.0.0.1", 8080, cfg, false, &cause), 0);
    assert_int_equal(http_front_check_exposure("::1", 8080, cfg, false, &cause), 0);
    assert_int_equal(http_front_check_exposure("0.0.0.0", 8080, cfg, false, &cause), IG_ECONFIG);
    assert_non_null(strstr(cause, "0.0.0.0:8080"));
    assert_non_null(strstr(cause, "--insecure-no-auth"));
    assert_non_null(strstr(cause, "auth.keys"));
    free(cause);
    cause = NULL;
    assert_int_equal(http_front_check_exposure("::", 9000, cfg, false, &cause), IG_ECONFIG);
    assert_non_null(strstr(cause, "[::]:9000"));
    free(cause);
    cause = NULL;
    assert_int_equal(http_front_check_exposure("0.0.0.0", 8080, cfg, true, &cause), 0);
    assert_null(cause);
    cfg_free(cfg);
    /* With authentication on, any address is fine. */
    assert_int_equal(cfg_load_string(with_keys, strlen(with_keys), "config", &cfg, &cause), 0);
    assert_int_equal(http_front_check_exposure("0.0.0.0", 8080, cfg, false, &cause), 0);
    cfg_free(cfg);
}

/* -------------------------------------------------------- certificates -- */

struct certs {
    char dir[64];
    char cert[96], key[96], other_key[96], encrypted_key[96], garbage[96];
};

/* Writes KEY as PEM to PATH, encrypted with a passphrase when ENCRYPT. */
static void write_key(const char *path, EVP_PKEY *key, bool encrypt)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, encrypt ? EVP_aes_128_cbc() : NULL,
                                          (unsigned char *)(encrypt ? "secret" : NULL),
                                          encrypt ? 6 : 0, NULL, NULL),
                     1);
    fclose(f);
}

/* Makes a self-signed certificate for KEY, valid from now for DAYS. */
static X509 *self_signed(EVP_PKEY *key, long days)
{
    X509 *x = X509_new();
    X509_NAME *name;

    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static int certs_setup(void **state)
{
    struct certs *c = calloc(1, sizeof(*c));
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x;
    FILE *f;

    snprintf(c->dir, sizeof(c->dir), "/tmp/ig-test-front-XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    snprintf(c->cert, sizeof(c->cert), "%s/cert.pem", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/key.pem", c->dir);
    snprintf(c->other_key, sizeof(c->other_key), "%s/other.pem", c->dir);
    snprintf(c->encrypted_key, sizeof(c->encrypted_key), "%s/encrypted.pem", c->dir);
    snprintf(c->garbage, sizeof(c->garbage), "%s/garbage.pem", c->dir);
    x = self_signed(key, 30);
    f = fopen(c->cert, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    write_key(c->key, key, false);
    write_key(c->other_key, other, false);
    write_key(c->encrypted_key, key, true);
    f = fopen(c->garbage, "w");
    assert_non_null(f);
    fputs("this is not PEM\n", f);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    *state = c;
    return 0;
}

static int certs_teardown(void **state)
{
    struct certs *c = *state;
    const char *files[] = {c->cert, c->key, c->other_key, c->encrypted_key, c->garbage};

    for (size_t i = 0; i < 5; i++)
        unlink(files[i]);
    rmdir(c->dir);
    free(c);
    return 0;
}

/* Asserts that loading CERT with KEY fails with a cause containing WANT. */
static void expect_tls_error(const char *cert, const char *key, const char *want)
{
    char *cause = NULL;
    struct http_tls *tls = http_tls_new(cert, key, HTTP_TLS_1_2, &cause);

    assert_null(tls);
    assert_non_null(cause);
    if (strstr(cause, want) == NULL)
        fail_msg("expected '%s' in '%s'", want, cause);
    free(cause);
}

static void test_http_tls_loads_and_describes(void **state)
{
    struct certs *c = *state;
    char *cause = NULL;
    struct http_tls *tls = http_tls_new(c->cert, c->key, HTTP_TLS_1_3, &cause);

    assert_non_null(tls);
    assert_null(cause);
    assert_non_null(strstr(http_tls_summary(tls), "CN=localhost"));
    assert_non_null(strstr(http_tls_summary(tls), "SHA-256 "));
    assert_false(http_tls_is_expired(tls));
    assert_true(http_tls_not_after(tls) > (int64_t)time(NULL) + 29 * 86400);
    http_tls_free(tls);
    http_tls_free(NULL);
}

static void test_http_tls_errors_say_what_is_wrong(void **state)
{
    struct certs *c = *state;
    char missing[128];
    (void)state;

    snprintf(missing, sizeof(missing), "%s/missing.pem", c->dir);
    expect_tls_error(missing, c->key, "tls.cert: cannot read");
    expect_tls_error(c->cert, missing, "tls.key: cannot read");
    expect_tls_error(c->garbage, c->key, "is not a PEM certificate");
    expect_tls_error(c->cert, c->other_key, "does not match the certificate");
    expect_tls_error(c->cert, c->encrypted_key, "is not an unencrypted PEM private key");
    expect_tls_error(c->cert, c->garbage, "is not an unencrypted PEM private key");
}

/* ------------------------------------------------------------ the loop -- */

struct fixture {
    struct event_base *base;
    struct http_server *srv;
    int port;
    int n_handled;
};

/* Answers "/ui" as an HTML page with the security headers, everything else as JSON. */
static void handler(struct http_request *req, void *arg)
{
    struct fixture *f = arg;

    f->n_handled++;
    if (strcmp(http_request_path(req), "/ui") == 0) {
        http_response_add_security_headers(req);
        http_respond(req, 200, "text/html", "<p>hi</p>", 9);
        return;
    }
    http_respond(req, 200, "application/json", "{}", 2);
}

static int loop_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct http_server_options opt = {.max_url_bytes = 512, .max_connections_per_ip = 2};
    const char *origins[] = {"https://app.example"};
    struct http_cors_options cors = {.origins = origins, .n_origins = 1, .max_age_s = 600};

    f->base = event_base_new();
    f->srv = http_server_new(f->base, &opt, handler, f);
    http_server_set_cors(f->srv, http_cors_new(&cors));
    assert_int_equal(http_server_listen(f->srv, "127.0.0.1", 0, NULL), 0);
    f->port = http_server_port(f->srv);
    *state = f;
    return 0;
}

static int loop_teardown(void **state)
{
    struct fixture *f = *state;

    http_server_free(f->srv);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Opens a client connection to the server. */
static int client_connect(struct fixture *f)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Runs the loop until FD has a whole response (closed, or the blank line of a head plus
 * Content-Length bytes) or 5 s pass; returns it (caller frees). */
static char *client_read(struct fixture *f, int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = calloc(1, cap);

    for (int i = 0; i < 5000; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        const char *end, *cl;
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (poll(&p, 1, 1) == 1) {
            ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
        }
        end = strstr(buf, "\r\n\r\n");
        cl = strstr(buf, "Content-Length: ");
        if (end != NULL && (cl == NULL || cl > end) && strncmp(buf, "HTTP/1.1 204", 12) == 0)
            break;
        if (end != NULL && cl != NULL && cl < end &&
            len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            break;
    }
    return buf;
}

/* Sends REQUEST on a new connection and returns the response (caller frees). */
static char *exchange(struct fixture *f, const char *request)
{
    int fd = client_connect(f);
    char *response;

    assert_int_equal(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
    response = client_read(f, fd);
    close(fd);
    event_base_loop(f->base, EVLOOP_NONBLOCK); /* let the server see the close */
    return response;
}

static void test_http_every_response_has_nosniff(void **state)
{
    struct fixture *f = *state;
    char *r = exchange(f, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");

    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "X-Content-Type-Options: nosniff\r\n"));
    assert_null(strstr(r, "X-Frame-Options"));
    free(r);
    /* Errors of the protocol layer too. */
    r = exchange(f, "GET /x HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 400 "));
    assert_non_null(strstr(r, "X-Content-Type-Options: nosniff\r\n"));
    free(r);
}

static void test_http_security_headers_for_html(void **state)
{
    struct fixture *f = *state;
    char *r = exchange(f, "GET /ui HTTP/1.1\r\nHost: a\r\n\r\n");

    assert_non_null(strstr(r, "X-Frame-Options: DENY\r\n"));
    assert_non_null(strstr(r, "Referrer-Policy: no-referrer\r\n"));
    assert_non_null(strstr(r, "Content-Security-Policy: default-src 'self'; "));
    assert_non_null(strstr(r, "frame-ancestors 'none'"));
    assert_non_null(strstr(r, "X-Content-Type-Options: nosniff\r\n"));
    free(r);
}

static void test_http_long_url_gets_414(void **state)
{
    struct fixture *f = *state;
    char request[2048];
    char *r;

    snprintf(request, sizeof(request), "GET /%0600d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    r = exchange(f, request);
    assert_non_null(strstr(r, "HTTP/1.1 414 URI Too Long\r\n"));
    assert_non_null(strstr(r, "\"code\":\"url_too_long\""));
    free(r);
    /* Before the head is complete: a request line alone over the cap. */
    snprintf(request, sizeof(request), "GET /%01000d", 0);
    r = exchange(f, request);
    assert_non_null(strstr(r, "HTTP/1.1 414 "));
    free(r);
    snprintf(request, sizeof(request), "GET /%0400d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    r = exchange(f, request);
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    free(r);
    assert_int_equal(f->n_handled, 1);
}

static void test_http_cors_preflight_and_response_headers(void **state)
{
    struct fixture *f = *state;
    char *r = exchange(f, "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: a\r\n"
                          "Origin: https://app.example\r\n"
                          "Access-Control-Request-Method: POST\r\n"
                          "Access-Control-Request-Headers: authorization, content-type\r\n\r\n");

    assert_non_null(strstr(r, "HTTP/1.1 204 No Content\r\n"));
    assert_null(strstr(r, "Content-Length"));
    assert_non_null(strstr(r, "Access-Control-Allow-Origin: https://app.example\r\n"));
    assert_non_null(strstr(r, "Access-Control-Allow-Headers: authorization, content-type\r\n"));
    assert_non_null(strstr(r, "Access-Control-Max-Age: 600\r\n"));
    free(r);
    r = exchange(f, "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: a\r\n"
                    "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 403 Forbidden\r\n"));
    assert_non_null(strstr(r, "\"code\":\"origin_not_allowed\""));
    assert_null(strstr(r, "Access-Control-Allow-Origin"));
    free(r);
    r = exchange(f, "GET /x HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\n\r\n");
    assert_non_null(strstr(r, "Access-Control-Allow-Origin: https://app.example\r\n"));
    assert_non_null(strstr(r, "Vary: Origin\r\n"));
    free(r);
    r = exchange(f, "GET /x HTTP/1.1\r\nHost: a\r\nOrigin: https://evil.example\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    assert_null(strstr(r, "Access-Control-Allow-Origin"));
    free(r);
    assert_int_equal(f->n_handled, 2); /* preflights never reach the handler */
}

static void test_http_per_ip_cap_answers_503(void **state)
{
    struct fixture *f = *state;
    int a = client_connect(f), b = client_connect(f);
    char *r;

    for (int i = 0; i < 10; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(http_server_connections(f->srv), 2);
    r = exchange(f, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r, "max_connections_per_ip: 2"));
    assert_non_null(strstr(r, "Retry-After: 1\r\n"));
    free(r);
    assert_int_equal(f->n_handled, 0);
    close(a);
    for (int i = 0; i < 100 && http_server_connections(f->srv) > 1; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
    }
    r = exchange(f, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 "));
    free(r);
    close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_front_loopback_addresses),
        cmocka_unit_test(test_http_front_refuses_public_listen_without_auth),
        cmocka_unit_test_setup_teardown(test_http_tls_loads_and_describes, certs_setup,
                                        certs_teardown),
        cmocka_unit_test_setup_teardown(test_http_tls_errors_say_what_is_wrong, certs_setup,
                                        certs_teardown),
        cmocka_unit_test_setup_teardown(test_http_every_response_has_nosniff, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_http_security_headers_for_html, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_http_long_url_gets_414, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(test_http_cors_preflight_and_response_headers, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(test_http_per_ip_cap_answers_503, loop_setup,
                                        loop_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
