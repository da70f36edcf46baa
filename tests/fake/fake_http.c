/* fake-llama-server HTTP side: listener, routing, errors and the non-completion endpoints. */
#include "fake.h"
#include "ig_base64.h"

#include "ig_json.h"
#include "ig_time.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/*
 * Routes as llama-server registers them: "/completion" and "/completions" are the native
 * API, "/v1/completions" the OpenAI one; "/embedding(s)" native, "/v1/embeddings" OpenAI.
 */
enum route {
    ROUTE_HEALTH,
    ROUTE_MODELS,
    ROUTE_PROPS,
    ROUTE_CHAT,
    ROUTE_OAI_CMPL,
    ROUTE_NATIVE_CMPL,
    ROUTE_OAI_EMBD,
    ROUTE_NATIVE_EMBD,
    ROUTE_TOKENIZE,
    ROUTE_DETOKENIZE,
};

struct route_def {
    const char *path;
    enum route route;
    bool is_post;
};

static const struct route_def routes[] = {
    {"/v1/chat/completions", ROUTE_CHAT, true}, {"/chat/completions", ROUTE_CHAT, true},
    {"/v1/completions", ROUTE_OAI_CMPL, true},  {"/completion", ROUTE_NATIVE_CMPL, true},
    {"/completions", ROUTE_NATIVE_CMPL, true},  {"/health", ROUTE_HEALTH, false},
    {"/v1/health", ROUTE_HEALTH, false},        {"/v1/models", ROUTE_MODELS, false},
    {"/models", ROUTE_MODELS, false},           {"/props", ROUTE_PROPS, false},
    {"/v1/embeddings", ROUTE_OAI_EMBD, true},   {"/embeddings", ROUTE_NATIVE_EMBD, true},
    {"/embedding", ROUTE_NATIVE_EMBD, true},    {"/tokenize", ROUTE_TOKENIZE, true},
    {"/detokenize", ROUTE_DETOKENIZE, true},
};

/* Returns the reason phrase for the statuses this server sends. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

void fake_reply_json(struct evhttp_request *req, int status)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(h, "Server", "llama.cpp");
    evhttp_send_reply(req, status, reason_phrase(status), NULL);
}

void fake_reply_error(struct evhttp_request *req, int status, const char *type, const char *message)
{
    struct evbuffer *b = evhttp_request_get_output_buffer(req);

    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add_printf(b, "{\"error\":{\"code\":%d,\"message\":", status);
    fake_json_str(b, message, strlen(message));
    evbuffer_add_printf(b, ",\"type\":\"%s\"}}", type);
    fake_reply_json(req, status);
}

bool fake_take_bad_json(struct fake_server *srv)
{
    double rate = srv->opts->bad_json_rate;
    uint64_t n = srv->json_seq++;

    /* Exactly floor(N * rate) of the first N responses are bad, spread evenly. */
    return rate > 0.0 && (uint64_t)((double)(n + 1) * rate) > (uint64_t)((double)n * rate);
}

void fake_make_id(struct fake_server *srv, char *out)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t r = 0;

    memcpy(out, "chatcmpl-", 9);
    for (int i = 0; i < 32; i++) {
        if (i % 8 == 0)
            r = fake_mix64(srv->id_state++);
        out[9 + i] = alnum[r % 62];
        r /= 62;
    }
    out[41] = '\0';
}

/* Returns the route for METHOD and the URI's path, or NULL (404). */
static const struct route_def *find_route(const char *uri, enum evhttp_cmd_type method)
{
    size_t path_len = strcspn(uri, "?#");

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route_def *r = &routes[i];

        if (strlen(r->path) != path_len || memcmp(r->path, uri, path_len) != 0)
            continue;
        if (r->is_post ? method == EVHTTP_REQ_POST : method == EVHTTP_REQ_GET)
            return r;
    }
    return NULL;
}

/* Logs a "request" event for PATH with the request's model, its Authorization header and its
 * JSON body (when an events file is set), so tests can see what a proxy forwarded. */
