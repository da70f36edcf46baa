/*
 * libFuzzer harness: the framing of bus messages (src/bus/bus_frame.c), which parses every
 * payload a NATS client may publish on infergate's subjects. The whole input is the
 * payload. Checked: the body is the payload's tail; headers hold no CR and names no colon;
 * a frame with headers, written again from what was parsed, parses to the same headers and
 * body; a header looked up by name is found.
 */
#include "bus_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct bus_frame f, again;
    struct bus_header h[BUS_FRAME_MAX_HEADERS];
    size_t head;
    char *out;

    bus_frame_parse(&f, p, size);
    if (f.data < p || f.data + f.len != p + size || f.n_headers > BUS_FRAME_MAX_HEADERS)
        abort(); /* the body is the payload's tail */
    for (size_t i = 0; i < f.n_headers; i++) {
        if (strchr(f.names[i], '\r') != NULL || strchr(f.values[i], '\r') != NULL ||
            strchr(f.names[i], ':') != NULL)
            abort();
        if (bus_frame_header(&f, f.names[i]) == NULL)
            abort();
        h[i] = (struct bus_header){f.names[i], f.values[i]};
    }
    if (f.n_headers == 0)
        return 0; /* a body alone: nothing to write back */
    head = bus_frame_head_size(h, f.n_headers);
    out = malloc(head + f.len + 1);
    if (out == NULL)
        return 0;
    if (bus_frame_write_head(out, h, f.n_headers) != head)
        abort();
    if (f.len > 0)
        memcpy(out + head, f.data, f.len);
    bus_frame_parse(&again, out, head + f.len);
    if (again.n_headers != f.n_headers || again.len != f.len ||
        (f.len > 0 && memcmp(again.data, f.data, f.len) != 0))
        abort();
    for (size_t i = 0; i < f.n_headers; i++)
        if (strcmp(again.names[i], f.names[i]) != 0 || strcmp(again.values[i], f.values[i]) != 0)
            abort();
    free(out);
    return 0;
}
