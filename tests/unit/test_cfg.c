/* Unit tests for src/config: loading, macros, validation. */
#include "cfg_test_util.h"

static void test_cfg_empty_document_gives_defaults(void **state)
{
    struct cfg *cfg = load_ok("");

    (void)state;
    assert_int_equal(cfg->n_models, 0);
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_int_equal(cfg->health_check_timeout_s, 120);
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->global_ttl_s, 0);
    assert_int_equal(cfg->start_port, 5800);
    assert_int_equal(cfg->limits.max_body_bytes, 16 << 20);
    assert_int_equal(cfg->limits.max_header_bytes, 64 << 10);
    assert_int_equal(cfg->limits.request_timeout_s, 600);
    assert_int_equal(cfg->limits.idle_timeout_s, 60);
    assert_int_equal(cfg->limits.queue_length, 64);
    assert_int_equal(cfg->limits.queue_timeout_s, 120);
    assert_int_equal(cfg->limits.shutdown_grace_s, 10);
    cfg_free(cfg);
}

static void test_cfg_loads_model_with_defaults(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  m1:\n"
                              "    cmd: server --port ${PORT}\n");
    const struct cfg_model *m = &cfg->models[0];

    (void)state;
    assert_int_equal(cfg->n_models, 1);
    assert_string_equal(m->id, "m1");
    assert_string_equal(m->cmd, "server --port 5800");
    assert_string_equal(m->proxy, "http://localhost:5800");
    assert_string_equal(m->check_endpoint, "/health");
    assert_int_equal(m->port, 5800);
    assert_int_equal(m->ttl_s, 0);
    assert_int_equal(m->line, 2);
    assert_false(m->unlisted);
    assert_null(m->cmd_stop);
    assert_null(m->metadata);
    assert_null(m->set_params);
    assert_int_equal(cfg->n_groups, 0);
    assert_null(cfg_model_group(cfg, "m1"));
    cfg_free(cfg);
}

static void test_cfg_rejects_yaml_syntax_error(void **state)
{
    (void)state;
    expect_error("models:\n  a: [1, 2\n", "config:3:1: YAML syntax error: did not find expected "
                                          "',' or ']' while parsing a flow sequence");
    expect_error("a: b: c\n",
                 "config:1:5: YAML syntax error: mapping values are not allowed in this context");
}

static void test_cfg_rejects_negative_ttl(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  m:\n"
                 "    cmd: s --port ${PORT}\n"
                 "    ttl: -5\n",
                 "config:4:10: ttl: must be >= -1, got -5");
}

static void test_cfg_ttl_uses_global_ttl_by_default(void **state)
{
    struct cfg *cfg = load_ok("globalTTL: 300\n"
                              "models:\n"
                              "  a: {cmd: 's --port ${PORT}'}\n"
                              "  b: {cmd: 's --port ${PORT}', ttl: -1}\n"
                              "  c: {cmd: 's --port ${PORT}', ttl: 0}\n"
                              "  d: {cmd: 's --port ${PORT}', ttl: 30}\n");

    (void)state;
    assert_int_equal(cfg->global_ttl_s, 300);
    assert_int_equal(cfg_find_model(cfg, "a")->ttl_s, 300);
    assert_int_equal(cfg_find_model(cfg, "b")->ttl_s, 300);
    assert_int_equal(cfg_find_model(cfg, "c")->ttl_s, 0);
    assert_int_equal(cfg_find_model(cfg, "d")->ttl_s, 30);
    cfg_free(cfg);
}

static void test_cfg_rejects_negative_global_ttl(void **state)
{
    (void)state;
    expect_error("globalTTL: -1\n", "config:1:12: globalTTL: must be >= 0, got -1");
}

