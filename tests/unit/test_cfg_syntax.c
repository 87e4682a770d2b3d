/* Unit tests of config/cfg_syntax.c: each mistake it explains, where it
 * points, and that it keeps quiet when the cause is something else. The
 * texts are parsed by jansson first, as the loader does, so the limit is
 * jansson's real error position. */
#include "config/cfg_locate.h"
#include "config/cfg_syntax.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* jansson's error position for text, which must not be JSON. */
static size_t jansson_limit(const char *text)
{
    json_error_t e;
    json_t *root = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &e);
    if (root != NULL) {
        json_decref(root);
        fail_msg("jansson accepted %s", text);
    }
    assert_true(e.position >= 0);
    return (size_t)e.position;
}

/* text's hint is `reason` at line:column. */
static void assert_hint(const char *text, unsigned line, unsigned column, const char *reason)
{
    cfg_syntax_hint hint;
    size_t n = strlen(text);
    if (!cfg_syntax_explain(text, n, jansson_limit(text), &hint))
        fail_msg("no hint for %s", text);
    cfg_position at = cfg_position_of(text, n, hint.offset);
    if (at.line != line || at.column != column || strcmp(hint.reason, reason) != 0)
        fail_msg("for %s:\n  got      %u:%u: %s\n  expected %u:%u: %s", text, at.line, at.column,
                 hint.reason, line, column, reason);
}

static void assert_no_hint(const char *text)
{
    cfg_syntax_hint hint;
    if (cfg_syntax_explain(text, strlen(text), jansson_limit(text), &hint))
        fail_msg("unexpected hint for %s: %s", text, hint.reason);
}

static void test_missing_comma(void **state)
{
    (void)state;
    /* at the end of the value before, not where the next one starts */
    assert_hint("{\n  \"a\": 1\n  \"b\": 2\n}", 2, 9, "missing comma after the value on line 2?");
    assert_hint("{\n  \"a\": {\"x\": [1, 2]}   \n\n  \"b\": 2\n}", 2, 21,
                "missing comma after the value on line 2?");
    assert_hint("[1 2]", 1, 3, "missing comma after the value on line 1?");
    assert_hint("[\"a\"\n \"b\"]", 1, 5, "missing comma after the value on line 1?");
    assert_hint("{\"a\": true\n \"b\": 2}", 1, 11, "missing comma after the value on line 1?");
    assert_hint("{\"a\": [1]\n {\"b\": 2}}", 1, 10, "missing comma after the value on line 1?");
    /* columns count characters: é is one */
    assert_hint("{\"é\": \"ü\" \"b\": 1}", 1, 10, "missing comma after the value on line 1?");
}

static void test_trailing_comma(void **state)
{
    (void)state;
    assert_hint("{\n  \"a\": 1,\n}", 2, 9, "trailing comma before '}'");
    assert_hint("[1, 2,]", 1, 6, "trailing comma before ']'");
    assert_hint("{\"a\": [1,\n  ]}", 1, 9, "trailing comma before ']'");
}

static void test_two_commas(void **state)
{
    (void)state;
    assert_hint("{\"a\": 1,, \"b\": 2}", 1, 9, "two commas in a row");
    assert_hint("[1,,2]", 1, 4, "two commas in a row");
}

static void test_unquoted_key(void **state)
{
    (void)state;
    assert_hint("{\n  listen: 1\n}", 2, 3,
                "unquoted key listen: keys are double-quoted strings (\"listen\")");
    assert_hint("{\"a\": 1, max_body_bytes: 2}", 1, 10,
                "unquoted key max_body_bytes: keys are double-quoted strings "
                "(\"max_body_bytes\")");
    assert_hint("{1: 2}", 1, 2, "unquoted key 1: keys are double-quoted strings (\"1\")");
}

static void test_single_quotes(void **state)
{
    (void)state;
    assert_hint("{\"a\": 'x'}", 1, 7, "single-quoted string: JSON strings take double quotes");
    assert_hint("{'a': 1}", 1, 2, "single-quoted string: JSON strings take double quotes");
}

