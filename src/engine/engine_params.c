/* Request sampling parameters: llama-server's and OpenAI's spellings into struct eng_sampling. */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ENG_MAX_LOGIT_BIAS 4096
#define ENG_MAX_GRAMMAR_BYTES (64u << 10)

/* Returns the number in V, or DEF when V is not a number. */
static double num_or(json_t *v, double def)
{
    return json_is_number(v) ? json_number_value(v) : def;
}

/* Parses the stop strings of ROOT into S; NULL or a reason for a 400. */
static const char *parse_stops(json_t *stop, struct eng_sampling *s)
{
    if (stop == NULL || json_is_null(stop))
        return NULL;
    if (json_is_string(stop)) {
        if (json_string_length(stop) == 0)
            return NULL;
        if (json_string_length(stop) > ENG_MAX_STOP_BYTES)
            return "'stop' strings are limited to 256 bytes";
        s->stops[0] = strdup(json_string_value(stop));
        s->n_stops = s->stops[0] != NULL ? 1 : 0;
        return s->n_stops == 1 ? NULL : "out of memory";
    }
    if (!json_is_array(stop) || json_array_size(stop) > ENG_MAX_STOPS)
        return "'stop' must be a string or an array of at most 16 strings";
    for (size_t i = 0; i < json_array_size(stop); i++) {
        json_t *item = json_array_get(stop, i);
        if (!json_is_string(item) || json_string_length(item) > ENG_MAX_STOP_BYTES)
            return "'stop' must be a string or an array of at most 16 strings";
        if (json_string_length(item) == 0)
            continue;
        s->stops[s->n_stops] = strdup(json_string_value(item));
        if (s->stops[s->n_stops] == NULL)
            return "out of memory";
        s->n_stops++;
    }
    return NULL;
}

/* Reads a bias value: a number, or false for "never" (llama.cpp's array form). */
static bool bias_value(json_t *v, float *bias)
{
    if (json_is_false(v)) {
        *bias = -INFINITY;
        return true;
    }
    if (!json_is_number(v))
        return false;
    *bias = (float)json_number_value(v);
    return true;
}

/* Adds one (ID, BIAS) pair to S after checking ID against the vocabulary. */
static bool bias_add(struct eng_sampling *s, long long id, float bias, int n_vocab)
{
    if (id < 0 || id >= n_vocab)
        return false;
    s->logit_bias[s->n_logit_bias].token = (llama_token)id;
    s->logit_bias[s->n_logit_bias].bias = bias;
    s->n_logit_bias++;
    return true;
}

/*
 * Parses logit_bias: OpenAI's {"token_id": bias} object or llama.cpp's [[id, bias]] array
 * (bias false bans the token). At most 4096 entries.
 */
static const char *parse_logit_bias(json_t *lb, struct eng_sampling *s, int n_vocab)
{
    static const char bad[] = "'logit_bias' must map valid token ids to numbers";
    size_t n = json_is_object(lb) ? json_object_size(lb) : json_array_size(lb);
    if (lb == NULL || json_is_null(lb))
        return NULL;
    if (!json_is_object(lb) && !json_is_array(lb))
        return bad;
    if (n > ENG_MAX_LOGIT_BIAS)
        return "'logit_bias' has more than 4096 entries";
    if (n == 0)
        return NULL;
    s->logit_bias = calloc(n, sizeof(*s->logit_bias));
    if (s->logit_bias == NULL)
        return "out of memory";
    if (json_is_object(lb)) {
        const char *key;
        json_t *v;
        json_object_foreach(lb, key, v)
        {
            char *end = NULL;
            long long id = strtoll(key, &end, 10);
            float bias;
            if (end == key || *end != '\0' || !bias_value(v, &bias) ||
                !bias_add(s, id, bias, n_vocab))
                return bad;
        }
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *pair = json_array_get(lb, i);
        float bias;
        if (json_array_size(pair) != 2 || !json_is_integer(json_array_get(pair, 0)) ||
            !bias_value(json_array_get(pair, 1), &bias) ||
            !bias_add(s, json_integer_value(json_array_get(pair, 0)), bias, n_vocab))
            return bad;
    }
    return NULL;
}

/*
 * Parses the probability fields: llama.cpp's n_probs, and for chat OpenAI's logprobs (bool)
 * with top_logprobs (0..20).
 */
static const char *parse_probs(json_t *root, struct eng_sampling *s, bool is_chat)
{
    json_t *logprobs = json_object_get(root, "logprobs");
    json_t *top = json_object_get(root, "top_logprobs");
    double n_probs = num_or(json_object_get(root, "n_probs"), 0);
    if (is_chat && json_is_true(logprobs)) {
        double n = num_or(top, 0);
        if (n < 0 || n > ENG_MAX_N_PROBS)
            return "'top_logprobs' must be between 0 and 20";
        s->has_probs = true;
        s->n_probs = (int)n;
        return NULL;
    }
    if (is_chat && top != NULL && !json_is_null(top))
        return "'top_logprobs' requires 'logprobs' to be true";
    if (n_probs < 0 || n_probs > ENG_MAX_N_PROBS)
        return "'n_probs' must be between 0 and 20";
    s->n_probs = (int)n_probs;
    s->has_probs = s->n_probs > 0;
    return NULL;
}

/*
 * Takes a GBNF grammar's text into S->grammar; NULL or a reason for a 400. It is parsed on the
 * inference thread with the sampler chain (a parse error then ends the task with a 400 before
 * any output), so the loop thread makes no llama call for it.
 */