static void log_request(struct fake_server *srv, struct evhttp_request *req, const char *path,
                        json_t *root)
{
    json_t *model = root != NULL ? json_object_get(root, "model") : NULL;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

    if (srv->events == NULL)
        return;
    fake_event(srv, "request",
               json_pack("{s:I,s:s,s:O,s:s?,s:O?}", "id", (json_int_t)srv->request_seq, "path",
                         path, "model", model != NULL ? model : json_null(), "authorization",
                         auth, "body", root));
}

/* Logs a "done" event for a response sent at once with STATUS. */
static void log_done(struct fake_server *srv, const char *path, int status)
{
    if (srv->events == NULL)
        return;
    fake_event(srv, "done",
               json_pack("{s:I,s:s,s:i}", "id", (json_int_t)srv->request_seq, "path", path,
                         "status", status));
}

/* GET /health: 503 while "loading", 500 with --fail-health, else {"status":"ok"}. */
static int handle_health(struct fake_server *srv, struct evhttp_request *req)
{
    if (srv->opts->fail_health) {
        fake_reply_error(req, 500, "server_error", "health check failure (--fail-health)");
        return 500;
    }
    evbuffer_add(evhttp_request_get_output_buffer(req), "{\"status\":\"ok\"}", 15);
    fake_reply_json(req, 200);
    return 200;
}

/* GET /v1/models: llama-server's mixed Ollama + OpenAI list with one model. */
static int handle_models(struct fake_server *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    const char *m = srv->model_json;

    evbuffer_add_printf(
        b,
        "{\"models\":[{\"name\":%s,\"model\":%s,\"modified_at\":\"\",\"size\":\"\",\"digest\":\"\","
        "\"type\":\"model\",\"description\":\"\",\"tags\":[\"\"],\"capabilities\":[\"completion\"],"
        "\"parameters\":\"\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":"
        "\"\","
        "\"families\":[\"\"],\"parameter_size\":\"\",\"quantization_level\":\"\"}}],"
        "\"object\":\"list\",\"data\":[{\"id\":%s,\"aliases\":[],\"tags\":[],\"object\":\"model\","
        "\"created\":%lld,\"owned_by\":\"llamacpp\",\"meta\":{\"vocab_type\":2,\"n_vocab\":32000,"
        "\"n_ctx\":4096,\"n_ctx_train\":4096,\"n_embd\":%ld,\"n_params\":0,\"size\":0,"
        "\"ftype\":\"F32\"}}]}",
        m, m, m, (long long)ig_unix_s(), srv->opts->embedding_dim);
    fake_reply_json(req, 200);
    return 200;
}

/* GET /props: the fields clients commonly read from llama-server's /props. */
static int handle_props(struct fake_server *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_output_buffer(req);

    evbuffer_add_printf(
        b,
        "{\"default_generation_settings\":{\"params\":{\"seed\":4294967295,\"temperature\":0.8,"
        "\"top_k\":40,\"top_p\":0.95,\"min_p\":0.05,\"max_tokens\":-1,\"n_predict\":-1,"
        "\"stream\":false},\"n_ctx\":4096},\"total_slots\":1,\"model_alias\":%s,"
        "\"model_path\":%s,\"modalities\":{\"vision\":false,\"video\":false,\"audio\":false},"
        "\"endpoint_slots\":false,\"endpoint_props\":false,\"endpoint_metrics\":false,"
        "\"chat_template\":\"\",\"bos_token\":\"<s>\",\"eos_token\":\"</s>\","
        "\"build_info\":\"" FAKE_FINGERPRINT "\",\"is_sleeping\":false}",
        srv->model_json, srv->model_json);
    fake_reply_json(req, 200);
    return 200;
}

/* Appends one input's embedding to B as floats or base64 of little-endian float32. */
static void write_embedding(struct evbuffer *b, const float *v, int dim, bool is_base64)
{
    if (is_base64) {
        size_t n = ig_base64_len((size_t)dim * sizeof(float));
        char *text = malloc(n + 1);
        if (text == NULL)
            return;
        ig_base64_encode(v, (size_t)dim * sizeof(float), text);
        evbuffer_add_printf(b, "\"%s\"", text);
        free(text);
        return;
    }
    evbuffer_add(b, "[", 1);
    for (int j = 0; j < dim; j++)
        evbuffer_add_printf(b, j == 0 ? "%.9g" : ",%.9g", (double)v[j]);
    evbuffer_add(b, "]", 1);
}

