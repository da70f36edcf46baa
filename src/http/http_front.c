/*
 * Configuration → front server: limits, CORS, TLS and the exposure rule. See http_front.h.
 *
 * What a reload may change at once: the certificate (new connections), the CORS policy,
 * the connection caps, the URL cap and the request deadlines. The listen address, the body
 * and head caps and the idle timeout stay until a restart (gw_reload.c warns about those),
 * and so does switching between HTTP and HTTPS, since clients of the running listener
 * expect the protocol it speaks.
 */
#include "http_front.h"
#include "cfg.h"
#include "http_conn.h"
#include "http_cors.h"
#include "http_tls.h"
#include "ig_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

/* Descriptors kept beside the client connections: upstream connections, model process
 * pipes, the store, logs. */
#define SPARE_FDS 1024

struct http_front_prep {
    bool has_tls;         /* NEXT asks for TLS */
    struct http_tls *tls; /* loaded certificate, or NULL with tls_cause */
    char *tls_cause;
};

bool http_front_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

/* Formats HOST:PORT (IPv6 literals in brackets) into BUF. */
static void format_addr(const char *host, int port, char *buf, size_t size)
{
    if (strchr(host, ':') != NULL)
        snprintf(buf, size, "[%s]:%d", host, port);
    else
        snprintf(buf, size, "%s:%d", host, port);
}

int http_front_check_exposure(const char *host, int port, const struct cfg *cfg, bool allow_no_auth,
                              char **cause)
{
    char addr[300];

    if (http_front_is_loopback(host) || cfg_auth_is_on(cfg))
        return 0;
    format_addr(host, port, addr, sizeof(addr));
    if (allow_no_auth) {
        ig_warn("listening on %s, which is not a loopback address, with authentication off "
                "(--insecure-no-auth): anyone who can reach it can use the API without a key",
                addr);
        return 0;
    }
    if (cause != NULL &&
        asprintf(cause,
                 "refusing to listen on %s: it is not a loopback address and authentication is "
                 "off, so anyone who can reach it could use the API without a key. Either "
                 "configure authentication (auth.keys or apiKeys in the config), or pass "
                 "--insecure-no-auth to `infergate serve` to accept that (e.g. behind a "
                 "firewall or an authenticating proxy). To stay local, listen on 127.0.0.1.",
                 addr) < 0)
        *cause = NULL;
    return IG_ECONFIG;
}

/* Fills O from the limits of CFG. */
static void options_from(const struct cfg *cfg, struct http_server_options *o)
{
    memset(o, 0, sizeof(*o));
    o->max_body_bytes = cfg->limits.max_body_bytes;
    o->max_header_bytes = cfg->limits.max_header_bytes;
    o->max_url_bytes = cfg->limits.max_url_bytes;
    o->idle_timeout_s = cfg->limits.idle_timeout_s;
    o->header_timeout_s = cfg->limits.header_timeout_s;
    o->read_timeout_s = cfg->limits.read_timeout_s;
    o->max_connections = (size_t)cfg->limits.max_connections;
    o->max_connections_per_ip = (size_t)cfg->limits.max_connections_per_ip;
}

/* Builds CFG's CORS policy; *OUT is NULL when CORS is off. Returns 0 or IG_ENOMEM. */
static int cors_from(const struct cfg *cfg, struct http_cors **out)
{
    struct http_cors_options o = {0};

    *out = NULL;
    if (!cfg->cors.is_enabled)
        return 0;
    o.is_any_origin = cfg->cors.is_any_origin;
    o.origins = (const char *const *)cfg->cors.origins.items;
    o.n_origins = cfg->cors.origins.len;
    o.headers = (const char *const *)cfg->cors.headers.items;
    o.n_headers = cfg->cors.headers.len;
    o.max_age_s = cfg->cors.max_age_s;
    o.allow_credentials = cfg->cors.allow_credentials;
    *out = http_cors_new(&o);
    return *out != NULL ? 0 : IG_ENOMEM;
}

/* Loads CFG's certificate; logs what it is. Returns NULL with *CAUSE on failure. */
static struct http_tls *load_tls(const struct cfg *cfg, char **cause)
{
    return http_tls_new(cfg->tls.cert_path, cfg->tls.key_path,
                        cfg->tls.min_version == 13 ? HTTP_TLS_1_3 : HTTP_TLS_1_2, cause);
}

/* Logs a certificate just taken into use. */
static void log_certificate(const struct http_tls *tls, const char *what)
{
    if (http_tls_is_expired(tls))
        ig_warn("%s: the certificate has expired (%s): clients will refuse it", what,
                http_tls_summary(tls));
    else
        ig_info("%s: %s", what, http_tls_summary(tls));
}

