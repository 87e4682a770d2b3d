/* Unit tests of core/utf8: validation and UTF-16 length, the latter checked
 * against glibc's iconv as an independent computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <iconv.h>
#include <string.h>

#include "core/utf8.h"

/* UTF-16 units of valid UTF-8 text as iconv counts them. */
static size_t iconv_units(const char *s)
{
    iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
    assert_true(cd != (iconv_t)-1);
    char out[4096];
    char *in = (char *)s, *o = out;
    size_t inleft = strlen(s), outleft = sizeof out;
    assert_true(iconv(cd, &in, &inleft, &o, &outleft) != (size_t)-1);
    iconv_close(cd);
    return (sizeof out - outleft) / 2;
}

static const char *samples[] = {
    "", "plain ascii", "héllo", "한국어 텍스트", "😀", "a😀b🎉c",
    "{\"response\":\"héllo 한국 😀\",\"isDisposed\":true,\"id\":\"u1\"}",
    "Ünïcödé ✓ 𝄞 music", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
};

static void units_match_iconv(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        assert_int_equal(utf8_utf16_units(samples[i], strlen(samples[i])), iconv_units(samples[i]));
}

/* Counting goes 8 bytes at a time: put each kind of character at every
 * position of a word, with ASCII runs around it. */
static void units_match_iconv_at_every_offset(void **state)
{
    (void)state;
    static const char *chars[] = { "\xc3\xa9", "\xed\x95\x9c", "\xf0\x9f\x98\x80",
                                   "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf" };
    for (size_t c = 0; c < sizeof chars / sizeof chars[0]; c++) {
        for (size_t pos = 0; pos < 18; pos++) {
            char text[64] = "";
            memset(text, 'a', pos);
            strcat(text, chars[c]);
            strcat(text, "bbbbbbbbbbbbbbbbbbb");
            strcat(text, chars[c]);
            assert_int_equal(utf8_utf16_units(text, strlen(text)), iconv_units(text));
        }
    }
}

static void protocol_example_is_54_units_61_bytes(void **state)
{
    (void)state;
    const char *s = samples[6];
    assert_int_equal(strlen(s), 61); /* PROTOCOL.md says 64: it is 61 (Node agrees) */
    assert_int_equal(utf8_utf16_units(s, strlen(s)), 54);
}

static void valid_text_is_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        assert_true(utf8_valid(samples[i], strlen(samples[i])));
}

static void invalid_sequences_are_rejected(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\x80",             /* lone continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xed\xa0\x80",     /* encoded surrogate U+D800 */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* invalid lead */
        "\xff",             /* invalid byte */
        "abc\xc3",          /* truncated at the end */
        "\xe2\x82",         /* truncated 3-byte */
        "\xc3\x28",         /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(utf8_valid(bad[i], strlen(bad[i])));
}

static void incomplete_prefix_asks_for_more(void **state)
{
    (void)state;
    const unsigned char emoji[] = { 0xf0, 0x9f, 0x98, 0x80 };
    for (size_t n = 1; n < 4; n++)
        assert_int_equal(utf8_sequence(emoji, n), 0);
    assert_int_equal(utf8_sequence(emoji, 4), 4);
    const unsigned char bad_second[] = { 0xf0, 0x41 };
    assert_int_equal(utf8_sequence(bad_second, 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(units_match_iconv),
        cmocka_unit_test(units_match_iconv_at_every_offset),
        cmocka_unit_test(protocol_example_is_54_units_61_bytes),
        cmocka_unit_test(valid_text_is_accepted),
        cmocka_unit_test(invalid_sequences_are_rejected),
        cmocka_unit_test(incomplete_prefix_asks_for_more),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
