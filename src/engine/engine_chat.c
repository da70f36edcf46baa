/* Chat messages to a prompt with llama_chat_apply_template. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#define CHAT_MAX_MESSAGES 1024

/*
 * Returns a message's text: a string content, or the "text" parts of an array content joined
 * with newlines, malloc'd (caller frees); NULL when the content has neither.
 */
static char *message_text(json_t *content)
{
    struct eng_text t = {0};
    size_t i;
    json_t *part;

    if (json_is_string(content)) {
        if (eng_text_append(&t, json_string_value(content), json_string_length(content)) != 0)
            return NULL;
        return t.data;
    }
    if (!json_is_array(content))
        return NULL;
    json_array_foreach(content, i, part)
    {
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(text))
            continue;
        if ((t.len > 0 && eng_text_append(&t, "\n", 1) != 0) ||
            eng_text_append(&t, json_string_value(text), json_string_length(text)) != 0) {
            eng_text_release(&t);
            return NULL;
        }
    }
    if (t.data == NULL && eng_text_append(&t, "", 0) != 0)
        return NULL;
    return t.data;
}

char *eng_chat_format(const struct engine *e, json_t *messages, const char **cause)
{
    struct llama_chat_message *chat = NULL;
    char **texts = NULL;
    char *out = NULL;
    size_t n = json_array_size(messages);
    size_t total = 0;
    const char *tmpl = e->opts->chat_template != NULL ? e->opts->chat_template : e->model_template;

    *cause = "'messages' must be a non-empty array of {role, content}";
    if (!json_is_array(messages) || n == 0 || n > CHAT_MAX_MESSAGES)
        goto out;
    chat = calloc(n, sizeof(*chat));
    texts = calloc(n, sizeof(*texts));
    if (chat == NULL || texts == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role))
            goto out;
        texts[i] = message_text(json_object_get(m, "content"));
        if (texts[i] == NULL)
            goto out;
        chat[i].role = json_string_value(role);
        chat[i].content = texts[i];
        total += strlen(texts[i]) + 64;
    }
    *cause = "the request is too large";
    if (total > ENG_MAX_PROMPT_BYTES)
        goto out;
    if (tmpl == NULL)
        tmpl = "chatml";
    size_t cap = total * 2 + 1024;
    out = malloc(cap);
    int len = out != NULL ? llama_chat_apply_template(tmpl, chat, n, true, out, (int32_t)cap) : -1;
    if (len >= (int)cap) {
        size_t need = (size_t)len + 1;
        char *bigger = realloc(out, need);
        if (bigger != NULL) {
            out = bigger;
            cap = need;
            len = llama_chat_apply_template(tmpl, chat, n, true, out, (int32_t)cap);
        }
    }
    if (len < 0 || len >= (int)cap) {
        *cause = "the chat template could not be applied (unsupported template or messages)";
        free(out);
        out = NULL;
        goto out;
    }
    out[len] = '\0';
    *cause = NULL;
out:
    for (size_t i = 0; texts != NULL && i < n; i++)
        free(texts[i]);
    free(texts);
    free(chat);
    return out;
}
