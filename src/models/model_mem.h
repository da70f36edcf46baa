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
};

/* The estimate, in bytes, by component. */
struct model_mem_estimate {
    uint64_t weights_bytes;  /* the file(s), mapped and populated by libllama */
    uint64_t kv_bytes;       /* K and V caches for n_ctx cells */
    uint64_t compute_bytes;  /* activations touched by one micro-batch, plus outputs */
    uint64_t vocab_bytes;    /* tokenizer tables built on the heap */
    uint64_t overhead_bytes; /* libraries, threads, server buffers */
    uint64_t total_bytes;
    uint32_t n_ctx;    /* the context the estimate used */
    uint32_t n_ubatch; /* the micro-batch the estimate used */
};

/* Bytes of fixed overhead per engine process (shared libraries, heap, threads). */
#define MODEL_MEM_OVERHEAD_BYTES (10ull << 20)
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
