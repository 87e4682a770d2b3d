/* Unit tests of core/json_scan: validation, spans, members, truthiness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"

static int valid(const char *s)
{
    span_t v;
    return jscan_document(s, strlen(s), &v, NULL) == 0;
}

static void accepts_valid_documents(void **state)
{
    (void)state;
    static const char *ok[] = {
        "null", "true", "false", "0", "-0", "1.5", "-1.5e10", "1E+2", "2e-3",
        "12345678901234567890123", "1.2345678901234568e+22", "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "\"\\u0000\"", "\"\\ud800\"",
        "\"\\uDC00 lone low\"", "\"\\ud83d\\ude00\"", "\"héllo 한국 😀\"",
        "[]", "{}", " [ 1 , 2 , [ ] , { } ] ", "{\"a\":{\"b\":[1,{\"c\":null}]}}",
        "\t\r\n{\"k\" : \"v\"}\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!valid(ok[i]))
            fail_msg("rejected valid JSON: %s", ok[i]);
    }
}

/* An empty text may come as {NULL, 0} (an empty header or query value). */
static void empty_text_as_null(void **state)
{
    (void)state;
    span_t v;
    jscan_error_t err = {99, NULL};
    assert_int_equal(jscan_document(NULL, 0, &v, &err), -1);
    assert_int_equal(err.offset, 0);
    assert_string_equal(err.what, "unexpected end of input");
    size_t pos = 0;
    assert_int_equal(jscan_value(NULL, 0, &pos, &v, NULL), -1);
}

static void rejects_invalid_documents(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", " ", "nul", "True", "01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10",
        "NaN", "Infinity", "[1,]", "[,1]", "{\"a\":1,}", "{a:1}", "{'a':1}",
        "{\"a\" 1}", "{\"a\":}", "[1 2]", "\"unterminated", "\"bad \\x escape\"",
        "\"\\u12\"", "\"\\u12g4\"", "\"tab\tinside\"", "\"nl\ninside\"",
        "\"\xc3\x28\"", "\"\xed\xa0\x80\"", "\"\xff\"", "[1]]", "{} {}", "1 2",
        "[", "{", "{\"a\"", "{\"a\":", "[1", "{\"a\":1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (valid(bad[i]))
            fail_msg("accepted invalid JSON: %s", bad[i]);
    }
}

static void error_says_what_and_where(void **state)
{
    (void)state;
    jscan_error_t err;
    span_t v;
    const char *s = "{\"a\":[1,2,}";
    assert_int_equal(jscan_document(s, strlen(s), &v, &err), -1);
    assert_int_equal(err.offset, 10);
    assert_string_equal(err.what, "unexpected character");
    char text[64];
    jscan_error_format(&err, text, sizeof text);
    assert_string_equal(text, "unexpected character at byte 10");

    s = "\"ok\" x";
    assert_int_equal(jscan_document(s, strlen(s), &v, &err), -1);
    assert_int_equal(err.offset, 5);
    assert_string_equal(err.what, "unexpected characters after the value");
}

