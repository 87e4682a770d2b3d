/* Unit tests of gateway/cors: every outcome of cors_decide() and the
 * headers of each, on policies loaded by the real config loader. JSON in
 * these tests is written with single quotes, turned into double quotes
 * before loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/cors.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct fixture {
    config *cfg;
    cors_policy_t policy;
} fixture;

/* Loads {'cors': CORS} and compiles its policy. */
static void load(fixture *f, const char *cors)
{
    char json[2048];
    snprintf(json, sizeof json, "{'cors': %s}", cors);
    for (char *p = json; *p; p++)
        if (*p == '\'')
            *p = '"';
    config_error error;
    if (config_load_string(json, strlen(json), NULL, &f->cfg, &error) != 0)
        fail_msg("config: %s", error.message);
    assert_int_equal(cors_policy_init(&f->policy, f->cfg->cors), 0);
}

static void unload(fixture *f)
{
    cors_policy_free(&f->policy);
    config_free(f->cfg);
}

static span_t absent(void)
{
    return span_of(NULL, 0);
}

/* A request: method, Origin (NULL: absent), Access-Control-Request-Method
 * and -Headers (NULL: absent), the path's methods. */
static cors_request_t request(const char *method, const char *origin, const char *acrm,
                              const char *acrh, unsigned path_methods)
{
    cors_request_t r = {
        .method = span_cstr(method),
        .origin = origin ? span_cstr(origin) : absent(),
        .request_method = acrm ? span_cstr(acrm) : absent(),
        .request_headers = acrh ? span_cstr(acrh) : absent(),
        .path_methods = path_methods,
    };
    return r;
}

static cors_result_t decide(const fixture *f, cors_request_t req)
{
    cors_result_t out;
    memset(&out, 0xa5, sizeof out);
    cors_decide(&f->policy, &req, &out);
    assert_true(out.count <= CORS_HEADERS_MAX);
    /* the request's spans are C strings here: so is every value (cors.h) */
    for (size_t i = 0; i < out.count; i++)
        assert_int_equal(out.headers[i].value.p[out.headers[i].value.n], '\0');
    return out;
}

static const cors_header_t *find(const cors_result_t *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return &r->headers[i];
    return NULL;
}

static void assert_header(const cors_result_t *r, const char *name, const char *value)
{
    const cors_header_t *h = find(r, name);
    if (h == NULL)
        fail_msg("no %s header", name);
    if (h->value.n != strlen(value) || memcmp(h->value.p, value, h->value.n) != 0)
        fail_msg("%s: %.*s, expected %s", name, (int)h->value.n, h->value.p, value);
}

static void assert_no_header(const cors_result_t *r, const char *name)
{
    const cors_header_t *h = find(r, name);
    if (h != NULL)
        fail_msg("unexpected %s: %.*s", name, (int)h->value.n, h->value.p);
}

/* The names of r's headers, in order, joined by "|". */
static const char *names(const cors_result_t *r, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->count; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "|" : "", r->headers[i].name);
    return buf;
}

#define GET_POST (CORS_METHOD_GET | CORS_METHOD_HEAD | CORS_METHOD_POST)
#define APP "https://app.example.com"
#define LIST_POLICY "{'allow_origins': ['" APP "', 'http://localhost:5173']}"

/* ---- not a CORS request -------------------------------------------------- */

