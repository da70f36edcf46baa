/* JSON helpers with caps for input from outside. */
#include "ig_json.h"

#include <stdio.h>

int ig_json_depth_ok(const char *text, size_t len, int max_depth)
{
    int depth = 0;
    int is_in_string = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (is_in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                is_in_string = 0;
            continue;
        }
        if (c == '"') {
            is_in_string = 1;
        } else if (c == '{' || c == '[') {
            depth++;
            if (depth > max_depth)
                return 0;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 1;
}

json_t *ig_json_parse(const char *text, size_t len, int max_depth, char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *root;

    if (!ig_json_depth_ok(text, len, max_depth)) {
        snprintf(err, err_size, "JSON nested deeper than %d levels", max_depth);
        return NULL;
    }
    root = json_loadb(text, len, 0, &jerr);
    if (root == NULL)
        snprintf(err, err_size, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
    return root;
}
