/* The OpenAPI document of a config and the /docs page (contract in
 * openapi.h). Every jansson call that can fail goes through the builder's
 * helpers, which note the failure (out of memory) and let the build go on
 * to the end, where a failed document is dropped. */
#include "gateway/openapi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OA_NAME_SIZE 512 /* an operation id, a path key: longer ones are cut */

typedef struct oa {
    const config *cfg;
    json_t *paths;       /* doc.paths */
    json_t *headers;     /* doc.components.headers, filled as used */
    json_t *shapes;      /* path shape ("/users/{}") -> its path key */
    json_t *path_names;  /* path key -> [capture names used in it] */
    json_t *ids;         /* operation ids handed out -> true */
    bool failed;
} oa_t;

/* ---- helpers that note failures -------------------------------------------- */

static json_t *need(oa_t *b, json_t *value)
{
    if (value == NULL)
        b->failed = true;
    return value;
}

/* Sets object[key] = value (stolen); a NULL value or object is a failure. */
static void put(oa_t *b, json_t *object, const char *key, json_t *value)
{
    if (value == NULL || object == NULL || json_object_set_new(object, key, value) != 0)
        b->failed = true;
}

static void add(oa_t *b, json_t *array, json_t *value)
{
    if (value == NULL || array == NULL || json_array_append_new(array, value) != 0)
        b->failed = true;
}

static json_t *text(oa_t *b, const char *s)
{
    return need(b, json_string(s));
}

/* A new object, or NULL (noted). */
static json_t *object(oa_t *b)
{
    return need(b, json_object());
}

/* The member `key` of `parent`, made an empty object when absent. */
static json_t *child(oa_t *b, json_t *parent, const char *key)
{
    json_t *found = json_object_get(parent, key);
    if (found != NULL || parent == NULL)
        return found;
    found = object(b);
    put(b, parent, key, found);
    return b->failed ? NULL : found;
}

/* A JSON text kept by the config (pattern, schemas): parsed back. */
static json_t *parsed(oa_t *b, const char *json_text)
{
    return need(b, json_loads(json_text, JSON_DECODE_ANY, NULL));
}

static json_t *type_schema(oa_t *b, const char *type)
{
    json_t *schema = object(b);
    put(b, schema, "type", text(b, type));
    return schema;
}

/* ---- paths --------------------------------------------------------------- */

static bool is_path_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

/* A decoded literal segment, percent-encoded again where a URL path needs
 * it (and '{', '}', which would read as a template). 0 or -ENOMEM. */
static int put_literal(buf_t *out, const char *segment, size_t length)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (size_t i = 0; i < length && rc == 0; i++) {
        unsigned char c = (unsigned char)segment[i];
        char escaped[3] = {'%', hex[c >> 4], hex[c & 15]};
        rc = c != 0 && is_path_char(c) ? buf_append(out, &segment[i], 1) : buf_append(out, escaped, 3);
    }
    return rc;
}

/* The path in `{name}` form with names[i] for capture i (names NULL: the
 * shape, "{}" for a capture and "{*}" for a rest). NUL-terminated, or NULL
 * when out of memory. */
static char *path_text(const route_path *path, const json_t *names)
{
    buf_t out = BUF_INIT;
    size_t capture = 0;
    int rc = path->count == 0 ? buf_append_cstr(&out, "/") : 0;
    for (size_t i = 0; i < path->count && rc == 0; i++) {
        const route_segment *s = &path->segments[i];
        rc = buf_append_cstr(&out, "/");
        if (s->kind == ROUTE_SEGMENT_LITERAL) {
            rc |= put_literal(&out, s->text, s->length);
            continue;
        }
        const char *name = json_string_value(json_array_get(names, capture++));
        rc |= buf_append_cstr(&out, "{");
        rc |= buf_append_cstr(&out, names != NULL ? (name ? name : "") : s->kind == ROUTE_SEGMENT_REST ? "*" : "");
        rc |= buf_append_cstr(&out, "}");
    }
    char *result = rc == 0 ? buf_take_cstr(&out) : NULL;
    buf_free(&out);
    return result;
}

/* The route's capture names, each with `suffix` (0: none) appended. */
static json_t *capture_names(oa_t *b, const route_path *path, unsigned suffix)
{
    json_t *names = need(b, json_array());
    for (size_t i = 0; i < path->count && names != NULL; i++) {
        const route_segment *s = &path->segments[i];
        char name[OA_NAME_SIZE];
        if (s->kind == ROUTE_SEGMENT_LITERAL)
            continue;
        if (suffix > 0)
            snprintf(name, sizeof name, "%s%u", s->text, suffix);
        else
            snprintf(name, sizeof name, "%s", s->text);
        add(b, names, text(b, name));
    }
    return names;
}

/* The path key of a route (a shape seen before keeps its first key) and the
 * capture names used in it (borrowed from b->path_names). NULL: failed. */
static const char *path_key(oa_t *b, const route_path *path, const json_t **names)
{
    char *shape = path_text(path, NULL);
    const char *key = shape ? json_string_value(json_object_get(b->shapes, shape)) : NULL;
    /* another shape may have the same key (a last segment :p in one, *p in
     * the other): then the captures get a suffix, p2, p3... */
    for (unsigned suffix = 0; shape != NULL && key == NULL && !b->failed && suffix < 1000;
         suffix = suffix ? suffix + 1 : 2) {
        json_t *candidate_names = capture_names(b, path, suffix);
        char *candidate = candidate_names ? path_text(path, candidate_names) : NULL;
        if (candidate != NULL && json_object_get(b->path_names, candidate) == NULL) {
            put(b, b->path_names, candidate, json_incref(candidate_names));
            put(b, b->shapes, shape, text(b, candidate));
            key = json_string_value(json_object_get(b->shapes, shape));
        }
        b->failed |= candidate == NULL;
        free(candidate);
        json_decref(candidate_names);
    }
    b->failed |= shape == NULL || key == NULL;
    free(shape);
    *names = key ? json_object_get(b->path_names, key) : NULL;
    return b->failed ? NULL : key;
}

