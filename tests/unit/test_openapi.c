/* Unit tests of gateway/openapi: the OpenAPI document of a config, one
 * test per template form and route key (the parameter, body and responses
 * each yields), and the /docs page. Configs are written with ' for ". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/openapi.h"

/* ---- helpers ------------------------------------------------------------- */

static config *load(const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '\'')
            *p = '"';
    config *cfg = NULL;
    config_error error;
    if (config_load_string(copy, strlen(copy), NULL, &cfg, &error) != 0)
        fail_msg("config does not load: %s", error.message);
    free(copy);
    return cfg;
}

/* The document of a config text (json_decref() it). */
static json_t *document(const char *text)
{
    config *cfg = load(text);
    json_t *doc = openapi_document(cfg);
    assert_non_null(doc);
    config_free(cfg);
    return doc;
}

/* One service "s", no generic API, and these routes. */
#define ROUTES(routes) \
    "{'generic_api': false, 'services': {'s': {'endpoints': ['127.0.0.1:3000']}}, 'routes': [" routes "]}"

static json_t *operation(json_t *doc, const char *path, const char *method)
{
    json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
    if (op == NULL)
        fail_msg("no operation %s %s", method, path);
    return op;
}

/* The parameter `name` in `in` of an operation, or NULL. */
static json_t *parameter(json_t *op, const char *in, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(op, "parameters"), i, p)
        if (strcmp(json_string_value(json_object_get(p, "in")), in) == 0 &&
            strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return p;
    return NULL;
}

static json_t *must_parameter(json_t *op, const char *in, const char *name)
{
    json_t *p = parameter(op, in, name);
    if (p == NULL)
        fail_msg("no %s parameter %s", in, name);
    return p;
}

/* Whether JSON value `value` equals the JSON text `expected`. */
static void assert_json(const json_t *value, const char *expected)
{
    char *want_text = strdup(expected);
    assert_non_null(want_text);
    for (char *p = want_text; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    if (!json_equal(value, want)) {
        char *got = value ? json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fail_msg("got %s, expected %s", got ? got : "(nothing)", want_text);
    }
    json_decref(want);
    free(want_text);
}

static json_t *get(json_t *value, const char *dotted)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", dotted);
    char *saved = NULL;
    for (char *key = strtok_r(copy, ".", &saved); key && value; key = strtok_r(NULL, ".", &saved))
        value = json_object_get(value, key);
    return value;
}

static json_t *body_schema(json_t *op, const char *type)
{
    json_t *content = get(op, "requestBody.content");
    json_t *media = json_object_get(content, type);
    if (media == NULL)
        fail_msg("no request body of type %s", type);
    return json_object_get(media, "schema");
}

static bool has_response(json_t *op, const char *status)
{
    return json_object_get(json_object_get(op, "responses"), status) != NULL;
}

/* ---- paths and parameters -------------------------------------------------- */

static void path_captures_are_typed_by_their_conversion(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/a/:i/:n/:b/:plain/:unread', 'service': 's', 'pattern': 1,"
        " 'data': {'i': '$path.i:int', 'n': '$path.n:number', 'b': '$path.b:bool', 'p': '$path.plain',"
        "          'j': ['$path.i']}}"));
    json_t *op = operation(doc, "/a/{i}/{n}/{b}/{plain}/{unread}", "get");
    assert_json(must_parameter(op, "path", "i"),
                "{'name': 'i', 'in': 'path', 'required': true, 'schema': {'type': 'integer', 'format': 'int64'}}");
    assert_json(get(must_parameter(op, "path", "n"), "schema"), "{'type': 'number'}");
    assert_json(get(must_parameter(op, "path", "b"), "schema"), "{'type': 'boolean'}");
    assert_json(get(must_parameter(op, "path", "plain"), "schema"), "{'type': 'string'}");
    /* a capture no slot reads is still a (string) parameter */
    assert_json(must_parameter(op, "path", "unread"),
                "{'name': 'unread', 'in': 'path', 'required': true, 'schema': {'type': 'string'}}");
    assert_int_equal(json_array_size(json_object_get(op, "parameters")), 5);
    assert_null(json_object_get(op, "requestBody"));
    json_decref(doc);
}

