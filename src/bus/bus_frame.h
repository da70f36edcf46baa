/*
 * The framing of a bus message: an optional header block at the start of the payload
 * ("IG/1\r\n", then "Name: value\r\n" lines, then an empty line "\r\n") before the body.
 * Headers travel in the payload because NATS headers would cost cnats a hash map and
 * several allocations per message. Parsing takes any bytes a NATS client may publish.
 */
#ifndef IG_BUS_FRAME_H
#define IG_BUS_FRAME_H

#include <stddef.h>

#define BUS_FRAME_MAX_HEADERS 8
#define BUS_FRAME_HEADER_SPACE 512

/* One header to encode. */
struct bus_header {
    const char *name;
    const char *value;
};

/* A parsed payload: its body and up to BUS_FRAME_MAX_HEADERS headers (copied into SPACE,
 * NUL-terminated; a header that does not fit is left out). */
struct bus_frame {
    const char *data; /* the body, after the header block (points into the payload) */
    size_t len;
    size_t n_headers;
    const char *names[BUS_FRAME_MAX_HEADERS], *values[BUS_FRAME_MAX_HEADERS];
    char space[BUS_FRAME_HEADER_SPACE]; /* "name\0value\0" pairs */
};

/* Parses the payload P of LEN bytes into F. A payload without a whole header block is all
 * body. */
void bus_frame_parse(struct bus_frame *f, const char *p, size_t len);

/* Returns the value of F's header NAME (case-insensitive), or NULL. */
const char *bus_frame_header(const struct bus_frame *f, const char *name);

/* Returns how many bytes the header block of HEADERS takes (0 when N is 0). */
size_t bus_frame_head_size(const struct bus_header *headers, size_t n);

/* Writes the header block of HEADERS into OUT (bus_frame_head_size() bytes, no NUL);
 * returns its length. Names and values must hold no CR or LF, names no colon. */
size_t bus_frame_write_head(char *out, const struct bus_header *headers, size_t n);

#endif
