/* Unit tests of gateway/render: templates compiled by the real config
 * loader, captures from the real router, query values from a raw query
 * string through render_query_lookup(), headers from a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/render.h"
#include "gateway/router.h"

/* ---- helpers ------------------------------------------------------------- */

/* A request: the route's path template and data template (JSON text), then
 * what came in. headers: name, value pairs, NULL-terminated; the lookup
 * compares names exactly (callers give them lowercased), the walk hands
 * them out as written. */
typedef struct request {
    const char *route;     /* e.g. "/users/:id" */
    const char *data;      /* the template, JSON */
    const char *path;      /* the request path, raw */
    const char *body;      /* NULL: empty */
    size_t body_len;       /* 0: strlen(body) */
    const char *query;     /* raw, NULL: none */
    const char *const *headers;
    const char *content_type;        /* NULL: none */
    const char *claims;              /* NULL: no token */
    const struct sockaddr *client;   /* NULL: unknown */
} request;

static int header_walk(void *context, render_pair_fn *pair, void *pair_context)
{
    for (const char *const *p = context; p && p[0]; p += 2) {
        int rc = pair(pair_context, span_cstr(p[0]), span_cstr(p[1]));
        if (rc != 0)
            return rc;
    }
    return 0;
}

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
    span_t content_type = span_cstr(rq->content_type);
    char error[RENDER_ERROR_SIZE];
    if (t->uses_body && render_check_body_as(body, content_type, error, sizeof error) != 0)
        fail_msg("bad test body: %s", error);
    render_query q = {rq->query, rq->query ? strlen(rq->query) : 0, BUF_INIT, BUF_INIT};
    buf_t scratch = BUF_INIT;
    render_input_t in = {
        .body = body,
        .content_type = content_type,
        .captures = m.captures,
        .capture_count = m.capture_count,
        .query = render_query_lookup,
        .query_context = &q,
        .header = header_lookup,
        .header_context = (void *)rq->headers,
        .query_all = render_query_all,
        .query_all_context = &q,
        .header_all = header_walk,
        .header_all_context = (void *)rq->headers,
        .claims = span_cstr(rq->claims),
        .client_address = rq->client,
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
        if (!render_body_read_as_form(body, content_type) &&
            render_whole_body(t, body, &whole)) { /* the shortcut must agree */
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
    buf_free(&q.name);
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

/* ---- spreads and optional members ---------------------------------------------- */

static void spread_merges_members(void **state)
{
    (void)state;
    request rq = {.route = "/books/:id", .path = "/books/7",
                  .data = "{\"...\":\"$body\",\"id\":\"$path.id:int\"}",
                  .body = "{\"title\":\"T\",\"id\":\"old\",\"n\":12345678901234567890123}"};
    assert_renders(&rq, "{\"id\":7,\"title\":\"T\",\"n\":12345678901234567890123}");
    /* keys compared unescaped, written as sent; values byte-exact; a repeated
     * key at its first place with its last value */
    rq.body = "{\"\\u0069d\":1,\"s\":\"\\u0000\\ud800\",\"x\":1,\"\\u0078\":2, \"e\" : 1E+400 }";
    assert_renders(&rq, "{\"id\":7,\"s\":\"\\u0000\\ud800\",\"x\":2,\"e\":1E+400}");
    /* absent or null merges nothing */
    rq.body = NULL;
    assert_renders(&rq, "{\"id\":7}");
    rq.body = " null ";
    assert_renders(&rq, "{\"id\":7}");
    rq.body = " \n";
    assert_renders(&rq, "{\"id\":7}");
    rq.body = "{}";
    assert_renders(&rq, "{\"id\":7}");
    /* anything else is a 400 saying what and where */
    rq.body = "[1,2]";
    assert_fails(&rq, "body: expected an object to spread into data, got [1,2]");
    rq.body = "\"str\"";
    assert_fails(&rq, "body: expected an object to spread into data, got \"str\"");
    rq.body = "5";
    assert_fails(&rq, "body: expected an object to spread into data, got 5");
    rq.body = "false";
    assert_fails(&rq, "body: expected an object to spread into data, got false");
}

static void spread_of_a_member(void **state)
{
    (void)state;
    request rq = {.route = "/u/:id", .path = "/u/9",
                  .data = "{\"user\":{\"...\":\"$body.user\",\"id\":\"$path.id\"},"
                          "\"tags\":[\"$body.tags?\"]}",
                  .body = "{\"user\":{\"name\":\"a\",\"id\":\"x\"},\"tags\":[1]}"};
    assert_renders(&rq, "{\"user\":{\"id\":\"9\",\"name\":\"a\"},\"tags\":[[1]]}");
    rq.body = "{}";
    assert_renders(&rq, "{\"user\":{\"id\":\"9\"},\"tags\":[null]}");
    rq.body = "{\"user\":[1]}";
    assert_fails(&rq, "body member \"user\": expected an object to spread into data.user, got [1]");
    rq.data = "[{\"...\":\"$body.a.b\"}]";
    rq.body = "{\"a\":{\"b\":\"x\"}}";
    assert_fails(&rq, "body member \"a.b\": expected an object to spread into data[0], got \"x\"");
}

static void several_spreads_later_wins(void **state)
{
    (void)state;
    request rq = {.route = "/r", .path = "/r", .query = "a=q&b=q&a=q2",
                  .data = "{\"...\":[\"$query\",\"$body\"],\"fixed\":1}",
                  .body = "{\"a\":\"body\",\"c\":true}"};
    assert_renders(&rq, "{\"fixed\":1,\"a\":\"body\",\"b\":\"q\",\"c\":true}");
    rq.data = "{\"...\":[\"$body\",\"$query\"]}";
    assert_renders(&rq, "{\"a\":\"q\",\"c\":true,\"b\":\"q\"}");
    /* an absent source in the list changes nothing */
    rq.data = "{\"...\":[\"$body.none\",\"$query\",\"$jwt\"]}";
    assert_renders(&rq, "{\"a\":\"q\",\"b\":\"q\"}");
}

static void written_members_win_except_absent_optional(void **state)
{
    (void)state;
    request rq = {.route = "/r", .path = "/r",
                  .data = "{\"...\":\"$body\",\"title\":\"$query.title?\",\"n\":\"$query.n\","
                          "\"m\":\"$query.m?\"}",
                  .body = "{\"title\":\"B\",\"n\":\"B\",\"m\":\"B\",\"z\":1}"};
    assert_renders(&rq, "{\"n\":null,\"title\":\"B\",\"m\":\"B\",\"z\":1}");
    rq.query = "title=Q&m=M";
    assert_renders(&rq, "{\"title\":\"Q\",\"n\":null,\"m\":\"M\",\"z\":1}");
}

static void optional_members(void **state)
{
    (void)state;
    static const char *const hs[] = {"x-d", "D", NULL};
    request rq = {.route = "/r", .path = "/r",
                  .data = "{\"a\":\"$query.a?\",\"b\":\"$query.b:int?\",\"c\":\"$body.c?\","
                          "\"d\":\"$header.x-d?\",\"l\":1}",
                  .query = "b=05", .body = "{}"};
    assert_renders(&rq, "{\"b\":5,\"l\":1}");
    rq.query = NULL;
    rq.body = NULL;
    assert_renders(&rq, "{\"l\":1}");
    rq.body = "{\"c\":null}"; /* present null stays */
    assert_renders(&rq, "{\"c\":null,\"l\":1}");
    rq.body = "{\"c\":{\"k\":[1]}}";
    rq.query = "a=";
    rq.headers = hs;
    assert_renders(&rq, "{\"a\":\"\",\"c\":{\"k\":[1]},\"d\":\"D\",\"l\":1}");
    rq.query = "b=x"; /* a present value that does not convert is still a 400 */
    assert_fails(&rq, "query parameter \"b\": expected a decimal integer, got \"x\"");
    rq.data = "{\"a\":\"$query.a?\",\"b\":\"$body.b:int?\"}";
    rq.query = NULL;
    rq.body = "{\"b\":null}";
    assert_renders(&rq, "{\"b\":null}");
    rq.body = "{}";
    assert_renders(&rq, "{}");
}

static void optional_elsewhere_is_null(void **state)
{
    (void)state;
    query_renders("[\"$query.a?\",\"$query.b:int?\",1]", "", "[null,null,1]");
    query_renders("\"$query.a?\"", NULL, "null");
    body_renders("\"$body?\"", NULL, "null");
    body_renders("\"$body?\"", "[1]", "[1]");
    body_renders("{\"...\":\"$body?\"}", "{\"a\":1}", "{\"a\":1}");
}

static void nested_spreads_and_optionals(void **state)
{
    (void)state;
    request rq = {.route = "/r", .path = "/r",
                  .data = "{\"o\":{\"...\":\"$body.o\",\"p\":{\"q\":\"$query.q?\",\"...\":\"$body.p\"}},"
                          "\"r\":[{\"s\":\"$query.s?\"}],\"t\":\"$query.t?\"}",
                  .body = "{\"o\":{\"x\":1,\"p\":0},\"p\":{\"q\":\"B\"}}"};
    assert_renders(&rq, "{\"o\":{\"p\":{\"q\":\"B\"},\"x\":1},\"r\":[{}]}");
    rq.query = "q=Q&s=S&t=T";
    assert_renders(&rq, "{\"o\":{\"p\":{\"q\":\"Q\"},\"x\":1},\"r\":[{\"s\":\"S\"}],\"t\":\"T\"}");
}

static void dollar_escapes(void **state)
{
    (void)state;
    query_renders("{\"price\":\"$$5\",\"t\":\"$$body\",\"two\":\"$$$\"}", NULL,
                  "{\"price\":\"$5\",\"t\":\"$body\",\"two\":\"$$\"}");
}

/* A body object of n members named k0..k(n-1), each twice: 1 then 2. */
static void big_spread(void **state)
{
    (void)state;
    enum { N = 4000 };
    buf_t body = BUF_INIT, expected = BUF_INIT;
    buf_append_cstr(&body, "{");
    buf_append_cstr(&expected, "{\"id\":\"$x\"");
    for (int round = 1; round <= 2; round++) {
        for (int i = N - 1; i >= 0; i--) {
            char member[64];
            snprintf(member, sizeof member, "%s\"k%d\":%d", body.len > 1 ? "," : "", i, round);
            buf_append_cstr(&body, member);
            if (round == 2) {
                snprintf(member, sizeof member, ",\"k%d\":2", i);
                buf_append_cstr(&expected, member);
            }
        }
    }
    buf_append_cstr(&body, ",\"id\":0}");
    buf_append(&body, "", 1);
    buf_append_cstr(&expected, "}");
    buf_append(&expected, "", 1);
    request rq = {.route = "/r", .path = "/r", .data = "{\"...\":\"$body\",\"id\":\"$$x\"}",
                  .body = body.data};
    assert_renders(&rq, expected.data);
    buf_free(&body);
    buf_free(&expected);
}

/* ---- whole sources ------------------------------------------------------------ */

static void whole_query(void **state)
{
    (void)state;
    query_renders("\"$query\"", "a=1&b=x+y&a=2&flag&c=%C3%A9&&", "{\"a\":\"1\",\"b\":\"x y\","
                                                                 "\"flag\":\"\",\"c\":\"\xc3\xa9\"}");
    query_renders("\"$query\"", NULL, "{}");
    query_renders("{\"q\":\"$query\"}", "", "{\"q\":{}}");
    query_fails("\"$query\"", "q=%ff", "query parameter \"q\" is not valid UTF-8");
    query_fails("\"$query\"", "a=1&%zz=1", "query string: invalid percent-encoding");
    query_fails("\"$query\"", "a=%00", "query string: invalid percent-encoding");
    query_renders("{\"...\":\"$query\",\"page\":\"$query.page:int\"}", "page=2&q=x",
                  "{\"page\":2,\"q\":\"x\"}");
    /* a query parameter holding JSON, spread */
    query_renders("{\"...\":\"$query.f:json\",\"z\":0}", "f=%7B%22a%22%3A1%2C%22z%22%3A9%7D",
                  "{\"z\":0,\"a\":1}");
    query_fails("{\"...\":\"$query.f:json\"}", "f=%5B1%5D",
                "query parameter \"f\": expected an object to spread into data, got [1]");
    query_fails("{\"...\":\"$query.f:json\"}", "f=%7B",
                "query parameter \"f\": expected a JSON text: unexpected end of input at byte 1");
    query_renders("{\"...\":\"$query.f:json\"}", "f=null", "{}");
}

static void whole_headers(void **state)
{
    (void)state;
    static const char *const hs[] = {"X-A", "1", "x-a", "2", "Cookie", "a=1", "cookie", "b=2",
                                     "x-bad", "\xff", "Content-Type", "text/plain", NULL};
    request rq = {.route = "/r", .path = "/r", .headers = hs, .data = "\"$headers\""};
    assert_renders(&rq, "{\"x-a\":\"1, 2\",\"cookie\":\"a=1; b=2\",\"x-bad\":\"\xef\xbf\xbd\","
                        "\"content-type\":\"text/plain\"}");
    rq.data = "[\"$header.x-a\",\"$header.X-A\",\"$header.cookie\",\"$header.none\"]";
    assert_renders(&rq, "[\"1, 2\",\"1, 2\",\"a=1; b=2\",null]");
    rq.data = "\"$header.x-bad\"";
    assert_fails(&rq, "header \"x-bad\" is not valid UTF-8");
    rq.headers = NULL;
    rq.data = "{\"h\":\"$headers\",\"...\":\"$headers\"}";
    assert_renders(&rq, "{\"h\":{}}");
}

static void header_lookup_without_a_walk(void **state)
{
    (void)state;
    config *cfg = load_route("/r", "[\"$header.x-a\",\"$headers\"]");
    static const char *const hs[] = {"x-a", "1", "x-a", "2", NULL};
    render_input_t in = {.header = header_lookup, .header_context = (void *)hs};
    buf_t out = BUF_INIT;
    char error[RENDER_ERROR_SIZE];
    assert_int_equal(render_template(&cfg->routes[0].data, &in, &out, error, sizeof error), 0);
    assert_int_equal(out.len, strlen("[\"1\",{}]"));
    assert_memory_equal(out.data, "[\"1\",{}]", out.len);
    buf_free(&out);
    config_free(cfg);
}

static void whole_path(void **state)
{
    (void)state;
    request rq = {.route = "/u/:id/*rest", .path = "/u/%E2%82%AC/a/b", .data = "\"$path\""};
    assert_renders(&rq, "{\"id\":\"\xe2\x82\xac\",\"rest\":\"a/b\"}");
    rq.data = "{\"...\":\"$path\",\"id\":\"$path.id:json?\",\"q\":\"$path\"}";
    rq.path = "/u/%5B1%5D/x";
    assert_renders(&rq, "{\"id\":[1],\"q\":{\"id\":\"[1]\",\"rest\":\"x\"},\"rest\":\"x\"}");
    rq.path = "/u/%ff/x";
    rq.data = "\"$path\"";
    assert_fails(&rq, "path parameter \"id\" is not valid UTF-8");
    request root = {.route = "/", .path = "/", .data = "\"$path\""};
    assert_renders(&root, "{}");
}

/* ---- $jwt and $client.ip --------------------------------------------------------- */

static void jwt_claims(void **state)
{
    (void)state;
    const char *claims = "{\"sub\":\"u1\",\"org\":{\"id\":\"42\"},\"roles\":[\"a\"],\"n\":null,"
                         "\"big\":123456789012345678901234567890,\"s\":\"\\ud800\"}";
    request rq = {.route = "/r", .path = "/r", .claims = claims,
                  .data = "{\"s\":\"$jwt.sub\",\"o\":\"$jwt.claims.org.id:int\",\"r\":\"$jwt.roles\","
                          "\"x\":\"$jwt.nope?\",\"n\":\"$jwt.n?\",\"b\":\"$jwt.big\","
                          "\"l\":\"$jwt.s\",\"deep\":\"$jwt.claims.org.id.x\"}"};
    assert_renders(&rq, "{\"s\":\"u1\",\"o\":42,\"r\":[\"a\"],\"n\":null,"
                        "\"b\":123456789012345678901234567890,\"l\":\"\\ud800\",\"deep\":null}");
    rq.data = "\"$jwt\"";
    assert_renders(&rq, claims);
    rq.data = "{\"...\":\"$jwt\",\"sub\":\"$$me\",\"roles\":\"$jwt.claims.org?\"}";
    assert_renders(&rq, "{\"sub\":\"$me\",\"roles\":{\"id\":\"42\"},\"org\":{\"id\":\"42\"},"
                        "\"n\":null,\"big\":123456789012345678901234567890,\"s\":\"\\ud800\"}");
    rq.data = "\"$jwt.sub:int\"";
    assert_fails(&rq, "JWT claim \"sub\": expected a decimal integer, got \"u1\"");
    rq.data = "{\"...\":\"$jwt.roles\"}";
    assert_fails(&rq, "JWT claim \"roles\": expected an object to spread into data, got [\"a\"]");
    /* no token: every $jwt value is absent */
    rq.claims = NULL;
    rq.data = "{\"s\":\"$jwt.sub\",\"all\":\"$jwt\",\"o\":\"$jwt.claims.org.id:int?\","
              "\"...\":\"$jwt\",\"q\":[\"$jwt.sub?\"]}";
    assert_renders(&rq, "{\"s\":null,\"all\":null,\"q\":[null]}");
}

static void client_ip(void **state)
{
    (void)state;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(5000)};
    inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6}, mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &mapped.sin6_addr);
    struct sockaddr unknown = {.sa_family = AF_UNIX};
    request rq = {.route = "/r", .path = "/r",
                  .data = "{\"ip\":\"$client.ip\",\"o\":\"$client.ip?\"}",
                  .client = (const struct sockaddr *)&v4};
    assert_renders(&rq, "{\"ip\":\"10.1.2.3\",\"o\":\"10.1.2.3\"}");
    rq.client = (const struct sockaddr *)&v6;
    assert_renders(&rq, "{\"ip\":\"2001:db8::1\",\"o\":\"2001:db8::1\"}");
    rq.client = (const struct sockaddr *)&mapped;
    assert_renders(&rq, "{\"ip\":\"192.0.2.1\",\"o\":\"192.0.2.1\"}");
    rq.client = &unknown;
    assert_renders(&rq, "{\"ip\":null}");
    rq.client = NULL;
    assert_renders(&rq, "{\"ip\":null}");
    rq.client = (const struct sockaddr *)&v4;
    rq.data = "\"$client.ip:int\"";
    assert_fails(&rq, "client address: expected a decimal integer, got \"10.1.2.3\"");
}