/* "get_users_id" from "get" and "/users/{id}", unique in the document. */
static json_t *operation_id(oa_t *b, const char *method, const char *key)
{
    char base[OA_NAME_SIZE], id[OA_NAME_SIZE + 16];
    size_t n = (size_t)snprintf(base, sizeof base, "%s", method);
    for (const char *p = key; *p && n + 1 < sizeof base; p++) {
        bool word = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (word)
            base[n++] = *p;
        else if (base[n - 1] != '_')
            base[n++] = '_';
    }
    while (n > 1 && base[n - 1] == '_')
        n--;
    base[n] = '\0';
    if (strchr(base, '_') == NULL)
        snprintf(base + n, sizeof base - n, "_root");
    snprintf(id, sizeof id, "%s", base);
    for (unsigned i = 2; json_object_get(b->ids, id) != NULL; i++)
        snprintf(id, sizeof id, "%s_%u", base, i);
    put(b, b->ids, id, json_true());
    return text(b, id);
}

/* ---- what a template reads -------------------------------------------------- */

typedef struct oa_param {
    const char *in;   /* "query" or "header" */
    const char *name; /* borrowed from the slot or the rate limit key */
    template_conversion conversion;
    bool required;
    const char *description; /* static, or NULL */
} oa_param;

typedef struct oa_reads {
    oa_t *b;
    template_conversion *captures; /* [capture_count]: a conversion reading each */
    oa_param *params;
    size_t param_count;
    size_t param_capacity;
    bool query_whole;   /* $query */
    bool headers_whole; /* $headers */
    bool body_any;      /* $body as a value */
    bool body_object;   /* "...": "$body" */
    json_t *body;       /* members read: {"type":"object","properties":...} */
} oa_reads;

/* Headers that OpenAPI describes otherwise (security, content). */
static bool is_described_elsewhere(const char *header)
{
    return strcasecmp(header, "authorization") == 0 || strcasecmp(header, "content-type") == 0 ||
           strcasecmp(header, "accept") == 0;
}

static int note_param(oa_reads *r, const char *in, const char *name, template_conversion conversion,
                      bool required, const char *description)
{
    for (size_t i = 0; i < r->param_count; i++) {
        oa_param *p = &r->params[i];
        if (strcmp(p->in, in) != 0 || (strcmp(in, "header") == 0 ? strcasecmp(p->name, name) : strcmp(p->name, name)) != 0)
            continue;
        p->required |= required;
        if (p->conversion == TEMPLATE_CONVERT_NONE)
            p->conversion = conversion;
        return 0;
    }
    if (r->param_count == r->param_capacity) {
        size_t capacity = r->param_capacity ? 2 * r->param_capacity : 8;
        oa_param *grown = realloc(r->params, capacity * sizeof *grown);
        if (grown == NULL)
            return -ENOMEM;
        r->params = grown;
        r->param_capacity = capacity;
    }
    r->params[r->param_count++] = (oa_param){in, name, conversion, required, description};
    return 0;
}

static json_t *value_schema(oa_t *b, template_conversion conversion, bool is_text)
{
    switch (conversion) {
    case TEMPLATE_CONVERT_INT: {
        json_t *schema = type_schema(b, "integer");
        put(b, schema, "format", text(b, "int64"));
        return schema;
    }
    case TEMPLATE_CONVERT_NUMBER:
        return type_schema(b, "number");
    case TEMPLATE_CONVERT_BOOL:
        return type_schema(b, "boolean");
    case TEMPLATE_CONVERT_JSON:
        return object(b);
    case TEMPLATE_CONVERT_NONE:
        return is_text ? type_schema(b, "string") : object(b);
    }
    return object(b);
}

/* An object schema node: {"type": "object", "properties": {}}; a leaf
 * that gets members becomes one. */
static json_t *object_node(oa_reads *r, json_t *parent, const char *key)
{
    oa_t *b = r->b;
    json_t *node = child(b, parent, key);
    if (node != NULL && json_object_get(node, "properties") == NULL) {
        json_object_clear(node);
        put(b, node, "type", text(b, "object"));
        put(b, node, "properties", object(b));
    }
    return node;
}

static void note_required(oa_t *b, json_t *node, const char *member)
{
    json_t *required = json_object_get(node, "required");
    if (required == NULL) {
        required = need(b, json_array());
        put(b, node, "required", required);
    }
    size_t i;
    json_t *name;
    json_array_foreach (required, i, name)
        if (strcmp(json_string_value(name), member) == 0)
            return;
    add(b, required, text(b, member));
}

/* $body.a.b (or a spread of it): nested properties of the body schema. */
static void note_body_member(oa_reads *r, const template_slot *slot)
{
    oa_t *b = r->b;
    if (r->body == NULL) {
        r->body = type_schema(b, "object");
        put(b, r->body, "properties", object(b));
    }
    json_t *node = r->body;
    for (size_t k = 0; k < slot->member_count && node != NULL; k++) {
        const char *member = slot->members[k];
        json_t *properties = json_object_get(node, "properties");
        if (!slot->optional)
            note_required(b, node, member);
        if (k + 1 < slot->member_count) {
            node = object_node(r, properties, member);
            continue;
        }
        json_t *leaf = json_object_get(properties, member);
        if (leaf == NULL || (json_object_size(leaf) == 0 && slot->conversion != TEMPLATE_CONVERT_NONE))
            put(b, properties, member,
                slot->spread ? type_schema(b, "object") : value_schema(b, slot->conversion, false));
    }
}

