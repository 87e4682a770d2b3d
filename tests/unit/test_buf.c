/* Unit tests of core/buf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <stdio.h>

#include "core/buf.h"

static void append_grows_and_keeps_bytes(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= b.len);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.data[i], '0' + (int)(i % 10));
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void consume_moves_the_rest_to_the_front(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_cstr(&b, "hello world");
    buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    buf_consume(&b, 99);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void u64_and_spans(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_append_u64(&b, 18446744073709551615ull);
    assert_true(span_eq(span_of(b.data, b.len), SPAN_LIT("18446744073709551615")));
    /* the hand-written conversion against printf's, around every power of ten */
    for (unsigned long long p = 1, k = 0; k < 20; k++, p *= 10) {
        unsigned long long vs[] = { p - 1, p, p + 1, p * 9 + 7 };
        for (size_t i = 0; i < 4; i++) {
            char mine[U64_DECIMAL_MAX + 1], theirs[32];
            size_t n = u64_decimal(vs[i], mine);
            mine[n] = '\0';
            snprintf(theirs, sizeof theirs, "%llu", vs[i]);
            assert_string_equal(mine, theirs);
        }
    }
    assert_true(span_eq_cstr(SPAN_LIT("abc"), "abc"));
    assert_false(span_eq_cstr(SPAN_LIT("abc"), "abd"));
    assert_true(span_eq(span_of(NULL, 0), SPAN_LIT("")));
    buf_free(&b);
}

static void take_cstr_hands_over_a_string(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    char *empty = buf_take_cstr(&b);
    assert_non_null(empty);
    assert_string_equal(empty, "");
    free(empty);
    buf_append(&b, "ab\0cd", 5);
    buf_append_cstr(&b, "ef");
    char *s = buf_take_cstr(&b);
    assert_non_null(s);
    assert_memory_equal(s, "ab\0cdef", 8);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);
    buf_append_cstr(&b, "again");
    s = buf_take_cstr(&b);
    assert_string_equal(s, "again");
    free(s);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_grows_and_keeps_bytes),
        cmocka_unit_test(consume_moves_the_rest_to_the_front),
        cmocka_unit_test(u64_and_spans),
        cmocka_unit_test(take_cstr_hands_over_a_string),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