/* ---- form bodies and Content-Type ---------------------------------------------- */

#define FORM "application/x-www-form-urlencoded"

static void form_bodies(void **state)
{
    (void)state;
    request rq = {.route = "/u/:id", .path = "/u/3", .content_type = FORM,
                  .body = "a=1&b=x+y&a=2&e=%C3%A9&flag&&q=%22%5C", .data = "\"$body\""};
    assert_renders(&rq, "{\"a\":\"2\",\"b\":\"x y\",\"e\":\"\xc3\xa9\",\"flag\":\"\","
                        "\"q\":\"\\\"\\\\\"}");
    rq.data = "[\"$body.a:int\",\"$body.b\",\"$body.a.b\",\"$body.none\",\"$body.e:json?\"]";
    rq.body = "a=2&b=x+y&e=%5B1%5D";
    assert_renders(&rq, "[2,\"x y\",null,null,[1]]");
    rq.data = "{\"...\":\"$body\",\"id\":\"$path.id:int\",\"b\":\"$body.b?\"}";
    rq.body = "id=9&x=1";
    assert_renders(&rq, "{\"id\":3,\"x\":\"1\"}");
    rq.body = NULL; /* no body: absent */
    rq.data = "{\"v\":\"$body\",\"w\":\"$body.a?\"}";
    assert_renders(&rq, "{\"v\":null}");
    rq.content_type = "Application/X-WWW-Form-Urlencoded ; charset=UTF-8";
    rq.body = "a=%2B";
    assert_renders(&rq, "{\"v\":{\"a\":\"+\"},\"w\":\"+\"}");
    rq.body = "a=1"; /* a body whose Content-Type is something else is read as JSON */
    rq.content_type = "application/x-www-form-urlencodedx";
    char error[RENDER_ERROR_SIZE];
    assert_int_equal(render_check_body_as(span_cstr(rq.body), span_cstr(rq.content_type), error,
                                          sizeof error), -1);
    assert_string_equal(error, "body is not valid JSON (Content-Type: "
                               "application/x-www-form-urlencodedx): unexpected character at "
                               "byte 0");
}

