/*
 * The JetStream thread (see batch_js.h).
 *
 * One loop: (re)connect and set up the stream and the consumer when needed; carry out the
 * ack/nak decisions the event loop sent; publish a slice of the oldest publish job; fetch
 * as many messages as there is room for (at most FETCH_WAIT_MS of waiting, so decisions
 * wait no longer than that); when there is no room, sleep on the condition variable until
 * a decision comes. Fetch errors other than a timeout in a row tear the subscription down
 * and set everything up again (a NATS server restarted without its storage).
 */
#include "batch_js.h"
#include "cfg.h"
#include "ig_log.h"

#include <event2/event.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FETCH_WAIT_MS 250
#define RETRY_SETUP_MS 1000
#define PUBLISH_SLICE 64
#define MAX_FETCH_ERRORS 8
#define MAX_URLS 32
#define DUPLICATE_WINDOW_NS (2LL * 3600 * 1000000000LL) /* ids remembered for 2 h */
#define DECIDE_ACK (-1L)
#define DECIDE_DROP (-2L) /* released unacknowledged: JetStream delivers it again */
#define MAX_LINE_BYTES (8u << 20) /* a received line bigger than this is dropped */

/* A message on its way to the loop and its decision on the way back. */
struct js_item {
    struct batch_js_msg msg;
    long delay_ms; /* DECIDE_ACK, DECIDE_DROP, or a nak's delay */
    struct js_item *next;
};

/* Lines to publish. */
struct pub_job {
    char batch_id[72];
    long first;
    char **lines;
    size_t n, done;
    struct pub_job *next;
};

/* A report for the loop: publish progress (batch_id set) or a state change. */
struct report {
    char batch_id[72];
    long upto;
    char *cause; /* state: NULL when usable */
    struct report *next;
};

struct batch_js {
    struct event_base *base;
    int wake[2]; /* thread -> loop */
    struct event *wake_ev;
    pthread_t thread;
    bool is_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu. */
    bool is_stopping;
    struct pub_job *pubs, *pubs_tail;
    struct js_item *decided;
    struct js_item *received, *received_tail;
    struct report *reports, *reports_tail;
    /* The thread's. */
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *ctx;
    natsSubscription *sub;
    bool has_reset_consumer;
    bool was_usable;
    int outstanding;
    int fetch_errors;
    char *last_cause;
    /* Read-only after start. */
    char gateway[80], filter[128], durable[96];
    int concurrency;
    long ack_wait_ms;
    struct batch_js_callbacks cb;
    void *arg;
};

/* Wakes the loop. */
static void wake_loop(struct batch_js *js)
{
    char b = 1;
    ssize_t n = write(js->wake[1], &b, 1);
    (void)n;
}

/* Queues a report (state when BATCH_ID is NULL) for the loop. */
static void report(struct batch_js *js, const char *batch_id, long upto, const char *cause)
{
    struct report *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return;
    if (batch_id != NULL)
        snprintf(r->batch_id, sizeof(r->batch_id), "%s", batch_id);
    r->upto = upto;
    r->cause = cause != NULL ? strdup(cause) : NULL;
    pthread_mutex_lock(&js->mu);
    if (js->reports_tail != NULL)
        js->reports_tail->next = r;
    else
        js->reports = r;
    js->reports_tail = r;
    pthread_mutex_unlock(&js->mu);
    wake_loop(js);
}

/* Reports a state change once (CAUSE NULL: usable). */
static void report_state(struct batch_js *js, const char *cause)
{
    bool is_same = cause == NULL ? js->was_usable
                                 : (!js->was_usable && js->last_cause != NULL &&
                                    strcmp(js->last_cause, cause) == 0);

    if (is_same)
        return;
    js->was_usable = cause == NULL;
    free(js->last_cause);
    js->last_cause = cause != NULL ? strdup(cause) : NULL;
    report(js, NULL, 0, cause);
}

/* Sets *CAUSE to WHAT and the status and JetStream error text. */
static void set_cause(char **cause, const char *what, natsStatus s, jsErrCode jerr)
{
    const char *hint = "";

    if (jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr || s == NATS_NO_RESPONDERS)
        hint = " (is JetStream enabled? start nats-server with -js)";
    if (asprintf(cause, "%s: %s%s", what, natsStatus_GetText(s), hint) < 0)
        *cause = NULL;
}

