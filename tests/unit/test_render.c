/* Unit tests of gateway/render: templates compiled by the real config
 * loader, captures from the real router, query values from a raw query
 * string through render_query_lookup(), headers from a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/render.h"
#include "gateway/router.h"

/* ---- helpers ------------------------------------------------------------- */

/* A request: the route's path template and data template (JSON text), then
 * what came in. headers: lowercased name, value pairs, NULL-terminated. */
typedef struct request {
    const char *route;     /* e.g. "/users/:id" */
    const char *data;      /* the template, JSON */
    const char *path;      /* the request path, raw */
    const char *body;      /* NULL: empty */
    size_t body_len;       /* 0: strlen(body) */
    const char *query;     /* raw, NULL: none */
    const char *const *headers;
} request;

static render_lookup_result header_lookup(void *context, const char *name, size_t name_len,
                                          span_t *value)
{
    const char *const *pair = context;
    for (; pair && pair[0]; pair += 2) {
        if (strlen(pair[0]) == name_len && memcmp(pair[0], name, name_len) == 0) {
            *value = span_cstr(pair[1]);
            return RENDER_LOOKUP_FOUND;
        }
    }
    return RENDER_LOOKUP_ABSENT;
}

static config *load_route(const char *route, const char *data)
{
    buf_t json = BUF_INIT;
    buf_append_cstr(&json, "{\"services\":{\"s\":{\"endpoints\":[\"127.0.0.1:3000\"]}},"
                           "\"routes\":[{\"method\":\"POST\",\"service\":\"s\",\"pattern\":1,"
                           "\"path\":\"");
    buf_append_cstr(&json, route);
    buf_append_cstr(&json, "\",\"data\":");
    buf_append_cstr(&json, data);
    buf_append_cstr(&json, "}]}");
    config *cfg = NULL;
    config_error error;
    if (config_load_string(json.data, json.len, NULL, &cfg, &error) != 0)
        fail_msg("config: %s (%.*s)", error.message, (int)json.len, json.data);
    buf_free(&json);
    return cfg;
}

/* Renders; returns render_template()'s result with the output or the
 * message in *result (NUL-terminated, to free). */
static int render(const request *rq, char **result)
{
    config *cfg = load_route(rq->route, rq->data);
    router_t *router = router_new(cfg);
    assert_non_null(router);
    router_match_t m;
    router_match_init(&m);
    assert_int_equal(router_match(router, "POST", rq->path, &m), ROUTER_FOUND);
    const template *t = &cfg->routes[0].data;

    span_t body = span_of(rq->body, rq->body ? (rq->body_len ? rq->body_len : strlen(rq->body)) : 0);
    char error[RENDER_ERROR_SIZE];
    if (t->uses_body && render_check_body(body, error, sizeof error) != 0)
        fail_msg("bad test body: %s", error);
    render_query q = {rq->query, rq->query ? strlen(rq->query) : 0, BUF_INIT, BUF_INIT};
    buf_t scratch = BUF_INIT;
    render_input_t in = {
        .body = body,
        .captures = m.captures,
        .capture_count = m.capture_count,
        .query = render_query_lookup,
        .query_context = &q,
        .header = header_lookup,
        .header_context = (void *)rq->headers,
        .scratch = &scratch,
    };
    buf_t out = BUF_INIT;
    buf_append_cstr(&out, "<"); /* rendering appends */
    memset(error, 'x', sizeof error);
    int rc = render_template(t, &in, &out, error, sizeof error);
    if (rc == 0) {
        assert_true(out.len >= 1);
        assert_memory_equal(out.data, "<", 1);
        *result = malloc(out.len);
        assert_non_null(*result);
        memcpy(*result, out.data + 1, out.len - 1);
        (*result)[out.len - 1] = '\0';
        span_t whole;
        if (render_whole_body(t, body, &whole)) { /* the shortcut must agree */
            assert_int_equal(whole.n, out.len - 1);
            assert_memory_equal(whole.p, out.data + 1, whole.n);
        }
    } else {
        assert_int_equal(out.len, 1); /* restored */
        assert_non_null(memchr(error, '\0', sizeof error));
        *result = strdup(error);
    }
    buf_free(&out);
    buf_free(&scratch);
    buf_free(&q.value);
    router_match_free(&m);
    router_free(router);
    config_free(cfg);
    return rc;
}

