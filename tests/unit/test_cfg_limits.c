/* Unit tests for src/config: listen, limits and the caps on hostile input. */
#include "cfg_test_util.h"
#include "ig_sysmem.h"

static void test_cfg_listen_forms(void **state)
{
    struct cfg *cfg = load_ok("listen: 0.0.0.0:9000\n");

    (void)state;
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9000);
    cfg_free(cfg);
    cfg = load_ok("listen: \"[::1]:8081\"\n");
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 8081);
    cfg_free(cfg);
    cfg = load_ok("listen: \":7000\"\n");
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 7000);
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_listen(void **state)
{
    (void)state;
    expect_error("listen: localhost:99999\n", "config:1:9: listen: expected HOST:PORT, "
                                              "[IPv6]:PORT or :PORT with a port 0-65535");
    expect_error("listen: localhost\n", "config:1:9: listen: expected HOST:PORT, "
                                        "[IPv6]:PORT or :PORT with a port 0-65535");
    expect_error("listen: \"[::1]8080\"\n", "config:1:9: listen: expected HOST:PORT, "
                                            "[IPv6]:PORT or :PORT with a port 0-65535");
}

static void test_cfg_limits(void **state)
{
    struct cfg *cfg = load_ok("healthCheckTimeout: 90\n"
                              "limits:\n"
                              "  max_body_bytes: 32MiB\n"
                              "  max_header_bytes: 8192\n"
                              "  request_timeout_s: 30\n"
                              "  idle_timeout_s: 5\n"
                              "  queue_length: 0\n"
                              "  shutdown_grace_s: 0\n"
                              "  swap_wait_s: 0.25\n");

    (void)state;
    assert_int_equal(cfg->limits.swap_wait_ms, 250);
    assert_int_equal(cfg->limits.max_body_bytes, 32 << 20);
    assert_int_equal(cfg->limits.max_header_bytes, 8192);
    assert_int_equal(cfg->limits.request_timeout_s, 30);
    assert_int_equal(cfg->limits.idle_timeout_s, 5);
    assert_int_equal(cfg->limits.queue_length, 0);
    assert_int_equal(cfg->limits.queue_timeout_s, 90);
    assert_int_equal(cfg->limits.shutdown_grace_s, 0);
    cfg_free(cfg);
    cfg = load_ok("limits: {max_body_bytes: 1 MB, max_header_bytes: 64KiB, queue_timeout_s: 7}\n");
    assert_int_equal(cfg->limits.max_body_bytes, 1000000);
    assert_int_equal(cfg->limits.max_header_bytes, 65536);
    assert_int_equal(cfg->limits.queue_timeout_s, 7);
    assert_int_equal(cfg->limits.swap_wait_ms, 5000);
    cfg_free(cfg);
}

