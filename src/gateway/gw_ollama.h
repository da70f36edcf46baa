/* Ollama's API in front: the translation of OpenAI answers back to Ollama's shapes. Shared by
 * gw_ollama.c (requests) and gw_ollama_xlate.c (answers) only. */
#ifndef IG_GW_OLLAMA_H
#define IG_GW_OLLAMA_H

#include "gw_internal.h"

#include <stdbool.h>

/* Which Ollama route a call came from: what its answers look like. */
enum gw_ollama_kind {
    GW_OLLAMA_CHAT,     /* "message": {"role", "content"} */
    GW_OLLAMA_GENERATE, /* "response" */
    GW_OLLAMA_EMBED,    /* "embeddings": [[...]] */
};

struct gw_ollama_state;

/* The translation of a call's answers (gw_proxy_translated()), on a gw_ollama_state. */
extern const struct gw_xlate_ops gw_ollama_ops;

/* Returns the state translating one call of KIND for the model the client named MODEL
 * (copied, cut to 255 bytes), streamed or not; NULL when out of memory. Freed by the ops. */
struct gw_ollama_state *gw_ollama_state_new(enum gw_ollama_kind kind, const char *model,
                                            bool is_stream);

/* Returns {"error": MESSAGE} as a malloc'd string (caller frees), or NULL when out of memory. */
char *gw_ollama_error_body(const char *message);

#endif