static void assert_renders(const request *rq, const char *expected)
{
    char *got = NULL;
    int rc = render(rq, &got);
    if (rc != 0)
        fail_msg("render failed: %s", got);
    assert_string_equal(got, expected);
    free(got);
}

static void assert_fails(const request *rq, const char *message)
{
    char *got = NULL;
    int rc = render(rq, &got);
    if (rc == 0)
        fail_msg("render succeeded: %s", got);
    assert_int_equal(rc, -1);
    assert_string_equal(got, message);
    free(got);
}

/* "NAME=VALUE" with VALUE percent-encoded (all but [A-Za-z0-9._-]). */
static void query_of(const char *name, const char *value, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "%s=", name);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '-' || *p == '_')
            used += (size_t)snprintf(out + used, size - used, "%c", *p);
        else
            used += (size_t)snprintf(out + used, size - used, "%%%02X", *p);
    }
    assert_true(used < size);
}

/* A query parameter q rendered with `data` (a template using $query.q). */
static void query_renders(const char *data, const char *query, const char *expected)
{
    request rq = {.route = "/r", .data = data, .path = "/r", .query = query};
    assert_renders(&rq, expected);
}

static void query_fails(const char *data, const char *query, const char *message)
{
    request rq = {.route = "/r", .data = data, .path = "/r", .query = query};
    assert_fails(&rq, message);
}

/* The body rendered with `data`. */
static void body_renders(const char *data, const char *body, const char *expected)
{
    request rq = {.route = "/r", .data = data, .path = "/r", .body = body};
    assert_renders(&rq, expected);
}

static void body_fails(const char *data, const char *body, const char *message)
{
    request rq = {.route = "/r", .data = data, .path = "/r", .body = body};
    assert_fails(&rq, message);
}

/* ---- literals and the body ------------------------------------------------- */

static void literal_templates(void **state)
{
    (void)state;
    query_renders("{\"a\":1,\"b\":[true,null,\"$$foo\",\"$$body.\",\"$\",\"$1\"]}", NULL,
                  "{\"a\":1,\"b\":[true,null,\"$foo\",\"$body.\",\"$\",\"$1\"]}");
    query_renders("\"text\"", NULL, "\"text\"");
    query_renders("null", NULL, "null");
    query_renders("{\"$query.q\":\"$query.q\"}", "q=v", "{\"$query.q\":\"v\"}");
}

static void whole_body_is_byte_exact(void **state)
{
    (void)state;
    const char *hostile = "{\"n\":123456789012345678901234567890.000000000000000000001,"
                          "\"s\":\"\\u0000\\ud800\\udc00x\\uDFFF\",\"e\":1E+400,\"k\":{ }}";
    body_renders("\"$body\"", hostile, hostile);
    body_renders("{\"v\":\"$body\"}", hostile,
                 "{\"v\":{\"n\":123456789012345678901234567890.000000000000000000001,"
                 "\"s\":\"\\u0000\\ud800\\udc00x\\uDFFF\",\"e\":1E+400,\"k\":{ }}}");
    body_renders("\"$body\"", "  \n\t[1, 2 ,3]\r\n ", "[1, 2 ,3]"); /* whitespace around dropped */
    body_renders("\"$body\"", "\"caf\xc3\xa9\"", "\"caf\xc3\xa9\"");
    body_renders("\"$body\"", "-0.0e-0", "-0.0e-0");
    body_renders("[\"$body\",\"$body\"]", "7", "[7,7]");
}

/* Which templates are forwarded without a copy, and that the bytes are the
 * body's own (render() checks every rendering agrees with the shortcut). */
