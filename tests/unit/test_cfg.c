/* Unit tests for src/config: llama-swap compatible loading, macros, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Loads YAML text named "config"; returns the config or NULL with *CAUSE set. */
static struct cfg *load(const char *yaml, char **cause)
{
    struct cfg *cfg = NULL;
    int rc = cfg_load_string(yaml, strlen(yaml), "config", &cfg, cause);

    if (rc == 0) {
        assert_non_null(cfg);
        assert_null(*cause);
    } else {
        assert_null(cfg);
        assert_int_equal(rc, IG_ECONFIG);
        assert_non_null(*cause);
    }
    return cfg;
}

/* Loads YAML that must be valid. */
static struct cfg *load_ok(const char *yaml)
{
    char *cause = NULL;
    struct cfg *cfg = load(yaml, &cause);

    if (cfg == NULL)
        fail_msg("unexpected errors:\n%s", cause);
    return cfg;
}

/* Returns whether LINE is one whole line of TEXT. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; p != NULL; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Asserts that YAML fails with exactly LINE among its errors. */
static void expect_error(const char *yaml, const char *line)
{
    char *cause = NULL;
    struct cfg *cfg = load(yaml, &cause);

    if (cfg != NULL) {
        cfg_free(cfg);
        fail_msg("expected error '%s' but the config loaded", line);
    }
    if (!has_line(cause, line))
        fail_msg("expected error '%s', got:\n%s", line, cause);
    free(cause);
}

/* Asserts that the loaded config has WARNING. */
static void expect_warning(const struct cfg *cfg, const char *warning)
{
    for (size_t i = 0; i < cfg->warnings.len; i++)
        if (strcmp(cfg->warnings.items[i], warning) == 0)
            return;
    fail_msg("missing warning '%s' (%zu warnings)", warning, cfg->warnings.len);
}

/* Returns whether KEY is in cfg->inactive_keys. */
static bool is_inactive(const struct cfg *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->inactive_keys.len; i++)
        if (strcmp(cfg->inactive_keys.items[i], key) == 0)
            return true;
    return false;
}

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

static void test_cfg_cmd_comments_removed_and_lines_joined(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  a:\n"
                              "    cmd: |\n"
                              "      # the server ${not_a_macro}\n"
                              "      llama-server --port ${PORT} \\\n"
                              "        --model 'my model.gguf'\n"
                              "\n"
                              "      # another comment\n"
                              "      --ctx-size 4096\n");

    (void)state;
    assert_string_equal(cfg->models[0].cmd,
                        "llama-server --port 5800 --model 'my model.gguf' --ctx-size 4096");
    cfg_free(cfg);
}

static void test_cfg_cmd_stop_keeps_pid(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  a:\n"
                              "    cmd: docker run --name ${MODEL_ID} -p ${PORT}:8080 img\n"
                              "    cmdStop: |\n"
                              "      # stop it\n"
                              "      docker stop ${MODEL_ID} # pid ${PID}\n");

    (void)state;
    assert_string_equal(cfg->models[0].cmd, "docker run --name a -p 5800:8080 img");
    assert_string_equal(cfg->models[0].cmd_stop, "docker stop a # pid ${PID}");
    cfg_free(cfg);
}

static void test_cfg_rejects_pid_outside_cmd_stop(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: s --port ${PORT} --pid ${PID}\n",
                 "config:3:10: unknown macro '${PID}'");
}

static void test_cfg_rejects_unknown_macro(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: s --port ${PORT}\n"
                 "    name: \"${nope}\"\n",
                 "config:4:11: unknown macro '${nope}'");
    expect_error("logTimeFormat: ${MODEL_ID}\n", "config:1:16: unknown macro '${MODEL_ID}'");
    expect_error("logTimeFormat: ${PORT}\n", "config:1:16: unknown macro '${PORT}'");
}

static void test_cfg_non_macro_dollar_text_stays_literal(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  a:\n"
                              "    cmd: sh -c 'echo ${a.b} ${ x } $HOME ${' --port ${PORT}\n");

    (void)state;
    assert_string_equal(cfg->models[0].cmd, "sh -c 'echo ${a.b} ${ x } $HOME ${' --port 5800");
    cfg_free(cfg);
}

