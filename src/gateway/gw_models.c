/* Model listings: OpenAI's /v1/models and llama-swap's /running. */
#include "cfg.h"
#include "gw_internal.h"
#include "sup_manager.h"

/* Appends one OpenAI model object for ID describing model M. */
static void append_model(json_t *data, const char *id, struct sup_model *m, int64_t created)
{
    const struct cfg_model *c = sup_model_cfg(m);
    json_t *aliases = json_array();
    json_t *obj;

    for (size_t i = 0; i < c->aliases.len; i++)
        json_array_append_new(aliases, json_string(c->aliases.items[i]));
    obj = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s}", "id", id, "object", "model", "created",
                    (json_int_t)created, "owned_by", "infergate", "aliases", aliases, "state",
                    sup_state_name(sup_model_state(m)));
    if (obj == NULL)
        return;
    if (c->name != NULL)
        json_object_set_new(obj, "name", json_string(c->name));
    if (c->description != NULL)
        json_object_set_new(obj, "description", json_string(c->description));
    if (c->metadata != NULL)
        json_object_set(obj, "meta", c->metadata);
    json_array_append_new(data, obj);
}

void gw_models_list(struct gw_app *app, struct http_request *req)
{
    json_t *data = json_array();

    for (size_t i = 0; i < app->cfg->n_models; i++) {
        const struct cfg_model *c = &app->cfg->models[i];
        struct sup_model *m = sup_find(app->mgr, c->id);
        if (c->unlisted)
            continue;
        append_model(data, c->id, m, app->started_unix_s);
        for (size_t a = 0; app->cfg->include_aliases_in_list && a < c->aliases.len; a++)
            append_model(data, c->aliases.items[a], m, app->started_unix_s);
    }
    gw_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void gw_models_running(struct gw_app *app, struct http_request *req)
{
    gw_reply_json(req, 200, json_pack("{s:o}", "running", sup_running_json(app->mgr)));
}
