/* Unit tests of core/message: packets built byte-exact, and every reply
 * shape of PROTOCOL.md read without touching the values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/message.h"

static void assert_buf(const buf_t *b, const char *expected)
{
    assert_int_equal(b->len, strlen(expected));
    assert_memory_equal(b->data, expected, b->len);
}

static void request_splices_texts_as_given(void **state)
{
    (void)state;
    buf_t out = BUF_INIT;
    assert_int_equal(msg_encode_request(&out, SPAN_LIT("{ \"cmd\" : \"sum\" }"), SPAN_LIT("[1,2,3]"),
                                        SPAN_LIT("7"), SPAN_LIT("")), 0);
    assert_buf(&out, "53#{\"pattern\":{ \"cmd\" : \"sum\" },\"data\":[1,2,3],\"id\":\"7\"}");
    buf_free(&out);
}

static void request_counts_units_not_bytes(void **state)
{
    (void)state;
    buf_t out = BUF_INIT;
    /* "😀" is 2 units (4 bytes), "é" 1 unit (2 bytes), 12345678901234567890123 stays */
    msg_encode_request(&out, SPAN_LIT("\"echo\""), SPAN_LIT("[\"😀é\",12345678901234567890123]"),
                       SPAN_LIT("1"), SPAN_LIT("{\"requestId\":\"r\"}"));
    const char *json = "{\"pattern\":\"echo\",\"data\":[\"😀é\",12345678901234567890123],\"id\":\"1\","
                       "\"metadata\":{\"requestId\":\"r\"}}";
    char expected[256];
    snprintf(expected, sizeof expected, "%zu#%s", strlen(json) - 3, json); /* 3 bytes more than units */
    assert_buf(&out, expected);
    buf_free(&out);
}

static void event_has_no_id(void **state)
{
    (void)state;
    buf_t out = BUF_INIT;
    msg_encode_event(&out, SPAN_LIT("\"user_created\""), SPAN_LIT("{\"n\":\"한\"}"), SPAN_LIT(""));
    assert_buf(&out, "43#{\"pattern\":\"user_created\",\"data\":{\"n\":\"한\"}}");
    buf_clear(&out);
    msg_encode_event(&out, SPAN_LIT("\"e\""), SPAN_LIT("null"), SPAN_LIT("{}"));
    assert_buf(&out, "41#{\"pattern\":\"e\",\"data\":null,\"metadata\":{}}");
    buf_free(&out);
}

static void ids_round_trip(void **state)
{
    (void)state;
    char text[MSG_ID_MAX];
    uint64_t v;
    span_t s = msg_format_id(UINT64_MAX, text);
    assert_true(span_eq_cstr(s, "18446744073709551615"));
    assert_true(msg_parse_id(s, &v));
    assert_true(v == UINT64_MAX);
    assert_true(msg_parse_id(SPAN_LIT("0"), &v) && v == 0);
    assert_false(msg_parse_id(SPAN_LIT("18446744073709551616"), &v));
    assert_false(msg_parse_id(SPAN_LIT("01"), &v));
    assert_false(msg_parse_id(SPAN_LIT("a1"), &v));
    assert_false(msg_parse_id(SPAN_LIT(""), &v));
    assert_false(msg_parse_id(SPAN_LIT("5f0b8c3e-uuid"), &v));
}

static msg_reply_t read_ok(const char *json)
{
    msg_reply_t r;
    char why[128];
    if (msg_read_reply(span_cstr(json), &r, why, sizeof why) != 0)
        fail_msg("rejected %s: %s", json, why);
    return r;
}

