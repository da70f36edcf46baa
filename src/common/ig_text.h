/* Small string helpers. */
#ifndef IG_TEXT_H
#define IG_TEXT_H

/* Returns a malloc'd copy of TEXT with every TOKEN replaced by VALUE (caller frees), or NULL
 * when out of memory. TOKEN must not be empty. */
char *ig_replace_all(const char *text, const char *token, const char *value);

#endif