/* Releases the subscription, the JetStream context and the connection (thread). */
static void teardown(struct batch_js *js, bool is_connection_too)
{
    natsSubscription_Destroy(js->sub);
    js->sub = NULL;
    jsCtx_Destroy(js->ctx);
    js->ctx = NULL;
    if (is_connection_too) {
        natsConnection_Destroy(js->nc);
        js->nc = NULL;
    }
}

/* Connects and makes sure the stream and the consumer exist; 0 or -1 with *CAUSE. */
static int setup(struct batch_js *js, char **cause)
{
    const char *subjects[] = {"infergate.v1.batch.>"};
    jsStreamInfo *si = NULL;
    jsConsumerInfo *ci = NULL;
    jsStreamConfig sc;
    jsConsumerConfig cc;
    jsSubOptions so;
    jsOptions jo;
    jsErrCode jerr = 0;
    natsStatus s;

    if (js->nc == NULL && (s = natsConnection_Connect(&js->nc, js->opts)) != NATS_OK) {
        set_cause(cause, "cannot connect to NATS", s, 0);
        js->nc = NULL;
        return -1;
    }
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    if ((s = natsConnection_JetStream(&js->ctx, js->nc, &jo)) != NATS_OK) {
        set_cause(cause, "JetStream", s, 0);
        goto fail;
    }
    s = js_GetStreamInfo(&si, js->ctx, BATCH_JS_STREAM, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        jsStreamConfig_Init(&sc);
        sc.Name = BATCH_JS_STREAM;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Retention = js_WorkQueuePolicy;
        sc.Storage = js_FileStorage;
        sc.Duplicates = DUPLICATE_WINDOW_NS;
        jerr = 0;
        s = js_AddStream(&si, js->ctx, &sc, NULL, &jerr);
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        set_cause(cause, "cannot create the JetStream stream " BATCH_JS_STREAM, s, jerr);
        goto fail;
    }
    if (!js->has_reset_consumer) {
        /* Lines a previous process of this gateway took and never acknowledged go back to
         * the queue with the consumer (a work queue keeps every unacknowledged message). */
        s = js_DeleteConsumer(js->ctx, BATCH_JS_STREAM, js->durable, NULL, &jerr);
        if (s != NATS_OK && s != NATS_NOT_FOUND) {
            set_cause(cause, "cannot reset the batch consumer", s, jerr);
            goto fail;
        }
        js->has_reset_consumer = true;
    }
    jsConsumerConfig_Init(&cc);
    cc.Durable = js->durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)js->ack_wait_ms * 1000000LL;
    cc.MaxAckPending = js->concurrency;
    cc.FilterSubject = js->filter;
    cc.DeliverPolicy = js_DeliverAll;
    jerr = 0;
    s = js_AddConsumer(&ci, js->ctx, BATCH_JS_STREAM, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        set_cause(cause, "cannot create the batch consumer", s, jerr);
        goto fail;
    }
    jsSubOptions_Init(&so);
    so.Stream = BATCH_JS_STREAM;
    so.Consumer = js->durable;
    s = js_PullSubscribe(&js->sub, js->ctx, js->filter, js->durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        js->sub = NULL;
        set_cause(cause, "cannot subscribe to the batch consumer", s, jerr);
        goto fail;
    }
    js->fetch_errors = 0;
    return 0;
fail:
    teardown(js, false);
    return -1;
}

/* Carries out the decisions the loop sent. */
static void run_decisions(struct batch_js *js)
{
    struct js_item *list;

    pthread_mutex_lock(&js->mu);
    list = js->decided;
    js->decided = NULL;
    pthread_mutex_unlock(&js->mu);
    while (list != NULL) {
        struct js_item *next = list->next;
        natsMsg *m = list->msg.nmsg;
        natsStatus s = list->delay_ms == DECIDE_DROP  ? NATS_OK
                       : list->delay_ms == DECIDE_ACK ? natsMsg_Ack(m, NULL)
                                                      : natsMsg_NakWithDelay(m, list->delay_ms, NULL);
        if (s != NATS_OK)
            ig_debug("batches: %s of %s line %ld failed: %s", list->delay_ms < 0 ? "ack" : "nak",
                     list->msg.batch_id, list->msg.line, natsStatus_GetText(s));
        natsMsg_Destroy(m);
        free(list->msg.data);
        free(list);
        js->outstanding--;
        list = next;
    }
}

