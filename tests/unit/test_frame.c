/* Unit tests of core/frame: the incremental decoder under every split of its
 * input, UTF-16 lengths, and broken streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/frame.h"

static const char *messages[] = {
    "{\"response\":\"héllo 한국 😀\",\"isDisposed\":true,\"id\":\"u1\"}",
    "{\"id\":\"2\",\"response\":\"plain\"}",
    "{\"id\":\"3\",\"response\":\"😀😀😀🎉\",\"isDisposed\":true}",
    "{\"id\":\"4\",\"response\":\"\\u0000 \\ud800 escapes \\\"q\\\"\"}",
    "{\"id\":\"5\",\"response\":\"Ünïcödé 𝄞 ✓ 日本語\",\"isDisposed\":true}",
    "{}",
};
#define NMSG (sizeof messages / sizeof messages[0])

/* Length in UTF-16 units, computed by iconv rather than by our code. */
static size_t iconv_units(const char *s)
{
    iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
    size_t inleft = strlen(s), outcap = inleft * 4 + 4, outleft = outcap;
    char *out = malloc(outcap), *o = out, *in = (char *)s;
    assert_true(iconv(cd, &in, &inleft, &o, &outleft) != (size_t)-1);
    iconv_close(cd);
    free(out);
    return (outcap - outleft) / 2;
}

/* The wire bytes of all messages, framed by an independent computation. */
static size_t build_stream(char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < NMSG; i++)
        len += (size_t)snprintf(out + len, cap - len, "%zu#%s", iconv_units(messages[i]), messages[i]);
    return len;
}

/* Feeds `stream` in chunks whose sizes come from `next_size`, collecting the
 * messages; asserts they are exactly `messages`. */
static void decode_in_chunks(const char *stream, size_t len, size_t (*next_size)(void *), void *ctx)
{
    frame_decoder_t d;
    frame_decoder_init(&d, 1 << 20);
    size_t got = 0, off = 0;
    while (off < len) {
        size_t n = next_size(ctx);
        if (n > len - off)
            n = len - off;
        assert_int_equal(frame_decoder_feed(&d, stream + off, n), 0);
        off += n;
        span_t m;
        int rc;
        while ((rc = frame_decoder_next(&d, &m)) == FRAME_MESSAGE) {
            assert_true(got < NMSG);
            assert_int_equal(m.n, strlen(messages[got]));
            assert_memory_equal(m.p, messages[got], m.n);
            got++;
        }
        assert_int_equal(rc, FRAME_NEED_MORE);
    }
    assert_int_equal(got, NMSG);
    assert_int_equal(frame_decoder_buffered(&d), 0);
    frame_decoder_free(&d);
}

static size_t one(void *ctx) { (void)ctx; return 1; }
static size_t everything(void *ctx) { (void)ctx; return SIZE_MAX; }
static size_t random_size(void *ctx)
{
    unsigned *seed = ctx;
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 23;
}

static void byte_by_byte(void **state)
{
    (void)state;
    char stream[4096];
    size_t len = build_stream(stream, sizeof stream);
    decode_in_chunks(stream, len, one, NULL);
}

static void all_frames_in_one_read(void **state)
{
    (void)state;
    char stream[4096];
    size_t len = build_stream(stream, sizeof stream);
    decode_in_chunks(stream, len, everything, NULL);
}

static void random_splits(void **state)
{
    (void)state;
    char stream[4096];
    size_t len = build_stream(stream, sizeof stream);
    for (unsigned seed = 1; seed <= 500; seed++) {
        unsigned s = seed;
        decode_in_chunks(stream, len, random_size, &s);
    }
}

static void every_two_way_split(void **state)
{
    (void)state;
    char stream[4096];
    size_t len = build_stream(stream, sizeof stream);
    for (size_t cut = 0; cut <= len; cut++) {
        frame_decoder_t d;
        frame_decoder_init(&d, 1 << 20);
        size_t got = 0;
        span_t m;
        frame_decoder_feed(&d, stream, cut);
        while (frame_decoder_next(&d, &m) == FRAME_MESSAGE)
            got++;
        frame_decoder_feed(&d, stream + cut, len - cut);
        while (frame_decoder_next(&d, &m) == FRAME_MESSAGE) {
            assert_memory_equal(m.p, messages[got], m.n);
            got++;
        }
        assert_int_equal(got, NMSG);
        frame_decoder_free(&d);
    }
}