static void test_cfg_health_check_timeout_has_minimum_15(void **state)
{
    struct cfg *cfg = load_ok("healthCheckTimeout: 5\n");

    (void)state;
    assert_int_equal(cfg->health_check_timeout_s, 15);
    assert_int_equal(cfg->limits.queue_timeout_s, 15);
    cfg_free(cfg);
    cfg = load_ok("healthCheckTimeout: 500\n");
    assert_int_equal(cfg->health_check_timeout_s, 500);
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_start_port(void **state)
{
    (void)state;
    expect_error("startPort: 0\n", "config:1:12: startPort: must be >= 1, got 0");
    expect_error("startPort: 70000\n", "config:1:12: startPort: must be <= 65535, got 70000");
    expect_error("startPort: abc\n", "config:1:12: startPort: expected an integer, got 'abc'");
}

static void test_cfg_ports_assigned_in_sorted_id_order(void **state)
{
    struct cfg *cfg =
        load_ok("startPort: 9000\n"
                "models:\n"
                "  zeta: {cmd: 's --port ${PORT}'}\n"
                "  alpha: {cmd: 's --port ${PORT}'}\n"
                "  fixed: {cmd: s --port 7000, proxy: 'http://127.0.0.1:7000'}\n"
                "  mid: {cmd: 's -p ${PORT}', proxy: 'http://127.0.0.1:${PORT}/x'}\n");

    (void)state;
    assert_string_equal(cfg->models[0].id, "zeta");
    assert_int_equal(cfg_find_model(cfg, "alpha")->port, 9000);
    assert_int_equal(cfg_find_model(cfg, "mid")->port, 9001);
    assert_int_equal(cfg_find_model(cfg, "zeta")->port, 9002);
    assert_int_equal(cfg_find_model(cfg, "fixed")->port, 0);
    assert_string_equal(cfg_find_model(cfg, "fixed")->proxy, "http://127.0.0.1:7000");
    assert_string_equal(cfg_find_model(cfg, "mid")->proxy, "http://127.0.0.1:9001/x");
    cfg_free(cfg);
}

static void test_cfg_port_from_macro_counts(void **state)
{
    struct cfg *cfg = load_ok("macros:\n"
                              "  srv: server --port ${PORT}\n"
                              "models:\n"
                              "  a:\n"
                              "    cmd: ${srv} -m a\n");

    (void)state;
    assert_string_equal(cfg->models[0].cmd, "server --port 5800 -m a");
    assert_int_equal(cfg->models[0].port, 5800);
    cfg_free(cfg);
}

static void test_cfg_rejects_port_exhaustion(void **state)
{
    (void)state;
    expect_error("startPort: 65535\n"
                 "models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "  b: {cmd: 's --port ${PORT}'}\n",
                 "config:4:3: model 'b': no port left for ${PORT} (startPort 65535)");
}

static void test_cfg_rejects_proxy_port_without_cmd_port(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: s --port 9000\n"
                 "    proxy: http://localhost:${PORT}\n",
                 "config:4:12: ${PORT} is only available when the model's cmd uses ${PORT}");
}

static void test_cfg_rejects_missing_cmd_and_proxy(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    name: nothing\n",
                 "config:2:3: model 'a' needs a cmd or a proxy");
    expect_error("models:\n"
                 "  a:\n",
                 "config:2:3: model 'a' needs a cmd or a proxy");
}

static void test_cfg_rejects_cmd_without_port_and_without_proxy(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: server --port 9000\n",
                 "config:2:3: model 'a': proxy is required when cmd does not use ${PORT}");
}

static void test_cfg_proxy_only_model_has_no_port(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  remote:\n"
                              "    proxy: https://api.example.com\n"
                              "    checkEndpoint: none\n");

    (void)state;
    assert_null(cfg->models[0].cmd);
    assert_int_equal(cfg->models[0].port, 0);
    assert_string_equal(cfg->models[0].check_endpoint, "none");
    cfg_free(cfg);
}

static void test_cfg_rejects_non_http_proxy(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    proxy: ftp://x\n",
                 "config:3:12: proxy: must be an http:// or https:// URL, got 'ftp://x'");
}


