static int visit_slot(void *context, const template_slot *slot)
{
    oa_reads *r = context;
    switch (slot->source) {
    case TEMPLATE_SOURCE_PATH:
        if (!slot->whole && r->captures[slot->capture_index] == TEMPLATE_CONVERT_NONE)
            r->captures[slot->capture_index] = slot->conversion;
        return 0;
    case TEMPLATE_SOURCE_QUERY:
        if (slot->whole)
            r->query_whole = true;
        else
            return note_param(r, "query", slot->name, slot->conversion, !slot->optional, NULL);
        return 0;
    case TEMPLATE_SOURCE_HEADER:
        if (slot->whole)
            r->headers_whole = true;
        else if (!is_described_elsewhere(slot->name))
            return note_param(r, "header", slot->name, slot->conversion, !slot->optional, NULL);
        return 0;
    case TEMPLATE_SOURCE_BODY:
        if (slot->member_count > 0)
            note_body_member(r, slot);
        else if (slot->spread)
            r->body_object = true;
        else
            r->body_any = true;
        return 0;
    case TEMPLATE_SOURCE_JWT:
    case TEMPLATE_SOURCE_CLIENT_IP:
        return 0;
    }
    return 0;
}

/* A rate limit keyed by a query parameter or a header: an optional one. */
static int note_rate_limit_key(oa_reads *r, const config_route *route)
{
    static const char why[] = "The key of the route's rate limit (absent: one bucket shared by "
                              "every request without it).";
    const char *key = route->rate_limit != NULL ? route->rate_limit->key : NULL;
    if (key != NULL && strncmp(key, "$query.", 7) == 0)
        return note_param(r, "query", key + 7, TEMPLATE_CONVERT_NONE, false, why);
    if (key != NULL && strncmp(key, "$header.", 8) == 0 && !is_described_elsewhere(key + 8))
        return note_param(r, "header", key + 8, TEMPLATE_CONVERT_NONE, false, why);
    return 0;
}

static int read_template(oa_t *b, const config_route *route, oa_reads *r)
{
    memset(r, 0, sizeof *r);
    r->b = b;
    r->captures = calloc(route->path.capture_count + 1, sizeof *r->captures);
    if (r->captures == NULL)
        return -ENOMEM;
    int rc = template_each_slot(&route->data, visit_slot, r);
    return rc != 0 ? rc : note_rate_limit_key(r, route);
}

static void reads_free(oa_reads *r)
{
    free(r->captures);
    free(r->params);
    json_decref(r->body);
}

/* ---- parameters ------------------------------------------------------------ */

/* schema, or content application/json for :json */
static void put_param_schema(oa_t *b, json_t *param, template_conversion conversion)
{
    if (conversion != TEMPLATE_CONVERT_JSON) {
        put(b, param, "schema", value_schema(b, conversion, true));
        return;
    }
    json_t *content = object(b);
    json_t *media = object(b);
    put(b, media, "schema", object(b));
    put(b, content, "application/json", media);
    put(b, param, "content", content);
}

static json_t *path_param(oa_t *b, const route_segment *segment, const char *name,
                          template_conversion conversion)
{
    json_t *param = object(b);
    put(b, param, "name", text(b, name));
    put(b, param, "in", text(b, "path"));
    put(b, param, "required", json_true());
    if (segment->kind == ROUTE_SEGMENT_REST)
        put(b, param, "description",
            text(b, "The rest of the path: one or more segments, so it may contain /."));
    put_param_schema(b, param, conversion);
    return param;
}

static json_t *other_param(oa_t *b, const oa_param *p)
{
    json_t *param = object(b);
    put(b, param, "name", text(b, p->name));
    put(b, param, "in", text(b, p->in));
    if (p->description != NULL)
        put(b, param, "description", text(b, p->description));
    put(b, param, "required", json_boolean(p->required));
    put_param_schema(b, param, p->conversion);
    return param;
}

/* $query as a whole: every parameter, as a free-form object. */
static json_t *query_object_param(oa_t *b)
{
    json_t *param = object(b);
    put(b, param, "name", text(b, "query"));
    put(b, param, "in", text(b, "query"));
    put(b, param, "description", text(b, "Any query parameters: all of them are sent (as an object "
                                         "of strings; a repeated name: its first value)."));
    put(b, param, "style", text(b, "form"));
    put(b, param, "explode", json_true());
    json_t *schema = type_schema(b, "object");
    put(b, schema, "additionalProperties", type_schema(b, "string"));
    put(b, param, "schema", schema);
    return param;
}

static json_t *parameters(oa_t *b, const config_route *route, const json_t *names, const oa_reads *r)
{
    json_t *list = need(b, json_array());
    size_t capture = 0;
    for (size_t i = 0; i < route->path.count; i++) {
        const route_segment *s = &route->path.segments[i];
        if (s->kind == ROUTE_SEGMENT_LITERAL)
            continue;
        const char *name = json_string_value(json_array_get(names, capture));
        add(b, list, path_param(b, s, name ? name : s->text, r->captures[capture]));
        capture++;
    }
    for (size_t i = 0; i < r->param_count; i++)
        add(b, list, other_param(b, &r->params[i]));
    if (r->query_whole)
        add(b, list, query_object_param(b));
    return list;
}

/* ---- request body ------------------------------------------------------------ */

static bool takes_body(const config_route *route, config_method method)
{
    if (route->data.body_use == TEMPLATE_BODY_UNUSED)
        return false;
    /* the default template: a bodyless GET or DELETE sends {} */
    return !(route->data_default && (method == CONFIG_METHOD_GET || method == CONFIG_METHOD_DELETE));
}

static json_t *derived_body_schema(oa_t *b, const oa_reads *r)
{
    if (r->body != NULL)
        return need(b, json_deep_copy(r->body));
    if (r->body_object)
        return type_schema(b, "object");
    return object(b); /* the whole body as a value: any JSON */
}