static void test_cfg_macro_in_macro(void **state)
{
    struct cfg *cfg = load_ok("macros:\n"
                              "  ctx: 4096\n"
                              "  args: \"--ctx-size ${ctx}\"\n"
                              "  bin: /opt/llama-server\n"
                              "  full: \"${bin} ${args}\"\n"
                              "models:\n"
                              "  a:\n"
                              "    cmd: ${full} --port ${PORT}\n");

    (void)state;
    assert_string_equal(cfg->models[0].cmd, "/opt/llama-server --ctx-size 4096 --port 5800");
    cfg_free(cfg);
}

static void test_cfg_rejects_macro_forward_reference(void **state)
{
    (void)state;
    expect_error("macros:\n"
                 "  a: \"x ${b}\"\n"
                 "  b: y\n"
                 "models:\n"
                 "  m:\n"
                 "    cmd: s ${a} --port ${PORT}\n",
                 "config:6:10: macro '${b}' is used before it is defined");
}

static void test_cfg_rejects_macro_self_reference(void **state)
{
    (void)state;
    expect_error("macros:\n"
                 "  a: \"x ${a}\"\n",
                 "config:2:6: macro 'a' contains a self-reference");
}

static void test_cfg_rejects_reserved_macro_names(void **state)
{
    (void)state;
    expect_error("macros:\n  PORT: 1\n", "config:2:3: macro name 'PORT' is reserved");
    expect_error("macros:\n  MODEL_ID: x\n", "config:2:3: macro name 'MODEL_ID' is reserved");
    expect_error("models:\n"
                 "  a:\n"
                 "    macros:\n"
                 "      PID: 1\n"
                 "    cmd: s --port ${PORT}\n",
                 "config:4:7: macro name 'PID' is reserved");
}

static void test_cfg_rejects_invalid_macro_names(void **state)
{
    (void)state;
    expect_error("macros:\n  \"a b\": 1\n", "config:2:3: macro name 'a b' contains invalid "
                                            "characters (allowed: a-z A-Z 0-9 _ -)");
    expect_error("macros:\n"
                 "  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 1\n",
                 "config:2:3: macro name "
                 "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' exceeds "
                 "the maximum length of 63");
}

static void test_cfg_rejects_non_scalar_macro(void **state)
{
    (void)state;
    expect_error("macros:\n  a: [1, 2]\n",
                 "config:2:6: macro 'a' must be a string, number or boolean");
    expect_error("macros:\n  a:\n", "config:2:5: macro 'a' must be a string, number or boolean");
    expect_error("macros: [a]\n", "config:1:9: macros: expected a mapping, got a list");
}

static void test_cfg_model_macros_override_globals(void **state)
{
    struct cfg *cfg = load_ok("macros:\n"
                              "  ctx: 4096\n"
                              "  args: \"-c ${ctx}\"\n"
                              "models:\n"
                              "  big:\n"
                              "    macros:\n"
                              "      ctx: 16384\n"
                              "      temp: 0.7\n"
                              "    cmd: s ${args} --temp ${temp} --port ${PORT}\n"
                              "  small:\n"
                              "    cmd: s ${args} --port ${PORT}\n");

    (void)state;
    assert_string_equal(cfg_find_model(cfg, "big")->cmd, "s -c 16384 --temp 0.7 --port 5800");
    assert_string_equal(cfg_find_model(cfg, "small")->cmd, "s -c 4096 --port 5801");
    cfg_free(cfg);
}

static void test_cfg_model_id_macro(void **state)
{
    struct cfg *cfg = load_ok("macros:\n"
                              "  gguf: /models/${MODEL_ID}.gguf\n"
                              "models:\n"
                              "  qwen:\n"
                              "    cmd: s -m ${gguf} --port ${PORT}\n"
                              "    name: ${MODEL_ID} model\n");

    (void)state;
    assert_string_equal(cfg->models[0].cmd, "s -m /models/qwen.gguf --port 5800");
    assert_string_equal(cfg->models[0].name, "qwen model");
    cfg_free(cfg);
}

