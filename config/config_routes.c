/* The `routes` part of the config loader (see config_reader.h). */
#include "config/config_reader.h"
#include "core/defaults.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const route_keys[] = {
    "method", "path", "service", "pattern", "kind", "data", "reply", "timeout_ms",
    "status", "retries", "fanout", "auth", "require_claims", "cors", "rate_limit",
    "summary", "description", "tags", "request_schema", "response_schema", NULL,
};
static const char *const admin_paths[] = {"healthz", "readyz", "status", "metrics", "openapi.json",
                                          "docs"};

static const cfg_int_rule status_rule = {200, 299, "an integer from 200 to 299", false};
static const cfg_int_rule retries_rule = {0, PG_MAX_RETRIES, "an integer from 0 to 5", false};

/* ---- one route ----------------------------------------------------------- */

static const json_t *required_member(cfg_loader *l, const json_t *object, const char *key)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        cfg_fail_at(l, key, "required");
    return value;
}

static int load_method(cfg_loader *l, const json_t *object, config_route *route)
{
    int method = 0;
    if (required_member(l, object, "method") == NULL ||
        cfg_read_enum(l, object, "method", cfg_method_names, CFG_COUNT_OF(cfg_method_names),
                      &method) != 0)
        return -1;
    route->method = (config_method)method;
    return 0;
}

static int load_path(cfg_loader *l, const json_t *object, config_route *route)
{
    const json_t *value = required_member(l, object, "path");
    if (value == NULL)
        return -1;
    if (!json_is_string(value))
        return cfg_fail_at(l, "path", "expected a string starting with '/'");
    char reason[CFG_REASON_SIZE];
    if (route_path_parse(json_string_value(value), &route->path, reason, sizeof reason) != 0)
        return cfg_fail_at(l, "path", "%s", reason);
    return 0;
}

/* Sets route->service_index; -1 (recorded) when the service is unknown. */
static int load_service_ref(cfg_loader *l, const json_t *object, config_route *route)
{
    const json_t *value = required_member(l, object, "service");
    if (value == NULL)
        return -1;
    if (!json_is_string(value))
        return cfg_fail_at(l, "service", "expected a service name");
    const config_service *service =
        config_find_service(l->cfg, json_string_value(value), json_string_length(value));
    if (service == NULL)
        return cfg_fail_unknown_service(l, "service", json_string_value(value));
    route->service_index = (size_t)(service - l->cfg->services);
    return 0;
}

static int load_pattern(cfg_loader *l, const json_t *object, config_route *route)
{
    const json_t *value = required_member(l, object, "pattern");
    if (value == NULL)
        return -1;
    route->pattern_json = template_encode_json(value);
    if (route->pattern_json == NULL)
        return cfg_fail_memory(l);
    route->pattern_length = strlen(route->pattern_json);
    return 0;
}

static int load_kind_and_reply(cfg_loader *l, const json_t *object, config_route *route)
{
    int kind = CONFIG_ROUTE_SEND;
    int reply = CONFIG_REPLY_AUTO;
    int rc = cfg_read_enum(l, object, "kind", cfg_route_kind_names,
                           CFG_COUNT_OF(cfg_route_kind_names), &kind);
    route->kind = (config_route_kind)kind;
    if (rc == 0 && route->kind == CONFIG_ROUTE_EMIT && json_object_get(object, "reply") != NULL)
        return cfg_fail_at(l, "reply", "not allowed on an emit route (events have no reply)");
    rc |= cfg_read_enum(l, object, "reply", cfg_reply_names, CFG_COUNT_OF(cfg_reply_names),
                        &reply);
    route->reply = (config_reply_mode)reply;
    int fanout = CONFIG_FANOUT_ONE;
    int fanout_rc = cfg_read_enum(l, object, "fanout", cfg_fanout_names, 2, &fanout);
    if (fanout_rc == 0 && rc == 0 && fanout == CONFIG_FANOUT_ALL && route->kind != CONFIG_ROUTE_EMIT)
        fanout_rc = cfg_fail_at(l, "fanout", "\"all\" is for emit routes only (a request has one reply)");
    rc |= fanout_rc;
    route->fanout = (config_fanout)fanout;
    rc |= cfg_read_unsigned(l, object, "retries", &retries_rule, &route->retries);
    return rc;
}

/* The default timeout is the service's: with an unknown service
 * (service_known false) the value is still checked. */
