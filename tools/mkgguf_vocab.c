/* A small byte-level BPE vocabulary (GPT-2 style, Llama 3 special tokens) for mkgguf. */
#include "mkgguf.h"

#include <stdlib.h>
#include <string.h>

/*
 * Layout, like Llama 3's: ids 0..255 are the 256 byte tokens written in GPT-2's byte-to-unicode
 * alphabet (printable bytes stand for themselves, the others map to U+0100 onwards: space is
 * "Ġ", newline "Ċ"); then one token per BPE merge learnt from the word list below; then filler
 * tokens up to the requested size; then the special tokens, last.
 *
 * Merges are built left to right per word ("h e", "he l", "hel l", "hell o"), so every merge's
 * result is a token. Filler tokens are "Ġ" + a capital + lowercase letters: the word list is
 * all lowercase, so they never collide with a merge result or a byte token.
 */
static const char *const mk_words[] = {
    " the",       " of",        " and",    " to",        " in",        " is",      " that",
    " for",       " it",        " with",   " as",        " was",       " on",      " be",
    " at",        " by",        " this",   " have",      " from",      " or",      " one",
    " had",       " not",       " but",    " what",      " all",       " were",    " when",
    " we",        " there",     " can",    " an",        " your",      " which",   " their",
    " said",      " if",        " do",     " will",      " each",      " about",   " how",
    " up",        " out",       " them",   " then",      " she",       " many",    " some",
    " so",        " these",     " would",  " other",     " into",      " has",     " more",
    " her",       " two",       " like",   " him",       " see",       " time",    " could",
    " no",        " make",      " than",   " first",     " been",      " its",     " who",
    " now",       " people",    " my",     " made",      " over",      " did",     " down",
    " only",      " way",       " find",   " use",       " may",       " water",   " long",
    " little",    " very",      " after",  " words",     " called",    " just",    " where",
    " most",      " know",      " get",    " through",   " back",      " much",    " good",
    " new",       " write",     " our",    " me",        " man",       " too",     " any",
    " day",       " same",      " right",  " look",      " think",     " also",    " around",
    " another",   " came",      " come",   " work",      " three",     " word",    " must",
    " because",   " does",      " part",   " even",      " place",     " well",    " such",
    " here",      " take",      " why",    " things",    " help",      " put",     " years",
    " different", " away",      " again",  " off",       " went",      " old",     " number",
    " great",     " tell",      " men",    " say",       " small",     " every",   " found",
    " still",     " between",   " name",   " should",    " home",      " big",     " give",
    " air",       " line",      " set",    " own",       " under",     " read",    " last",
    " never",     " us",        " left",   " end",       " along",     " while",   " might",
    " next",      " sound",     " below",  " saw",       " something", " thought", " both",
    " few",       " those",     " always", " looked",    " show",      " large",   " often",
    " together",  " asked",     " house",  " don",       " world",     " going",   " want",
    " school",    " important", " until",  " form",      " food",      " keep",    " children",
    " feet",      " land",      " side",   " without",   " boy",       " once",    " animals",
    " life",      " enough",    " took",   " sometimes", " hello",     " hi",      " yes",
    " please",    " thanks",    " model",  " answer",    " question",  " user",    " assistant",
    " system",    " story",     " tell",   " joke",      " code",      " data",    " test",
    " random",    "hello",      "the",     "user",       "assistant",  "system",   "what",
    "how",        "why",        "yes",     "no",         "ing",        "ed",       "er",
    "ly",         "tion",       "ment",    "ness",       "able",       "ful",      "less",
    "est",        "ions",       ".\n\n",   ",",          "!\n",        "?\n",      "\n\n",
    "  ",         "    ",
};

/* Special tokens, in id order after the filler; the first five are referenced below. */
static const char *const mk_specials[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>",        "<|eom_id|>",      "<|python_tag|>",
};
#define MK_N_WORDS (sizeof(mk_words) / sizeof(mk_words[0]))
#define MK_N_SPECIALS (sizeof(mk_specials) / sizeof(mk_specials[0]))
#define MK_TOKEN_NORMAL 1
#define MK_TOKEN_CONTROL 3

/* Writes GPT-2's unicode stand-in for byte b as UTF-8 into out (3 bytes, NUL-terminated). */
static void mk_byte_symbol(unsigned b, char out[3])
{
    unsigned cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        unsigned n = 0; /* rank of b among the bytes that are not printable stand-ins */
        for (unsigned i = 0; i < b; i++) {
            if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) {
                n++;
            }
        }
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

/* Returns 1 when s is already one of the first n strings. */
static int mk_contains(char *const *list, uint32_t n, const char *s)
{
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Appends a copy of s to list at *n (capacity cap); -1 when full or out of memory. */
static int mk_push(char **list, uint32_t *n, uint32_t cap, const char *s)
{
    if (*n >= cap) {
        return -1;
    }
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, s, len + 1);
    list[(*n)++] = copy;
    return 0;
}

/*
 * Learns merges for one word: the prefix grows one byte symbol at a time, and each step is a
 * merge "prefix symbol" whose result is appended as a token if new. Returns 0 or -1.
 */