static void a_rest_capture_may_contain_slashes(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES("{'method': 'GET', 'path': '/files/*rest', 'service': 's', 'pattern': 1,"
                                  " 'data': {'p': '$path.rest'}}"));
    json_t *p = must_parameter(operation(doc, "/files/{rest}", "get"), "path", "rest");
    assert_true(json_is_true(json_object_get(p, "required")));
    assert_non_null(strstr(json_string_value(json_object_get(p, "description")), "may contain /"));
    json_decref(doc);
}

static void literal_segments_are_url_encoded(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/a%20b/x%7By%7D/', 'service': 's', 'pattern': 1},"
        "{'method': 'GET', 'path': '/', 'service': 's', 'pattern': 2}"));
    operation(doc, "/a%20b/x%7By%7D", "get");
    assert_json(get(operation(doc, "/", "get"), "operationId"), "'get_root'");
    json_decref(doc);
}

static void query_parameters_are_required_unless_optional(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/q', 'service': 's', 'pattern': 1,"
        " 'data': {'limit': '$query.limit:int?', 'q': '$query.q', 'on': '$query.on:bool',"
        "          'filter': '$query.filter:json?', 'again': ['$query.limit']}}"));
    json_t *op = operation(doc, "/q", "get");
    /* read twice, once without ?: required */
    assert_json(must_parameter(op, "query", "limit"),
                "{'name': 'limit', 'in': 'query', 'required': true, 'schema': {'type': 'integer', 'format': 'int64'}}");
    assert_json(must_parameter(op, "query", "q"),
                "{'name': 'q', 'in': 'query', 'required': true, 'schema': {'type': 'string'}}");
    assert_json(get(must_parameter(op, "query", "on"), "schema"), "{'type': 'boolean'}");
    assert_json(must_parameter(op, "query", "filter"),
                "{'name': 'filter', 'in': 'query', 'required': false,"
                " 'content': {'application/json': {'schema': {}}}}");
    json_decref(doc);

    doc = document(ROUTES("{'method': 'GET', 'path': '/q', 'service': 's', 'pattern': 1,"
                          " 'data': {'page': '$query.page:int?', 'all': '$query'}}"));
    op = operation(doc, "/q", "get");
    assert_false(json_is_true(get(must_parameter(op, "query", "page"), "required")));
    assert_json(get(must_parameter(op, "query", "query"), "schema"),
                "{'type': 'object', 'additionalProperties': {'type': 'string'}}");
    json_decref(doc);
}

static void headers_are_parameters_but_authorization(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/h', 'service': 's', 'pattern': 1,"
        " 'data': {'key': '$header.X-Api-Key', 'lang': '$header.accept-language?',"
        "          'auth': '$header.authorization', 'n': '$header.x-n:int'}}"));
    json_t *op = operation(doc, "/h", "get");
    assert_json(must_parameter(op, "header", "x-api-key"),
                "{'name': 'x-api-key', 'in': 'header', 'required': true, 'schema': {'type': 'string'}}");
    assert_false(json_is_true(get(must_parameter(op, "header", "accept-language"), "required")));
    assert_json(get(must_parameter(op, "header", "x-n"), "schema"), "{'type': 'integer', 'format': 'int64'}");
    assert_null(parameter(op, "header", "authorization"));
    assert_int_equal(json_array_size(json_object_get(op, "parameters")), 3);
    json_decref(doc);
}

/* ---- request bodies ------------------------------------------------------------ */

static void the_whole_body_is_any_json(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES("{'method': 'POST', 'path': '/w', 'service': 's', 'pattern': 1,"
                                  " 'data': {'payload': '$body'}}"));
    json_t *op = operation(doc, "/w", "post");
    assert_json(body_schema(op, "application/json"), "{}");
    assert_true(has_response(op, "400"));
    assert_true(has_response(op, "413"));
    json_decref(doc);
}