static void test_cfg_rejects_duplicate_alias(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: s --port ${PORT}\n"
                 "    aliases: [gpt-4]\n"
                 "  b:\n"
                 "    cmd: s --port ${PORT}\n"
                 "    aliases:\n"
                 "      - gpt-4\n",
                 "config:8:9: duplicate alias 'gpt-4' (already used by model 'a')");
}

static void test_cfg_rejects_alias_equal_to_other_model_id(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: s --port ${PORT}\n"
                 "    aliases: [b]\n"
                 "  b:\n"
                 "    cmd: s --port ${PORT}\n",
                 "config:4:15: alias 'b' of model 'a' is the id of another model");
}

static void test_cfg_rejects_duplicate_keys(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "  a: {cmd: 't --port ${PORT}'}\n",
                 "config:3:3: duplicate key 'a' (first defined at line 2)");
}

static void test_cfg_unknown_keys_are_warnings(void **state)
{
    struct cfg *cfg = load_ok("colour: blue\n"
                              "models:\n"
                              "  a:\n"
                              "    cmd: s --port ${PORT}\n"
                              "    flavour: x\n"
                              "limits:\n"
                              "  max_pizza: 3\n");

    (void)state;
    assert_int_equal(cfg->warnings.len, 3);
    expect_warning(cfg, "config:1:1: unknown key 'colour'");
    expect_warning(cfg, "config:5:5: unknown key 'flavour'");
    expect_warning(cfg, "config:7:3: unknown key 'max_pizza'");
    cfg_free(cfg);
}

static void test_cfg_records_inactive_keys(void **state)
{
    struct cfg *cfg = load_ok("sendLoadingState: true\n"
                              "logToStdout: both\n"
                              "metricsMaxInMemory: 10\n"
                              "hooks: {on_startup: {preload: [a]}}\n"
                              "models_dir: /models\n"
                              "nats: {url: nats://x:4222}\n"
                              "models:\n"
                              "  a:\n"
                              "    cmd: s --port ${PORT}\n"
                              "    sendLoadingState: false\n"
                              "    unloadTimeout: 5\n"
                              "    capabilities: {in: [text], tools: true}\n"
                              "    filters:\n"
                              "      setParamsByID:\n"
                              "        \"${MODEL_ID}:high\": {reasoning_effort: high}\n");

    (void)state;
    assert_true(is_inactive(cfg, "sendLoadingState"));
    assert_true(is_inactive(cfg, "logToStdout"));
    assert_true(is_inactive(cfg, "metricsMaxInMemory"));
    assert_false(is_inactive(cfg, "hooks"));
    assert_int_equal(cfg->preload.len, 1);
    assert_string_equal(cfg->preload.items[0], "a");
    assert_false(is_inactive(cfg, "models_dir"));
    assert_int_equal(cfg->discovery.dirs.len, 1);
    assert_string_equal(cfg->discovery.dirs.items[0], "/models");
    assert_false(is_inactive(cfg, "nats"));
    assert_true(is_inactive(cfg, "models.a.sendLoadingState"));
    assert_false(is_inactive(cfg, "models.a.unloadTimeout"));
    assert_int_equal(cfg->models[0].unload_timeout_s, 5);
    assert_int_equal(cfg->unload_timeout_s, 10);
    assert_true(is_inactive(cfg, "models.a.capabilities"));
    assert_true(is_inactive(cfg, "models.a.filters.setParamsByID"));
    assert_false(is_inactive(cfg, "models"));
    assert_int_equal(cfg->warnings.len, 0);
    cfg_free(cfg);
}

static void test_cfg_rejects_wrong_types(void **state)
{
    const char *yaml = "models:\n"
                       "  a:\n"
                       "    cmd: s --port ${PORT}\n"
                       "    ttl: soon\n"
                       "    unlisted: maybe\n"
                       "    aliases: x\n"
                       "    name: [x]\n"
                       "    concurrencyLimit: -1\n"
                       "includeAliasesInList: 3\n"
                       "models_dir: /x\n";

    (void)state;
    expect_error(yaml, "config:4:10: ttl: expected an integer, got 'soon'");
    expect_error(yaml, "config:5:15: unlisted: expected a boolean, got 'maybe'");
    expect_error(yaml, "config:6:14: aliases: expected a list of strings, got a scalar");
    expect_error(yaml, "config:7:11: name: expected a string, got a list");
    expect_error(yaml, "config:8:23: concurrencyLimit: must be >= 0, got -1");
    expect_error(yaml, "config:9:23: includeAliasesInList: expected a boolean, got '3'");
}

