/* CORS of the built binary in a real browser: Debian's headless Chromium
 * (tests/support/browser.h, tests/browser/cors_probe.mjs) loads a page from
 * its own origin and the page's script fetch()es the gateway, another
 * origin (another port), in front of a Nest 12 service. What the script
 * observed is asserted:
 *
 *   - the allowed origin reads a simple GET's answer, and the headers the
 *     config exposes (not the others);
 *   - a POST with a custom header, a JSON body, an Authorization header and
 *     credentials "include" costs a preflight (answered by the gateway,
 *     without auth: seen in its access log as a 204 OPTIONS) and then
 *     succeeds;
 *   - error answers carry the CORS headers: the script reads a 401 (no
 *     token) and a 429 with its Retry-After and RateLimit-* headers;
 *   - a route whose own cors allows another origin only is blocked by the
 *     browser, a simple request and a preflighted one (whose preflight the
 *     gateway refused with 403);
 *   - a header the policy does not allow is blocked at the preflight (which
 *     the gateway refuses with 403).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/browser.h"
#include "support/deadline.h"
#include "support/gateway.h"
#include "support/gwtest.h"
#include "support/nest.h"

static struct browser browser;
static struct gwproc *g_gw;

#define TOKEN "browser-token-0123456789"

static int group_setup(void **state)
{
    if (nest_group_setup_v12(state) != 0)
        return -1;
    if (browser_start(&browser) != 0)
        return -1;
    const char *nest = ((struct nest_group *)*state)->address;
    char *config = NULL;
    if (asprintf(&config,
                 "{ \"listen\": \"127.0.0.1:${GW_PORT}\", \"admin_listen\": \"127.0.0.1:${GW_ADMIN_PORT}\",\n"
                 "  \"log\": { \"level\": \"info\", \"access\": true }, \"generic_api\": false,\n"
                 "  \"auth\": { \"bearer_tokens\": [\"" TOKEN "\"] },\n"
                 "  \"cors\": { \"allow_origins\": [\"%s\"], \"allow_headers\": [\"x-custom\", \"content-type\", "
                 "\"authorization\"],\n"
                 "            \"expose_headers\": [\"x-request-id\", \"retry-after\", \"ratelimit-limit\", "
                 "\"ratelimit-remaining\", \"ratelimit-reset\"],\n"
                 "            \"allow_credentials\": true, \"max_age_s\": 0 },\n"
                 "  \"services\": { \"nest\": { \"endpoints\": [\"%s\"], \"timeout_ms\": 20000 } },\n"
                 "  \"routes\": [\n"
                 "    { \"method\": \"GET\", \"path\": \"/items\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                 "\"echo\" }, \"data\": [1, 2], \"auth\": \"none\" },\n"
                 "    { \"method\": \"POST\", \"path\": \"/orders\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                 "\"echo\" }, \"data\": { \"order\": \"$body\", \"custom\": \"$header.x-custom\" } },\n"
                 "    { \"method\": \"GET\", \"path\": \"/limited\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                 "\"echo\" }, \"data\": \"ok\", \"auth\": \"none\", \"rate_limit\": { \"rps\": 0.01, \"burst\": 1 } },\n"
                 "    { \"method\": \"GET\", \"path\": \"/partner\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                 "\"echo\" }, \"data\": \"p\", \"auth\": \"none\",\n"
                 "      \"cors\": { \"allow_origins\": [\"https://partner.example\"] } },\n"
                 "    { \"method\": \"PUT\", \"path\": \"/partner\", \"service\": \"nest\", \"pattern\": { \"cmd\": "
                 "\"echo\" }, \"data\": \"p\", \"auth\": \"none\",\n"
                 "      \"cors\": { \"allow_origins\": [\"https://partner.example\"] } }\n"
                 "  ] }\n",
                 browser.origin, nest) < 0)
        return -1;
    struct gwproc_options o = { .ready_on_admin = true }; /* /healthz on listen needs a token */
    g_gw = gwt_start(config, NULL, &o);
    free(config);
    return 0;
}

