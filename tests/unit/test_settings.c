/* Tests of core/settings.h: the one table of a service's settings. Every
 * field changes the fingerprint that decides whether a reload keeps a
 * service's connections, so a setting added to the table cannot be
 * forgotten there (and a field cannot be added to the settings struct
 * outside the table: the struct is generated from it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/settings.h"

static char *fingerprint_of(const up_settings_t *s, const char *const *endpoints, size_t n,
                            const char *const *tls)
{
    buf_t b = BUF_INIT;
    assert_int_equal(settings_fingerprint(&b, s, endpoints, n, tls), 0);
    char *text = strndup(b.data, b.len);
    buf_free(&b);
    return text;
}

/* Sets a field to something other than its default, whatever its type. */
#define BUMP(type, name, def, kind)                                                                \
    {                                                                                              \
        up_settings_t changed;                                                                     \
        settings_defaults(&changed);                                                               \
        changed.name = (type)(changed.name ? 0 : 1);                                               \
        char *fp = fingerprint_of(&changed, endpoints, 1, NULL);                                   \
        if (strcmp(fp, base) == 0)                                                                 \
            fail_msg("changing %s does not change the fingerprint", #name);                        \
        free(fp);                                                                                  \
        fields++;                                                                                  \
    }

static void every_setting_is_in_the_fingerprint(void **state)
{
    (void)state;
    const char *const endpoints[] = { "10.0.0.1:3000" };
    up_settings_t defaults;
    settings_defaults(&defaults);
    char *base = fingerprint_of(&defaults, endpoints, 1, NULL);
    size_t fields = 0;
    UP_SERVICE_SETTINGS(BUMP)
    /* the struct holds the table's fields and nothing else */
    size_t table_bytes = 0;
#define SIZE(type, name, def, kind) table_bytes += sizeof(type);
    UP_SERVICE_SETTINGS(SIZE)
#undef SIZE
    assert_true(sizeof(up_settings_t) >= table_bytes);
    assert_true(fields >= 12);
    free(base);
}

static void endpoints_and_tls_are_in_the_fingerprint(void **state)
{
    (void)state;
    up_settings_t s;
    settings_defaults(&s);
    const char *const one[] = { "10.0.0.1:3000" };
    const char *const other[] = { "10.0.0.2:3000" };
    const char *const two[] = { "10.0.0.1:3000", "10.0.0.2:3000" };
    const char *const tls_a[] = { "ca=/a.pem", "sha256=aa", NULL };
    const char *const tls_b[] = { "ca=/a.pem", "sha256=bb", NULL };
    char *fps[6] = {
        fingerprint_of(&s, one, 1, NULL),   fingerprint_of(&s, other, 1, NULL), fingerprint_of(&s, two, 2, NULL),
        fingerprint_of(&s, one, 1, tls_a), fingerprint_of(&s, one, 1, tls_b),  fingerprint_of(&s, one, 1, NULL),
    };
    for (int i = 0; i < 5; i++)
        for (int k = i + 1; k < 5; k++)
            if (strcmp(fps[i], fps[k]) == 0)
                fail_msg("fingerprints %d and %d are equal: %s", i, k, fps[i]);
    assert_string_equal(fps[0], fps[5]); /* and the same inputs give the same text */
    for (int i = 0; i < 6; i++)
        free(fps[i]);
}

static void defaults_are_spec_md(void **state)
{
    (void)state;
    up_settings_t s;
    settings_defaults(&s);
    assert_int_equal(s.pool_size, 1);
    assert_int_equal(s.connect, UP_CONNECT_EAGER);
    assert_int_equal(s.balance, UP_BALANCE_LEAST_REQUEST);
    assert_int_equal(s.connect_timeout_ms, 2000);
    assert_int_equal(s.timeout_ms, 5000);
    assert_int_equal(s.retry_attempts, 0);
    assert_int_equal(s.retry_delay_ms, 100);
    assert_int_equal(s.max_message_bytes, 134217728);
    assert_int_equal(s.incomplete_frame_timeout_ms, 30000);
    assert_int_equal(s.resolve_interval_ms, 5000);
    assert_int_equal(s.max_connection_age_ms, 0);
    assert_true(s.metadata);
    assert_string_equal(settings_balance_name(UP_BALANCE_ROUND_ROBIN), "round_robin");
    assert_string_equal(settings_connect_name(UP_CONNECT_LAZY), "lazy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_setting_is_in_the_fingerprint),
        cmocka_unit_test(endpoints_and_tls_are_in_the_fingerprint),
        cmocka_unit_test(defaults_are_spec_md),
    };
    return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}
