/*
 * cli: the subcommands of the patterngate executable other than serving.
 * Each takes the arguments after its name and returns the process exit code
 * (SPEC.md: 0 success, 1 runtime failure or error reply, 2 bad usage).
 */
#ifndef PG_GATEWAY_CLI_H
#define PG_GATEWAY_CLI_H

/* `call` (is_emit 0) or `emit` (is_emit 1): HOST:PORT PATTERN [DATA]. */
int cli_call(int argc, char **argv, int is_emit);

#endif
