/* Unit tests for src/config: hosted-provider model keys (apiKey, caFile). */
#include "cfg_test_util.h"

#define SECRET "sk-or-v1-0123456789abcdef"

/* Returns model ID of CFG (asserting it exists). */
static const struct cfg_model *model(const struct cfg *cfg, const char *id)
{
    const struct cfg_model *m = cfg_find_model(cfg, id);

    assert_non_null(m);
    return m;
}

/* Asserts that YAML fails with LINE and that no message shows the secret. */
static void expect_error_without_secret(const char *yaml, const char *line)
{
    char *cause = NULL;
    struct cfg *cfg = load(yaml, &cause);

    cfg_free(cfg);
    assert_null(cfg);
    if (!has_line(cause, line))
        fail_msg("expected error '%s', got:\n%s", line, cause);
    assert_null(strstr(cause, "sk-or"));
    free(cause);
}

static void test_cfg_api_key_from_env(void **state)
{
    (void)state;
    setenv("IG_TEST_PROVIDER_KEY", SECRET, 1);
    struct cfg *cfg = load_ok("models:\n"
                              "  router:\n"
                              "    proxy: https://openrouter.ai/api\n"
                              "    apiKey: ${env.IG_TEST_PROVIDER_KEY}\n"
                              "    useModelName: meta-llama/llama-3.1-8b-instruct\n");
    const struct cfg_model *m = model(cfg, "router");

    assert_string_equal(m->api_key, SECRET);
    assert_string_equal(m->proxy, "https://openrouter.ai/api");
    assert_null(m->cmd);
    assert_null(m->ca_file);
    assert_int_equal(cfg->warnings.len, 0);
    cfg_free(cfg);
    unsetenv("IG_TEST_PROVIDER_KEY");
}

static void test_cfg_api_key_from_macro_keeps_text(void **state)
{
    (void)state;
    struct cfg *cfg = load_ok("macros:\n"
                              "  key: \"sk-from-macro\"\n"
                              "models:\n"
                              "  a:\n"
                              "    proxy: http://10.0.0.1:8000\n"
                              "    apiKey: ${key}\n"
                              "  b:\n"
                              "    proxy: http://10.0.0.1:8000\n"
                              "    apiKey: 0012345\n");

    assert_string_equal(model(cfg, "a")->api_key, "sk-from-macro");
    assert_string_equal(model(cfg, "b")->api_key, "0012345"); /* as written */
    cfg_free(cfg);
}

static void test_cfg_empty_api_key_is_no_key(void **state)
{
    (void)state;
    setenv("IG_TEST_EMPTY_KEY", "", 1);
    struct cfg *cfg = load_ok("models:\n"
                              "  a:\n"
                              "    proxy: https://api.example.com\n"
                              "    apiKey: ${env.IG_TEST_EMPTY_KEY}\n"
                              "  b:\n"
                              "    proxy: https://api.example.com\n"
                              "    apiKey: ~\n"
                              "  c:\n"
                              "    proxy: https://api.example.com\n"
                              "    apiKey: \"\"\n");

    assert_null(model(cfg, "a")->api_key);
    assert_null(model(cfg, "b")->api_key);
    assert_null(model(cfg, "c")->api_key);
    cfg_free(cfg);
    unsetenv("IG_TEST_EMPTY_KEY");
}

static void test_cfg_rejects_api_key_with_space_without_showing_it(void **state)
{
    (void)state;
    expect_error_without_secret("models:\n"
                                "  a:\n"
                                "    proxy: https://api.example.com\n"
                                "    apiKey: \"sk-or-v1 secret\"\n",
                                "config:4:13: apiKey: character 9 is a space, a control character "
                                "or not ASCII");
}

static void test_cfg_rejects_api_key_with_control_character(void **state)
{
    (void)state;
    expect_error_without_secret("models:\n"
                                "  a:\n"
                                "    proxy: https://api.example.com\n"
                                "    apiKey: \"sk-or\\tv1\"\n",
                                "config:4:13: apiKey: character 6 is a space, a control character "
                                "or not ASCII");
}