static void check_as(const char *body, const char *content_type, const char *message)
{
    char error[RENDER_ERROR_SIZE] = "";
    int rc = render_check_body_as(span_cstr(body), span_cstr(content_type), error, sizeof error);
    if (message == NULL) {
        if (rc != 0)
            fail_msg("%s: %s", body, error);
        return;
    }
    assert_int_equal(rc, -1);
    assert_string_equal(error, message);
}

static void body_checks_by_content_type(void **state)
{
    (void)state;
    check_as("a=1&b=%C3%A9&c", FORM, NULL);
    check_as("", FORM, NULL);
    check_as("a=%zz", FORM, "form body: invalid percent-encoding at byte 2");
    check_as("ok=1&%4=1", FORM, "form body: invalid percent-encoding at byte 5");
    check_as("a=1&b=%00", FORM, "form body: %00 (NUL) is not allowed at byte 6");
    check_as("a=1&%ff=1", FORM, "form body: invalid UTF-8 in the field at byte 4");
    check_as("a=%ED%A0%80", FORM, "form body: invalid UTF-8 in the field at byte 0");
    /* JSON sent with the form type (curl -d): read as JSON */
    check_as(" [1,2]", FORM, NULL);
    check_as("{\"a\":", FORM, "body is not valid JSON (Content-Type: " FORM "): unexpected end "
                               "of input at byte 5");
    check_as("{\"a\":1}", "text/plain", NULL);
    check_as("{\"a\":1}", NULL, NULL);
    check_as("a=1", "text/plain",
             "body is not valid JSON (Content-Type: text/plain): unexpected character at byte 0");
    check_as("{\"a\":", NULL, "body is not valid JSON (no Content-Type): unexpected end of input "
                              "at byte 5");
    check_as("{\"a\":\"\xff\"}", "application/json; charset=utf-8",
             "body is not valid UTF-8 JSON (Content-Type: application/json; charset=utf-8): "
             "invalid UTF-8 at byte 6");
    check_as("x", "a\nb", "body is not valid JSON (Content-Type: a\\u000ab): unexpected "
                          "character at byte 0");
}

