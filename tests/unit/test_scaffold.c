/* Unit tests of gateway/scaffold (a handler's pattern as a readable path)
 * and of gateway/live's pattern matching (as Nest's server matches). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/live.h"
#include "gateway/scaffold.h"

/* The paths handed out so far. */
typedef struct taken {
    const char *paths[8];
    size_t n;
} taken_t;

static bool is_taken(const void *ctx, const char *path)
{
    const taken_t *t = ctx;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->paths[i], path) == 0)
            return true;
    return false;
}

static void assert_scaffold(const char *pattern_json, const taken_t *taken, const char *expected)
{
    json_t *pattern = json_loads(pattern_json, JSON_DECODE_ANY, NULL);
    assert_non_null(pattern);
    buf_t path = BUF_INIT;
    taken_t none = { { NULL }, 0 };
    assert_int_equal(scaffold_path(pattern, "orders", is_taken, taken ? taken : &none, &path), 0);
    assert_string_equal(path.data, expected);
    assert_int_equal(path.len, strlen(expected));
    buf_free(&path);
    json_decref(pattern);
}

static void string_patterns_split_on_separators(void **state)
{
    (void)state;
    assert_scaffold("\"orders.get\"", NULL, "/orders/get");
    assert_scaffold("\"user_created\"", NULL, "/user_created");
    assert_scaffold("\"billing:invoice/paid now\"", NULL, "/billing/invoice/paid/now");
    assert_scaffold("\"..a..b..\"", NULL, "/a/b");
}

static void other_characters_become_one_dash(void **state)
{
    (void)state;
    assert_scaffold("\"get user!\"", NULL, "/get/user");     /* a trailing one is dropped */
    assert_scaffold("\"a$$b\"", NULL, "/a-b");
    assert_scaffold("\"{id}\"", NULL, "/id");
    assert_scaffold("\"*rest\"", NULL, "/rest");
    assert_scaffold("\"bestell\xc3\xbcng\"", NULL, "/bestell-ng");
    assert_scaffold("\"!!!\"", NULL, "/handler");
    assert_scaffold("\"\"", NULL, "/handler");
}

static void objects_give_keys_then_values_in_order(void **state)
{
    (void)state;
    assert_scaffold("{\"cmd\":\"sum\"}", NULL, "/cmd/sum");
    assert_scaffold("{\"role\":\"math\",\"cmd\":\"sum\"}", NULL, "/role/math/cmd/sum");
    assert_scaffold("{\"cmd\":\"user\",\"op\":{\"name\":\"get\",\"version\":2}}", NULL, "/cmd/user/op/name/get/version/2");
    assert_scaffold("{\"on\":true,\"n\":null}", NULL, "/on/true/n/null");
    assert_scaffold("{\"tags\":[\"a\",\"b\"]}", NULL, "/tags/a-b");
    assert_scaffold("\"{\\\"cmd\\\":\\\"sum\\\"}\"", NULL, "/cmd/sum"); /* JSON text of an object */
    assert_scaffold("42", NULL, "/42");
}

static void reserved_paths_get_the_service_in_front(void **state)
{
    (void)state;
    assert_scaffold("\"status\"", NULL, "/orders/status");
    assert_scaffold("\"metrics\"", NULL, "/orders/metrics");
    assert_scaffold("\"openapi.json\"", NULL, "/openapi/json"); /* the dot splits: no clash */
    assert_scaffold("\"v1.send.x\"", NULL, "/orders/v1/send/x");
    assert_scaffold("\"status.get\"", NULL, "/status/get");
}

static void taken_paths_get_a_number(void **state)
{
    (void)state;
    taken_t t = { { "/orders/get", "/orders/get-2" }, 2 };
    assert_scaffold("\"orders.get\"", &t, "/orders/get-3");
    assert_scaffold("\"orders:get\"", &t, "/orders/get-3");
    assert_scaffold("\"orders.list\"", &t, "/orders/list");
}

static void patterns_match_as_nest_matches_them(void **state)
{
    (void)state;
    json_t *object = json_loads("{\"cmd\":\"user\",\"op\":{\"name\":\"get\",\"v\":2}}", 0, NULL);
    json_t *text = json_string("{\"cmd\":\"sum\"}");
    json_t *plain = json_string("orders.get");
    assert_true(live_pattern_matches("{\"op\":{\"v\":2,\"name\":\"get\"},\"cmd\":\"user\"}", object));
    assert_true(live_pattern_matches("\"{\\\"cmd\\\":\\\"user\\\",\\\"op\\\":{\\\"name\\\":\\\"get\\\",\\\"v\\\":2}}\"",
                                     object));
    assert_false(live_pattern_matches("{\"cmd\":\"user\"}", object));
    assert_false(live_pattern_matches("{\"cmd\":\"user\",\"op\":{\"name\":\"get\",\"v\":\"2\"}}", object));
    assert_true(live_pattern_matches("{\"cmd\":\"sum\"}", text));
    assert_true(live_pattern_matches("\"orders.get\"", plain));
    assert_false(live_pattern_matches("\"orders.Get\"", plain));
    assert_false(live_pattern_matches("not json", plain));
    json_decref(object);
    json_decref(text);
    json_decref(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(string_patterns_split_on_separators),
        cmocka_unit_test(other_characters_become_one_dash),
        cmocka_unit_test(objects_give_keys_then_values_in_order),
        cmocka_unit_test(reserved_paths_get_the_service_in_front),
        cmocka_unit_test(taken_paths_get_a_number),
        cmocka_unit_test(patterns_match_as_nest_matches_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