static void whole_body_shortcut(void **state)
{
    (void)state;
    static const struct {
        const char *data, *body;
        bool taken;
    } cases[] = {
        {"\"$body\"", " [1,2] ", true},
        {"\"$body:json\"", "{\"a\":1}", true},
        {"\"$body:json\"", "\"[1]\"", false}, /* a string re-read as JSON */
        {"\"$body.a\"", "{\"a\":1}", false},
        {"\"$body:int\"", "7", false},
        {"[\"$body\"]", "7", false},
        {"\"$path.id\"", "7", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config *cfg = load_route("/r/:id", cases[i].data);
        span_t body = span_cstr(cases[i].body), data = {NULL, 0};
        bool taken = render_whole_body(&cfg->routes[0].data, body, &data);
        if (taken != cases[i].taken)
            fail_msg("case %zu (%s): %d", i, cases[i].data, (int)taken);
        if (taken)
            assert_true(data.p >= body.p && data.p + data.n <= body.p + body.n);
        config_free(cfg);
    }
    config *cfg = load_route("/r", "\"$body\"");
    span_t data;
    assert_true(render_whole_body(&cfg->routes[0].data, span_cstr(" \n"), &data));
    assert_int_equal(data.n, 4);
    assert_memory_equal(data.p, "null", 4);
    assert_true(render_whole_body(&cfg->routes[0].data, span_of(NULL, 0), &data)); /* no body */
    assert_int_equal(data.n, 4);
    assert_memory_equal(data.p, "null", 4);
    config_free(cfg);
}

static void empty_body_is_null(void **state)
{
    (void)state;
    body_renders("{\"v\":\"$body\"}", NULL, "{\"v\":null}");
    body_renders("{\"v\":\"$body\"}", "", "{\"v\":null}");
    body_renders("{\"v\":\"$body\"}", " \r\n\t ", "{\"v\":null}");
    body_renders("{\"v\":\"$body.a\"}", NULL, "{\"v\":null}");
    body_renders("{\"v\":\"$body:int\"}", "", "{\"v\":null}");
    body_renders("{\"v\":\"$body:json\"}", "", "{\"v\":null}");
}

static void body_members(void **state)
{
    (void)state;
    const char *body = "{\"a\":{\"b\":{\"c\":[1,{\"d\":2}]},\"n\":null,\"s\":\"x\"},"
                       "\"big\":18446744073709551616123,\"u\":\"\\ud800\",\"e\":{}}";
    body_renders("\"$body.a.b\"", body, "{\"c\":[1,{\"d\":2}]}");
    body_renders("\"$body.a.b.c\"", body, "[1,{\"d\":2}]");
    body_renders("\"$body.big\"", body, "18446744073709551616123");
    body_renders("\"$body.u\"", body, "\"\\ud800\"");
    body_renders("\"$body.e\"", body, "{}");
    body_renders("\"$body.a.n\"", body, "null");
    /* absent, or an intermediate that is not an object: null */
    body_renders("[\"$body.zz\",\"$body.a.zz\",\"$body.a.s.x\",\"$body.a.b.c.d\",\"$body.a.n.x\"]",
                 body, "[null,null,null,null,null]");
    body_renders("\"$body.a\"", "[{\"a\":1}]", "null");
    body_renders("\"$body.a\"", "\"a\"", "null");
    body_renders("\"$body.a\"", "5", "null");
    /* a repeated key: the last one, as JSON.parse does */
    body_renders("\"$body.k\"", "{\"k\":1,\"k\":2}", "2");
    /* keys are compared unescaped */
    body_renders("\"$body.id\"", "{\"\\u0069d\":9}", "9");
    body_renders("\"$body.caf\xc3\xa9\"", "{\"caf\\u00e9\":\"ok\"}", "\"ok\"");
}

/* ---- path, query, header ----------------------------------------------------- */

static void path_captures_as_strings(void **state)
{
    (void)state;
    request rq = {.route = "/users/:id/*rest", .data = "{\"id\":\"$path.id\",\"r\":\"$path.rest\"}",
                  .path = "/users/a%22b%5C%0A%01/x%2Fy/z"};
    assert_renders(&rq, "{\"id\":\"a\\\"b\\\\\\n\\u0001\",\"r\":\"x/y/z\"}");
    rq.path = "/users/%E2%82%AC/%F0%9F%98%80";
    assert_renders(&rq, "{\"id\":\"\xe2\x82\xac\",\"r\":\"\xf0\x9f\x98\x80\"}");
    rq.path = "/users/%ff/x";
    assert_fails(&rq, "path parameter \"id\" is not valid UTF-8");
    rq.path = "/users/ok/%ED%A0%80"; /* an encoded surrogate is not UTF-8 */
    assert_fails(&rq, "path parameter \"rest\" is not valid UTF-8");
}

static void query_parameters(void **state)
{
    (void)state;
    query_renders("\"$query.q\"", "q=a+b%2Bc", "\"a b+c\"");
    query_renders("\"$query.q\"", "x=1&q=first&q=second", "\"first\"");
    query_renders("\"$query.q\"", "q", "\"\"");
    query_renders("\"$query.q\"", "q=", "\"\"");
    query_renders("\"$query.q\"", "x=1", "null");
    query_renders("\"$query.q\"", NULL, "null");
    query_renders("\"$query.q\"", "q=%22%5C%0D%7F", "\"\\\"\\\\\\r\x7f\"");
    query_renders("\"$query.first name\"", "first+name=Ada", "\"Ada\"");
    query_renders("\"$query.q\"", "q=%C3%A9", "\"\xc3\xa9\"");
    query_fails("\"$query.q\"", "q=%ff", "query parameter \"q\" is not valid UTF-8");
    query_fails("\"$query.q\"", "q=%zz", "query parameter \"q\": invalid percent-encoding");
    query_fails("\"$query.q\"", "q=%00", "query parameter \"q\": invalid percent-encoding");
    query_fails("\"$query.q:int\"", "q=%4", "query parameter \"q\": invalid percent-encoding");
    query_renders("\"$query.q\"", "x=%zz&q=1", "\"1\""); /* other parameters do not matter */
}

static void headers(void **state)
{
    (void)state;
    static const char *const hs[] = {"x-id", "abc\"def", "x-count", "12", "x-bad", "\xff",
                                     "x-empty", "", NULL};
    request rq = {.route = "/r", .path = "/r", .headers = hs,
                  .data = "{\"id\":\"$header.X-Id\",\"n\":\"$header.x-count:int\","
                          "\"e\":\"$header.x-empty\",\"none\":\"$header.x-none:bool\"}"};
    assert_renders(&rq, "{\"id\":\"abc\\\"def\",\"n\":12,\"e\":\"\",\"none\":null}");
    rq.data = "\"$header.x-bad\"";
    assert_fails(&rq, "header \"x-bad\" is not valid UTF-8");
    rq.data = "\"$header.x-id:int\"";
    assert_fails(&rq, "header \"x-id\": expected a decimal integer, got \"abc\\\"def\"");
    rq.headers = NULL;
    rq.data = "\"$header.x-id\"";
    assert_renders(&rq, "null");
}

static void absent_values_stay_null_with_conversions(void **state)
{
    (void)state;
    query_renders("[\"$query.a:int\",\"$query.a:number\",\"$query.a:bool\",\"$query.a:json\"]",
                  "", "[null,null,null,null]");
    body_renders("[\"$body.a:int\",\"$body.a:number\",\"$body.a:bool\",\"$body.a:json\"]",
                 "{\"a\":null}", "[null,null,null,null]");
    body_renders("[\"$body.b:int\",\"$body.a.b:bool\"]", "{\"a\":1}", "[null,null]");
    body_renders("\"$body:bool\"", "null", "null");
}

/* ---- conversions ------------------------------------------------------------- */

static void int_conversion(void **state)
{
    (void)state;
    static const char *const ok[][2] = {
        {"42", "42"},
        {"-7", "-7"},
        {"0", "0"},
        {"-0", "0"},
        {"007", "7"},
        {"-007", "-7"},
        {"0000000000000000000000000000001", "1"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"09223372036854775807", "9223372036854775807"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char query[64];
        snprintf(query, sizeof query, "n=%s", ok[i][0]);
        query_renders("\"$query.n:int\"", query, ok[i][1]);
    }
    static const char *const syntax[] = {"-", "+1", "1.0", "1e3", " 1", "1 ", "0x10",
                                         "--1", "1-", "\xd9\xa3" /* Arabic-Indic 3 */};
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        char query[64], message[128];
        query_of("n", syntax[i], query, sizeof query);
        snprintf(message, sizeof message,
                 "query parameter \"n\": expected a decimal integer, got \"%s\"", syntax[i]);
        query_fails("\"$query.n:int\"", query, message);
    }
    query_fails("\"$query.n:int\"", "n=",
                "query parameter \"n\": expected a decimal integer, got \"\"");
    query_fails("\"$query.n:int\"", "n=9223372036854775808",
                "query parameter \"n\": expected a decimal integer in the int64 range, got "
                "\"9223372036854775808\"");
    query_fails("\"$query.n:int\"", "n=-9223372036854775809",
                "query parameter \"n\": expected a decimal integer in the int64 range, got "
                "\"-9223372036854775809\"");
    query_fails("\"$query.n:int\"", "n=123456789012345678901234567890",
                "query parameter \"n\": expected a decimal integer in the int64 range, got "
                "\"123456789012345678901234567890\"");
    request rq = {.route = "/users/:id", .data = "{\"id\":\"$path.id:int\"}", .path = "/users/x1"};
    assert_fails(&rq, "path parameter \"id\": expected a decimal integer, got \"x1\"");
}

/* strtod() agrees on what is finite (the tests run in the C locale). */
static int strtod_finite(const char *text)
{
    errno = 0;
    double d = strtod(text, NULL);
    return isfinite(d);
}

static void number_conversion(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "0", "-0", "1.50", "1e2", "1E+2", "-1.5e-3", "123456789012345678901234567890",
        "1e-400", "0e999999999999999999", "0.000e5000", "1.7976931348623157e308",
        "1.7976931348623158e308", "0.00017976931348623157e312", "17976931348623157e292",
        "1e308", "9.99e307", "1e-99999999999999999999", "-1.7976931348623158e+308",
        /* one below the midpoint between DBL_MAX and 2^1024 */
        "1797693134862315807937289714053034150799341327100378269361737789804449682927647509466"
        "4901797758720709633028641669288791094655554785194040263065748867150582068190890200070"
        "8383676273854845817711531764475730270069855571366959622842914819860834936475292719074"
        "168444365510704342711559699508093042880177904174497791",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char query[1024];
        query_of("n", ok[i], query, sizeof query);
        assert_true(strtod_finite(ok[i]));
        query_renders("\"$query.n:number\"", query, ok[i]);
    }
    static const char *const bad[] = {
        "1e400", "-1e400", "1.7976931348623159e308", "0.00018e312", "1e99999999999999999999",
        "1.8e+308",
        /* the midpoint itself rounds up (to even), and anything above it */
        "1797693134862315807937289714053034150799341327100378269361737789804449682927647509466"
        "4901797758720709633028641669288791094655554785194040263065748867150582068190890200070"
        "8383676273854845817711531764475730270069855571366959622842914819860834936475292719074"
        "168444365510704342711559699508093042880177904174497792",
        "1797693134862315807937289714053034150799341327100378269361737789804449682927647509466"
        "4901797758720709633028641669288791094655554785194040263065748867150582068190890200070"
        "8383676273854845817711531764475730270069855571366959622842914819860834936475292719074"
        "168444365510704342711559699508093042880177904174497792"
        ".5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char query[1024];
        query_of("n", bad[i], query, sizeof query);
        assert_false(strtod_finite(bad[i]));
        char *got = NULL;
        request rq = {.route = "/r", .data = "\"$query.n:number\"", .path = "/r", .query = query};
        assert_int_equal(render(&rq, &got), -1);
        assert_non_null(strstr(got, "query parameter \"n\": expected a finite number, got \""));
        free(got);
    }
    static const char *const syntax[] = {"01", "1.", ".5", "-", "1e", "1e+", "NaN", "Infinity",
                                         "-Infinity", "0x1p3", "1,5", "--1", "1.5.5", "+1",
                                         " 1", "1 "};
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        char query[64], message[128];
        query_of("n", syntax[i], query, sizeof query);
        snprintf(message, sizeof message,
                 "query parameter \"n\": expected a finite number, got \"%s\"", syntax[i]);
        query_fails("\"$query.n:number\"", query, message);
    }
    query_fails("\"$query.n:number\"", "n=",
                "query parameter \"n\": expected a finite number, got \"\"");
    query_fails("\"$query.n:number\"", "n=%221%22",
                "query parameter \"n\": expected a finite number, got \"\\\"1\\\"\"");
}