static void content_types(void **state)
{
    (void)state;
    static const char *const form[] = {FORM, "APPLICATION/X-WWW-FORM-URLENCODED", " " FORM,
                                       FORM "; charset=UTF-8", FORM " ;x", FORM "\t"};
    static const char *const other[] = {"", "application/json", FORM "x", "application/x-www-form",
                                        "multipart/form-data", "text/" FORM, FORM ",text/plain"};
    for (size_t i = 0; i < sizeof form / sizeof form[0]; i++)
        assert_true(render_body_is_form(span_cstr(form[i])));
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_false(render_body_is_form(span_cstr(other[i])));
    assert_false(render_body_is_form(span_of(NULL, 0)));
    static const struct {
        const char *body;
        bool form;
    } bodies[] = {{"a=1", true}, {"", true}, {"%7B%7D=1", true}, {"a={", true},
                  {"{\"a\":1}", false}, {" \n[1]", false}, {"{", false}, {"[", false}};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        assert_int_equal(render_body_read_as_form(span_cstr(bodies[i].body), SPAN_LIT(FORM)),
                         bodies[i].form);
        assert_false(render_body_read_as_form(span_cstr(bodies[i].body), SPAN_LIT("text/plain")));
    }
}

/* ---- a route's data ------------------------------------------------------------ */