/* Publishes a slice of the oldest job; returns whether there was one. */
static bool publish_slice(struct batch_js *js)
{
    struct pub_job *job;
    char subject[200], id[96];
    size_t end;

    pthread_mutex_lock(&js->mu);
    job = js->pubs;
    pthread_mutex_unlock(&js->mu);
    if (job == NULL)
        return false;
    snprintf(subject, sizeof(subject), "infergate.v1.batch.%s.%s", js->gateway, job->batch_id);
    end = job->done + PUBLISH_SLICE < job->n ? job->done + PUBLISH_SLICE : job->n;
    while (job->done < end) {
        natsMsg *m = NULL;
        jsPubAck *ack = NULL;
        jsPubOptions po;
        jsErrCode jerr = 0;
        const char *line = job->lines[job->done];
        natsStatus s;

        snprintf(id, sizeof(id), "%s:%ld", job->batch_id, job->first + (long)job->done);
        jsPubOptions_Init(&po);
        po.MsgId = id;
        s = natsMsg_Create(&m, subject, NULL, line, (int)strlen(line));
        if (s == NATS_OK)
            s = js_PublishMsg(&ack, js->ctx, m, &po, &jerr);
        jsPubAck_Destroy(ack);
        natsMsg_Destroy(m);
        if (s != NATS_OK) {
            ig_warn("batches: publishing %s failed (%s); retrying", id, natsStatus_GetText(s));
            return false; /* the next round tries again */
        }
        free(job->lines[job->done]);
        job->lines[job->done++] = NULL;
    }
    report(js, job->batch_id, job->first + (long)job->done, NULL);
    if (job->done == job->n) {
        pthread_mutex_lock(&js->mu);
        js->pubs = job->next;
        if (js->pubs == NULL)
            js->pubs_tail = NULL;
        pthread_mutex_unlock(&js->mu);
        free(job->lines);
        free(job);
    }
    return true;
}

/* Turns a fetched message into an item for the loop; NULL when malformed (acked). */
static struct js_item *item_of(natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m), *id = NULL, *colon, *dot;
    jsMsgMetaData *meta = NULL;
    struct js_item *it = NULL;
    int len = natsMsg_GetDataLength(m);

    dot = strrchr(subject, '.');
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) != NATS_OK || id == NULL ||
        (colon = strrchr(id, ':')) == NULL || dot == NULL || len < 0 ||
        (size_t)len > MAX_LINE_BYTES || strlen(dot + 1) >= sizeof(it->msg.batch_id))
        goto bad;
    it = calloc(1, sizeof(*it));
    if (it == NULL || (it->msg.data = malloc((size_t)len + 1)) == NULL)
        goto bad;
    snprintf(it->msg.batch_id, sizeof(it->msg.batch_id), "%s", dot + 1);
    it->msg.line = strtol(colon + 1, NULL, 10);
    memcpy(it->msg.data, natsMsg_GetData(m), (size_t)len);
    it->msg.data[len] = '\0';
    it->msg.len = (size_t)len;
    it->msg.deliveries = 1;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        it->msg.deliveries = (int)meta->NumDelivered;
        jsMsgMetaData_Destroy(meta);
    }
    it->msg.nmsg = m;
    return it;
bad:
    ig_warn("batches: dropping a malformed message on %s", subject);
    if (it != NULL)
        free(it->msg.data);
    free(it);
    (void)natsMsg_Ack(m, NULL);
    natsMsg_Destroy(m);
    return NULL;
}

