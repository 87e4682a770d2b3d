/* The error table: SPEC.md's statuses and codes, the status an upstream
 * error takes from the service's err, and the body's exact bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/errors.h"

static void table_matches_the_spec(void **state)
{
    (void)state;
    static const struct { gw_error_t e; int status; const char *code; } spec[] = {
        { GW_ERR_NOT_FOUND, 404, "not_found" },
        { GW_ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed" },
        { GW_ERR_UNAUTHORIZED, 401, "unauthorized" },
        { GW_ERR_FORBIDDEN, 403, "forbidden" },
        { GW_ERR_BAD_REQUEST, 400, "bad_request" },
        { GW_ERR_PAYLOAD_TOO_LARGE, 413, "payload_too_large" },
        { GW_ERR_RATE_LIMITED, 429, "rate_limited" },
        { GW_ERR_OVERLOADED, 503, "overloaded" },
        { GW_ERR_DRAINING, 503, "draining" },
        { GW_ERR_UPSTREAM_UNAVAILABLE, 503, "upstream_unavailable" },
        { GW_ERR_UPSTREAM_CLOSED, 502, "upstream_closed" },
        { GW_ERR_BAD_UPSTREAM_MESSAGE, 502, "bad_upstream_message" },
        { GW_ERR_UPSTREAM_TIMEOUT, 504, "upstream_timeout" },
        { GW_ERR_NO_HANDLER, 501, "no_handler" },
        { GW_ERR_UPSTREAM_ERROR, 500, "upstream_error" },
        { GW_ERR_NOT_IMPLEMENTED, 501, "not_implemented" },
        { GW_ERR_INTERNAL, 500, "internal_error" },
    };
    assert_int_equal(sizeof spec / sizeof spec[0], GW_ERR_COUNT);
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        assert_int_equal(gw_error_status(spec[i].e), spec[i].status);
        assert_string_equal(gw_error_code(spec[i].e), spec[i].code);
        assert_true(strlen(gw_error_message(spec[i].e)) > 0);
    }
}

static void outcomes_map_to_kinds(void **state)
{
    (void)state;
    assert_int_equal(gw_error_of_outcome(UP_ERROR), GW_ERR_UPSTREAM_ERROR);
    assert_int_equal(gw_error_of_outcome(UP_TIMEOUT), GW_ERR_UPSTREAM_TIMEOUT);
    assert_int_equal(gw_error_of_outcome(UP_UNAVAILABLE), GW_ERR_UPSTREAM_UNAVAILABLE);
    assert_int_equal(gw_error_of_outcome(UP_CLOSED), GW_ERR_UPSTREAM_CLOSED);
    assert_int_equal(gw_error_of_outcome(UP_BAD_MESSAGE), GW_ERR_BAD_UPSTREAM_MESSAGE);
    assert_int_equal(gw_error_of_outcome(UP_NO_HANDLER), GW_ERR_NO_HANDLER);
    assert_int_equal(gw_error_of_outcome(UP_OVERLOADED), GW_ERR_OVERLOADED);
    assert_int_equal(gw_error_of_outcome(UP_CANCELLED), GW_ERR_DRAINING);
}

static void upstream_error_status_from_err(void **state)
{
    (void)state;
    span_t none = span_of(NULL, 0);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, none), 500);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("{\"statusCode\":404}")), 404);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("{\"status\":429,\"m\":1}")), 429);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("{\"statusCode\":\"x\",\"status\":418}")), 418);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("{\"statusCode\":4.03e2}")), 500);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("{\"statusCode\":600}")), 500);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("{\"statusCode\":399}")), 500);
    assert_int_equal(gw_error_status_for(GW_ERR_UPSTREAM_ERROR, SPAN_LIT("\"boom\"")), 500);
    /* only upstream errors take a status from details */
    assert_int_equal(gw_error_status_for(GW_ERR_NO_HANDLER, SPAN_LIT("{\"statusCode\":404}")), 501);
}

static void bodies_are_exact(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    assert_int_equal(gw_error_body(&b, GW_ERR_NOT_FOUND, NULL, span_of(NULL, 0)), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "{\"statusCode\":404,\"error\":\"not_found\",\"message\":\"no route matches the path\"}");
    buf_clear(&b);
    assert_int_equal(gw_error_body(&b, GW_ERR_UPSTREAM_ERROR, "service \"a\"\n failed",
                                   SPAN_LIT("{\"statusCode\":409,\"x\":[1]}")), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "{\"statusCode\":409,\"error\":\"upstream_error\",\"message\":"
                                "\"service \\\"a\\\"\\n failed\",\"details\":{\"statusCode\":409,\"x\":[1]}}");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_matches_the_spec),
        cmocka_unit_test(outcomes_map_to_kinds),
        cmocka_unit_test(upstream_error_status_from_err),
        cmocka_unit_test(bodies_are_exact),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
