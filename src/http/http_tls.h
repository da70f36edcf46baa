/*
 * The front listener's TLS certificate (OpenSSL 3): a PEM certificate chain and its
 * private key loaded into a server context, and the per-connection TLS state made from it.
 *
 * A loaded certificate is immutable. Every connection made from it holds a reference to
 * its OpenSSL context, so freeing the server's copy when a reload replaces it leaves the
 * existing connections on the certificate they started with.
 */
#ifndef IG_HTTP_TLS_H
#define IG_HTTP_TLS_H

#include "ig_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_st SSL;
struct http_tls;

/* Lowest protocol versions accepted (values of tls.min_version). */
enum http_tls_version { HTTP_TLS_1_2 = 12, HTTP_TLS_1_3 = 13 };

/*
 * Loads CERT_PATH (PEM chain, leaf first) and KEY_PATH (unencrypted PEM key) and checks
 * that the key belongs to the certificate. Safe on any thread (it reads files: keep it
 * off the event loop). Returns the certificate (free with http_tls_free()) or NULL with
 * *CAUSE set (caller frees), e.g. "tls.key /x.pem does not match the certificate in /y.pem".
 */
struct http_tls *http_tls_new(const char *cert_path, const char *key_path,
                              enum http_tls_version min_version, char **cause);

/* Frees TLS; connections made from it keep working. NULL is a no-op. */
void http_tls_free(struct http_tls *tls);

/* Describes the certificate for the log: subject, expiry and SHA-256 fingerprint
 * (borrowed, lives as long as TLS). */
const char *http_tls_summary(const struct http_tls *tls);

/* Returns whether the certificate's notAfter has passed. */
bool http_tls_is_expired(const struct http_tls *tls);

/* Returns the unix time of the certificate's notAfter (0 when unknown). */
int64_t http_tls_not_after(const struct http_tls *tls);

/* Creates the server side TLS state of an accepted non-blocking socket FD; the handshake
 * runs within the first reads. Returns NULL when out of memory; free with SSL_free(). */
SSL *http_tls_accept(struct http_tls *tls, int fd);

#endif
