/* Unit tests of config/template.c. Templates are checked through a
 * description that shows literal text as is, each slot in angle brackets
 * (<path id #0 :int>, <body a.b>, <header x-id>, <query q ?>, <query*>,
 * <path* id,rest>, <jwt sub>, <client_ip>) and each OBJECT item as
 * {# "key":VALUE, ... ...<spread> #}. */
#include "config/template.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const source_names[] = {"body", "path", "query", "header", "jwt", "client_ip"};

static size_t describe_slot(const template_slot *slot, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s<%s%s", slot->spread ? "..." : "",
                                source_names[slot->source], slot->whole ? "*" : "");
    if (slot->name != NULL)
        n += (size_t)snprintf(out + n, size - n, " %s", slot->name);
    if (slot->source == TEMPLATE_SOURCE_PATH && !slot->whole)
        n += (size_t)snprintf(out + n, size - n, " #%zu", slot->capture_index);
    const char *separator = slot->whole ? "," : ".";
    for (size_t i = 0; i < slot->member_count; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? separator : " ", slot->members[i]);
    if (slot->conversion != TEMPLATE_CONVERT_NONE)
        n += (size_t)snprintf(out + n, size - n, " :%s",
                              template_conversion_name(slot->conversion));
    if (slot->optional)
        n += (size_t)snprintf(out + n, size - n, " ?");
    n += (size_t)snprintf(out + n, size - n, ">");
    return n;
}

static void describe(const template *t, char *out, size_t size);

static void describe_object(const template_object *o, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "{#");
    for (size_t i = 0; i < o->member_count; i++) {
        const template_member *m = &o->members[i];
        assert_int_equal(m->key_length, strlen(m->key));
        assert_int_equal(m->key_json_length, strlen(m->key_json));
        assert_int_equal(m->optional, m->value.count == 1 &&
                                          m->value.items[0].kind == TEMPLATE_ITEM_SLOT &&
                                          m->value.items[0].slot.optional);
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", m->key_json);
        describe(&m->value, out + used, size - used);
        used = strlen(out);
    }
    for (size_t i = 0; i < o->spread_count; i++) {
        assert_true(o->spreads[i].spread);
        used += (size_t)snprintf(out + used, size - used, "%s", i || o->member_count ? "," : "");
        used += describe_slot(&o->spreads[i], out + used, size - used);
    }
    /* by_key is the members sorted by key */
    for (size_t i = 1; i < o->member_count; i++)
        assert_true(strcmp(o->members[o->by_key[i - 1]].key, o->members[o->by_key[i]].key) < 0);
    snprintf(out + used, size - used, "#}");
}

/* The whole template described; checks that literals never follow
 * literals. */
static void describe(const template *t, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < t->count; i++) {
        const template_item *item = &t->items[i];
        size_t used = strlen(out);
        if (item->kind == TEMPLATE_ITEM_LITERAL) {
            assert_int_equal(item->literal_length, strlen(item->literal));
            assert_true(item->literal_length > 0);
            if (i > 0)
                assert_int_not_equal(t->items[i - 1].kind, TEMPLATE_ITEM_LITERAL);
            snprintf(out + used, size - used, "%s", item->literal);
        } else if (item->kind == TEMPLATE_ITEM_SLOT) {
            assert_null(item->literal);
            assert_false(item->slot.spread);
            describe_slot(&item->slot, out + used, size - used);
        } else {
            assert_non_null(item->object);
            describe_object(item->object, out + used, size - used);
        }
    }
}

static json_t *parse(const char *text)
{
    json_error_t error;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &error);
    if (value == NULL)
        fail_msg("bad test JSON %s: %s", text, error.text);
    return value;
}

static route_path parse_path(const char *text)
{
    route_path path;
    char error[128];
    assert_int_equal(route_path_parse(text, &path, error, sizeof error), 0);
    return path;
}