static void reply_shapes(void **state)
{
    (void)state;
    msg_reply_t r = read_ok("{\"id\":\"9\",\"response\":6,\"isDisposed\":true}");
    assert_int_equal(r.kind, MSG_REPLY_LAST_VALUE);
    assert_true(span_eq_cstr(r.id, "9"));
    assert_true(span_eq_cstr(r.value, "6"));

    r = read_ok("{\"response\":{\"a\":[1]},\"id\":\"9\"}");
    assert_int_equal(r.kind, MSG_REPLY_VALUE);
    assert_true(span_eq_cstr(r.value, "{\"a\":[1]}"));

    r = read_ok("{\"isDisposed\":true,\"id\":\"9\"}");
    assert_int_equal(r.kind, MSG_REPLY_DONE);
    assert_int_equal(r.value.n, 0);

    r = read_ok("{\"err\":{\"statusCode\":403,\"message\":\"nope\"},\"isDisposed\":true,\"id\":\"9\"}");
    assert_int_equal(r.kind, MSG_REPLY_ERROR);
    assert_true(span_eq_cstr(r.value, "{\"statusCode\":403,\"message\":\"nope\"}"));

    r = read_ok("{\"id\":\"9\",\"err\":{\"status\":\"error\",\"message\":\"text\"},\"isDisposed\":true}");
    assert_int_equal(r.kind, MSG_REPLY_ERROR);

    r = read_ok("{\"id\":\"9\",\"status\":\"error\",\"err\":\"There is no matching message handler "
                "defined in the remote service.\"}");
    assert_int_equal(r.kind, MSG_REPLY_NO_HANDLER);
    assert_true(span_eq_cstr(r.value, "\"There is no matching message handler defined in the remote service.\""));

    r = read_ok("{\"id\":\"9\",\"response\":null,\"isDisposed\":true}");
    assert_int_equal(r.kind, MSG_REPLY_LAST_VALUE);
    assert_true(span_eq_cstr(r.value, "null"));
}

static void falsy_err_is_not_an_error(void **state)
{
    (void)state;
    /* Nest's client tests `if (err)`: null or false err is no error */
    msg_reply_t r = read_ok("{\"id\":\"1\",\"err\":null,\"isDisposed\":true}");
    assert_int_equal(r.kind, MSG_REPLY_DONE);
    r = read_ok("{\"id\":\"1\",\"err\":false,\"response\":5}");
    assert_int_equal(r.kind, MSG_REPLY_VALUE);
    /* a value the handler left undefined: JSON.stringify dropped `response` */
    r = read_ok("{\"id\":\"1\"}");
    assert_int_equal(r.kind, MSG_REPLY_VALUE);
    assert_true(span_eq_cstr(r.value, "null"));
}

static void hostile_values_survive_byte_exact(void **state)
{
    (void)state;
    static const char *values[] = {
        "12345678901234567890123", "1.2345678901234568e+22", "0.1", "-0",
        "\"\\u0000\"", "\"\\ud800\"", "\"héllo 한국 😀\"", "[1e400,\"\\udfff\"]",
        "{\"n\":123456789012345678901234567890,\"s\":\"\\u0000\\ud800x\"}",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"id\":\"3\",\"response\":%s,\"isDisposed\":true}", values[i]);
        msg_reply_t r = read_ok(json);
        assert_true(span_eq_cstr(r.value, values[i]));
    }
}

static void repeated_keys_last_wins(void **state)
{
    (void)state;
    msg_reply_t r = read_ok("{\"id\":\"1\",\"response\":1,\"response\":2,\"id\":\"2\"}");
    assert_true(span_eq_cstr(r.value, "2"));
    assert_true(span_eq_cstr(r.id, "2"));
}

static void expect_rejected(const char *json, const char *why_expected)
{
    msg_reply_t r;
    char why[128];
    assert_int_equal(msg_read_reply(span_cstr(json), &r, why, sizeof why), -1);
    assert_string_equal(why, why_expected);
}

static void bad_replies_are_rejected(void **state)
{
    (void)state;
    expect_rejected("{\"response\":1}", "reply has no string \"id\"");
    expect_rejected("{\"id\":7,\"response\":1}", "reply has no string \"id\"");
    expect_rejected("{\"id\":null}", "reply has no string \"id\"");
    expect_rejected("[\"id\"]", "reply is not a JSON object");
    expect_rejected("", "reply is not a JSON object");
    expect_rejected("{\"id\":\"1\",\"response\":01}", "invalid JSON in reply: expected ',' or '}' at byte 22");
    expect_rejected("{\"id\":\"1\"", "invalid JSON in reply: unexpected end of input at byte 9");
    expect_rejected("{\"id\":\"1\"} {}",
                    "invalid JSON in reply: unexpected characters after the object at byte 11");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_splices_texts_as_given),
        cmocka_unit_test(request_counts_units_not_bytes),
        cmocka_unit_test(event_has_no_id),
        cmocka_unit_test(ids_round_trip),
        cmocka_unit_test(reply_shapes),
        cmocka_unit_test(falsy_err_is_not_an_error),
        cmocka_unit_test(hostile_values_survive_byte_exact),
        cmocka_unit_test(repeated_keys_last_wins),
        cmocka_unit_test(bad_replies_are_rejected),
    };
    return cmocka_run_group_tests_name("message", tests, NULL, NULL);
}
