/* Lookups in a read GGUF file's key/value pairs and tensors. */
#include "gguf_internal.h"

#include <string.h>

/* Returns whether KV holds an integer (or bool), or an array of them. */
static int holds_integer(const struct gguf_kv *kv)
{
    return gguf_is_integer_type(kv->type) ||
           (kv->type == GGUF_TYPE_ARRAY && gguf_is_integer_type(kv->elem_type));
}

/* Returns the pair named KEY, or NULL. */
const struct gguf_kv *gguf_find_kv(const struct gguf_meta *m, const char *key)
{
    for (size_t i = 0; i < m->n_kv; i++) {
        if (strcmp(m->kv[i].key, key) == 0) {
            return &m->kv[i];
        }
    }
    return NULL;
}

int gguf_meta_get_u64(const struct gguf_meta *meta, const char *key, uint64_t *out)
{
    const struct gguf_kv *kv = gguf_find_kv(meta, key);
    if (kv == NULL) {
        return IG_ENOENT;
    }
    int is_int = holds_integer(kv);
    if (!is_int || !kv->has_number || kv->is_negative) {
        return IG_EINVAL;
    }
    *out = kv->u;
    return 0;
}

int gguf_meta_get_i64(const struct gguf_meta *meta, const char *key, int64_t *out)
{
    const struct gguf_kv *kv = gguf_find_kv(meta, key);
    if (kv == NULL) {
        return IG_ENOENT;
    }
    int is_int = holds_integer(kv);
    if (!is_int || !kv->has_number) {
        return IG_EINVAL;
    }
    *out = kv->i;
    return 0;
}

int gguf_meta_get_f64(const struct gguf_meta *meta, const char *key, double *out)
{
    const struct gguf_kv *kv = gguf_find_kv(meta, key);
    if (kv == NULL) {
        return IG_ENOENT;
    }
    if (kv->type == GGUF_TYPE_ARRAY || !kv->has_number) {
        return IG_EINVAL;
    }
    *out = kv->f;
    return 0;
}

const char *gguf_meta_get_str(const struct gguf_meta *meta, const char *key)
{
    const struct gguf_kv *kv = gguf_find_kv(meta, key);
    return kv != NULL && kv->type == GGUF_TYPE_STRING ? kv->str : NULL;
}

int gguf_meta_get_array(const struct gguf_meta *meta, const char *key,
                        enum gguf_value_type *elem_type, uint64_t *n)
{
    const struct gguf_kv *kv = gguf_find_kv(meta, key);
    if (kv == NULL) {
        return IG_ENOENT;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        return IG_EINVAL;
    }
    *elem_type = (enum gguf_value_type)kv->elem_type;
    *n = kv->n;
    return 0;
}

int gguf_meta_key_type(const struct gguf_meta *meta, const char *key)
{
    const struct gguf_kv *kv = gguf_find_kv(meta, key);
    return kv != NULL ? (int)kv->type : -1;
}

const char *gguf_meta_key_at(const struct gguf_meta *meta, size_t i)
{
    return i < meta->n_kv ? meta->kv[i].key : NULL;
}

const struct gguf_tensor_info *gguf_meta_tensor(const struct gguf_meta *meta, const char *name)
{
    for (size_t i = 0; i < meta->n_tensors; i++) {
        if (strcmp(meta->tensors[i].name, name) == 0) {
            return &meta->tensors[i];
        }
    }
    return NULL;
}