/* render_route_data for route 0 of a config with `route` (JSON of one
 * route without method, service and pattern). */
static void route_data(const char *route, const char *method, const char *body,
                       const char *content_type, const char *expected, bool copied)
{
    buf_t json = BUF_INIT;
    buf_append_cstr(&json, "{\"services\":{\"s\":{\"endpoints\":[\"127.0.0.1:3000\"]}},"
                           "\"routes\":[{\"method\":\"*\",\"service\":\"s\",\"pattern\":1,");
    buf_append_cstr(&json, route);
    buf_append_cstr(&json, "}]}");
    config *cfg = NULL;
    config_error error;
    if (config_load_string(json.data, json.len, NULL, &cfg, &error) != 0)
        fail_msg("config: %s", error.message);
    const config_route *r = &cfg->routes[0];
    render_input_t in = {.body = span_cstr(body), .content_type = span_cstr(content_type),
                         .method = method};
    buf_t out = BUF_INIT;
    buf_append_cstr(&out, "<");
    span_t data = {NULL, 0};
    char message[RENDER_ERROR_SIZE];
    int rc = render_route_data(&r->data, r->data_default, &in, &out, &data, message,
                               sizeof message);
    if (rc != 0)
        fail_msg("%s %s: %s", method, route, message);
    if (data.n != strlen(expected) || memcmp(data.p, expected, data.n) != 0)
        fail_msg("%s %s [%s]: got %.*s, expected %s", method, route, body ? body : "",
                 (int)data.n, data.p, expected);
    bool in_out = data.p >= out.data && data.p < out.data + out.len;
    assert_int_equal(in_out, copied);
    if (!copied) /* nothing appended */
        assert_int_equal(out.len, 1);
    buf_free(&out);
    buf_free(&json);
    config_free(cfg);
}