static void test_cfg_collects_all_errors(void **state)
{
    char *cause = NULL;
    struct cfg *cfg = load("globalTTL: -3\n"
                           "startPort: 0\n"
                           "models:\n"
                           "  a: {cmd: 's ${x}', ttl: -9}\n",
                           &cause);

    (void)state;
    assert_null(cfg);
    assert_string_equal(cause, "config:1:12: globalTTL: must be >= 0, got -3\n"
                               "config:2:12: startPort: must be >= 1, got 0\n"
                               "config:4:12: unknown macro '${x}'\n"
                               "config:4:27: ttl: must be >= -1, got -9");
    free(cause);
}

static void test_cfg_groups(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  a: {cmd: 's --port ${PORT}'}\n"
                              "  b: {cmd: 's --port ${PORT}'}\n"
                              "  c: {cmd: 's --port ${PORT}'}\n"
                              "groups:\n"
                              "  pair:\n"
                              "    members: [a, b]\n"
                              "  forever:\n"
                              "    swap: false\n"
                              "    exclusive: false\n"
                              "    persistent: true\n"
                              "    members: [c]\n");
    const struct cfg_group *g;

    (void)state;
    assert_int_equal(cfg->n_groups, 2);
    g = cfg_model_group(cfg, "b");
    assert_non_null(g);
    assert_string_equal(g->id, "pair");
    assert_true(g->swap);
    assert_true(g->exclusive);
    assert_false(g->persistent);
    assert_int_equal(g->line, 6);
    g = cfg_model_group(cfg, "c");
    assert_string_equal(g->id, "forever");
    assert_false(g->swap);
    assert_false(g->exclusive);
    assert_true(g->persistent);
    assert_null(cfg_model_group(cfg, "zzz"));
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_group_members(void **state)
{
    const char *yaml = "models:\n"
                       "  a: {cmd: 's --port ${PORT}'}\n"
                       "  b: {cmd: 's --port ${PORT}'}\n"
                       "groups:\n"
                       "  g1:\n"
                       "    members: [a, ghost, a]\n"
                       "  g2:\n"
                       "    members: [a]\n"
                       "  g3:\n"
                       "    swap: true\n";

    (void)state;
    expect_error(yaml, "config:6:18: group 'g1': unknown model 'ghost'");
    expect_error(yaml, "config:6:25: duplicate member 'a' in group 'g1'");
    expect_error(yaml, "config:8:15: model 'a' is in groups 'g1' and 'g2'");
    expect_error(yaml, "config:9:3: group 'g3' has no members");
}

static void test_cfg_routing_groups_are_active(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  a: {cmd: 's --port ${PORT}'}\n"
                              "routing:\n"
                              "  router:\n"
                              "    use: group\n"
                              "    settings:\n"
                              "      groups:\n"
                              "        g: {swap: false, members: [a]}\n"
                              "  scheduler:\n"
                              "    use: fifo\n");

    (void)state;
    assert_int_equal(cfg->n_groups, 1);
    assert_false(cfg_model_group(cfg, "a")->swap);
    assert_false(is_inactive(cfg, "routing"));
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_routing(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "groups:\n"
                 "  g: {members: [a]}\n"
                 "routing:\n"
                 "  router:\n"
                 "    use: group\n",
                 "config:7:5: config uses both the legacy top-level 'matrix'/'groups' keys and "
                 "'routing.router'; move them into 'routing.router'");
    expect_error("routing:\n  router:\n    use: magic\n",
                 "config:3:10: routing.router.use: unknown router 'magic' (valid: group, matrix)");
    expect_error("routing:\n  router:\n    use: matrix\n",
                 "config:3:5: routing.router.use is 'matrix' but routing.router.settings.matrix "
                 "is not set");
    expect_error("routing:\n  scheduler:\n    use: lifo\n",
                 "config:3:10: routing.scheduler.use: unknown scheduler 'lifo' (valid: fifo)");
    expect_error("routing:\n"
                 "  scheduler:\n"
                 "    settings: {fifo: {priority: {ghost: 3}}}\n",
                 "config:3:34: routing.scheduler.settings.fifo.priority: unknown model 'ghost'");
}