static void test_cfg_env_macros(void **state)
{
    struct cfg *cfg;

    (void)state;
    setenv("IG_TEST_DIR", "/data/models", 1);
    setenv("IG_TEST_PORT", "9123", 1);
    cfg = load_ok("startPort: ${env.IG_TEST_PORT}\n"
                  "macros:\n"
                  "  dir: ${env.IG_TEST_DIR}/gguf\n"
                  "apiKeys: [\"${env.IG_TEST_DIR}\"]\n"
                  "models:\n"
                  "  a:\n"
                  "    cmd: s -m ${dir}/a.gguf --port ${PORT}\n");
    assert_int_equal(cfg->start_port, 9123);
    assert_string_equal(cfg->models[0].cmd, "s -m /data/models/gguf/a.gguf --port 9123");
    assert_string_equal(cfg->api_keys.items[0], "/data/models");
    cfg_free(cfg);
}

static void test_cfg_rejects_unset_env_macro(void **state)
{
    (void)state;
    unsetenv("IG_TEST_UNSET_VAR");
    expect_error("models:\n"
                 "  a:\n"
                 "    cmd: s --key ${env.IG_TEST_UNSET_VAR} --port ${PORT}\n",
                 "config:3:10: environment variable 'IG_TEST_UNSET_VAR' is not set");
}

static void test_cfg_direct_macro_keeps_type(void **state)
{
    struct cfg *cfg = load_ok("macros:\n"
                              "  t: 30\n"
                              "  t2: \"${t}\"\n"
                              "  yes: true\n"
                              "models:\n"
                              "  a:\n"
                              "    cmd: s --port ${PORT}\n"
                              "    ttl: ${t2}\n"
                              "    unlisted: \"${yes}\"\n");

    (void)state;
    assert_int_equal(cfg->models[0].ttl_s, 30);
    assert_true(cfg->models[0].unlisted);
    cfg_free(cfg);
}

