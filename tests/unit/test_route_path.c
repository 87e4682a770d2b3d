/* Unit tests of config/route_path.c. */
#include "config/route_path.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

static route_path must_parse(const char *text)
{
    route_path path;
    char error[256];
    if (route_path_parse(text, &path, error, sizeof error) != 0)
        fail_msg("%s: unexpected error: %s", text, error);
    assert_string_equal(path.text, text);
    return path;
}

static void assert_parse_error(const char *text, const char *expected)
{
    route_path path;
    char error[256];
    assert_int_equal(route_path_parse(text, &path, error, sizeof error), -1);
    assert_string_equal(error, expected);
    assert_null(path.text);
    assert_null(path.segments);
    assert_int_equal(path.count, 0);
}

static void assert_segment(const route_path *path, size_t i, route_segment_kind kind,
                           const char *text)
{
    assert_true(i < path->count);
    assert_int_equal(path->segments[i].kind, kind);
    assert_string_equal(path->segments[i].text, text);
    assert_int_equal(path->segments[i].length, strlen(text));
}

static void test_root(void **state)
{
    (void)state;
    route_path path = must_parse("/");
    assert_int_equal(path.count, 0);
    assert_int_equal(path.capture_count, 0);
    route_path_free(&path);
    route_path_free(&path); /* a zeroed path is fine */
}

static void test_segments(void **state)
{
    (void)state;
    route_path path = must_parse("/users/:id/files/*rest");
    assert_int_equal(path.count, 4);
    assert_segment(&path, 0, ROUTE_SEGMENT_LITERAL, "users");
    assert_segment(&path, 1, ROUTE_SEGMENT_PARAM, "id");
    assert_segment(&path, 2, ROUTE_SEGMENT_LITERAL, "files");
    assert_segment(&path, 3, ROUTE_SEGMENT_REST, "rest");
    assert_int_equal(path.capture_count, 2);
    assert_int_equal(route_path_capture_index(&path, "id"), 0);
    assert_int_equal(route_path_capture_index(&path, "rest"), 1);
    assert_int_equal(route_path_capture_index(&path, "users"), -1);
    assert_ptr_equal(route_path_capture(&path, 1), &path.segments[3]);
    assert_null(route_path_capture(&path, 2));
    route_path_free(&path);
}

static void test_trailing_slash_ignored(void **state)
{
    (void)state;
    route_path path = must_parse("/users/");
    assert_int_equal(path.count, 1);
    assert_segment(&path, 0, ROUTE_SEGMENT_LITERAL, "users");
    route_path_free(&path);
}

static void test_literals_are_percent_decoded(void **state)
{
    (void)state;
    route_path path = must_parse("/a%2Fb/caf%c3%a9/x:y/a*b/café/~!$&'()+,;=@");
    assert_segment(&path, 0, ROUTE_SEGMENT_LITERAL, "a/b");
    assert_segment(&path, 1, ROUTE_SEGMENT_LITERAL, "caf\xc3\xa9");
    assert_segment(&path, 2, ROUTE_SEGMENT_LITERAL, "x:y");
    assert_segment(&path, 3, ROUTE_SEGMENT_LITERAL, "a*b");
    assert_segment(&path, 4, ROUTE_SEGMENT_LITERAL, "café");
    assert_segment(&path, 5, ROUTE_SEGMENT_LITERAL, "~!$&'()+,;=@");
    route_path_free(&path);
}

static void test_errors(void **state)
{
    (void)state;
    assert_parse_error("", "expected a path starting with '/'");
    assert_parse_error("users", "expected a path starting with '/'");
    assert_parse_error("//", "empty segment (//)");
    assert_parse_error("/a//b", "empty segment (//)");
    assert_parse_error("/a//", "empty segment (//)");
    assert_parse_error("/:", "bad parameter name ':' (expected [A-Za-z_][A-Za-z0-9_]*)");
    assert_parse_error("/:1x", "bad parameter name ':1x' (expected [A-Za-z_][A-Za-z0-9_]*)");
    assert_parse_error("/:a-b", "bad parameter name ':a-b' (expected [A-Za-z_][A-Za-z0-9_]*)");
    assert_parse_error("/*", "bad parameter name '*' (expected [A-Za-z_][A-Za-z0-9_]*)");
    assert_parse_error("/*rest/x", "'*rest' must be the last segment");
    assert_parse_error("/:id/:id", "duplicate parameter name 'id'");
    assert_parse_error("/:id/*id", "duplicate parameter name 'id'");
    assert_parse_error("/a%zz", "bad percent-escape '%zz'");
    assert_parse_error("/a%2", "bad percent-escape '%2'");
    assert_parse_error("/a%", "bad percent-escape '%'");
    assert_parse_error("/a%00", "%00 is not allowed in a path");
    assert_parse_error("/a?b=1", "character '?' must be percent-encoded");
    assert_parse_error("/a#top", "character '#' must be percent-encoded");
    assert_parse_error("/a b", "character ' ' must be percent-encoded");
    assert_parse_error("/a\tb", "character '\\x09' must be percent-encoded");
}

static bool same_shape(const char *a, const char *b)
{
    route_path x = must_parse(a);
    route_path y = must_parse(b);
    bool result = route_path_same_shape(&x, &y);
    assert_int_equal(route_path_same_shape(&y, &x), result);
    route_path_free(&x);
    route_path_free(&y);
    return result;
}

static void test_same_shape(void **state)
{
    (void)state;
    assert_true(same_shape("/", "/"));
    assert_true(same_shape("/users/:id", "/users/:uid"));
    assert_true(same_shape("/users/:id/", "/users/:id"));
    assert_true(same_shape("/f/*rest", "/f/*path"));
    assert_true(same_shape("/a%41", "/aA"));
    assert_false(same_shape("/users/:id", "/users/me"));
    assert_false(same_shape("/users/:id", "/users/*rest"));
    assert_false(same_shape("/users/:id", "/users/:id/x"));
    assert_false(same_shape("/users", "/Users"));
    assert_false(same_shape("/", "/a"));
    assert_false(same_shape("/ab", "/a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_trailing_slash_ignored),
        cmocka_unit_test(test_literals_are_percent_decoded),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_same_shape),
    };
    return cmocka_run_group_tests_name("route_path", tests, NULL, NULL);
}
