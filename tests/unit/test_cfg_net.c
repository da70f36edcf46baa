/* Unit tests for the front server's config: tls, cors and the connection limits. */
#include "cfg_test_util.h"

#include <sys/stat.h>

/* Writes a small file at PATH with MODE. */
static void touch(const char *path, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x\n", f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/* Makes a directory DIR (a mkdtemp() template) holding CERT (0644) and KEY (0600), their
 * paths written into CERT and KEY (64 bytes each). */
static void make_tls_files(char *dir, char *cert, char *key)
{
    assert_non_null(mkdtemp(dir));
    snprintf(cert, 64, "%s/cert.pem", dir);
    snprintf(key, 64, "%s/key.pem", dir);
    touch(cert, 0644);
    touch(key, 0600);
}

/* Removes what make_tls_files() made. */
static void remove_tls_files(const char *dir, const char *cert, const char *key)
{
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

static void test_cfg_net_defaults(void **state)
{
    struct cfg *cfg = load_ok("models: {}\n");

    (void)state;
    assert_null(cfg->tls.cert_path);
    assert_true(cfg->cors.is_enabled);
    assert_true(cfg->cors.is_any_origin);
    assert_int_equal(cfg->cors.origins.len, 0);
    assert_int_equal(cfg->cors.headers.len, 0);
    assert_int_equal(cfg->cors.max_age_s, 86400);
    assert_false(cfg->cors.allow_credentials);
    assert_int_equal(cfg->limits.max_connections, 4096);
    assert_int_equal(cfg->limits.max_connections_per_ip, 512);
    assert_int_equal(cfg->limits.max_url_bytes, 8192);
    assert_int_equal(cfg->limits.header_timeout_s, 10);
    assert_int_equal(cfg->limits.read_timeout_s, 60);
    assert_false(cfg->is_insecure_no_auth);
    assert_false(is_inactive(cfg, "tls"));
    assert_false(is_inactive(cfg, "cors"));
    cfg_free(cfg);
}

static void test_cfg_net_limits(void **state)
{
    struct cfg *cfg = load_ok("limits:\n"
                              "  max_connections: 100\n"
                              "  max_connections_per_ip: 0\n"
                              "  max_url_bytes: 2KiB\n"
                              "  header_timeout_s: 3\n"
                              "  read_timeout_s: 20\n");

    (void)state;
    assert_int_equal(cfg->limits.max_connections, 100);
    assert_int_equal(cfg->limits.max_connections_per_ip, 0);
    assert_int_equal(cfg->limits.max_url_bytes, 2048);
    assert_int_equal(cfg->limits.header_timeout_s, 3);
    assert_int_equal(cfg->limits.read_timeout_s, 20);
    cfg_free(cfg);
}

static void test_cfg_net_rejects_bad_limits(void **state)
{
    (void)state;
    expect_error("limits: {max_connections: 0}\n",
                 "config:1:27: max_connections: must be >= 1, got 0");
    expect_error("limits: {max_url_bytes: 100}\n",
                 "config:1:25: max_url_bytes: must be between 256 and 1048576 bytes");
    expect_error("limits: {header_timeout_s: 0}\n",
                 "config:1:28: header_timeout_s: must be >= 1, got 0");
    expect_error("limits: {max_connections_per_ip: -1}\n",
                 "config:1:34: max_connections_per_ip: must be >= 0, got -1");
}

static void test_cfg_net_tls(void **state)
{
    char dir[] = "/tmp/ig-cfg-net-XXXXXX", cert[64], key[64], yaml[256];
    struct cfg *cfg;

    (void)state;
    make_tls_files(dir, cert, key);
    snprintf(yaml, sizeof(yaml), "tls: {cert: %s, key: %s}\n", cert, key);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->tls.cert_path, cert);
    assert_string_equal(cfg->tls.key_path, key);
    assert_int_equal(cfg->tls.min_version, 12);
    assert_int_equal(cfg->warnings.len, 0);
    cfg_free(cfg);
    snprintf(yaml, sizeof(yaml), "tls: {cert: %s, key: %s, min_version: 1.3}\n", cert, key);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->tls.min_version, 13);
    cfg_free(cfg);
    /* A key every user can read is worth a warning. */
    assert_int_equal(chmod(key, 0644), 0);
    snprintf(yaml, sizeof(yaml), "tls:\n  cert: %s\n  key: %s\n", cert, key);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->warnings.len, 1);
    assert_non_null(strstr(cfg->warnings.items[0], "config:3:8: tls.key: "));
    assert_non_null(strstr(cfg->warnings.items[0], "is readable by every user"));
    cfg_free(cfg);
    remove_tls_files(dir, cert, key);
}