static void test_cfg_rejects_api_key_that_is_not_a_string(void **state)
{
    (void)state;
    expect_error_without_secret("models:\n"
                                "  a:\n"
                                "    proxy: https://api.example.com\n"
                                "    apiKey: [sk-or-1, sk-or-2]\n",
                                "config:4:13: apiKey: expected a string");
}

static void test_cfg_rejects_api_key_too_long(void **state)
{
    (void)state;
    char *long_key = malloc(5000);

    assert_non_null(long_key);
    memset(long_key, 'k', 4999);
    long_key[4999] = '\0';
    setenv("IG_TEST_LONG_KEY", long_key, 1);
    expect_error_without_secret("models:\n"
                                "  a:\n"
                                "    proxy: https://api.example.com\n"
                                "    apiKey: ${env.IG_TEST_LONG_KEY}\n",
                                "config:4:13: apiKey: longer than 4096 bytes");
    unsetenv("IG_TEST_LONG_KEY");
    free(long_key);
}

static void test_cfg_api_key_unset_env_is_error(void **state)
{
    (void)state;
    unsetenv("IG_TEST_MISSING_KEY");
    expect_error("models:\n"
                 "  a:\n"
                 "    proxy: https://api.example.com\n"
                 "    apiKey: ${env.IG_TEST_MISSING_KEY}\n",
                 "config:4:13: environment variable 'IG_TEST_MISSING_KEY' is not set");
}

static void test_cfg_ca_file_must_be_readable(void **state)
{
    (void)state;
    expect_error("models:\n"
                 "  a:\n"
                 "    proxy: https://api.example.com\n"
                 "    caFile: /nonexistent/ca.pem\n",
                 "config:4:13: caFile: cannot read '/nonexistent/ca.pem': No such file or "
                 "directory");
}

static void test_cfg_ca_file_is_kept(void **state)
{
    (void)state;
    char path[] = "/tmp/ig-test-ca-XXXXXX";
    int fd = mkstemp(path);
    char *yaml = NULL;

    assert_true(fd >= 0);
    close(fd);
    assert_true(asprintf(&yaml,
                         "models:\n"
                         "  a:\n"
                         "    proxy: https://localhost:8443/v1base\n"
                         "    caFile: %s\n",
                         path) > 0);
    struct cfg *cfg = load_ok(yaml);
    assert_string_equal(model(cfg, "a")->ca_file, path);
    assert_int_equal(cfg->warnings.len, 0);
    cfg_free(cfg);
    free(yaml);
    unlink(path);
}

static void test_cfg_ca_file_on_http_proxy_warns(void **state)
{
    (void)state;
    char path[] = "/tmp/ig-test-ca-XXXXXX";
    int fd = mkstemp(path);
    char *yaml = NULL;

    assert_true(fd >= 0);
    close(fd);
    assert_true(asprintf(&yaml,
                         "models:\n"
                         "  a:\n"
                         "    proxy: http://localhost:8080\n"
                         "    caFile: %s\n",
                         path) > 0);
    struct cfg *cfg = load_ok(yaml);
    expect_warning(cfg, "config:4:13: model 'a': caFile is only used with an https:// proxy");
    cfg_free(cfg);
    free(yaml);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_api_key_from_env),
        cmocka_unit_test(test_cfg_api_key_from_macro_keeps_text),
        cmocka_unit_test(test_cfg_empty_api_key_is_no_key),
        cmocka_unit_test(test_cfg_rejects_api_key_with_space_without_showing_it),
        cmocka_unit_test(test_cfg_rejects_api_key_with_control_character),
        cmocka_unit_test(test_cfg_rejects_api_key_that_is_not_a_string),
        cmocka_unit_test(test_cfg_rejects_api_key_too_long),
        cmocka_unit_test(test_cfg_api_key_unset_env_is_error),
        cmocka_unit_test(test_cfg_ca_file_must_be_readable),
        cmocka_unit_test(test_cfg_ca_file_is_kept),
        cmocka_unit_test(test_cfg_ca_file_on_http_proxy_warns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