static json_t *request_body(oa_t *b, const config_route *route, const oa_reads *r)
{
    static const char *const types[] = {"application/json", "application/x-www-form-urlencoded"};
    json_t *body = object(b);
    json_t *content = object(b);
    put(b, body, "description",
        text(b, route->data.body_use == TEMPLATE_BODY_WHOLE && r->body == NULL
                    ? "The body, read as JSON (a form body as an object of strings)."
                    : "The body, read as JSON (a form body as an object of strings); the members "
                      "listed are sent."));
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        json_t *media = object(b);
        put(b, media, "schema", route->request_schema_json != NULL ? parsed(b, route->request_schema_json)
                                                                   : derived_body_schema(b, r));
        put(b, content, types[i], media);
    }
    put(b, body, "content", content);
    return body;
}

/* ---- responses --------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *type;
    const char *description;
} header_table[] = {
    {"X-Request-Id", "string",
     "The request's id: the X-Request-Id it came with (1 to 128 visible ASCII characters), "
     "else a new one."},
    {"X-Delivered", "integer", "How many endpoints of the service the event was written to."},
    {"WWW-Authenticate", "string",
     "Bearer (with error=\"invalid_token\" and a description for a bad JWT)."},
    {"Retry-After", "integer", "Whole seconds to wait before trying again."},
    {"RateLimit-Limit", "integer", "The rate limit's burst."},
    {"RateLimit-Remaining", "integer", "Whole requests left in the bucket."},
    {"RateLimit-Reset", "integer", "Whole seconds until the bucket is full again."},
};

/* {"$ref": "#/components/headers/NAME"}, the header added there when new. */
static json_t *header_ref(oa_t *b, const char *name)
{
    char ref[128];
    for (size_t i = 0; i < sizeof header_table / sizeof header_table[0]; i++) {
        if (strcmp(header_table[i].name, name) != 0)
            continue;
        if (json_object_get(b->headers, name) == NULL) {
            json_t *header = object(b);
            put(b, header, "description", text(b, header_table[i].description));
            put(b, header, "schema", type_schema(b, header_table[i].type));
            put(b, b->headers, name, header);
        }
        break;
    }
    snprintf(ref, sizeof ref, "#/components/headers/%s", name);
    json_t *value = object(b);
    put(b, value, "$ref", text(b, ref));
    return value;
}

static json_t *response(oa_t *b, const char *description, bool rate_limited)
{
    json_t *r = object(b);
    json_t *headers = object(b);
    put(b, r, "description", text(b, description));
    put(b, headers, "X-Request-Id", header_ref(b, "X-Request-Id"));
    if (rate_limited) {
        put(b, headers, "RateLimit-Limit", header_ref(b, "RateLimit-Limit"));
        put(b, headers, "RateLimit-Remaining", header_ref(b, "RateLimit-Remaining"));
        put(b, headers, "RateLimit-Reset", header_ref(b, "RateLimit-Reset"));
    }
    put(b, r, "headers", headers);
    return r;
}

static void put_content(oa_t *b, json_t *r, const char *type, json_t *schema)
{
    json_t *content = child(b, r, "content");
    json_t *media = object(b);
    put(b, media, "schema", schema);
    put(b, content, type, media);
}

static json_t *value_or_any(oa_t *b, const config_route *route)
{
    return route != NULL && route->response_schema_json != NULL ? parsed(b, route->response_schema_json)
                                                                 : object(b);
}

static void put_status(oa_t *b, json_t *responses, unsigned status, json_t *r)
{
    char key[8];
    snprintf(key, sizeof key, "%u", status);
    put(b, responses, key, r);
}

/* An envelope route answers whatever status its handler sets: every
 * status not listed is the envelope's (OpenAPI's "default"). */
static void envelope_default_response(oa_t *b, json_t *responses, const config_route *route, bool rate_limited)
{
    json_t *r = response(b, "Any other status the handler's envelope sets (200..599; a 404 or 201 without an "
                            "exception, say), with the envelope's headers and its body written as JSON.",
                         rate_limited);
    put_content(b, r, "application/json", value_or_any(b, route));
    put(b, responses, "default", r);
}

/* The success answer(s) of a send: `reply` decides their shape. The
 * route (NULL: the generic API) gives the status and value schema. */
static void send_responses(oa_t *b, json_t *responses, const config_route *route, config_reply_mode reply,
                           unsigned status, bool rate_limited)
{
    json_t *r = NULL;
    switch (reply) {
    case CONFIG_REPLY_AUTO:
        r = response(b, "The reply value; several values: a JSON array of them.", rate_limited);
        put_content(b, r, "application/json", value_or_any(b, route));
        break;
    case CONFIG_REPLY_ARRAY: {
        json_t *array = type_schema(b, "array");
        put(b, array, "items", value_or_any(b, route));
        r = response(b, "Every reply value, as a JSON array ([] for none).", rate_limited);
        put_content(b, r, "application/json", array);
        break;
    }
    case CONFIG_REPLY_NDJSON:
        r = response(b, "A stream: one JSON value per line (the schema is one value's), each sent as "
                        "it arrives; an error after the start is a last line {\"error\": ERROR}.",
                     rate_limited);
        put_content(b, r, "application/x-ndjson", value_or_any(b, route));
        break;
    case CONFIG_REPLY_SSE:
        r = response(b, "A stream of Server-Sent Events: `data: VALUE` per value as it arrives (the "
                        "schema is one value's), `event: error` with the error body, `event: end` "
                        "when complete.",
                     rate_limited);
        put_content(b, r, "text/event-stream", value_or_any(b, route));
        break;
    case CONFIG_REPLY_ENVELOPE:
        r = response(b, "The handler answers an envelope {status, headers, body}: this status unless the "
                        "envelope sets another, its headers, and its body written as JSON (no body when it "
                        "has none; its own Content-Type when it sets one). The schema is the body's.",
                     rate_limited);
        put_content(b, r, "application/json", value_or_any(b, route));
        break;
    }
    put_status(b, responses, status, r);
    if (reply == CONFIG_REPLY_AUTO && status != 204)
        put_status(b, responses, 204, response(b, "The service replied with no value.", rate_limited));
    if (reply == CONFIG_REPLY_ENVELOPE)
        envelope_default_response(b, responses, route, rate_limited);
}