static void test_cfg_net_tls_flags_override_and_survive_reloads(void **state)
{
    char dir[] = "/tmp/ig-cfg-net-XXXXXX", cert[64], key[64], yaml[256];
    struct cfg *cfg, *next;

    (void)state;
    make_tls_files(dir, cert, key);
    snprintf(yaml, sizeof(yaml), "tls: {cert: %s, key: %s, min_version: 1.3}\n", cert, key);
    cfg = load_ok(yaml);
    assert_false(cfg->tls.is_from_command_line);
    assert_int_equal(cfg_set_tls_files(cfg, "/flag/cert.pem", key), 0);
    assert_string_equal(cfg->tls.cert_path, "/flag/cert.pem");
    assert_string_equal(cfg->tls.key_path, key);
    assert_int_equal(cfg->tls.min_version, 13); /* still the file's */
    assert_true(cfg->tls.is_from_command_line);
    assert_int_equal(cfg->warnings.len, 0);
    cfg->is_insecure_no_auth = true;
    /* A reload of a file without tls keeps the flags' files and --insecure-no-auth. */
    next = load_ok("models: {}\n");
    assert_int_equal(cfg_keep_command_line(next, cfg), 0);
    assert_string_equal(next->tls.cert_path, "/flag/cert.pem");
    assert_string_equal(next->tls.key_path, key);
    assert_true(next->tls.is_from_command_line);
    assert_true(next->is_insecure_no_auth);
    cfg_free(cfg);
    /* Without flags a reload takes the file as it is; a world-readable flag key warns. */
    cfg_free(next);
    cfg = load_ok("models: {}\n");
    next = load_ok("models: {}\n");
    assert_int_equal(cfg_keep_command_line(next, cfg), 0);
    assert_null(next->tls.cert_path);
    assert_false(next->tls.is_from_command_line);
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(cfg_set_tls_files(next, cert, key), 0);
    assert_int_equal(next->warnings.len, 1);
    assert_non_null(strstr(next->warnings.items[0], "--tls-key-file: "));
    assert_non_null(strstr(next->warnings.items[0], "is readable by every user"));
    cfg_free(cfg);
    cfg_free(next);
    remove_tls_files(dir, cert, key);
}

static void test_cfg_net_rejects_bad_tls(void **state)
{
    (void)state;
    expect_error("tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\n",
                 "config:1:13: tls.cert: cannot read /nonexistent/cert.pem: No such file or "
                 "directory");
    expect_error("tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\n",
                 "config:1:41: tls.key: cannot read /nonexistent/key.pem: No such file or "
                 "directory");
    expect_error("tls: {cert: /etc/hostname}\n",
                 "config:1:6: tls: needs both cert (PEM certificate chain) and key (PEM private "
                 "key)");
    expect_error("tls: {cert: /etc/hostname, key: /etc/hostname, min_version: 1.1}\n",
                 "config:1:61: tls.min_version: expected \"1.2\" or \"1.3\", got '1.1'");
    expect_error("tls: /etc/hostname\n", "config:1:6: tls: expected a mapping, got a scalar");
}

static void test_cfg_net_cors(void **state)
{
    struct cfg *cfg = load_ok("cors:\n"
                              "  origins: [https://app.example.com, \"https://*.corp.example\"]\n"
                              "  headers: [Authorization, Content-Type]\n"
                              "  max_age_s: 600\n"
                              "  credentials: true\n");

    (void)state;
    assert_true(cfg->cors.is_enabled);
    assert_false(cfg->cors.is_any_origin);
    assert_int_equal(cfg->cors.origins.len, 2);
    assert_string_equal(cfg->cors.origins.items[1], "https://*.corp.example");
    assert_int_equal(cfg->cors.headers.len, 2);
    assert_int_equal(cfg->cors.max_age_s, 600);
    assert_true(cfg->cors.allow_credentials);
    cfg_free(cfg);
    cfg = load_ok("cors: false\n");
    assert_false(cfg->cors.is_enabled);
    cfg_free(cfg);
    cfg = load_ok("cors: {origins: \"*\"}\n");
    assert_true(cfg->cors.is_any_origin);
    cfg_free(cfg);
    cfg = load_ok("cors: {origins: http://localhost:5173}\n");
    assert_false(cfg->cors.is_any_origin);
    assert_int_equal(cfg->cors.origins.len, 1);
    cfg_free(cfg);
    cfg = load_ok("cors: {origins: []}\n"); /* no origin at all */
    assert_false(cfg->cors.is_any_origin);
    assert_int_equal(cfg->cors.origins.len, 0);
    cfg_free(cfg);
}

