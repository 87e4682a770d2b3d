/* Unit tests of config/cfg_suggest.c. */
#include "config/cfg_suggest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

static const char *const service_keys[] = {
    "endpoints", "pool_size", "connect", "connect_timeout_ms", "timeout_ms",
    "retry_attempts", "retry_delay_ms", "max_message_bytes", "metadata", "tls", NULL,
};
static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "*"};

static void assert_suggests(const char *word, const char *expected)
{
    const char *got = cfg_suggest(word, service_keys, SIZE_MAX);
    if (got == NULL || strcmp(got, expected) != 0)
        fail_msg("%s: suggested %s, expected %s", word, got ? got : "nothing", expected);
}

static void assert_nothing(const char *word)
{
    const char *got = cfg_suggest(word, service_keys, SIZE_MAX);
    if (got != NULL)
        fail_msg("%s: suggested %s, expected nothing", word, got);
}

static void test_close_keys(void **state)
{
    (void)state;
    assert_suggests("timout_ms", "timeout_ms");         /* a letter missing */
    assert_suggests("timeout_mss", "timeout_ms");       /* one too many */
    assert_suggests("tiemout_ms", "timeout_ms");        /* two swapped */
    assert_suggests("endpoint", "endpoints");
    assert_suggests("Endpoints", "endpoints");          /* case does not count */
    assert_suggests("timeoutMs", "timeout_ms");
    assert_suggests("timeout", "timeout_ms");           /* 3 edits for a 10-letter key */
    assert_suggests("pool-size", "pool_size");
    assert_suggests("tsl", "tls");
    assert_suggests("conect_timeout_ms", "connect_timeout_ms"); /* the closest wins */
}

static void test_far_words(void **state)
{
    (void)state;
    assert_nothing("retries");
    assert_nothing("address");
    assert_nothing("x");
    assert_nothing("");
    assert_nothing("endpoints");                        /* itself: no suggestion */
    char long_word[CFG_SUGGEST_MAX + 2];
    memset(long_word, 'a', sizeof long_word - 1);
    long_word[sizeof long_word - 1] = '\0';
    assert_nothing(long_word);
}

static void test_counted_list(void **state)
{
    (void)state;
    assert_string_equal(cfg_suggest("get", methods, 6), "GET");
    assert_string_equal(cfg_suggest("PSOT", methods, 6), "POST");
    assert_null(cfg_suggest("GET", methods, 6));
    assert_null(cfg_suggest("OPTIONS", methods, 6));
    assert_null(cfg_suggest("PUT", methods, 1)); /* only "GET" is looked at */
    assert_string_equal(cfg_suggest("PUX", methods, 3), "PUT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_keys),
        cmocka_unit_test(test_far_words),
        cmocka_unit_test(test_counted_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
