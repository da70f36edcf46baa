/*
 * Fuzz harness: the GGUF metadata reader on arbitrary bytes taken as a whole file, then
 * what discovery and the budget do with a file that was accepted: key lookups, tensor
 * lookups, capability names, split-part folding and memory estimates for a few engine
 * settings (CPU, every layer on a GPU, embeddings, KV cache kept in RAM).
 */
#include "gguf_meta.h"
#include "model_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Keys the catalog and the estimate read. */
static const char *const keys[] = {
    "general.architecture",    "general.name",         "general.file_type",
    "general.alignment",       "tokenizer.ggml.model", "tokenizer.ggml.tokens",
    "tokenizer.chat_template", "split.count",          "split.no",
    "llama.context_length",    "llama.block_count",    "llama.attention.head_count_kv",
    "llama.embedding_length",  "bert.pooling_type",
};

/* Reads what the rest of the gateway reads from an accepted file. */
static void use_meta(const struct gguf_meta *meta)
{
    const char *names[8];
    enum gguf_value_type elem_type;
    uint64_t u, n;
    int64_t i;
    double f;

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        int type = gguf_meta_key_type(meta, keys[k]);
        /* A value found by any getter belongs to a key that exists. */
        if ((gguf_meta_get_u64(meta, keys[k], &u) == 0 && type < 0) ||
            (gguf_meta_get_i64(meta, keys[k], &i) == 0 && type < 0) ||
            (gguf_meta_get_f64(meta, keys[k], &f) == 0 && type < 0) ||
            (gguf_meta_get_str(meta, keys[k]) != NULL && type != GGUF_TYPE_STRING) ||
            (gguf_meta_get_array(meta, keys[k], &elem_type, &n) == 0 && type != GGUF_TYPE_ARRAY))
            abort();
        (void)gguf_value_type_name(type);
    }
    for (size_t k = 0; gguf_meta_key_at(meta, k) != NULL; k++)
        (void)gguf_meta_key_type(meta, gguf_meta_key_at(meta, k));
    for (size_t t = 0; t < meta->n_tensors; t++) {
        if (gguf_meta_tensor(meta, meta->tensors[t].name) == NULL)
            abort(); /* every tensor the reader kept must be found by its name */
        (void)gguf_ggml_type_name(meta->tensors[t].type);
    }
    (void)gguf_meta_tensor(meta, "output.weight");
    (void)gguf_file_type_name(meta->file_type);
    if (gguf_cap_names(meta->caps, names) > 6)
        abort();
}

/* Estimates the memory of META as discovery and the budget do, for several settings. */
static void estimate(const struct gguf_meta *meta)
{
    static const struct model_mem_params params[] = {
        {0, 0, 0, 0, 0, 0, 0},
        {8192, 1, 512, 0, 1, -1, 0},
        {512, 8, 4096, 1, 4, 3, 1},
        {4294967295u, 4294967295u, 4294967295u, 0, 0, 2147483647, 0},
    };
    struct model_mem_estimate est;

    if (model_mem_estimate(meta, NULL, &est) != 0)
        return;
    /* Every setting works when the defaults do: the same hyper-parameters are needed. */
    for (size_t p = 0; p < sizeof(params) / sizeof(params[0]); p++)
        if (model_mem_estimate(meta, &params[p], &est) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_meta meta, part;
    char *cause = NULL;

    if (gguf_meta_read_mem(data, size, &meta, &cause) != 0) {
        free(cause);
        return 0;
    }
    use_meta(&meta);
    estimate(&meta);
    /* A split model: the same bytes as a second part, folded into the first. */
    if (gguf_meta_read_mem(data, size, &part, &cause) == 0) {
        if (gguf_meta_add_part(&meta, &part) == 0)
            estimate(&meta);
        gguf_meta_free(&part);
    } else {
        free(cause);
    }
    gguf_meta_free(&meta);
    return 0;
}
