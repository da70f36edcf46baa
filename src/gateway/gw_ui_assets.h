/*
 * The dashboard's files, embedded at build time: cmake/EmbedWeb.cmake generates the table
 * from web/ (a file the build writes, never committed). Read-only, static storage.
 */
#ifndef IG_GW_UI_ASSETS_H
#define IG_GW_UI_ASSETS_H

#include <stddef.h>

/* One file of web/: its path there ("index.html", "app.js"), Content-Type, quoted ETag
 * (from its SHA-256) and bytes. */
struct gw_ui_asset {
    const char *name;
    const char *content_type;
    const char *etag;
    const unsigned char *data;
    size_t len;
};

/* Every file of web/, sorted by name. */
extern const struct gw_ui_asset gw_ui_assets[];

/* How many entries gw_ui_assets holds (index.html at least). */
extern const size_t gw_ui_n_assets;

#endif
