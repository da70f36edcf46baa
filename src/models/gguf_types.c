/* ggml tensor and file types, value type and capability names, and the summary fields
 * (type mix, capabilities) derived from them. */
#include "gguf_internal.h"

#include <stdio.h>
#include <string.h>

/* ggml type traits: name, elements per block, bytes per block (ggml.c type_traits). Removed
 * types have a zero block size and are rejected like unknown ones. */
static const struct {
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
} ggml_types[GGUF_GGML_TYPE_COUNT] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},    [40] = {"NVFP4", 64, 36},
    [41] = {"Q1_0", 128, 18},    [42] = {"Q2_0", 64, 18},
};

const char *gguf_ggml_type_name(uint32_t type)
{
    return type < GGUF_GGML_TYPE_COUNT ? ggml_types[type].name : NULL;
}

int gguf_ggml_type_block(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes)
{
    if (type >= GGUF_GGML_TYPE_COUNT || ggml_types[type].block_elems == 0) {
        return IG_EINVAL;
    }
    *block_elems = ggml_types[type].block_elems;
    *block_bytes = ggml_types[type].block_bytes;
    return 0;
}

const char *gguf_file_type_name(int64_t file_type)
{
    /* llama.h enum llama_ftype; gaps are removed types. */
    static const char *const names[] = {
        "F32",    "F16",    "Q4_0",    "Q4_1",      NULL,     NULL,      NULL,
        "Q8_0",   "Q5_0",   "Q5_1",    "Q2_K",      "Q3_K_S", "Q3_K_M",  "Q3_K_L",
        "Q4_K_S", "Q4_K_M", "Q5_K_S",  "Q5_K_M",    "Q6_K",   "IQ2_XXS", "IQ2_XS",
        "Q2_K_S", "IQ3_XS", "IQ3_XXS", "IQ1_S",     "IQ4_NL", "IQ3_S",   "IQ3_M",
        "IQ2_S",  "IQ2_M",  "IQ4_XS",  "IQ1_M",     "BF16",   NULL,      NULL,
        NULL,     "TQ1_0",  "TQ2_0",   "MXFP4_MOE", "NVFP4",  "Q1_0",    "Q2_0",
    };
    if (file_type < 0 || (uint64_t)file_type >= sizeof(names) / sizeof(names[0])) {
        return NULL;
    }
    return names[file_type];
}

size_t gguf_cap_names(unsigned caps, const char **names)
{
    static const struct {
        unsigned bit;
        const char *name;
    } table[] = {{GGUF_CAP_COMPLETION, "completion"}, {GGUF_CAP_EMBEDDINGS, "embeddings"},
                 {GGUF_CAP_RERANK, "rerank"},         {GGUF_CAP_REASONING, "reasoning"},
                 {GGUF_CAP_TOOLS, "tools"},           {GGUF_CAP_VISION, "vision"}};
    size_t n = 0;

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if ((caps & table[i].bit) != 0)
            names[n++] = table[i].name;
    return n;
}

const char *gguf_value_type_name(int type)
{
    static const char *const names[] = {"u8",   "i8",  "u16", "i16", "u32", "i32", "f32",
                                        "bool", "str", "arr", "u64", "i64", "f64"};
    if (type < 0 || (size_t)type >= sizeof(names) / sizeof(names[0])) {
        return "?";
    }
    return names[type];
}

/* Returns whether ARCH names an encoder-only (embedding) architecture of llama.cpp. */
static int is_encoder_arch(const char *arch)
{
    static const char *const encoders[] = {"bert",         "nomic-bert",   "nomic-bert-moe",
                                           "jina-bert-v2", "jina-bert-v3", "modern-bert",
                                           "neo-bert",     "t5encoder",    "clip"};
    for (size_t i = 0; arch != NULL && i < sizeof(encoders) / sizeof(encoders[0]); i++) {
        if (strcmp(arch, encoders[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Rebuilds dominant_type and type_mix from type_bytes. */
void gguf_compute_type_mix(struct gguf_meta *m)
{
    uint32_t order[GGUF_GGML_TYPE_COUNT];
    size_t n = 0;
    uint64_t total = 0;
    for (uint32_t t = 0; t < GGUF_GGML_TYPE_COUNT; t++) {
        if (m->type_bytes[t] > 0) {
            order[n++] = t;
            total += m->type_bytes[t];
        }
    }
    /* Insertion sort by bytes, largest first; ties by type number. */
    for (size_t i = 1; i < n; i++) {
        uint32_t t = order[i];
        size_t j = i;
        while (j > 0 && m->type_bytes[order[j - 1]] < m->type_bytes[t]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = t;
    }
    m->dominant_type = n > 0 ? ggml_types[order[0]].name : "";
    m->type_mix[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n && i < 4; i++) {
        unsigned pct = (unsigned)((m->type_bytes[order[i]] * 100.0) / (double)total + 0.5);
        char part[32];
        if (pct == 0) {
            snprintf(part, sizeof(part), "%s%s (<1%%)", i ? ", " : "", ggml_types[order[i]].name);
        } else {
            snprintf(part, sizeof(part), "%s%s (%u%%)", i ? ", " : "", ggml_types[order[i]].name,
                     pct);
        }
        size_t len = strlen(part);
        if (used + len + 1 > sizeof(m->type_mix)) {
            break;
        }
        memcpy(m->type_mix + used, part, len + 1);
        used += len;
    }
    if (n > 4 && used + 6 <= sizeof(m->type_mix)) {
        memcpy(m->type_mix + used, ", ...", 6);
    }
}

/* Derives the capability bits from architecture, pooling, tensors and chat template. */
void gguf_compute_caps(struct gguf_meta *m)
{
    unsigned caps = 0;
    int is_encoder = is_encoder_arch(m->architecture);
    int has_pooling = m->pooling_type > 0;
    if (m->architecture != NULL && strcmp(m->architecture, "clip") != 0 &&
        (has_pooling || is_encoder)) {
        caps |= GGUF_CAP_EMBEDDINGS;
    }
    if (m->pooling_type == 4) { /* LLAMA_POOLING_TYPE_RANK */
        caps |= GGUF_CAP_RERANK;
    }
    if (m->architecture != NULL && !is_encoder && !has_pooling &&
        (m->has_output_tensor || m->has_token_embd)) {
        caps |= GGUF_CAP_COMPLETION;
    }
    const char *tpl = m->chat_template;
    if (tpl != NULL) {
        if (strstr(tpl, "<think>") != NULL || strstr(tpl, "thinking") != NULL ||
            strstr(tpl, "reasoning_content") != NULL) {
            caps |= GGUF_CAP_REASONING;
        }
        if (strstr(tpl, "tools") != NULL || strstr(tpl, "tool_calls") != NULL) {
            caps |= GGUF_CAP_TOOLS;
        }
    }
    m->caps = caps;
}