static void test_cfg_metadata_keeps_types_and_expands_macros(void **state)
{
    struct cfg *cfg = load_ok("models:\n"
                              "  llama:\n"
                              "    macros:\n"
                              "      temp: 0.7\n"
                              "      big: 1000000.0\n"
                              "    cmd: s --port ${PORT}\n"
                              "    metadata:\n"
                              "      port: ${PORT}\n"
                              "      temperature: ${temp}\n"
                              "      note: \"${MODEL_ID} on ${PORT} temp=${temp} big=${big}\"\n"
                              "      a_list: [1, 1.5, \"in ${MODEL_ID}\", null, true]\n"
                              "      an_obj: {a: \"1\", b: 2, c: [\"${temp}\", false]}\n");
    char *dump = json_dumps(cfg->models[0].metadata,
                            JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(15));

    (void)state;
    assert_string_equal(dump, "{\"a_list\":[1,1.5,\"in llama\",null,true],\"an_obj\":{\"a\":\"1\","
                              "\"b\":2,\"c\":[0.7,false]},\"note\":\"llama on 5800 temp=0.7 "
                              "big=1e+06\",\"port\":5800,\"temperature\":0.7}");
    free(dump);
    cfg_free(cfg);
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
                              "tls: {cert: x}\n"
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
    assert_true(is_inactive(cfg, "hooks"));
    assert_true(is_inactive(cfg, "models_dir"));
    assert_true(is_inactive(cfg, "tls"));
    assert_true(is_inactive(cfg, "models.a.sendLoadingState"));
    assert_true(is_inactive(cfg, "models.a.unloadTimeout"));
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
    assert_true(is_inactive(cfg, "matrix"));
    assert_int_equal(cfg->n_groups, 0);
    cfg_free(cfg);
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
                              "  shutdown_grace_s: 0\n");

    (void)state;
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
static const char llama_swap_style[] =
    "# yaml-language-server: $schema=https://example.invalid/config-schema.json\n"
    "healthCheckTimeout: 300\n"
    "logLevel: info\n"
    "logTimeFormat: \"\"\n"
    "logToStdout: \"proxy\"\n"
    "metricsMaxInMemory: 500\n"
    "captureBuffer: 10\n"
    "ui:\n"
    "  activity:\n"
    "    session_id: [\"X-Session-ID\"]\n"
    "performance:\n"
    "  disabled: false\n"
    "  every: 1m30s\n"
    "startPort: 12000\n"
    "sendLoadingState: true\n"
    "includeAliasesInList: false\n"
    "globalTTL: 0\n"
    "unloadTimeout: 10\n"
    "macros:\n"
    "  \"server-bin\": >\n"
    "    /opt/llama.cpp/llama-server --port ${PORT}\n"
    "  \"ctx\": 8192\n"
    "  \"common\": \"--ctx-size ${ctx}\"\n"
    "  \"weights\": \"${env.IG_TEST_HOME}/weights\"\n"
    "apiKeys:\n"
    "  - \"sk-first\"\n"
    "  - \"${env.IG_TEST_KEY}\"\n"
    "upstream:\n"
    "  ignorePaths:\n"
    "    - '.*\\.(js|css|png)$'\n"
    "    - ^\\/ws$\n"
    "profiles:\n"
    "  \"writing\":\n"
    "    description: \"Writing-focused routing\"\n"
    "    pins:\n"
    "      \"llm-write\": \"big-model\"\n"
    "      \"llm-draft\": \"fast\"\n"
    "      \"images\": ~\n"
    "selectors:\n"
    "  \"fast\":\n"
    "    strategy: warm\n"
    "    targets: [\"small-model\", \"big-model\"]\n"
    "    name: \"Fast\"\n"
    "    metadata: {purpose: chat}\n"
    "  \"pinned\":\n"
    "    strategy: pin\n"
    "    targets: [\"big-model\", \"remote/llama-3-8b\"]\n"
    "  \"spill\":\n"
    "    strategy: spillover\n"
    "    targets: [\"small-model\", \"docker-model\"]\n"
    "    settings:\n"
    "      spillover: 2\n"
    "models:\n"
    "  \"big-model\":\n"
    "    macros:\n"
    "      \"ctx\": 32768\n"
    "      \"temp\": 0.6\n"
    "    cmd: |\n"
    "      # ${server-bin} is a macro from above\n"
    "      ${server-bin}\n"
    "      --model ${weights}/big.gguf\n"
    "      ${common}\n"
    "      --temp ${temp}\n"
    "    name: \"Big model\"\n"
    "    description: \"A large model\"\n"
    "    env:\n"
    "      - \"CUDA_VISIBLE_DEVICES=0,1\"\n"
    "    checkEndpoint: /health\n"
    "    ttl: 120\n"
    "    unloadTimeout: 20\n"
    "    compat:\n"
    "      ignoreWebsockets: true\n"
    "    useModelName: \"org/big-model\"\n"
    "    filters:\n"
    "      stripParams: \"temperature, top_p\"\n"
    "      setParams:\n"
    "        temperature: 0.6\n"
    "      setParamsByID:\n"
    "        \"${MODEL_ID}:deep\":\n"
    "          chat_template_kwargs: {reasoning_effort: high}\n"
    "    aliases:\n"
    "      - \"gpt-4o\"\n"
    "    metadata:\n"
    "      port: ${PORT}\n"
    "      temperature: ${temp}\n"
    "      note: \"${MODEL_ID} on ${PORT}\"\n"
    "    concurrencyLimit: 4\n"
    "    sendLoadingState: false\n"
    "    timeouts:\n"
    "      connect: 30\n"
    "      responseHeader: 120\n"
    "    capabilities:\n"
    "      in: [text, image]\n"
    "      out: [text]\n"
    "      tools: true\n"
    "      reranker: false\n"
    "      context: 32768\n"
    "  \"small-model\":\n"
    "    unlisted: true\n"
    "    cmd: ${server-bin} --model ${weights}/small.gguf\n"
    "  \"docker-model\":\n"
    "    proxy: \"http://127.0.0.1:${PORT}\"\n"
    "    cmd: |\n"
    "      docker run --name ${MODEL_ID}\n"
    "      --init --rm -p ${PORT}:8080\n"
    "      ghcr.io/ggml-org/llama.cpp:server\n"
    "    cmdStop: docker stop ${MODEL_ID}\n"
    "  \"external\":\n"
    "    proxy: http://192.168.1.50:8080\n"
    "    checkEndpoint: none\n"
    "hooks:\n"
    "  on_startup:\n"
    "    preload:\n"
    "      - \"small-model\"\n"
    "routing:\n"
    "  router:\n"
    "    use: group\n"
    "    settings:\n"
    "      groups:\n"
    "        \"solo\":\n"
    "          swap: true\n"
    "          exclusive: true\n"
    "          members: [\"big-model\"]\n"
    "        \"together\":\n"
    "          swap: false\n"
    "          exclusive: false\n"
    "          members: [\"small-model\", \"docker-model\"]\n"
    "        \"always\":\n"
    "          persistent: true\n"
    "          swap: false\n"
    "          exclusive: false\n"
    "          members: [\"external\"]\n"
    "      matrix:\n"
    "        vars: {b: big-model, s: small-model}\n"
    "        evict_costs: {b: 30}\n"
    "        sets:\n"
    "          pair: \"b & s\"\n"
    "  scheduler:\n"
    "    use: fifo\n"
    "    settings:\n"
    "      fifo:\n"
    "        priority:\n"
    "          big-model: 10\n"
    "          gpt-4o: 5\n"
    "peers:\n"
    "  remote:\n"
    "    proxy: http://192.168.1.23\n"
    "    models:\n"
    "      - llama-3-8b\n"
    "      - embeddings/e5\n"
    "  hosted:\n"
    "    proxy: https://openrouter.ai/api\n"
    "    apiKey: ${env.IG_TEST_KEY}\n"
    "    models: [\"qwen/qwen3\"]\n"
    "    timeouts: {connect: 30, keepalive: 30, responseHeader: 60, tlsHandshake: 10, "
    "idleConn: 90}\n"
    "    filters:\n"
    "      stripParams: \"temperature\"\n"
    "      setParams:\n"
    "        provider: {data_collection: \"deny\", zdr: true}\n";