static void emit_response(oa_t *b, json_t *responses, unsigned status, bool rate_limited)
{
    json_t *r = response(b, "The event was written to a connection (at most once: no handler "
                            "acknowledges it).", rate_limited);
    put(b, json_object_get(r, "headers"), "X-Delivered", header_ref(b, "X-Delivered"));
    put_status(b, responses, status, r);
}

/* ---- the error statuses a route can answer ------------------------------ */

/* What decides whether an operation can meet an error (SPEC.md's error
 * table, docs/HTTP-API.md "Errors"). 404, 405 are never per operation;
 * 499 is never sent. */
typedef struct oa_facts {
    bool reads_input; /* the template has a slot (or the generic API's body) */
    bool auth;        /* a token is needed */
    bool claims;      /* require_claims */
    bool body;        /* the operation takes a request body */
    bool rate_limit;
    bool generic;     /* the generic API */
    bool send;        /* the service replies (not an event) */
} oa_facts;

typedef enum oa_when {
    OA_READS_INPUT, OA_AUTH, OA_CLAIMS, OA_BODY, OA_RATE_LIMIT, OA_GENERIC, OA_SEND, OA_ALWAYS,
} oa_when;

static const struct {
    const char *status; /* a status, or a range "4XX" */
    oa_when when;
    const char *text;
} error_table[] = {
    {"400", OA_READS_INPUT, "bad_request: the body is not valid UTF-8 JSON (or a form body does not "
                            "decode) while it is used, a conversion failed, a spread found a "
                            "non-object, a value is not UTF-8, or the path cannot be decoded."},
    {"401", OA_AUTH, "unauthorized: the token is missing or not valid."},
    {"403", OA_CLAIMS, "forbidden: the token lacks a claim the route requires"},
    {"404", OA_GENERIC, "not_found: no such service, or the generic API is off for it."},
    {"413", OA_BODY, "payload_too_large: the body is larger than limits.max_body_bytes."},
    {"429", OA_RATE_LIMIT, "rate_limited: over the route's rate limit (see Retry-After)."},
    {"501", OA_SEND, "no_handler: the service has no handler for the pattern (details: its message)."},
    {"502", OA_ALWAYS, "upstream_closed: the connection closed before the (last) reply; "
                       "bad_upstream_message: the service broke the protocol, its reply passed "
                       "limits.max_reply_bytes, or (reply envelope) its envelope was refused."},
    {"503", OA_ALWAYS, "upstream_unavailable: no connection to the service could be had; "
                       "overloaded: too many requests in flight (see Retry-After); draining: the "
                       "gateway is shutting down."},
    {"504", OA_ALWAYS, "upstream_timeout: no complete reply (or next value) within the timeout."},
    {"4XX", OA_SEND, "upstream_error: the handler failed with an err whose statusCode (or status) "
                     "is this status; details: that err."},
    {"5XX", OA_SEND, "upstream_error: the handler failed (500 unless its err has a statusCode in "
                     "500..599); details: that err."},
};

static bool can_answer(oa_when when, const oa_facts *f)
{
    switch (when) {
    case OA_READS_INPUT: return f->reads_input;
    case OA_AUTH: return f->auth;
    case OA_CLAIMS: return f->claims;
    case OA_BODY: return f->body;
    case OA_RATE_LIMIT: return f->rate_limit;
    case OA_GENERIC: return f->generic;
    case OA_SEND: return f->send;
    case OA_ALWAYS: return true;
    }
    return true;
}

static json_t *error_response(oa_t *b, const char *description, const char *status, bool rate_limited)
{
    json_t *r = response(b, description, rate_limited);
    json_t *schema = object(b);
    put(b, schema, "$ref", text(b, "#/components/schemas/Error"));
    put_content(b, r, "application/json", schema);
    json_t *headers = json_object_get(r, "headers");
    if (strcmp(status, "401") == 0)
        put(b, headers, "WWW-Authenticate", header_ref(b, "WWW-Authenticate"));
    if (strcmp(status, "429") == 0 || strcmp(status, "503") == 0)
        put(b, headers, "Retry-After", header_ref(b, "Retry-After"));
    return r;
}

/* "forbidden: ... (scope: \"orders:write\", tenant: \"t1\")." 0 or -ENOMEM. */
static int claims_text(const config_route *route, const char *base, buf_t *out)
{
    int rc = buf_append_cstr(out, base);
    for (size_t i = 0; i < route->require_claim_count; i++) {
        rc |= buf_append_cstr(out, i ? ", " : " (");
        rc |= buf_append_cstr(out, route->require_claims[i].claim);
        rc |= buf_append_cstr(out, ": ");
        rc |= buf_append_cstr(out, route->require_claims[i].value_json);
    }
    return rc | buf_append_cstr(out, route->require_claim_count ? ")." : ".");
}

static void error_responses(oa_t *b, json_t *responses, const config_route *route, const oa_facts *f)
{
    for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++) {
        if (!can_answer(error_table[i].when, f))
            continue;
        buf_t description = BUF_INIT;
        int rc = error_table[i].when == OA_CLAIMS && route != NULL
                     ? claims_text(route, error_table[i].text, &description)
                     : buf_append_cstr(&description, error_table[i].text);
        char *line = rc == 0 ? buf_take_cstr(&description) : NULL;
        buf_free(&description);
        put(b, responses, error_table[i].status,
            line ? error_response(b, line, error_table[i].status, f->rate_limit) : NULL);
        free(line);
    }
}

/* ---- security ------------------------------------------------------------------ */

/* [{"bearerAuth": []}, {"jwtAuth": []}] for the CONFIG_AUTH_* bits. */
static json_t *security(oa_t *b, unsigned mechanisms)
{
    json_t *list = need(b, json_array());
    if (mechanisms & CONFIG_AUTH_BEARER) {
        json_t *one = object(b);
        put(b, one, "bearerAuth", need(b, json_array()));
        add(b, list, one);
    }
    if (mechanisms & CONFIG_AUTH_JWT) {
        json_t *one = object(b);
        put(b, one, "jwtAuth", need(b, json_array()));
        add(b, list, one);
    }
    return list;
}