static void test_unterminated_string(void **state)
{
    (void)state;
    /* points at the opening quote, whatever jansson says about the next line */
    assert_hint("{\n  \"a\": \"xyz,\n  \"b\": 2\n}", 2, 8,
                "unterminated string: no closing '\"' before the end of the line");
    assert_hint("{\"a\": \"xyz", 1, 7,
                "unterminated string: no closing '\"' before the end of the file");
    assert_hint("{\"a\": \"x\\\"\n}", 1, 7,
                "unterminated string: no closing '\"' before the end of the line");
}

static void test_other_mistakes(void **state)
{
    (void)state;
    assert_hint("{\"a\" 1}", 1, 5, "missing ':' after the key \"a\"");
    assert_hint("{\"a\": }", 1, 7, "missing value after ':'");
    assert_hint("{\"a\": lazy}", 1, 7, "bare word lazy: strings take double quotes (\"lazy\")");
    assert_hint("{\"a\": True}", 1, 7, "JSON's literals are lowercase: true");
    assert_hint("{\"a\": None}", 1, 7, "JSON has no None: null");
    assert_hint("{\"a\": nul}", 1, 7, "nul is not a JSON value (did you mean null?)");
    assert_hint("{\n  // port\n  \"a\": 1}", 2, 3, "comments are not allowed in JSON");
    assert_hint("{\"a\": 1 /* x */}", 1, 9, "comments are not allowed in JSON");
    assert_hint("{\"a\": 1,\n# x\n\"b\": 2}", 2, 1, "comments are not allowed in JSON");
    assert_hint("{\"a\": [1, 2}", 1, 12, "'}' does not close the '[' on line 1 (expected ']')");
    assert_hint("{\n\"a\": {\"b\": 1\n}\n", 4, 1,
                "end of file: the '{' on line 1 is never closed (no '}')");
    assert_hint("[[1]", 1, 5, "end of file: the '[' on line 1 is never closed (no ']')");
    assert_hint("{\"a\": 1}\n}", 2, 1,
                "unexpected text after the end of the document (its value ended on line 1)");
    assert_hint("\xef\xbb\xbf{\"a\": 1}", 1, 1,
                "the file starts with a byte-order mark (save it as UTF-8 without BOM)");
}

/* What jansson reports better, or first: no hint. */
static void test_no_hint(void **state)
{
    (void)state;
    assert_no_hint("{\"a\": 1, \"a\": 2}");          /* duplicate key */
    assert_no_hint("{\"a\": \"\\x\"}");               /* bad escape */
    assert_no_hint("{\"a\": \"\t\"}");                /* raw control character */
    assert_no_hint("{\"a\": 01}");                    /* bad number */
    assert_no_hint("");                               /* empty */
    assert_no_hint("[,1]");
    assert_no_hint("{\"a\": \"\xff\"}");              /* not UTF-8 */
    /* a duplicate key before a missing comma: jansson stops at the key,
     * before the walk meets the comma */
    assert_no_hint("{\"a\": 1, \"a\": 2\n \"b\": 3}");
}

/* Deeper than the walk follows: no hint rather than a wrong one. */
static void test_too_deep(void **state)
{
    (void)state;
    static char text[2 * 600 + 8];
    size_t n = 0;
    for (int i = 0; i < 600; i++)
        text[n++] = '[';
    text[n++] = '1';
    text[n++] = ' ';
    text[n++] = '2';
    text[n] = '\0';
    cfg_syntax_hint hint;
    assert_false(cfg_syntax_explain(text, n, n, &hint));
}

/* The walk never reports a mistake after the limit. */
static void test_limit(void **state)
{
    (void)state;
    const char *text = "{\"a\": 1\n \"b\": 2}";
    cfg_syntax_hint hint;
    size_t next = (size_t)(strchr(text, '\n') - text) + 2; /* the "b" that shows the comma missing */
    assert_true(cfg_syntax_explain(text, strlen(text), next, &hint));
    assert_false(cfg_syntax_explain(text, strlen(text), next - 1, &hint));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_comma),
        cmocka_unit_test(test_trailing_comma),
        cmocka_unit_test(test_two_commas),
        cmocka_unit_test(test_unquoted_key),
        cmocka_unit_test(test_single_quotes),
        cmocka_unit_test(test_unterminated_string),
        cmocka_unit_test(test_other_mistakes),
        cmocka_unit_test(test_no_hint),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
