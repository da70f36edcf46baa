/*
 * The gateway application: the front HTTP server, the upstream pool and the model manager
 * for one loaded configuration, with the routes of the public API.
 */
#ifndef IG_GW_APP_H
#define IG_GW_APP_H

#include "ig_error.h"

#include <stddef.h>

struct event_base;
struct cfg;
struct gw_app;

/* Called once when a graceful shutdown finished. */
typedef void (*gw_stopped_fn)(void *arg);

/* Creates the app for CFG (taken: freed with the app) on BASE. Returns NULL with *CAUSE
 * (caller frees) on failure. Free with gw_app_free(). */
struct gw_app *gw_app_new(struct event_base *base, struct cfg *cfg, char **cause);

/* Listens on HOST:PORT; returns 0 or IG_EIO with *CAUSE (caller frees). */
int gw_app_listen(struct gw_app *app, const char *host, int port, char **cause) IG_WUR;

/* Joins the bus of APP's nats config as a gateway (routes to workers); 0 or -1 with
 * *CAUSE (caller frees). */
int gw_bus_join(struct gw_app *app, char **cause) IG_WUR;

/* Serves APP's models over the bus as worker NAME (NULL: nats.name or the host name), at
 * most CAPACITY requests at once; 0 or -1 with *CAUSE (caller frees). */
int gw_bus_serve(struct gw_app *app, const char *name, size_t capacity, char **cause) IG_WUR;

/* Returns the bound port. */
int gw_app_port(const struct gw_app *app);

/* Reloads the config file in the background (SIGHUP): it is read and validated on a
 * worker thread first (on failure the running config stays and the errors are logged),
 * then models switch as sup_manager_reload() does. Settings that only apply at start-up
 * (listen, body/header caps, idle timeout) are kept with a warning. */
void gw_app_request_reload(struct gw_app *app);

/* Graceful shutdown: stop accepting, let in-flight requests finish within the configured
 * grace, stop every child, then call CB. */
void gw_app_shutdown(struct gw_app *app, gw_stopped_fn cb, void *arg);

/* Frees the app, killing any child still alive; NULL is a no-op. */
void gw_app_free(struct gw_app *app);

#endif