/* Checks the embeddings input (string or array of strings); returns an error message or NULL. */
static const char *check_embed_input(json_t *input)
{
    size_t i;
    json_t *it;

    if (json_is_string(input))
        return json_string_length(input) == 0 ? "Input content cannot be empty" : NULL;
    if (!json_is_array(input) || json_array_size(input) == 0)
        return "\"input\" must be a string or a non-empty array of strings";
    if (json_array_size(input) > FAKE_MAX_EMBED_INPUTS)
        return "too many inputs";
    json_array_foreach(input, i, it)
    {
        if (!json_is_string(it))
            return "\"input\" must be a string or a non-empty array of strings";
        if (json_string_length(it) == 0)
            return "Input content cannot be empty";
    }
    return NULL;
}

/* Appends the embedding entries for INPUT to B; returns the total word count. */
static int write_embed_data(struct evbuffer *b, json_t *input, int dim, bool is_oai, bool is_base64,
                            float *vec)
{
    size_t n = json_is_array(input) ? json_array_size(input) : 1;
    int n_words = 0;

    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(input) ? json_array_get(input, i) : input;
        const char *text = json_string_value(s);
        size_t len = json_string_length(s);
        int words = fake_count_words(text, len);

        n_words += words > 0 ? words : 1;
        fake_embed(vec, dim, fake_hash_bytes(FAKE_HASH_INIT, text, len));
        evbuffer_add(b, i == 0 ? "{\"embedding\":" : ",{\"embedding\":", i == 0 ? 13 : 14);
        if (!is_oai)
            evbuffer_add(b, "[", 1);
        write_embedding(b, vec, dim, is_base64);
        if (is_oai)
            evbuffer_add_printf(b, ",\"index\":%zu,\"object\":\"embedding\"%s}", i,
                                is_base64 ? ",\"encoding_format\":\"base64\"" : "");
        else
            evbuffer_add_printf(b, "],\"index\":%zu}", i);
    }
    return n_words;
}

/* POST /v1/embeddings (IS_OAI) or /embedding: deterministic unit vectors per input. */
static int handle_embeddings(struct fake_server *srv, struct evhttp_request *req, json_t *root,
                             bool is_oai)
{
    json_t *input = json_object_get(root, "input");
    json_t *format = json_object_get(root, "encoding_format");
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    int dim = (int)srv->opts->embedding_dim;
    const char *problem;
    bool is_base64 = false;
    float *vec = NULL;
    int n_words;

    if (input == NULL) {
        input = json_object_get(root, "content");
        is_oai = false; /* "content" is the native API, as in llama-server */
    }
    problem =
        input == NULL ? "\"input\" or \"content\" must be provided" : check_embed_input(input);
    if (problem == NULL && format != NULL) {
        is_base64 = json_is_string(format) && strcmp(json_string_value(format), "base64") == 0;
        if (!is_base64 &&
            !(json_is_string(format) && strcmp(json_string_value(format), "float") == 0))
            problem = "The format to return the embeddings in. Can be either float or base64";
    }
    if (problem != NULL) {
        fake_reply_error(req, 400, "invalid_request_error", problem);
        return 400;
    }
    vec = malloc((size_t)dim * sizeof(*vec));
    if (vec == NULL) {
        fake_reply_error(req, 500, "server_error", "out of memory");
        return 500;
    }
    if (fake_take_bad_json(srv))
        evbuffer_add(b, "{\"truncated\":", 13);
    if (is_oai)
        evbuffer_add_printf(b, "{\"model\":%s,\"object\":\"list\",\"data\":[", srv->model_json);
    else
        evbuffer_add(b, "[", 1);
    n_words = write_embed_data(b, input, dim, is_oai, is_base64 && is_oai, vec);
    if (is_oai)
        evbuffer_add_printf(b, "],\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}", n_words,
                            n_words);
    else
        evbuffer_add(b, "]", 1);
    free(vec);
    fake_reply_json(req, 200);
    return 200;
}