static void test_cfg_matrix(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  gemma: {cmd: 's --port ${PORT}'}\n"
                              "  qwen: {cmd: 's --port ${PORT}'}\n"
                              "  tts: {cmd: 's --port ${PORT}'}\n"
                              "matrix:\n"
                              "  vars: {g: gemma, q: qwen}\n"
                              "  evict_costs: {tts: 50}\n"
                              "  sets:\n"
                              "    llms: \"g | q\"\n"
                              "    voice: \"(+llms) & tts\"\n");

    (void)state;
    assert_false(is_inactive(cfg, "matrix"));
    assert_int_equal(cfg->n_groups, 0);
    /* Models sort by id: gemma 0, qwen 1, tts 2. llms → [g] [q]; voice → [g,tts] [q,tts]. */
    assert_true(cfg->matrix.is_active);
    assert_int_equal(cfg->matrix.n_sets, 4);
    assert_int_equal(cfg->matrix.sets[0].n, 1);
    assert_int_equal(cfg->matrix.sets[1].n, 1);
    assert_int_equal(cfg->matrix.sets[2].n, 2);
    assert_int_equal(cfg->matrix.sets[3].n, 2);
    size_t gemma = (size_t)(cfg_find_model(cfg, "gemma") - cfg->models);
    size_t qwen = (size_t)(cfg_find_model(cfg, "qwen") - cfg->models);
    size_t tts = (size_t)(cfg_find_model(cfg, "tts") - cfg->models);
    assert_true(cfg_matrix_set_has(&cfg->matrix.sets[0], gemma));
    assert_true(cfg_matrix_set_has(&cfg->matrix.sets[1], qwen));
    assert_true(cfg_matrix_set_has(&cfg->matrix.sets[2], gemma) &&
                cfg_matrix_set_has(&cfg->matrix.sets[2], tts));
    assert_true(cfg_matrix_set_has(&cfg->matrix.sets[3], qwen) &&
                cfg_matrix_set_has(&cfg->matrix.sets[3], tts));
    assert_int_equal(cfg->matrix.evict_costs[tts], 50);
    assert_int_equal(cfg->matrix.evict_costs[gemma], 1);
    cfg_free(cfg);
    /* Precedence: & binds tighter than |; a circular +reference is an error. */
    cfg = load_ok("models:\n"
                  "  a: {cmd: 's --port ${PORT}'}\n"
                  "  b: {cmd: 's --port ${PORT}'}\n"
                  "  c: {cmd: 's --port ${PORT}'}\n"
                  "matrix:\n"
                  "  sets:\n"
                  "    s: \"a | b & c\"\n");
    assert_int_equal(cfg->matrix.n_sets, 2);
    assert_int_equal(cfg->matrix.sets[0].n, 1);
    assert_int_equal(cfg->matrix.sets[1].n, 2);
    cfg_free(cfg);
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "matrix:\n"
                 "  sets:\n"
                 "    s1: \"a & +s2\"\n"
                 "    s2: \"+s1\"\n",
                 "config:5:9: matrix: set reference '+s1' is circular");
    /* Fan-out through +refs is bounded: 8^6 inlined factors is refused, not ground through. */
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "matrix:\n"
                 "  sets:\n"
                 "    s0: \"a\"\n"
                 "    s1: \"+s0&+s0&+s0&+s0&+s0&+s0&+s0&+s0\"\n"
                 "    s2: \"+s1&+s1&+s1&+s1&+s1&+s1&+s1&+s1\"\n"
                 "    s3: \"+s2&+s2&+s2&+s2&+s2&+s2&+s2&+s2\"\n"
                 "    s4: \"+s3&+s3&+s3&+s3&+s3&+s3&+s3&+s3\"\n"
                 "    s5: \"+s4&+s4&+s4&+s4&+s4&+s4&+s4&+s4\"\n"
                 "    s6: \"+s5&+s5&+s5&+s5&+s5&+s5&+s5&+s5\"\n",
                 "config:11:9: matrix: set expression too complex to expand");
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "matrix:\n"
                 "  vars: {x: ghost}\n"
                 "  evict_costs: {a: 0}\n"
                 "  sets:\n"
                 "    s1: \"a & (x | y\"\n"
                 "    s2: \"a & nobody\"\n",
                 "config:4:13: matrix.vars: 'x' references unknown model 'ghost'");
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "matrix:\n"
                 "  sets:\n"
                 "    s1: \"a & (a | a\"\n"
                 "    s2: \"a & nobody\"\n",
                 "config:5:9: matrix: invalid set expression 'a & (a | a'");
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "matrix:\n"
                 "  evict_costs: {a: 0}\n"
                 "  sets:\n"
                 "    s2: \"a & nobody\"\n",
                 "config:6:9: matrix: unknown var or model 'nobody'");
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "matrix:\n"
                 "  evict_costs: {a: 0}\n"
                 "  sets: {s: a}\n",
                 "config:4:20: evict_costs: must be >= 1, got 0");
}











