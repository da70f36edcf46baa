/* Rules applied to an inference request: the model's filters, capability checks, the token
 * limit it asks for and its upstream URL (see gw_internal.h). */
#include "cfg.h"
#include "gguf_meta.h"
#include "gw_internal.h"
#include "ig_text.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Applies stripParams, setParams and useModelName; returns whether the body changed. */
bool gw_apply_filters(const struct cfg_model *mc, json_t *doc)
{
    bool is_changed = false;

    for (size_t i = 0; i < mc->strip_params.len; i++) {
        const char *key = mc->strip_params.items[i];
        if (strcmp(key, "model") != 0 && json_object_del(doc, key) == 0)
            is_changed = true;
    }
    if (mc->set_params != NULL && json_object_size(mc->set_params) > 0) {
        json_object_update(doc, mc->set_params);
        is_changed = true;
    }
    if (mc->use_model_name != NULL) {
        json_object_set_new(doc, "model", json_string(mc->use_model_name));
        is_changed = true;
    }
    return is_changed;
}

/* Returns whether the model C is known to lack what PATH needs (embeddings, or text
 * generation), with a message in MSG. Unknown capabilities (no GGUF file read) pass. */
bool gw_lacks_capability(const struct cfg_model *c, const char *path, char *msg, size_t size)
{
    bool wants_embeddings = strstr(path, "embedding") != NULL;
    bool wants_text = strstr(path, "completion") != NULL;

    if (c->caps == 0)
        return false;
    if (wants_embeddings && (c->caps & GGUF_CAP_EMBEDDINGS) == 0) {
        snprintf(msg, size, "model %s does not support embeddings (capabilities: text generation)",
                 c->id);
        return true;
    }
    if (wants_text && (c->caps & GGUF_CAP_COMPLETION) == 0) {
        snprintf(msg, size, "model %s does not generate text: it is an embedding model", c->id);
        return true;
    }
    return false;
}

/* Returns the most tokens the request may generate: the largest of max_tokens,
 * max_completion_tokens and n_predict (llama-server reads n_predict first), LONG_MAX when
 * one is negative (unlimited in llama.cpp) or not an integer, -1 when none is given. */
long gw_requested_max_tokens(json_t *doc)
{
    static const char *const names[] = {"max_tokens", "max_completion_tokens", "n_predict"};
    long most = -1;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *v = json_object_get(doc, names[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > (json_int_t)LONG_MAX)
            return LONG_MAX;
        if ((long)json_integer_value(v) > most)
            most = (long)json_integer_value(v);
    }
    return most;
}

/*
 * The model's proxy base with PATH appended (as llama-swap joins them: proxy
 * https://openrouter.ai/api + /v1/chat/completions), then the proxy's own query and QUERY.
 */
int gw_upstream_url(char *out, size_t size, const char *proxy, const char *path,
                    const char *query)
{
    size_t base_len = strcspn(proxy, "?");
    const char *base_query = proxy[base_len] == '?' ? proxy + base_len + 1 : "";
    bool has_query = query != NULL && query[0] != '\0';
    int n;

    if (base_len > 0 && proxy[base_len - 1] == '/')
        base_len--;
    n = snprintf(out, size, "%.*s%s%s%s%s%s", (int)base_len, proxy, path,
                 base_query[0] != '\0' || has_query ? "?" : "", base_query,
                 base_query[0] != '\0' && has_query ? "&" : "", has_query ? query : "");
    return n < 0 || (size_t)n >= size ? -1 : n;
}

#define PREFIX_MESSAGES 2
#define PREFIX_BYTES 1024

uint64_t gw_prefix_hash(json_t *doc)
{
    json_t *messages = json_object_get(doc, "messages");
    const char *prompt = json_string_value(json_object_get(doc, "prompt"));
    uint64_t h = IG_FNV1A_INIT;

    if (prompt != NULL) {
        size_t len = strlen(prompt);
        return ig_fnv1a(prompt, len < PREFIX_BYTES ? len : PREFIX_BYTES, h);
    }
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return 0;
    for (size_t i = 0; i < json_array_size(messages) && i < PREFIX_MESSAGES; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (role != NULL)
            h = ig_fnv1a(role, strlen(role), h);
        if (content != NULL)
            h = ig_fnv1a(content, strlen(content) < PREFIX_BYTES ? strlen(content) : PREFIX_BYTES,
                         h);
    }
    return h;
}
