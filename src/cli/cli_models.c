/*
 * `infergate models`: the models a config serves, with what their files say (capabilities,
 * size, estimated memory), or with no -c FILE those of a running server (GET /models) with
 * their state. `infergate config generate`: a llama-swap compatible config for
 * the GGUF files of some directories.
 */
#include "cfg.h"
#include "cli.h"
#include "cli_fmt.h"
#include "cli_http.h"
#include "gguf_meta.h"
#include "model_catalog.h"
#include "model_scan.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DIRS 64

/* Writes CAPS as "completion,embeddings" into BUF ("-" when none is known). */
static void caps_text(unsigned caps, char *buf, size_t size)
{
    const char *names[8];
    size_t n = gguf_cap_names(caps, names), used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i > 0 ? "," : "", names[i]);
    if (n == 0)
        snprintf(buf, size, "-");
}

/* Writes a parameter count like "1.2B" or "135M" into BUF. */
static void params_text(long long n, char *buf, size_t size)
{
    if (n <= 0)
        snprintf(buf, size, "-");
    else if (n >= 1000000000LL)
        snprintf(buf, size, "%.1fB", (double)n / 1e9);
    else
        snprintf(buf, size, "%.0fM", (double)n / 1e6);
}

/* Prints one row of the models table. */
static void print_row(const struct cfg_model *m)
{
    json_t *d = m->details;
    const char *arch = json_string_value(json_object_get(d, "architecture"));
    const char *quant = json_string_value(json_object_get(d, "quantization"));
    char caps[96], params[32], mem[32], vram[32];

    caps_text(m->caps, caps, sizeof(caps));
    params_text((long long)json_integer_value(json_object_get(d, "parameters")), params,
                sizeof(params));
    if (m->mem_bytes > 0)
        snprintf(mem, sizeof(mem), "%.0f MiB", (double)m->mem_bytes / (1 << 20));
    else
        snprintf(mem, sizeof(mem), "-");
    if (m->vram_bytes > 0)
        snprintf(vram, sizeof(vram), "%.0f MiB", (double)m->vram_bytes / (1 << 20));
    else
        snprintf(vram, sizeof(vram), "-");
    printf("%-28s %-10s %-8s %7s %-8s %10s %10s  %s\n", m->id,
           m->is_discovered ? "discovered" : "config", arch != NULL ? arch : "-", params,
           quant != NULL ? quant : "-", mem, vram, caps);
}

