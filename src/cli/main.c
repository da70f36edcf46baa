/* infergate: entry point dispatching to subcommands. */
#include "cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

/* Prints the usage text. */
static void usage(FILE *out)
{
    fprintf(out,
            "usage: infergate [serve] -c FILE [--listen HOST:PORT] [--insecure-no-auth]\n"
            "                 [--tls-cert-file FILE --tls-key-file FILE]\n"
            "                                                      run the gateway\n"
            "       infergate check -c FILE                        validate a config\n"
            "       infergate models -c FILE [--json]              list models, capabilities, memory\n"
            "       infergate config generate --models-dir DIR [--write FILE]\n"
            "                                                      write a config for GGUF files\n"
            "       infergate keys create|list|revoke|update -c FILE ...\n"
            "                                                      manage API keys (see docs/TENANTS.md)\n"
            "       infergate version                              print the version\n");
}

int main(int argc, char **argv)
{
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
    if (strcmp(argv[1], "serve") == 0)
        rc = cli_serve(argc - 1, argv + 1);
    else if (strcmp(argv[1], "check") == 0)
        rc = cli_check(argc - 1, argv + 1);
    else if (strcmp(argv[1], "models") == 0)
        rc = cli_models(argc - 1, argv + 1);
    else if (strcmp(argv[1], "config") == 0)
        rc = cli_config(argc - 1, argv + 1);
    else if (strcmp(argv[1], "keys") == 0)
        rc = cli_keys(argc - 1, argv + 1);
    else if (argv[1][0] == '-')
        rc = cli_serve(argc, argv);
    else {
        fprintf(stderr, "infergate: unknown command '%s'\n", argv[1]);
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
