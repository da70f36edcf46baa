/* Memory estimate for an infergate-engine process serving one GGUF model. */
#include "model_mem.h"

#include <stdlib.h>
#include <string.h>

#define MEM_DEFAULT_CTX 4096u
#define MEM_DEFAULT_PARALLEL 4u
#define MEM_DEFAULT_BATCH 2048u
#define MEM_DEFAULT_UBATCH 512u
/* libllama rounds each stream's KV cells up to a multiple of this. */
#define MEM_KV_CELL_PAD 256u

/* Returns A * B, saturating at UINT64_MAX. */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return a != 0 && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* Returns A + B, saturating at UINT64_MAX. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* Returns whether ARCH has no KV cache in libllama (encoder-only, non-causal attention). */
static int has_no_kv_cache(const char *arch)
{
    static const char *const encoders[] = {"bert",         "nomic-bert",   "nomic-bert-moe",
                                           "jina-bert-v2", "jina-bert-v3", "modern-bert",
                                           "neo-bert",     "t5encoder"};
    for (size_t i = 0; arch != NULL && i < sizeof(encoders) / sizeof(encoders[0]); i++) {
        if (strcmp(arch, encoders[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Returns the layer of the tensor NAME in libllama's placement: its block for "blk.N.",
 * N_LAYER for the output layer (output, output_norm), -1 for the input layer and the rest,
 * which stay in RAM. */
static long tensor_layer(const char *name, uint64_t n_layer)
{
    if (strncmp(name, "blk.", 4) == 0) {
        char *end = NULL;
        unsigned long long il = strtoull(name + 4, &end, 10);
        return end != name + 4 && *end == '.' && il < n_layer ? (long)il : -1;
    }
    if (strncmp(name, "output.", 7) == 0 || strncmp(name, "output_norm.", 12) == 0) {
        return (long)n_layer;
    }
    return -1;
}

/*
 * Moves what P->n_gpu_layers offloads from OUT's RAM terms to its VRAM terms, placing layers
 * as libllama does: the output layer counts as layer N_LAYER, and the last NGL of the
 * N_LAYER + 1 layers go to the GPUs (the input layer, token_embd, never does). Offloaded
 * blocks take their KV cache along unless P->is_kv_on_cpu. The GPU compute buffer is sized
 * like the CPU one, which stays (the host still runs the input layer and the sampling).
 */
static void split_for_gpu(const struct gguf_meta *meta, const struct model_mem_params *p,
                          struct model_mem_estimate *out)
{
    uint64_t n_layer = meta->block_count > UINT32_MAX ? UINT32_MAX : meta->block_count, moved = 0;
    uint64_t ngl = p->n_gpu_layers < 0 || (uint64_t)p->n_gpu_layers > n_layer + 1
                       ? n_layer + 1
                       : (uint64_t)p->n_gpu_layers;
    uint64_t first_gpu = n_layer + 1 - ngl, gpu_blocks = ngl > 0 ? ngl - 1 : 0;

    if (ngl == 0) {
        return;
    }
    for (size_t i = 0; i < meta->n_tensors; i++) {
        long il = tensor_layer(meta->tensors[i].name, n_layer);
        if (il >= 0 && (uint64_t)il >= first_gpu) {
            moved = add_sat(moved, meta->tensors[i].n_bytes);
        }
    }
    out->vram_weights_bytes = moved;
    out->weights_bytes -= moved < out->weights_bytes ? moved : out->weights_bytes;
    /* Tied embeddings: the output layer uses a GPU copy of token_embd, which stays in RAM. */
    const struct gguf_tensor_info *embd = gguf_meta_tensor(meta, "token_embd.weight");
    if (!meta->has_output_tensor && embd != NULL) {
        out->vram_weights_bytes = add_sat(out->vram_weights_bytes, embd->n_bytes);
    }
    if (!p->is_kv_on_cpu) {
        out->vram_kv_bytes = out->kv_bytes / n_layer * gpu_blocks;
        out->kv_bytes -= out->vram_kv_bytes;
    }
    out->vram_compute_bytes = out->compute_bytes;
    out->vram_bytes = add_sat(add_sat(add_sat(out->vram_weights_bytes, out->vram_kv_bytes),
                                      out->vram_compute_bytes),
                              MODEL_MEM_GPU_OVERHEAD_BYTES);
    out->n_gpu_layers = (uint32_t)ngl;
}

/*
 * The terms follow what libllama allocates and what a CPU engine actually touches (measured
 * RSS, docs/MODELS.md):
 *  - weights: the whole file is mmapped with MAP_POPULATE, so all of it is resident;
 *  - KV: 2 (K and V) x layers x n_ctx cells x kv width x element size, kv width being
 *    head_dim x head_count_kv (key_length / value_length when the file gives them); with
 *    kv_unified off each of the n_parallel streams holds n_ctx / n_parallel cells rounded up
 *    to a multiple of 256, which sums to n_ctx for the usual sizes;
 *  - compute: per micro-batch token, the f32 activations that live at once (about 4 x n_embd
 *    for the attention side, 3 x n_ff for the gated FFN), the f16 attention mask over one
 *    stream's cells, and the outputs (logits for one token per slot, or the embeddings of
 *    every token of the micro-batch);
 *  - vocab: token and merge tables on the heap, MODEL_MEM_VOCAB_ENTRY_BYTES per token;
 *  - overhead: MODEL_MEM_OVERHEAD_BYTES;
 *  - with -ngl, split_for_gpu() moves the offloaded part to the VRAM terms.
 */
int model_mem_estimate(const struct gguf_meta *meta, const struct model_mem_params *params,
                       struct model_mem_estimate *out)
{
    static const struct model_mem_params defaults = {0};
    const struct model_mem_params *p = params != NULL ? params : &defaults;
    memset(out, 0, sizeof(*out));
    if (meta->embedding_length == 0 || meta->block_count == 0 || meta->head_count == 0) {
        return IG_EINVAL;
    }
    uint64_t n_ctx = p->n_ctx;
    if (n_ctx == 0) {
        n_ctx = meta->context_length > 0 && meta->context_length < MEM_DEFAULT_CTX
                    ? meta->context_length
                    : MEM_DEFAULT_CTX;
    }
    uint64_t n_par = p->n_parallel > 0 ? p->n_parallel : MEM_DEFAULT_PARALLEL;
    uint64_t n_batch = p->n_batch > 0 ? p->n_batch : MEM_DEFAULT_BATCH;
    uint64_t n_ubatch =
        p->is_embedding || n_batch < MEM_DEFAULT_UBATCH ? n_batch : MEM_DEFAULT_UBATCH;
    uint64_t kv_elem = p->kv_bytes_per_elem > 0 ? p->kv_bytes_per_elem : 2;
    uint64_t n_embd = meta->embedding_length;
    uint64_t head_dim = n_embd / meta->head_count;
    uint64_t k_dim = meta->key_length > 0 ? meta->key_length : head_dim;
    uint64_t v_dim = meta->value_length > 0 ? meta->value_length : head_dim;
    uint64_t n_ff = meta->feed_forward_length > 0 ? meta->feed_forward_length : 4 * n_embd;

    out->weights_bytes =
        meta->file_bytes > meta->weight_bytes ? meta->file_bytes : meta->weight_bytes;
    uint64_t cells_per_stream = n_ctx / n_par > 0 ? n_ctx / n_par : 1;
    cells_per_stream = (cells_per_stream + MEM_KV_CELL_PAD - 1) / MEM_KV_CELL_PAD * MEM_KV_CELL_PAD;
    if (!has_no_kv_cache(meta->architecture)) {
        uint64_t width = mul_sat(add_sat(k_dim, v_dim), meta->head_count_kv);
        uint64_t cells = mul_sat(cells_per_stream, n_par);
        out->kv_bytes = mul_sat(mul_sat(mul_sat(meta->block_count, cells), width), kv_elem);
    }
    uint64_t per_token = mul_sat(add_sat(mul_sat(4, n_embd), mul_sat(3, n_ff)), 4);
    uint64_t compute = mul_sat(n_ubatch, per_token);
    compute = add_sat(compute, mul_sat(mul_sat(n_ubatch, cells_per_stream), 2));
    if (p->is_embedding) {
        compute = add_sat(compute, mul_sat(mul_sat(n_ubatch, n_embd), 4));
    } else {
        compute = add_sat(compute, mul_sat(mul_sat(n_par, meta->vocab_size), 4));
    }
    out->compute_bytes = compute;
    out->vocab_bytes = mul_sat(meta->vocab_size, MODEL_MEM_VOCAB_ENTRY_BYTES);
    out->overhead_bytes = MODEL_MEM_OVERHEAD_BYTES;
    split_for_gpu(meta, p, out);
    out->total_bytes =
        add_sat(add_sat(add_sat(add_sat(out->weights_bytes, out->kv_bytes), out->compute_bytes),
                        out->vocab_bytes),
                out->overhead_bytes);
    out->n_ctx = n_ctx > UINT32_MAX ? UINT32_MAX : (uint32_t)n_ctx;
    out->n_ubatch = (uint32_t)n_ubatch;
    return 0;
}
