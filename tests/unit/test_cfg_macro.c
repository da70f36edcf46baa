/* Unit tests for src/config: cmd lines and macros (llama-swap semantics). */
#include "cfg_test_util.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