static json_t *security_schemes(oa_t *b)
{
    const config *cfg = b->cfg;
    json_t *schemes = object(b);
    if (cfg->bearer_token_count > 0) {
        json_t *bearer = object(b);
        put(b, bearer, "type", text(b, "http"));
        put(b, bearer, "scheme", text(b, "bearer"));
        put(b, bearer, "description", text(b, "Authorization: Bearer TOKEN, one of auth.bearer_tokens."));
        put(b, schemes, "bearerAuth", bearer);
    }
    if (cfg->jwt != NULL) {
        json_t *jwt = object(b);
        put(b, jwt, "type", text(b, "http"));
        put(b, jwt, "scheme", text(b, "bearer"));
        put(b, jwt, "bearerFormat", text(b, "JWT"));
        put(b, jwt, "description", text(b, "Authorization: Bearer JWT, a token valid under auth.jwt "
                                            "(signature, exp, nbf, iss, aud)."));
        put(b, schemes, "jwtAuth", jwt);
    }
    return schemes;
}

/* ---- operations ---------------------------------------------------------------- */

static json_t *default_description(oa_t *b, const config_route *route)
{
    const config_service *service = &b->cfg->services[route->service_index];
    buf_t out = BUF_INIT;
    int rc = buf_append_cstr(&out, route->kind == CONFIG_ROUTE_EMIT ? "Emits the event `" : "Sends the pattern `");
    rc |= buf_append_cstr(&out, route->pattern_json);
    rc |= buf_append_cstr(&out, "` to service `");
    rc |= buf_append_cstr(&out, service->name);
    rc |= buf_append_cstr(&out, "`.");
    char *line = rc == 0 ? buf_take_cstr(&out) : NULL;
    buf_free(&out);
    json_t *value = line ? text(b, line) : need(b, NULL);
    free(line);
    return value;
}

static json_t *tags(oa_t *b, const config_route *route)
{
    json_t *list = need(b, json_array());
    if (route->tags == NULL) {
        add(b, list, text(b, b->cfg->services[route->service_index].name));
        return list;
    }
    for (size_t i = 0; i < route->tag_count; i++)
        add(b, list, text(b, route->tags[i]));
    return list;
}

static json_t *route_extension(oa_t *b, size_t index)
{
    const config_route *route = &b->cfg->routes[index];
    char where[32];
    snprintf(where, sizeof where, "routes[%zu]", index);
    json_t *x = object(b);
    put(b, x, "route", text(b, where));
    put(b, x, "service", text(b, b->cfg->services[route->service_index].name));
    put(b, x, "pattern", parsed(b, route->pattern_json));
    put(b, x, "kind", text(b, config_route_kind_name(route->kind)));
    if (route->kind == CONFIG_ROUTE_SEND)
        put(b, x, "reply", text(b, config_reply_mode_name(route->reply)));
    return x;
}

static void put_security(oa_t *b, json_t *op, unsigned mechanisms)
{
    if (mechanisms != b->cfg->auth_mechanisms)
        put(b, op, "security", security(b, mechanisms));
}

static const char *const method_keys[] = {"get", "post", "put", "patch", "delete"};

static json_t *route_operation(oa_t *b, size_t index, config_method method, const char *key,
                               const json_t *names, const oa_reads *r)
{
    const config_route *route = &b->cfg->routes[index];
    oa_facts facts = {
        .reads_input = !template_is_literal(&route->data),
        .auth = route->auth != 0,
        .claims = route->require_claim_count > 0,
        .body = takes_body(route, method),
        .rate_limit = route->rate_limit != NULL,
        .send = route->kind == CONFIG_ROUTE_SEND,
    };
    json_t *op = object(b);
    json_t *responses = object(b);
    put(b, op, "operationId", operation_id(b, method_keys[method], key));
    if (route->summary != NULL)
        put(b, op, "summary", text(b, route->summary));
    put(b, op, "description", route->description ? text(b, route->description) : default_description(b, route));
    put(b, op, "tags", tags(b, route));
    put(b, op, "parameters", parameters(b, route, names, r));
    if (facts.body)
        put(b, op, "requestBody", request_body(b, route, r));
    if (route->kind == CONFIG_ROUTE_EMIT)
        emit_response(b, responses, route->status, facts.rate_limit);
    else
        send_responses(b, responses, route, route->reply, route->status, facts.rate_limit);
    error_responses(b, responses, route, &facts);
    put(b, op, "responses", responses);
    put_security(b, op, route->auth);
    put(b, op, "x-patterngate", route_extension(b, index));
    return op;
}

/* Adds route number `index` under its path, once per method. */
static int add_route(oa_t *b, size_t index)
{
    const config_route *route = &b->cfg->routes[index];
    const json_t *names = NULL;
    const char *key = path_key(b, &route->path, &names);
    oa_reads r;
    int rc = key != NULL ? read_template(b, route, &r) : -ENOMEM;
    if (rc != 0) {
        if (key != NULL)
            reads_free(&r);
        return rc;
    }
    json_t *item = child(b, b->paths, key);
    for (size_t m = 0; m < sizeof method_keys / sizeof method_keys[0]; m++) {
        if (route->method == (config_method)m || route->method == CONFIG_METHOD_ANY)
            put(b, item, method_keys[m], route_operation(b, index, (config_method)m, key, names, &r));
    }
    reads_free(&r);
    return b->failed ? -ENOMEM : 0;
}

/* ---- the generic API ------------------------------------------------------------ */

static json_t *generic_services(oa_t *b)
{
    json_t *names = need(b, json_array());
    for (size_t i = 0; i < b->cfg->service_count; i++)
        if (b->cfg->services[i].generic_api)
            add(b, names, text(b, b->cfg->services[i].name));
    return names;
}

