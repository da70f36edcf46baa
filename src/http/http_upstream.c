/*
 * Upstream HTTP client on libcurl multi, driven by libevent (the "multi_socket" API).
 *
 * curl tells us which sockets to watch (socket_cb) and when to wake it (timer_cb); we turn
 * those into libevent events and call curl_multi_socket_action() from them. Finished
 * transfers are collected with curl_multi_info_read() after every action.
 *
 * Re-entrancy: curl forbids removing a handle from inside its own callbacks. A cancel that
 * happens while curl is on the stack (our on_data/on_headers run inside curl's write
 * callback) is therefore deferred: the transfer is marked and removed right after curl
 * returns. Easy handles are recycled through a free list to save set-up work per request.
 *
 * Secrets: a transfer with an api_key (a hosted provider's key) sends it in its own headers
 * and never in anything it hands back. Providers echo a wrong key in their 401 bodies
 * (OpenAI: "Incorrect API key provided: sk-..."), so every occurrence of the key in the body
 * is replaced before on_data sees it. The key may be split across two reads; the longest
 * tail of a read that could begin the key is held back until the next read (or the end).
 * A key never contains a newline and SSE events end with "\n\n", so a stream's events
 * still go out as soon as they arrive.
 */
#include "http_upstream.h"
#include "http_native.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CONTENT_TYPE 128
#define MAX_FREE_EASY 256
#define MAX_HEADERS 32
#define REDACTED "[redacted]"

struct upstream_req {
    struct upstream_pool *pool;
    struct native_req *native; /* set: served by the native client, not curl */
    CURL *easy;
    struct curl_slist *headers;
    struct upstream_callbacks cb;
    void *arg;
    struct upstream_req *prev, *next; /* active list */
    struct upstream_req *next_doomed;  /* deferred removal list */
    bool is_canceled;
    bool is_finishing; /* on_done is running; the transfer is released after it */
    bool has_sent_headers;
    bool is_oom;  /* redaction could not allocate: the transfer fails */
    char *secret; /* the api_key, wiped when freed; NULL when none */
    size_t secret_len;
    char *held; /* secret_len bytes: a read's tail that may begin the secret */
    size_t held_len;
    char content_type[MAX_CONTENT_TYPE];
    char error[CURL_ERROR_SIZE];
};

struct upstream_pool {
    struct event_base *base;
    struct native_pool *native;
    CURLM *multi;
    struct event *timer;
    struct upstream_req *active;
    size_t n_active;
    struct upstream_req *doomed;
    int curl_depth; /* >0 while curl is on the stack */
    CURL *free_easy[MAX_FREE_EASY];
    size_t n_free_easy;
};

/* Per-socket watcher registered with curl_multi_assign(). */
struct sock_watch {
    struct event *ev;
    struct upstream_pool *pool;
};

static void check_done(struct upstream_pool *pool);

/* Frees a transfer's own memory (the secret wiped first); its handles are gone already. */
static void req_free(struct upstream_req *ureq)
{
    if (ureq->secret != NULL)
        explicit_bzero(ureq->secret, ureq->secret_len);
    if (ureq->held != NULL)
        explicit_bzero(ureq->held, ureq->secret_len);
    free(ureq->secret);
    free(ureq->held);
    free(ureq);
}

/*
 * Hands body bytes to on_data with the secret replaced by REDACTED (see the top comment).
 * Returns on_data's answer (1: pause), or -1 when out of memory (nothing delivered).
 * UREQ is not touched once on_data runs: a native transfer cancelled inside it is gone.
 */