static void body_members_make_an_object_schema(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'PUT', 'path': '/m', 'service': 's', 'pattern': 1,"
        " 'data': {'n': '$body.name', 'a': '$body.info.age:int?', 'z': '$body.info.zip',"
        "          'ok': '$body.ok:bool', 'x': '$body.x:number?', 'j': '$body.j:json?'}}"));
    assert_json(body_schema(operation(doc, "/m", "put"), "application/json"),
                "{'type': 'object', 'properties': {"
                "  'name': {},"
                "  'info': {'type': 'object', 'properties': {'age': {'type': 'integer', 'format': 'int64'},"
                "                                            'zip': {}}, 'required': ['zip']},"
                "  'ok': {'type': 'boolean'}, 'x': {'type': 'number'}, 'j': {}},"
                " 'required': ['name', 'info', 'ok']}");
    json_decref(doc);
}

static void get_without_body_use_has_no_request_body(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/literal', 'service': 's', 'pattern': 1, 'data': {'x': 1}},"
        "{'method': 'GET', 'path': '/default', 'service': 's', 'pattern': 2},"
        "{'method': 'DELETE', 'path': '/default', 'service': 's', 'pattern': 3},"
        "{'method': 'POST', 'path': '/default', 'service': 's', 'pattern': 4},"
        "{'method': 'GET', 'path': '/reads', 'service': 's', 'pattern': 5, 'data': '$body.q'}"));
    json_t *literal = operation(doc, "/literal", "get");
    assert_null(json_object_get(literal, "requestBody"));
    assert_false(has_response(literal, "400")); /* a literal template reads nothing */
    assert_false(has_response(literal, "413"));
    /* no `data`: a bodyless GET or DELETE sends {}, a POST its body */
    assert_null(json_object_get(operation(doc, "/default", "get"), "requestBody"));
    assert_null(json_object_get(operation(doc, "/default", "delete"), "requestBody"));
    assert_json(body_schema(operation(doc, "/default", "post"), "application/json"), "{}");
    /* a GET whose template reads the body has one */
    assert_json(body_schema(operation(doc, "/reads", "get"), "application/json"),
                "{'type': 'object', 'properties': {'q': {}}, 'required': ['q']}");
    json_decref(doc);
}

static void a_spread_of_the_body_takes_an_object(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'PATCH', 'path': '/u/:id', 'service': 's', 'pattern': 1,"
        " 'data': {'...': '$body', 'id': '$path.id:int'}},"
        "{'method': 'POST', 'path': '/v', 'service': 's', 'pattern': 2,"
        " 'data': {'...': ['$body.defaults', '$query'], 'x': 1}}"));
    json_t *op = operation(doc, "/u/{id}", "patch");
    assert_json(body_schema(op, "application/json"), "{'type': 'object'}");
    assert_json(get(must_parameter(op, "path", "id"), "schema"), "{'type': 'integer', 'format': 'int64'}");
    assert_json(body_schema(operation(doc, "/v", "post"), "application/json"),
                "{'type': 'object', 'properties': {'defaults': {'type': 'object'}}, 'required': ['defaults']}");
    json_decref(doc);
}

static void bodies_may_be_forms(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES("{'method': 'POST', 'path': '/f', 'service': 's', 'pattern': 1,"
                                  " 'data': {'n': '$body.n:int'}}"));
    json_t *op = operation(doc, "/f", "post");
    assert_json(body_schema(op, "application/x-www-form-urlencoded"),
                "{'type': 'object', 'properties': {'n': {'type': 'integer', 'format': 'int64'}}, 'required': ['n']}");
    assert_true(json_equal(body_schema(op, "application/json"),
                           body_schema(op, "application/x-www-form-urlencoded")));
    json_decref(doc);
}

/* ---- methods, kinds, replies ---------------------------------------------------- */

static void any_method_is_listed_under_each(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES("{'method': '*', 'path': '/any', 'service': 's', 'pattern': 1}"));
    json_t *item = get(doc, "paths./any");
    const char *methods[] = {"get", "post", "put", "patch", "delete"};
    assert_int_equal(json_object_size(item), 5);
    size_t i = 0;
    const char *key;
    json_t *op;
    json_object_foreach (item, key, op) { /* in this order */
        assert_string_equal(key, methods[i++]);
        char id[32];
        snprintf(id, sizeof id, "%s_any", key);
        assert_string_equal(json_string_value(json_object_get(op, "operationId")), id);
    }
    assert_null(json_object_get(operation(doc, "/any", "get"), "requestBody"));
    assert_non_null(json_object_get(operation(doc, "/any", "put"), "requestBody"));
    json_decref(doc);
}

