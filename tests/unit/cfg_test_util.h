/* Helpers shared by the config unit tests (static inline: each test file uses a subset). */
#ifndef IG_CFG_TEST_UTIL_H
#define IG_CFG_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Loads YAML text named "config"; returns the config or NULL with *CAUSE set. */
static inline struct cfg *load(const char *yaml, char **cause)
{
    struct cfg *cfg = NULL;
    int rc = cfg_load_string(yaml, strlen(yaml), "config", &cfg, cause);

    if (rc == 0) {
        assert_non_null(cfg);
        assert_null(*cause);
    } else {
        assert_null(cfg);
        assert_int_equal(rc, IG_ECONFIG);
        assert_non_null(*cause);
    }
    return cfg;
}

/* Loads YAML that must be valid. */
static inline struct cfg *load_ok(const char *yaml)
{
    char *cause = NULL;
    struct cfg *cfg = load(yaml, &cause);

    if (cfg == NULL)
        fail_msg("unexpected errors:\n%s", cause);
    return cfg;
}

/* Returns whether LINE is one whole line of TEXT. */
static inline bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; p != NULL; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Asserts that YAML fails with exactly LINE among its errors. */
static inline void expect_error(const char *yaml, const char *line)
{
    char *cause = NULL;
    struct cfg *cfg = load(yaml, &cause);

    if (cfg != NULL) {
        cfg_free(cfg);
        fail_msg("expected error '%s' but the config loaded", line);
    }
    if (!has_line(cause, line))
        fail_msg("expected error '%s', got:\n%s", line, cause);
    free(cause);
}

/* Asserts that the loaded config has WARNING. */
static inline void expect_warning(const struct cfg *cfg, const char *warning)
{
    for (size_t i = 0; i < cfg->warnings.len; i++)
        if (strcmp(cfg->warnings.items[i], warning) == 0)
            return;
    fail_msg("missing warning '%s' (%zu warnings)", warning, cfg->warnings.len);
}

/* Returns whether KEY is in cfg->inactive_keys. */
static inline bool is_inactive(const struct cfg *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->inactive_keys.len; i++)
        if (strcmp(cfg->inactive_keys.items[i], key) == 0)
            return true;
    return false;
}

#endif