static int deliver_body(struct upstream_req *ureq, const char *data, size_t len)
{
    int (*on_data)(struct upstream_req *, const char *, size_t, void *) = ureq->cb.on_data;
    size_t n = ureq->held_len + len, at = 0, used = 0, keep;
    char *in, *out;
    int rc;

    if (ureq->secret == NULL)
        return on_data != NULL ? on_data(ureq, data, len, ureq->arg) : 0;
    in = malloc(n + 1);
    out = malloc(n + (n / ureq->secret_len + 1) * (sizeof(REDACTED) - 1) + 1);
    if (in == NULL || out == NULL) {
        free(in);
        free(out);
        ureq->is_oom = true;
        return -1;
    }
    memcpy(in, ureq->held, ureq->held_len);
    memcpy(in + ureq->held_len, data, len);
    for (;;) {
        const char *hit = memmem(in + at, n - at, ureq->secret, ureq->secret_len);
        if (hit == NULL)
            break;
        memcpy(out + used, in + at, (size_t)(hit - (in + at)));
        used += (size_t)(hit - (in + at));
        memcpy(out + used, REDACTED, sizeof(REDACTED) - 1);
        used += sizeof(REDACTED) - 1;
        at = (size_t)(hit - in) + ureq->secret_len;
    }
    keep = n - at < ureq->secret_len - 1 ? n - at : ureq->secret_len - 1;
    while (keep > 0 && memcmp(in + n - keep, ureq->secret, keep) != 0)
        keep--;
    memcpy(out + used, in + at, n - at - keep);
    used += n - at - keep;
    memcpy(ureq->held, in + n - keep, keep);
    ureq->held_len = keep;
    explicit_bzero(in, n);
    free(in);
    rc = used > 0 && on_data != NULL ? on_data(ureq, out, used, ureq->arg) : 0;
    free(out);
    return rc;
}

/* At a complete response's end: delivers the bytes held back (they were not the secret). */
static void flush_held(struct upstream_req *ureq)
{
    size_t n = ureq->held_len;

    ureq->held_len = 0;
    if (n > 0 && !ureq->is_canceled && ureq->cb.on_data != NULL)
        ureq->cb.on_data(ureq, ureq->held, n, ureq->arg);
}

/* Unlinks UREQ from the active list. */
static void req_unlink(struct upstream_req *ureq)
{
    struct upstream_pool *pool = ureq->pool;

    if (ureq->prev != NULL)
        ureq->prev->next = ureq->next;
    else
        pool->active = ureq->next;
    if (ureq->next != NULL)
        ureq->next->prev = ureq->prev;
    pool->n_active--;
}

/* Unlinks UREQ from the active list, removes it from curl and recycles its handle. */
static void req_release(struct upstream_req *ureq)
{
    struct upstream_pool *pool = ureq->pool;

    req_unlink(ureq);
    curl_multi_remove_handle(pool->multi, ureq->easy);
    if (pool->n_free_easy < MAX_FREE_EASY) {
        curl_easy_reset(ureq->easy);
        pool->free_easy[pool->n_free_easy++] = ureq->easy;
    } else {
        curl_easy_cleanup(ureq->easy);
    }
    for (struct curl_slist *h = ureq->headers; ureq->secret != NULL && h != NULL; h = h->next)
        explicit_bzero(h->data, strlen(h->data)); /* the lines carrying the secret */
    curl_slist_free_all(ureq->headers);
    req_free(ureq);
}

/* Removes transfers cancelled while curl was on the stack. */
static void reap_doomed(struct upstream_pool *pool)
{
    while (pool->doomed != NULL && pool->curl_depth == 0) {
        struct upstream_req *ureq = pool->doomed;
        pool->doomed = ureq->next_doomed;
        req_release(ureq);
    }
}

/* Runs one curl action on FD (or the timeout) and processes what finished. */
static void drive(struct upstream_pool *pool, curl_socket_t fd, int action)
{
    int running = 0;

    pool->curl_depth++;
    curl_multi_socket_action(pool->multi, fd, action, &running);
    pool->curl_depth--;
    reap_doomed(pool);
    check_done(pool);
}

/* libevent callback for a watched socket. */
static void sock_event_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct sock_watch *watch = arg;
    int action = ((kind & EV_READ) ? CURL_CSELECT_IN : 0) | ((kind & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    drive(watch->pool, fd, action);
}

/* libevent callback for curl's timer. */
static void timer_event_cb(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* curl asks to watch, change or forget socket S. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct upstream_pool *pool = userp;
    struct sock_watch *watch = socketp;
    short kind;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (watch != NULL) {
            event_free(watch->ev);
            free(watch);
        }
        curl_multi_assign(pool->multi, s, NULL);
        return 0;
    }
    kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (watch == NULL) {
        watch = calloc(1, sizeof(*watch));
        if (watch == NULL)
            return -1;
        watch->pool = pool;
        watch->ev = event_new(pool->base, s, kind, sock_event_cb, watch);
        if (watch->ev == NULL) {
            free(watch);
            return -1;
        }
        curl_multi_assign(pool->multi, s, watch);
    } else {
        event_del(watch->ev);
        event_assign(watch->ev, pool->base, s, kind, sock_event_cb, watch);
    }
    event_add(watch->ev, NULL);
    return 0;
}

