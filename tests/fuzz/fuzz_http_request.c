/*
 * Fuzz harness: the front server's request head parser (src/http/http_parse.c), fed the way
 * http_request.c's read_head() feeds it. The input arrives in two reads (the first byte picks
 * where it is split); after each read the buffer is searched for the blank line that ends
 * a head, a head over the 64 KiB default cap is refused, and a complete head is removed
 * from the buffer and parsed. The headers the server then reads (Content-Length,
 * Transfer-Encoding, Expect, Connection) are looked up; a Content-Length body is skipped so
 * that pipelined requests behind it are parsed too.
 */
#include "http_parse.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEAD_BYTES (64u << 10) /* http_server.c's default max_header_bytes */
#define MAX_REQUESTS 64

/* Checks what a successful parse promises: every string points into the head's buffer. */
static void check_head(const struct http_head *head, size_t head_len)
{
    const char *lo = head->buf, *hi = head->buf + head_len + 1;

    if (head->method < lo || head->method >= hi || head->path < lo || head->path >= hi)
        abort();
    if (head->minor != 0 && head->minor != 1)
        abort();
    if (head->n_headers > HTTP_MAX_HEADERS)
        abort();
    for (size_t i = 0; i < head->n_headers; i++)
        if (head->headers[i].name < lo || head->headers[i].name >= hi ||
            head->headers[i].value < lo || head->headers[i].value >= hi)
            abort();
}

/* Parses every complete head in IN as the server would; returns false once the connection
 * would be closed (an error answered), true when more input is awaited. */
static bool read_heads(struct evbuffer *in, size_t *skip)
{
    for (int n = 0; n < MAX_REQUESTS; n++) {
        struct http_head head;
        struct evbuffer_ptr end;
        long long content_length = -1;
        bool is_chunked = false;
        char *cause = NULL;
        size_t head_len;
        int rc;

        if (*skip > 0) { /* the body of the previous request */
            size_t have = evbuffer_get_length(in);
            size_t drop = have < *skip ? have : *skip;
            evbuffer_drain(in, drop);
            *skip -= drop;
            if (*skip > 0)
                return true;
        }
        end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0)
            return evbuffer_get_length(in) <= MAX_HEAD_BYTES;
        head_len = (size_t)end.pos + 4;
        if (head_len > MAX_HEAD_BYTES)
            return false;
        rc = http_head_parse(&head, in, head_len, &cause);
        if (rc == 0) {
            check_head(&head, head_len);
            is_chunked = http_head_get(&head, "transfer-encoding") != NULL;
            (void)http_head_get(&head, "expect");
            (void)http_head_get(&head, "host");
            rc = http_head_content_length(&head, &content_length);
            if (rc == 0 && content_length > 0)
                *skip = (size_t)content_length;
        } else if (cause == NULL) {
            abort(); /* a failure always comes with its reason */
        }
        http_head_release(&head);
        free(cause);
        /* A chunked body goes to the server's chunk decoder, not to this parser. */
        if (rc != 0 || !head.keep_alive || is_chunked)
            return false;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct evbuffer *in;
    size_t split, skip = 0;

    if (size < 1)
        return 0;
    in = evbuffer_new();
    if (in == NULL)
        return 0;
    split = size > 1 ? 1 + data[0] % (size - 1) : 1;
    evbuffer_add(in, data + 1, split - 1);
    if (read_heads(in, &skip)) {
        evbuffer_add(in, data + split, size - split);
        (void)read_heads(in, &skip);
    }
    evbuffer_free(in);
    return 0;
}