static void test_no_origin_is_not_cors(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    cors_result_t r = decide(&f, request("GET", NULL, NULL, NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_NOT_CORS);
    assert_int_equal(r.count, 1); /* the answer depends on Origin: caches must know */
    assert_header(&r, "Vary", "Origin");
    assert_null(r.refusal);
    /* an OPTIONS without Origin is no preflight, even with ACRM */
    r = decide(&f, request("OPTIONS", NULL, "GET", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_NOT_CORS);
    unload(&f);
    load(&f, "{'allow_origins': ['*']}");
    r = decide(&f, request("GET", NULL, NULL, NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_NOT_CORS);
    assert_int_equal(r.count, 0); /* "*" is the same for everyone */
    unload(&f);
}

/* ---- actual requests ----------------------------------------------------- */

static void test_allowed_origin_gets_its_own_origin_back(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    const char origin[] = "http://localhost:5173";
    cors_request_t req = request("POST", origin, NULL, NULL, GET_POST);
    cors_result_t r = decide(&f, req);
    char buf[256];
    assert_int_equal(r.outcome, CORS_ALLOWED);
    assert_string_equal(names(&r, buf, sizeof buf), "Access-Control-Allow-Origin|Vary");
    assert_header(&r, "Access-Control-Allow-Origin", "http://localhost:5173");
    assert_ptr_equal(find(&r, "Access-Control-Allow-Origin")->value.p, origin); /* borrowed */
    assert_header(&r, "Vary", "Origin");
    assert_null(r.refusal);
    unload(&f);
}

static void test_allowed_with_credentials_and_exposed_headers(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['" APP "'], 'allow_credentials': true,"
             " 'expose_headers': ['X-Request-Id', 'RateLimit-Remaining']}");
    cors_result_t r = decide(&f, request("DELETE", APP, NULL, NULL, CORS_METHOD_DELETE));
    char buf[256];
    assert_int_equal(r.outcome, CORS_ALLOWED);
    assert_string_equal(names(&r, buf, sizeof buf),
                        "Access-Control-Allow-Origin|Vary|Access-Control-Allow-Credentials|"
                        "Access-Control-Expose-Headers");
    assert_header(&r, "Access-Control-Allow-Origin", APP); /* never "*" with credentials */
    assert_header(&r, "Access-Control-Allow-Credentials", "true");
    assert_header(&r, "Access-Control-Expose-Headers", "X-Request-Id, RateLimit-Remaining");
    unload(&f);
}

static void test_any_origin_answers_star(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['*'], 'expose_headers': ['x-request-id']}");
    cors_result_t r = decide(&f, request("GET", "https://anyone.example", NULL, NULL, GET_POST));
    char buf[256];
    assert_int_equal(r.outcome, CORS_ALLOWED);
    assert_string_equal(names(&r, buf, sizeof buf),
                        "Access-Control-Allow-Origin|Access-Control-Expose-Headers");
    assert_header(&r, "Access-Control-Allow-Origin", "*");
    /* the opaque origin of sandboxed pages too, as "*" says */
    r = decide(&f, request("GET", "null", NULL, NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_ALLOWED);
    assert_header(&r, "Access-Control-Allow-Origin", "*");
    unload(&f);
}

static void test_other_origins_get_no_cors_headers(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['" APP "'], 'allow_credentials': true,"
             " 'expose_headers': ['x-request-id']}");
    static const char *const others[] = {
        "https://evil.example", "https://App.example.com", /* browsers send lower case */
        "https://app.example.com/", "https://app.example.com:443", "http://app.example.com",
        "https://app.example.com.evil.example", "https://app.example.co", "null", "",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        cors_result_t r = decide(&f, request("GET", others[i], NULL, NULL, GET_POST));
        if (r.outcome != CORS_NOT_ALLOWED)
            fail_msg("origin \"%s\" was not refused", others[i]);
        assert_int_equal(r.count, 1);
        assert_header(&r, "Vary", "Origin");
        assert_no_header(&r, "Access-Control-Allow-Origin");
        assert_no_header(&r, "Access-Control-Allow-Credentials");
    }
    unload(&f);
}

/* An OPTIONS with Origin but no Access-Control-Request-Method is no
 * preflight: it is answered as usual (405), with the CORS headers. */
static void test_options_without_request_method_is_an_actual_request(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    cors_result_t r = decide(&f, request("OPTIONS", APP, NULL, "x-foo", GET_POST));
    assert_int_equal(r.outcome, CORS_ALLOWED);
    assert_header(&r, "Access-Control-Allow-Origin", APP);
    unload(&f);
}

/* ---- preflights ---------------------------------------------------------- */

static void test_preflight_with_the_paths_methods(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    cors_result_t r = decide(&f, request("OPTIONS", APP, "POST", NULL, GET_POST));
    char buf[256];
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_string_equal(names(&r, buf, sizeof buf),
                        "Access-Control-Allow-Origin|Access-Control-Allow-Methods|"
                        "Access-Control-Max-Age");
    assert_header(&r, "Access-Control-Allow-Origin", APP);
    assert_header(&r, "Access-Control-Allow-Methods", "GET, HEAD, POST");
    assert_header(&r, "Access-Control-Max-Age", "600");
    assert_null(r.refusal);
    /* HEAD comes with GET */
    r = decide(&f, request("OPTIONS", APP, "HEAD", NULL, CORS_METHOD_GET | CORS_METHOD_HEAD));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_header(&r, "Access-Control-Allow-Methods", "GET, HEAD");
    r = decide(&f, request("OPTIONS", APP, "DELETE", NULL,
                           CORS_METHOD_PUT | CORS_METHOD_PATCH | CORS_METHOD_DELETE));
    assert_header(&r, "Access-Control-Allow-Methods", "PUT, PATCH, DELETE");
    unload(&f);
}

static void test_preflight_refuses_methods_the_path_lacks(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    static const char *const refused[] = {"PUT", "DELETE", "get", "PATCH", "CONNECT"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cors_result_t r = decide(&f, request("OPTIONS", APP, refused[i], NULL, GET_POST));
        if (r.outcome != CORS_PREFLIGHT_REFUSED)
            fail_msg("method %s was not refused", refused[i]);
        assert_int_equal(r.count, 0);
        assert_string_equal(r.refusal, "method not allowed");
    }
    unload(&f);
}

/* Every set of methods is written in the order GET, HEAD, POST, PUT,
 * PATCH, DELETE. */
static void test_preflight_names_every_set_of_methods(void **state)
{
    (void)state;
    static const char *const order[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    fixture f;
    load(&f, LIST_POLICY);
    for (unsigned bits = 1; bits < 64; bits++) {
        char expected[64] = "";
        const char *first = NULL;
        for (unsigned i = 0; i < 6; i++) {
            if (!(bits & (1u << i)))
                continue;
            snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s",
                     first ? ", " : "", order[i]);
            if (first == NULL)
                first = order[i];
        }
        cors_result_t r = decide(&f, request("OPTIONS", APP, first, NULL, bits));
        assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
        assert_header(&r, "Access-Control-Allow-Methods", expected);
    }
    unload(&f);
}

/* A `*` route takes any method: the preflight names the one asked for. */
static void test_preflight_on_a_star_route(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    const char method[] = "PROPFIND";
    cors_result_t r = decide(&f, request("OPTIONS", APP, method, NULL,
                                         CORS_METHOD_ANY | CORS_METHOD_GET));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_header(&r, "Access-Control-Allow-Methods", "PROPFIND");
    assert_ptr_equal(find(&r, "Access-Control-Allow-Methods")->value.p, method);
    unload(&f);
}

static void test_preflight_with_configured_methods(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['" APP "'], 'allow_methods': ['GET', 'PATCH'],"
             " 'max_age_s': 7200}");
    cors_result_t r = decide(&f, request("OPTIONS", APP, "PATCH", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_header(&r, "Access-Control-Allow-Methods", "GET, PATCH"); /* not the path's */
    assert_header(&r, "Access-Control-Max-Age", "7200");
    /* the configured list decides, not the path's */
    r = decide(&f, request("OPTIONS", APP, "POST", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
    assert_string_equal(r.refusal, "method not allowed");
    /* methods are case-sensitive: Fetch sends "patch" as written */
    r = decide(&f, request("OPTIONS", APP, "patch", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
    unload(&f);
}

static void test_preflight_from_another_origin_is_refused(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['" APP "'], 'allow_credentials': true}");
    cors_result_t r = decide(&f, request("OPTIONS", "https://evil.example", "GET", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
    assert_int_equal(r.count, 0); /* no CORS header at all, not even Vary */
    assert_string_equal(r.refusal, "origin not allowed");
    r = decide(&f, request("OPTIONS", "null", "GET", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
    unload(&f);
}

static void test_preflight_with_credentials(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['" APP "'], 'allow_credentials': true,"
             " 'allow_headers': ['Authorization']}");
    cors_result_t r = decide(&f, request("OPTIONS", APP, "GET", "authorization", GET_POST));
    char buf[256];
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_string_equal(names(&r, buf, sizeof buf),
                        "Access-Control-Allow-Origin|Access-Control-Allow-Credentials|"
                        "Access-Control-Allow-Methods|Access-Control-Allow-Headers|"
                        "Access-Control-Max-Age");
    assert_header(&r, "Access-Control-Allow-Origin", APP);
    assert_header(&r, "Access-Control-Allow-Credentials", "true");
    assert_header(&r, "Access-Control-Allow-Headers", "authorization");
    unload(&f);
}

static void test_preflight_request_headers(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['" APP "'], 'allow_headers': ['Content-Type', 'X-Api-Key']}");
    static const char *const accepted[] = {
        "content-type", "x-api-key,content-type", "X-Api-Key, Content-Type",
        "  x-api-key ,, content-type\t", "", ",", "x-api-key,x-api-key",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        cors_result_t r = decide(&f, request("OPTIONS", APP, "POST", accepted[i], GET_POST));
        if (r.outcome != CORS_PREFLIGHT_OK)
            fail_msg("\"%s\" was refused: %s", accepted[i], r.refusal);
        assert_header(&r, "Access-Control-Allow-Headers", "content-type, x-api-key");
    }
    const char refused[] = "content-type, authorization, x-api-key";
    cors_result_t r = decide(&f, request("OPTIONS", APP, "POST", refused, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
    assert_int_equal(r.count, 0);
    assert_string_equal(r.refusal, "header not allowed");
    assert_int_equal(r.refused_header.n, strlen("authorization"));
    assert_memory_equal(r.refused_header.p, "authorization", r.refused_header.n);
    assert_ptr_equal(r.refused_header.p, refused + strlen("content-type, "));
    static const char *const malformed[] = {"x api", "x-api-key, (x)", "a:b", "x\"y"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        r = decide(&f, request("OPTIONS", APP, "POST", malformed[i], GET_POST));
        assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
        assert_string_equal(r.refusal, "bad Access-Control-Request-Headers");
    }
    unload(&f);
}

/* allow_headers defaults to none beyond the CORS-safelisted headers. A
 * browser lists a safelisted name only when its value is not safelisted
 * (Content-Type: application/json): then it must be configured. */
static void test_default_allows_only_safelisted_headers(void **state)
{
    (void)state;
    fixture f;
    load(&f, LIST_POLICY);
    /* only safelisted headers: no Access-Control-Request-Headers at all */
    cors_result_t r = decide(&f, request("OPTIONS", APP, "POST", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_no_header(&r, "Access-Control-Allow-Headers");
    static const char *const listed[] = {"content-type", "accept", "authorization", "x-custom"};
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++) {
        r = decide(&f, request("OPTIONS", APP, "POST", listed[i], GET_POST));
        assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
        assert_string_equal(r.refusal, "header not allowed");
    }
    unload(&f);
}

static void test_preflight_bad_request_method(void **state)
{
    (void)state;
    fixture f;
    load(&f, "{'allow_origins': ['*']}");
    static const char *const bad[] = {"", "GE T", "GET,POST", "G\"T"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cors_result_t r = decide(&f, request("OPTIONS", APP, bad[i], NULL,
                                             CORS_METHOD_ANY));
        assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
        assert_string_equal(r.refusal, "bad Access-Control-Request-Method");
    }
    /* with "*" the preflight answers "*" too */
    cors_result_t r = decide(&f, request("OPTIONS", APP, "GET", NULL, GET_POST));
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_header(&r, "Access-Control-Allow-Origin", "*");
    unload(&f);
}

/* ---- method bits --------------------------------------------------------- */

static void test_method_bits(void **state)
{
    (void)state;
    assert_int_equal(cors_method_bits(CONFIG_METHOD_GET), CORS_METHOD_GET | CORS_METHOD_HEAD);
    assert_int_equal(cors_method_bits(CONFIG_METHOD_POST), CORS_METHOD_POST);
    assert_int_equal(cors_method_bits(CONFIG_METHOD_PUT), CORS_METHOD_PUT);
    assert_int_equal(cors_method_bits(CONFIG_METHOD_PATCH), CORS_METHOD_PATCH);
    assert_int_equal(cors_method_bits(CONFIG_METHOD_DELETE), CORS_METHOD_DELETE);
    assert_int_equal(cors_method_bits(CONFIG_METHOD_ANY), CORS_METHOD_ANY);
    assert_int_equal(cors_methods_from_list(SPAN_LIT("GET, DELETE")),
                     CORS_METHOD_GET | CORS_METHOD_HEAD | CORS_METHOD_DELETE);
    assert_int_equal(cors_methods_from_list(SPAN_LIT("POST,PUT ,  PATCH")),
                     CORS_METHOD_POST | CORS_METHOD_PUT | CORS_METHOD_PATCH);
    assert_int_equal(cors_methods_from_list(SPAN_LIT("*")), CORS_METHOD_ANY);
    assert_int_equal(cors_methods_from_list(SPAN_LIT("get, BREW, ")), 0);
    assert_int_equal(cors_methods_from_list(span_of(NULL, 0)), 0);
}

static void test_labels(void **state)
{
    (void)state;
    assert_string_equal(cors_outcome_label(CORS_NOT_CORS), "none");
    assert_string_equal(cors_outcome_label(CORS_PREFLIGHT_OK), "preflight");
    assert_string_equal(cors_outcome_label(CORS_PREFLIGHT_REFUSED), "preflight_refused");
    assert_string_equal(cors_outcome_label(CORS_ALLOWED), "allowed");
    assert_string_equal(cors_outcome_label(CORS_NOT_ALLOWED), "origin_refused");
}

/* A route's own policy, as config_route_cors() hands it out. */
static void test_route_policy(void **state)
{
    (void)state;
    const char json[] = "{\"cors\": {\"allow_origins\": [\"https://a.example\"]},"
                        " \"services\": {\"s\": {\"endpoints\": [\"127.0.0.1:1\"]}},"
                        " \"routes\": [{\"method\": \"PUT\", \"path\": \"/x\", \"service\": \"s\","
                        " \"pattern\": 1, \"cors\": {\"allow_origins\": [\"https://b.example\"]}}]}";
    config *cfg = NULL;
    config_error error;
    assert_int_equal(config_load_string(json, strlen(json), NULL, &cfg, &error), 0);
    cors_policy_t p;
    assert_int_equal(cors_policy_init(&p, config_route_cors(cfg, &cfg->routes[0])), 0);
    cors_request_t req = request("OPTIONS", "https://b.example", "PUT", NULL,
                                 cors_method_bits(cfg->routes[0].method));
    cors_result_t r;
    cors_decide(&p, &req, &r);
    assert_int_equal(r.outcome, CORS_PREFLIGHT_OK);
    assert_header(&r, "Access-Control-Allow-Methods", "PUT");
    req.origin = SPAN_LIT("https://a.example"); /* the top level's: replaced */
    cors_decide(&p, &req, &r);
    assert_int_equal(r.outcome, CORS_PREFLIGHT_REFUSED);
    cors_policy_free(&p);
    cors_policy_free(&p); /* a freed (zeroed) policy is fine */
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_origin_is_not_cors),
        cmocka_unit_test(test_allowed_origin_gets_its_own_origin_back),
        cmocka_unit_test(test_allowed_with_credentials_and_exposed_headers),
        cmocka_unit_test(test_any_origin_answers_star),
        cmocka_unit_test(test_other_origins_get_no_cors_headers),
        cmocka_unit_test(test_options_without_request_method_is_an_actual_request),
        cmocka_unit_test(test_preflight_with_the_paths_methods),
        cmocka_unit_test(test_preflight_refuses_methods_the_path_lacks),
        cmocka_unit_test(test_preflight_names_every_set_of_methods),
        cmocka_unit_test(test_preflight_on_a_star_route),
        cmocka_unit_test(test_preflight_with_configured_methods),
        cmocka_unit_test(test_preflight_from_another_origin_is_refused),
        cmocka_unit_test(test_preflight_with_credentials),
        cmocka_unit_test(test_preflight_request_headers),
        cmocka_unit_test(test_default_allows_only_safelisted_headers),
        cmocka_unit_test(test_preflight_bad_request_method),
        cmocka_unit_test(test_method_bits),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_route_policy),
    };
    return cmocka_run_group_tests_name("cors", tests, NULL, NULL);
}
