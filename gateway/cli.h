/*
 * cli: the subcommands of the patterngate executable other than serving,
 * and the config handling the command line shares. Each subcommand takes
 * the arguments after its name and returns the process exit code (SPEC.md:
 * 0 success, 1 runtime failure or error reply, 2 bad usage or config).
 * Every subcommand answers --help (and -h) with its usage on stdout, exit 0.
 */
#ifndef PG_GATEWAY_CLI_H
#define PG_GATEWAY_CLI_H

#include "config/config.h"

/* `call` (is_emit 0) or `emit` (is_emit 1): HOST:PORT PATTERN [DATA]. */
int cli_call(int argc, char **argv, int is_emit);

/* `healthcheck [-c FILE] [URL]`: GET URL, 0 on a 200 within 2 s, 1
 * otherwise, 2 for a URL it cannot use or a bad config. Without a URL, the
 * URL is http://ADDRESS/healthz where ADDRESS is the config's admin_listen,
 * else its listen, a wildcard host (0.0.0.0, ::) made loopback; the config
 * is -c FILE, else $PATTERNGATE_CONFIG, else the embedded default (as for
 * serving). The container image's HEALTHCHECK. */
int cli_healthcheck(int argc, char **argv);

/* `explain [-c FILE] METHOD PATH [BODY] [-H "Name: value"]...`: a dry run
 * of one request: the route, service, pattern and packet data (exit 0), or
 * the error the gateway would answer (exit 1); no network. */
int cli_explain(int argc, char **argv);

/* ---- config on the command line (cli_config.c) ----------------------------- */

/*
 * Reads the config option at argv[*i] if it is one: `-c FILE`,
 * `--config FILE` or `--config=FILE`. Returns 1 with *file set (borrowed
 * from argv) and *i on the last argument used; 0 when argv[*i] is not the
 * option (nothing changed); -1 when FILE is missing or empty.
 */
int cli_config_option(int argc, char **argv, int *i, const char **file);

/* The config file to load: `option` (from -c) when not NULL, else
 * $PATTERNGATE_CONFIG when set and non-empty, else NULL, meaning the
 * embedded default. The result is borrowed (argv or the environment). */
const char *cli_config_file(const char *option);

/*
 * Loads `file` (NULL: the embedded default). On failure prints every
 * problem to stderr, one line each,
 *     patterngate: FILE:LINE:COLUMN: json.path: reason
 * (see config_problem_format()), then "patterngate: (more errors not
 * shown)" when there were more than CONFIG_ERRORS_MAX, and returns NULL.
 * On success the caller owns the config (config_free()).
 */
config *cli_load_config(const char *file);

/* The name shown for a config in messages: the file, or "<default>". */
const char *cli_config_name(const char *file);

#endif
