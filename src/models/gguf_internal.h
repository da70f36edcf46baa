/* Shared by the GGUF reader's files only: gguf_meta.c (parsing), gguf_types.c (ggml type
 * tables and the summary fields derived from them), gguf_lookup.c (key and tensor lookups). */
#ifndef IG_GGUF_INTERNAL_H
#define IG_GGUF_INTERNAL_H

#include "gguf_meta.h"

/* One stored key/value pair. Strings are copied; arrays keep type, length and, for integer
 * arrays, their largest element. */
struct gguf_kv {
    char *key;
    uint32_t type;
    uint32_t elem_type; /* arrays only */
    uint64_t n;         /* arrays only */
    int has_number;     /* the numeric fields below are valid */
    int is_negative;    /* the value (or some array element) is negative */
    uint64_t u;
    int64_t i;
    double f;
    char *str;
};

/* Returns whether TYPE is an integer (or bool) value type (gguf_meta.c). */
int gguf_is_integer_type(uint32_t type);

/* Returns the pair named KEY, or NULL. */
const struct gguf_kv *gguf_find_kv(const struct gguf_meta *m, const char *key);

/* Rebuilds dominant_type and type_mix from type_bytes. */
void gguf_compute_type_mix(struct gguf_meta *m);

/* Derives the capability bits from architecture, pooling, tensors and chat template. */
void gguf_compute_caps(struct gguf_meta *m);

#endif