/* Raises the soft open-file limit so that MAX_CONNECTIONS fit; warns when it cannot. */
static void fit_fd_limit(size_t max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + SPARE_FDS;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        ig_warn("the open-file limit (%llu) is low for limits.max_connections %zu: connections "
                "beyond it wait in the kernel's queue; raise it (ulimit -n, LimitNOFILE=)",
                (unsigned long long)rl.rlim_cur, max_connections);
}

int http_front_listen(struct http_server *srv, const struct cfg *cfg, const char *host, int port,
                      char **cause)
{
    struct http_server_options opt;
    struct http_cors *cors = NULL;
    struct http_tls *tls = NULL;
    int rc;

    options_from(cfg, &opt);
    http_server_set_options(srv, &opt);
    fit_fd_limit(opt.max_connections);
    rc = cors_from(cfg, &cors);
    if (rc != 0) {
        if (cause != NULL)
            *cause = strdup("out of memory");
        return rc;
    }
    http_server_set_cors(srv, cors);
    if (cfg->tls.cert_path != NULL) {
        tls = load_tls(cfg, cause);
        if (tls == NULL)
            return IG_ECONFIG;
        log_certificate(tls, "TLS certificate");
        http_server_set_tls(srv, tls);
    }
    srv->is_exposed = !http_front_is_loopback(host);
    srv->allow_no_auth = cfg->is_insecure_no_auth;
    format_addr(host, port, srv->listen_addr, sizeof(srv->listen_addr));
    return http_server_listen(srv, host, port, cause);
}

struct http_front_prep *http_front_prepare(const struct cfg *next)
{
    struct http_front_prep *prep = calloc(1, sizeof(*prep));

    if (prep == NULL)
        return NULL;
    prep->has_tls = next->tls.cert_path != NULL;
    if (prep->has_tls)
        prep->tls = load_tls(next, &prep->tls_cause);
    return prep;
}

void http_front_prep_free(struct http_front_prep *prep)
{
    if (prep == NULL)
        return;
    http_tls_free(prep->tls);
    free(prep->tls_cause);
    free(prep);
}

int http_front_check_certificate(const struct http_front_prep *prep, char **cause)
{
    if (prep == NULL || !prep->has_tls || prep->tls != NULL)
        return 0;
    if (cause != NULL &&
        asprintf(cause,
                 "%s; the reload was not applied: the server goes on with its current "
                 "certificate and configuration",
                 prep->tls_cause != NULL ? prep->tls_cause : "tls: cannot load the certificate") <
            0)
        *cause = NULL;
    return IG_ECONFIG;
}

int http_front_check_reload(const struct http_server *srv, const struct cfg *next, char **cause)
{
    if (!srv->is_exposed || srv->allow_no_auth || cfg_auth_is_on(next))
        return 0;
    if (cause != NULL &&
        asprintf(cause,
                 "%s: authentication would be off while infergate listens on %s, which is not "
                 "a loopback address; keep auth.keys or apiKeys configured (or restart with "
                 "--insecure-no-auth)",
                 next->path, srv->listen_addr) < 0)
        *cause = NULL;
    return IG_ECONFIG;
}

/* Switches SRV's certificate to PREP's, or says why not. */
static void commit_tls(struct http_server *srv, struct http_front_prep *prep)
{
    bool is_tls = srv->tls != NULL;

    if (prep == NULL) {
        if (is_tls)
            ig_error("reload: keeping the current TLS certificate: out of memory");
        return;
    }
    if (!is_tls && prep->has_tls) {
        ig_warn("reload: tls applies after a restart (the listener speaks plain HTTP)");
        return;
    }
    if (is_tls && !prep->has_tls) {
        ig_warn("reload: removing tls applies after a restart (keeping the current "
                "certificate)");
        return;
    }
    if (!is_tls)
        return;
    if (prep->tls == NULL) {
        ig_error("reload: keeping the current TLS certificate: %s",
                 prep->tls_cause != NULL ? prep->tls_cause : "cannot load the new one");
        return;
    }
    http_server_set_tls(srv, prep->tls);
    prep->tls = NULL;
    log_certificate(srv->tls, "reload: TLS certificate for new connections");
}

void http_front_commit(struct http_server *srv, const struct cfg *next,
                       struct http_front_prep *prep)
{
    struct http_server_options cur, opt;
    struct http_cors *cors = NULL;

    if (srv == NULL) {
        http_front_prep_free(prep);
        return;
    }
    http_server_get_options(srv, &cur);
    options_from(next, &opt);
    opt.max_body_bytes = cur.max_body_bytes; /* restart-only (gw_reload.c warns) */
    opt.max_header_bytes = cur.max_header_bytes;
    opt.idle_timeout_s = cur.idle_timeout_s;
    http_server_set_options(srv, &opt);
    if (opt.max_connections > cur.max_connections)
        fit_fd_limit(opt.max_connections);
    if (cors_from(next, &cors) != 0)
        ig_error("reload: keeping the current CORS policy: out of memory");
    else
        http_server_set_cors(srv, cors);
    commit_tls(srv, prep);
    http_front_prep_free(prep);
}
