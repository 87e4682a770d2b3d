/* Unit tests of config/template.c. Templates are checked through a
 * description that shows literal text as is and each slot in angle
 * brackets: <path id #0 :int>, <body a.b>, <header x-id>, <query q>. */
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

static const char *const source_names[] = {"body", "path", "query", "header"};

static void describe_slot(const template_slot *slot, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "<%s", source_names[slot->source]);
    if (slot->name != NULL)
        n += (size_t)snprintf(out + n, size - n, " %s", slot->name);
    if (slot->source == TEMPLATE_SOURCE_PATH)
        n += (size_t)snprintf(out + n, size - n, " #%zu", slot->capture_index);
    for (size_t i = 0; i < slot->member_count; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "." : " ", slot->members[i]);
    if (slot->conversion != TEMPLATE_CONVERT_NONE)
        n += (size_t)snprintf(out + n, size - n, " :%s",
                              template_conversion_name(slot->conversion));
    snprintf(out + n, size - n, ">");
}

/* The whole template described; checks that literals and slots alternate. */
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
                assert_int_equal(t->items[i - 1].kind, TEMPLATE_ITEM_SLOT);
            snprintf(out + used, size - used, "%s", item->literal);
        } else {
            assert_null(item->literal);
            describe_slot(&item->slot, out + used, size - used);
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
    assert_compiles("[\"$foo\", \"$body.\", \"$path.\", \"$query.\", \"$header.\", \"$bodyx\","
                    " \"$body..a\", \"$body.a.\", \"body\", \" $body\", \"$\", \"$Body\"]",
                    "/", "[\"$foo\",\"$body.\",\"$path.\",\"$query.\",\"$header.\",\"$bodyx\","
                    "\"$body..a\",\"$body.a.\",\"body\",\" $body\",\"$\",\"$Body\"]", false);
    /* object keys are never templates */
    assert_compiles("{\"$body\": 1}", "/", "{\"$body\":1}", false);
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
    assert_compiles("\"$body\"", "/", "<body>", true);
    assert_compiles("\"$body:json\"", "/", "<body :json>", true);
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
