/*
 * Requests passed on as they are: ANY /upstream/MODEL/PATH to a local model's own server
 * (starting it), and POST /models/load for a model that only workers serve, to the worker
 * the router picks (docs/DISTRIBUTED.md). Both go through the proxy's call, so a worker
 * that fails before answering is replaced by another.
 */
#include "cfg.h"
#include "gw_call.h"
#include "gw_internal.h"
#include "http_server.h"
#include "sup_manager.h"

#include <string.h>

/* Finds the model named by the longest leading segments of NAME_PATH ("org/model/v1/x"
 * can name model "org/model"); sets *REST to what follows it ("/v1/x" or ""). */
static struct sup_model *model_in_path(struct gw_app *app, const char *name_path,
                                       const char **rest)
{
    struct sup_model *found = NULL;
    char name[512];
    size_t len = strlen(name_path);

    for (size_t end = 0; end <= len && end < sizeof(name); end++) {
        if (end < len && name_path[end] != '/')
            continue;
        memcpy(name, name_path, end);
        name[end] = '\0';
        struct sup_model *m = end > 0 ? sup_find(app->mgr, name) : NULL;
        if (m != NULL) {
            found = m;
            *rest = name_path + end;
        }
    }
    return found;
}

void gw_proxy_upstream(struct gw_app *app, struct http_request *req)
{
    const char *path = http_request_path(req) + strlen("/upstream/"), *rest = "";
    size_t pin_len = 0;
    const char *pin = gw_profile_pin_prefix(app, path, &pin_len);
    struct sup_model *model = pin != NULL ? (pin[0] != '\0' ? sup_find(app->mgr, pin) : NULL)
                                          : model_in_path(app, path, &rest);
    struct gw_call *call;

    if (pin != NULL)
        rest = path + pin_len;
    if (model == NULL) {
        gw_refuse_request(app, req, NULL, NULL, 404, "no model matches the path after /upstream/",
                       "model_not_found");
        return;
    }
    if (sup_model_cfg(model)->proxy == NULL) {
        gw_refuse_request(app, req, sup_model_cfg(model), NULL, 400,
                       "this model has no upstream to pass requests to", "invalid_request_error");
        return;
    }
    call = gw_call_new(app, req, model, sup_model_cfg(model));
    if (call == NULL) {
        gw_refuse_request(app, req, sup_model_cfg(model), NULL, 500, "out of memory", "internal_error");
        return;
    }
    call->body = http_request_body(req, &call->body_len);
    call->upstream_path = rest[0] != '\0' ? rest : "/";
    gw_call_dispatch(call);
}

void gw_forward_to_worker(struct gw_app *app, struct http_request *req,
                          const struct cfg_model *mc, const char *path, bool is_stream)
{
    struct gw_call *call = gw_call_new(app, req, NULL, mc);

    if (call == NULL) {
        gw_refuse_request(app, req, mc, NULL, 500, "out of memory", "internal_error");
        return;
    }
    call->body = http_request_body(req, &call->body_len);
    call->upstream_path = path;
    call->is_passthrough_stream = is_stream;
    gw_call_dispatch(call);
}