static json_t *enum_schema(oa_t *b, const char *const *values, size_t count)
{
    json_t *schema = type_schema(b, "string");
    json_t *list = need(b, json_array());
    for (size_t i = 0; i < count; i++)
        add(b, list, text(b, values[i]));
    put(b, schema, "enum", list);
    return schema;
}

static json_t *query_param(oa_t *b, const char *name, const char *description, json_t *schema)
{
    json_t *param = object(b);
    put(b, param, "name", text(b, name));
    put(b, param, "in", text(b, "query"));
    put(b, param, "description", text(b, description));
    put(b, param, "required", json_false());
    put(b, param, "schema", schema);
    return param;
}

static json_t *generic_parameters(oa_t *b, bool is_emit)
{
    static const char *const replies[] = {"auto", "array", "ndjson", "sse", "envelope"};
    static const char *const fanouts[] = {"one", "all"};
    json_t *list = need(b, json_array());
    json_t *service = object(b);
    json_t *schema = type_schema(b, "string");
    put(b, schema, "enum", generic_services(b));
    put(b, service, "name", text(b, "service"));
    put(b, service, "in", text(b, "path"));
    put(b, service, "required", json_true());
    put(b, service, "description", text(b, "A service whose generic API is on."));
    put(b, service, "schema", schema);
    add(b, list, service);
    if (is_emit) {
        add(b, list, query_param(b, "fanout", "one: one endpoint, balanced; all: every usable endpoint "
                                              "(X-Delivered says how many).", enum_schema(b, fanouts, 2)));
        return list;
    }
    add(b, list, query_param(b, "reply", "How the reply values become the response (default auto).",
                             enum_schema(b, replies, 5)));
    json_t *retries = type_schema(b, "integer");
    put(b, retries, "minimum", json_integer(0));
    put(b, retries, "maximum", json_integer(5));
    add(b, list, query_param(b, "retries", "How many more times the request is sent when its connection "
                                           "closes before the reply or none can be had (default 0).",
                             retries));
    return list;
}

static json_t *generic_body(oa_t *b)
{
    json_t *schema = type_schema(b, "object");
    json_t *properties = object(b);
    json_t *pattern = object(b);
    json_t *data = object(b);
    put(b, pattern, "description", text(b, "The message pattern, any JSON, sent as written."));
    put(b, data, "description", text(b, "The packet data, any JSON (default null), sent as written."));
    put(b, properties, "pattern", pattern);
    put(b, properties, "data", data);
    put(b, schema, "properties", properties);
    json_t *required = need(b, json_array());
    add(b, required, text(b, "pattern"));
    put(b, schema, "required", required);
    put(b, schema, "additionalProperties", json_false());
    json_t *body = object(b);
    put(b, body, "required", json_true());
    put_content(b, body, "application/json", schema);
    return body;
}

/* As a route's, with the content of every ?reply= mode. */
static void generic_send_responses(oa_t *b, json_t *responses)
{
    send_responses(b, responses, NULL, CONFIG_REPLY_AUTO, 200, false);
    json_t *ok = json_object_get(responses, "200");
    put(b, ok, "description", text(b, "The reply: ?reply=auto (the default) one value as is, several "
                                      "as an array; array: always an array; ndjson and sse: a stream; envelope: "
                                      "the one value {status, headers, body} sets the status, headers "
                                      "and body."));
    put_content(b, ok, "application/x-ndjson", object(b));
    put_content(b, ok, "text/event-stream", object(b));
}

static json_t *generic_operation(oa_t *b, bool is_emit)
{
    oa_facts facts = {.reads_input = true, .auth = b->cfg->auth_mechanisms != 0, .body = true,
                      .generic = true, .send = !is_emit};
    json_t *op = object(b);
    json_t *responses = object(b);
    json_t *tag_list = need(b, json_array());
    add(b, tag_list, text(b, "generic API"));
    put(b, op, "operationId", operation_id(b, "generic", is_emit ? "/emit" : "/send"));
    put(b, op, "summary", text(b, is_emit ? "Emits any event to a service" : "Sends any pattern to a service"));
    put(b, op, "tags", tag_list);
    put(b, op, "parameters", generic_parameters(b, is_emit));
    put(b, op, "requestBody", generic_body(b));
    if (is_emit)
        emit_response(b, responses, 202, false);
    else
        generic_send_responses(b, responses);
    error_responses(b, responses, NULL, &facts);
    put(b, op, "responses", responses);
    return op;
}

static void add_generic_api(oa_t *b)
{
    json_t *names = generic_services(b);
    if (json_array_size(names) > 0) {
        put(b, child(b, b->paths, "/v1/send/{service}"), "post", generic_operation(b, false));
        put(b, child(b, b->paths, "/v1/emit/{service}"), "post", generic_operation(b, true));
    }
    json_decref(names);
}

/* ---- the document ------------------------------------------------------------------ */

/* 0.0.0.0 or :: (any spelling): the gateway listens on every address. */
static bool is_wildcard(const hostport *at)
{
    unsigned char address[16];
    static const unsigned char any[16];
    if (at->kind == HOSTPORT_IPV4)
        return inet_pton(AF_INET, at->host, address) == 1 && memcmp(address, any, 4) == 0;
    return at->kind == HOSTPORT_IPV6 && inet_pton(AF_INET6, at->host, address) == 1 &&
           memcmp(address, any, 16) == 0;
}