/* Prints CFG's models as JSON (the catalog fields of /models). */
static void print_json(const struct cfg *cfg)
{
    json_t *list = json_array();

    for (size_t i = 0; i < cfg->n_models; i++) {
        const struct cfg_model *m = &cfg->models[i];
        char caps[96];
        caps_text(m->caps, caps, sizeof(caps));
        json_t *obj = json_pack("{s:s, s:b, s:s?, s:I, s:I, s:s, s:s?}", "id", m->id,
                                "discovered", m->is_discovered, "path", m->gguf_path,
                                "memory_bytes", (json_int_t)m->mem_bytes, "vram_bytes",
                                (json_int_t)m->vram_bytes, "capabilities", caps, "cmd", m->cmd);
        if (obj != NULL && m->details != NULL)
            json_object_set(obj, "details", m->details);
        json_array_append_new(list, obj);
    }
    json_dumpf(list, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(list);
}

/* Joins the strings of array LIST with commas into BUF ("-" when empty). */
static void join_strings(json_t *list, char *buf, size_t size)
{
    size_t i, used = 0;
    json_t *v;

    buf[0] = '\0';
    json_array_foreach(list, i, v) {
        const char *s = json_string_value(v);
        if (s != NULL && used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used > 0 ? "," : "", s);
    }
    if (used == 0)
        snprintf(buf, size, "-");
}

/* Prints the models of the server SERVER describes (GET /models); returns the exit code. */
static int list_remote(const struct cli_server *server, bool is_json)
{
    json_t *doc = NULL, *m;
    char *cause = NULL;
    long status = 0;
    size_t i;

    if (cli_server_get_json(server, "/models", 10000, &doc, &status, &cause) != 0) {
        fprintf(stderr, "infergate models: %s\n", cause != NULL ? cause : "out of memory");
        free(cause);
        return 1;
    }
    if (is_json) {
        json_dumpf(json_object_get(doc, "data"), stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(doc);
        return 0;
    }
    printf("%-28s %-9s %-10s %10s %10s  %-24s %s\n", "ID", "STATE", "SOURCE", "MEMORY", "VRAM",
           "CAPABILITIES", "ALIASES");
    json_array_foreach(json_object_get(doc, "data"), i, m) {
        json_int_t mem = json_integer_value(json_object_get(m, "memory_bytes"));
        json_int_t vram = json_integer_value(json_object_get(m, "vram_bytes"));
        char caps[96], aliases[256], mem_text[32] = "-", vram_text[32] = "-";
        const char *state = json_string_value(json_object_get(m, "state"));

        join_strings(json_object_get(m, "capabilities"), caps, sizeof(caps));
        join_strings(json_object_get(m, "aliases"), aliases, sizeof(aliases));
        if (mem > 0)
            cli_fmt_bytes((uint64_t)mem, mem_text, sizeof(mem_text));
        if (vram > 0)
            cli_fmt_bytes((uint64_t)vram, vram_text, sizeof(vram_text));
        printf("%-28s %-9s %-10s %10s %10s  %-24s %s\n",
               json_string_value(json_object_get(m, "id")), state != NULL ? state : "-",
               json_is_true(json_object_get(m, "discovered")) ? "discovered" : "config", mem_text,
               vram_text, caps, aliases);
    }
    json_decref(doc);
    return 0;
}

int cli_models(int argc, char **argv)
{
    static const char usage[] = "usage: infergate models -c FILE [--json]      (a config file)\n"
                                "       infergate models [--json] " CLI_SERVER_USAGE
                                "   (a running server)\n";
    struct cli_server *server = cli_server_new();
    const char *path = NULL;
    bool is_json = false, has_url_option = false;
    struct cfg *cfg;
    int rc = 2;

    if (server == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
        int taken = cli_server_option(server, argc, argv, &i);
        if (taken < 0)
            goto out;
        if (taken > 0) {
            has_url_option = has_url_option || strcmp(argv[i - 1], "--url") == 0;
            continue;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            is_json = true;
        } else {
            fprintf(stderr, "%s", usage);
            goto out;
        }
    }
    if (path != NULL && has_url_option) {
        fprintf(stderr, "infergate models: give -c FILE or --url URL, not both\n%s", usage);
        goto out;
    }
    /* -c FILE reads the config offline, even with INFERGATE_URL set; otherwise the server. */
    if (path == NULL) {
        rc = list_remote(server, is_json);
        goto out;
    }
    rc = 1;
    cfg = cli_load_config(path);
    if (cfg == NULL)
        goto out;
    if (is_json) {
        print_json(cfg);
    } else {
        printf("%-28s %-10s %-8s %7s %-8s %10s %10s  %s\n", "ID", "SOURCE", "ARCH", "PARAMS",
               "QUANT", "MEMORY", "VRAM", "CAPABILITIES");
        for (size_t i = 0; i < cfg->n_models; i++)
            print_row(&cfg->models[i]);
    }
    cfg_free(cfg);
    rc = 0;
out:
    cli_server_free(server);
    return rc;
}

/* Writes the generated config for SCAN to OUT. */
static int write_config(FILE *out, const struct cfg *cfg, const struct model_scan_result *scan,
                        const char *const *dirs, size_t n_dirs)
{
    char bin[PATH_MAX + 32];

    catalog_default_engine(bin, sizeof(bin));
    fprintf(out, "# Generated by `infergate config generate` from:\n");
    for (size_t i = 0; i < n_dirs; i++)
        fprintf(out, "#   %s\n", dirs[i]);
    fprintf(out, "# llama-swap compatible: every model runs infergate-engine on ${PORT}.\n");
    fprintf(out, "startPort: %d\n", cfg->start_port);
    fprintf(out, "models:\n");
    for (size_t i = 0; i < scan->n_entries; i++) {
        const struct model_entry *e = &scan->entries[i];
        char *cmd;
        char caps[96];

        if (!e->has_meta) {
            fprintf(out, "  # skipped %s: %s\n", e->path, e->error != NULL ? e->error : "?");
            continue;
        }
        cmd = catalog_engine_cmd(cfg, e, bin);
        if (cmd == NULL)
            return -1;
        caps_text(e->caps, caps, sizeof(caps));
        fprintf(out, "  \"%s\":\n", e->id);
        fprintf(out, "    # %s, %s, %.0f MiB on disk; capabilities: %s\n",
                e->meta.architecture != NULL ? e->meta.architecture : "?",
                e->meta.dominant_type, (double)e->size_bytes / (1 << 20), caps);
        fprintf(out, "    cmd: |\n      %s\n", cmd);
        free(cmd);
    }
    return ferror(out) ? -1 : 0;
}

/* Writes TEXT-producing config to PATH atomically (temporary file, then rename). */
static int write_file(const char *path, const struct cfg *cfg,
                      const struct model_scan_result *scan, const char *const *dirs,
                      size_t n_dirs)
{
    char tmp[PATH_MAX];
    FILE *f;
    int rc;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "infergate: cannot write %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    rc = write_config(f, cfg, scan, dirs, n_dirs);
    if (fclose(f) != 0 || rc != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "infergate: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return 1;
    }
    fprintf(stderr, "wrote %s: %zu model(s)\n", path, scan->n_entries);
    return 0;
}

int cli_config(int argc, char **argv)
{
    const char *usage = "usage: infergate config generate (--models-dir DIR)... [-c FILE] "
                        "[--write FILE]\n";
    const char *dirs[MAX_DIRS], *path = NULL, *write_to = NULL;
    size_t n_dirs = 0;
    struct model_scan_result *scan = NULL;
    struct cfg *cfg = NULL;
    char *cause = NULL;
    int rc = 1;

    if (argc < 2 || strcmp(argv[1], "generate") != 0) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--models-dir") == 0 && i + 1 < argc && n_dirs < MAX_DIRS)
            dirs[n_dirs++] = argv[++i];
        else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--write") == 0 && i + 1 < argc)
            write_to = argv[++i];
        else {
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    /* Engine settings and extra directories come from -c FILE when given. */
    if (path != NULL && cfg_load(path, &cfg, &cause) != 0) {
        fprintf(stderr, "%s\n", cause != NULL ? cause : "cannot load config");
        goto out;
    }
    if (cfg == NULL && cfg_load_string("models: {}\n", 11, "defaults", &cfg, &cause) != 0)
        goto out;
    for (size_t i = 0; i < cfg->discovery.dirs.len && n_dirs < MAX_DIRS; i++)
        dirs[n_dirs++] = cfg->discovery.dirs.items[i];
    if (n_dirs == 0) {
        fprintf(stderr, "%s", usage);
        rc = 2;
        goto out;
    }
    if (model_scan(dirs, n_dirs, NULL, &scan, &cause) != 0) {
        fprintf(stderr, "infergate: %s\n", cause != NULL ? cause : "scan failed");
        goto out;
    }
    for (size_t i = 0; i < scan->n_warnings; i++)
        fprintf(stderr, "warning: %s\n", scan->warnings[i]);
    rc = write_to != NULL ? write_file(write_to, cfg, scan, dirs, n_dirs)
                          : (write_config(stdout, cfg, scan, dirs, n_dirs) == 0 ? 0 : 1);
out:
    free(cause);
    model_scan_free(scan);
    cfg_free(cfg);
    return rc;
}
