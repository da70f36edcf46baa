/* Byte ring for child output: the newest CAPACITY bytes, oldest overwritten first. */
#include "sup_ring.h"

#include <stdlib.h>
#include <string.h>

struct sup_ring {
    char *data;
    size_t capacity;
    size_t start; /* index of the oldest byte */
    size_t size;
};

struct sup_ring *sup_ring_new(size_t capacity)
{
    struct sup_ring *ring = calloc(1, sizeof(*ring));

    if (ring == NULL)
        return NULL;
    ring->data = malloc(capacity);
    if (ring->data == NULL) {
        free(ring);
        return NULL;
    }
    ring->capacity = capacity;
    return ring;
}

void sup_ring_free(struct sup_ring *ring)
{
    if (ring == NULL)
        return;
    free(ring->data);
    free(ring);
}

void sup_ring_append(struct sup_ring *ring, const char *data, size_t len)
{
    if (len >= ring->capacity) {
        memcpy(ring->data, data + len - ring->capacity, ring->capacity);
        ring->start = 0;
        ring->size = ring->capacity;
        return;
    }
    for (size_t i = 0; i < len;) {
        size_t end = (ring->start + ring->size) % ring->capacity;
        size_t room = ring->capacity - end;
        size_t n = len - i < room ? len - i : room;
        memcpy(ring->data + end, data + i, n);
        i += n;
        ring->size += n;
        if (ring->size > ring->capacity) {
            ring->start = (ring->start + ring->size - ring->capacity) % ring->capacity;
            ring->size = ring->capacity;
        }
    }
}

char *sup_ring_tail(const struct sup_ring *ring, size_t max_lines)
{
    char *flat = malloc(ring->size + 1);
    size_t lines = 0, from;

    if (flat == NULL)
        return NULL;
    for (size_t i = 0; i < ring->size; i++)
        flat[i] = ring->data[(ring->start + i) % ring->capacity];
    flat[ring->size] = '\0';
    from = ring->size;
    if (from > 0 && flat[from - 1] == '\n')
        from--;
    while (from > 0) {
        if (flat[from - 1] == '\n' && ++lines == max_lines)
            break;
        from--;
    }
    memmove(flat, flat + from, ring->size - from + 1);
    return flat;
}

size_t sup_ring_size(const struct sup_ring *ring)
{
    return ring->size;
}