static void bool_conversion(void **state)
{
    (void)state;
    query_renders("{\"full\":\"$query.full:bool\"}", "full=true", "{\"full\":true}");
    query_renders("{\"full\":\"$query.full:bool\"}", "full=false", "{\"full\":false}");
    static const char *const bad[] = {"yes", "True", "1", "", "true ", "falsey", "TRUE"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char query[64], message[128];
        snprintf(query, sizeof query, "full=%s", bad[i]);
        for (char *p = query; *p; p++)
            if (*p == ' ')
                *p = '+';
        snprintf(message, sizeof message,
                 "query parameter \"full\": expected true or false, got \"%s\"", bad[i]);
        query_fails("{\"full\":\"$query.full:bool\"}", query, message);
    }
}

static void json_conversion(void **state)
{
    (void)state;
    query_renders("{\"f\":\"$query.f:json\"}", "f=%7B%22a%22%3A%5B1%2C2%5D%7D",
                  "{\"f\":{\"a\":[1,2]}}");
    query_renders("\"$query.f:json\"", "f=+5+", "5"); /* whitespace around dropped */
    query_renders("\"$query.f:json\"", "f=%22%5Cu0000%5Cud800%22", "\"\\u0000\\ud800\"");
    query_renders("\"$query.f:json\"", "f=123456789012345678901234567890",
                  "123456789012345678901234567890");
    query_renders("\"$query.f:json\"", "f=null", "null");
    query_fails("\"$query.f:json\"", "f=",
                "query parameter \"f\": expected a JSON text: unexpected end of input at byte 0");
    query_fails("\"$query.f:json\"", "f=%7B",
                "query parameter \"f\": expected a JSON text: unexpected end of input at byte 1");
    query_fails("\"$query.f:json\"", "f=abc",
                "query parameter \"f\": expected a JSON text: unexpected character at byte 0");
    query_fails("\"$query.f:json\"", "f=1+2",
                "query parameter \"f\": expected a JSON text: unexpected characters after the "
                "value at byte 2");
}