static void routes_of_one_shape_share_a_path(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/users/:id', 'service': 's', 'pattern': 1, 'data': '$path.id:int'},"
        "{'method': 'DELETE', 'path': '/users/:uid/', 'service': 's', 'pattern': 2, 'data': '$path.uid:int'},"
        "{'method': 'GET', 'path': '/users/:id/x', 'service': 's', 'pattern': 3},"
        "{'method': 'GET', 'path': '/users/x/:id', 'service': 's', 'pattern': 4},"
        "{'method': 'GET', 'path': '/f/:p', 'service': 's', 'pattern': 5},"
        "{'method': 'POST', 'path': '/f/*p', 'service': 's', 'pattern': 6}"));
    json_t *paths = json_object_get(doc, "paths");
    assert_int_equal(json_object_size(paths), 5);
    json_t *op = operation(doc, "/users/{id}", "delete"); /* named as the first route names it */
    assert_json(get(must_parameter(op, "path", "id"), "schema"), "{'type': 'integer', 'format': 'int64'}");
    operation(doc, "/users/{id}/x", "get");
    operation(doc, "/users/x/{id}", "get");
    operation(doc, "/f/{p}", "get");
    operation(doc, "/f/{p2}", "post"); /* another shape, the same {name} form */
    json_decref(doc);
}

static void operation_ids_are_unique(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/a-b', 'service': 's', 'pattern': 1},"
        "{'method': 'GET', 'path': '/a_b', 'service': 's', 'pattern': 2},"
        "{'method': 'GET', 'path': '/a.b', 'service': 's', 'pattern': 3}"));
    assert_json(get(operation(doc, "/a-b", "get"), "operationId"), "'get_a_b'");
    assert_json(get(operation(doc, "/a_b", "get"), "operationId"), "'get_a_b_2'");
    assert_json(get(operation(doc, "/a.b", "get"), "operationId"), "'get_a_b_3'");
    json_decref(doc);
}

static void emit_routes_answer_202(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES("{'method': 'POST', 'path': '/e', 'service': 's', 'pattern': 'ev',"
                                  " 'kind': 'emit'},"
                                  "{'method': 'POST', 'path': '/e2', 'service': 's', 'pattern': 'ev',"
                                  " 'kind': 'emit', 'status': 204}"));
    json_t *op = operation(doc, "/e", "post");
    json_t *ok = get(op, "responses.202");
    assert_non_null(ok);
    assert_null(json_object_get(ok, "content"));
    assert_json(get(ok, "headers.X-Delivered"), "{'$ref': '#/components/headers/X-Delivered'}");
    assert_false(has_response(op, "200"));
    assert_false(has_response(op, "501")); /* no reply, so no handler is never told */
    assert_false(has_response(op, "4XX"));
    assert_true(has_response(op, "503"));
    assert_true(has_response(operation(doc, "/e2", "post"), "204"));
    assert_false(has_response(operation(doc, "/e2", "post"), "202"));
    json_decref(doc);
}

static void replies_give_their_content_types(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/auto', 'service': 's', 'pattern': 1, 'status': 201},"
        "{'method': 'GET', 'path': '/array', 'service': 's', 'pattern': 1, 'reply': 'array'},"
        "{'method': 'GET', 'path': '/nd', 'service': 's', 'pattern': 1, 'reply': 'ndjson'},"
        "{'method': 'GET', 'path': '/sse', 'service': 's', 'pattern': 1, 'reply': 'sse'}"));
    json_t *op = operation(doc, "/auto", "get");
    assert_json(get(op, "responses.201.content"), "{'application/json': {'schema': {}}}");
    assert_true(has_response(op, "204")); /* no value */
    assert_false(has_response(op, "200"));
    assert_true(has_response(op, "501"));
    assert_true(has_response(op, "4XX"));
    assert_true(has_response(op, "5XX"));
    op = operation(doc, "/array", "get");
    assert_json(get(op, "responses.200.content"), "{'application/json': {'schema': {'type': 'array', 'items': {}}}}");
    assert_false(has_response(op, "204"));
    assert_json(get(operation(doc, "/nd", "get"), "responses.200.content"), "{'application/x-ndjson': {'schema': {}}}");
    assert_json(get(operation(doc, "/sse", "get"), "responses.200.content"), "{'text/event-stream': {'schema': {}}}");
    json_decref(doc);
}

