/* Completion request parsing for fake-llama-server: prompt hashing, token budget, stops. */
#include "fake.h"

#include <string.h>

/*
 * The generated text depends only on what the model would see (message roles and text, or
 * the prompt) and the seed: never on "model", so a gateway's renaming or aliasing of models
 * cannot change it.
 */

/* Adds one message content (string, parts array or null) to *HASH and *WORDS. */
static const char *add_content(json_t *content, uint64_t *hash, int *words)
{
    size_t i;
    json_t *part;

    if (json_is_null(content) || content == NULL)
        return NULL;
    if (json_is_string(content)) {
        *hash = fake_hash_bytes(*hash, json_string_value(content), json_string_length(content));
        *words += fake_count_words(json_string_value(content), json_string_length(content));
        return NULL;
    }
    if (!json_is_array(content))
        return "Invalid 'content' type";
    json_array_foreach(content, i, part)
    {
        json_t *text = json_object_get(part, "text");

        if (json_is_string(text)) {
            *hash = fake_hash_bytes(*hash, json_string_value(text), json_string_length(text));
            *words += fake_count_words(json_string_value(text), json_string_length(text));
        }
    }
    return NULL;
}

/* Hashes the chat messages (role and content of each) and counts their words. */
static const char *parse_messages(json_t *messages, struct fake_cmpl_params *p)
{
    uint64_t hash = FAKE_HASH_INIT;
    const char *problem = NULL;
    size_t i;
    json_t *m;

    if (messages == NULL)
        return "'messages' is required";
    if (!json_is_array(messages))
        return "Expected 'messages' to be an array";
    json_array_foreach(messages, i, m)
    {
        json_t *role = json_object_get(m, "role");

        if (!json_is_object(m) || !json_is_string(role))
            return "Each message must be an object with a string 'role'";
        hash = fake_hash_bytes(hash, json_string_value(role), json_string_length(role));
        hash = fake_hash_bytes(hash, "\x1f", 1);
        problem = add_content(json_object_get(m, "content"), &hash, &p->prompt_tokens);
        if (problem != NULL)
            return problem;
        hash = fake_hash_bytes(hash, "\x1e", 1);
    }
    p->gen.prompt_hash = hash;
    return NULL;
}

/* Hashes one prompt element: a string, a token id or an array of token ids. */
static const char *add_prompt_item(json_t *item, uint64_t *hash, int *words)
{
    size_t i;
    json_t *tok;

    if (json_is_string(item)) {
        *hash = fake_hash_bytes(*hash, json_string_value(item), json_string_length(item));
        *words += fake_count_words(json_string_value(item), json_string_length(item));
        return NULL;
    }
    if (json_is_integer(item)) {
        json_int_t v = json_integer_value(item);

        *hash = fake_hash_bytes(*hash, &v, sizeof(v));
        *words += 1;
        return NULL;
    }
    if (!json_is_array(item))
        return "\"prompt\" must be a string, a list of tokens or a list of strings";
    json_array_foreach(item, i, tok)
    {
        json_int_t v = json_integer_value(tok);

        if (!json_is_integer(tok))
            return "\"prompt\" must be a string, a list of tokens or a list of strings";
        *hash = fake_hash_bytes(*hash, &v, sizeof(v));
        *words += 1;
    }
    return NULL;
}

/* Hashes a completion "prompt" (string, tokens, strings, or lists of tokens). */
static const char *parse_prompt(json_t *prompt, struct fake_cmpl_params *p)
{
    uint64_t hash = FAKE_HASH_INIT;
    const char *problem = NULL;
    size_t i;
    json_t *item;

    if (prompt == NULL)
        return "[json.exception.out_of_range.403] key 'prompt' not found";
    if (!json_is_array(prompt)) {
        problem = add_prompt_item(prompt, &hash, &p->prompt_tokens);
    } else {
        json_array_foreach(prompt, i, item)
        {
            problem = add_prompt_item(item, &hash, &p->prompt_tokens);
            if (problem != NULL)
                break;
        }
    }
    p->gen.prompt_hash = hash;
    return problem;
}

/* Reads "stop" (a string or an array of strings) into G, borrowing the strings. */
static const char *parse_stops(json_t *stop, struct fake_gen_req *g)
{
    json_t *one = stop;
    size_t n = json_is_array(stop) ? json_array_size(stop) : 1;

    if (stop == NULL || json_is_null(stop))
        return NULL;
    if (!json_is_string(stop) && !json_is_array(stop))
        return "\"stop\" must be a string or an array of strings";
    if (n > FAKE_MAX_STOPS)
        return "at most 16 stop strings are supported";
    for (size_t i = 0; i < n; i++) {
        if (json_is_array(stop))
            one = json_array_get(stop, i);
        if (!json_is_string(one))
            return "\"stop\" must be a string or an array of strings";
        if (json_string_length(one) > FAKE_MAX_STOP_BYTES)
            return "a stop string is longer than 256 bytes";
        if (json_string_length(one) == 0)
            continue;
        g->stops[g->n_stops] = json_string_value(one);
        g->stop_lens[g->n_stops++] = json_string_length(one);
    }
    return NULL;
}

/* Returns the token budget: n_predict, else max_completion_tokens, else max_tokens. */
static int parse_n_predict(json_t *root)
{
    static const char *const keys[] = {"n_predict", "max_completion_tokens", "max_tokens"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(root, keys[i]);

        if (!json_is_integer(v))
            continue;
        if (json_integer_value(v) < 0)
            return FAKE_DEFAULT_TOKENS; /* llama-server's -1 means "until EOS" */
        return json_integer_value(v) > FAKE_MAX_TOKENS ? FAKE_MAX_TOKENS
                                                       : (int)json_integer_value(v);
    }
    return FAKE_DEFAULT_TOKENS;
}

const char *fake_cmpl_parse(json_t *root, enum fake_api api, struct fake_cmpl_params *p)
{
    json_t *opts = json_object_get(root, "stream_options");
    const char *problem;

    p->api = api;
    p->is_stream = json_is_true(json_object_get(root, "stream"));
    p->include_usage = json_is_true(json_object_get(opts, "include_usage"));
    p->timings_per_token = json_is_true(json_object_get(root, "timings_per_token"));
    p->gen.n_predict = parse_n_predict(root);
    p->gen.seed = json_integer_value(json_object_get(root, "seed"));
    problem = api == FAKE_API_CHAT ? parse_messages(json_object_get(root, "messages"), p)
                                   : parse_prompt(json_object_get(root, "prompt"), p);
    if (problem == NULL)
        problem = parse_stops(json_object_get(root, "stop"), &p->gen);
    if (p->prompt_tokens < 1)
        p->prompt_tokens = 1;
    return problem;
}