/* Compiles `json` for a route at `path_text`; checks the description. */
static void assert_compiles(const char *json, const char *path_text, const char *expected,
                            bool uses_body)
{
    json_t *value = parse(json);
    route_path path = parse_path(path_text);
    cfg_path where;
    cfg_path_init(&where);
    cfg_path_push_key(&where, "data");
    template t;
    char error[256];
    if (template_compile(value, &path, &where, &t, error, sizeof error) != 0)
        fail_msg("%s: unexpected error: %s", json, error);
    assert_string_equal(cfg_path_text(&where), "data");
    char description[1024];
    describe(&t, description, sizeof description);
    assert_string_equal(description, expected);
    assert_int_equal(t.uses_body, uses_body);
    template_free(&t);
    template_free(&t); /* a zeroed template is fine */
    route_path_free(&path);
    json_decref(value);
}

static void assert_compile_error(const char *json, const char *path_text, const char *where_text,
                                 const char *expected)
{
    json_t *value = parse(json);
    route_path path = parse_path(path_text);
    cfg_path where;
    cfg_path_init(&where);
    cfg_path_push_key(&where, "routes");
    cfg_path_push_index(&where, 1);
    cfg_path_push_key(&where, "data");
    template t;
    char error[256];
    assert_int_equal(template_compile(value, &path, &where, &t, error, sizeof error), -1);
    assert_string_equal(error, expected);
    assert_string_equal(cfg_path_text(&where), where_text);
    assert_int_equal(t.count, 0);
    assert_null(t.items);
    route_path_free(&path);
    json_decref(value);
}

static void test_literal_only(void **state)
{
    (void)state;
    assert_compiles("null", "/", "null", false);
    assert_compiles("{\"a\": [1, 2.5, true, \"x\"], \"b\": {}}", "/",
                    "{\"a\":[1,2.5,true,\"x\"],\"b\":{}}", false);
    assert_compiles("\"plain\"", "/", "\"plain\"", false);
    json_t *value = parse("{\"k\": \"v\"}");
    route_path path = parse_path("/");
    cfg_path where;
    cfg_path_init(&where);
    template t;
    char error[64];
    assert_int_equal(template_compile(value, &path, &where, &t, error, sizeof error), 0);
    assert_true(template_is_literal(&t));
    assert_int_equal(t.count, 1);
    assert_string_equal(t.items[0].literal, "{\"k\":\"v\"}");
    template_free(&t);
    route_path_free(&path);
    json_decref(value);
}

static void test_dollar_strings_that_are_literal(void **state)
{
    (void)state;
    /* '$' not followed by a letter, or not first */
    assert_compiles("[\"body\", \" $body\", \"$\", \"$1\", \"$ x\", \"${X}\", \"$_a\", \"$.body\","
                    " \"a$body\"]",
                    "/", "[\"body\",\" $body\",\"$\",\"$1\",\"$ x\",\"${X}\",\"$_a\",\"$.body\","
                    "\"a$body\"]", false);
    /* "$$..." is the string with one '$' less */
    assert_compiles("[\"$$foo\", \"$$\", \"$$$x\", \"$$body\", \"$$query.q:int?\"]", "/",
                    "[\"$foo\",\"$\",\"$$x\",\"$body\",\"$query.q:int?\"]", false);
    /* object keys are never templates, nor escaped */
    assert_compiles("{\"$body\": 1, \"$$\": 2, \"$qeury\": \"$$x\"}", "/",
                    "{\"$body\":1,\"$$\":2,\"$qeury\":\"$x\"}", false);
}

