/*
 * The `batches:` section: the OpenAI Batch API (docs/API.md, docs/DISTRIBUTED.md).
 *
 * batches: {concurrency: 8, max_file_bytes: 16777216}
 *
 * Batches run on JetStream and so need `nats:`; the section only tunes them.
 */
#include "cfg_internal.h"

#include <stddef.h>

void cfg_top_batches(struct cfg_ctx *ctx, yaml_node_t *key, yaml_node_t *value, void *obj)
{
    static const struct cfg_field fields[] = {
        {"concurrency", CFG_F_INT, offsetof(struct cfg_batches, concurrency), 1, 10000, NULL, 0},
        {"max_file_bytes", CFG_F_INT, offsetof(struct cfg_batches, max_file_bytes), 1024,
         1 << 30, NULL, 0},
        {NULL, 0, 0, 0, 0, NULL, 0}};
    (void)key;
    (void)obj;

    if (cfg_is_null(value))
        return;
    if (!cfg_expect(ctx, value, YAML_MAPPING_NODE, "batches"))
        return;
    cfg_walk(ctx, value, fields, &ctx->cfg->batches, NULL);
}