static void body_values_convert_from_strings_and_json(void **state)
{
    (void)state;
    body_renders("\"$body.n:int\"", "{\"n\":\"42\"}", "42");
    body_renders("\"$body.n:int\"", "{\"n\":42}", "42");
    body_renders("\"$body.n:int\"", "{\"n\":\"4\\u0032\"}", "42"); /* unescaped first */
}

static void body_conversions(void **state)
{
    (void)state;
    body_renders("\"$body.n:int\"", "{\"n\":\"007\"}", "7");
    body_renders("\"$body.n:int\"", "{\"n\":-0}", "0");
    body_renders("\"$body:int\"", "\"12\"", "12");
    body_renders("\"$body.n:number\"", "{\"n\":\"1.50\"}", "1.50");
    body_renders("\"$body.n:number\"", "{\"n\":1E2}", "1E2");
    body_renders("\"$body.f:bool\"", "{\"f\":\"true\"}", "true");
    body_renders("\"$body.f:bool\"", "{\"f\":false}", "false");
    body_renders("\"$body.j:json\"", "{\"j\":\"{\\\"a\\\":1}\"}", "{\"a\":1}");
    body_renders("\"$body.j:json\"", "{\"j\":{ \"a\" : 1 }}", "{ \"a\" : 1 }"); /* as is */
    body_renders("\"$body.j:json\"", "{\"j\":\"\\\"\\\\ud800\\\"\"}", "\"\\ud800\"");
    body_renders("\"$body.j:json\"", "{\"j\":[1e400]}", "[1e400]");
    body_renders("\"$body.j:json\"", "{\"j\":\"  [1]  \"}", "[1]");

    body_fails("\"$body.n:int\"", "{\"n\":1.5}",
               "body member \"n\": expected a decimal integer, got 1.5");
    body_fails("\"$body.n:int\"", "{\"n\":\"1.5\"}",
               "body member \"n\": expected a decimal integer, got \"1.5\"");
    body_fails("\"$body.n:int\"", "{\"n\":\"\\u0000\"}",
               "body member \"n\": expected a decimal integer, got \"\\u0000\"");
    body_fails("\"$body.n:int\"", "{\"n\":true}",
               "body member \"n\": expected a decimal integer, got true");
    body_fails("\"$body.n:int\"", "{\"n\":18446744073709551616}",
               "body member \"n\": expected a decimal integer in the int64 range, got "
               "18446744073709551616");
    body_fails("\"$body.a.b:number\"", "{\"a\":{\"b\":{\"x\":1}}}",
               "body member \"a.b\": expected a finite number, got {\"x\":1}");
    body_fails("\"$body.a.b:number\"", "{\"a\":{\"b\":1e400}}",
               "body member \"a.b\": expected a finite number, got 1e400");
    body_fails("\"$body.f:bool\"", "{\"f\":1}", "body member \"f\": expected true or false, got 1");
    body_fails("\"$body.f:bool\"", "{\"f\":\"yes\"}",
               "body member \"f\": expected true or false, got \"yes\"");
    body_fails("\"$body:bool\"", "[\n1]", "body: expected true or false, got [\\u000a1]");
    body_fails("\"$body.j:json\"", "{\"j\":\"\\ud800\"}",
               "body member \"j\": expected a JSON text: unexpected character at byte 0");
    body_fails("\"$body.j:json\"", "{\"j\":\"\\\"\\ud800\\\"\"}",
               "body member \"j\": expected a JSON text: invalid UTF-8 at byte 1");
    body_fails("\"$body.j:json\"", "{\"j\":\"\\\"\\u0000\\\"\"}",
               "body member \"j\": expected a JSON text: control character in string at byte 1");
    body_fails("\"$body.j:json\"", "{\"j\":\"\"}",
               "body member \"j\": expected a JSON text: unexpected end of input at byte 0");
}

