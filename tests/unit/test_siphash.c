/* Unit tests of core/siphash against the reference test vectors (key
 * 00 01 .. 0f, message 00 01 .. len-1), whole and fed in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/siphash.h"

#define K0 0x0706050403020100ull
#define K1 0x0f0e0d0c0b0a0908ull

static const struct {
    size_t len;
    unsigned char out[8];
} vectors64[] = {
    { 0, { 0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72 } },
    { 1, { 0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74 } },
    { 7, { 0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab } },
    { 8, { 0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93 } },
    { 15, { 0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1 } },
    { 16, { 0xdb, 0x9b, 0xc2, 0x57, 0x7f, 0xcc, 0x2a, 0x3f } },
    { 63, { 0x72, 0x45, 0x06, 0xeb, 0x4c, 0x32, 0x8a, 0x95 } },
};

static const struct {
    size_t len;
    unsigned char out[16];
} vectors128[] = {
    { 0, { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 } },
    { 8, { 0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3, 0x14, 0x97, 0xb4 } },
    { 15, { 0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3, 0xd9 } },
    { 63, { 0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e, 0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c } },
};

static void message(unsigned char *m, size_t len)
{
    for (size_t i = 0; i < len; i++)
        m[i] = (unsigned char)i;
}

static void le64(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static void reference_vectors_64(void **state)
{
    (void)state;
    unsigned char m[64], out[8];
    message(m, sizeof m);
    for (size_t i = 0; i < sizeof vectors64 / sizeof vectors64[0]; i++) {
        le64(out, siphash64(K0, K1, m, vectors64[i].len));
        assert_memory_equal(out, vectors64[i].out, 8);
    }
}

static void reference_vectors_128(void **state)
{
    (void)state;
    unsigned char m[64], out[16];
    message(m, sizeof m);
    for (size_t i = 0; i < sizeof vectors128 / sizeof vectors128[0]; i++) {
        siphash_t s;
        siphash_init(&s, K0, K1, 16);
        siphash_update(&s, m, vectors128[i].len);
        siphash_final128(&s, out);
        assert_memory_equal(out, vectors128[i].out, 16);
    }
}

/* Every split of the 63-byte message into three pieces gives the same hash. */
static void pieces_hash_as_the_whole(void **state)
{
    (void)state;
    unsigned char m[63];
    message(m, sizeof m);
    uint64_t whole = siphash64(K0, K1, m, sizeof m);
    for (size_t a = 0; a <= sizeof m; a++)
        for (size_t b = a; b <= sizeof m; b += 3) {
            siphash_t s;
            siphash_init(&s, K0, K1, 8);
            siphash_update(&s, m, a);
            siphash_update(&s, m + a, b - a);
            siphash_update(&s, m + b, sizeof m - b);
            assert_true(siphash_final64(&s) == whole);
        }
}

static void the_key_matters(void **state)
{
    (void)state;
    const char *text = "GET /users/:id";
    uint64_t a = siphash64(K0, K1, text, strlen(text));
    assert_true(siphash64(K0 ^ 1, K1, text, strlen(text)) != a);
    assert_true(siphash64(K0, K1 ^ (1ull << 63), text, strlen(text)) != a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_vectors_64),
        cmocka_unit_test(reference_vectors_128),
        cmocka_unit_test(pieces_hash_as_the_whole),
        cmocka_unit_test(the_key_matters),
    };
    return cmocka_run_group_tests_name("siphash", tests, NULL, NULL);
}