static void test_cfg_budget_and_discovery(void **state)
{
    struct cfg *cfg = load_ok("budget: {ram: 24GiB, vram: 80 GB}\n"
                              "models_dir: [/srv/a, /srv/b]\n"
                              "engine: {ctx_size: 8192, parallel: 2, threads: 3, "
                              "n_gpu_layers: 99, bin: /opt/eng, args: --jinja}\n");

    (void)state;
    assert_int_equal(cfg->budget.ram_bytes, 24ull << 30);
    assert_int_equal(cfg->budget.vram_bytes, 80000000000ull);
    assert_int_equal(cfg->budget.ram_percent, 0);
    assert_int_equal(cfg->discovery.dirs.len, 2);
    assert_string_equal(cfg->discovery.dirs.items[1], "/srv/b");
    assert_int_equal(cfg->discovery.ctx_size, 8192);
    assert_int_equal(cfg->discovery.parallel, 2);
    assert_int_equal(cfg->discovery.threads, 3);
    assert_int_equal(cfg->discovery.n_gpu_layers, 99);
    assert_string_equal(cfg->discovery.engine_bin, "/opt/eng");
    assert_string_equal(cfg->discovery.args, "--jinja");
    cfg_free(cfg);
    cfg = load_ok("budget: {ram: 50%}\nmodels_dir: /srv/m\n");
    assert_int_equal(cfg->budget.ram_percent, 50);
    assert_true(cfg->budget.ram_bytes > 0);
    assert_int_equal(cfg->budget.vram_bytes, 0);
    assert_int_equal(cfg->discovery.ctx_size, 4096);
    assert_int_equal(cfg->discovery.parallel, 4);
    assert_null(cfg->discovery.engine_bin);
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_budget(void **state)
{
    (void)state;
    expect_error("budget: {ram: 120%}\n",
                 "config:1:15: budget.ram: expected a percentage from 1% to 100%, got '120%'");
    if (ig_vram_total_bytes(NULL) == 0) /* this machine has no GPU */
        expect_error("budget: {vram: 50%}\n",
                     "config:1:16: budget.vram: cannot use a percentage: no GPU found "
                     "(nvidia-smi, /sys/class/drm); give a size like 24GiB");
    expect_error("budget: {ram: lots}\n",
                 "config:1:15: budget.ram: expected a size like 24GiB or a percentage, got 'lots'");
    expect_error("budget: 5\n", "config:1:9: budget: expected a mapping, got a scalar");
    expect_error("engine: {parallel: 0}\n", "config:1:20: engine.parallel: must be >= 1, got 0");
    expect_error("models:\n  a:\n    cmd: x ${PORT}\n    vram: 0\n",
                 "config:4:11: vram: expected a size like 8GiB, got '0'");
}

static void test_cfg_model_vram_and_memory(void **state)
{
    struct cfg *cfg = load_ok("models:\n  a: {proxy: 'http://127.0.0.1:9', cmd: x, memory: 2GiB, vram: 6GiB}\n"
                              "  b: {proxy: 'http://127.0.0.1:9', cmd: y}\n");

    (void)state;
    assert_int_equal(cfg->models[0].mem_bytes, 2ull << 30);
    assert_true(cfg->models[0].is_memory_configured);
    assert_int_equal(cfg->models[0].vram_bytes, 6ull << 30);
    assert_true(cfg->models[0].is_vram_configured);
    assert_int_equal(cfg->models[1].vram_bytes, 0);
    assert_false(cfg->models[1].is_vram_configured);
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_limits(void **state)
{
    const char *yaml = "limits:\n"
                       "  max_body_bytes: 12 parsecs\n"
                       "  max_header_bytes: 10\n"
                       "  request_timeout_s: 0\n"
                       "  queue_length: -1\n";

    (void)state;
    expect_error(yaml, "config:2:19: max_body_bytes: expected a size like 16MiB, got '12 parsecs'");
    expect_error(yaml, "config:3:21: max_header_bytes: must be between 1024 and 16777216 bytes");
    expect_error(yaml, "config:4:22: request_timeout_s: must be >= 1, got 0");
    expect_error(yaml, "config:5:17: queue_length: must be >= 0, got -1");
    expect_error("limits: 5\n", "config:1:9: expected a mapping, got a scalar");
    expect_error("limits: {swap_wait_s: -1}\n",
                 "config:1:23: swap_wait_s: expected seconds between 0 and 3600, got '-1'");
    expect_error("limits: {swap_wait_s: soon}\n",
                 "config:1:23: swap_wait_s: expected seconds between 0 and 3600, got 'soon'");
}

static void test_cfg_rejects_oversized_input(void **state)
{
    size_t len = 4u * 1024u * 1024u + 1u;
    char *big = malloc(len + 1);
    struct cfg *cfg = NULL;
    char *cause = NULL;

    (void)state;
    memset(big, '#', len);
    big[len] = '\0';
    assert_int_equal(cfg_load_string(big, len, "big", &cfg, &cause), IG_ECONFIG);
    assert_string_equal(cause, "big: file larger than 4194304 bytes");
    free(cause);
    free(big);
}

static void test_cfg_rejects_deep_nesting(void **state)
{
    char yaml[400];
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(yaml, sizeof(yaml), "x: ");
    for (int i = 0; i < 70; i++)
        yaml[n++] = '[';
    yaml[n] = '\0';
    expect_error(yaml, "config:1:67: nesting deeper than 64 levels");
}

static void test_cfg_rejects_long_string(void **state)
{
    size_t len = 70000;
    char *yaml = malloc(len + 32);

    (void)state;
    memcpy(yaml, "logTimeFormat: ", 15);
    memset(yaml + 15, 'a', len);
    yaml[15 + len] = '\0';
    expect_error(yaml, "config:1:16: string longer than 65536 bytes");
    free(yaml);
}

static void test_cfg_rejects_huge_macro_expansion(void **state)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml), "macros:\n  m0: \"%0500d\"\n", 0);

    (void)state;
    for (int i = 1; i <= 8; i++)
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "  m%d: \"${m%d}${m%d}${m%d}${m%d}\"\n",
                      i, i - 1, i - 1, i - 1, i - 1);
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "logTimeFormat: ${m8}\n");
    expect_error(yaml, "config:11:16: macro expansion longer than 65536 bytes");
}

static void test_cfg_rejects_deep_macro_chain(void **state)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml), "macros:\n  m0: x\n");

    (void)state;
    for (int i = 1; i <= 20; i++)
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "  m%d: \"-${m%d}\"\n", i, i - 1);
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "logTimeFormat: ${m20}\n");
    expect_error(yaml, "config:23:16: macro expansion deeper than 16 levels");
}

static void test_cfg_rejects_alias_bomb(void **state)
{
    char yaml[4096];
    int n = snprintf(yaml, sizeof(yaml), "a0: &a0 {x: 1, y: 2}\n");

    (void)state;
    for (int i = 1; i <= 30; i++)
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "a%d: &a%d [*a%d, *a%d, *a%d]\n", i, i,
                      i - 1, i - 1, i - 1);
    snprintf(yaml + n, sizeof(yaml) - (size_t)n,
             "models:\n  m:\n    cmd: s --port ${PORT}\n    metadata: {bomb: *a30}\n");
    expect_error(yaml, "config:1:5: document too complex (too many aliased nodes)");
}

static void test_cfg_rejects_too_many_models(void **state)
{
    size_t cap = 10001u * 40u + 64u, n;
    char *yaml = malloc(cap);

    (void)state;
    n = (size_t)snprintf(yaml, cap, "models:\n");
    for (int i = 0; i < 10001; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  m%d: {proxy: \"http://h\"}\n", i);
    expect_error(yaml, "config:2:3: more than 10000 models");
    free(yaml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_listen_forms),
        cmocka_unit_test(test_cfg_rejects_bad_listen),
        cmocka_unit_test(test_cfg_limits),
        cmocka_unit_test(test_cfg_budget_and_discovery),
        cmocka_unit_test(test_cfg_rejects_bad_budget),
        cmocka_unit_test(test_cfg_model_vram_and_memory),
        cmocka_unit_test(test_cfg_rejects_bad_limits),
        cmocka_unit_test(test_cfg_rejects_oversized_input),
        cmocka_unit_test(test_cfg_rejects_deep_nesting),
        cmocka_unit_test(test_cfg_rejects_long_string),
        cmocka_unit_test(test_cfg_rejects_huge_macro_expansion),
        cmocka_unit_test(test_cfg_rejects_deep_macro_chain),
        cmocka_unit_test(test_cfg_rejects_alias_bomb),
        cmocka_unit_test(test_cfg_rejects_too_many_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
