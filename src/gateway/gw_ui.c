/*
 * The dashboard: the files of web/ (embedded by cmake/EmbedWeb.cmake) served under /ui/.
 *
 * The files are public, as any page's code is; what they show comes from the API, which
 * asks for the admin token when auth is on (the page sends it as a Bearer token). Every
 * answer carries the page security headers: a same-origin Content-Security-Policy (the
 * pages load nothing from elsewhere), no framing, no referrer. Files are served with their
 * ETag and Cache-Control: no-cache, so a browser revalidates (a 304 when unchanged) and
 * never runs a stale script against a newer server.
 *
 * One answer is not a file: /ui/auth.json says whether auth is on ({"auth": bool}), so the
 * page knows to ask for the token before it calls anything (nobody learns more from it
 * than from the 401 any API route gives).
 */
#include "gw_internal.h"
#include "gw_ui_assets.h"
#include "http_server.h"

#include <stdio.h>
#include <string.h>

#define UI_PREFIX "/ui/"
#define AUTH_INFO_NAME "auth.json"

/* Returns the embedded file NAME ("" is index.html), or NULL. */
static const struct gw_ui_asset *find_asset(const char *name)
{
    if (name[0] == '\0')
        name = "index.html";
    for (size_t i = 0; i < gw_ui_n_assets; i++)
        if (strcmp(gw_ui_assets[i].name, name) == 0)
            return &gw_ui_assets[i];
    return NULL;
}

/* Returns whether REQ's If-None-Match names ETAG (or is "*"). */
static bool is_not_modified(const struct http_request *req, const char *etag)
{
    const char *match = http_request_header(req, "If-None-Match");

    return match != NULL && (strcmp(match, "*") == 0 || strstr(match, etag) != NULL);
}

void gw_ui_handle(struct gw_app *app, struct http_request *req)
{
    const char *path = http_request_path(req);
    const struct gw_ui_asset *asset;
    char msg[160];

    http_response_add_security_headers(req);
    if (strncmp(path, UI_PREFIX, strlen(UI_PREFIX)) != 0) { /* "/ui": the page is "/ui/" */
        http_response_add_header(req, "Location", UI_PREFIX);
        http_respond(req, 301, "text/plain; charset=utf-8", "see /ui/\n", 9);
        return;
    }
    if (strcmp(path + strlen(UI_PREFIX), AUTH_INFO_NAME) == 0) {
        http_response_add_header(req, "Cache-Control", "no-store");
        gw_reply_json(req, 200, json_pack("{s:b}", "auth", auth_is_on(app->auth)));
        return;
    }
    asset = find_asset(path + strlen(UI_PREFIX));
    if (asset == NULL) {
        snprintf(msg, sizeof(msg), "no such file in the dashboard: %.100s", path);
        gw_reply_error(req, 404, msg, "not_found", 0);
        return;
    }
    http_response_add_header(req, "ETag", asset->etag);
    http_response_add_header(req, "Cache-Control", "no-cache");
    if (is_not_modified(req, asset->etag)) {
        http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    http_respond(req, 200, asset->content_type, (const char *)asset->data, asset->len);
}