/* curl asks to be woken after TIMEOUT_MS (-1: cancel the timer). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct upstream_pool *pool = userp;
    struct timeval tv;
    (void)multi;

    if (timeout_ms < 0) {
        evtimer_del(pool->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(pool->timer, &tv);
    return 0;
}

/* Calls on_headers once, with the status and Content-Type seen so far. */
static void deliver_headers(struct upstream_req *ureq)
{
    long status = 0;

    if (ureq->has_sent_headers || ureq->is_canceled)
        return;
    ureq->has_sent_headers = true;
    curl_easy_getinfo(ureq->easy, CURLINFO_RESPONSE_CODE, &status);
    if (ureq->cb.on_headers != NULL)
        ureq->cb.on_headers(ureq, (int)status,
                            ureq->content_type[0] != '\0' ? ureq->content_type : NULL, ureq->arg);
}

/* curl delivers body bytes. */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct upstream_req *ureq = userp;
    size_t len = size * nmemb;
    int rc;

    if (ureq->is_canceled)
        return len;
    deliver_headers(ureq);
    if (ureq->is_canceled || ureq->cb.on_data == NULL)
        return len;
    rc = deliver_body(ureq, data, len);
    if (rc < 0)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    if (rc == 1 && !ureq->is_canceled)
        curl_easy_pause(ureq->easy, CURLPAUSE_RECV);
    return len;
}

/* curl delivers one header line; we keep Content-Type of the final response. */
static size_t header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct upstream_req *ureq = userp;
    size_t len = size * nmemb;
    static const char name[] = "content-type:";

    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        ureq->content_type[0] = '\0';
    } else if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        const char *v = data + sizeof(name) - 1;
        const char *end = data + len;
        size_t n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        n = (size_t)(end - v);
        if (n >= MAX_CONTENT_TYPE)
            n = MAX_CONTENT_TYPE - 1;
        memcpy(ureq->content_type, v, n);
        ureq->content_type[n] = '\0';
    }
    return len;
}

/* Maps a finished transfer's CURLcode to our error codes and calls on_done. */
static void finish(struct upstream_req *ureq, CURLcode result)
{
    int rc = 0;
    const char *message = NULL;

    if (!ureq->is_canceled) {
        ureq->is_finishing = true;
        if (result == CURLE_OK) {
            deliver_headers(ureq);
            flush_held(ureq);
        } else if (ureq->is_oom) {
            rc = IG_ENOMEM;
            message = "out of memory";
        } else {
            rc = result == CURLE_OPERATION_TIMEDOUT ? IG_ETIMEDOUT : IG_EIO;
            message = ureq->error[0] != '\0' ? ureq->error : curl_easy_strerror(result);
        }
        if (!ureq->is_canceled && ureq->cb.on_done != NULL)
            ureq->cb.on_done(ureq, rc, message, ureq->arg);
    }
    req_release(ureq);
}

/* Collects finished transfers. */
static void check_done(struct upstream_pool *pool)
{
    CURLMsg *msg;
    int left = 0;

    while ((msg = curl_multi_info_read(pool->multi, &left)) != NULL) {
        struct upstream_req *ureq = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&ureq);
        if (ureq != NULL && !ureq->is_canceled)
            finish(ureq, msg->data.result);
    }
}

