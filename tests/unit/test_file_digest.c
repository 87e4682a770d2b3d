/* Unit tests of gateway/file_digest: FIPS 180-4's examples, and every
 * length around the padding boundaries checked against OpenSSL's SHA-256
 * as an independent computation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/file_digest.h"

static char path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/pg-digest-%ld", (long)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void write_file(const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void digest_is(const void *p, size_t n, const char *expected)
{
    char hex[FILE_DIGEST_HEX];
    write_file(p, n);
    assert_int_equal(file_digest(path, hex), 0);
    assert_string_equal(hex, expected);
}

static void fips_examples(void **state)
{
    (void)state;
    digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_is(two_blocks, strlen(two_blocks), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *million = malloc(1000000);
    assert_non_null(million);
    memset(million, 'a', 1000000);
    digest_is(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

static void every_length_matches_openssl(void **state)
{
    (void)state;
    unsigned char data[20000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof data; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
    size_t lengths[300], count = 0;
    for (size_t n = 0; n <= 200; n++)
        lengths[count++] = n;
    size_t more[] = { 8191, 8192, 8193, 16383, 16384, 16385, 20000 }; /* around the read chunk */
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        lengths[count++] = more[i];
    for (size_t i = 0; i < count; i++) {
        unsigned char md[32];
        unsigned mdlen = 0;
        assert_int_equal(EVP_Digest(data, lengths[i], md, &mdlen, EVP_sha256(), NULL), 1);
        char expected[FILE_DIGEST_HEX];
        for (unsigned k = 0; k < mdlen; k++)
            snprintf(expected + 2 * k, 3, "%02x", md[k]);
        digest_is(data, lengths[i], expected);
    }
}

static void unreadable_file(void **state)
{
    (void)state;
    char hex[FILE_DIGEST_HEX] = "x";
    assert_int_equal(file_digest("/nonexistent/pg-digest", hex), -1);
    assert_string_equal(hex, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fips_examples),
        cmocka_unit_test(every_length_matches_openssl),
        cmocka_unit_test(unreadable_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
