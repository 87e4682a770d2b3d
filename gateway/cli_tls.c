/* The options `call`, `emit` and `scaffold` share (gateway/cli.h). */
#include <stdlib.h>
#include <string.h>

#include "gateway/cli.h"

static bool is_valued(const char *opt)
{
    return strcmp(opt, "--tls-ca") == 0 || strcmp(opt, "--tls-cert") == 0 || strcmp(opt, "--tls-key") == 0 ||
           strcmp(opt, "--servername") == 0;
}

int cli_tls_option(int argc, char **argv, int *i, cli_tls_t *t)
{
    const char *opt = argv[*i];
    if (strcmp(opt, "--insecure") == 0) {
        t->opts.verify = 0;
        t->on = true;
        return 1;
    }
    if (!is_valued(opt))
        return 0;
    if (*i + 1 >= argc)
        return -1;
    const char *value = argv[++*i];
    if (strcmp(opt, "--tls-ca") == 0)
        t->opts.ca_file = value;
    else if (strcmp(opt, "--tls-cert") == 0)
        t->opts.cert_file = value;
    else if (strcmp(opt, "--tls-key") == 0)
        t->opts.key_file = value;
    else
        t->servername = value;
    t->on = true;
    return 1;
}

const char *cli_tls_problem(const cli_tls_t *t)
{
    if ((t->opts.cert_file == NULL) != (t->opts.key_file == NULL))
        return "--tls-cert and --tls-key go together";
    return NULL;
}

int cli_parse_timeout(const char *text, uint32_t *ms)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (*text == 0 || *end || v == 0 || v > 86400000UL)
        return -1;
    *ms = (uint32_t)v;
    return 0;
}