static void test_unknown_templates_are_errors(void **state)
{
    (void)state;
    static const char *const dollar = "; a literal string starting with $ is written \"$$...\"";
    static const struct {
        const char *json, *where, *message;
        bool suffix; /* the message ends with `dollar` */
    } cases[] = {
        {"\"$foo\"", "routes[1].data", "unknown template \"$foo\"", true},
        {"{\"a\": [1, {\"b\": \"$qeury.x\"}]}", "routes[1].data.a[1].b",
         "unknown template \"$qeury.x\" (did you mean \"$query.x\"?)", true},
        {"[\"$Body\"]", "routes[1].data[0]", "unknown template \"$Body\" (did you mean \"$body\"?)",
         true},
        {"\"$bodyx\"", "routes[1].data", "unknown template \"$bodyx\" (did you mean \"$body\"?)",
         true},
        {"\"$JWT.sub\"", "routes[1].data", "unknown template \"$JWT.sub\" (did you mean "
                                           "\"$jwt.sub\"?)", true},
        {"\"$headres\"", "routes[1].data", "unknown template \"$headres\" (did you mean "
                                           "\"$headers\"?)", true},
        {"{\"h\": \"$header\"}", "routes[1].data.h",
         "\"$header\" needs a name: $header.NAME (every header: $headers)", false},
        {"\"$headers.x\"", "routes[1].data",
         "\"$headers.x\": $headers takes no name ($header.NAME is one header)", false},
        {"\"$body.\"", "routes[1].data", "\"$body.\": empty member name", false},
        {"\"$body..a\"", "routes[1].data", "\"$body..a\": empty member name", false},
        {"\"$body.a.\"", "routes[1].data", "\"$body.a.\": empty member name", false},
        {"\"$path.\"", "routes[1].data", "\"$path.\" needs a name after the dot", false},
        {"\"$query.:int\"", "routes[1].data", "\"$query.:int\" needs a name after the dot", false},
        {"\"$jwt.\"", "routes[1].data", "\"$jwt.\" needs a name after the dot", false},
        {"\"$jwt.a.b\"", "routes[1].data",
         "\"$jwt.a.b\": a path into the claims is written $jwt.claims.a.b", false},
        {"\"$jwt.claims\"", "routes[1].data",
         "\"$jwt.claims\" needs a member path: $jwt.claims.a.b (all claims: $jwt)", false},
        {"\"$jwt.claims.\"", "routes[1].data",
         "\"$jwt.claims.\" needs a member path: $jwt.claims.a.b (all claims: $jwt)", false},
        {"\"$jwt.claims.a..b\"", "routes[1].data", "\"$jwt.claims.a..b\": empty member name",
         false},
        {"\"$client\"", "routes[1].data",
         "\"$client\" is not a template: the client's address is $client.ip", false},
        {"\"$client.port\"", "routes[1].data",
         "\"$client.port\" is not a template: the client's address is $client.ip", false},
        {"\"$query:json\"", "routes[1].data",
         "\"$query:json\": an object of strings takes no conversion", false},
        {"\"$headers:int?\"", "routes[1].data",
         "\"$headers:int?\": an object of strings takes no conversion", false},
        {"\"$path:bool\"", "routes[1].data",
         "\"$path:bool\": an object of strings takes no conversion", false},
        {"\"$query.n?:int\"", "routes[1].data",
         "\"$query.n?:int\": '?' goes last, after any conversion (\"$query.n:int?\")", false},
        {"\"$body.a??\"", "routes[1].data",
         "\"$body.a??\": '?' goes last, after any conversion (\"$query.n:int?\")", false},
        {"\"$query.n:int:int\"", "routes[1].data",
         "unknown conversion ':int:int' (expected :int, :number, :bool or :json)", false},
        {"\"$body.x:json?x\"", "routes[1].data",
         "unknown conversion ':json?x' (expected :int, :number, :bool or :json)", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char expected[512];
        snprintf(expected, sizeof expected, "%s%s", cases[i].message,
                 cases[i].suffix ? dollar : "");
        assert_compile_error(cases[i].json, "/u/:id", cases[i].where, expected);
    }
}

static void test_long_templates_are_cut_in_messages(void **state)
{
    (void)state;
    char json[256], message[256];
    char name[101];
    memset(name, 'x', 100);
    name[100] = '\0';
    snprintf(json, sizeof json, "\"$nope.%s\"", name);
    snprintf(message, sizeof message, "unknown template \"$nope.%.58s...\"; a literal string "
                                      "starting with $ is written \"$$...\"", name);
    assert_compile_error(json, "/", "routes[1].data", message);
}

static void test_whole_sources(void **state)
{
    (void)state;
    assert_compiles("[\"$query\", \"$headers\", \"$path\", \"$jwt\", \"$body\"]", "/u/:id/*rest",
                    "[<query*>,<header*>,<path* id,rest>,<jwt*>,<body*>]", true);
    assert_compiles("\"$path\"", "/", "<path*>", false);
    assert_compiles("[\"$jwt:json\", \"$body:json?\"]", "/", "[<jwt* :json>,<body* :json ?>]",
                    true);
}

static void test_jwt_and_client(void **state)
{
    (void)state;
    assert_compiles("[\"$jwt.sub\", \"$jwt.claims.org.id:int\", \"$jwt.claims.sub\","
                    " \"$jwt.claimsx\", \"$jwt.scope?\", \"$client.ip\", \"$client.ip:json?\"]",
                    "/",
                    "[<jwt sub>,<jwt org.id :int>,<jwt sub>,<jwt claimsx>,<jwt scope ?>,"
                    "<client_ip>,<client_ip :json ?>]",
                    false);
}

static void test_optional(void **state)
{
    (void)state;
    /* in an array or as the whole template: flat, `?` only noted */
    assert_compiles("\"$body.title?\"", "/", "<body title ?>", true);
    assert_compiles("[1, \"$query.a?\", \"$query.l:int?\"]", "/",
                    "[1,<query a ?>,<query l :int ?>]", false);
    /* as a member: the object becomes an OBJECT item */
    assert_compiles("{\"a\": 1, \"t\": \"$body.title?\", \"n\": [\"$query.n?\"]}", "/",
                    "{#\"a\":1,\"t\":<body title ?>,\"n\":[<query n ?>]#}", true);
    /* only the object holding it */
    assert_compiles("{\"x\": {\"l\": \"$query.l:int?\"}, \"y\": [2]}", "/",
                    "{\"x\":{#\"l\":<query l :int ?>#},\"y\":[2]}", false);
    /* a '?' in a literal does nothing; "$$...?" is literal */
    assert_compiles("{\"q\": \"why?\", \"d\": \"$$x?\"}", "/", "{\"q\":\"why?\",\"d\":\"$x?\"}",
                    false);
}

static void test_spread(void **state)
{
    (void)state;
    assert_compiles("{\"...\": \"$body\", \"id\": \"$path.id:int\"}", "/books/:id",
                    "{#\"id\":<path id #0 :int>,...<body*>#}", true);
    assert_compiles("{\"id\": \"$path.id\", \"...\": [\"$query\", \"$body.meta\", \"$jwt\"]}",
                    "/books/:id",
                    "{#\"id\":<path id #0>,...<query*>,...<body meta>,...<jwt*>#}", true);
    assert_compiles("{\"...\": \"$query.f:json\"}", "/", "{#...<query f :json>#}", false);
    assert_compiles("{\"...\": [\"$headers\", \"$path\", \"$header.x:json?\", \"$jwt.org\"]}",
                    "/a/:b", "{#...<header*>,...<path* b>,...<header x :json ?>,...<jwt org>#}",
                    false);
    /* nested: spread inside a flat object, optional inside a spread object */
    assert_compiles("{\"user\": {\"...\": \"$body.user\", \"t\": \"$query.t?\"}, \"k\": [1]}", "/",
                    "{\"user\":{#\"t\":<query t ?>,...<body user>#},\"k\":[1]}", true);
    assert_compiles("[{\"...\": \"$body\"}, {\"a\": {\"...\": \"$query\"}}]", "/",
                    "[{#...<body*>#},{\"a\":{#...<query*>#}}]", true);
}

static void test_spread_errors(void **state)
{
    (void)state;
    assert_compile_error("{\"...\": 1}", "/", "routes[1].data[\"...\"]",
                         "expected a template reference such as \"$body\" (\"...\" merges the "
                         "members of an object)");
    assert_compile_error("{\"...\": {\"a\": 1}}", "/", "routes[1].data[\"...\"]",
                         "expected a template reference such as \"$body\" (\"...\" merges the "
                         "members of an object)");
    assert_compile_error("{\"a\": {\"...\": \"body\"}}", "/", "routes[1].data.a[\"...\"]",
                         "\"body\" is not a template reference (\"...\" merges the members of "
                         "an object such as \"$body\")");
    assert_compile_error("{\"...\": \"$$body\"}", "/", "routes[1].data[\"...\"]",
                         "\"$$body\" is not a template reference (\"...\" merges the members of "
                         "an object such as \"$body\")");
    assert_compile_error("{\"...\": []}", "/", "routes[1].data[\"...\"]",
                         "expected at least one template reference to spread");
    assert_compile_error("{\"...\": [\"$body\", 2]}", "/", "routes[1].data[\"...\"][1]",
                         "expected a template reference such as \"$body\" (\"...\" merges the "
                         "members of an object)");
    assert_compile_error("{\"...\": [\"$body\", \"$qeury\"]}", "/", "routes[1].data[\"...\"][1]",
                         "unknown template \"$qeury\" (did you mean \"$query\"?); a literal "
                         "string starting with $ is written \"$$...\"");
    static const char *const cannot[] = {"$path.id", "$query.n", "$header.x", "$client.ip",
                                         "$body.n:int", "$jwt.n:bool", "$body:number"};
    for (size_t i = 0; i < sizeof cannot / sizeof cannot[0]; i++) {
        char json[64], message[256];
        snprintf(json, sizeof json, "{\"...\": \"%s\"}", cannot[i]);
        snprintf(message, sizeof message,
                 "\"%s\" cannot hold an object to spread (spread $body..., $jwt..., $path, "
                 "$query, $headers, or a value with :json)", cannot[i]);
        assert_compile_error(json, "/x/:id", "routes[1].data[\"...\"]", message);
    }
}

static void test_spec_example(void **state)
{
    (void)state;
    assert_compiles("{\"id\": \"$path.id:int\", \"full\": \"$query.full:bool\"}", "/users/:id",
                    "{\"id\":<path id #0 :int>,\"full\":<query full :bool>}", false);
}

static void test_whole_value_slot(void **state)
{
    (void)state;
    assert_compiles("\"$body\"", "/", "<body*>", true);
    assert_compiles("\"$body:json\"", "/", "<body* :json>", true);
    assert_compiles("\"$body.user.name\"", "/", "<body user.name>", true);
    assert_compiles("\"$query.page:int\"", "/", "<query page :int>", false);
}

static void test_nested_slots(void **state)
{
    (void)state;
    assert_compiles("{\"a\": [1, \"$path.b\", {\"c\": \"$body.c:number\"}],"
                    " \"d\": \"$header.X-Id\", \"e\": [\"$path.rest\", \"$query.q\"]}",
                    "/x/:b/*rest",
                    "{\"a\":[1,<path b #0>,{\"c\":<body c :number>}],\"d\":<header x-id>,"
                    "\"e\":[<path rest #1>,<query q>]}",
                    true);
}

static void test_conversions(void **state)
{
    (void)state;
    assert_compiles("[\"$query.a:int\", \"$query.b:number\", \"$query.c:bool\", \"$query.d:json\","
                    " \"$query.e\"]", "/",
                    "[<query a :int>,<query b :number>,<query c :bool>,<query d :json>,<query e>]",
                    false);
}

static void test_names(void **state)
{
    (void)state;
    /* query names are kept as written; header names are lowercased */
    assert_compiles("[\"$query.filter[name]\", \"$query.a.b\", \"$header.Content-Type\"]", "/",
                    "[<query filter[name]>,<query a.b>,<header content-type>]", false);
    assert_compiles("\"$body.ünïcode.2\"", "/", "<body ünïcode.2>", true);
}

static void test_keys_and_strings_are_escaped(void **state)
{
    (void)state;
    assert_compiles("{\"q\\\"k\": \"$query.x\", \"t\": \"tab\\there\\u00e9\"}", "/",
                    "{\"q\\\"k\":<query x>,\"t\":\"tab\\there\u00e9\"}", false);
}

static void test_errors(void **state)
{
    (void)state;
    assert_compile_error("{\"id\": \"$path.uid\"}", "/users/:id", "routes[1].data.id",
                         "$path.uid is not a capture of /users/:id");
    assert_compile_error("\"$path.id:int\"", "/users", "routes[1].data",
                         "$path.id is not a capture of /users");
    assert_compile_error("[1, [\"$query.n:integer\"]]", "/", "routes[1].data[1][0]",
                         "unknown conversion ':integer' (expected :int, :number, :bool or :json)");
    assert_compile_error("{\"a b\": \"$body.x:\"}", "/", "routes[1].data[\"a b\"]",
                         "unknown conversion ':' (expected :int, :number, :bool or :json)");
    assert_compile_error("\"$header.X Id\"", "/", "routes[1].data",
                         "$header.X Id is not a valid header name");
    assert_compile_error("\"$body.a:b\"", "/", "routes[1].data",
                         "unknown conversion ':b' (expected :int, :number, :bool or :json)");
}

/* Compiles json (for a route at path_text) at routes[0].data. */
static template compile_ok(const char *json, const char *path_text)
{
    json_t *value = parse(json);
    route_path path = parse_path(path_text);
    cfg_path where;
    cfg_path_init(&where);
    cfg_path_push_key(&where, "routes");
    cfg_path_push_index(&where, 0);
    cfg_path_push_key(&where, "data");
    template t;
    char error[256];
    if (template_compile(value, &path, &where, &t, error, sizeof error) != 0)
        fail_msg("%s: unexpected error: %s", json, error);
    route_path_free(&path);
    json_decref(value);
    return t;
}

typedef struct visits {
    char text[1024];
    size_t count;
    size_t stop_at; /* return 7 at this visit (1-based); 0: never */
} visits;

static int visit(void *context, const template_slot *slot)
{
    visits *v = context;
    size_t used = strlen(v->text);
    snprintf(v->text + used, sizeof v->text - used, "%s%s=%s%s", used ? " " : "", slot->at,
             slot->text, slot->spread ? "(spread)" : "");
    return ++v->count == v->stop_at ? 7 : 0;
}

static void test_each_slot(void **state)
{
    (void)state;
    template t = compile_ok("{\"a\": [1, \"$query.q\"], \"b\": {\"...\": [\"$body\", \"$jwt\"],"
                            " \"c\": \"$header.X-Y?\", \"d\": {\"e\": \"$path.id:int\"}},"
                            " \"$$\": \"$client.ip\", \"x y\": [\"$body.n:number?\"]}",
                            "/u/:id");
    visits v = {.text = ""};
    assert_int_equal(template_each_slot(&t, visit, &v), 0);
    assert_string_equal(v.text, "data.a[1]=$query.q data.b.c=$header.X-Y? "
                                "data.b.d.e=$path.id:int data.b=$body(spread) "
                                "data.b=$jwt(spread) data[\"$$\"]=$client.ip "
                                "data[\"x y\"][0]=$body.n:number?");
    assert_int_equal(v.count, 7);
    /* a non-zero return stops the walk and is returned */
    visits w = {.text = "", .stop_at = 3};
    assert_int_equal(template_each_slot(&t, visit, &w), 7);
    assert_int_equal(w.count, 3);
    template_free(&t);
    t = compile_ok("\"$body\"", "/");
    visits x = {.text = ""};
    assert_int_equal(template_each_slot(&t, visit, &x), 0);
    assert_string_equal(x.text, "data=$body");
    template_free(&t);
    t = compile_ok("{\"k\": true}", "/");
    visits y = {.text = ""};
    assert_int_equal(template_each_slot(&t, visit, &y), 0);
    assert_int_equal(y.count, 0);
    template_free(&t);
}

static void test_body_use(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        template_body_use use;
    } cases[] = {
        {"{\"a\": \"$query.a\", \"h\": \"$headers\"}", TEMPLATE_BODY_UNUSED},
        {"\"$$body\"", TEMPLATE_BODY_UNUSED},
        {"{\"a\": \"$body.a\"}", TEMPLATE_BODY_MEMBERS},
        {"{\"...\": \"$body.a\", \"b\": \"$body.b?\"}", TEMPLATE_BODY_MEMBERS},
        {"{\"...\": \"$body\"}", TEMPLATE_BODY_WHOLE},
        {"[\"$body.a\", \"$body\"]", TEMPLATE_BODY_WHOLE},
        {"[\"$body\", \"$body.a\"]", TEMPLATE_BODY_WHOLE},
        {"\"$body:int\"", TEMPLATE_BODY_WHOLE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        template t = compile_ok(cases[i].json, "/");
        if (t.body_use != cases[i].use)
            fail_msg("%s: body_use %d, expected %d", cases[i].json, (int)t.body_use,
                     (int)cases[i].use);
        assert_int_equal(t.uses_body, cases[i].use != TEMPLATE_BODY_UNUSED);
        template_free(&t);
    }
}

static void test_members_sorted_by_key(void **state)
{
    (void)state;
    template t = compile_ok("{\"b\": 1, \"a\": \"$query.a?\", \"ab\": 2, \"\": 3, \"\\u00e9\": 4,"
                            " \"A\": 5, \"...\": \"$body\"}", "/");
    assert_int_equal(t.count, 1);
    assert_int_equal(t.items[0].kind, TEMPLATE_ITEM_OBJECT);
    const template_object *o = t.items[0].object;
    assert_int_equal(o->member_count, 6);
    static const char *const order[] = {"", "A", "a", "ab", "b", "\xc3\xa9"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(o->members[o->by_key[i]].key, order[i]);
    assert_string_equal(o->members[1].key_json, "\"a\":");
    assert_true(o->members[1].optional);
    assert_false(o->members[0].optional);
    assert_int_equal(o->spread_count, 1);
    assert_string_equal(o->spreads[0].at, "data");
    template_free(&t);
}

static void test_encode_json(void **state)
{
    (void)state;
    json_t *value = parse("{\"n\": 0.1, \"big\": 1e300, \"s\": \"/\"}");
    char *text = template_encode_json(value);
    assert_string_equal(text, "{\"n\":0.10000000000000001,\"big\":1.0000000000000001e300,"
                              "\"s\":\"/\"}");
    free(text);
    json_decref(value);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_only),
        cmocka_unit_test(test_dollar_strings_that_are_literal),
        cmocka_unit_test(test_unknown_templates_are_errors),
        cmocka_unit_test(test_long_templates_are_cut_in_messages),
        cmocka_unit_test(test_whole_sources),
        cmocka_unit_test(test_jwt_and_client),
        cmocka_unit_test(test_optional),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_spread_errors),
        cmocka_unit_test(test_each_slot),
        cmocka_unit_test(test_body_use),
        cmocka_unit_test(test_members_sorted_by_key),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_whole_value_slot),
        cmocka_unit_test(test_nested_slots),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_keys_and_strings_are_escaped),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_encode_json),
    };
    return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