struct upstream_pool *upstream_pool_new(struct event_base *base)
{
    struct upstream_pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    pool->base = base;
    pool->native = native_pool_new(base);
    pool->multi = curl_multi_init();
    pool->timer = evtimer_new(base, timer_event_cb, pool);
    if (pool->native == NULL || pool->multi == NULL || pool->timer == NULL) {
        upstream_pool_free(pool);
        return NULL;
    }
    curl_multi_setopt(pool->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(pool->multi, CURLMOPT_SOCKETDATA, pool);
    curl_multi_setopt(pool->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(pool->multi, CURLMOPT_TIMERDATA, pool);
    curl_multi_setopt(pool->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return pool;
}

void upstream_pool_free(struct upstream_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->active != NULL) {
        struct upstream_req *ureq = pool->active;
        if (ureq->native != NULL) {
            native_cancel(ureq->native);
            req_unlink(ureq);
            req_free(ureq);
        } else {
            req_release(ureq);
        }
    }
    native_pool_free(pool->native);
    for (size_t i = 0; i < pool->n_free_easy; i++)
        curl_easy_cleanup(pool->free_easy[i]);
    if (pool->multi != NULL)
        curl_multi_cleanup(pool->multi);
    if (pool->timer != NULL)
        event_free(pool->timer);
    free(pool);
}

/* Sets the curl options of one transfer. */
static void configure_easy(struct upstream_req *ureq, const struct upstream_spec *spec)
{
    CURL *e = ureq->easy;

    curl_easy_setopt(e, CURLOPT_URL, spec->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, ureq);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, ureq);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, ureq);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ureq->error);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, ureq->headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (spec->ca_file != NULL) {
        /* Only the file's CAs: Debian's libcurl also trusts /etc/ssl/certs by CAPATH. */
        curl_easy_setopt(e, CURLOPT_CAINFO, spec->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    if (spec->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, spec->timeout_ms);
    if (spec->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, spec->connect_timeout_ms);
    if (spec->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, spec->body);
    }
    if (strcmp(spec->method, "GET") == 0 && spec->body == NULL)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(spec->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(spec->method, "POST") != 0 || spec->body == NULL)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
}

/* Native client: response head. */
static void native_on_headers(void *owner, int status, const char *content_type)
{
    struct upstream_req *ureq = owner;
    if (ureq->cb.on_headers != NULL)
        ureq->cb.on_headers(ureq, status, content_type, ureq->arg);
}

/* Native client: body bytes. Out of memory while redacting ends the transfer at once. */
static int native_on_data(void *owner, const char *data, size_t len)
{
    struct upstream_req *ureq = owner;
    int rc = deliver_body(ureq, data, len);

    if (rc >= 0)
        return rc;
    native_cancel(ureq->native);
    ureq->is_finishing = true;
    if (ureq->cb.on_done != NULL)
        ureq->cb.on_done(ureq, IG_ENOMEM, "out of memory", ureq->arg);
    req_unlink(ureq);
    req_free(ureq);
    return 0;
}

/* Native client: the end; the transfer is freed after the caller's on_done. */
static void native_on_done(void *owner, int rc, const char *message)
{
    struct upstream_req *ureq = owner;

    ureq->is_finishing = true;
    if (rc == 0)
        flush_held(ureq);
    if (!ureq->is_canceled && ureq->cb.on_done != NULL)
        ureq->cb.on_done(ureq, rc, message, ureq->arg);
    req_unlink(ureq);
    req_free(ureq);
}

/* Links a new transfer into the active list. */
static void req_link(struct upstream_pool *pool, struct upstream_req *ureq)
{
    ureq->next = pool->active;
    if (pool->active != NULL)
        pool->active->prev = ureq;
    pool->active = ureq;
    pool->n_active++;
}

/* Starts SPEC on the native client (plain http:// to an address). */
static struct upstream_req *start_native(struct upstream_pool *pool, struct upstream_req *ureq,
                                         const struct upstream_spec *spec)
{
    static const struct native_callbacks callbacks = {native_on_headers, native_on_data,
                                                      native_on_done};

    ureq->native = native_start(pool->native, spec, &callbacks, ureq);
    if (ureq->native == NULL) {
        req_free(ureq);
        return NULL;
    }
    req_link(pool, ureq);
    return ureq;
}

