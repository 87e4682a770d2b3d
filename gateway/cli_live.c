/*
 * The command line's questions to running services (gateway/live.h):
 * `--check --live` and `scaffold HOST:PORT` (contracts in gateway/cli.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "gateway/cli.h"
#include "gateway/live.h"
#include "gateway/scaffold.h"

#define LIVE_TIMEOUT_MS 5000
#define SCAFFOLD_SERVICE "app"

/* ---- --check --live ---------------------------------------------------- */

static const char *kind_name(bool is_event)
{
    return is_event ? "emit" : "send";
}

/* Reports the routes of service `si`; returns how many are wrong. */
static size_t check_routes(const config *cfg, size_t si, const live_report_t *r, const char *file)
{
    size_t wrong = 0;
    for (size_t i = 0; i < cfg->route_count; i++) {
        const config_route *route = &cfg->routes[i];
        if (route->service_index != si)
            continue;
        const live_handler_t *h = live_find(r, route->pattern_json);
        bool is_event = route->kind == CONFIG_ROUTE_EMIT;
        if (h && h->is_event == is_event)
            continue;
        wrong++;
        fprintf(stderr, "patterngate: %s: routes[%zu] (%s %s): ", file, i, config_method_name(route->method),
                route->path.text);
        if (!h)
            fprintf(stderr, "service %s has no handler for the pattern %s\n", cfg->services[si].name,
                    route->pattern_json);
        else
            fprintf(stderr, "the pattern %s is an %s handler of service %s, the route is kind %s\n",
                    route->pattern_json, is_event ? "@MessagePattern" : "@EventPattern", cfg->services[si].name,
                    kind_name(is_event));
    }
    return wrong;
}

int cli_check_live(const config *cfg, const char *file)
{
    live_report_t *reports = live_ask_config(cfg, LIVE_TIMEOUT_MS);
    if (!reports) {
        fprintf(stderr, "patterngate: out of memory\n");
        return 1;
    }
    size_t wrong = 0, unreachable = 0;
    for (size_t si = 0; si < cfg->service_count; si++) {
        const live_report_t *r = &reports[si];
        const char *name = cfg->services[si].name;
        switch (r->status) {
        case LIVE_LISTED:
            printf("live: service %s: %zu handlers\n", name, r->n);
            wrong += check_routes(cfg, si, r, file);
            break;
        case LIVE_NO_MODULE:
            printf("live: warning: service %s has no patterngate-nest module: its routes are not checked\n",
                   name);
            break;
        case LIVE_UNREACHABLE:
            unreachable++;
            fprintf(stderr, "patterngate: %s: services.%s: could not ask for its handlers: %s\n", file, name,
                    r->detail);
            break;
        }
    }
    live_reports_free(reports, cfg->service_count);
    fflush(stdout);
    return wrong ? 2 : unreachable ? 1 : 0;
}

/* ---- scaffold ----------------------------------------------------------- */

#define SCAFFOLD_USAGE                                                                                   \
    "usage: patterngate scaffold [--tls-ca F] [--tls-cert F --tls-key F] [--servername N] [--insecure]\n" \
    "       [--timeout MS] [--name NAME] HOST:PORT\n"

static int scaffold_usage(const char *problem)
{
    fprintf(stderr, "patterngate scaffold: %s\n", problem);
    fputs(SCAFFOLD_USAGE, stderr);
    return 2;
}

static int scaffold_help(void)
{
    fputs(SCAFFOLD_USAGE, stdout);
    fputs("\n"
          "Asks the Nest service at HOST:PORT for its message and event handlers (it must\n"
          "import the patterngate-nest module) and prints a config with one route per\n"
          "handler: a POST whose body is the pattern's data. String patterns become paths\n"
          "('orders.get' -> /orders/get), object patterns their members in order\n"
          "({\"cmd\":\"sum\"} -> /cmd/sum); event handlers get kind emit. Save it, edit it,\n"
          "check it with `patterngate --check --live -c FILE`.\n"
          "\n"
          "  --name NAME      the service's name in the config (default \"" SCAFFOLD_SERVICE "\")\n"
          "  --timeout MS     give up after MS milliseconds (default 5000)\n"
          "  --tls-ca F, --tls-cert F, --tls-key F, --servername N, --insecure\n"
          "                   connect with TLS, as `patterngate call --help` says; the\n"
          "                   config gets the same TLS settings, file paths made absolute\n"
          "  -h, --help       print this help and exit\n"
          "\n"
          "Exit codes: 0 success, 1 the service could not be asked or lacks the module,\n"
          "2 bad usage.\n",
          stdout);
    return 0;
}

/* A TLS file path as the config should hold it: absolute, since the
 * config resolves relative paths against its own folder. */
static json_t *absolute_path(const char *file)
{
    char *real = realpath(file, NULL);
    json_t *s = json_string(real ? real : file);
    free(real);
    return s;
}

static json_t *service_tls(const cli_tls_t *tls)
{
    json_t *t = json_object();
    if (tls->opts.ca_file)
        json_object_set_new(t, "ca", absolute_path(tls->opts.ca_file));
    if (tls->opts.cert_file)
        json_object_set_new(t, "cert", absolute_path(tls->opts.cert_file));
    if (tls->opts.key_file)
        json_object_set_new(t, "key", absolute_path(tls->opts.key_file));
    if (tls->servername)
        json_object_set_new(t, "servername", json_string(tls->servername));
    if (!tls->opts.verify)
        json_object_set_new(t, "verify", json_false());
    return t;
}

