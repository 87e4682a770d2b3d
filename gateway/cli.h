/*
 * cli: the subcommands of the patterngate executable other than serving.
 * Each takes the arguments after its name and returns the process exit code
 * (SPEC.md: 0 success, 1 runtime failure or error reply, 2 bad usage).
 */
#ifndef PG_GATEWAY_CLI_H
#define PG_GATEWAY_CLI_H

/* `call` (is_emit 0) or `emit` (is_emit 1): HOST:PORT PATTERN [DATA]. */
int cli_call(int argc, char **argv, int is_emit);

/* `healthcheck [URL]`: GET URL (default http://127.0.0.1:9901/healthz), 0 on
 * a 200 within 2 s, 1 otherwise, 2 for a URL it cannot use. The container
 * image's HEALTHCHECK. */
int cli_healthcheck(int argc, char **argv);

#endif
