/*
 * edge: see edge.h.
 */
#include "gateway/edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct edge {
    cors_policy_t top;          /* valid when has_top */
    bool has_top;
    bool any_cors;              /* the top level or a route has a policy */
    cors_policy_t *own;         /* [route_count]: routes with their own cors */
    edge_route_t *routes;       /* [route_count] */
    char **scopes;              /* [route_count]: NULL unless limited */
    size_t route_count;
};

static int compile_route(edge_t *e, const config *cfg, size_t i)
{
    const config_route *route = &cfg->routes[i];
    edge_route_t *er = &e->routes[i];
    if (route->cors != NULL) {
        if (cors_policy_init(&e->own[i], route->cors) != 0)
            return -1;
        er->cors = &e->own[i];
        e->any_cors = true;
    } else {
        er->cors = e->has_top ? &e->top : NULL;
    }
    const config_rate_limit *limit = route->rate_limit;
    if (limit == NULL)
        return 0;
    const char *method = config_method_name(route->method);
    size_t n = strlen(method) + 1 + strlen(route->path.text) + 1;
    if ((e->scopes[i] = malloc(n)) == NULL || ratekey_parse(limit->key, &route->path, &er->key) != 0)
        return -1;
    snprintf(e->scopes[i], n, "%s %s", method, route->path.text);
    er->scope = span_cstr(e->scopes[i]);
    er->rule = (ratelimit_rule_t){ limit->rps, limit->burst };
    er->limited = true;
    return 0;
}

edge_t *edge_new(const config *cfg)
{
    edge_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    size_t n = cfg->route_count;
    e->route_count = n;
    e->own = calloc(n + 1, sizeof *e->own);
    e->routes = calloc(n + 1, sizeof *e->routes);
    e->scopes = calloc(n + 1, sizeof *e->scopes);
    int failed = e->own == NULL || e->routes == NULL || e->scopes == NULL;
    if (!failed && cfg->cors != NULL) {
        failed = cors_policy_init(&e->top, cfg->cors) != 0;
        e->has_top = !failed;
        e->any_cors = e->has_top;
    }
    for (size_t i = 0; i < n && !failed; i++)
        failed = compile_route(e, cfg, i) != 0;
    if (failed) {
        edge_free(e);
        return NULL;
    }
    return e;
}

void edge_free(edge_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->route_count; i++) {
        if (e->own)
            cors_policy_free(&e->own[i]);
        if (e->routes)
            ratekey_free(&e->routes[i].key);
        if (e->scopes)
            free(e->scopes[i]);
    }
    cors_policy_free(&e->top);
    free(e->own);
    free(e->routes);
    free(e->scopes);
    free(e);
}

const cors_policy_t *edge_top_cors(const edge_t *e)
{
    return e->has_top ? &e->top : NULL;
}

bool edge_has_cors(const edge_t *e)
{
    return e->any_cors;
}

const edge_route_t *edge_route(const edge_t *e, size_t i)
{
    return &e->routes[i];
}