/* Returns whether C separates words. */
static bool is_word_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Appends the token ids (and pieces, WITH_PIECES) of the N-byte text S's words to B. */
static void write_tokens(struct evbuffer *b, const char *s, size_t n, bool with_pieces)
{
    size_t i = 0;
    bool is_first = true;

    for (;;) {
        size_t start;
        uint64_t id;

        while (i < n && is_word_sep(s[i]))
            i++;
        start = i;
        while (i < n && !is_word_sep(s[i]))
            i++;
        if (i == start)
            break;
        id = fake_hash_bytes(FAKE_HASH_INIT, s + start, i - start) % 32000;
        if (!is_first)
            evbuffer_add(b, ",", 1);
        is_first = false;
        if (!with_pieces) {
            evbuffer_add_printf(b, "%llu", (unsigned long long)id);
            continue;
        }
        evbuffer_add_printf(b, "{\"id\":%llu,\"piece\":", (unsigned long long)id);
        fake_json_str(b, s + start, i - start);
        evbuffer_add(b, "}", 1);
    }
}

/* POST /tokenize: one token per whitespace-separated word; ids are word hashes. */
static int handle_tokenize(struct evhttp_request *req, json_t *root)
{
    json_t *content = json_object_get(root, "content");
    struct evbuffer *b = evhttp_request_get_output_buffer(req);

    evbuffer_add(b, "{\"tokens\":[", 11);
    if (json_is_string(content))
        write_tokens(b, json_string_value(content), json_string_length(content),
                     json_is_true(json_object_get(root, "with_pieces")));
    evbuffer_add(b, "]}", 2);
    fake_reply_json(req, 200);
    return 200;
}

/* POST /detokenize: maps each id to a vocabulary word (ids are not invertible hashes). */
static int handle_detokenize(struct evhttp_request *req, json_t *root)
{
    json_t *tokens = json_object_get(root, "tokens");
    struct evbuffer *b = evhttp_request_get_output_buffer(req);
    struct evbuffer *text = evbuffer_new();
    size_t i;
    json_t *it;

    if (text == NULL) {
        fake_reply_error(req, 500, "server_error", "out of memory");
        return 500;
    }
    json_array_foreach(tokens, i, it)
    {
        const char *w = fake_word((uint64_t)json_integer_value(it));

        evbuffer_add_printf(text, i == 0 ? "%s" : " %s", w);
    }
    evbuffer_add(b, "{\"content\":", 11);
    fake_json_str(b, (const char *)evbuffer_pullup(text, -1), evbuffer_get_length(text));
    evbuffer_add(b, "}", 1);
    evbuffer_free(text);
    fake_reply_json(req, 200);
    return 200;
}