/* An envelope route answers what its handler sets: the route's status, and
 * any other as "default", both with the body's schema. */
static void envelope_replies_vary(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'POST', 'path': '/books', 'service': 's', 'pattern': 1, 'reply': 'envelope', 'status': 201,"
        " 'response_schema': {'type': 'object'}}"));
    json_t *op = operation(doc, "/books", "post");
    assert_json(get(op, "responses.201.content"), "{'application/json': {'schema': {'type': 'object'}}}");
    assert_json(get(op, "responses.default.content"), "{'application/json': {'schema': {'type': 'object'}}}");
    assert_non_null(strstr(json_string_value(get(op, "responses.default.description")), "envelope"));
    assert_non_null(get(op, "responses.default.headers.X-Request-Id"));
    assert_false(has_response(op, "204"));
    assert_false(has_response(op, "200"));
    assert_true(has_response(op, "502"));
    json_decref(doc);
}

static void errors_carry_the_error_schema(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES("{'method': 'GET', 'path': '/x/:id', 'service': 's', 'pattern': 1,"
                                  " 'data': '$path.id:int'}"));
    json_t *op = operation(doc, "/x/{id}", "get");
    const char *expected[] = {"200", "204", "400", "501", "502", "503", "504", "4XX", "5XX"};
    json_t *responses = json_object_get(op, "responses");
    assert_int_equal(json_object_size(responses), sizeof expected / sizeof expected[0]);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        assert_non_null(json_object_get(responses, expected[i]));
    assert_json(get(op, "responses.503.content"),
                "{'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}}");
    assert_json(get(op, "responses.503.headers.Retry-After"), "{'$ref': '#/components/headers/Retry-After'}");
    assert_false(has_response(op, "401"));
    assert_false(has_response(op, "404"));
    assert_false(has_response(op, "405"));
    assert_false(has_response(op, "499"));
    assert_json(get(doc, "components.schemas.Error.required"), "['statusCode', 'error', 'message']");
    json_decref(doc);
}

/* ---- the edge policy -------------------------------------------------------------- */

#define SECRET "0123456789abcdef0123456789abcdef"

static void auth_gives_security(void **state)
{
    (void)state;
    json_t *doc = document(
        "{'generic_api': false, 'auth': {'bearer_tokens': ['t'], 'jwt': {'hs256_secret': '" SECRET "'}},"
        " 'services': {'s': {'endpoints': ['127.0.0.1:3000']}}, 'routes': ["
        "{'method': 'GET', 'path': '/default', 'service': 's', 'pattern': 1},"
        "{'method': 'GET', 'path': '/open', 'service': 's', 'pattern': 1, 'auth': 'none'},"
        "{'method': 'GET', 'path': '/bearer', 'service': 's', 'pattern': 1, 'auth': 'bearer'},"
        "{'method': 'GET', 'path': '/jwt', 'service': 's', 'pattern': 1, 'auth': 'jwt'}]}");
    assert_json(json_object_get(doc, "security"), "[{'bearerAuth': []}, {'jwtAuth': []}]");
    assert_json(get(doc, "components.securitySchemes.bearerAuth.scheme"), "'bearer'");
    assert_json(get(doc, "components.securitySchemes.jwtAuth.bearerFormat"), "'JWT'");
    json_t *op = operation(doc, "/default", "get");
    assert_null(json_object_get(op, "security")); /* the document's */
    assert_true(has_response(op, "401"));
    assert_json(get(op, "responses.401.headers.WWW-Authenticate"),
                "{'$ref': '#/components/headers/WWW-Authenticate'}");
    op = operation(doc, "/open", "get");
    assert_json(json_object_get(op, "security"), "[]");
    assert_false(has_response(op, "401"));
    assert_json(get(operation(doc, "/bearer", "get"), "security"), "[{'bearerAuth': []}]");
    assert_json(get(operation(doc, "/jwt", "get"), "security"), "[{'jwtAuth': []}]");
    json_decref(doc);

    doc = document(ROUTES("{'method': 'GET', 'path': '/x', 'service': 's', 'pattern': 1}"));
    assert_null(json_object_get(doc, "security"));
    assert_null(get(doc, "components.securitySchemes"));
    assert_false(has_response(operation(doc, "/x", "get"), "401"));
    json_decref(doc);
}

