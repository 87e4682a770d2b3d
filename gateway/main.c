/*
 * patterngate's command line (SPEC.md "Command line"): a thin dispatcher.
 *
 *   patterngate [-c FILE] [--check [--live]] [--version] [--help]   serve / check
 *   patterngate call|emit|healthcheck|scaffold|openapi|explain ...  subcommands
 *
 * -c has the long forms --config FILE and --config=FILE.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or config.
 */
#include "config/config.h"
#include "gateway/cli.h"
#include "gateway/gateway.h"
#include "gateway/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: patterngate [-c FILE] [--check [--live]] [--version] [--help]\n"
    "       patterngate call [--tls-ca F] [--tls-cert F --tls-key F] [--servername N]\n"
    "                        [--insecure] [--timeout MS] HOST:PORT PATTERN [DATA]\n"
    "       patterngate emit [same options] HOST:PORT PATTERN [DATA]\n"
    "       patterngate healthcheck [-c FILE] [URL]\n"
    "       patterngate scaffold [TLS options] [--name NAME] HOST:PORT\n"
    "       patterngate openapi [-c FILE]\n"
    "       patterngate explain [-c FILE] METHOD PATH [BODY] [-H \"Name: value\"]...\n";

static const char help_text[] =
    "\n"
    "An HTTP sidecar for NestJS TCP microservices.\n"
    "\n"
    "  -c, --config FILE\n"
    "               the config file (JSON); default: $PATTERNGATE_CONFIG when set and\n"
    "               non-empty, else the built-in config (listen 127.0.0.1:8080, one\n"
    "               service \"default\" at 127.0.0.1:3000, generic API on)\n"
    "  --check      load and validate the config, print a summary line, exit; every\n"
    "               problem is listed as FILE:LINE:COLUMN: json.path: reason\n"
    "  --live       with --check: also ask every service for its handlers (it needs\n"
    "               the patterngate-nest module) and list each route whose pattern\n"
    "               has none (exit 2); a service that cannot be asked: exit 1\n"
    "  --version    print the version and exit\n"
    "  -h, --help   print this help and exit\n"
    "\n"
    "  call         send one request; print each reply value as a JSON line\n"
    "  emit         send one event\n"
    "  healthcheck  exit 0 when URL answers 200 within 2 s, else 1; the default URL\n"
    "               is /healthz on the config's admin_listen, else its listen\n"
    "  scaffold     print a starting config, one route per handler of a Nest service\n"
    "               that imports the patterngate-nest module\n"
    "  openapi      print the OpenAPI 3.1 document of the config's routes\n"
    "  explain      show what the config does with one request (route, service,\n"
    "               pattern, packet data, or the error answered), sending nothing\n"
    "  Each of them takes --help.\n"
    "\n"
    "Exit codes: 0 success, 1 runtime failure, 2 bad usage or config.\n";

/* What the main form of the command line asks for. */
typedef struct options {
    const char *config_file; /* -c FILE; NULL: see cli_config_file() */
    bool check;
    bool live;   /* --check --live */
    bool version;
    bool help;
} options;

typedef int subcommand_fn(int argc, char **argv);

static int run_call(int argc, char **argv)
{
    return cli_call(argc - 1, argv + 1, 0);
}

static int run_emit(int argc, char **argv)
{
    return cli_call(argc - 1, argv + 1, 1);
}

static int run_scaffold(int argc, char **argv)
{
    return cli_scaffold(argc - 1, argv + 1);
}

static const struct {
    const char *name;
    subcommand_fn *run;
} subcommands[] = {
    {"call", run_call},
    {"emit", run_emit},
    {"healthcheck", cli_healthcheck},
    {"scaffold", run_scaffold},
    {"openapi", cli_openapi},
    {"explain", cli_explain},
};

static int bad_usage(const char *format, const char *detail)
{
    fputs("patterngate: ", stderr);
    fprintf(stderr, format, detail);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* A word on its own that looks like a config file: a name ending in .json,
 * or a file that exists. */
static bool looks_like_config(const char *arg)
{
    size_t n = strlen(arg);
    struct stat st;
    return (n > 5 && strcmp(arg + n - 5, ".json") == 0) ||
           (stat(arg, &st) == 0 && S_ISREG(st.st_mode));
}

static int bad_argument(const char *arg)
{
    fprintf(stderr, "patterngate: unexpected argument '%s'", arg);
    if (looks_like_config(arg))
        fprintf(stderr, "; did you mean -c %s?", arg);
    else
        fputs(" (subcommands: call, emit, healthcheck, scaffold, openapi, explain)", stderr);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* Fills *opts from argv; returns 0 or the exit code of a usage error. */
static int parse_options(int argc, char **argv, options *opts)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int with_config = cli_config_option(argc, argv, &i, &opts->config_file);
        if (with_config < 0)
            return bad_usage("option %s needs a FILE", arg);
        if (with_config > 0)
            continue;
        if (strcmp(arg, "--check") == 0) {
            opts->check = true;
        } else if (strcmp(arg, "--live") == 0) {
            opts->live = true;
        } else if (strcmp(arg, "--version") == 0) {
            opts->version = true;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opts->help = true;
        } else if (arg[0] == '-') {
            return bad_usage("unknown option '%s'", arg);
        } else {
            return bad_argument(arg);
        }
    }
    return 0;
}

static int run_check(const char *file, bool live)
{
    config *cfg = cli_load_config(file);
    if (cfg == NULL)
        return EXIT_USAGE;
    char summary[128];
    config_summary(cfg, summary, sizeof summary);
    printf("ok: %s\n", summary);
    fflush(stdout);
    int rc = live ? cli_check_live(cfg, cli_config_name(file)) : 0;
    config_free(cfg);
    return rc;
}

/* One "invalid config" log line per problem. */
static void log_problems(const char *file, const config_error *error)
{
    logger_t lg;
    logger_init(&lg, CONFIG_LOG_INFO);
    for (size_t i = 0; i < error->count; i++) {
        char line[CONFIG_ERROR_SIZE + CFG_PATH_SIZE + CONFIG_REASON_SIZE];
        config_problem_format(error, i, cli_config_name(file), line, sizeof line);
        log_msg(&lg, CONFIG_LOG_ERROR, "invalid config", line);
    }
    if (error->truncated)
        log_msg(&lg, CONFIG_LOG_ERROR, "invalid config", "(more errors not shown)");
}

static int run_gateway(const char *file)
{
    config *cfg = NULL;
    config_error error;
    int rc = file != NULL ? config_load_file(file, NULL, &cfg, &error)
                          : config_load_default(&cfg, &error);
    if (rc != 0) {
        log_problems(file, &error);
        return EXIT_USAGE;
    }
    return gateway_run(cfg) == 0 ? 0 : EXIT_RUNTIME;
}

static subcommand_fn *find_subcommand(const char *name)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(name, subcommands[i].name) == 0)
            return subcommands[i].run;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        subcommand_fn *subcommand = find_subcommand(argv[1]);
        if (subcommand != NULL)
            return subcommand(argc - 1, argv + 1);
    }
    options opts = {0};
    int rc = parse_options(argc, argv, &opts);
    if (rc != 0)
        return rc;
    if (opts.help) {
        fputs(usage_text, stdout);
        fputs(help_text, stdout);
        return 0;
    }
    if (opts.version) {
        printf("patterngate %s\n", PG_VERSION);
        return 0;
    }
    const char *file = cli_config_file(opts.config_file);
    if (opts.live && !opts.check)
        return bad_usage("%s goes with --check", "--live");
    return opts.check ? run_check(file, opts.live) : run_gateway(file);
}