/* Parses the request body as a JSON object; replies 400 and returns NULL when it is not one. */
static json_t *read_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char err[256];
    char msg[320];
    json_t *root;

    root = ig_json_parse(len > 0 ? (const char *)evbuffer_pullup(in, -1) : "", len,
                         FAKE_MAX_JSON_DEPTH, err, sizeof(err));
    if (root == NULL) {
        /* llama-server reports nlohmann's parse_error text; the shape is what matters. */
        snprintf(msg, sizeof(msg), "[json.exception.parse_error.101] parse error: %s", err);
        fake_reply_error(req, 400, "invalid_request_error", msg);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fake_reply_error(req, 400, "invalid_request_error", "request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Runs the handler for a POST route with its parsed body; returns the status or 0 if a job
 * answers later. */
static int dispatch_post(struct fake_server *srv, struct evhttp_request *req,
                         const struct route_def *r, json_t *root)
{
    switch (r->route) {
    case ROUTE_CHAT:
        fake_cmpl_handle(srv, req, FAKE_API_CHAT, r->path, root);
        return 0;
    case ROUTE_OAI_CMPL:
        fake_cmpl_handle(srv, req, FAKE_API_OAI_CMPL, r->path, root);
        return 0;
    case ROUTE_NATIVE_CMPL:
        fake_cmpl_handle(srv, req, FAKE_API_NATIVE, r->path, root);
        return 0;
    case ROUTE_OAI_EMBD:
        return handle_embeddings(srv, req, root, true);
    case ROUTE_NATIVE_EMBD:
        return handle_embeddings(srv, req, root, false);
    case ROUTE_TOKENIZE:
        return handle_tokenize(req, root);
    case ROUTE_DETOKENIZE:
        return handle_detokenize(req, root);
    default:
        fake_reply_error(req, 404, "not_found_error", "File Not Found");
        return 404;
    }
}

/* Runs the handler for a GET route; returns the status sent. */
static int dispatch_get(struct fake_server *srv, struct evhttp_request *req,
                        const struct route_def *r)
{
    switch (r->route) {
    case ROUTE_HEALTH:
        return handle_health(srv, req);
    case ROUTE_MODELS:
        return handle_models(srv, req);
    case ROUTE_PROPS:
        return handle_props(srv, req);
    default:
        fake_reply_error(req, 404, "not_found_error", "File Not Found");
        return 404;
    }
}

/* The one request callback: routes, applies --startup-ms, parses bodies, logs events. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct fake_server *srv = arg;
    const char *uri = evhttp_request_get_uri(req);
    const struct route_def *r;
    json_t *root = NULL;
    int status;

    /* Oversized bodies (413) and malformed requests (400) never get here: evhttp answers them
     * itself, with its own small HTML page. */
    r = uri != NULL ? find_route(uri, evhttp_request_get_command(req)) : NULL;
    if (r == NULL) {
        fake_reply_error(req, 404, "not_found_error", "File Not Found");
        return;
    }
    if (ig_now_ms() - srv->start_ms < (uint64_t)srv->opts->startup_ms) {
        /* As infergate-engine: llama-server's error with the load progress added. */
        struct evbuffer *b = evhttp_request_get_output_buffer(req);
        double progress = (double)(ig_now_ms() - srv->start_ms) / srv->opts->startup_ms;
        evbuffer_drain(b, evbuffer_get_length(b));
        evbuffer_add_printf(b,
                            "{\"error\":{\"code\":503,\"message\":\"Loading model\","
                            "\"type\":\"unavailable_error\",\"progress\":%.2f}}",
                            progress);
        fake_reply_json(req, 503);
        return;
    }
    srv->request_seq++;
    if (!r->is_post) {
        if (r->route != ROUTE_HEALTH)
            log_request(srv, req, r->path, NULL);
        status = dispatch_get(srv, req, r);
    } else {
        root = read_body(req);
        if (root != NULL)
            log_request(srv, req, r->path, root);
        status = root != NULL ? dispatch_post(srv, req, r, root) : 400;
    }
    if (status != 0 && r->route != ROUTE_HEALTH)
        log_done(srv, r->path, status);
    json_decref(root);
}

/* Writes the bound address of SOCK as "listening on HOST:PORT" to stderr. */
static void print_listening(struct fake_server *srv, evutil_socket_t sock)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int port = (int)srv->opts->port;

    if (getsockname(sock, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    fprintf(stderr, "listening on %s:%d\n", srv->opts->host, port);
    fflush(stderr);
}

int fake_http_start(struct fake_server *srv, char **cause)
{
    struct evhttp_bound_socket *bound;
    int rc = -1;

    srv->http = evhttp_new(srv->base);
    if (srv->http == NULL) {
        *cause = strdup("cannot create the HTTP server");
        goto out;
    }
    evhttp_set_max_body_size(srv->http, FAKE_MAX_BODY_BYTES);
    evhttp_set_max_headers_size(srv->http, 64 * 1024);
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
    /* A hung upstream must stay hung: no 50 s evhttp default closing it for us. */
    evhttp_set_timeout(srv->http, 3600);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(srv->http, on_request, srv);
    bound =
        evhttp_bind_socket_with_handle(srv->http, srv->opts->host, (ev_uint16_t)srv->opts->port);
    if (bound == NULL) {
        if (asprintf(cause, "cannot listen on %s:%ld", srv->opts->host, srv->opts->port) < 0)
            *cause = NULL;
        goto out;
    }
    print_listening(srv, evhttp_bound_socket_get_fd(bound));
    rc = 0;
out:
    return rc;
}

void fake_http_stop(struct fake_server *srv)
{
    fake_cmpl_free_all(srv);
    if (srv->http != NULL)
        evhttp_free(srv->http);
    srv->http = NULL;
}
