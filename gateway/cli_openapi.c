/*
 * `patterngate openapi [-c FILE]` (SPEC.md "Describing the API"): prints
 * the OpenAPI 3.1 document of the config's routes (gateway/openapi.h),
 * indented, on stdout. The config is -c FILE, else $PATTERNGATE_CONFIG,
 * else the embedded default, as when serving. Exit 0; 2 for bad usage or a
 * config that does not load (its problems listed); 1 when out of memory or
 * stdout cannot be written.
 */
#include "gateway/cli.h"
#include "gateway/openapi.h"

#include <stdio.h>
#include <string.h>

#define OPENAPI_USAGE "usage: patterngate openapi [-c FILE]\n"

static int openapi_usage(const char *problem, const char *detail)
{
    fputs("patterngate openapi: ", stderr);
    fprintf(stderr, problem, detail);
    fputc('\n', stderr);
    fputs(OPENAPI_USAGE, stderr);
    return 2;
}

static int openapi_help(void)
{
    fputs(OPENAPI_USAGE
          "\n"
          "Prints the OpenAPI 3.1 document (JSON) of the config's routes, and of the\n"
          "generic API where it is on: what the admin API serves as /openapi.json.\n"
          "\n"
          "  -c, --config FILE  the config; default: $PATTERNGATE_CONFIG when set and\n"
          "                     non-empty, else the built-in config\n"
          "  -h, --help         print this help and exit\n",
          stdout);
    return 0;
}

static int print_document(const config *cfg)
{
    buf_t out = BUF_INIT;
    int rc = openapi_write(cfg, 2, &out);
    if (rc == 0 && (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0))
        rc = -1;
    buf_free(&out);
    if (rc != 0)
        fputs(rc == -1 ? "patterngate openapi: cannot write to stdout\n" : "patterngate openapi: out of memory\n",
              stderr);
    return rc == 0 ? 0 : 1;
}

int cli_openapi(int argc, char **argv)
{
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int with_config = cli_config_option(argc, argv, &i, &config_file);
        if (with_config < 0)
            return openapi_usage("option %s needs a FILE", arg);
        if (with_config > 0)
            continue;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return openapi_help();
        return openapi_usage(arg[0] == '-' ? "unknown option '%.100s'" : "unexpected argument '%.100s'", arg);
    }
    config *cfg = cli_load_config(cli_config_file(config_file));
    if (cfg == NULL)
        return 2;
    int rc = print_document(cfg);
    config_free(cfg);
    return rc;
}