/* Fetches up to ROOM messages (waiting at most FETCH_WAIT_MS) and hands them to the loop. */
static void fetch(struct batch_js *js, int room)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = natsSubscription_Fetch(&list, js->sub, room, FETCH_WAIT_MS, &jerr);
    bool has_new = false;

    if (s != NATS_OK && s != NATS_TIMEOUT) {
        if (++js->fetch_errors >= MAX_FETCH_ERRORS) {
            ig_warn("batches: fetching from JetStream keeps failing (%s); setting up again",
                    natsStatus_GetText(s));
            teardown(js, false);
        } else {
            struct timespec ts = {0, FETCH_WAIT_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    } else {
        js->fetch_errors = 0;
    }
    for (int i = 0; i < list.Count; i++) {
        struct js_item *it = item_of(list.Msgs[i]);
        list.Msgs[i] = NULL;
        if (it == NULL)
            continue;
        js->outstanding++;
        pthread_mutex_lock(&js->mu);
        if (js->received_tail != NULL)
            js->received_tail->next = it;
        else
            js->received = it;
        js->received_tail = it;
        pthread_mutex_unlock(&js->mu);
        has_new = true;
    }
    natsMsgList_Destroy(&list);
    if (has_new)
        wake_loop(js);
}

/* Waits on the condition variable for at most MS (called with mu held). */
static void wait_ms(struct batch_js *js, long ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    (void)pthread_cond_timedwait(&js->cv, &js->mu, &until);
}

static void *js_main(void *arg)
{
    struct batch_js *js = arg;

    pthread_mutex_lock(&js->mu);
    while (!js->is_stopping) {
        pthread_mutex_unlock(&js->mu);
        if (js->sub == NULL) {
            char *cause = NULL;
            if (setup(js, &cause) != 0) {
                report_state(js, cause != NULL ? cause : "JetStream set-up failed");
                free(cause);
                pthread_mutex_lock(&js->mu);
                if (!js->is_stopping)
                    wait_ms(js, RETRY_SETUP_MS);
                continue;
            }
            report_state(js, NULL);
        }
        run_decisions(js);
        bool has_published = publish_slice(js);
        int room = js->concurrency - js->outstanding;
        if (room > 0 && js->sub != NULL)
            fetch(js, room);
        pthread_mutex_lock(&js->mu);
        if (room <= 0 && !has_published && js->decided == NULL && !js->is_stopping)
            wait_ms(js, FETCH_WAIT_MS);
    }
    pthread_mutex_unlock(&js->mu);
    return NULL;
}

/* The thread left something for the loop. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct batch_js *js = arg;
    struct js_item *items;
    struct report *reports;
    char buf[256];
    (void)what;

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&js->mu);
    items = js->received;
    js->received = js->received_tail = NULL;
    reports = js->reports;
    js->reports = js->reports_tail = NULL;
    pthread_mutex_unlock(&js->mu);
    while (reports != NULL) {
        struct report *next = reports->next;
        if (reports->batch_id[0] != '\0')
            js->cb.on_published(reports->batch_id, reports->upto, js->arg);
        else
            js->cb.on_state(reports->cause, js->arg);
        free(reports->cause);
        free(reports);
        reports = next;
    }
    while (items != NULL) {
        struct js_item *next = items->next;
        items->next = NULL;
        js->cb.on_msg(&items->msg, js->arg);
        items = next;
    }
}

/* Builds the connection options from NATS; NULL with *CAUSE on failure. */
static natsOptions *make_options(const struct cfg_nats *nats, const char *name, char **cause)
{
    natsOptions *opts = NULL;
    char buf[4096], *urls[MAX_URLS];
    int n = 0;
    natsStatus s;

    snprintf(buf, sizeof(buf), "%s", nats->urls);
    for (char *p = buf; *p != '\0' && n < MAX_URLS;) {
        char *comma = strchr(p, ',');
        urls[n++] = p;
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, (const char **)urls, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK && nats->token != NULL)
        s = natsOptions_SetToken(opts, nats->token);
    if (s == NATS_OK && nats->user != NULL)
        s = natsOptions_SetUserInfo(opts, nats->user, nats->password);
    if (s == NATS_OK && nats->creds_file != NULL)
        s = natsOptions_SetUserCredentialsFromFiles(opts, nats->creds_file, NULL);
    if (s == NATS_OK && (nats->ca_file != NULL || nats->cert_file != NULL))
        s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && nats->ca_file != NULL)
        s = natsOptions_LoadCATrustedCertificates(opts, nats->ca_file);
    if (s == NATS_OK && nats->cert_file != NULL)
        s = natsOptions_LoadCertificatesChain(opts, nats->cert_file, nats->key_file);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 2);
    if (s != NATS_OK) {
        set_cause(cause, "batches: NATS options", s, 0);
        natsOptions_Destroy(opts);
        return NULL;
    }
    return opts;
}