static void required_claims_give_403(void **state)
{
    (void)state;
    json_t *doc = document(
        "{'generic_api': false, 'auth': {'jwt': {'hs256_secret': '" SECRET "'}},"
        " 'services': {'s': {'endpoints': ['127.0.0.1:3000']}}, 'routes': ["
        "{'method': 'GET', 'path': '/c', 'service': 's', 'pattern': 1, 'auth': 'jwt',"
        " 'require_claims': {'scope': 'orders:write', 'level': 3}, 'data': {'sub': '$jwt.sub'}},"
        "{'method': 'GET', 'path': '/n', 'service': 's', 'pattern': 1}]}");
    json_t *op = operation(doc, "/c", "get");
    assert_true(has_response(op, "403"));
    const char *text = json_string_value(get(op, "responses.403.description"));
    assert_non_null(strstr(text, "forbidden"));
    assert_non_null(strstr(text, "scope: \"orders:write\", level: 3"));
    assert_int_equal(json_array_size(json_object_get(op, "parameters")), 0); /* $jwt is no parameter */
    assert_false(has_response(operation(doc, "/n", "get"), "403"));
    json_decref(doc);
}

static void rate_limits_give_429(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'GET', 'path': '/r', 'service': 's', 'pattern': 1,"
        " 'rate_limit': {'rps': 5, 'burst': 10, 'key': '$header.x-api-key'}},"
        "{'method': 'GET', 'path': '/q', 'service': 's', 'pattern': 1, 'data': {'k': '$query.k'},"
        " 'rate_limit': {'rps': 5, 'burst': 10, 'key': '$query.k'}},"
        "{'method': 'GET', 'path': '/n', 'service': 's', 'pattern': 1}"));
    json_t *op = operation(doc, "/r", "get");
    assert_true(has_response(op, "429"));
    assert_json(get(op, "responses.429.headers.Retry-After"), "{'$ref': '#/components/headers/Retry-After'}");
    assert_json(get(op, "responses.200.headers.RateLimit-Remaining"),
                "{'$ref': '#/components/headers/RateLimit-Remaining'}");
    json_t *key = must_parameter(op, "header", "x-api-key"); /* the key: an optional header */
    assert_false(json_is_true(json_object_get(key, "required")));
    /* read by the template too: required, once */
    op = operation(doc, "/q", "get");
    assert_true(json_is_true(get(must_parameter(op, "query", "k"), "required")));
    assert_int_equal(json_array_size(json_object_get(op, "parameters")), 1);
    op = operation(doc, "/n", "get");
    assert_false(has_response(op, "429"));
    assert_null(get(op, "responses.200.headers.RateLimit-Limit"));
    json_decref(doc);
}

/* ---- the generic API ------------------------------------------------------------- */