static json_t *servers(oa_t *b)
{
    const hostport *listen = &b->cfg->listen;
    bool wildcard = is_wildcard(listen);
    char url[HOSTPORT_TEXT_SIZE + 16], address[HOSTPORT_TEXT_SIZE];
    json_t *server = object(b);
    if (wildcard) {
        snprintf(url, sizeof url, "http://{host}:%u", (unsigned)listen->port);
        json_t *host = object(b);
        put(b, host, "default", text(b, "localhost"));
        put(b, child(b, server, "variables"), "host", host);
        hostport_format(listen, address, sizeof address);
        char description[HOSTPORT_TEXT_SIZE + 64];
        snprintf(description, sizeof description, "listen is %s: host is any address of the host", address);
        put(b, server, "description", text(b, description));
    } else {
        hostport_format(listen, address, sizeof address);
        snprintf(url, sizeof url, "http://%s", address);
    }
    put(b, server, "url", text(b, url));
    json_t *list = need(b, json_array());
    add(b, list, server);
    return list;
}

static json_t *error_schema(oa_t *b)
{
    json_t *schema = type_schema(b, "object");
    json_t *properties = object(b);
    json_t *status = type_schema(b, "integer");
    put(b, status, "description", text(b, "The HTTP status."));
    put(b, properties, "statusCode", status);
    json_t *code = type_schema(b, "string");
    put(b, code, "description", text(b, "A stable code: bad_request, unauthorized, forbidden, not_found, "
                                        "payload_too_large, rate_limited, upstream_error, no_handler, "
                                        "upstream_closed, bad_upstream_message, upstream_unavailable, "
                                        "overloaded, draining, upstream_timeout..."));
    put(b, properties, "error", code);
    json_t *message = type_schema(b, "string");
    put(b, message, "description", text(b, "A human explanation (its wording may change)."));
    put(b, properties, "message", message);
    json_t *details = object(b);
    put(b, details, "description", text(b, "The err the service sent, untouched (upstream_error, no_handler)."));
    put(b, properties, "details", details);
    put(b, schema, "properties", properties);
    json_t *required = need(b, json_array());
    add(b, required, text(b, "statusCode"));
    add(b, required, text(b, "error"));
    add(b, required, text(b, "message"));
    put(b, schema, "required", required);
    return schema;
}

static json_t *info(oa_t *b)
{
    json_t *value = object(b);
    put(b, value, "title", text(b, "patterngate"));
    put(b, value, "version", text(b, PG_VERSION));
    put(b, value, "description", text(b, "HTTP routes of patterngate onto NestJS message patterns, "
                                         "from its config. info.version is patterngate's."));
    return value;
}

json_t *openapi_document(const config *cfg)
{
    oa_t b = {.cfg = cfg};
    json_t *doc = object(&b);
    json_t *components = object(&b);
    json_t *schemas = object(&b);
    b.headers = object(&b);
    b.shapes = object(&b);
    b.path_names = object(&b);
    b.ids = object(&b);
    b.paths = object(&b);
    put(&b, doc, "openapi", text(&b, "3.1.0"));
    put(&b, doc, "info", info(&b));
    put(&b, doc, "servers", servers(&b));
    if (cfg->auth_mechanisms != 0)
        put(&b, doc, "security", security(&b, cfg->auth_mechanisms));
    put(&b, doc, "paths", json_incref(b.paths));
    for (size_t i = 0; i < cfg->route_count && !b.failed; i++)
        b.failed |= add_route(&b, i) != 0;
    add_generic_api(&b);
    put(&b, schemas, "Error", error_schema(&b));
    put(&b, components, "schemas", schemas);
    if (json_object_size(b.headers) > 0)
        put(&b, components, "headers", json_incref(b.headers));
    if (cfg->auth_mechanisms != 0)
        put(&b, components, "securitySchemes", security_schemes(&b));
    put(&b, doc, "components", components);
    json_decref(b.headers);
    json_decref(b.shapes);
    json_decref(b.path_names);
    json_decref(b.ids);
    json_decref(b.paths);
    if (b.failed) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int append_text(const char *data, size_t size, void *out)
{
    return buf_append(out, data, size) == 0 ? 0 : -1;
}

int openapi_write(const config *cfg, int indent, buf_t *out)
{
    json_t *doc = openapi_document(cfg);
    if (doc == NULL)
        return -ENOMEM;
    size_t flags = indent > 0 ? JSON_INDENT(indent & 31) : JSON_COMPACT;
    int rc = json_dump_callback(doc, append_text, out, flags);
    json_decref(doc);
    if (rc == 0)
        rc = buf_append_cstr(out, "\n");
    return rc == 0 ? 0 : -ENOMEM;
}

/* ---- the /docs page --------------------------------------------------------------- */

/* Text for an HTML attribute (the loader allows none of " ' < > in
 * docs_assets, but a page must not rely on that). */
static int append_attribute(buf_t *out, const char *value)
{
    int rc = 0;
    for (const char *p = value; *p && rc == 0; p++) {
        switch (*p) {
        case '&': rc = buf_append_cstr(out, "&amp;"); break;
        case '"': rc = buf_append_cstr(out, "&quot;"); break;
        case '\'': rc = buf_append_cstr(out, "&#39;"); break;
        case '<': rc = buf_append_cstr(out, "&lt;"); break;
        case '>': rc = buf_append_cstr(out, "&gt;"); break;
        default: rc = buf_append(out, p, 1); break;
        }
    }
    return rc;
}

int openapi_docs_page(const config *cfg, buf_t *out)
{
    const char *assets = config_docs_assets(cfg);
    int rc = buf_append_cstr(out, "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                                  "<title>patterngate API</title>\n<link rel=\"stylesheet\" href=\"");
    rc |= append_attribute(out, assets);
    rc |= buf_append_cstr(out, "swagger-ui.css\">\n</head>\n<body>\n<div id=\"swagger-ui\"></div>\n"
                               "<script src=\"");
    rc |= append_attribute(out, assets);
    rc |= buf_append_cstr(out, "swagger-ui-bundle.js\"></script>\n<script>\n"
                               "window.ui = SwaggerUIBundle({ url: \"openapi.json\", dom_id: \"#swagger-ui\","
                               " deepLinking: true });\n</script>\n</body>\n</html>\n");
    return rc == 0 ? 0 : -ENOMEM;
}
