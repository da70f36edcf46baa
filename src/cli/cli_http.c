/*
 * The client side shared by the subcommands that talk to a running server.
 *
 * The token only ever comes from the environment (INFERGATE_TOKEN, or the variable named by
 * --token-env): a token on the command line would be readable by every user in `ps`.
 * Requests are blocking libcurl transfers; the subcommands that need several at once (chat's
 * loading check, bench) drive the handles cli_server_easy() makes with a multi handle.
 */
#include "cli_http.h"
#include "ig_json.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://127.0.0.1:8080"
#define MAX_URL_CHARS 2048
#define MAX_TOKEN_CHARS 4096
#define CONNECT_TIMEOUT_MS 5000
#define MAX_ERROR_BODY_BYTES (64u << 10)
#define MAX_JSON_DEPTH 64

struct cli_server {
    char *url;     /* without a trailing slash */
    char *token;   /* NULL: none */
    char *ca_file; /* NULL: the system's */
    bool is_explicit;
};

int cli_buf_append(struct cli_buf *b, const void *bytes, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return IG_ETOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (data == NULL)
            return IG_ENOMEM;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void cli_buf_free(struct cli_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Replaces S's URL with TEXT (trailing slashes dropped); returns 0, or -1 if TEXT is not an
 * http(s) URL. */
static int set_url(struct cli_server *s, const char *text)
{
    size_t n = strlen(text);
    char *copy;

    if ((strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) ||
        n > MAX_URL_CHARS || strpbrk(text, " \r\n\t") != NULL)
        return -1;
    while (n > 8 && text[n - 1] == '/')
        n--;
    copy = strndup(text, n);
    if (copy == NULL)
        return -1;
    free(s->url);
    s->url = copy;
    return 0;
}

/* Replaces S's token with TEXT; returns 0, or -1 if it could not be a header value. */
static int set_token(struct cli_server *s, const char *text)
{
    char *copy;

    if (strlen(text) > MAX_TOKEN_CHARS || strpbrk(text, "\r\n") != NULL)
        return -1;
    copy = strdup(text);
    if (copy == NULL)
        return -1;
    if (s->token != NULL)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->token);
    s->token = copy[0] != '\0' ? copy : (free(copy), NULL);
    return 0;
}

struct cli_server *cli_server_new(void)
{
    struct cli_server *s = calloc(1, sizeof(*s));
    const char *url = getenv("INFERGATE_URL"), *token = getenv("INFERGATE_TOKEN");

    if (s == NULL)
        return NULL;
    if (url != NULL && url[0] != '\0') {
        if (set_url(s, url) != 0)
            fprintf(stderr, "infergate: ignoring INFERGATE_URL '%s': not an http(s) URL\n", url);
        else
            s->is_explicit = true;
    }
    if (s->url == NULL && set_url(s, DEFAULT_URL) != 0) {
        cli_server_free(s);
        return NULL;
    }
    if (token != NULL && set_token(s, token) != 0)
        fprintf(stderr, "infergate: ignoring INFERGATE_TOKEN: not a usable header value\n");
    return s;
}

void cli_server_free(struct cli_server *s)
{
    if (s == NULL)
        return;
    if (s->token != NULL)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->token);
    free(s->url);
    free(s->ca_file);
    free(s);
}

int cli_server_option(struct cli_server *s, int argc, char **argv, int *i)
{
    const char *opt = argv[*i], *value;

    if (strcmp(opt, "--url") != 0 && strcmp(opt, "--token-env") != 0 &&
        strcmp(opt, "--cacert") != 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "infergate: %s needs a value\n", opt);
        return -1;
    }
    value = argv[++*i];
    if (strcmp(opt, "--url") == 0) {
        if (set_url(s, value) != 0) {
            fprintf(stderr, "infergate: --url: expected http://HOST:PORT or https://..., got "
                            "'%s'\n", value);
            return -1;
        }
        s->is_explicit = true;
    } else if (strcmp(opt, "--token-env") == 0) {
        const char *token = getenv(value);
        if (token == NULL) {
            fprintf(stderr, "infergate: --token-env: the environment variable %s is not set\n",
                    value);
            return -1;
        }
        if (set_token(s, token) != 0) {
            fprintf(stderr, "infergate: --token-env: %s is not a usable token\n", value);
            return -1;
        }
    } else {
        free(s->ca_file);
        s->ca_file = strdup(value);
        if (s->ca_file == NULL)
            return -1;
    }
    return 1;
}

bool cli_server_is_explicit(const struct cli_server *s)
{
    return s->is_explicit;
}

const char *cli_server_url(const struct cli_server *s)
{
    return s->url;
}

CURL *cli_server_easy(const struct cli_server *s, const char *method, const char *path,
                      const char *body, struct curl_slist **headers)
{
    CURL *h = curl_easy_init();
    struct curl_slist *list = NULL, *next;
    char *url = NULL, *auth = NULL;
    size_t url_size = strlen(s->url) + strlen(path) + 1;
    bool is_ok = false;

    *headers = NULL;
    url = malloc(url_size);
    if (h == NULL || url == NULL)
        goto out;
    snprintf(url, url_size, "%s%s", s->url, path);
    if (s->token != NULL) {
        size_t n = strlen(s->token) + 32;
        auth = malloc(n);
        if (auth == NULL)
            goto out;
        snprintf(auth, n, "Authorization: Bearer %s", s->token);
        next = curl_slist_append(list, auth);
        OPENSSL_cleanse(auth, n);
        if (next == NULL)
            goto out;
        list = next;
    }
    if (body != NULL) {
        next = curl_slist_append(list, "Content-Type: application/json");
        if (next == NULL)
            goto out;
        list = next;
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    }
    if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK)
        goto out;
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "infergate-cli/" IG_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    is_ok = true;
out:
    free(url);
    free(auth);
    if (!is_ok) {
        curl_slist_free_all(list);
        curl_easy_cleanup(h);
        return NULL;
    }
    *headers = list;
    return h;
}

