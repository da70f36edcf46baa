/* Unit tests for src/config: a full llama-swap style config and the documented example load. */
#include "cfg_test_util.h"

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
    assert_int_equal(cfg->n_models, 7); /* 4 models and 3 peer models */
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
    assert_false(is_inactive(cfg, "peers"));
    assert_true(is_inactive(cfg, "peers.hosted.timeouts"));
    assert_string_equal(cfg_find_model(cfg, "qwen/qwen3")->id, "hosted/qwen/qwen3");
    assert_string_equal(cfg_find_model(cfg, "hosted/qwen/qwen3")->api_key, "sk-second");
    assert_false(is_inactive(cfg, "profiles"));
    const struct cfg_profile *writing = cfg_find_profile(cfg, "writing");
    assert_non_null(writing);
    assert_string_equal(writing->description, "Writing-focused routing");
    assert_int_equal(writing->pins.len, 3);
    assert_string_equal(writing->pins.items[0], "llm-write");
    assert_string_equal(writing->targets.items[0], "big-model");
    assert_string_equal(writing->targets.items[2], ""); /* images: ~ disables the name */
    assert_false(is_inactive(cfg, "selectors"));
    assert_int_equal(cfg->n_selectors, 3);
    const struct cfg_selector *fast = cfg_find_selector(cfg, "fast");
    assert_non_null(fast);
    assert_int_equal(fast->strategy, CFG_SELECT_WARM);
    assert_string_equal(fast->name, "Fast");
    assert_string_equal(json_string_value(json_object_get(fast->metadata, "purpose")), "chat");
    assert_int_equal(fast->targets.len, 2);
    assert_string_equal(fast->targets.items[1], "big-model");
    assert_int_equal(fast->spillover, 1); /* llama-swap's default */
    assert_int_equal(cfg_find_selector(cfg, "pinned")->strategy, CFG_SELECT_PIN);
    assert_string_equal(cfg_find_selector(cfg, "pinned")->targets.items[1], "remote/llama-3-8b");
    assert_int_equal(cfg_find_selector(cfg, "spill")->strategy, CFG_SELECT_SPILLOVER);
    assert_int_equal(cfg_find_selector(cfg, "spill")->spillover, 2);
    assert_null(cfg_find_selector(cfg, "big-model"));
    assert_false(is_inactive(cfg, "routing")); /* group router and fifo priorities */
    assert_int_equal(cfg_find_model(cfg, "big-model")->priority, 10);
    assert_int_equal(cfg_find_model(cfg, "gpt-4o")->priority, 10); /* alias of big-model */
    assert_int_equal(cfg_find_model(cfg, "small-model")->priority, 0);
    assert_int_equal(cfg_find_model(cfg, "external")->priority, 0);
    assert_false(is_inactive(cfg, "hooks"));
    assert_int_equal(cfg_find_model(cfg, "big-model")->unload_timeout_s, 20);
    assert_int_equal(cfg_find_model(cfg, "small-model")->unload_timeout_s, 10);
    assert_int_equal(cfg->preload.len, 1);
    assert_string_equal(cfg->preload.items[0], "small-model");
    cfg_free(cfg);
}

/* Returns the first ```yaml block of FILE after the text AFTER (NULL: from the start; caller
 * frees), or NULL. */
static char *first_yaml_block(const char *file, const char *after)
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
    start = after != NULL ? strstr(text, after) : text;
    if (start == NULL)
        return NULL;
    start = strstr(start, "```yaml\n");
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
    char *yaml = first_yaml_block("docs/CONFIGURATION.md", NULL);
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

/* The selectors example of docs/CONFIGURATION.md, with the models and peers it names. */
static void test_cfg_docs_selectors_example_loads(void **state)
{
    static const char preamble[] =
        "models:\n"
        "  qwen-coder-32b: {cmd: \"srv --port ${PORT}\"}\n"
        "  qwen-coder-7b: {cmd: \"srv --port ${PORT}\"}\n"
        "  big-model: {cmd: \"srv --port ${PORT}\"}\n"
        "  local-8b: {cmd: \"srv --port ${PORT}\"}\n"
        "peers:\n"
        "  openrouter: {proxy: \"https://openrouter.ai/api\", models: [z-ai/glm-4.7]}\n"
        "  lan-box: {proxy: \"http://192.168.1.23:8080\", models: [llama-3.1-8b]}\n";
    char *block = first_yaml_block("docs/CONFIGURATION.md", "## Selectors");
    char *yaml = NULL;
    const struct cfg_selector *sel;
    struct cfg *cfg;

    (void)state;
    assert_non_null(block);
    assert_true(asprintf(&yaml, "%s%s", preamble, block) > 0);
    cfg = load_ok(yaml);
    for (size_t i = 0; i < cfg->warnings.len; i++)
        fail_msg("unexpected warning: %s", cfg->warnings.items[i]);
    assert_int_equal(cfg->n_selectors, 3);
    sel = cfg_find_selector(cfg, "coder");
    assert_int_equal(sel->strategy, CFG_SELECT_WARM);
    assert_string_equal(sel->description, "Best currently loaded coding model");
    assert_int_equal(cfg_find_selector(cfg, "plan")->strategy, CFG_SELECT_PIN);
    sel = cfg_find_selector(cfg, "chat");
    assert_int_equal(sel->strategy, CFG_SELECT_SPILLOVER);
    assert_int_equal(sel->spillover, 4);
    assert_string_equal(sel->targets.items[1], "lan-box/llama-3.1-8b");
    cfg_free(cfg);
    free(yaml);
    free(block);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_llama_swap_style_config_loads),
        cmocka_unit_test(test_cfg_docs_example_loads),
        cmocka_unit_test(test_cfg_docs_selectors_example_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