static void default_data(void **state)
{
    (void)state;
    const char *none = "\"path\":\"/r\"";
    route_data(none, "GET", NULL, NULL, "{}", false);
    route_data(none, "HEAD", NULL, NULL, "{}", false);
    route_data(none, "DELETE", "", NULL, "{}", false);
    route_data(none, "GET", " \r\n", "application/json", "{}", false);
    route_data(none, "GET", NULL, FORM, "{}", false);
    route_data(none, "GET", "[1]", NULL, "[1]", false); /* a body came: $body */
    route_data(none, "DELETE", " {\"a\":1} ", NULL, "{\"a\":1}", false);
    route_data(none, "POST", NULL, NULL, "null", false);
    route_data(none, "PUT", "", NULL, "null", false);
    route_data(none, "PATCH", "{}", NULL, "{}", false);
    route_data(none, "get", NULL, NULL, "null", false); /* methods are exact */
    route_data(none, NULL, NULL, NULL, "null", false);
    route_data(none, "POST", "a=1&a=2", FORM, "{\"a\":\"2\"}", true);
    route_data(none, "POST", " {\"a\":1} ", FORM, "{\"a\":1}", false); /* curl -d '{...}' */
    route_data(none, "POST", "[1,2,3]", FORM, "[1,2,3]", false);
    route_data(none, "POST", "a={x}", FORM, "{\"a\":\"{x}\"}", true);
    /* a written "$body" is not the default */
    const char *body = "\"path\":\"/r\",\"data\":\"$body\"";
    route_data(body, "GET", NULL, NULL, "null", false);
    route_data(body, "GET", "7", "text/plain", "7", false);
    route_data("\"path\":\"/r\",\"data\":{\"k\":\"$body\"}", "GET", NULL, NULL, "{\"k\":null}",
               true);
    route_data("\"path\":\"/r\",\"data\":{\"k\":1}", "GET", "not json", NULL, "{\"k\":1}", true);
}

