/*
 * The front server's network settings from the configuration: limits, TLS certificate,
 * CORS policy and the exposure rule (no listening beyond loopback without authentication).
 * This is the glue between src/config and the http server: at start-up through
 * http_front_listen(), and on every reload in three steps: http_front_prepare() on the
 * reload's worker thread (it reads the certificate files), http_front_check_reload() and
 * http_front_commit() on the loop.
 */
#ifndef IG_HTTP_FRONT_H
#define IG_HTTP_FRONT_H

#include "ig_error.h"

#include <stdbool.h>

struct cfg;
struct http_server;
struct http_front_prep;

/* Returns whether HOST (a listen host: IP literal or name) is a loopback address:
 * 127.0.0.0/8, ::1 (also IPv4-mapped 127/8) or "localhost". */
bool http_front_is_loopback(const char *host);

/*
 * The exposure rule: listening on HOST:PORT that is not loopback needs authentication
 * (cfg_auth_is_on(CFG)) or ALLOW_NO_AUTH (serve --insecure-no-auth). Returns 0, or
 * IG_ECONFIG with *CAUSE (caller frees) naming the address and the two ways out.
 */
int http_front_check_exposure(const char *host, int port, const struct cfg *cfg, bool allow_no_auth,
                              char **cause) IG_WUR;

/*
 * Applies CFG's limits, CORS and TLS certificate to SRV and listens on HOST:PORT; raises
 * the open-file limit to fit limits.max_connections when it can. Records the exposure
 * (HOST, cfg->is_insecure_no_auth) for the checks of later reloads. Returns 0, or an IG_E*
 * code with *CAUSE (caller frees), e.g. a certificate that cannot be loaded.
 */
int http_front_listen(struct http_server *srv, const struct cfg *cfg, const char *host, int port,
                      char **cause) IG_WUR;

/* Prepares a reload to NEXT: loads its certificate (blocking file reads: call it off the
 * loop; safe on any thread). Never fails: a certificate that cannot be loaded is recorded
 * and reported by http_front_commit(). Returns NULL only when out of memory; free with
 * http_front_prep_free() unless given to http_front_commit(). */
struct http_front_prep *http_front_prepare(const struct cfg *next);

/* Frees PREP; NULL is a no-op. */
void http_front_prep_free(struct http_front_prep *prep);

/* Returns 0 when the certificate of PREP (NULL: out of memory, left to
 * http_front_commit()) loaded, or when its configuration asks for none; else IG_ECONFIG with
 * *CAUSE (caller frees) naming the file and why, e.g. "tls.cert /x.crt is not a PEM
 * certificate (chain)". A reload that fails this check must not be applied: the running
 * certificate stays, and so does the rest of the running configuration. */
int http_front_check_certificate(const struct http_front_prep *prep, char **cause) IG_WUR;

/* Returns 0 when NEXT may replace the running configuration of SRV, or IG_ECONFIG with
 * *CAUSE (caller frees) when it would turn authentication off on a non-loopback listener
 * started without --insecure-no-auth. */
int http_front_check_reload(const struct http_server *srv, const struct cfg *next,
                            char **cause) IG_WUR;

/*
 * Switches SRV to NEXT's settings, logging what it did: limits (except max_body_bytes,
 * max_header_bytes and idle_timeout_s, which need a restart), the CORS policy, and the
 * certificate of PREP (taken; NULL: out of memory). New connections use the new
 * certificate, existing ones keep theirs (a certificate that failed to load, which
 * http_front_check_certificate() refuses first, keeps the old one with an error logged).
 * Turning TLS on or off needs a restart (a warning).
 */
void http_front_commit(struct http_server *srv, const struct cfg *next,
                       struct http_front_prep *prep);

#endif
