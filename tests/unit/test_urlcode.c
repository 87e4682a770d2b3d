/* Unit tests of gateway/urlcode: percent-decoding and query lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/urlcode.h"

/* Decodes `in` in `mode` both ways (caller buffer and buf_t) and checks
 * that both give expected[0..expected_len). */
static void assert_decodes(const char *in, urlcode_mode mode, const char *expected,
                           size_t expected_len)
{
    char out[256];
    size_t len = 999;
    assert_int_equal(urlcode_decode(in, strlen(in), mode, out, &len), URLCODE_OK);
    assert_int_equal(len, expected_len);
    assert_memory_equal(out, expected, expected_len);

    buf_t b = BUF_INIT;
    buf_append_cstr(&b, "<");
    assert_int_equal(urlcode_decode_buf(in, strlen(in), mode, &b), URLCODE_OK);
    assert_int_equal(b.len, expected_len + 1);
    assert_memory_equal(b.data + 1, expected, expected_len);
    buf_free(&b);
    assert_int_equal(urlcode_check(in, strlen(in), NULL), URLCODE_OK);
}

#define DECODES(in, mode, expected) assert_decodes(in, mode, expected, sizeof(expected) - 1)

static void decodes_path_segments(void **state)
{
    (void)state;
    DECODES("", URLCODE_PATH, "");
    DECODES("plain", URLCODE_PATH, "plain");
    DECODES("a%20b", URLCODE_PATH, "a b");
    DECODES("a+b", URLCODE_PATH, "a+b"); /* '+' is literal in a path */
    DECODES("a%2Fb%2fc", URLCODE_PATH, "a/b/c");
    DECODES("%41%42%43", URLCODE_PATH, "ABC");
    DECODES("caf%C3%A9", URLCODE_PATH, "caf\xc3\xa9");
    DECODES("%ff%FE", URLCODE_PATH, "\xff\xfe"); /* bytes, not necessarily UTF-8 */
    DECODES("%25", URLCODE_PATH, "%");
    DECODES("%2525", URLCODE_PATH, "%25"); /* decoded once only */
    DECODES("\xc3\xa9", URLCODE_PATH, "\xc3\xa9");
    DECODES("%01", URLCODE_PATH, "\x01");
}

static void decodes_query_components(void **state)
{
    (void)state;
    DECODES("a+b", URLCODE_QUERY, "a b");
    DECODES("a%2Bb", URLCODE_QUERY, "a+b");
    DECODES("+++", URLCODE_QUERY, "   ");
    DECODES("x%20y%26z%3D", URLCODE_QUERY, "x y&z=");
    DECODES("%7B%22a%22%3A1%7D", URLCODE_QUERY, "{\"a\":1}");
}

static void rejects_bad_escapes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        urlcode_status status;
        size_t offset;
    } cases[] = {
        {"%", URLCODE_BAD_ESCAPE, 0},    {"%4", URLCODE_BAD_ESCAPE, 0},
        {"%zz", URLCODE_BAD_ESCAPE, 0},  {"%g0", URLCODE_BAD_ESCAPE, 0},
        {"%0g", URLCODE_BAD_ESCAPE, 0},  {"abc%", URLCODE_BAD_ESCAPE, 3},
        {"ab%4", URLCODE_BAD_ESCAPE, 2}, {"%41%", URLCODE_BAD_ESCAPE, 3},
        {"% 41", URLCODE_BAD_ESCAPE, 0}, {"%+1", URLCODE_BAD_ESCAPE, 0},
        {"%00", URLCODE_NUL, 0},         {"a%00b", URLCODE_NUL, 1},
        {"%41%00", URLCODE_NUL, 3},      {"%2%00", URLCODE_BAD_ESCAPE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i].in;
        char out[16];
        size_t len = 77;
        for (int mode = URLCODE_PATH; mode <= URLCODE_QUERY; mode++) {
            assert_int_equal(urlcode_decode(in, strlen(in), (urlcode_mode)mode, out, &len),
                             cases[i].status);
            assert_int_equal(len, 77); /* untouched */
        }
        size_t offset = 99;
        assert_int_equal(urlcode_check(in, strlen(in), &offset), cases[i].status);
        assert_int_equal(offset, cases[i].offset);

        buf_t b = BUF_INIT;
        buf_append_cstr(&b, "keep");
        assert_int_equal(urlcode_decode_buf(in, strlen(in), URLCODE_PATH, &b), cases[i].status);
        assert_int_equal(b.len, 4);
        assert_memory_equal(b.data, "keep", 4);
        buf_free(&b);
    }
}

static void stops_at_the_length_given(void **state)
{
    (void)state;
    char out[8];
    size_t len;
    /* "%4" is bad when the text ends there, even if "%41" follows in memory. */
    assert_int_equal(urlcode_decode("%41", 2, URLCODE_PATH, out, &len), URLCODE_BAD_ESCAPE);
    assert_int_equal(urlcode_decode("ab%41", 2, URLCODE_PATH, out, &len), URLCODE_OK);
    assert_int_equal(len, 2);
}

