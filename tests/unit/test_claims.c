/* Unit tests of gateway/claims: dotted paths into the claims, a claim as
 * text, every kind of require_claims rule (array contains, scope word,
 * equality by type and by value), and the forwarded claims of the packet
 * metadata. Rules come from the real config loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/claims.h"

static const char CLAIMS[] =
    "{\"sub\":\"u42\",\"scope\":\"orders:read orders:write\",\"roles\":[\"viewer\",\"editor\",7,true],"
    "\"org\":{\"id\":\"acme\",\"deep\":{\"n\":1.5}},\"level\":3,\"admin\":false,\"esc\":\"a\\u0041\\n\","
    "\"sub\":\"u43\",\"n\":12345678901234567890123,\"spaced\":\"a b\",\"https://example.com/roles\":[\"x\"]}";

static span_t claims(void)
{
    return span_cstr(CLAIMS);
}

/* ---- paths and text ------------------------------------------------------- */

static void expect_path(const char *path, const char *want)
{
    span_t v;
    if (!want) {
        assert_int_equal(claims_path(claims(), span_cstr(path), &v), 0);
        return;
    }
    assert_int_equal(claims_path(claims(), span_cstr(path), &v), 1);
    assert_int_equal(v.n, strlen(want));
    assert_memory_equal(v.p, want, v.n);
}

