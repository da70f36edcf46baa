/* Unit tests for src/config/cfg_peer.c: llama-swap `peers` expanded into proxy-only models. */
#include "cfg_test_util.h"

/* Returns model NAME of CFG (asserting it exists). */
static const struct cfg_model *model(const struct cfg *cfg, const char *name)
{
    const struct cfg_model *m = cfg_find_model(cfg, name);

    if (m == NULL)
        fail_msg("no model '%s'", name);
    return m;
}

static void test_cfg_peer_models_become_proxy_models(void **state)
{
    struct cfg *cfg;
    const struct cfg_model *m;
    char *dump;

    (void)state;
    setenv("IG_TEST_PEER_KEY", "sk-peer-1", 1);
    cfg = load_ok("peers:\n"
                  "  openrouter:\n"
                  "    proxy: https://openrouter.ai/api\n"
                  "    apiKey: ${env.IG_TEST_PEER_KEY}\n"
                  "    models: [meta-llama/llama-3.1-8b, qwen/qwen3, qwen/qwen3]\n"
                  "    filters:\n"
                  "      stripParams: \"top_p, temperature\"\n"
                  "      setParams:\n"
                  "        model: ignored\n"
                  "        provider: {zdr: true}\n");
    for (size_t i = 0; i < cfg->warnings.len; i++)
        fail_msg("unexpected warning: %s", cfg->warnings.items[i]);
    assert_int_equal(cfg->n_models, 2); /* the duplicate name is skipped */
    m = model(cfg, "openrouter/qwen/qwen3");
    assert_string_equal(m->id, "openrouter/qwen/qwen3");
    assert_string_equal(m->peer, "openrouter");
    assert_string_equal(m->name, "openrouter: qwen/qwen3");
    assert_null(m->cmd);
    assert_string_equal(m->proxy, "https://openrouter.ai/api");
    assert_string_equal(m->use_model_name, "qwen/qwen3");
    assert_string_equal(m->api_key, "sk-peer-1");
    assert_string_equal(m->check_endpoint, "none");
    assert_int_equal(m->strip_params.len, 2);
    assert_string_equal(m->strip_params.items[0], "temperature");
    assert_string_equal(m->strip_params.items[1], "top_p");
    dump = json_dumps(m->set_params, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(dump, "{\"provider\":{\"zdr\":true}}");
    free(dump);
    assert_ptr_equal(model(cfg, "qwen/qwen3"), m); /* plain name: served by one peer only */
    assert_string_equal(model(cfg, "meta-llama/llama-3.1-8b")->api_key, "sk-peer-1");
    assert_false(is_inactive(cfg, "peers"));
    cfg_free(cfg);
}

static void test_cfg_peer_local_names_win_and_shared_names_need_the_peer(void **state)
{
    struct cfg *cfg;

    (void)state;
    cfg = load_ok("models:\n"
                  "  local: {cmd: 's --port ${PORT}', aliases: [nick]}\n"
                  "peers:\n"
                  "  p1: {proxy: 'http://h1', models: [local, nick, shared, only1]}\n"
                  "  p2: {proxy: 'http://h2/', models: [shared]}\n");
    assert_int_equal(cfg->n_models, 6);
    assert_string_equal(model(cfg, "local")->id, "local");
    assert_string_equal(model(cfg, "nick")->id, "local");
    assert_null(model(cfg, "p1/local")->cmd);
    assert_int_equal(model(cfg, "p1/local")->aliases.len, 0);
    assert_null(cfg_find_model(cfg, "shared"));
    assert_string_equal(model(cfg, "p1/shared")->proxy, "http://h1");
    assert_string_equal(model(cfg, "p2/shared")->proxy, "http://h2/");
    assert_string_equal(model(cfg, "only1")->id, "p1/only1");
    assert_null(model(cfg, "p1/only1")->api_key);
    cfg_free(cfg);
}

static void test_cfg_peer_errors(void **state)
{
    (void)state;
    expect_error("peers:\n  p1:\n    apiKey: k\n", "config:2:3: peer 'p1': proxy is required");
    expect_error("peers:\n  p1:\n    proxy: http://h\n",
                 "config:2:3: peer 'p1': models can not be empty");
    expect_error("peers:\n  p1: {proxy: 'ftp://h', models: [a]}\n",
                 "config:2:15: peer 'p1': proxy must be an http:// or https:// URL");
    expect_error("models:\n"
                 "  p1/a: {proxy: 'http://x'}\n"
                 "peers:\n"
                 "  p1: {proxy: 'http://h', models: [a]}\n",
                 "config:4:3: peer model name 'p1/a' conflicts with a model id or alias");
    expect_error("peers:\n"
                 "  p: {proxy: 'http://h', models: [a/b]}\n"
                 "  p/a: {proxy: 'http://h', models: [b]}\n",
                 "config:3:3: peer model name 'p/a/b' conflicts with a model id or alias");
}

static void test_cfg_peer_models_usable_by_profiles_and_keys(void **state)
{
    struct cfg *cfg;

    (void)state;
    cfg = load_ok("peers:\n"
                  "  p1: {proxy: 'http://h', models: [m]}\n"
                  "profiles:\n"
                  "  remote: {pins: {code: p1/m}}\n");
    assert_int_equal(cfg->n_profiles, 1);
    assert_string_equal(cfg->profiles[0].targets.items[0], "p1/m");
    cfg_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_peer_models_become_proxy_models),
        cmocka_unit_test(test_cfg_peer_local_names_win_and_shared_names_need_the_peer),
        cmocka_unit_test(test_cfg_peer_errors),
        cmocka_unit_test(test_cfg_peer_models_usable_by_profiles_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