static void test_cfg_yaml_anchors_and_merge_keys(void **state)
{
    struct cfg *cfg = load_ok("x-base: &base\n"
                              "  ttl: 60\n"
                              "  env: [\"A=1\"]\n"
                              "  checkEndpoint: /ready\n"
                              "models:\n"
                              "  a:\n"
                              "    <<: *base\n"
                              "    cmd: s --port ${PORT}\n"
                              "    ttl: 5\n");

    (void)state;
    assert_int_equal(cfg->models[0].ttl_s, 5);
    assert_string_equal(cfg->models[0].env.items[0], "A=1");
    assert_string_equal(cfg->models[0].check_endpoint, "/ready");
    cfg_free(cfg);
}

static void test_cfg_filters(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  a:\n"
                              "    cmd: s --port ${PORT}\n"
                              "    filters:\n"
                              "      stripParams: \"top_p, temperature,model, ,top_p\"\n"
                              "      setParams: {temperature: 0.5, model: evil, stop: [\"x\"]}\n"
                              "  b:\n"
                              "    cmd: s --port ${PORT}\n"
                              "    filters: {strip_params: \"seed\"}\n");
    char *dump = json_dumps(cfg->models[0].set_params,
                            JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(15));

    (void)state;
    assert_int_equal(cfg->models[0].strip_params.len, 2);
    assert_string_equal(cfg->models[0].strip_params.items[0], "temperature");
    assert_string_equal(cfg->models[0].strip_params.items[1], "top_p");
    assert_string_equal(dump, "{\"stop\":[\"x\"],\"temperature\":0.5}");
    assert_string_equal(cfg->models[1].strip_params.items[0], "seed");
    free(dump);
    cfg_free(cfg);
}

static void test_cfg_rejects_bad_model_fields(void **state)
{
    const char *yaml = "models:\n"
                       "  a:\n"
                       "    cmd: s --port ${PORT}\n"
                       "    checkEndpoint: health\n"
                       "    env: [\"NOVALUE\", \"=x\", \"OK=1\"]\n"
                       "    filters: {setParams: [1]}\n"
                       "    metadata: 5\n"
                       "    capabilities: {in: [smell]}\n"
                       "  b:\n"
                       "    cmd: \"   \"\n";

    (void)state;
    expect_error(yaml, "config:4:20: checkEndpoint: must start with '/' or be \"none\", got "
                       "'health'");
    expect_error(yaml, "config:5:11: env: entry 'NOVALUE' is not KEY=VALUE");
    expect_error(yaml, "config:5:22: env: entry '=x' is not KEY=VALUE");
    expect_error(yaml, "config:6:26: setParams: expected a mapping, got a list");
    expect_error(yaml, "config:7:15: metadata: expected a mapping, got a scalar");
    expect_error(yaml, "config:8:25: capabilities.in: invalid modality 'smell' (valid: text, "
                       "audio, image)");
    expect_error(yaml, "config:10:10: cmd is empty");
}