static void paths(void **state)
{
    (void)state;
    expect_path("sub", "\"u43\""); /* repeated: the last, as JSON.parse */
    expect_path("org.id", "\"acme\"");
    expect_path("org.deep.n", "1.5");
    expect_path("org", "{\"id\":\"acme\",\"deep\":{\"n\":1.5}}");
    expect_path("org.missing", NULL);
    expect_path("sub.x", NULL);    /* not an object on the way */
    expect_path("org..id", NULL);  /* an empty name */
    expect_path("", NULL);
    expect_path("roles.0", NULL);  /* arrays are not walked */
    char long_name[CLAIMS_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    expect_path(long_name, NULL);
}

static void expect_text(const char *path, const char *want, size_t n)
{
    span_t v;
    buf_t b = BUF_INIT;
    assert_int_equal(claims_path(claims(), span_cstr(path), &v), 1);
    assert_int_equal(claims_value_text(v, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    buf_free(&b);
}

static void value_text(void **state)
{
    (void)state;
    expect_text("sub", "u43", 3);
    expect_text("esc", "aA\n", 3); /* unescaped */
    expect_text("level", "3", 1);
    expect_text("n", "12345678901234567890123", 23); /* the JSON text, exactly */
    expect_text("roles", "[\"viewer\",\"editor\",7,true]", 26);
    expect_text("admin", "false", 5);
}

/* ---- require_claims ------------------------------------------------------------ */

/* The rules of a route's require_claims `json` (single quotes for double). */
static config *rules(const char *json)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{'auth': {'jwt': {'hs256_secret': '0123456789abcdef0123456789abcdef'}},"
             " 'services': {'s': {'endpoints': ['127.0.0.1:1']}},"
             " 'routes': [{'method': 'GET', 'path': '/x', 'service': 's', 'pattern': 'x', 'auth': 'jwt',"
             "             'require_claims': %s}]}",
             json);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    config *cfg = NULL;
    config_error error;
    if (config_load_string(text, strlen(text), NULL, &cfg, &error) != 0)
        fail_msg("config: %s", error.message);
    return cfg;
}

/* Whether require_claims `json` (one member) holds for CLAIMS. */
static int holds(const char *json)
{
    config *cfg = rules(json);
    assert_int_equal(cfg->routes[0].require_claim_count, 1);
    int rc = claims_rule_holds(claims(), &cfg->routes[0].require_claims[0]);
    config_free(cfg);
    return rc;
}

static void rule_kinds(void **state)
{
    (void)state;
    /* a string claim: equal, or one of its space-separated words */
    assert_int_equal(holds("{'sub': 'u43'}"), 1);
    assert_int_equal(holds("{'sub': 'u42'}"), 0); /* the repeated claim's last value counts */
    assert_int_equal(holds("{'scope': 'orders:write'}"), 1);
    assert_int_equal(holds("{'scope': 'orders:read'}"), 1);
    assert_int_equal(holds("{'scope': 'orders'}"), 0);
    assert_int_equal(holds("{'scope': 'orders:read orders:write'}"), 1); /* equal as a whole */
    assert_int_equal(holds("{'scope': 'read orders'}"), 0);
    assert_int_equal(holds("{'spaced': 'a b'}"), 1);
    assert_int_equal(holds("{'esc': 'aA\\n'}"), 1); /* compared unescaped */
    /* an array: holds an element equal to the value, of the same type */
    assert_int_equal(holds("{'roles': 'editor'}"), 1);
    assert_int_equal(holds("{'roles': 'edit'}"), 0);
    assert_int_equal(holds("{'roles': 7}"), 1);
    assert_int_equal(holds("{'roles': 7.0}"), 1);
    assert_int_equal(holds("{'roles': '7'}"), 0);
    assert_int_equal(holds("{'roles': true}"), 1);
    assert_int_equal(holds("{'roles': false}"), 0);
    assert_int_equal(holds("{'https://example.com/roles': 'x'}"), 1); /* a name as written */
    /* anything else: equal, numbers by value */
    assert_int_equal(holds("{'level': 3}"), 1);
    assert_int_equal(holds("{'level': 3e0}"), 1);
    assert_int_equal(holds("{'level': 4}"), 0);
    assert_int_equal(holds("{'level': '3'}"), 0); /* types differ */
    assert_int_equal(holds("{'admin': false}"), 1);
    assert_int_equal(holds("{'admin': true}"), 0);
    assert_int_equal(holds("{'org': 'acme'}"), 0);  /* an object equals nothing */
    assert_int_equal(holds("{'missing': 'x'}"), 0); /* absent */
    assert_int_equal(holds("{'sub': true}"), 0);
}

static void first_unmet(void **state)
{
    (void)state;
    config *cfg = rules("{'scope': 'orders:read', 'roles': 'viewer', 'level': 9, 'admin': false}");
    const config_route *route = &cfg->routes[0];
    bool nomem = true;
    const config_claim_rule *unmet = claims_unmet(claims(), route->require_claims, route->require_claim_count, &nomem);
    assert_non_null(unmet);
    assert_false(nomem);
    assert_string_equal(unmet->claim, "level");
    assert_null(claims_unmet(claims(), route->require_claims, 2, &nomem));
    assert_null(claims_unmet(claims(), route->require_claims, 0, &nomem));
    config_free(cfg);
}

/* ---- forward_claims -------------------------------------------------------------- */

static void forwarded(void **state)
{
    (void)state;
    char *names[] = { "sub", "missing", "roles", "esc", "level", "org" };
    buf_t m = BUF_INIT;
    buf_append_cstr(&m, "{\"requestId\":\"r1\"");
    assert_int_equal(claims_forward(&m, claims(), names, 6), 0);
    buf_append(&m, "}", 2);
    assert_string_equal(m.data, "{\"requestId\":\"r1\",\"jwt.sub\":\"u43\","
                                "\"jwt.roles\":\"[\\\"viewer\\\",\\\"editor\\\",7,true]\","
                                "\"jwt.esc\":\"a\\u0041\\n\",\"jwt.level\":\"3\","
                                "\"jwt.org\":\"{\\\"id\\\":\\\"acme\\\",\\\"deep\\\":{\\\"n\\\":1.5}}\"}");
    /* into an empty object: no leading comma; nothing when nothing is there */
    buf_free(&m);
    buf_append_cstr(&m, "{");
    assert_int_equal(claims_forward(&m, claims(), names, 2), 0);
    buf_append(&m, "}", 2);
    assert_string_equal(m.data, "{\"jwt.sub\":\"u43\"}");
    buf_free(&m);
    buf_append_cstr(&m, "{");
    assert_int_equal(claims_forward(&m, claims(), names + 1, 1), 0);
    buf_append(&m, "}", 2);
    assert_string_equal(m.data, "{}");
    buf_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths),       cmocka_unit_test(value_text), cmocka_unit_test(rule_kinds),
        cmocka_unit_test(first_unmet), cmocka_unit_test(forwarded),
    };
    return cmocka_run_group_tests_name("claims", tests, NULL, NULL);
}