static void long_values_are_cut_in_messages(void **state)
{
    (void)state;
    const char *prefix = "query parameter \"n\": expected true or false, got \"";
    char query[300], message[300];
    char value[101];
    memset(value, 'v', 100);
    value[100] = '\0';
    snprintf(query, sizeof query, "n=%s", value);
    snprintf(message, sizeof message, "%s%.64s\"...", prefix, value);
    query_fails("\"$query.n:bool\"", query, message);
    /* cut at a UTF-8 boundary: 63 ASCII bytes, then 2-byte characters */
    char as[64];
    memset(as, 'a', 63);
    as[63] = '\0';
    snprintf(query, sizeof query, "n=%s%%C3%%A9%%C3%%A9", as);
    snprintf(message, sizeof message, "%s%s\"...", prefix, as);
    query_fails("\"$query.n:bool\"", query, message);
    /* exactly 64 bytes: not cut */
    snprintf(query, sizeof query, "n=%sb", as);
    snprintf(message, sizeof message, "%s%sb\"", prefix, as);
    query_fails("\"$query.n:bool\"", query, message);
}

static void several_slots_and_a_failure_restores_the_output(void **state)
{
    (void)state;
    static const char *const hs[] = {"x-a", "h", NULL};
    request rq = {.route = "/users/:id",
                  .data = "{\"id\":\"$path.id:int\",\"full\":\"$query.full:bool\","
                          "\"h\":\"$header.x-a\",\"b\":\"$body.k\",\"lit\":[1,2]}",
                  .path = "/users/7",
                  .query = "full=true",
                  .body = "{\"k\":[\"\\u0000\"]}",
                  .headers = hs};
    assert_renders(&rq, "{\"id\":7,\"full\":true,\"h\":\"h\",\"b\":[\"\\u0000\"],\"lit\":[1,2]}");
    rq.query = "full=yes"; /* the render helper checks out.len is restored */
    assert_fails(&rq, "query parameter \"full\": expected true or false, got \"yes\"");
}