struct batch_js *batch_js_start(struct event_base *base, const struct cfg_nats *nats,
                                const char *gateway, int concurrency, long ack_wait_ms,
                                const struct batch_js_callbacks *cb, void *arg, char **cause)
{
    struct batch_js *js = calloc(1, sizeof(*js));
    char name[128];

    if (js == NULL) {
        *cause = strdup("out of memory");
        return NULL;
    }
    js->base = base;
    js->wake[0] = js->wake[1] = -1;
    pthread_mutex_init(&js->mu, NULL);
    pthread_cond_init(&js->cv, NULL);
    snprintf(js->gateway, sizeof(js->gateway), "%s", gateway);
    snprintf(js->filter, sizeof(js->filter), "infergate.v1.batch.%s.>", gateway);
    snprintf(js->durable, sizeof(js->durable), "igbatch-%s", gateway);
    snprintf(name, sizeof(name), "%s-batches", gateway);
    js->concurrency = concurrency;
    js->ack_wait_ms = ack_wait_ms;
    js->cb = *cb;
    js->arg = arg;
    js->opts = make_options(nats, name, cause);
    if (js->opts == NULL)
        goto fail;
    if (pipe2(js->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
        (js->wake_ev = event_new(base, js->wake[0], EV_READ | EV_PERSIST, on_wake, js)) == NULL ||
        event_add(js->wake_ev, NULL) != 0) {
        *cause = strdup("batches: cannot create the JetStream thread's pipe");
        goto fail;
    }
    if (pthread_create(&js->thread, NULL, js_main, js) != 0) {
        *cause = strdup("batches: cannot start the JetStream thread");
        goto fail;
    }
    js->is_started = true;
    return js;
fail:
    batch_js_free(js);
    return NULL;
}

int batch_js_publish(struct batch_js *js, const char *batch_id, long first, char **lines,
                     size_t n)
{
    struct pub_job *job = calloc(1, sizeof(*job));

    if (job == NULL) {
        for (size_t i = 0; i < n; i++)
            free(lines[i]);
        free(lines);
        return IG_ENOMEM;
    }
    snprintf(job->batch_id, sizeof(job->batch_id), "%s", batch_id);
    job->first = first;
    job->lines = lines;
    job->n = n;
    pthread_mutex_lock(&js->mu);
    if (js->pubs_tail != NULL)
        js->pubs_tail->next = job;
    else
        js->pubs = job;
    js->pubs_tail = job;
    pthread_cond_signal(&js->cv);
    pthread_mutex_unlock(&js->mu);
    return 0;
}

/* Queues the decision for MSG. */
static void decide(struct batch_js *js, struct batch_js_msg *msg, long delay_ms)
{
    struct js_item *it = (struct js_item *)((char *)msg - offsetof(struct js_item, msg));

    it->delay_ms = delay_ms;
    pthread_mutex_lock(&js->mu);
    it->next = js->decided;
    js->decided = it;
    pthread_cond_signal(&js->cv);
    pthread_mutex_unlock(&js->mu);
}

void batch_js_ack(struct batch_js *js, struct batch_js_msg *msg)
{
    decide(js, msg, DECIDE_ACK);
}

void batch_js_drop(struct batch_js *js, struct batch_js_msg *msg)
{
    decide(js, msg, DECIDE_DROP);
}

void batch_js_nak(struct batch_js *js, struct batch_js_msg *msg, long delay_ms)
{
    decide(js, msg, delay_ms < 0 ? 0 : delay_ms);
}

void batch_js_msg_free(struct batch_js_msg *msg)
{
    struct js_item *it;

    if (msg == NULL)
        return;
    it = (struct js_item *)((char *)msg - offsetof(struct js_item, msg));
    natsMsg_Destroy(msg->nmsg);
    free(msg->data);
    free(it);
}

/* Frees the items of LIST (messages not acknowledged: JetStream delivers them again). */
static void free_items(struct js_item *list)
{
    while (list != NULL) {
        struct js_item *next = list->next;
        natsMsg_Destroy(list->msg.nmsg);
        free(list->msg.data);
        free(list);
        list = next;
    }
}

void batch_js_free(struct batch_js *js)
{
    if (js == NULL)
        return;
    if (js->is_started) {
        pthread_mutex_lock(&js->mu);
        js->is_stopping = true;
        pthread_cond_signal(&js->cv);
        pthread_mutex_unlock(&js->mu);
        pthread_join(js->thread, NULL);
        run_decisions(js); /* the last acks, so that finished lines are not run again */
    }
    teardown(js, true);
    free_items(js->received);
    for (struct pub_job *job = js->pubs, *next; job != NULL; job = next) {
        next = job->next;
        for (size_t i = job->done; i < job->n; i++)
            free(job->lines[i]);
        free(job->lines);
        free(job);
    }
    for (struct report *r = js->reports, *next; r != NULL; r = next) {
        next = r->next;
        free(r->cause);
        free(r);
    }
    if (js->wake_ev != NULL)
        event_free(js->wake_ev);
    if (js->wake[0] >= 0)
        close(js->wake[0]);
    if (js->wake[1] >= 0)
        close(js->wake[1]);
    natsOptions_Destroy(js->opts);
    free(js->last_cause);
    pthread_cond_destroy(&js->cv);
    pthread_mutex_destroy(&js->mu);
    free(js);
}