static int load_timeout_and_status(cfg_loader *l, const json_t *object, config_route *route,
                                   bool service_known)
{
    if (service_known)
        route->timeout_ms = l->cfg->services[route->service_index].timeout_ms;
    route->status = route->kind == CONFIG_ROUTE_EMIT ? 202 : 200;
    int rc = cfg_read_integer(l, object, "timeout_ms", &cfg_positive_ms, &route->timeout_ms);
    rc |= cfg_read_unsigned(l, object, "status", &status_rule, &route->status);
    return rc;
}

static int load_data(cfg_loader *l, const json_t *object, config_route *route)
{
    const json_t *value = json_object_get(object, "data");
    json_t *fallback = NULL;
    route->data_default = value == NULL;
    if (value == NULL) {
        fallback = json_string("$body");
        if (fallback == NULL)
            return cfg_fail_memory(l);
        value = fallback;
    }
    char reason[CFG_REASON_SIZE];
    size_t mark = cfg_path_push_key(&l->path, "data");
    int rc = template_compile(value, &route->path, &l->path, &route->data, reason, sizeof reason);
    json_decref(fallback);
    if (rc != 0)
        cfg_fail(l, "%s", reason);
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* ---- how the route is described (OpenAPI; no behaviour) ------------------ */

static int read_text(cfg_loader *l, const json_t *object, const char *key, char **out)
{
    const char *text = NULL;
    if (cfg_read_string(l, object, key, &text) != 0)
        return -1;
    if (text != NULL && (*out = cfg_strdup(l, text)) == NULL)
        return -1;
    return 0;
}

static int load_tags(cfg_loader *l, const json_t *object, config_route *route)
{
    const json_t *tags = json_object_get(object, "tags");
    if (tags == NULL)
        return 0;
    if (!json_is_array(tags))
        return cfg_fail_at(l, "tags", "expected an array of non-empty strings");
    route->tags = cfg_calloc(l, json_array_size(tags), sizeof *route->tags);
    if (route->tags == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, "tags");
    size_t index;
    json_t *tag;
    int rc = 0;
    json_array_foreach (tags, index, tag) {
        size_t inner = cfg_path_push_index(&l->path, index);
        if (!json_is_string(tag) || json_string_length(tag) == 0)
            rc |= cfg_fail(l, "expected a non-empty string");
        else if ((route->tags[route->tag_count] = cfg_strdup(l, json_string_value(tag))) != NULL)
            route->tag_count++;
        else
            rc = -1;
        cfg_path_pop(&l->path, inner);
    }
    cfg_path_pop(&l->path, mark);
    return rc;
}

/* A JSON Schema object, kept as compact JSON text. */
static int read_schema(cfg_loader *l, const json_t *object, const char *key, char **out)
{
    const json_t *value = json_object_get(object, key);
    if (value == NULL)
        return 0;
    if (!json_is_object(value))
        return cfg_fail_at(l, key, "expected a JSON Schema object");
    if ((*out = template_encode_json(value)) == NULL)
        return cfg_fail_memory(l);
    return 0;
}

static int load_description(cfg_loader *l, const json_t *object, config_route *route)
{
    int rc = read_text(l, object, "summary", &route->summary);
    rc |= read_text(l, object, "description", &route->description);
    rc |= load_tags(l, object, route);
    rc |= read_schema(l, object, "request_schema", &route->request_schema_json);
    rc |= read_schema(l, object, "response_schema", &route->response_schema_json);
    return rc;
}

void cfg_free_route_description(config_route *route)
{
    free(route->summary);
    free(route->description);
    for (size_t i = 0; i < route->tag_count; i++)
        free(route->tags[i]);
    free(route->tags);
    free(route->request_schema_json);
    free(route->response_schema_json);
}

/* Loads every field that can be checked; -1 if any was bad. *shaped: its
 * method and path loaded, which is what the checks across routes need. */
static int load_route(cfg_loader *l, const json_t *object, config_route *route, bool *shaped)
{
    *shaped = false;
    if (!json_is_object(object))
        return cfg_fail(l, "expected an object");
    int rc = cfg_check_keys(l, object, route_keys);
    int method_rc = load_method(l, object, route);
    int path_rc = load_path(l, object, route);
    int service_rc = load_service_ref(l, object, route);
    rc |= method_rc | path_rc | service_rc;
    rc |= load_pattern(l, object, route);
    rc |= load_kind_and_reply(l, object, route);
    rc |= load_timeout_and_status(l, object, route, service_rc == 0);
    if (path_rc == 0)
        rc |= load_data(l, object, route); /* $path.NAME needs the path */
    rc |= cfg_load_route_edge(l, object, route, path_rc == 0);
    rc |= load_description(l, object, route);
    *shaped = method_rc == 0 && path_rc == 0;
    return rc;
}

/* ---- checks across routes ------------------------------------------------ */

static bool is_literal(const route_segment *segment, const char *text)
{
    return segment->kind == ROUTE_SEGMENT_LITERAL && strcmp(segment->text, text) == 0;
}

/* Under /v1/send/ or /v1/emit/ (literally), or those paths themselves. */
static bool is_generic_api_path(const route_path *path)
{
    return path->count >= 2 && is_literal(&path->segments[0], "v1") &&
           (is_literal(&path->segments[1], "send") || is_literal(&path->segments[1], "emit"));
}

/* Exactly an admin path, or one followed by a `*rest` (which might match an
 * empty rest). Routes under an admin path (/status/:id) are fine. */
static bool is_admin_path(const route_path *path)
{
    if (path->count == 0 || path->count > 2)
        return false;
    if (path->count == 2 && path->segments[1].kind != ROUTE_SEGMENT_REST)
        return false;
    for (size_t i = 0; i < CFG_COUNT_OF(admin_paths); i++)
        if (is_literal(&path->segments[0], admin_paths[i]))
            return true;
    return false;
}

static bool generic_api_is_on(const config *cfg)
{
    for (size_t i = 0; i < cfg->service_count; i++)
        if (cfg->services[i].generic_api)
            return true;
    return false;
}

static int check_reserved_paths(cfg_loader *l, const config_route *route)
{
    if (generic_api_is_on(l->cfg) && is_generic_api_path(&route->path))
        return cfg_fail_at(l, "path",
                           "%s clashes with the generic API (/v1/send/..., /v1/emit/...)",
                           route->path.text);
    if (!l->cfg->has_admin_listen && is_admin_path(&route->path))
        return cfg_fail_at(l, "path",
                           "%s clashes with the admin API (set admin_listen to serve it apart)",
                           route->path.text);
    return 0;
}

/* Route number `index` against the shaped routes before it. */
static int check_conflicts(cfg_loader *l, size_t index, const bool *shaped)
{
    const config_route *routes = l->cfg->routes;
    for (size_t i = 0; i < index; i++) {
        if (shaped[i] && config_routes_conflict(&routes[i], &routes[index]))
            return cfg_fail(l, "conflicts with routes[%zu] (%s %s)", i,
                            config_method_name(routes[i].method), routes[i].path.text);
    }
    return 0;
}

static int load_routes_array(cfg_loader *l, const json_t *routes)
{
    config *cfg = l->cfg;
    /* which routes have a method and a path: only those take part in the
     * checks across routes */
    bool *shaped = cfg_calloc(l, json_array_size(routes), sizeof *shaped);
    if (shaped == NULL)
        return -1;
    size_t index;
    json_t *object;
    int rc = 0;
    json_array_foreach (routes, index, object) {
        size_t mark = cfg_path_push_index(&l->path, index);
        /* counted first so that config_free() sees a partly loaded one */
        config_route *route = &cfg->routes[cfg->route_count++];
        rc |= load_route(l, object, route, &shaped[index]);
        if (shaped[index])
            rc |= check_reserved_paths(l, route) | check_conflicts(l, index, shaped);
        cfg_path_pop(&l->path, mark);
    }
    free(shaped);
    return rc;
}

int cfg_load_routes(cfg_loader *l, const json_t *root)
{
    const json_t *routes = json_object_get(root, "routes");
    if (routes == NULL)
        return 0;
    if (!json_is_array(routes))
        return cfg_fail_at(l, "routes", "expected an array");
    config *cfg = l->cfg;
    cfg->routes = cfg_calloc(l, json_array_size(routes), sizeof *cfg->routes);
    if (cfg->routes == NULL)
        return -1;
    size_t mark = cfg_path_push_key(&l->path, "routes");
    int rc = load_routes_array(l, routes);
    cfg_path_pop(&l->path, mark);
    return rc;
}
