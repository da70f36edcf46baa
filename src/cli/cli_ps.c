/*
 * `infergate ps`: the models a running server has started, from GET /running (which models
 * run) joined with GET /status (pid, uptime, queue and memory estimate of each).
 */
#include "cli.h"
#include "cli_fmt.h"
#include "cli_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_TIMEOUT_MS 10000

static const char usage_text[] =
    "usage: infergate ps [--all] [--json] " CLI_SERVER_USAGE "\n";

/* Returns the entry of RUNNING for ID, or NULL. */
static json_t *running_entry(json_t *running, const char *id)
{
    size_t i;
    json_t *r;

    json_array_foreach(running, i, r) {
        const char *model = json_string_value(json_object_get(r, "model"));
        if (model != NULL && strcmp(model, id) == 0)
            return r;
    }
    return NULL;
}

/* Returns the rows to show: the /status models that run (all with IS_ALL), each with the
 * /running fields added (cmd, proxy, ttl, name). Caller decrefs. */
static json_t *join(json_t *status, json_t *running, bool is_all)
{
    json_t *rows = json_array(), *m;
    size_t i;

    json_array_foreach(json_object_get(status, "models"), i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        json_t *row, *r;
        if (id == NULL || (!is_all && running_entry(running, id) == NULL))
            continue;
        row = json_deep_copy(m);
        r = running_entry(running, id);
        if (row == NULL)
            continue;
        json_object_set(row, "model", json_object_get(m, "id"));
        json_object_del(row, "id");
        if (r != NULL) {
            const char *k;
            json_t *v;
            json_object_foreach(r, k, v) {
                if (json_object_get(row, k) == NULL)
                    json_object_set(row, k, v);
            }
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

/* Prints ROWS as a table. */
static void print_table(json_t *rows)
{
    size_t i;
    json_t *r;

    printf("%-28s %-13s %8s %9s %9s %7s %10s %10s\n", "MODEL", "STATE", "PID", "UPTIME",
           "IN-FLIGHT", "WAITING", "MEMORY", "VRAM");
    json_array_foreach(rows, i, r) {
        long long pid = (long long)json_integer_value(json_object_get(r, "pid"));
        long long uptime_ms = (long long)json_integer_value(json_object_get(r, "uptime_ms"));
        long long mem = (long long)json_integer_value(json_object_get(r, "memory_bytes"));
        long long vram = (long long)json_integer_value(json_object_get(r, "vram_bytes"));
        char pid_text[24] = "-", uptime[32] = "-", mem_text[32] = "-", vram_text[32] = "-";
        const char *state = json_string_value(json_object_get(r, "state"));
        json_t *progress = json_object_get(r, "load_progress");
        char state_text[32];

        if (pid > 0)
            snprintf(pid_text, sizeof(pid_text), "%lld", pid);
        if (uptime_ms > 0)
            cli_fmt_duration((double)uptime_ms / 1000.0, uptime, sizeof(uptime));
        if (mem > 0)
            cli_fmt_bytes((uint64_t)mem, mem_text, sizeof(mem_text));
        if (vram > 0)
            cli_fmt_bytes((uint64_t)vram, vram_text, sizeof(vram_text));
        if (state != NULL && strcmp(state, "starting") == 0 && json_is_number(progress))
            snprintf(state_text, sizeof(state_text), "starting %.0f%%",
                     json_number_value(progress) * 100);
        else
            snprintf(state_text, sizeof(state_text), "%s", state != NULL ? state : "?");
        printf("%-28s %-13s %8s %9s %9lld %7lld %10s %10s\n",
               json_string_value(json_object_get(r, "model")), state_text, pid_text, uptime,
               (long long)json_integer_value(json_object_get(r, "in_flight")),
               (long long)json_integer_value(json_object_get(r, "waiting")), mem_text,
               vram_text);
    }
}

int cli_ps(int argc, char **argv)
{
    struct cli_server *server = cli_server_new();
    json_t *running = NULL, *status = NULL, *rows = NULL;
    bool is_json = false, is_all = false;
    char *cause = NULL;
    long http_status = 0;
    int rc = 2;

    if (server == NULL)
        return 1;
    for (int i = 1; i < argc; i++) {
        int taken = cli_server_option(server, argc, argv, &i);
        if (taken < 0)
            goto out;
        if (taken > 0)
            continue;
        if (strcmp(argv[i], "--json") == 0) {
            is_json = true;
        } else if (strcmp(argv[i], "--all") == 0 || strcmp(argv[i], "-a") == 0) {
            is_all = true;
        } else {
            fprintf(stderr, "infergate ps: unexpected argument '%s'\n%s", argv[i], usage_text);
            goto out;
        }
    }
    rc = 1;
    if (cli_server_get_json(server, "/running", REQUEST_TIMEOUT_MS, &running, &http_status,
                            &cause) != 0 ||
        cli_server_get_json(server, "/status", REQUEST_TIMEOUT_MS, &status, &http_status,
                            &cause) != 0) {
        fprintf(stderr, "infergate ps: %s\n", cause != NULL ? cause : "out of memory");
        goto out;
    }
    rows = join(status, json_object_get(running, "running"), is_all);
    if (rows == NULL)
        goto out;
    if (is_json) {
        json_dumpf(rows, stdout, JSON_INDENT(2));
        printf("\n");
    } else {
        print_table(rows);
    }
    rc = 0;
out:
    free(cause);
    json_decref(rows);
    json_decref(running);
    json_decref(status);
    cli_server_free(server);
    return rc;
}