static void test_cfg_llama_swap_style_config_loads(void **state)
{
    struct cfg *cfg;
    const struct cfg_model *big, *docker;
    char *dump;

    (void)state;
    setenv("IG_TEST_HOME", "/home/u", 1);
    setenv("IG_TEST_KEY", "sk-second", 1);
    cfg = load_ok(llama_swap_style);
    for (size_t i = 0; i < cfg->warnings.len; i++)
        fail_msg("unexpected warning: %s", cfg->warnings.items[i]);
    assert_int_equal(cfg->n_models, 4);
    assert_int_equal(cfg->health_check_timeout_s, 300);
    big = cfg_find_model(cfg, "gpt-4o");
    assert_non_null(big);
    assert_string_equal(big->id, "big-model");
    assert_int_equal(big->port, 12000);
    assert_string_equal(big->cmd, "/opt/llama.cpp/llama-server --port 12000 --model "
                                  "/home/u/weights/big.gguf --ctx-size 32768 --temp 0.6");
    assert_string_equal(cfg_find_model(cfg, "small-model")->cmd,
                        "/opt/llama.cpp/llama-server --port 12002 --model "
                        "/home/u/weights/small.gguf");
    docker = cfg_find_model(cfg, "docker-model");
    assert_int_equal(docker->port, 12001);
    assert_string_equal(docker->proxy, "http://127.0.0.1:12001");
    assert_string_equal(docker->cmd_stop, "docker stop docker-model");
    assert_string_equal(big->use_model_name, "org/big-model");
    assert_int_equal(big->concurrency_limit, 4);
    assert_int_equal(big->ttl_s, 120);
    dump = json_dumps(big->metadata, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(15));
    assert_string_equal(dump,
                        "{\"note\":\"big-model on 12000\",\"port\":12000,\"temperature\":0.6}");
    free(dump);
    assert_int_equal(cfg->api_keys.len, 2);
    assert_string_equal(cfg->api_keys.items[1], "sk-second");
    assert_int_equal(cfg->n_groups, 3);
    assert_true(cfg_model_group(cfg, "external")->persistent);
    assert_true(is_inactive(cfg, "peers"));
    assert_true(is_inactive(cfg, "profiles"));
    assert_true(is_inactive(cfg, "selectors"));
    assert_true(is_inactive(cfg, "routing"));
    assert_true(is_inactive(cfg, "hooks"));
    cfg_free(cfg);
}

