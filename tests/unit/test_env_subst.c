/* Unit tests of config/env_subst.c. */
#include "config/env_subst.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

static const char *fake_getenv(void *context, const char *name)
{
    (void)context;
    if (strcmp(name, "HOST") == 0)
        return "db.internal";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    if (strcmp(name, "DOLLAR") == 0)
        return "${HOST}"; /* values are not expanded again */
    return NULL;
}

static void assert_expands(const char *text, const char *expected)
{
    char *out = NULL;
    char error[128];
    if (env_subst_expand(text, fake_getenv, NULL, &out, error, sizeof error) != 0)
        fail_msg("%s: unexpected error: %s", text, error);
    assert_string_equal(out, expected);
    free(out);
}

static void assert_fails(const char *text, const char *expected)
{
    char *out = (char *)1;
    char error[128];
    assert_int_equal(env_subst_expand(text, fake_getenv, NULL, &out, error, sizeof error), -1);
    assert_null(out);
    assert_string_equal(error, expected);
}

static void test_plain_text(void **state)
{
    (void)state;
    assert_expands("", "");
    assert_expands("no variables", "no variables");
    assert_expands("$body", "$body");
    assert_expands("cost: $5 {x}", "cost: $5 {x}");
    assert_expands("ends with $", "ends with $");
    assert_false(env_subst_needed("$body {x}"));
    assert_true(env_subst_needed("a ${B}"));
}

static void test_set_variables(void **state)
{
    (void)state;
    assert_expands("${HOST}", "db.internal");
    assert_expands("${HOST}:${HOST}", "db.internal:db.internal");
    assert_expands("x${EMPTY}y", "xy");
    assert_expands("${DOLLAR}", "${HOST}");
    assert_expands("${HOST:-fallback}", "db.internal");
}

static void test_defaults(void **state)
{
    (void)state;
    assert_expands("${MISSING:-fallback}", "fallback");
    assert_expands("${EMPTY:-fallback}", "fallback");
    assert_expands("${MISSING:-}", "");
    assert_expands("${MISSING:-a:-b $c}", "a:-b $c");
    assert_expands("${MISSING:-127.0.0.1}:${PORT:-3000}", "127.0.0.1:3000");
}

static void test_escape(void **state)
{
    (void)state;
    assert_expands("$${HOST}", "${HOST}");
    assert_expands("$$${HOST}", "$${HOST}"); /* left to right: "$", then "$${" */
    assert_expands("$$", "$$");
}

static void test_errors(void **state)
{
    (void)state;
    assert_fails("${MISSING}", "${MISSING} is not set");
    assert_fails("a ${HOST", "unterminated ${");
    assert_fails("${", "unterminated ${");
    assert_fails("${}", "bad variable name in ${...}");
    assert_fails("${1A}", "bad variable name in ${...}");
    assert_fails("${A B}", "unsupported ${...} form (use ${NAME} or ${NAME:-default})");
    assert_fails("${A-x}", "unsupported ${...} form (use ${NAME} or ${NAME:-default})");
    assert_fails("${A:x}", "unsupported ${...} form (use ${NAME} or ${NAME:-default})");
    assert_fails("${A:-${B}}", "nested ${...} is not supported");
}

static void test_getenv_by_default(void **state)
{
    (void)state;
    setenv("PG_TEST_ENV_SUBST", "from-env", 1);
    char *out = NULL;
    char error[128];
    assert_int_equal(env_subst_expand("<${PG_TEST_ENV_SUBST}>", NULL, NULL, &out, error,
                                      sizeof error), 0);
    assert_string_equal(out, "<from-env>");
    free(out);
    unsetenv("PG_TEST_ENV_SUBST");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text),
        cmocka_unit_test(test_set_variables),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_getenv_by_default),
    };
    return cmocka_run_group_tests_name("env_subst", tests, NULL, NULL);
}
