/*
 * Scalars: ${env.X} substitution, then YAML 1.2 core typing of plain scalars the way
 * llama-swap's yaml.v3 decoder resolves them (null, bool, int with 0x/0o/0b, float), then
 * macro expansion. Numbers get Go's canonical text so macros expand as in llama-swap.
 */
#include "cfg_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses a YAML 1.2 / Go ParseInt(base 0) integer; returns whether TEXT is one. */
static bool parse_int(const char *text, long long *out)
{
    char buf[80];
    size_t n = 0;
    const char *p = buf;
    bool is_negative = false;
    int base = 10;
    unsigned long long v;
    char *end = NULL;

    for (const char *t = text; *t != '\0'; t++) {
        if (*t == '_')
            continue;
        if (n + 1 >= sizeof(buf))
            return false;
        buf[n++] = *t;
    }
    buf[n] = '\0';
    if (*p == '+' || *p == '-')
        is_negative = *p++ == '-';
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16, p += 2;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        base = 8, p += 2;
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        base = 2, p += 2;
    else if (p[0] == '0' && p[1] != '\0')
        base = 8, p += 1;
    if (*p == '\0' || *p == '+' || *p == '-' || *p == ' ')
        return false;
    errno = 0;
    v = strtoull(p, &end, base);
    if (errno != 0 || *end != '\0')
        return false;
    if (is_negative ? v > (unsigned long long)LLONG_MAX + 1ull : v > (unsigned long long)LLONG_MAX)
        return false;
    *out = is_negative ? (long long)(0ull - v) : (long long)v;
    return true;
}

/* Returns whether TEXT matches yaml.v3's float syntax [-+]?(.D+|D+(.D*)?)([eE][-+]?D+)?. */
static bool is_float_syntax(const char *p)
{
    bool has_digits = false;

    if (*p == '+' || *p == '-')
        p++;
    while (*p >= '0' && *p <= '9')
        p++, has_digits = true;
    if (*p == '.') {
        p++;
        if (!has_digits && !(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++, has_digits = true;
    }
    if (!has_digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Returns whether TEXT is one of yaml.v3's infinity/NaN spellings, setting *OUT. */
static bool parse_special_float(const char *text, double *out)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF"};
    static const char *const nan_[] = {".nan", ".NaN", ".NAN"};
    const char *t = text;
    double sign = 1.0;

    for (size_t i = 0; i < 3; i++) {
        if (strcmp(text, nan_[i]) == 0) {
            *out = NAN;
            return true;
        }
    }
    if (*t == '+' || *t == '-')
        sign = *t++ == '-' ? -1.0 : 1.0;
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(t, inf[i]) == 0) {
            *out = sign * INFINITY;
            return true;
        }
    }
    return false;
}

/* Formats VALUE like Go's fmt "%v" (strconv 'g', shortest), so macros expand identically. */
int cfg_format_float(double value, char *buf, size_t size)
{
    char tmp[40];
    int digits = 17, exp;

    if (isnan(value))
        return snprintf(buf, size, "NaN");
    if (isinf(value))
        return snprintf(buf, size, value < 0 ? "-Inf" : "+Inf");
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, value);
        if (strtod(tmp, NULL) == value) {
            digits = p;
            break;
        }
    }
    snprintf(tmp, sizeof(tmp), "%.*e", digits - 1, value);
    exp = (int)strtol(strchr(tmp, 'e') + 1, NULL, 10);
    if (value == 0.0)
        exp = 0;
    if (exp < -4 || exp >= 6) /* Go decides with precision 6 for shortest formatting */
        return snprintf(buf, size, "%.*e", digits - 1, value);
    return snprintf(buf, size, "%.*f", digits - 1 - exp > 0 ? digits - 1 - exp : 0, value);
}

/* Resolves a plain scalar's TEXT to a typed value; OUT->text gets the canonical text. */
void cfg_resolve_plain(const char *text, struct cfg_scalar *out)
{
    char num[40];

    memset(out, 0, sizeof(*out));
    out->kind = CFG_STR;
    if (text[0] == '\0' || strcmp(text, "~") == 0 || strcmp(text, "null") == 0 ||
        strcmp(text, "Null") == 0 || strcmp(text, "NULL") == 0) {
        out->kind = CFG_NULL;
    } else if (strcmp(text, "true") == 0 || strcmp(text, "True") == 0 ||
               strcmp(text, "TRUE") == 0) {
        out->kind = CFG_BOOL, out->b = true;
    } else if (strcmp(text, "false") == 0 || strcmp(text, "False") == 0 ||
               strcmp(text, "FALSE") == 0) {
        out->kind = CFG_BOOL, out->b = false;
    } else if (parse_int(text, &out->i)) {
        out->kind = CFG_INT;
        snprintf(num, sizeof(num), "%lld", out->i);
    } else if (parse_special_float(text, &out->f)) {
        out->kind = CFG_FLOAT;
        cfg_format_float(out->f, num, sizeof(num));
    } else if (strlen(text) < 64 && is_float_syntax(text)) {
        out->kind = CFG_FLOAT;
        out->f = strtod(text, NULL);
        cfg_format_float(out->f, num, sizeof(num));
    }
    if (out->kind == CFG_INT || out->kind == CFG_FLOAT)
        out->text = strdup(num);
    else if (out->kind == CFG_BOOL)
        out->text = strdup(out->b ? "true" : "false");
    else
        out->text = strdup(out->kind == CFG_NULL ? "" : text);
}

/* Frees a scalar's text. */
void cfg_scalar_clear(struct cfg_scalar *s)
{
    free(s->text);
    memset(s, 0, sizeof(*s));
}

/* Reads NODE's scalar with ${env.X} substituted and its type resolved, without macros. */
int cfg_read_raw(struct cfg_ctx *ctx, yaml_node_t *node, struct cfg_scalar *out)
{
    char *text;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (node->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, node, "expected a scalar, got %s",
                  node->type == YAML_MAPPING_NODE ? "a mapping" : "a list");
        return -1;
    }
    if (node->data.scalar.length > CFG_MAX_STRING_BYTES) {
        cfg_error(ctx, node, "string longer than %u bytes", CFG_MAX_STRING_BYTES);
        return -1;
    }
    if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length) {
        cfg_error(ctx, node, "string contains a NUL character");
        return -1;
    }
    text = strdup((const char *)node->data.scalar.value);
    if (text == NULL) {
        ctx->is_oom = true;
        return -1;
    }
    if (cfg_env_substitute(ctx, node, &text) != 0)
        goto out;
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        cfg_resolve_plain(text, out);
        if (out->text == NULL) {
            ctx->is_oom = true;
            goto out;
        }
    } else {
        out->kind = CFG_STR;
        out->text = text;
        text = NULL;
    }
    rc = 0;
out:
    free(text);
    return rc;
}

/* Reads NODE's scalar fully resolved: env, type, then macros of the current scope. */
int cfg_read_scalar(struct cfg_ctx *ctx, yaml_node_t *node, struct cfg_scalar *out)
{
    if (cfg_read_raw(ctx, node, out) != 0)
        return -1;
    if (out->kind == CFG_STR && cfg_expand(ctx, node, out) != 0) {
        cfg_scalar_clear(out);
        return -1;
    }
    return 0;
}