/* An answer being read, and whether it outgrew its cap. */
struct answer {
    struct cli_buf body;
    int append_rc;
};

/* libcurl write callback appending to a struct answer; a full buffer fails the transfer. */
static size_t on_body(char *bytes, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;

    a->append_rc = cli_buf_append(&a->body, bytes, size * n);
    return a->append_rc == 0 ? size * n : 0;
}

int cli_server_get_json(const struct cli_server *s, const char *path, long timeout_ms,
                        json_t **out, long *status, char **cause)
{
    struct answer a = {.body = {.max = CLI_MAX_JSON_BYTES}};
    struct cli_buf *body = &a.body;
    struct curl_slist *headers = NULL;
    CURL *h = cli_server_easy(s, "GET", path, NULL, &headers);
    char errbuf[CURL_ERROR_SIZE] = "";
    char jerr[160];
    CURLcode code;
    int rc = -1;

    *out = NULL;
    *status = 0;
    if (h == NULL) {
        *cause = strdup("out of memory");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (code == CURLE_WRITE_ERROR && a.append_rc != 0) {
        *cause = strdup(a.append_rc == IG_ETOOBIG ? "the server's answer is larger than 16 MiB"
                                                  : "out of memory");
        goto out;
    }
    if (code != CURLE_OK) {
        *cause = cli_transport_text(s, code, errbuf);
        goto out;
    }
    if (*status < 200 || *status > 299) {
        *cause = cli_error_text(*status, body->data, body->len);
        goto out;
    }
    *out = ig_json_parse(body->data != NULL ? body->data : "", body->len, MAX_JSON_DEPTH, jerr,
                         sizeof(jerr));
    if (*out == NULL) {
        size_t n = strlen(jerr) + strlen(path) + 64;
        *cause = malloc(n);
        if (*cause != NULL)
            snprintf(*cause, n, "GET %s: the answer is not JSON: %s", path, jerr);
        goto out;
    }
    rc = 0;
out:
    cli_buf_free(body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

/* Returns a copy of at most MAX bytes of TEXT (LEN bytes) with control characters as spaces. */
static char *printable(const char *text, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    char *copy = malloc(n + 1);

    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
    copy[n] = '\0';
    return copy;
}

char *cli_error_text(long status, const char *body, size_t len)
{
    json_t *doc = NULL, *err;
    const char *message = NULL, *code = NULL;
    const char *hint = "";
    char *text = NULL, *raw = NULL, jerr[160];
    size_t size;

    if (body != NULL && len > 0 && len <= MAX_ERROR_BODY_BYTES)
        doc = ig_json_parse(body, len, MAX_JSON_DEPTH, jerr, sizeof(jerr));
    err = json_object_get(doc, "error");
    if (json_is_object(err)) {
        message = json_string_value(json_object_get(err, "message"));
        code = json_string_value(json_object_get(err, "code"));
    } else if (json_is_string(err)) {
        message = json_string_value(err);
    }
    /* The server's words reach a terminal: no escape sequences. */
    char *safe_message = message != NULL ? printable(message, strlen(message), 2000) : NULL;
    char *safe_code = code != NULL ? printable(code, strlen(code), 200) : NULL;
    message = message != NULL ? safe_message : NULL;
    code = code != NULL ? safe_code : NULL;
    if (status == 401)
        hint = "; set INFERGATE_TOKEN (or --token-env NAME) to a key of this server";
    else if (status == 403)
        hint = "; the token set in INFERGATE_TOKEN is not allowed to do this";
    if (message == NULL) {
        raw = printable(body != NULL ? body : "", body != NULL ? len : 0, 200);
        message = raw != NULL && raw[0] != '\0' ? raw : "no details";
    }
    size = strlen(message) + (code != NULL ? strlen(code) : 0) + strlen(hint) + 48;
    text = malloc(size);
    if (text != NULL && status == 0)
        snprintf(text, size, "%s (%s)", message, code != NULL ? code : "error");
    else if (text != NULL && code != NULL)
        snprintf(text, size, "%s (HTTP %ld, %s)%s", message, status, code, hint);
    else if (text != NULL)
        snprintf(text, size, "%s (HTTP %ld)%s", message, status, hint);
    free(raw);
    free(safe_message);
    free(safe_code);
    json_decref(doc);
    return text;
}

char *cli_transport_text(const struct cli_server *s, CURLcode code, const char *detail)
{
    const char *why = detail != NULL && detail[0] != '\0' ? detail : curl_easy_strerror(code);
    size_t size = strlen(s->url) + strlen(why) + 64;
    char *text = malloc(size);

    if (text == NULL)
        return NULL;
    if (code == CURLE_COULDNT_CONNECT)
        snprintf(text, size, "cannot reach %s: %s (is `infergate serve` running there?)", s->url,
                 why);
    else
        snprintf(text, size, "request to %s failed: %s", s->url, why);
    return text;
}
