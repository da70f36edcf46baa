/* infergate: entry point dispatching to subcommands. */
#include "cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

/* Prints the usage text. */
static void usage(FILE *out)
{
    fputs("usage: infergate [serve] -c FILE [--listen HOST:PORT] [--insecure-no-auth]\n"
          "                 [--tls-cert-file FILE --tls-key-file FILE]\n"
          "                                           run the gateway\n"
          "       infergate check -c FILE             validate a config\n"
          "       infergate models -c FILE [--json]   a config's models, capabilities, memory\n"
          "       infergate worker --nats URL [--models-dir DIR] [-c FILE] [--name N] "
          "[--capacity N]\n"
          "       infergate config generate --models-dir DIR [--write FILE]\n"
          "                                           write a config for GGUF files\n"
          "       infergate keys create|list|revoke|update -c FILE ...\n"
          "                                           manage API keys (docs/TENANTS.md)\n"
          "       infergate pull URL [-o FILE | --models-dir DIR] [--sha256 HEX] [--force]\n"
          "                                           download a GGUF (resumes, checks sha256)\n"
          "       infergate version                   print the version\n"
          "\n"
          "  with a running server (--url URL, else $INFERGATE_URL, else http://127.0.0.1:8080;\n"
          "  the token from $INFERGATE_TOKEN or --token-env NAME):\n"
          "       infergate models [--json]           the server's models and their states\n"
          "       infergate ps [--all] [--json]       running models: pid, uptime, queue\n"
          "       infergate chat MODEL [--system TEXT] [--max-tokens N]\n"
          "                                           streaming chat, one message per line\n"
          "       infergate top [--once] [--interval S]\n"
          "                                           live view of models, queues and rates\n"
          "       infergate bench MODEL [-n N] [-c C] [--stream] [--max-tokens N] [--json]\n"
          "                                           small load test: req/s, TTFT, tok/s\n"
          "  docs/CLI.md has the details\n",
          out);
}

/* A subcommand: its name and its entry point, called with ARGV starting at the name. */
struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
    {"serve", cli_serve}, {"worker", cli_worker}, {"check", cli_check}, {"models", cli_models}, {"config", cli_config},
    {"keys", cli_keys},   {"ps", cli_ps},       {"chat", cli_chat},     {"top", cli_top},
    {"pull", cli_pull},   {"bench", cli_bench},
};

int main(int argc, char **argv)
{
    const struct subcommand *sub = NULL;
    int rc;

    if (argc >= 2 && (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("infergate %s\n", IG_VERSION);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            sub = &subcommands[i];
    if (sub != NULL) {
        rc = sub->run(argc - 1, argv + 1);
    } else if (argv[1][0] == '-') {
        rc = cli_serve(argc, argv);
    } else {
        fprintf(stderr, "infergate: unknown command '%s'\n", argv[1]);
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
