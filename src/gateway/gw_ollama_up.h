/* Ollama hosts as upstreams (models with `api: ollama`): a call's OpenAI request is sent as
 * Ollama's /api/chat, /api/generate or /api/embed, and the answer comes back OpenAI-shaped.
 * Gateway-private, used by gw_proxy.c. */
#ifndef IG_GW_OLLAMA_UP_H
#define IG_GW_OLLAMA_UP_H

#include "ig_error.h"

struct gw_call;
struct gw_ollama_up;
struct upstream_callbacks;
struct upstream_spec;

/* For a call to a model whose upstream speaks Ollama's API, about to be sent with SPEC and
 * callbacks *CBS on *ARG: sets SPEC's body and URL to the Ollama request, and puts in *CBS and
 * *ARG callbacks that translate the answer before handing it to the call's own (which then see
 * OpenAI-shaped bytes, for the client and the meter alike). Other calls are left alone. The
 * translation state is the call's (call->ollama_up, kept across a retry). Returns 0, or -1
 * after answering the client (a request that cannot be translated); the caller frees CALL. */
int gw_ollama_up_wrap(struct gw_call *call, struct upstream_spec *spec,
                      const struct upstream_callbacks **cbs, void **arg) IG_WUR;

/* Frees a call's translation state; NULL is a no-op. */
void gw_ollama_up_free(struct gw_ollama_up *up);

#endif
