/* The URLs the native client connects to by itself (http_native.h). */
#include "http_native.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parses URL, http:// with a literal address or "localhost", into *ADDR and *LEN and sets
 * *HOST_END to the end of its authority; returns false for any other URL. */
bool native_literal_url(const char *url, struct sockaddr_storage *addr, socklen_t *len,
                        const char **host_end)
{
    const char *host = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL, *p;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    char name[64];
    long port = 80;
    size_t n;

    memset(addr, 0, sizeof(*addr));
    if (host == NULL)
        return false;
    n = host[0] == '[' ? strcspn(host + 1, "]") : strcspn(host, ":/");
    if (n >= sizeof(name) || (host[0] == '[' && host[1 + n] != ']'))
        return false;
    memcpy(name, host + (host[0] == '['), n);
    name[n] = '\0';
    if (host[0] == '[') {
        a6->sin6_family = AF_INET6;
        *len = sizeof(*a6);
        p = host + n + 2;
        if (inet_pton(AF_INET6, name, &a6->sin6_addr) != 1)
            return false;
    } else {
        a4->sin_family = AF_INET;
        *len = sizeof(*a4);
        p = host + n;
        if (strcmp(name, "localhost") == 0)
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, name, &a4->sin_addr) != 1)
            return false;
    }
    if (*p == ':')
        port = strtol(p + 1, (char **)&p, 10);
    if (port <= 0 || port > 65535)
        return false;
    if (addr->ss_family == AF_INET6)
        a6->sin6_port = htons((uint16_t)port);
    else
        a4->sin_port = htons((uint16_t)port);
    *host_end = p;
    return true;
}

bool native_can_serve(const char *url)
{
    struct sockaddr_storage addr;
    socklen_t len;
    const char *end;

    return native_literal_url(url, &addr, &len, &end);
}
