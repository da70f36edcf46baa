/*
 * llama-swap's profiles: named sets of pins (requested model name → target) of which one,
 * or none, is active. GET /api/profiles lists them; PUT /api/profiles/active {"name"}
 * switches (null: none). Start-up and reloads select none.
 */
#include "cfg.h"
#include "gw_internal.h"
#include "http_server.h"
#include "ig_json.h"
#include "ig_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_DEPTH 8

const char *gw_profile_pin(const struct gw_app *app, const char *name)
{
    const struct cfg_profile *p =
        app->active_profile != NULL ? cfg_find_profile(app->cfg, app->active_profile) : NULL;

    for (size_t i = 0; p != NULL && i < p->pins.len; i++)
        if (strcmp(p->pins.items[i], name) == 0)
            return p->targets.items[i];
    return NULL;
}

const char *gw_profile_pin_prefix(const struct gw_app *app, const char *path, size_t *len)
{
    const struct cfg_profile *p =
        app->active_profile != NULL ? cfg_find_profile(app->cfg, app->active_profile) : NULL;
    const char *target = NULL;

    *len = 0;
    for (size_t i = 0; p != NULL && i < p->pins.len; i++) {
        size_t n = strlen(p->pins.items[i]);
        if (n > *len && strncmp(path, p->pins.items[i], n) == 0 &&
            (path[n] == '\0' || path[n] == '/')) {
            *len = n;
            target = p->targets.items[i];
        }
    }
    return target;
}

/* Returns the active profile's name as JSON (null when none). */
static json_t *active_json(const struct gw_app *app)
{
    return app->active_profile != NULL ? json_string(app->active_profile) : json_null();
}

void gw_profiles_list(struct gw_app *app, struct http_request *req)
{
    json_t *list = json_array();

    for (size_t i = 0; i < app->cfg->n_profiles; i++) {
        const struct cfg_profile *p = &app->cfg->profiles[i];
        json_t *pins = json_object();
        for (size_t k = 0; k < p->pins.len; k++)
            json_object_set_new(pins, p->pins.items[k], json_string(p->targets.items[k]));
        json_array_append_new(list, json_pack("{s:s, s:s, s:o}", "id", p->id, "description",
                                              p->description != NULL ? p->description : "",
                                              "pins", pins));
    }
    gw_reply_json(req, 200, json_pack("{s:o, s:o}", "active", active_json(app), "profiles", list));
}

void gw_profiles_activate(struct gw_app *app, struct http_request *req)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    char err[256], msg[320];
    json_t *doc = ig_json_parse(body, len, MAX_JSON_DEPTH, err, sizeof(err));
    json_t *name = json_object_get(doc, "name");

    if (doc == NULL || !json_is_object(doc)) {
        gw_reply_error(req, 400, doc == NULL ? err : "invalid profile request", "invalid_json", 0);
    } else if (name == NULL) {
        gw_reply_error(req, 400, "profile name is required", "invalid_request_error", 0);
    } else if (!json_is_null(name) && !json_is_string(name)) {
        gw_reply_error(req, 400, "profile name must be a string or null", "invalid_request_error",
                       0);
    } else if (json_is_string(name) && json_string_value(name)[0] != '\0' &&
               cfg_find_profile(app->cfg, json_string_value(name)) == NULL) {
        snprintf(msg, sizeof(msg), "profile `%.200s` does not exist", json_string_value(name));
        gw_reply_error(req, 404, msg, "not_found", 0);
    } else {
        const char *next = json_is_string(name) && json_string_value(name)[0] != '\0'
                               ? json_string_value(name)
                               : NULL;
        free(app->active_profile);
        app->active_profile = next != NULL ? strdup(next) : NULL;
        ig_info("profile %s is active", next != NULL ? next : "(none)");
        gw_reply_json(req, 200, json_pack("{s:o}", "active", active_json(app)));
    }
    json_decref(doc);
}