static void nesting_is_bounded(void **state)
{
    (void)state;
    size_t depth = JSCAN_MAX_DEPTH;
    char *s = malloc(2 * depth + 2);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = 0;
    assert_true(valid(s));
    /* one level deeper fails cleanly, no stack overflow */
    char *t = malloc(2 * depth + 4);
    memset(t, '[', depth + 1);
    memset(t + depth + 1, ']', depth + 1);
    t[2 * depth + 2] = 0;
    jscan_error_t err;
    span_t v;
    assert_int_equal(jscan_document(t, strlen(t), &v, &err), -1);
    assert_string_equal(err.what, "nesting too deep");
    /* mixed objects and arrays keep their kinds across 64-bit words */
    char mixed[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(mixed, i % 3 ? "[" : "{\"k\":");
    strcat(mixed, "1");
    for (int i = 99; i >= 0; i--)
        strcat(mixed, i % 3 ? "]" : "}");
    assert_true(valid(mixed));
    free(s);
    free(t);
}

static void value_span_is_exact(void **state)
{
    (void)state;
    const char *s = "  [1, \"x\"]  , 7";
    size_t pos = 0;
    span_t v;
    assert_int_equal(jscan_value(s, strlen(s), &pos, &v, NULL), 0);
    assert_true(span_eq_cstr(v, "[1, \"x\"]"));
    assert_int_equal(pos, 10);
    assert_int_equal(jscan_type_of(v), JSCAN_ARRAY);
}

static void members_iterate_and_last_wins(void **state)
{
    (void)state;
    const char *s = "{ \"id\" : \"1\", \"big\": 12345678901234567890123, \"id\": \"2\", "
                    "\"i\\u0064x\": 0, \"nul\": \"\\u0000\" }";
    span_t obj = span_cstr(s), v;
    assert_true(jscan_member(obj, "id", &v));
    assert_true(span_eq_cstr(v, "\"2\""));
    assert_true(jscan_member(obj, "big", &v));
    assert_true(span_eq_cstr(v, "12345678901234567890123"));
    assert_true(jscan_member(obj, "idx", &v)); /* escaped key */
    assert_true(span_eq_cstr(v, "0"));
    assert_true(jscan_member(obj, "nul", &v));
    assert_true(span_eq_cstr(v, "\"\\u0000\""));
    assert_false(jscan_member(obj, "missing", &v));

    jscan_members_t it;
    span_t k;
    int count = 0;
    jscan_members_init(&it, s, strlen(s), 0);
    while (jscan_members_next(&it, &k, &v) == 1)
        count++;
    assert_int_equal(count, 5);
    assert_int_equal(it.pos, strlen(s));
}

static void members_report_errors(void **state)
{
    (void)state;
    const char *s = "{\"a\":1,}";
    jscan_members_t it;
    span_t k, v;
    jscan_members_init(&it, s, strlen(s), 0);
    assert_int_equal(jscan_members_next(&it, &k, &v), 1);
    assert_int_equal(jscan_members_next(&it, &k, &v), -1);
    assert_string_equal(it.err.what, "expected a string key");
    assert_int_equal(it.err.offset, 7);
}

static void string_eq_unescapes(void **state)
{
    (void)state;
    assert_true(jscan_string_eq(SPAN_LIT("\"abc\""), "abc", 3));
    assert_false(jscan_string_eq(SPAN_LIT("\"abc\""), "ab", 2));
    assert_false(jscan_string_eq(SPAN_LIT("\"ab\""), "abc", 3));
    assert_true(jscan_string_eq(SPAN_LIT("\"a\\\"b\\n\""), "a\"b\n", 4));
    assert_true(jscan_string_eq(SPAN_LIT("\"\\u00e9\""), "é", strlen("é")));
    assert_true(jscan_string_eq(SPAN_LIT("\"\\ud83d\\ude00\""), "😀", strlen("😀")));
    assert_true(jscan_string_eq(SPAN_LIT("\"한\""), "한", strlen("한")));
}

/* Decodes a token and checks the bytes (length given: they may hold NULs). */
static void assert_decodes(const char *token, const char *expected, size_t expected_len)
{
    buf_t out = BUF_INIT;
    buf_append(&out, "<", 1);
    assert_int_equal(jscan_string_decode(span_cstr(token), &out), 0);
    assert_int_equal(out.len, expected_len + 1);
    assert_memory_equal(out.data, "<", 1);
    if (expected_len)
        assert_memory_equal(out.data + 1, expected, expected_len);
    buf_free(&out);
}

#define DECODES(token, expected) assert_decodes(token, expected, sizeof(expected) - 1)

static void string_decode_unescapes(void **state)
{
    (void)state;
    DECODES("\"\"", "");
    DECODES("\"abc\"", "abc");
    DECODES("\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d");
    DECODES("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t");
    DECODES("\"caf\\u00e9 \\u00E9 caf\xc3\xa9\"", "caf\xc3\xa9 \xc3\xa9 caf\xc3\xa9");
    DECODES("\"\\u0041\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
            "A\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
    DECODES("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"); /* a pair: one code point */
    DECODES("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80");
    DECODES("\"\xf0\x9f\x98\x80\"", "\xf0\x9f\x98\x80");
    /* what JSON.parse holds, in bytes: NUL and lone surrogates (3-byte form) */
    DECODES("\"a\\u0000b\"", "a\0b");
    DECODES("\"\\ud800\"", "\xed\xa0\x80");
    DECODES("\"\\udc00x\"", "\xed\xb0\x80x");
    DECODES("\"\\ud800\\u0041\"", "\xed\xa0\x80" "A");   /* high then not a low */
    DECODES("\"\\ud800\\ud800\"", "\xed\xa0\x80\xed\xa0\x80");
    DECODES("\"\\ude00\\ud83d\"", "\xed\xb8\x80\xed\xa0\xbd"); /* reversed pair */
    DECODES("\"\\ud800\\n\"", "\xed\xa0\x80\n");
    /* Not a string token: nothing appended. */
    DECODES("12", "");
    DECODES("", "");
}

static void string_decode_of_a_member(void **state)
{
    (void)state;
    const char *s = "{\"k\":\"x\\ty\",\"n\":1}";
    span_t obj = span_cstr(s), v;
    assert_true(jscan_member(obj, "k", &v));
    buf_t out = BUF_INIT;
    assert_int_equal(jscan_string_decode(v, &out), 0);
    assert_int_equal(jscan_string_decode(v, &out), 0); /* appends */
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.data, "x\tyx\ty", 6);
    buf_free(&out);
}

static void truthiness_follows_javascript(void **state)
{
    (void)state;
    static const char *falsy[] = { "null", "false", "\"\"", "0", "-0", "0.0", "0e10", "-0.000E-5" };
    static const char *truthy[] = { "true", "\"0\"", "\" \"", "1", "-0.1", "0.001", "[]", "{}", "1e-5" };
    for (size_t i = 0; i < sizeof falsy / sizeof falsy[0]; i++)
        assert_false(jscan_truthy(span_cstr(falsy[i])));
    for (size_t i = 0; i < sizeof truthy / sizeof truthy[0]; i++)
        assert_true(jscan_truthy(span_cstr(truthy[i])));
    assert_false(jscan_truthy(span_of(NULL, 0))); /* absent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_valid_documents),
        cmocka_unit_test(empty_text_as_null),
        cmocka_unit_test(rejects_invalid_documents),
        cmocka_unit_test(error_says_what_and_where),
        cmocka_unit_test(nesting_is_bounded),
        cmocka_unit_test(value_span_is_exact),
        cmocka_unit_test(members_iterate_and_last_wins),
        cmocka_unit_test(members_report_errors),
        cmocka_unit_test(string_eq_unescapes),
        cmocka_unit_test(string_decode_unescapes),
        cmocka_unit_test(string_decode_of_a_member),
        cmocka_unit_test(truthiness_follows_javascript),
    };
    return cmocka_run_group_tests_name("json_scan", tests, NULL, NULL);
}