/* Whether a route of `routes` (a JSON array) has the path. */
static bool taken_in(const void *routes, const char *path)
{
    size_t i;
    json_t *route;
    json_array_foreach ((json_t *)routes, i, route) {
        if (strcmp(json_string_value(json_object_get(route, "path")), path) == 0)
            return true;
    }
    return false;
}

static json_t *scaffold_config(const live_report_t *r, const char *address, const char *service,
                               const cli_tls_t *tls)
{
    json_t *svc = json_pack("{s:[s]}", "endpoints", address);
    if (tls->on)
        json_object_set_new(svc, "tls", service_tls(tls));
    json_t *routes = json_array();
    buf_t path = BUF_INIT;
    for (size_t i = 0; i < r->n; i++) {
        if (scaffold_path(r->handlers[i].pattern, service, taken_in, routes, &path) != 0)
            break;
        json_t *route = json_pack("{s:s,s:s,s:s,s:O}", "method", "POST", "path", path.data, "service", service,
                                  "pattern", r->handlers[i].pattern);
        if (r->handlers[i].is_event)
            json_object_set_new(route, "kind", json_string("emit"));
        json_array_append_new(routes, route);
    }
    buf_free(&path);
    return json_pack("{s:s,s:{s:o},s:o}", "listen", "127.0.0.1:8080", "services", service, svc, "routes",
                     routes);
}

/* Prints the config with each top-level member, service and route on one
 * line: a file meant to be read and edited by hand. */
static int print_config(const json_t *cfg)
{
    const size_t flags = JSON_INDENT(0) | JSON_ENCODE_ANY;
    char *listen = json_dumps(json_object_get(cfg, "listen"), flags);
    char *services = json_dumps(json_object_get(cfg, "services"), flags);
    if (!listen || !services) {
        free(listen);
        free(services);
        return -1;
    }
    printf("{\n  \"listen\": %s,\n  \"services\": %s,\n  \"routes\": [\n", listen, services);
    free(listen);
    free(services);
    const json_t *routes = json_object_get(cfg, "routes");
    size_t i;
    json_t *route;
    json_array_foreach ((json_t *)routes, i, route) {
        char *text = json_dumps(route, flags);
        if (!text)
            return -1;
        printf("    %s%s\n", text, i + 1 < json_array_size(routes) ? "," : "");
        free(text);
    }
    printf("  ]\n}\n");
    return fflush(stdout) == 0 ? 0 : -1;
}

static bool valid_service_name(const char *name)
{
    return *name && strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == strlen(name);
}

int cli_scaffold(int argc, char **argv)
{
    uint32_t timeout_ms = LIVE_TIMEOUT_MS;
    cli_tls_t tls = CLI_TLS_INIT;
    const char *service = SCAFFOLD_SERVICE;
    int i = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *opt = argv[i];
        char problem[160];
        int tls_option = cli_tls_option(argc, argv, &i, &tls);
        if (tls_option > 0)
            continue;
        bool valued = strcmp(opt, "--timeout") == 0 || strcmp(opt, "--name") == 0;
        if (tls_option < 0 || (valued && i + 1 >= argc)) {
            snprintf(problem, sizeof problem, "option %s needs a value", opt);
            return scaffold_usage(problem);
        }
        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        } else if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            return scaffold_help();
        } else if (strcmp(opt, "--timeout") == 0) {
            if (cli_parse_timeout(argv[++i], &timeout_ms))
                return scaffold_usage("--timeout takes milliseconds, 1 to 86400000");
        } else if (strcmp(opt, "--name") == 0) {
            service = argv[++i];
            if (!valid_service_name(service))
                return scaffold_usage("--name takes a service name: letters, digits, '_', '.', '-'");
        } else {
            snprintf(problem, sizeof problem, "unknown option '%.100s'", opt);
            return scaffold_usage(problem);
        }
    }
    if (argc - i != 1)
        return scaffold_usage("expected HOST:PORT");
    if (cli_tls_problem(&tls))
        return scaffold_usage(cli_tls_problem(&tls));
    const char *address = argv[i];

    live_report_t r;
    if (live_ask_address(address, tls.on ? &tls.opts : NULL, tls.servername, timeout_ms, &r) != 0) {
        live_report_free(&r);
        return scaffold_usage(r.detail);
    }
    int rc = 1;
    if (r.status == LIVE_UNREACHABLE) {
        fprintf(stderr, "patterngate scaffold: %s: could not ask for its handlers: %s\n", address, r.detail);
    } else if (r.status == LIVE_NO_MODULE) {
        fprintf(stderr,
                "patterngate scaffold: %s has no handler for %s: import the patterngate-nest module into the "
                "app (see nest/README.md)\n",
                address, LIVE_PATTERN);
    } else {
        json_t *cfg = scaffold_config(&r, address, service, &tls);
        rc = cfg && print_config(cfg) == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "patterngate scaffold: out of memory\n");
        json_decref(cfg);
    }
    live_report_free(&r);
    return rc;
}
