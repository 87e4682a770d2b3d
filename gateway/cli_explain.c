/*
 * `patterngate explain [-c FILE] METHOD PATH [BODY] [-H "Name: value"]...`
 * (SPEC.md "Operating it"): a dry run of one request through the config,
 * with no network: which route it matches, which service gets it, with
 * which pattern, and the exact packet data; or the 4xx the gateway would
 * answer. PATH may carry its query string, or be a whole URL.
 *
 * It decides the way the gateway does (proxy.c), with the same pure
 * modules: the admin paths, the bearer token, the generic API, the router,
 * the body limit, the templates.
 *
 *   exit 0  the request would go to a service (or to the admin API)
 *   exit 1  it would be answered with an error (status and body printed)
 *   exit 2  bad usage or config
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/urlcode.h"
#include "gateway/admin.h"
#include "gateway/cli.h"
#include "gateway/errors.h"
#include "gateway/generic.h"
#include "gateway/proxy.h"
#include "gateway/render.h"
#include "gateway/router.h"

#define EXPLAIN_USAGE "usage: patterngate explain [-c FILE] METHOD PATH [BODY] [-H \"Name: value\"]...\n"
#define MAX_HEADERS 64

typedef struct request {
    const char *method;
    char *path;                 /* raw, without the query */
    const char *query;          /* raw, after '?'; "" for none */
    const char *body;
    const char *headers[MAX_HEADERS]; /* "Name: value" */
    size_t n_headers;
} request_t;

static int usage(const char *problem)
{
    fprintf(stderr, "patterngate explain: %s\n" EXPLAIN_USAGE, problem);
    return 2;
}

static int help(void)
{
    fputs(EXPLAIN_USAGE
          "\n"
          "Shows what the gateway would do with one request, without sending anything:\n"
          "the route it matches, the service, the pattern and the exact packet data; or\n"
          "the error it would answer (status and body, exit 1).\n"
          "\n"
          "  METHOD           GET, POST, ...\n"
          "  PATH             the path with its query string (/users/7?full=true), or a\n"
          "                   whole URL (http://host:8080/users/7)\n"
          "  BODY             the request body (default: none)\n"
          "  -H \"Name: value\" a request header (repeat for several)\n"
          "  -c, --config FILE\n"
          "                   the config (default: $PATTERNGATE_CONFIG, else the built-in one)\n"
          "  -h, --help       print this help and exit\n"
          "\n"
          "Exit codes: 0 it goes to a service (or the admin API), 1 it is answered with an\n"
          "error, 2 bad usage or config.\n",
          stdout);
    return 0;
}

/* "Name" of header line i matches name (case-insensitive): its value. */
static const char *header_value(const request_t *rq, const char *name, size_t len)
{
    for (size_t i = 0; i < rq->n_headers; i++) {
        const char *h = rq->headers[i], *colon = strchr(h, ':');
        if (!colon || (size_t)(colon - h) != len || strncasecmp(h, name, len) != 0)
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        return v;
    }
    return NULL;
}

static render_lookup_result lookup_header(void *ctx, const char *name, size_t len, span_t *value)
{
    const char *v = header_value(ctx, name, len);
    if (!v)
        return RENDER_LOOKUP_ABSENT;
    *value = span_cstr(v);
    return RENDER_LOOKUP_FOUND;
}

/* The answer the gateway would give instead of a packet. */
static int answer(gw_error_t e, const char *message)
{
    buf_t body = BUF_INIT;
    gw_error_body(&body, e, message, span_of(NULL, 0));
    printf("status: %d\nbody: %.*s\n", gw_error_status(e), (int)body.len, body.data ? body.data : "");
    buf_free(&body);
    return 1;
}

static int print_packet(const char *route, const char *service, const char *kind, const char *reply,
                        span_t pattern, span_t data)
{
    printf("route: %s\nservice: %s\nkind: %s\n", route, service, kind);
    if (reply)
        printf("reply: %s\n", reply);
    printf("pattern: %.*s\ndata: %.*s\n", (int)pattern.n, pattern.p, (int)data.n, data.p);
    return 0;
}

