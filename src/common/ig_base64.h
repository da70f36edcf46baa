/* Base64 (RFC 4648, with padding), for binary payloads in JSON such as embeddings. */
#ifndef IG_BASE64_H
#define IG_BASE64_H

#include <stddef.h>

/* Returns the length of the encoding of LEN bytes, without the terminating NUL. */
size_t ig_base64_len(size_t len);

/* Writes the encoding of LEN bytes at DATA to OUT (ig_base64_len(LEN) + 1 bytes, NUL-ended). */
void ig_base64_encode(const void *data, size_t len, char *out);

#endif
