/* Unit tests of gateway/edge: a config's CORS policies (the top level's,
 * a route's own, none) and rate limits (rule, key, bucket scope) compiled
 * once, from configs of the real loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/edge.h"

static config *load(const char *json)
{
    char text[4096];
    snprintf(text, sizeof text, "%s", json);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    config *cfg = NULL;
    config_error error;
    if (config_load_string(text, strlen(text), NULL, &cfg, &error) != 0)
        fail_msg("config: %s", error.message);
    return cfg;
}

#define ROUTES                                                                                                  \
    "'services': {'s': {'endpoints': ['127.0.0.1:1']}},"                                                        \
    "'routes': ["                                                                                               \
    " {'method': 'GET', 'path': '/a', 'service': 's', 'pattern': 'a'},"                                         \
    " {'method': 'POST', 'path': '/b/:id', 'service': 's', 'pattern': 'b', 'cors': {'allow_origins': ['*']},"   \
    "  'rate_limit': {'rps': 0.5, 'burst': 3, 'key': '$path.id'}},"                                             \
    " {'method': '*', 'path': '/c', 'service': 's', 'pattern': 'c', 'rate_limit': {'rps': 100, 'burst': 20}}]"

static void with_top_level_cors(void **state)
{
    (void)state;
    config *cfg = load("{'cors': {'allow_origins': ['https://app.example'], 'max_age_s': 5}, " ROUTES "}");
    edge_t *e = edge_new(cfg);
    assert_non_null(e);
    const cors_policy_t *top = edge_top_cors(e);
    assert_non_null(top);
    assert_ptr_equal(top->cfg, cfg->cors);
    assert_string_equal(top->max_age, "5");
    assert_true(edge_has_cors(e));
    /* route 0: the top level's; route 1: its own; route 2: the top level's */
    assert_ptr_equal(edge_route(e, 0)->cors, top);
    assert_non_null(edge_route(e, 1)->cors);
    assert_ptr_equal(edge_route(e, 1)->cors->cfg, cfg->routes[1].cors);
    assert_true(edge_route(e, 1)->cors->cfg->any_origin);
    assert_ptr_equal(edge_route(e, 2)->cors, top);
    /* rate limits */
    assert_false(edge_route(e, 0)->limited);
    const edge_route_t *b = edge_route(e, 1), *c = edge_route(e, 2);
    assert_true(b->limited);
    assert_true(b->rule.rps == 0.5);
    assert_int_equal(b->rule.burst, 3);
    assert_int_equal(b->key.source, RATEKEY_PATH);
    assert_int_equal(b->key.capture_index, 0);
    assert_true(span_eq_cstr(b->scope, "POST /b/:id"));
    assert_true(c->limited);
    assert_int_equal(c->key.source, RATEKEY_NONE);
    assert_true(span_eq_cstr(c->scope, "* /c"));
    edge_free(e);
    config_free(cfg);
}

static void without_cors(void **state)
{
    (void)state;
    config *cfg = load("{" ROUTES "}");
    edge_t *e = edge_new(cfg);
    assert_non_null(e);
    assert_null(edge_top_cors(e));
    assert_true(edge_has_cors(e)); /* route 1's own */
    assert_null(edge_route(e, 0)->cors);
    assert_non_null(edge_route(e, 1)->cors); /* a route's own needs no top level */
    assert_null(edge_route(e, 2)->cors);
    edge_free(e);
    config_free(cfg);
    /* no routes at all */
    cfg = load("{'services': {'s': {'endpoints': ['127.0.0.1:1']}}}");
    e = edge_new(cfg);
    assert_non_null(e);
    assert_null(edge_top_cors(e));
    assert_false(edge_has_cors(e)); /* proxy.c then does no CORS work */
    edge_free(e);
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(with_top_level_cors),
        cmocka_unit_test(without_cors),
    };
    return cmocka_run_group_tests_name("edge", tests, NULL, NULL);
}