/* Returns the first ```yaml block of FILE (caller frees), or NULL. */
static char *first_yaml_block(const char *file)
{
    FILE *f = fopen(file, "rb");
    static char text[256 * 1024];
    size_t n;
    char *start, *end;

    if (f == NULL)
        return NULL;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    start = strstr(text, "```yaml\n");
    if (start == NULL)
        return NULL;
    start += 8;
    end = strstr(start, "\n```");
    if (end == NULL)
        return NULL;
    return strndup(start, (size_t)(end - start) + 1);
}

static void test_cfg_docs_example_loads(void **state)
{
    char *yaml = first_yaml_block("docs/CONFIGURATION.md");
    struct cfg *cfg;

    (void)state;
    assert_non_null(yaml);
    cfg = load_ok(yaml);
    for (size_t i = 0; i < cfg->warnings.len; i++)
        fail_msg("unexpected warning: %s", cfg->warnings.items[i]);
    assert_true(cfg->n_models >= 2);
    cfg_free(cfg);
    free(yaml);
}

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
        cmocka_unit_test(test_cfg_cmd_comments_removed_and_lines_joined),
        cmocka_unit_test(test_cfg_cmd_stop_keeps_pid),
        cmocka_unit_test(test_cfg_rejects_pid_outside_cmd_stop),
        cmocka_unit_test(test_cfg_rejects_unknown_macro),
        cmocka_unit_test(test_cfg_non_macro_dollar_text_stays_literal),
        cmocka_unit_test(test_cfg_macro_in_macro),
        cmocka_unit_test(test_cfg_rejects_macro_forward_reference),
        cmocka_unit_test(test_cfg_rejects_macro_self_reference),
        cmocka_unit_test(test_cfg_rejects_reserved_macro_names),
        cmocka_unit_test(test_cfg_rejects_invalid_macro_names),
        cmocka_unit_test(test_cfg_rejects_non_scalar_macro),
        cmocka_unit_test(test_cfg_model_macros_override_globals),
        cmocka_unit_test(test_cfg_model_id_macro),
        cmocka_unit_test(test_cfg_env_macros),
        cmocka_unit_test(test_cfg_rejects_unset_env_macro),
        cmocka_unit_test(test_cfg_direct_macro_keeps_type),
        cmocka_unit_test(test_cfg_metadata_keeps_types_and_expands_macros),
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
        cmocka_unit_test(test_cfg_listen_forms),
        cmocka_unit_test(test_cfg_rejects_bad_listen),
        cmocka_unit_test(test_cfg_limits),
        cmocka_unit_test(test_cfg_rejects_bad_limits),
        cmocka_unit_test(test_cfg_rejects_oversized_input),
        cmocka_unit_test(test_cfg_rejects_deep_nesting),
        cmocka_unit_test(test_cfg_rejects_long_string),
        cmocka_unit_test(test_cfg_rejects_huge_macro_expansion),
        cmocka_unit_test(test_cfg_rejects_deep_macro_chain),
        cmocka_unit_test(test_cfg_rejects_alias_bomb),
        cmocka_unit_test(test_cfg_yaml_anchors_and_merge_keys),
        cmocka_unit_test(test_cfg_filters),
        cmocka_unit_test(test_cfg_rejects_bad_model_fields),
        cmocka_unit_test(test_cfg_rejects_bad_top_level_values),
        cmocka_unit_test(test_cfg_unknown_log_level_warns),
        cmocka_unit_test(test_cfg_peers_profiles_selectors),
        cmocka_unit_test(test_cfg_rejects_too_many_models),
        cmocka_unit_test(test_cfg_find_model_by_id_and_alias),
        cmocka_unit_test(test_cfg_load_reports_missing_file),
        cmocka_unit_test(test_cfg_load_from_file_uses_path_in_messages),
        cmocka_unit_test(test_cfg_llama_swap_style_config_loads),
        cmocka_unit_test(test_cfg_docs_example_loads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
