/* Request heads for upstream requests (see http_head.h). */
#include "http_head.h"
#include "ig_text.h"

#include <stdlib.h>
#include <string.h>

/* Appends LEN bytes of TEXT at *AT of BUF (sized beforehand). */
static void put(char *buf, size_t *at, const char *text, size_t len)
{
    memcpy(buf + *at, text, len);
    *at += len;
}

char *http_head_build(const char *method, const char *path, const char *host, size_t host_len,
                      const char *const *headers, long long content_length, size_t *len)
{
    size_t method_len = strlen(method), path_len = strlen(path), num_len = 0, at = 0, size;
    char num[24], *head;

    if (content_length >= 0)
        num_len = ig_format_u64(num, (unsigned long long)content_length);
    size = method_len + 1 + path_len + 17 + host_len + 2 + 2;
    size += content_length >= 0 ? 16 + num_len + 2 : 0;
    for (const char *const *h = headers; h != NULL && *h != NULL; h++)
        size += strlen(*h) + 2;
    head = malloc(size);
    if (head == NULL)
        return NULL;
    put(head, &at, method, method_len);
    put(head, &at, " ", 1);
    put(head, &at, path, path_len);
    put(head, &at, " HTTP/1.1\r\nHost: ", 17);
    put(head, &at, host, host_len);
    put(head, &at, "\r\n", 2);
    for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
        put(head, &at, *h, strlen(*h));
        put(head, &at, "\r\n", 2);
    }
    if (content_length >= 0) {
        put(head, &at, "Content-Length: ", 16);
        put(head, &at, num, num_len);
        put(head, &at, "\r\n", 2);
    }
    put(head, &at, "\r\n", 2);
    *len = at;
    return head;
}

bool http_head_status(const char *head, int *minor, int *status)
{
    const char *p = head + 8;

    if (strncmp(head, "HTTP/1.", 7) != 0 || head[7] < '0' || head[7] > '9' || *p != ' ')
        return false;
    while (*p == ' ')
        p++;
    for (int i = 0; i < 3; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    *minor = head[7] - '0';
    *status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    return *status >= 100;
}