static void zero_copy_reads(void **state)
{
    (void)state;
    frame_decoder_t d;
    frame_decoder_init(&d, 1 << 20);
    const char *wire = "5#\"abc\"4#\"한국\"";
    size_t avail;
    char *dst = frame_decoder_space(&d, 64, &avail);
    assert_non_null(dst);
    assert_true(avail >= 64);
    memcpy(dst, wire, strlen(wire));
    frame_decoder_commit(&d, strlen(wire));
    span_t m;
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_MESSAGE);
    assert_true(span_eq_cstr(m, "\"abc\""));
    assert_ptr_equal(m.p, dst + 2); /* points into the read buffer: no copy */
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_MESSAGE);
    assert_true(span_eq_cstr(m, "\"한국\""));
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_NEED_MORE);
    frame_decoder_free(&d);
}

static void large_message_split_everywhere(void **state)
{
    (void)state;
    /* 300 KB of mixed text: grows the buffer and compacts across reads */
    buf_t json = BUF_INIT;
    buf_append_cstr(&json, "\"");
    for (int i = 0; i < 20000; i++)
        buf_append_cstr(&json, i % 2 ? "한국😀" : "abcdé");
    buf_append_cstr(&json, "\"");
    buf_t wire = BUF_INIT;
    assert_int_equal(frame_encode(&wire, span_of(json.data, json.len)), 0);
    assert_int_equal(frame_encode(&wire, SPAN_LIT("1")), 0);
    frame_decoder_t d;
    frame_decoder_init(&d, 1 << 20);
    size_t off = 0, got = 0;
    unsigned seed = 7;
    while (off < wire.len) {
        size_t n = random_size(&seed) * 997;
        if (n > wire.len - off)
            n = wire.len - off;
        frame_decoder_feed(&d, wire.data + off, n);
        off += n;
        span_t m;
        while (frame_decoder_next(&d, &m) == FRAME_MESSAGE) {
            if (got == 0)
                assert_true(span_eq(m, span_of(json.data, json.len)));
            else
                assert_true(span_eq_cstr(m, "1"));
            got++;
        }
    }
    assert_int_equal(got, 2);
    frame_decoder_free(&d);
    buf_free(&json);
    buf_free(&wire);
}

/* The decoder skips ASCII 8 bytes at a time but must stop exactly at a
 * frame's end: frames of every length up to 40, back to back, some with a
 * non-ASCII character at every position, in one read and byte by byte. */
static void ascii_runs_end_exactly(void **state)
{
    (void)state;
    buf_t wire = BUF_INIT;
    char text[64];
    size_t count = 0, bytes = 0;
    for (size_t len = 0; len <= 40; len++) {
        memset(text, 'x', len);
        text[len] = '\0';
        assert_int_equal(frame_encode(&wire, span_of(text, len)), 0);
        count++;
        bytes += len;
        if (len >= 2 && len <= 20) {
            memcpy(text + len - 2, "\xc3\xa9", 2); /* é as the last character */
            assert_int_equal(frame_encode(&wire, span_of(text, len)), 0);
            count++;
            bytes += len;
        }
    }
    for (size_t step = 1; step <= wire.len; step = step == 1 ? wire.len : wire.len + 1) {
        frame_decoder_t d;
        frame_decoder_init(&d, 1024);
        size_t got = 0, total = 0;
        for (size_t off = 0; off < wire.len; off += step) {
            size_t n = step < wire.len - off ? step : wire.len - off;
            assert_int_equal(frame_decoder_feed(&d, wire.data + off, n), 0);
            span_t m;
            while (frame_decoder_next(&d, &m) == FRAME_MESSAGE) {
                got++;
                total += m.n;
                for (size_t i = 0; i < m.n; i++)
                    assert_true(m.p[i] == 'x' || (unsigned char)m.p[i] >= 0x80);
            }
        }
        assert_int_equal(got, count);
        assert_string_equal(frame_decoder_error(&d), "");
        assert_int_equal(total, bytes);
        frame_decoder_free(&d);
    }
    buf_free(&wire);
}

