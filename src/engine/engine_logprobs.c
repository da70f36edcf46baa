/* Token log-probabilities: computed on the inference thread, rendered as JSON on the loop. */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Like llama-server (without post_sampling_probs), probabilities are the softmax of the raw
 * logits of the whole vocabulary, before the sampler chain: they describe the model, not the
 * sampling settings, so exp() of all of them sums to 1 and of the top N to at most 1.
 */

int eng_probs_add(struct eng_probs *out, const float *logits, int n_vocab, llama_token token,
                  int n_top)
{
    struct eng_prob top[ENG_MAX_N_PROBS];
    int n = 0;
    float max = -INFINITY;
    double sum = 0.0;

    if (out->len + (size_t)n_top + 1 > out->cap) {
        size_t cap = out->cap > 0 ? out->cap * 2 : 64;
        while (cap < out->len + (size_t)n_top + 1)
            cap *= 2;
        struct eng_prob *items = realloc(out->items, cap * sizeof(*items));
        if (items == NULL)
            return -1;
        out->items = items;
        out->cap = cap;
    }
    for (int i = 0; i < n_vocab; i++)
        max = logits[i] > max ? logits[i] : max;
    for (int i = 0; i < n_vocab; i++) {
        sum += exp((double)(logits[i] - max));
        /* Insertion into the short sorted list of the N_TOP largest logits. */
        if (n_top == 0 || (n == n_top && logits[i] <= top[n - 1].logprob))
            continue;
        int at = n < n_top ? n++ : n - 1;
        while (at > 0 && top[at - 1].logprob < logits[i]) {
            top[at] = top[at - 1];
            at--;
        }
        top[at].id = i;
        top[at].logprob = logits[i];
    }
    double log_sum = log(sum);
    struct eng_prob *rec = out->items + out->len;
    rec[0].id = token;
    rec[0].logprob = (float)((double)(logits[token] - max) - log_sum);
    for (int i = 0; i < n_top; i++) {
        rec[1 + i].id = i < n ? top[i].id : LLAMA_TOKEN_NULL;
        rec[1 + i].logprob = i < n ? (float)((double)(top[i].logprob - max) - log_sum) : -INFINITY;
    }
    out->len += (size_t)n_top + 1;
    return 0;
}

int eng_probs_move(struct eng_probs *dst, struct eng_probs *src)
{
    if (dst->len + src->len > dst->cap) {
        size_t cap = dst->cap > 0 ? dst->cap : 64;
        while (cap < dst->len + src->len)
            cap *= 2;
        struct eng_prob *items = realloc(dst->items, cap * sizeof(*items));
        if (items == NULL)
            return -1;
        dst->items = items;
        dst->cap = cap;
    }
    if (src->len > 0)
        memcpy(dst->items + dst->len, src->items, src->len * sizeof(*src->items));
    dst->len += src->len;
    src->len = 0;
    return 0;
}

void eng_probs_release(struct eng_probs *p)
{
    free(p->items);
    memset(p, 0, sizeof(*p));
}

/* Returns {"id","token","bytes","logprob"} for one entry (new reference). */
static json_t *entry_json(const struct engine *e, const struct eng_prob *p)
{
    char piece[256];
    struct eng_text text = {0};
    int n = llama_token_to_piece(e->vocab, p->id, piece, (int32_t)sizeof(piece), 0, true);
    json_t *bytes = json_array();
    json_t *token = NULL;

    n = n > 0 ? n : 0;
    for (int i = 0; i < n; i++)
        json_array_append_new(bytes, json_integer((unsigned char)piece[i]));
    if (eng_utf8_append_valid(&text, piece, (size_t)n) == 0)
        token = json_stringn(text.data != NULL ? text.data : "", text.len);
    eng_text_release(&text);
    return json_pack("{s:i,s:o,s:o,s:f}", "id", p->id, "token",
                     token != NULL ? token : json_string(""), "bytes", bytes, "logprob",
                     isfinite(p->logprob) ? (double)p->logprob : -9999.0);
}

json_t *eng_probs_json(const struct engine *e, const struct eng_probs *p, int n_top, size_t from,
                       size_t to)
{
    json_t *arr = json_array();
    size_t stride = (size_t)n_top + 1;
    for (size_t r = from; r < to && (r + 1) * stride <= p->len; r++) {
        const struct eng_prob *rec = p->items + r * stride;
        json_t *o = entry_json(e, &rec[0]);
        json_t *top = json_array();
        for (int i = 0; i < n_top; i++) {
            if (rec[1 + i].id != LLAMA_TOKEN_NULL)
                json_array_append_new(top, entry_json(e, &rec[1 + i]));
        }
        json_object_set_new(o, "top_logprobs", top);
        json_array_append_new(arr, o);
    }
    return arr;
}