static void route_data_checks_the_body(void **state)
{
    (void)state;
    config *cfg = load_route("/r", "{\"a\":\"$body.a\"}");
    render_input_t in = {.body = SPAN_LIT("a=%zz"), .content_type = SPAN_LIT(FORM),
                         .method = "POST"};
    buf_t out = BUF_INIT;
    span_t data;
    char message[RENDER_ERROR_SIZE];
    assert_int_equal(render_route_data(&cfg->routes[0].data, false, &in, &out, &data, message,
                                       sizeof message), -1);
    assert_string_equal(message, "form body: invalid percent-encoding at byte 2");
    in.body = SPAN_LIT("{\"a\":");
    in.content_type = SPAN_LIT("application/json");
    assert_int_equal(render_route_data(&cfg->routes[0].data, false, &in, &out, &data, message,
                                       sizeof message), -1);
    assert_string_equal(message, "body is not valid JSON (Content-Type: application/json): "
                                 "unexpected end of input at byte 5");
    assert_int_equal(out.len, 0);
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
        cmocka_unit_test(spread_merges_members),
        cmocka_unit_test(spread_of_a_member),
        cmocka_unit_test(several_spreads_later_wins),
        cmocka_unit_test(written_members_win_except_absent_optional),
        cmocka_unit_test(optional_members),
        cmocka_unit_test(optional_elsewhere_is_null),
        cmocka_unit_test(nested_spreads_and_optionals),
        cmocka_unit_test(dollar_escapes),
        cmocka_unit_test(big_spread),
        cmocka_unit_test(whole_query),
        cmocka_unit_test(whole_headers),
        cmocka_unit_test(header_lookup_without_a_walk),
        cmocka_unit_test(whole_path),
        cmocka_unit_test(jwt_claims),
        cmocka_unit_test(client_ip),
        cmocka_unit_test(form_bodies),
        cmocka_unit_test(body_checks_by_content_type),
        cmocka_unit_test(content_types),
        cmocka_unit_test(default_data),
        cmocka_unit_test(route_data_checks_the_body),
    };
    return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
