/*
 * cli: the subcommands of the patterngate executable other than serving,
 * and the config handling the command line shares. Each subcommand takes
 * the arguments after its name and returns the process exit code (SPEC.md:
 * 0 success, 1 runtime failure or error reply, 2 bad usage or config).
 * Every subcommand answers --help (and -h) with its usage on stdout, exit 0.
 */
#ifndef PG_GATEWAY_CLI_H
#define PG_GATEWAY_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/tls.h"

/* `call` (is_emit 0) or `emit` (is_emit 1): HOST:PORT PATTERN [DATA]. */
int cli_call(int argc, char **argv, int is_emit);

/* `healthcheck [-c FILE] [URL]`: GET URL, 0 on a 200 within 2 s, 1
 * otherwise, 2 for a URL it cannot use or a bad config. Without a URL, the
 * URL is http://ADDRESS/healthz where ADDRESS is the config's admin_listen,
 * else its listen, a wildcard host (0.0.0.0, ::) made loopback; the config
 * is -c FILE, else $PATTERNGATE_CONFIG, else the embedded default (as for
 * serving). The container image's HEALTHCHECK. */
int cli_healthcheck(int argc, char **argv);

/*
 * `--check --live` (cli_live.c): after the config loaded, asks every
 * service for its handlers (gateway/live.h) and reports, for `file`:
 *   on stdout, one line per service ("live: service orders: 7 handlers",
 *   or "... has no patterngate-nest module: its routes are not checked",
 *   a warning);
 *   on stderr, each route whose pattern the service has no handler for, or
 *   whose kind differs from the handler's (send to an @EventPattern...):
 *   "patterngate: FILE: routes[3]: service orders has no handler for ...".
 * Returns 0; 2 when a route has no handler; 1 when a service could not be
 * asked (and no route was found wrong).
 */
int cli_check_live(const config *cfg, const char *file);

/* `scaffold [TLS options] [--timeout MS] HOST:PORT`: asks the service for
 * its handlers and prints a starting config (one route per handler) that
 * `--check` accepts. 0; 1 when the service cannot be asked or has no
 * patterngate-nest module; 2 for bad usage. */
int cli_scaffold(int argc, char **argv);

/* `openapi [-c FILE]` (cli_openapi.c): prints the OpenAPI document of the
 * config (gateway/openapi.h), indented, on stdout. 0; 2 for bad usage or a
 * config that does not load; 1 when out of memory or stdout fails. */
int cli_openapi(int argc, char **argv);

/* ---- TLS options (cli_tls.c) ------------------------------------------------ */

/* What --tls-ca F, --tls-cert F, --tls-key F, --servername N and
 * --insecure set; any of them turns TLS on. Paths are borrowed from argv. */
typedef struct cli_tls {
    tls_client_opts_t opts; /* start from CLI_TLS_INIT */
    const char *servername; /* NULL: the host */
    bool on;
} cli_tls_t;

#define CLI_TLS_INIT { { NULL, NULL, NULL, 1 }, NULL, false }

/* Reads the TLS option at argv[*i] if it is one: 1 (with *i on the last
 * argument used), 0 when it is not a TLS option, -1 when its value is
 * missing. */
int cli_tls_option(int argc, char **argv, int *i, cli_tls_t *t);

/* What is wrong with the options together (a certificate without its key),
 * or NULL. */
const char *cli_tls_problem(const cli_tls_t *t);

/* --timeout's value: milliseconds, 1 to 86400000. 0, or -1 when it is not. */
int cli_parse_timeout(const char *text, uint32_t *ms);
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