static void the_generic_api_only_when_on(void **state)
{
    (void)state;
    json_t *doc = document("{'generic_api': ['b'], 'services': {'a': {'endpoints': ['127.0.0.1:1']},"
                           " 'b': {'endpoints': ['127.0.0.1:2']}}}");
    json_t *op = operation(doc, "/v1/send/{service}", "post");
    assert_json(get(must_parameter(op, "path", "service"), "schema"), "{'type': 'string', 'enum': ['b']}");
    assert_non_null(must_parameter(op, "query", "reply"));
    assert_non_null(must_parameter(op, "query", "retries"));
    assert_json(get(op, "requestBody.content.application/json.schema.required"), "['pattern']");
    assert_non_null(get(op, "responses.200.content.text/event-stream"));
    assert_true(has_response(op, "404"));
    op = operation(doc, "/v1/emit/{service}", "post");
    assert_non_null(must_parameter(op, "query", "fanout"));
    assert_true(has_response(op, "202"));
    assert_json(get(op, "operationId"), "'generic_emit'");
    json_decref(doc);

    doc = document("{'generic_api': false, 'services': {'a': {'endpoints': ['127.0.0.1:1']}}}");
    assert_int_equal(json_object_size(json_object_get(doc, "paths")), 0);
    json_decref(doc);
}

/* ---- what the route says of itself --------------------------------------------------- */

static void descriptions_and_schemas_pass_through(void **state)
{
    (void)state;
    json_t *doc = document(ROUTES(
        "{'method': 'POST', 'path': '/orders', 'service': 's', 'pattern': 'orders.create', 'status': 201,"
        " 'summary': 'Creates an order', 'description': 'Creates *one* order.', 'tags': ['orders', 'write'],"
        " 'request_schema': {'type': 'object', 'required': ['item'], 'properties': {'item': {'type': 'string'}}},"
        " 'response_schema': {'type': 'object', 'properties': {'id': {'type': 'integer'}}}},"
        "{'method': 'GET', 'path': '/orders', 'service': 's', 'pattern': 'orders.list', 'reply': 'array',"
        " 'response_schema': {'type': 'integer'}, 'tags': []},"
        "{'method': 'GET', 'path': '/plain', 'service': 's', 'pattern': {'cmd': 'x'}}"));
    json_t *op = operation(doc, "/orders", "post");
    assert_json(get(op, "summary"), "'Creates an order'");
    assert_json(get(op, "description"), "'Creates *one* order.'");
    assert_json(get(op, "tags"), "['orders', 'write']");
    assert_json(body_schema(op, "application/json"),
                "{'type': 'object', 'required': ['item'], 'properties': {'item': {'type': 'string'}}}");
    assert_json(get(op, "responses.201.content.application/json.schema"),
                "{'type': 'object', 'properties': {'id': {'type': 'integer'}}}");
    assert_json(get(op, "x-patterngate"),
                "{'route': 'routes[0]', 'service': 's', 'pattern': 'orders.create', 'kind': 'send', 'reply': 'auto'}");
    op = operation(doc, "/orders", "get");
    assert_json(get(op, "responses.200.content.application/json.schema"), "{'type': 'array', 'items': {'type': 'integer'}}");
    assert_json(get(op, "tags"), "[]");
    op = operation(doc, "/plain", "get");
    assert_null(json_object_get(op, "summary"));
    assert_json(get(op, "tags"), "['s']"); /* the service's name */
    assert_string_equal(json_string_value(get(op, "description")), "Sends the pattern `{\"cmd\":\"x\"}` to service `s`.");
    json_decref(doc);
}

/* ---- the document as a whole ------------------------------------------------------- */

static void the_document_head(void **state)
{
    (void)state;
    json_t *doc = document("{'listen': '0.0.0.0:9000', 'generic_api': false, 'services': {}}");
    assert_json(get(doc, "openapi"), "'3.1.0'");
    assert_json(get(doc, "info.title"), "'patterngate'");
    assert_json(get(doc, "info.version"), "'" PG_VERSION "'");
    assert_json(get(json_array_get(json_object_get(doc, "servers"), 0), "url"), "'http://{host}:9000'");
    assert_json(get(json_array_get(json_object_get(doc, "servers"), 0), "variables.host.default"), "'localhost'");
    json_decref(doc);
    doc = document("{'listen': '[::1]:9000', 'services': {}}");
    assert_json(json_object_get(doc, "servers"), "[{'url': 'http://[::1]:9000'}]");
    json_decref(doc);
}