static void test_cfg_rejects_bad_top_level_values(void **state)
{
    (void)state;
    expect_error("apiKeys: [\"\", \"a b\"]\n", "config:1:11: apiKeys[0]: empty api key");
    expect_error("apiKeys: [\"\", \"a b\"]\n",
                 "config:1:15: apiKeys[1]: api key cannot contain spaces");
    expect_error("logToStdout: everywhere\n",
                 "config:1:14: logToStdout: must be one of proxy, upstream, both, none");
    expect_error("performance: {every: 1s}\n",
                 "config:1:22: performance.every: must be at least 5s, got '1s'");
    expect_error("performance: {every: soon}\n",
                 "config:1:22: performance.every: invalid duration 'soon'");
    expect_error("- a\n- b\n", "config:1:1: config: expected a mapping, got a list");
    expect_error("models: [a]\n", "config:1:9: models: expected a mapping, got a list");
}

static void test_cfg_unknown_log_level_warns(void **state)
{
    struct cfg *cfg = load_ok("logLevel: DEBUG\n");

    (void)state;
    assert_string_equal(cfg->log_level, "debug");
    cfg_free(cfg);
    cfg = load_ok("logLevel: trace\n");
    assert_string_equal(cfg->log_level, "info");
    expect_warning(cfg, "config:1:11: logLevel: unknown level 'trace', using 'info'");
    cfg_free(cfg);
}

static void test_cfg_peers_profiles_selectors(void **state)
{
    (void)state;
    expect_error("peers:\n  p1:\n    apiKey: k\n", "config:2:3: peer 'p1': proxy is required");
    expect_error("peers:\n  p1:\n    proxy: http://h\n",
                 "config:2:3: peer 'p1': models can not be empty");
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "selectors:\n"
                 "  a:\n"
                 "    strategy: warm\n"
                 "    targets: [ghost]\n",
                 "config:4:3: selectors.a: name conflicts with a model id or alias");
    expect_error("models:\n"
                 "  a: {cmd: 's --port ${PORT}'}\n"
                 "selectors:\n"
                 "  s:\n"
                 "    strategy: fastest\n"
                 "    targets: [ghost]\n",
                 "config:6:15: selectors.s.targets[0] references unknown model 'ghost'");
    expect_error("selectors:\n  s:\n    targets: [x]\n",
                 "config:2:3: selectors.s.strategy is required");
    expect_error("profiles:\n  p: [a, b]\n", "config:2:6: profile 'p' must be a mapping with "
                                             "description and pins; the legacy list syntax is "
                                             "no longer supported");
    expect_error("profiles:\n  p: {description: x}\n",
                 "config:2:3: profiles.p.pins must contain at least one entry");
    expect_error("profiles:\n  p: {pins: {code: ghost}}\n",
                 "config:2:20: profiles.p.pins.code references unknown model 'ghost'");
}


static void test_cfg_find_model_by_id_and_alias(void **state)
{
    struct cfg *cfg = load_ok("includeAliasesInList: true\n"
                              "models:\n"
                              "  a:\n"
                              "    cmd: s --port ${PORT}\n"
                              "    aliases: [gpt-4o-mini, \"${MODEL_ID}-alias\"]\n");

    (void)state;
    assert_true(cfg->include_aliases_in_list);
    assert_ptr_equal(cfg_find_model(cfg, "a"), &cfg->models[0]);
    assert_ptr_equal(cfg_find_model(cfg, "gpt-4o-mini"), &cfg->models[0]);
    assert_ptr_equal(cfg_find_model(cfg, "a-alias"), &cfg->models[0]);
    assert_null(cfg_find_model(cfg, "b"));
    cfg_free(cfg);
}

