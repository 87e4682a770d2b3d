/* The config as the command line names and loads it (contract in cli.h). */
#include "gateway/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_config_option(int argc, char **argv, int *i, const char **file)
{
    static const char long_form[] = "--config";
    const char *arg = argv[*i];
    size_t n = sizeof long_form - 1;
    if (strncmp(arg, long_form, n) == 0 && arg[n] == '=') {
        *file = arg + n + 1;
        return **file != '\0' ? 1 : -1;
    }
    if (strcmp(arg, "-c") != 0 && strcmp(arg, long_form) != 0)
        return 0;
    if (*i + 1 >= argc || argv[*i + 1][0] == '\0') {
        *file = NULL;
        return -1;
    }
    *file = argv[++*i];
    return 1;
}

const char *cli_config_file(const char *option)
{
    if (option != NULL)
        return option;
    const char *from_env = getenv("PATTERNGATE_CONFIG");
    return from_env != NULL && from_env[0] != '\0' ? from_env : NULL;
}

const char *cli_config_name(const char *file)
{
    return file != NULL ? file : "<default>";
}

config *cli_load_config(const char *file)
{
    config *cfg = NULL;
    config_error error;
    int rc = file != NULL ? config_load_file(file, NULL, &cfg, &error)
                          : config_load_default(&cfg, &error);
    if (rc == 0)
        return cfg;
    for (size_t i = 0; i < error.count; i++) {
        char line[CONFIG_ERROR_SIZE + CFG_PATH_SIZE + CONFIG_REASON_SIZE];
        config_problem_format(&error, i, cli_config_name(file), line, sizeof line);
        fprintf(stderr, "patterngate: %s\n", line);
    }
    if (error.truncated)
        fputs("patterngate: (more errors not shown)\n", stderr);
    return NULL;
}
