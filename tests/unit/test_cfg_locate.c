/* Unit tests of config/cfg_locate.c: JSON paths found again in the text,
 * and byte offsets as line:column. */
#include "config/cfg_locate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

static const char doc[] =
    "{\n"                                                       /* line 1 */
    "  \"services\": {\n"                                       /* 2 */
    "    \"math\": {\"endpoints\": [\"h:1\", \"h:2\"],\n"       /* 3 */
    "             \"tls\": {\"ca\": \"x\"}},\n"                 /* 4 */
    "    \"a b.c\": {\"endpoints\": []}\n"                      /* 5 */
    "  },\n"                                                    /* 6 */
    "  \"routes\": [\n"                                         /* 7 */
    "    {\"method\": \"GET\", \"data\": {\"id\": [1, {\"\\u00e9\": 2}]}},\n" /* 8 */
    "    7\n"                                                   /* 9 */
    "  ]\n"                                                     /* 10 */
    "}\n";

/* Where `path` is in doc, as "line:column". */
static void assert_at(const char *path, unsigned line, unsigned column)
{
    size_t n = strlen(doc);
    cfg_position at = cfg_position_of(doc, n, cfg_locate(doc, n, path));
    if (at.line != line || at.column != column)
        fail_msg("%s: at %u:%u, expected %u:%u", path, at.line, at.column, line, column);
}

static void test_members_point_at_their_key(void **state)
{
    (void)state;
    assert_at("", 1, 1);
    assert_at("services", 2, 3);
    assert_at("services.math", 3, 5);
    assert_at("services.math.endpoints", 3, 14);
    assert_at("services.math.tls.ca", 4, 22);
    assert_at("routes", 7, 3);
}

static void test_elements_point_at_themselves(void **state)
{
    (void)state;
    assert_at("services.math.endpoints[0]", 3, 28);
    assert_at("services.math.endpoints[1]", 3, 35);
    assert_at("routes[0]", 8, 5);
    assert_at("routes[1]", 9, 5);
    assert_at("routes[0].data.id[1]", 8, 42);
}

static void test_quoted_and_escaped_keys(void **state)
{
    (void)state;
    assert_at("services[\"a b.c\"]", 5, 5);
    assert_at("services[\"a b.c\"].endpoints", 5, 15);
    /* the text writes the key as \u00e9; the path holds it decoded */
    assert_at("routes[0].data.id[1][\"\xc3\xa9\"]", 8, 43);
}

/* A path that goes past the text stops at the deepest part there. */
static void test_missing_parts(void **state)
{
    (void)state;
    assert_at("services.math.pool_size", 3, 5);           /* absent member */
    assert_at("services.math.endpoints[2]", 3, 14);       /* index out of range */
    assert_at("services[\"a b.c\"].endpoints[0]", 5, 15); /* empty array */
    assert_at("routes[1].method", 9, 5);                  /* not an object */
    assert_at("routes[0].method[0]", 8, 6);               /* not an array */
    assert_at("services.nope.endpoints", 2, 3);
    assert_at("services[\"a b", 2, 3);                    /* cut short */
    assert_at("services.math.endpoints[", 3, 14);
}

static void test_not_json(void **state)
{
    (void)state;
    const char *text = "{\"a\": {\"b\": 1,, \"c\": 2}}";
    size_t n = strlen(text);
    /* the scanner validates a member's value before handing out its key */
    assert_int_equal(cfg_locate(text, n, "a.c"), 0);
    text = "{\"a\": 1, \"b\": [1,, 2]}";
    n = strlen(text);
    assert_int_equal(cfg_locate(text, n, "a"), 1);
    assert_int_equal(cfg_locate(text, n, "b[1]"), 0);
    assert_int_equal(cfg_locate("", 0, "a"), 0);
}

static void test_positions(void **state)
{
    (void)state;
    const char *text = "ab\n\xc3\xa9t\r\nx";
    size_t n = strlen(text);
    cfg_position at = cfg_position_of(text, n, 0);
    assert_int_equal(at.line, 1);
    assert_int_equal(at.column, 1);
    at = cfg_position_of(text, n, 2);
    assert_int_equal(at.line, 1);
    assert_int_equal(at.column, 3);
    at = cfg_position_of(text, n, 5); /* after é: one character */
    assert_int_equal(at.line, 2);
    assert_int_equal(at.column, 2);
    at = cfg_position_of(text, n, 8);
    assert_int_equal(at.line, 3);
    assert_int_equal(at.column, 1);
    at = cfg_position_of(text, n, 100); /* past the end: the end */
    assert_int_equal(at.line, 3);
    assert_int_equal(at.column, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_point_at_their_key),
        cmocka_unit_test(test_elements_point_at_themselves),
        cmocka_unit_test(test_quoted_and_escaped_keys),
        cmocka_unit_test(test_missing_parts),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
