/* A fixed-size byte ring holding the latest output of a child process. */
#ifndef IG_SUP_RING_H
#define IG_SUP_RING_H

#include <stddef.h>

struct sup_ring;

/* Creates a ring keeping the last CAPACITY bytes; caller frees with sup_ring_free(). */
struct sup_ring *sup_ring_new(size_t capacity);

/* Frees a ring; NULL is a no-op. */
void sup_ring_free(struct sup_ring *ring);

/* Appends LEN bytes, overwriting the oldest when full. */
void sup_ring_append(struct sup_ring *ring, const char *data, size_t len);

/* Returns a malloc'd copy of at most the last MAX_LINES complete or partial lines
 * (caller frees), or NULL when out of memory. */
char *sup_ring_tail(const struct sup_ring *ring, size_t max_lines);

/* Returns how many bytes are held. */
size_t sup_ring_size(const struct sup_ring *ring);

#endif