static int group_teardown(void **state)
{
    browser_stop(&browser);
    gwt_stop(g_gw);
    return nest_group_teardown(state);
}

/* The page fetches the gateway's `path`; extra: more members of the
 * request as JSON text ("" for none). */
static json_t *fetch(const char *path, const char *extra)
{
    char request[2048];
    snprintf(request, sizeof request, "{\"url\": \"http://127.0.0.1:%d%s\"%s%s}", gwproc_port(g_gw), path,
             extra[0] ? ", " : "", extra);
    json_t *reply = NULL;
    assert_int_equal(browser_fetch(&browser, request, &reply), 0);
    return reply;
}

static void expect_read(const json_t *reply, int status, const char *body)
{
    if (!json_is_true(json_object_get(reply, "ok")) ||
        json_integer_value(json_object_get(reply, "status")) != status ||
        (body && strcmp(json_string_value(json_object_get(reply, "body")), body) != 0))
        gwt_fail_json(reply, "the page should have read %d %s", status, body ? body : "");
}

static const char *readable(const json_t *reply, const char *name)
{
    return json_string_value(json_object_get(json_object_get(reply, "headers"), name));
}

/* Blocked by the browser: the script got a TypeError, and the console says
 * why, with `reason` in it. */
static void expect_blocked(const json_t *reply, const char *reason)
{
    if (json_is_true(json_object_get(reply, "ok")))
        gwt_fail_json(reply, "the page read an answer it should not have");
    const char *error = json_string_value(json_object_get(reply, "error"));
    if (!error || strcmp(error, "TypeError: Failed to fetch") != 0)
        gwt_fail_json(reply, "a blocked fetch rejects with TypeError: Failed to fetch");
    size_t i;
    json_t *line;
    json_array_foreach(json_object_get(reply, "console"), i, line) {
        const char *text = json_string_value(line);
        if (text && strstr(text, "blocked by CORS policy") && strstr(text, reason))
            return;
    }
    gwt_fail_json(reply, "no console line says \"%s\"", reason);
}

/* How many access lines have this method, path and status (polled until at
 * least `min`: a line is written once the request completed). */
static size_t wait_access(const char *method, const char *path, int status, size_t min)
{
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    for (;;) {
        json_t *lines = gwt_log_lines(g_gw, true), *access = gwt_log_find(lines, "access", NULL), *l;
        size_t i, n = 0;
        json_array_foreach(access, i, l) {
            const char *m = gwt_str(l, "method"), *p = gwt_str(l, "path");
            if (m && p && strcmp(m, method) == 0 && strcmp(p, path) == 0 &&
                json_integer_value(json_object_get(l, "status")) == status)
                n++;
        }
        json_decref(access);
        json_decref(lines);
        if (n >= min || deadline_remaining_ms(deadline) == 0)
            return n;
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    }
}

static void simple_get_reads_exposed_headers_only(void **state)
{
    (void)state;
    json_t *reply = fetch("/items", "");
    expect_read(reply, 200, "[1,2]");
    if (!readable(reply, "x-request-id") || !readable(reply, "content-type"))
        gwt_fail_json(reply, "X-Request-Id (exposed) and Content-Type (safelisted) should be readable");
    if (readable(reply, "vary") || readable(reply, "access-control-allow-origin"))
        gwt_fail_json(reply, "headers not exposed must not be readable");
    json_decref(reply);
    assert_int_equal(wait_access("OPTIONS", "/items", 204, 0), 0); /* a simple request: no preflight */
}