static void the_text_is_the_same_every_time(void **state)
{
    (void)state;
    config *cfg = load(ROUTES(
        "{'method': '*', 'path': '/a/:id', 'service': 's', 'pattern': 1, 'data': {'q': '$query.q', 'h': '$header.x'}},"
        "{'method': 'GET', 'path': '/b', 'service': 's', 'pattern': 2, 'reply': 'sse'}"));
    buf_t one = BUF_INIT, two = BUF_INIT;
    assert_int_equal(openapi_write(cfg, 2, &one), 0);
    assert_int_equal(openapi_write(cfg, 2, &two), 0);
    assert_int_equal(one.len, two.len);
    assert_memory_equal(one.data, two.data, one.len);
    assert_int_equal(one.data[one.len - 1], '\n');
    static const char indented[] = "\n  \"openapi\": \"3.1.0\"";
    assert_non_null(memmem(one.data, one.len, indented, strlen(indented)));
    buf_clear(&one);
    assert_int_equal(openapi_write(cfg, 0, &one), 0);
    assert_null(memchr(one.data, '\n', one.len - 1)); /* compact: one line */
    json_t *doc = json_loadb(one.data, one.len, 0, NULL);
    assert_non_null(doc);
    json_decref(doc);
    buf_free(&one);
    buf_free(&two);
    config_free(cfg);
}

/* ---- /docs ---------------------------------------------------------------------- */

static void the_docs_page_loads_swagger_ui_from_docs_assets(void **state)
{
    (void)state;
    config *cfg = load("{'services': {}}");
    buf_t page = BUF_INIT;
    assert_int_equal(openapi_docs_page(cfg, &page), 0);
    assert_int_equal(buf_append(&page, "", 1), 0);
    assert_non_null(strstr(page.data, "<link rel=\"stylesheet\" href=\"" CONFIG_DOCS_ASSETS_DEFAULT "swagger-ui.css\">"));
    assert_non_null(strstr(page.data, "<script src=\"" CONFIG_DOCS_ASSETS_DEFAULT "swagger-ui-bundle.js\">"));
    assert_non_null(strstr(page.data, "url: \"openapi.json\"")); /* relative to the page */
    assert_null(strstr(page.data, "/openapi.json"));
    buf_free(&page);
    config_free(cfg);

    cfg = load("{'services': {}, 'docs_assets': '/ui?a=1&b=2'}");
    assert_int_equal(openapi_docs_page(cfg, &page), 0);
    assert_int_equal(buf_append(&page, "", 1), 0);
    assert_non_null(strstr(page.data, "href=\"/ui?a=1&amp;b=2/swagger-ui.css\""));
    buf_free(&page);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_captures_are_typed_by_their_conversion),
        cmocka_unit_test(a_rest_capture_may_contain_slashes),
        cmocka_unit_test(literal_segments_are_url_encoded),
        cmocka_unit_test(query_parameters_are_required_unless_optional),
        cmocka_unit_test(headers_are_parameters_but_authorization),
        cmocka_unit_test(the_whole_body_is_any_json),
        cmocka_unit_test(body_members_make_an_object_schema),
        cmocka_unit_test(get_without_body_use_has_no_request_body),
        cmocka_unit_test(a_spread_of_the_body_takes_an_object),
        cmocka_unit_test(bodies_may_be_forms),
        cmocka_unit_test(any_method_is_listed_under_each),
        cmocka_unit_test(routes_of_one_shape_share_a_path),
        cmocka_unit_test(operation_ids_are_unique),
        cmocka_unit_test(emit_routes_answer_202),
        cmocka_unit_test(replies_give_their_content_types),
        cmocka_unit_test(envelope_replies_vary),
        cmocka_unit_test(errors_carry_the_error_schema),
        cmocka_unit_test(auth_gives_security),
        cmocka_unit_test(required_claims_give_403),
        cmocka_unit_test(rate_limits_give_429),
        cmocka_unit_test(the_generic_api_only_when_on),
        cmocka_unit_test(descriptions_and_schemas_pass_through),
        cmocka_unit_test(the_document_head),
        cmocka_unit_test(the_text_is_the_same_every_time),
        cmocka_unit_test(the_docs_page_loads_swagger_ui_from_docs_assets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