/* Returns whether header line LINE ("Name: value") carries a credential of the client. */
static bool is_credential(const char *line)
{
    static const char *const names[] = {
        "authorization:", "proxy-authorization:", "x-api-key:", "api-key:"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncasecmp(line, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* The header lines a transfer sends: SPEC's, and with an api_key its two lines instead of
 * any credential in SPEC's. */
struct header_set {
    const char *lines[MAX_HEADERS + 3];
    char *owned[2];
};

/* Fills SET from SPEC; returns 0, or IG_ENOMEM / IG_EINVAL (too many headers). */
static int headers_build(struct header_set *set, const struct upstream_spec *spec)
{
    size_t n = 0;

    memset(set, 0, sizeof(*set));
    for (const char *const *h = spec->headers; h != NULL && *h != NULL; h++) {
        if (spec->api_key != NULL && is_credential(*h))
            continue;
        if (n >= MAX_HEADERS)
            return IG_EINVAL;
        set->lines[n++] = *h;
    }
    if (spec->api_key == NULL)
        return 0;
    if (asprintf(&set->owned[0], "Authorization: Bearer %s", spec->api_key) < 0) {
        set->owned[0] = NULL;
        return IG_ENOMEM;
    }
    if (asprintf(&set->owned[1], "x-api-key: %s", spec->api_key) < 0) {
        set->owned[1] = NULL;
        return IG_ENOMEM;
    }
    set->lines[n++] = set->owned[0];
    set->lines[n++] = set->owned[1];
    return 0;
}

/* Wipes and frees the lines SET owns. */
static void headers_clear(struct header_set *set)
{
    for (size_t i = 0; i < 2; i++) {
        if (set->owned[i] != NULL)
            explicit_bzero(set->owned[i], strlen(set->owned[i]));
        free(set->owned[i]);
        set->owned[i] = NULL;
    }
}

/* Starts SPEC (with the final HEADERS) on curl. Returns UREQ, or NULL after freeing it. */
static struct upstream_req *start_curl(struct upstream_pool *pool, struct upstream_req *ureq,
                                       const struct upstream_spec *spec)
{
    struct curl_slist *list = NULL;

    ureq->easy = pool->n_free_easy > 0 ? pool->free_easy[--pool->n_free_easy] : curl_easy_init();
    /* An empty "Expect:" stops curl from waiting for 100-continue on large bodies. */
    list = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = spec->headers; h != NULL && *h != NULL && list != NULL; h++) {
        struct curl_slist *grown = curl_slist_append(list, *h);
        if (grown == NULL) {
            curl_slist_free_all(list);
            list = NULL;
        }
        list = grown;
    }
    ureq->headers = list;
    if (ureq->easy == NULL || list == NULL) {
        if (ureq->easy != NULL)
            curl_easy_cleanup(ureq->easy);
        curl_slist_free_all(list);
        req_free(ureq);
        return NULL;
    }
    configure_easy(ureq, spec);
    req_link(pool, ureq);
    curl_multi_add_handle(pool->multi, ureq->easy);
    return ureq;
}

struct upstream_req *upstream_start(struct upstream_pool *pool, const struct upstream_spec *spec,
                                    const struct upstream_callbacks *cb, void *arg)
{
    struct upstream_req *ureq = calloc(1, sizeof(*ureq));
    struct upstream_spec final = *spec;
    struct header_set set;

    if (ureq == NULL)
        return NULL;
    ureq->pool = pool;
    ureq->cb = *cb;
    ureq->arg = arg;
    if (spec->api_key != NULL && spec->api_key[0] != '\0') {
        ureq->secret_len = strlen(spec->api_key);
        ureq->secret = strdup(spec->api_key);
        ureq->held = malloc(ureq->secret_len);
        if (ureq->secret == NULL || ureq->held == NULL) {
            req_free(ureq);
            return NULL;
        }
    } else {
        final.api_key = NULL;
    }
    if (headers_build(&set, &final) != 0) {
        headers_clear(&set);
        req_free(ureq);
        return NULL;
    }
    final.headers = set.lines;
    ureq = spec->open_stream != NULL || native_can_serve(spec->url) ? start_native(pool, ureq, &final)
                                       : start_curl(pool, ureq, &final);
    headers_clear(&set);
    return ureq;
}

void upstream_cancel(struct upstream_req *ureq)
{
    struct upstream_pool *pool = ureq->pool;

    if (ureq->is_canceled)
        return;
    ureq->is_canceled = true;
    if (ureq->is_finishing)
        return;
    if (ureq->native != NULL) {
        native_cancel(ureq->native);
        req_unlink(ureq);
        req_free(ureq);
        return;
    }
    if (pool->curl_depth > 0) {
        ureq->next_doomed = pool->doomed;
        pool->doomed = ureq;
        return;
    }
    req_release(ureq);
}

void upstream_resume(struct upstream_req *ureq)
{
    struct upstream_pool *pool = ureq->pool;

    if (ureq->is_canceled)
        return;
    if (ureq->native != NULL) {
        native_resume(ureq->native);
        return;
    }
    pool->curl_depth++;
    curl_easy_pause(ureq->easy, CURLPAUSE_CONT);
    pool->curl_depth--;
    reap_doomed(pool);
    check_done(pool);
}

size_t upstream_pool_active(const struct upstream_pool *pool)
{
    return pool->n_active;
}