static void preflighted_post_with_credentials(void **state)
{
    (void)state;
    json_t *reply = fetch("/orders", "\"method\": \"POST\", \"credentials\": \"include\", \"body\": \"{\\\"n\\\":3}\", "
                                     "\"headers\": {\"X-Custom\": \"c1\", \"Content-Type\": \"application/json\", "
                                     "\"Authorization\": \"Bearer " TOKEN "\"}");
    expect_read(reply, 200, "{\"order\":{\"n\":3},\"custom\":\"c1\"}");
    json_decref(reply);
    /* the preflight was answered by the gateway, without a token */
    if (wait_access("OPTIONS", "/orders", 204, 1) < 1 || wait_access("POST", "/orders", 200, 1) < 1)
        fail_msg("expected a 204 preflight and the 200 POST in the access log");
}

static void error_answers_are_readable(void **state)
{
    (void)state;
    /* no token: a 401 the script can read (the preflight passed without auth) */
    json_t *reply = fetch("/orders", "\"method\": \"POST\", \"body\": \"{}\", "
                                     "\"headers\": {\"Content-Type\": \"application/json\"}");
    expect_read(reply, 401, NULL);
    json_t *body = json_loads(json_string_value(json_object_get(reply, "body")), 0, NULL);
    if (!body || strcmp(gwt_str(body, "error"), "unauthorized") != 0)
        gwt_fail_json(reply, "the 401's body should be readable");
    json_decref(body);
    json_decref(reply);
    /* the limit: burst 1, then a 429 with its headers readable */
    reply = fetch("/limited", "");
    expect_read(reply, 200, "\"ok\"");
    if (!readable(reply, "ratelimit-limit") || strcmp(readable(reply, "ratelimit-limit"), "1") != 0 ||
        !readable(reply, "ratelimit-remaining") || strcmp(readable(reply, "ratelimit-remaining"), "0") != 0)
        gwt_fail_json(reply, "RateLimit-Limit 1 and RateLimit-Remaining 0 expected");
    json_decref(reply);
    reply = fetch("/limited", "");
    expect_read(reply, 429, NULL);
    const char *retry = readable(reply, "retry-after"), *reset = readable(reply, "ratelimit-reset");
    /* 0.01 rps: a token every 100 s; a little of it may have passed */
    if (!retry || atoi(retry) < 90 || atoi(retry) > 100 || !reset || atoi(reset) < 90 || atoi(reset) > 100)
        gwt_fail_json(reply, "Retry-After and RateLimit-Reset should be about 100 s");
    json_decref(reply);
}

static void other_origin_is_blocked(void **state)
{
    (void)state;
    json_t *reply = fetch("/partner", "");
    expect_blocked(reply, "No 'Access-Control-Allow-Origin' header");
    json_decref(reply);
    /* a method that needs a preflight: refused by the gateway, blocked */
    reply = fetch("/partner", "\"method\": \"PUT\", \"body\": \"x\"");
    expect_blocked(reply, "preflight");
    json_decref(reply);
    if (wait_access("OPTIONS", "/partner", 403, 1) < 1)
        fail_msg("the gateway should have refused the preflight with 403");
    assert_int_equal(wait_access("PUT", "/partner", 200, 0), 0); /* and the PUT was never sent */
}

static void header_not_allowed_is_blocked(void **state)
{
    (void)state;
    size_t before = wait_access("OPTIONS", "/items", 403, 0);
    json_t *reply = fetch("/items", "\"headers\": {\"X-Not-Allowed\": \"1\"}");
    expect_blocked(reply, "Response to preflight request doesn't pass access control check");
    json_decref(reply);
    /* the gateway refused the preflight (cors.h: a header not allowed) */
    if (wait_access("OPTIONS", "/items", 403, before + 1) < before + 1)
        fail_msg("the gateway should have refused the preflight with 403");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_get_reads_exposed_headers_only),
        cmocka_unit_test(preflighted_post_with_credentials),
        cmocka_unit_test(error_answers_are_readable),
        cmocka_unit_test(other_origin_is_blocked),
        cmocka_unit_test(header_not_allowed_is_blocked),
    };
    return cmocka_run_group_tests_name("edge_cors", tests, group_setup, group_teardown);
}