static const char *parse_grammar(json_t *grammar, struct eng_sampling *s)
{
    if (grammar == NULL || json_is_null(grammar))
        return NULL;
    if (!json_is_string(grammar))
        return "'grammar' must be a string";
    if (json_string_length(grammar) > ENG_MAX_GRAMMAR_BYTES)
        return "'grammar' is limited to 65536 bytes";
    if (json_string_length(grammar) == 0)
        return NULL;
    s->grammar = strdup(json_string_value(grammar));
    return s->grammar != NULL ? NULL : "out of memory";
}

const char *eng_sampling_parse(json_t *root, struct eng_sampling *s, const struct engine *e,
                               bool is_chat)
{
    json_t *seed = json_object_get(root, "seed");
    json_t *n_predict = json_object_get(root, "n_predict");
    const char *problem;

    s->temperature = (float)num_or(json_object_get(root, "temperature"), 0.8);
    s->top_k = (int)num_or(json_object_get(root, "top_k"), 40);
    s->top_p = (float)num_or(json_object_get(root, "top_p"), 0.95);
    s->min_p = (float)num_or(json_object_get(root, "min_p"), 0.05);
    s->typical_p = (float)num_or(json_object_get(root, "typical_p"), 1.0);
    s->repeat_penalty = (float)num_or(json_object_get(root, "repeat_penalty"), 1.0);
    s->repeat_last_n = (int)num_or(json_object_get(root, "repeat_last_n"), 64);
    s->presence_penalty = (float)num_or(json_object_get(root, "presence_penalty"), 0.0);
    s->frequency_penalty = (float)num_or(json_object_get(root, "frequency_penalty"), 0.0);
    if (s->repeat_last_n < -1)
        return "'repeat_last_n' must be -1 or more";
    if (s->repeat_last_n == -1 || s->repeat_last_n > e->n_ctx_slot)
        s->repeat_last_n = e->n_ctx_slot;
    if (!(s->repeat_penalty > 0.0f) || !isfinite(s->presence_penalty) ||
        !isfinite(s->frequency_penalty))
        return "'repeat_penalty' must be positive and the other penalties finite";
    s->seed = json_is_integer(seed) && json_integer_value(seed) >= 0
                  ? (uint32_t)json_integer_value(seed)
                  : LLAMA_DEFAULT_SEED;
    if (!json_is_number(n_predict))
        n_predict = json_object_get(root, "max_completion_tokens");
    if (!json_is_number(n_predict))
        n_predict = json_object_get(root, "max_tokens");
    s->n_predict = (int)num_or(n_predict, -1);
    if (s->n_predict < -1)
        s->n_predict = -1;
    s->ignore_eos = json_is_true(json_object_get(root, "ignore_eos"));
    problem = parse_stops(json_object_get(root, "stop"), s);
    if (problem == NULL)
        problem = parse_logit_bias(json_object_get(root, "logit_bias"), s, e->n_vocab);
    if (problem == NULL)
        problem = parse_probs(root, s, is_chat);
    if (problem == NULL)
        problem = parse_grammar(json_object_get(root, "grammar"), s);
    return problem;
}

struct llama_sampler *eng_sampler_new(const struct eng_sampling *s, const struct llama_vocab *vocab,
                                      bool *is_bad_grammar)
{
    struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    int n_vocab = llama_vocab_n_tokens(vocab);
    cp.no_perf = true;
    *is_bad_grammar = false;
    struct llama_sampler *chain = llama_sampler_chain_init(cp);
    if (chain == NULL)
        return NULL;
    /* The order of llama.cpp's common sampler: constraints first, then truncation, then temp. */
    if (s->grammar != NULL) {
        struct llama_sampler *grammar = llama_sampler_init_grammar(vocab, s->grammar, "root");
        if (grammar == NULL) {
            *is_bad_grammar = true;
            llama_sampler_free(chain);
            return NULL;
        }
        llama_sampler_chain_add(chain, grammar); /* the chain owns it now */
    }
    if (s->n_logit_bias > 0)
        llama_sampler_chain_add(
            chain, llama_sampler_init_logit_bias(n_vocab, s->n_logit_bias, s->logit_bias));
    if (s->repeat_last_n != 0 &&
        (s->repeat_penalty != 1.0f || s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f))
        llama_sampler_chain_add(
            chain, llama_sampler_init_penalties(n_vocab, s->repeat_last_n, s->repeat_penalty,
                                                s->frequency_penalty, s->presence_penalty));
    if (s->temperature <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        return chain;
    }
    if (s->top_k > 0)
        llama_sampler_chain_add(chain, llama_sampler_init_top_k(s->top_k));
    if (s->typical_p < 1.0f)
        llama_sampler_chain_add(chain, llama_sampler_init_typical(s->typical_p, 1));
    if (s->top_p < 1.0f)
        llama_sampler_chain_add(chain, llama_sampler_init_top_p(s->top_p, 1));
    if (s->min_p > 0.0f)
        llama_sampler_chain_add(chain, llama_sampler_init_min_p(s->min_p, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(s->temperature));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(s->seed));
    return chain;
}

void eng_sampling_release(struct eng_sampling *s)
{
    for (size_t i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    s->n_stops = 0;
    free(s->logit_bias);
    s->logit_bias = NULL;
    s->n_logit_bias = 0;
    free(s->grammar);
    s->grammar = NULL;
}