static int explain_generic(const config *cfg, const request_t *rq, int kind, span_t name, router_match_t *m)
{
    if (kind == GENERIC_PATH_BAD || kind < 0)
        return answer(kind < 0 ? GW_ERR_OVERLOADED : GW_ERR_BAD_REQUEST, kind < 0 ? "out of memory" : m->error);
    const config_service *svc = NULL;
    for (size_t i = 0; i < cfg->service_count; i++)
        if (cfg->services[i].generic_api && span_eq_cstr(name, cfg->services[i].name))
            svc = &cfg->services[i];
    if (!svc)
        return answer(GW_ERR_NOT_FOUND, "no such service for the generic API");
    if (strcmp(rq->method, "POST") != 0)
        return answer(GW_ERR_METHOD_NOT_ALLOWED, "the generic API takes POST");
    int is_emit = kind == GENERIC_PATH_EMIT;
    config_reply_mode reply = CONFIG_REPLY_AUTO;
    char why[RENDER_ERROR_SIZE];
    buf_t value = BUF_INIT;
    int found = urlcode_query_get(rq->query, strlen(rq->query), "reply", 5, &value);
    buf_append(&value, "", 1);
    int bad = !is_emit && generic_parse_reply(found == 1 ? value.data : NULL, &reply, why, sizeof why);
    buf_free(&value);
    if (bad)
        return answer(GW_ERR_BAD_REQUEST, why);
    if (strlen(rq->body) > cfg->limits.max_body_bytes)
        return answer(GW_ERR_PAYLOAD_TOO_LARGE, NULL);
    span_t pattern, data;
    if (generic_parse_body(span_cstr(rq->body), &pattern, &data, why, sizeof why))
        return answer(GW_ERR_BAD_REQUEST, why);
    return print_packet("generic", svc->name, is_emit ? "emit" : "send",
                        is_emit ? NULL : config_reply_mode_name(reply), pattern, data);
}

static int explain_route(const config *cfg, const router_t *router, const request_t *rq, router_match_t *m)
{
    switch (router_match(router, rq->method, rq->path, m)) {
    case ROUTER_FOUND:
        break;
    case ROUTER_METHOD_NOT_ALLOWED:
        printf("allow: %s\n", m->allow);
        return answer(GW_ERR_METHOD_NOT_ALLOWED, NULL);
    case ROUTER_BAD_PATH:
        return answer(GW_ERR_BAD_REQUEST, m->error);
    case ROUTER_NO_MEMORY:
        return answer(GW_ERR_OVERLOADED, "out of memory");
    default:
        return answer(GW_ERR_NOT_FOUND, NULL);
    }
    const config_route *route = m->route;
    if (strlen(rq->body) > cfg->limits.max_body_bytes)
        return answer(GW_ERR_PAYLOAD_TOO_LARGE, NULL);
    char why[RENDER_ERROR_SIZE];
    span_t body = span_cstr(rq->body), data;
    if (route->data.uses_body && render_check_body(body, why, sizeof why))
        return answer(GW_ERR_BAD_REQUEST, why);
    buf_t rendered = BUF_INIT;
    render_query q = { .raw = rq->query, .length = strlen(rq->query) };
    int rc = 0;
    if (!render_whole_body(&route->data, body, &data)) {
        render_input_t in = { .body = body, .captures = m->captures, .capture_count = m->capture_count,
                              .query = render_query_lookup, .query_context = &q,
                              .header = lookup_header, .header_context = (void *)rq };
        rc = render_template(&route->data, &in, &rendered, why, sizeof why);
        data = span_of(rendered.data ? rendered.data : "", rendered.len);
    }
    char name[512];
    snprintf(name, sizeof name, "%s %s", config_method_name(route->method), route->path.text);
    if (rc == 0 && strcmp(rq->method, "HEAD") == 0 &&
        (route->reply == CONFIG_REPLY_NDJSON || route->reply == CONFIG_REPLY_SSE) && route->kind == CONFIG_ROUTE_SEND) {
        printf("route: %s\nservice: %s\nhead: HEAD on a stream route is answered with the stream's head "
               "alone (no packet)\n", name, cfg->services[route->service_index].name);
        buf_free(&rendered);
        buf_free(&q.value);
        return 0;
    }
    int result = rc ? answer(rc == -1 ? GW_ERR_BAD_REQUEST : GW_ERR_OVERLOADED, rc == -1 ? why : "out of memory")
                    : print_packet(name, cfg->services[route->service_index].name,
                                   config_route_kind_name(route->kind),
                                   route->kind == CONFIG_ROUTE_EMIT ? NULL : config_reply_mode_name(route->reply),
                                   span_of(route->pattern_json, route->pattern_length), data);
    buf_free(&rendered);
    buf_free(&q.value);
    return result;
}

