/* Small string helpers. */
#ifndef IG_TEXT_H
#define IG_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns a malloc'd copy of TEXT with every TOKEN replaced by VALUE (caller frees), or NULL
 * when out of memory. TOKEN must not be empty. */
char *ig_replace_all(const char *text, const char *token, const char *value);

/* Decodes the LEN bytes of TEXT, a URL path segment or (IS_FORM: '+' is a space too) a
 * query value, into OUT (SIZE bytes, always NUL-terminated when SIZE > 0). Returns the
 * decoded length, or -1 when an escape is not '%' and two hex digits, decodes to a NUL byte,
 * or the result does not fit. */
long ig_percent_decode(const char *text, size_t len, bool is_form, char *out, size_t size);

/* Finds parameter NAME in QUERY ("a=1&b=2", after the '?'; the first one when repeated) and
 * decodes its value into OUT (SIZE bytes) with ig_percent_decode(). Returns 1 when found,
 * 0 when absent (OUT untouched), -1 when its value is malformed or too long. */
int ig_query_param(const char *query, const char *name, char *out, size_t size);

/* The largest number ig_parse_int() takes (15 digits): beyond any id, count or time in
 * milliseconds we store, and far from overflowing. */
#define IG_PARSE_INT_MAX 999999999999999LL

/* Parses TEXT, decimal digits only, as a number from 0 to IG_PARSE_INT_MAX; -1 if it is not
 * one (empty, a sign, spaces, other characters, or too large). */
long long ig_parse_int(const char *text);

/* FNV-1a's starting value, for ig_fnv1a() (chain calls to hash several pieces). */
#define IG_FNV1A_INIT 1469598103934665603ULL

/* Returns the 64-bit FNV-1a hash H continued over LEN bytes at DATA: a fast table hash,
 * not for secrets. */
uint64_t ig_fnv1a(const void *data, size_t len, uint64_t h);

/* Writes V in decimal into BUF (at least 21 bytes, NUL-terminated); returns the length. A
 * printf-free formatter for hot paths (HTTP heads). */
size_t ig_format_u64(char *buf, uint64_t v);

/* Writes the strings PARTS (ended by a NULL) one after another into OUT (SIZE bytes,
 * NUL-terminated when SIZE > 0, cut to fit); returns the length written. A printf-free
 * "%s%s..." for hot paths. */
size_t ig_concat(char *out, size_t size, const char *const *parts);

/* Copies TEXT into OUT (SIZE bytes, NUL-terminated when SIZE > 0) as valid UTF-8: invalid
 * bytes become '?', and a cut falls between characters. */
void ig_utf8_copy(char *out, size_t size, const char *text);

#endif
