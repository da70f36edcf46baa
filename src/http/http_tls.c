/*
 * Server certificates with OpenSSL 3.
 *
 * Settings: TLS 1.2 or 1.3 minimum (tls.min_version), OpenSSL's default cipher lists
 * (forward secrecy, AEAD), no renegotiation (a client could make us redo handshakes on
 * demand), no compression, ALPN answering "http/1.1" (so clients that offer h2 fall back
 * cleanly), partial writes on, and read/write buffers released while a connection is idle
 * (keep-alive connections then cost a few hundred bytes of TLS state, not ~70 KiB).
 *
 * Keys must not be encrypted: a passphrase prompt would block the loop (and there is no
 * terminal under a service manager), so the passphrase callback refuses and the error
 * says so.
 */
#include "http_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct http_tls {
    SSL_CTX *ctx;
    bool is_expired;
    int64_t not_after;
    char summary[512];
};

/* Refuses to decrypt an encrypted key (never prompts). */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return -1;
}

/* ALPN: picks http/1.1 when the client offers it, else negotiates nothing. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned int in_len, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *chosen = NULL;
    (void)ssl;
    (void)arg;

    if (SSL_select_next_proto(&chosen, out_len, ours, sizeof(ours) - 1, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* Sets *CAUSE to "PREFIX: reason" with OpenSSL's last error reason, if any. */
static void set_cause(char **cause, const char *prefix)
{
    unsigned long err = ERR_peek_last_error();
    const char *reason = err != 0 ? ERR_reason_error_string(err) : NULL;

    if (cause == NULL)
        return;
    if (asprintf(cause, "%s%s%s", prefix, reason != NULL ? ": " : "",
                 reason != NULL ? reason : "") < 0)
        *cause = NULL;
}

/* Checks that PATH can be opened for reading; sets *CAUSE naming WHAT otherwise. */
static bool is_readable(const char *what, const char *path, char **cause)
{
    FILE *f = fopen(path, "rb");

    if (f != NULL) {
        fclose(f);
        return true;
    }
    if (cause != NULL && asprintf(cause, "%s: cannot read %s: %s", what, path, strerror(errno)) < 0)
        *cause = NULL;
    return false;
}

/* Converts an ASN1_TIME to unix seconds (0 when it cannot). */
static int64_t asn1_to_unix(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Fills TLS's summary: subject, expiry and SHA-256 fingerprint of the leaf certificate. */
static void describe(struct http_tls *tls)
{
    X509 *cert = SSL_CTX_get0_certificate(tls->ctx);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char subject[256] = "?", fingerprint[EVP_MAX_MD_SIZE * 3 + 1] = "";
    char expires[32] = "?";
    time_t not_after;
    struct tm tm;

    if (cert == NULL)
        return;
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
    if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1)
        for (unsigned int i = 0; i < md_len; i++)
            snprintf(fingerprint + i * 3, sizeof(fingerprint) - i * 3, "%02X%s", md[i],
                     i + 1 < md_len ? ":" : "");
    tls->not_after = asn1_to_unix(X509_get0_notAfter(cert));
    tls->is_expired = X509_cmp_current_time(X509_get0_notAfter(cert)) < 0;
    not_after = (time_t)tls->not_after;
    if (tls->not_after != 0 && gmtime_r(&not_after, &tm) != NULL)
        strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(tls->summary, sizeof(tls->summary), "%s, expires %s, SHA-256 %s", subject, expires,
             fingerprint);
}

struct http_tls *http_tls_new(const char *cert_path, const char *key_path,
                              enum http_tls_version min_version, char **cause)
{
    struct http_tls *tls = NULL;
    char prefix[2048];

    if (cause != NULL)
        *cause = NULL;
    ERR_clear_error();
    if (!is_readable("tls.cert", cert_path, cause) || !is_readable("tls.key", key_path, cause))
        goto fail;
    tls = calloc(1, sizeof(*tls));
    if (tls == NULL || (tls->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        set_cause(cause, "tls: cannot create a TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(tls->ctx,
                                  min_version == HTTP_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(tls->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                      SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                   SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(tls->ctx, (const unsigned char *)"infergate", 9);
    SSL_CTX_set_default_passwd_cb(tls->ctx, no_passphrase);
    SSL_CTX_set_alpn_select_cb(tls->ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert_path) != 1) {
        snprintf(prefix, sizeof(prefix), "tls.cert %s is not a PEM certificate (chain)", cert_path);
        set_cause(cause, prefix);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(tls->ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        unsigned long err = ERR_peek_last_error();
        bool is_mismatch = ERR_GET_LIB(err) == ERR_LIB_X509 &&
                           (ERR_GET_REASON(err) == X509_R_KEY_VALUES_MISMATCH ||
                            ERR_GET_REASON(err) == X509_R_KEY_TYPE_MISMATCH);
        if (is_mismatch)
            snprintf(prefix, sizeof(prefix), "tls.key %s does not match the certificate in %s",
                     key_path, cert_path);
        else
            snprintf(prefix, sizeof(prefix), "tls.key %s is not an unencrypted PEM private key",
                     key_path);
        set_cause(cause, prefix);
        goto fail;
    }
    if (SSL_CTX_check_private_key(tls->ctx) != 1) {
        snprintf(prefix, sizeof(prefix), "tls.key %s does not match the certificate in %s",
                 key_path, cert_path);
        set_cause(cause, prefix);
        goto fail;
    }
    describe(tls);
    ERR_clear_error();
    return tls;
fail:
    http_tls_free(tls);
    ERR_clear_error();
    return NULL;
}

void http_tls_free(struct http_tls *tls)
{
    if (tls == NULL)
        return;
    SSL_CTX_free(tls->ctx);
    free(tls);
}

const char *http_tls_summary(const struct http_tls *tls)
{
    return tls->summary;
}

bool http_tls_is_expired(const struct http_tls *tls)
{
    return tls->is_expired;
}

int64_t http_tls_not_after(const struct http_tls *tls)
{
    return tls->not_after;
}

SSL *http_tls_accept(struct http_tls *tls, int fd)
{
    SSL *ssl = SSL_new(tls->ctx);

    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}