static void test_cfg_net_rejects_bad_cors(void **state)
{
    (void)state;
    expect_error("cors: {origins: [https://a.example/]}\n",
                 "config:1:17: cors.origins: 'https://a.example/' is not an origin: "
                 "scheme://host[:port] without a path (drop the trailing '/') (or \"*\", or "
                 "\"null\")");
    expect_error("cors: {origins: [a.example]}\n",
                 "config:1:17: cors.origins: 'a.example' is not an origin: scheme://host[:port] "
                 "without a path (or \"*\", or \"null\")");
    expect_error("cors: {headers: [\"X Bad\"]}\n",
                 "config:1:17: cors.headers: 'X Bad' is not a header name");
    expect_error("cors: {credentials: true}\n",
                 "config:1:7: cors: credentials: true needs a list of origins, not \"*\" (every "
                 "website could then make requests with the user's cookies)");
    expect_error("cors: {max_age_s: 100000}\n",
                 "config:1:19: max_age_s: must be <= 86400, got 100000");
    expect_error("cors: maybe\n", "config:1:7: cors: expected a boolean, got 'maybe'");
}

static void test_cfg_nats(void **state)
{
    struct cfg *cfg = load_ok("nats: nats://127.0.0.1:4222,tls://b:4223\n");

    (void)state;
    assert_string_equal(cfg->nats.urls, "nats://127.0.0.1:4222,tls://b:4223");
    assert_null(cfg->nats.strategy);
    assert_int_equal(cfg_nats_set_urls(cfg, "nats://c:1"), 0);
    assert_string_equal(cfg->nats.urls, "nats://c:1");
    assert_int_equal(cfg_nats_set_urls(cfg, "http://c:1"), -1);
    assert_false(is_inactive(cfg, "nats"));
    cfg_free(cfg);
    cfg = load_ok("nats:\n"
                  "  url: [nats://a:1, nats://b:2]\n"
                  "  name: gw-1\n"
                  "  token: t0k\n"
                  "  strategy: prefix-affinity\n");
    assert_string_equal(cfg->nats.urls, "nats://a:1,nats://b:2");
    assert_string_equal(cfg->nats.name, "gw-1");
    assert_string_equal(cfg->nats.token, "t0k");
    assert_string_equal(cfg->nats.strategy, "prefix-affinity");
    cfg_free(cfg);
    expect_error("nats: {name: x}\n", "config:1:7: nats: needs url (nats://HOST:PORT)");
    expect_error("nats: http://a:1\n", "config:1:7: nats.url: expected nats://HOST:PORT or tls://HOST:PORT "
                                       "URLs (at most 32, comma-separated)");
    expect_error("nats: {url: nats://a:1, strategy: fastest}\n",
                 "config:1:35: nats.strategy: expected least-loaded, round-robin, priority or "
                 "prefix-affinity, got 'fastest'");
    expect_error("nats: {url: nats://a:1, tls: {cert: c.pem}}\n",
                 "config:1:30: nats.tls: cert and key go together");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_net_defaults),
        cmocka_unit_test(test_cfg_net_limits),
        cmocka_unit_test(test_cfg_net_rejects_bad_limits),
        cmocka_unit_test(test_cfg_net_tls),
        cmocka_unit_test(test_cfg_net_rejects_bad_tls),
        cmocka_unit_test(test_cfg_net_cors),
        cmocka_unit_test(test_cfg_net_rejects_bad_cors),
        cmocka_unit_test(test_cfg_net_tls_flags_override_and_survive_reloads),
        cmocka_unit_test(test_cfg_nats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