static int mk_learn_word(struct mk_vocab *v, uint32_t cap, const char *word)
{
    char prefix[MK_MAX_TOKEN_BYTES] = "";
    size_t prefix_len = 0;
    for (const unsigned char *p = (const unsigned char *)word; *p; p++) {
        char sym[3];
        char merge[2 * MK_MAX_TOKEN_BYTES];
        mk_byte_symbol(*p, sym);
        size_t sym_len = strlen(sym);
        if (prefix_len + sym_len >= sizeof(prefix)) {
            return -1;
        }
        if (prefix_len > 0) {
            memcpy(merge, prefix, prefix_len);
            merge[prefix_len] = ' ';
            memcpy(merge + prefix_len + 1, sym, sym_len + 1);
        }
        memcpy(prefix + prefix_len, sym, sym_len + 1);
        prefix_len += sym_len;
        if (p == (const unsigned char *)word || mk_contains(v->tokens, v->n_tokens, prefix)) {
            continue;
        }
        if (mk_push(v->merges, &v->n_merges, cap, merge) != 0 ||
            mk_push(v->tokens, &v->n_tokens, cap, prefix) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Writes filler token number i: "Ġ", a capital from i, then base-26 lowercase letters. */
static void mk_filler_name(uint32_t i, char out[MK_MAX_TOKEN_BYTES])
{
    size_t len = 0;
    out[len++] = (char)0xC4; /* "Ġ" = U+0120 */
    out[len++] = (char)0xA0;
    out[len++] = (char)('A' + i % 26);
    for (i /= 26; i > 0; i = (i - 1) / 26) {
        out[len++] = (char)('a' + (i - 1) % 26);
    }
    out[len] = '\0';
}

/* Counts the tokens the fixed part of the vocabulary needs (bytes, merges, specials); 0 on OOM. */
static uint32_t mk_fixed_tokens(void)
{
    uint32_t count = 0;
    struct mk_vocab probe = {0};
    uint32_t cap = 256 + 64 * MK_N_WORDS;
    probe.tokens = calloc(cap, sizeof(char *));
    probe.merges = calloc(cap, sizeof(char *));
    if (probe.tokens == NULL || probe.merges == NULL) {
        goto out;
    }
    for (unsigned b = 0; b < 256; b++) {
        char sym[3];
        mk_byte_symbol(b, sym);
        if (mk_push(probe.tokens, &probe.n_tokens, cap, sym) != 0) {
            goto out;
        }
    }
    for (size_t w = 0; w < MK_N_WORDS; w++) {
        if (mk_learn_word(&probe, cap, mk_words[w]) != 0) {
            goto out;
        }
    }
    count = probe.n_tokens + (uint32_t)MK_N_SPECIALS;
out:
    mk_vocab_free(&probe);
    return count;
}

/* Smallest n_vocab mk_vocab_build() accepts (0 when out of memory). */
uint32_t mk_vocab_min_size(void)
{
    return mk_fixed_tokens();
}

/* Builds the vocabulary with exactly n_vocab tokens; 0 on success, -1 too small or no memory. */
int mk_vocab_build(struct mk_vocab *v, uint32_t n_vocab)
{
    int rc = -1;
    uint32_t fixed = mk_fixed_tokens();
    memset(v, 0, sizeof(*v));
    if (fixed == 0 || n_vocab < fixed) {
        goto out;
    }
    v->tokens = calloc(n_vocab, sizeof(char *));
    v->merges = calloc(n_vocab, sizeof(char *));
    v->token_types = calloc(n_vocab, sizeof(int32_t));
    if (v->tokens == NULL || v->merges == NULL || v->token_types == NULL) {
        goto out;
    }
    for (unsigned b = 0; b < 256; b++) {
        char sym[3];
        mk_byte_symbol(b, sym);
        if (mk_push(v->tokens, &v->n_tokens, n_vocab, sym) != 0) {
            goto out;
        }
    }
    for (size_t w = 0; w < MK_N_WORDS; w++) {
        if (mk_learn_word(v, n_vocab, mk_words[w]) != 0) {
            goto out;
        }
    }
    for (uint32_t i = 0; v->n_tokens < n_vocab - MK_N_SPECIALS; i++) {
        char name[MK_MAX_TOKEN_BYTES];
        mk_filler_name(i, name);
        if (mk_push(v->tokens, &v->n_tokens, n_vocab, name) != 0) {
            goto out;
        }
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        v->token_types[i] = i < n_vocab - MK_N_SPECIALS ? MK_TOKEN_NORMAL : MK_TOKEN_CONTROL;
    }
    uint32_t first_special = v->n_tokens;
    for (size_t s = 0; s < MK_N_SPECIALS; s++) {
        if (mk_push(v->tokens, &v->n_tokens, n_vocab, mk_specials[s]) != 0) {
            goto out;
        }
    }
    v->bos_id = first_special;     /* <|begin_of_text|> */
    v->eos_id = first_special + 4; /* <|eot_id|>, as in Llama 3 instruct models */
    v->eot_id = first_special + 4;
    rc = 0;
out:
    if (rc != 0) {
        mk_vocab_free(v);
    }
    return rc;
}

/* Frees the strings and arrays the vocab owns, and zeroes it. */
void mk_vocab_free(struct mk_vocab *v)
{
    for (uint32_t i = 0; v->tokens != NULL && i < v->n_tokens; i++) {
        free(v->tokens[i]);
    }
    for (uint32_t i = 0; v->merges != NULL && i < v->n_merges; i++) {
        free(v->merges[i]);
    }
    free(v->tokens);
    free(v->merges);
    free(v->token_types);
    memset(v, 0, sizeof(*v));
}
