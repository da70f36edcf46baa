/*
 * Memory estimate for serving a GGUF model on infergate-engine (libllama, CPU): mapped
 * weights + KV cache + compute buffers + vocabulary + fixed overhead. The formula and its
 * calibration are in docs/MODELS.md.
 */
#ifndef IG_MODEL_MEM_H
#define IG_MODEL_MEM_H

#include <stdint.h>

#include "gguf_meta.h"

/* Engine settings the estimate depends on; zero fields take the engine's defaults. */
struct model_mem_params {
    uint32_t n_ctx;             /* total context (-c); 0: min(training context, 4096) */
    uint32_t n_parallel;        /* slots (-np); 0: 4 */
    uint32_t n_batch;           /* logical batch (-b); 0: 2048 */
    int is_embedding;           /* --embeddings: the micro-batch is the whole batch */
    uint32_t kv_bytes_per_elem; /* KV cache element size; 0: 2 (f16) */
    int n_gpu_layers;           /* -ngl: layers offloaded to GPUs; 0 none, < 0 all */
    int is_kv_on_cpu;           /* --no-kv-offload: offloaded layers keep their KV in RAM */
};

/* The estimate, in bytes, by component. */
struct model_mem_estimate {
    uint64_t weights_bytes;  /* the file(s), mapped and populated by libllama */
    uint64_t kv_bytes;       /* K and V caches for n_ctx cells */
    uint64_t compute_bytes;  /* activations touched by one micro-batch, plus outputs */
    uint64_t vocab_bytes;    /* tokenizer tables built on the heap */
    uint64_t overhead_bytes; /* libraries, threads, server buffers */
    uint64_t total_bytes;    /* resident RAM: the parts above */
    /* With n_gpu_layers: what goes to the GPUs' memory instead (weights and KV above then
     * count only the part left in RAM). */
    uint64_t vram_weights_bytes; /* offloaded layers, and the output layer */
    uint64_t vram_kv_bytes;      /* the offloaded layers' KV cache */
    uint64_t vram_compute_bytes; /* the GPU compute buffer (as large as the CPU one) */
    uint64_t vram_bytes;         /* the above + MODEL_MEM_GPU_OVERHEAD_BYTES; 0 on CPU */
    uint32_t n_gpu_layers;       /* layers offloaded, the output layer counting as one */
    uint32_t n_ctx;    /* the context the estimate used */
    uint32_t n_ubatch; /* the micro-batch the estimate used */
};

/* Bytes of fixed overhead per engine process (shared libraries, heap, threads). */
#define MODEL_MEM_OVERHEAD_BYTES (10ull << 20)
/* GPU memory per engine process beyond buffers: driver context, BLAS workspace. */
#define MODEL_MEM_GPU_OVERHEAD_BYTES (384ull << 20)
/* Heap bytes per vocabulary entry for libllama's tokenizer tables. */
#define MODEL_MEM_VOCAB_ENTRY_BYTES 176ull

/*
 * Estimates the resident memory of an engine serving META (borrowed) with PARAMS (borrowed,
 * NULL for defaults) into OUT. Returns 0, or IG_EINVAL when META lacks the hyper-parameters
 * (embedding length, layers, heads) the KV cache size needs.
 */
int model_mem_estimate(const struct gguf_meta *meta, const struct model_mem_params *params,
                       struct model_mem_estimate *out) IG_WUR;

#endif