static void test_cfg_load_reports_missing_file(void **state)
{
    struct cfg *cfg = NULL;
    char *cause = NULL;

    (void)state;
    assert_int_equal(cfg_load("/nonexistent/infergate.yaml", &cfg, &cause), IG_EIO);
    assert_null(cfg);
    assert_string_equal(cause, "/nonexistent/infergate.yaml: No such file or directory");
    free(cause);
}

static void test_cfg_load_from_file_uses_path_in_messages(void **state)
{
    char path[] = "/tmp/ig_cfg_testXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    struct cfg *cfg = NULL;
    char *cause = NULL;
    char want[128];

    (void)state;
    fputs("models:\n  a:\n    ttl: x\n", f);
    fclose(f);
    assert_int_equal(cfg_load(path, &cfg, &cause), IG_ECONFIG);
    snprintf(want, sizeof(want), "%s:3:10: ttl: expected an integer, got 'x'", path);
    assert_true(has_line(cause, want));
    free(cause);
    unlink(path);
}

/* Our own config in the shape of llama-swap's config.example.yaml: every section it shows. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_empty_document_gives_defaults),
        cmocka_unit_test(test_cfg_loads_model_with_defaults),
        cmocka_unit_test(test_cfg_rejects_yaml_syntax_error),
        cmocka_unit_test(test_cfg_rejects_negative_ttl),
        cmocka_unit_test(test_cfg_ttl_uses_global_ttl_by_default),
        cmocka_unit_test(test_cfg_rejects_negative_global_ttl),
        cmocka_unit_test(test_cfg_health_check_timeout_has_minimum_15),
        cmocka_unit_test(test_cfg_rejects_bad_start_port),
        cmocka_unit_test(test_cfg_ports_assigned_in_sorted_id_order),
        cmocka_unit_test(test_cfg_port_from_macro_counts),
        cmocka_unit_test(test_cfg_rejects_port_exhaustion),
        cmocka_unit_test(test_cfg_rejects_proxy_port_without_cmd_port),
        cmocka_unit_test(test_cfg_rejects_missing_cmd_and_proxy),
        cmocka_unit_test(test_cfg_rejects_cmd_without_port_and_without_proxy),
        cmocka_unit_test(test_cfg_proxy_only_model_has_no_port),
        cmocka_unit_test(test_cfg_rejects_non_http_proxy),
        cmocka_unit_test(test_cfg_rejects_duplicate_alias),
        cmocka_unit_test(test_cfg_rejects_alias_equal_to_other_model_id),
        cmocka_unit_test(test_cfg_rejects_duplicate_keys),
        cmocka_unit_test(test_cfg_unknown_keys_are_warnings),
        cmocka_unit_test(test_cfg_records_inactive_keys),
        cmocka_unit_test(test_cfg_rejects_wrong_types),
        cmocka_unit_test(test_cfg_collects_all_errors),
        cmocka_unit_test(test_cfg_groups),
        cmocka_unit_test(test_cfg_rejects_bad_group_members),
        cmocka_unit_test(test_cfg_routing_groups_are_active),
        cmocka_unit_test(test_cfg_rejects_bad_routing),
        cmocka_unit_test(test_cfg_matrix),
        cmocka_unit_test(test_cfg_yaml_anchors_and_merge_keys),
        cmocka_unit_test(test_cfg_filters),
        cmocka_unit_test(test_cfg_rejects_bad_model_fields),
        cmocka_unit_test(test_cfg_rejects_bad_top_level_values),
        cmocka_unit_test(test_cfg_unknown_log_level_warns),
        cmocka_unit_test(test_cfg_peers_profiles_selectors),
        cmocka_unit_test(test_cfg_find_model_by_id_and_alias),
        cmocka_unit_test(test_cfg_load_reports_missing_file),
        cmocka_unit_test(test_cfg_load_from_file_uses_path_in_messages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
