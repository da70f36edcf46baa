/*
 * Fuzz harness: the config loader (YAML parse, macros, validation) on arbitrary text, then
 * the lookups the gateway makes on a loaded config. Everything is freed before returning.
 *
 * A `budget` percentage makes the loader ask nvidia-smi (through popen) for the GPUs'
 * memory: inputs that reach it run slower, but correctly.
 */
#include "cfg.h"

#include <stdint.h>
#include <stdlib.h>

/* Looks every model up by id and alias, as routing does, and checks the answers. */
static void lookup_models(const struct cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_models; i++) {
        const struct cfg_model *m = &cfg->models[i];
        if (cfg_find_model(cfg, m->id) == NULL)
            abort(); /* a loaded model must be found by its own id */
        for (size_t j = 0; j < m->aliases.len; j++)
            (void)cfg_find_model(cfg, m->aliases.items[j]);
        (void)cfg_model_group(cfg, m->id);
        (void)cfg_model_same_process(m, &cfg->models[0]);
        for (size_t s = 0; s < cfg->matrix.n_sets; s++)
            (void)cfg_matrix_set_has(&cfg->matrix.sets[s], i);
    }
    for (size_t i = 0; i < cfg->n_profiles; i++)
        if (cfg_find_profile(cfg, cfg->profiles[i].id) == NULL)
            abort();
    (void)cfg_find_model(cfg, "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg *cfg = NULL;
    char *cause = NULL;

    if (cfg_load_string((const char *)data, size, "fuzz.yaml", &cfg, &cause) == 0)
        lookup_models(cfg);
    cfg_free(cfg);
    free(cause);
    return 0;
}
