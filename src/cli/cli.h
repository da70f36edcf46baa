/* Subcommands of the infergate binary. */
#ifndef IG_CLI_H
#define IG_CLI_H

/* `infergate serve -c FILE [--listen HOST:PORT]`: runs the gateway; returns the exit code. */
int cli_serve(int argc, char **argv);

/* `infergate worker --nats URL [--models-dir DIR] [-c FILE] [--name N] [--capacity N]`:
 * serves models over the bus without listening; returns the exit code. */
int cli_worker(int argc, char **argv);

/* `infergate check -c FILE`: validates a config; returns 0 when valid, 1 otherwise. */
int cli_check(int argc, char **argv);

/* `infergate models -c FILE [--json]`: lists the models of a config with capabilities and
 * estimated memory; without -c, those of a running server (--url); returns the exit code. */
int cli_models(int argc, char **argv);

/* `infergate ps [--all] [--json]`: the models a running server has started. */
int cli_ps(int argc, char **argv);

/* `infergate chat MODEL`: a streaming chat with a running server, one message per line of
 * stdin. */
int cli_chat(int argc, char **argv);

/* `infergate top [--once]`: a live view of a running server's models, refreshed each second. */
int cli_top(int argc, char **argv);

/* `infergate pull URL [-o FILE | --models-dir DIR] [--sha256 HEX] [--force]`: downloads a
 * model file with resume and checksum. */
int cli_pull(int argc, char **argv);

/* `infergate bench MODEL [-n N] [-c C] [--stream]`: a small load generator against a running
 * server. */
int cli_bench(int argc, char **argv);

/* `infergate config generate (--models-dir DIR)... [-c FILE] [--write FILE]`: writes a
 * llama-swap compatible config for the GGUF files found; returns the exit code. */
int cli_config(int argc, char **argv);

/* `infergate keys create|list|revoke|update`: API keys in the database. */
int cli_keys(int argc, char **argv);

/* Parses "host:port", "[v6]:port" or ":port" into HOST (HOST_SIZE bytes) and *PORT;
 * returns 0 or -1. */
int cli_parse_listen(const char *text, char *host, unsigned long host_size, int *port);

/* Loads the config named by -c/--config in ARGV, printing warnings and errors to stderr.
 * Returns the config (caller frees with cfg_free()) or NULL. */
struct cfg *cli_load_config(const char *path);

#endif