/* Feeds `wire` whole and expects the stream to break with `error`. */
static void expect_broken(const char *wire, size_t len, size_t limit, const char *error)
{
    frame_decoder_t d;
    frame_decoder_init(&d, limit);
    frame_decoder_feed(&d, wire, len);
    span_t m;
    int rc;
    while ((rc = frame_decoder_next(&d, &m)) == FRAME_MESSAGE)
        ;
    assert_int_equal(rc, FRAME_ERROR);
    assert_string_equal(frame_decoder_error(&d), error);
    /* broken for good, even if good bytes follow */
    frame_decoder_feed(&d, "2#{}", 4);
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_ERROR);
    frame_decoder_free(&d);
}

static void broken_streams(void **state)
{
    (void)state;
    expect_broken("2#{}x#{}", 8, 100,
                  "bad length prefix: byte 0x78 ('x') at stream byte 4 is not a digit or '#'");
    expect_broken("#{}", 3, 100, "bad length prefix: no digits before '#' at stream byte 0");
    expect_broken("\n2#{}", 5, 100,
                  "bad length prefix: byte 0x0a at stream byte 0 is not a digit or '#'");
    expect_broken("1234567890123456#", 17, 100, "bad length prefix: more than 15 digits");
    expect_broken("101#", 4, 100, "message of 101 UTF-16 units exceeds the limit of 100 bytes");
    /* 4 units but 6 bytes of 3-byte characters plus more: over the byte limit */
    expect_broken("4#\"한국한국", 14, 8, "message exceeds the limit of 8 bytes");
    expect_broken("3#\"\xc3\x28\"", 7, 100, "invalid UTF-8 at byte 1 of a message");
    expect_broken("3#\"\xed\xa0\x80\"", 8, 100, "invalid UTF-8 at byte 1 of a message");
    expect_broken("2#\"\xf0\x9f\x98\x80\"", 8, 100,
                  "length prefix 2 ends inside a character (a UTF-16 surrogate pair)");
}

static void split_invalid_utf8_is_caught(void **state)
{
    (void)state;
    frame_decoder_t d;
    frame_decoder_init(&d, 100);
    span_t m;
    frame_decoder_feed(&d, "3#\"\xe2", 4);
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_NEED_MORE);
    frame_decoder_feed(&d, "\x28", 1);
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_ERROR);
    frame_decoder_free(&d);
}

static void empty_message(void **state)
{
    (void)state;
    frame_decoder_t d;
    frame_decoder_init(&d, 100);
    span_t m;
    frame_decoder_feed(&d, "0#2#{}", 6);
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_MESSAGE);
    assert_int_equal(m.n, 0);
    assert_int_equal(frame_decoder_next(&d, &m), FRAME_MESSAGE);
    assert_true(span_eq_cstr(m, "{}"));
    frame_decoder_free(&d);
}

static void encode_counts_utf16_units(void **state)
{
    (void)state;
    for (size_t i = 0; i < NMSG; i++) {
        buf_t out = BUF_INIT;
        assert_int_equal(frame_encode(&out, span_cstr(messages[i])), 0);
        char expected[512];
        snprintf(expected, sizeof expected, "%zu#%s", iconv_units(messages[i]), messages[i]);
        assert_int_equal(out.len, strlen(expected));
        assert_memory_equal(out.data, expected, out.len);
        buf_free(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(byte_by_byte),
        cmocka_unit_test(all_frames_in_one_read),
        cmocka_unit_test(random_splits),
        cmocka_unit_test(every_two_way_split),
        cmocka_unit_test(zero_copy_reads),
        cmocka_unit_test(large_message_split_everywhere),
        cmocka_unit_test(ascii_runs_end_exactly),
        cmocka_unit_test(broken_streams),
        cmocka_unit_test(split_invalid_utf8_is_caught),
        cmocka_unit_test(empty_message),
        cmocka_unit_test(encode_counts_utf16_units),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