static int explain(const config *cfg, const request_t *rq)
{
    if (!cfg->has_admin_listen && admin_is_path(rq->path)) {
        if (!admin_is_probe(rq->path) && !proxy_bearer_ok(cfg, header_value(rq, "Authorization", 13)))
            return answer(GW_ERR_UNAUTHORIZED, NULL);
        printf("route: admin\nadmin: %s is answered by the gateway's admin API (no packet)\n", rq->path);
        return 0;
    }
    if (!proxy_bearer_ok(cfg, header_value(rq, "Authorization", 13)))
        return answer(GW_ERR_UNAUTHORIZED, NULL);
    router_t *router = router_new(cfg);
    router_match_t m;
    router_match_init(&m);
    span_t name;
    int kind = router ? generic_match_path(rq->path, &m, &name) : -1;
    int rc = kind != GENERIC_PATH_NONE ? explain_generic(cfg, rq, kind, name, &m) : explain_route(cfg, router, rq, &m);
    router_match_free(&m);
    router_free(router);
    return rc;
}

/* PATH or URL into path and query: "http://h:1/a?b" -> "/a", "b". */
static int split_target(const char *target, request_t *rq)
{
    const char *p = target, *scheme = strstr(target, "://");
    if (scheme && strchr(target, '/') > scheme) {
        p = strchr(scheme + 3, '/');
        if (!p)
            p = "/";
    }
    if (*p != '/')
        return -1;
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    const char *hash = memchr(p, '#', n);
    if (hash)
        n = (size_t)(hash - p);
    rq->path = strndup(p, n);
    rq->query = q ? q + 1 : "";
    return rq->path ? 0 : -1;
}

static int parse_args(int argc, char **argv, request_t *rq, const char **file, const char **target)
{
    const char *positional[3] = { NULL, NULL, NULL };
    int np = 0;
    for (int i = 1; i < argc; i++) { /* argv[0] is "explain" */
        const char *arg = argv[i];
        int with_config = cli_config_option(argc, argv, &i, file);
        if (with_config < 0)
            return usage("-c needs a FILE");
        if (with_config > 0)
            continue;
        if (strcmp(arg, "-H") == 0 || strcmp(arg, "--header") == 0) {
            if (i + 1 >= argc || !strchr(argv[i + 1], ':'))
                return usage("-H needs \"Name: value\"");
            if (rq->n_headers == MAX_HEADERS)
                return usage("too many headers");
            rq->headers[rq->n_headers++] = argv[++i];
        } else if (arg[0] == '-' && arg[1] != '\0') {
            char problem[300];
            snprintf(problem, sizeof problem, "unknown option '%.250s'", arg);
            return usage(problem);
        } else if (np < 3) {
            positional[np++] = arg;
        } else {
            return usage("too many arguments");
        }
    }
    if (np < 2)
        return usage("METHOD and PATH are required");
    rq->method = positional[0];
    *target = positional[1];
    rq->body = positional[2] ? positional[2] : "";
    return 0;
}

int cli_explain(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return help();
    request_t rq = { 0 };
    const char *file = NULL, *target = NULL;
    int rc = parse_args(argc, argv, &rq, &file, &target);
    if (rc)
        return rc;
    if (split_target(target, &rq))
        return usage("PATH must start with / (or be a whole http:// URL)");
    config *cfg = cli_load_config(cli_config_file(file));
    if (!cfg) {
        free(rq.path);
        return 2;
    }
    rc = explain(cfg, &rq);
    config_free(cfg);
    free(rq.path);
    return rc;
}