static void decodes_in_place(void **state)
{
    (void)state;
    char text[] = "a%20b+c%2F%e2%82%ac";
    size_t len;
    assert_int_equal(urlcode_decode(text, strlen(text), URLCODE_QUERY, text, &len), URLCODE_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(text, "a b c/\xe2\x82\xac", 9);
}

static void decode_buf_of_nothing(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    assert_int_equal(urlcode_decode_buf("", 0, URLCODE_QUERY, &b), URLCODE_OK);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
}

/* Looks NAME up in QUERY: 1 with the value, 0, or the error. */
static int lookup(const char *query, const char *name, char *value, size_t size)
{
    buf_t b = BUF_INIT;
    int rc = urlcode_query_get(query, strlen(query), name, strlen(name), &b);
    if (rc == 1) {
        assert_true(b.len < size);
        if (b.len)
            memcpy(value, b.data, b.len);
        value[b.len] = '\0';
        assert_true(memchr(b.data ? b.data : "", '\0', b.len) == NULL);
    } else {
        assert_int_equal(b.len, 0);
    }
    buf_free(&b);
    return rc;
}

#define ASSERT_QUERY(query, name, expected)                                                      \
    do {                                                                                         \
        char got_[128];                                                                          \
        assert_int_equal(lookup(query, name, got_, sizeof got_), 1);                             \
        assert_string_equal(got_, expected);                                                     \
    } while (0)

static void query_finds_the_first_parameter(void **state)
{
    (void)state;
    const char *q = "a=1&b=x%20y&a=2&flag&c=&d=x=y";
    ASSERT_QUERY(q, "a", "1");
    ASSERT_QUERY(q, "b", "x y");
    ASSERT_QUERY(q, "flag", ""); /* no '=' */
    ASSERT_QUERY(q, "c", "");
    ASSERT_QUERY(q, "d", "x=y"); /* the first '=' splits */
    char v[8];
    assert_int_equal(lookup(q, "e", v, sizeof v), 0);
    assert_int_equal(lookup(q, "", v, sizeof v), 0);
    assert_int_equal(lookup(q, "fla", v, sizeof v), 0);  /* no prefix match */
    assert_int_equal(lookup(q, "flags", v, sizeof v), 0);
    assert_int_equal(lookup("", "a", v, sizeof v), 0);
    assert_int_equal(lookup("&&&", "a", v, sizeof v), 0);
}

static void query_decodes_names_and_values(void **state)
{
    (void)state;
    ASSERT_QUERY("first+name=Ada+Lovelace", "first name", "Ada Lovelace");
    ASSERT_QUERY("na%6De=v%2Bw", "name", "v+w");
    ASSERT_QUERY("%E2%82%AC=euro", "\xe2\x82\xac", "euro");
    ASSERT_QUERY("&&a=1&&", "a", "1");
    ASSERT_QUERY("=anon&a=1", "", "anon"); /* an empty name is a name */
    ASSERT_QUERY("q=%7B%22a%22%3A%5B1%5D%7D", "q", "{\"a\":[1]}");
    ASSERT_QUERY("a%3Db=1", "a=b", "1"); /* an encoded '=' is part of the name */
    ASSERT_QUERY("a%26b=1", "a&b", "1");
    /* A name that cannot be decoded equals nothing: skipped. */
    ASSERT_QUERY("x%zz=1&x=2", "x", "2");
    ASSERT_QUERY("x%00=1&x=2", "x", "2");
    ASSERT_QUERY("%=1&x=3", "x", "3");
}

static void query_value_errors(void **state)
{
    (void)state;
    char v[8];
    assert_int_equal(lookup("a=%zz", "a", v, sizeof v), URLCODE_BAD_ESCAPE);
    assert_int_equal(lookup("a=x%4", "a", v, sizeof v), URLCODE_BAD_ESCAPE);
    assert_int_equal(lookup("a=%00", "a", v, sizeof v), URLCODE_NUL);
    /* The first parameter decides: a later good one does not rescue it. */
    assert_int_equal(lookup("a=%zz&a=1", "a", v, sizeof v), URLCODE_BAD_ESCAPE);
    /* Errors in other parameters do not matter. */
    ASSERT_QUERY("b=%zz&a=1&c=%00", "a", "1");
}

static void query_appends_to_the_value_buffer(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_cstr(&b, "x:");
    assert_int_equal(urlcode_query_get("k=v+1", 5, "k", 1, &b), 1);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "x:v 1", 5);
    /* name_len is honored: "kk" with length 1 is "k". */
    assert_int_equal(urlcode_query_get("k=2", 3, "kk", 1, &b), 1);
    assert_memory_equal(b.data, "x:v 12", 6);
    /* The query length is honored too. */
    assert_int_equal(urlcode_query_get("k=2&z=1", 3, "z", 1, &b), 0);
    buf_free(&b);
}

static void status_texts(void **state)
{
    (void)state;
    assert_string_equal(urlcode_status_text(URLCODE_OK), "ok");
    assert_string_equal(urlcode_status_text(URLCODE_BAD_ESCAPE), "invalid percent-encoding");
    assert_string_equal(urlcode_status_text(URLCODE_NUL), "%00 (NUL) is not allowed");
    assert_string_equal(urlcode_status_text(URLCODE_NOMEM), "out of memory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_path_segments),
        cmocka_unit_test(decodes_query_components),
        cmocka_unit_test(rejects_bad_escapes),
        cmocka_unit_test(stops_at_the_length_given),
        cmocka_unit_test(decodes_in_place),
        cmocka_unit_test(decode_buf_of_nothing),
        cmocka_unit_test(query_finds_the_first_parameter),
        cmocka_unit_test(query_decodes_names_and_values),
        cmocka_unit_test(query_value_errors),
        cmocka_unit_test(query_appends_to_the_value_buffer),
        cmocka_unit_test(status_texts),
    };
    return cmocka_run_group_tests_name("urlcode", tests, NULL, NULL);
}