static void local_scratch_and_no_callbacks(void **state)
{
    (void)state;
    config *cfg = load_route("/r", "[\"$body.n:int\",\"$query.q\",\"$header.h\"]");
    const char *body = "{\"n\":\"5\"}";
    render_input_t in = {.body = span_cstr(body)};
    buf_t out = BUF_INIT;
    char error[RENDER_ERROR_SIZE];
    assert_int_equal(render_template(&cfg->routes[0].data, &in, &out, error, sizeof error), 0);
    assert_int_equal(out.len, strlen("[5,null,null]"));
    assert_memory_equal(out.data, "[5,null,null]", out.len);
    buf_free(&out);
    config_free(cfg);
}

static render_lookup_result failing_lookup(void *context, const char *name, size_t name_len,
                                           span_t *value)
{
    (void)name;
    (void)name_len;
    (void)value;
    return *(render_lookup_result *)context;
}

static void lookup_failures(void **state)
{
    (void)state;
    config *cfg = load_route("/r", "{\"a\":\"$header.x-h\"}");
    render_lookup_result res = RENDER_LOOKUP_NOMEM;
    render_input_t in = {.header = failing_lookup, .header_context = &res};
    buf_t out = BUF_INIT;
    char error[RENDER_ERROR_SIZE];
    assert_int_equal(render_template(&cfg->routes[0].data, &in, &out, error, sizeof error),
                     -ENOMEM);
    assert_string_equal(error, "out of memory");
    assert_int_equal(out.len, 0);
    res = RENDER_LOOKUP_BAD;
    assert_int_equal(render_template(&cfg->routes[0].data, &in, &out, error, sizeof error), -1);
    assert_string_equal(error, "header \"x-h\": invalid percent-encoding");
    /* A tiny error buffer is cut, NUL-terminated. */
    char tiny[8];
    assert_int_equal(render_template(&cfg->routes[0].data, &in, &out, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "header ");
    buf_free(&out);
    config_free(cfg);
}

/* ---- checking the body ------------------------------------------------------- */

static void check_body(const char *body, size_t n, const char *message)
{
    char error[RENDER_ERROR_SIZE] = "";
    int rc = render_check_body(span_of(body, n), error, sizeof error);
    if (message == NULL) {
        assert_int_equal(rc, 0);
    } else {
        assert_int_equal(rc, -1);
        assert_string_equal(error, message);
    }
}

#define CHECK_BODY(body, message) check_body(body, sizeof(body) - 1, message)

static void body_checks(void **state)
{
    (void)state;
    check_body(NULL, 0, NULL);
    CHECK_BODY("", NULL);
    CHECK_BODY("  \n", NULL);
    CHECK_BODY("{\"a\":[1,\"\\u0000\\ud800\"]}", NULL);
    CHECK_BODY(" 123456789012345678901234567890 ", NULL);
    CHECK_BODY("{\"a\":1,}", "body is not valid JSON: expected a string key at byte 7");
    CHECK_BODY("{\"a\":1} x", "body is not valid JSON: unexpected characters after the value at byte 8");
    CHECK_BODY("{\"a\":1", "body is not valid JSON: unexpected end of input at byte 6");
    CHECK_BODY("nul", "body is not valid JSON: unexpected character at byte 0");
    CHECK_BODY("{'a':1}", "body is not valid JSON: expected a string key at byte 1");
    CHECK_BODY("{\"a\":\xff}", "body is not valid UTF-8 JSON: invalid UTF-8 at byte 5");
    CHECK_BODY("\"ab\xc3\"", "body is not valid UTF-8 JSON: invalid UTF-8 at byte 3");
    CHECK_BODY("\"\xed\xa0\x80\"", "body is not valid UTF-8 JSON: invalid UTF-8 at byte 1");
    CHECK_BODY("\xef\xbb\xbf{}", "body is not valid JSON: unexpected character at byte 0");
    CHECK_BODY("[1,]\xff", "body is not valid JSON: unexpected character at byte 3");
    CHECK_BODY("\"a\x01\"", "body is not valid JSON: control character in string at byte 2");
    CHECK_BODY("\"\\x\"", "body is not valid JSON: invalid escape at byte 2");
    CHECK_BODY("{\"a\":1}\x00", "body is not valid JSON: unexpected characters after the value at byte 7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_templates),
        cmocka_unit_test(whole_body_is_byte_exact),
        cmocka_unit_test(whole_body_shortcut),
        cmocka_unit_test(empty_body_is_null),
        cmocka_unit_test(body_members),
        cmocka_unit_test(path_captures_as_strings),
        cmocka_unit_test(query_parameters),
        cmocka_unit_test(headers),
        cmocka_unit_test(absent_values_stay_null_with_conversions),
        cmocka_unit_test(int_conversion),
        cmocka_unit_test(number_conversion),
        cmocka_unit_test(bool_conversion),
        cmocka_unit_test(json_conversion),
        cmocka_unit_test(body_values_convert_from_strings_and_json),
        cmocka_unit_test(body_conversions),
        cmocka_unit_test(long_values_are_cut_in_messages),
        cmocka_unit_test(several_slots_and_a_failure_restores_the_output),
        cmocka_unit_test(local_scratch_and_no_callbacks),
        cmocka_unit_test(lookup_failures),
        cmocka_unit_test(body_checks),
    };
    return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
