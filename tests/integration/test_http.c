/* The HTTP API of the built binary, what a request becomes, driven as a
 * user would against real Nest 12 and Nest 10 services (one cmocka group
 * per version) and against scripted raw upstreams that see the exact
 * packet bytes: routes and templates, the generic API, errors, request ids
 * and packet metadata, upstream errors, emits and streams, byte-exact
 * values both ways. Connections, limits, auth and the lifecycle are in
 * test_http_clients.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "integration/http_fixture.h"
#include "support/deadline.h"
#include "support/proc.h"

/* ---- routes and templates --------------------------------------------------- */

static void sum_and_echo(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "POST", "/sum", "[1,2,3]", 200, "6");
    gwt_check(f->port, "POST", "/echo", "{\"a\":[1,\"x\",null,true],\"b\":{\"c\":-2.5}}", 200,
          "{\"a\":[1,\"x\",null,true],\"b\":{\"c\":-2.5}}");
    gwt_check(f->port, "PUT", "/echo", "\"string pattern\"", 200, "\"string pattern\"");
    /* $body of an empty body is null */
    gwt_check(f->port, "POST", "/echo", NULL, 200, "null");
    gwt_check(f->port, "POST", "/echo", "", 200, "null");
}

static void path_query_header_conversions(void **state)
{
    fixture_t *f = *state;
    const char *hdr[] = { "Accept-Language: fr-CH, fr;q=0.9", NULL };
    struct http_response r = gwt_request(f->port, "GET",
                                     "/users/42?full=true&n=1.5&j=%7B%22x%22%3A%5B1%2C2%5D%7D",
                                     hdr, NULL, 0);
    gwt_expect_body(&r, "GET /users/42 with everything", 200,
                "{\"id\":42,\"full\":true,\"lang\":\"fr-CH, fr;q=0.9\",\"n\":1.5,\"j\":{\"x\":[1,2]},"
                "\"raw\":\"42\"}");
    http_response_free(&r);
    /* absent query parameters and header: null; false; a negative int */
    gwt_check(f->port, "GET", "/users/-7?full=false", NULL, 200,
          "{\"id\":-7,\"full\":false,\"lang\":null,\"n\":null,\"j\":null,\"raw\":\"-7\"}");
    /* (Node re-encodes integers beyond 2^53: raw_int_conversions checks those) */
    gwt_check(f->port, "GET", "/users/9007199254740991?n=-2", NULL, 200,
          "{\"id\":9007199254740991,\"full\":null,\"lang\":null,\"n\":-2,\"j\":null,"
          "\"raw\":\"9007199254740991\"}");
    /* the first of a repeated query parameter */
    gwt_check(f->port, "GET", "/users/1?full=true&full=false&j=%22s%22", NULL, 200,
          "{\"id\":1,\"full\":true,\"lang\":null,\"n\":null,\"j\":\"s\",\"raw\":\"1\"}");
}

static void failed_conversions_are_400(void **state)
{
    fixture_t *f = *state;
    struct http_response r = gwt_req(f->port, "GET", "/users/abc", NULL);
    expect_error_names(&r, "GET /users/abc (:int)", "bad_request", "id");
    r = gwt_req(f->port, "GET", "/users/1.5", NULL);
    expect_error_names(&r, "GET /users/1.5 (:int)", "bad_request", "id");
    r = gwt_req(f->port, "GET", "/users/99999999999999999999", NULL);
    expect_error_names(&r, "GET /users/<beyond int64> (:int)", "bad_request", "id");
    r = gwt_req(f->port, "GET", "/users/1?full=yes", NULL);
    expect_error_names(&r, "GET /users/1?full=yes (:bool)", "bad_request", "full");
    r = gwt_req(f->port, "GET", "/users/1?full=1", NULL);
    expect_error_names(&r, "GET /users/1?full=1 (:bool)", "bad_request", "full");
    r = gwt_req(f->port, "GET", "/users/1?n=abc", NULL);
    expect_error_names(&r, "GET /users/1?n=abc (:number)", "bad_request", "n");
    r = gwt_req(f->port, "GET", "/users/1?n=1e999", NULL);
    expect_error_names(&r, "GET /users/1?n=1e999 (:number, not finite)", "bad_request", "n");
    r = gwt_req(f->port, "GET", "/users/1?j=%7B", NULL);
    expect_error_names(&r, "GET /users/1?j={ (:json)", "bad_request", "j");
}

static void literal_beats_param_beats_rest(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "GET", "/users/me", NULL, 200, "{\"me\":true}");
    gwt_check(f->port, "GET", "/files/readme", NULL, 200, "{\"readme\":true}");
    gwt_check(f->port, "GET", "/files/readme/x", NULL, 200, "{\"rest\":\"readme/x\"}");
    gwt_check(f->port, "GET", "/files/a/b/c.txt", NULL, 200, "{\"rest\":\"a/b/c.txt\"}");
    gwt_check(f->port, "GET", "/files/x", NULL, 200, "{\"rest\":\"x\"}");
}

static void trailing_slash_and_query_ignored_for_matching(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "GET", "/users/me/", NULL, 200, "{\"me\":true}");
    gwt_check(f->port, "GET", "/users/me?id=5", NULL, 200, "{\"me\":true}");
    gwt_check(f->port, "POST", "/sum/", "[2,3]", 200, "5");
    gwt_check(f->port, "GET", "/users/42/?full=true", NULL, 200,
          "{\"id\":42,\"full\":true,\"lang\":null,\"n\":null,\"j\":null,\"raw\":\"42\"}");
}

static void percent_decoded_params(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "GET", "/names/caf%C3%A9", NULL, 200, "{\"name\":\"café\",\"q\":null}");
    gwt_check(f->port, "GET", "/names/a%2Fb", NULL, 200, "{\"name\":\"a/b\",\"q\":null}");
    gwt_check(f->port, "GET", "/names/%ED%95%9C%EA%B5%AD%20x?q=a%20b%26c%3D", NULL, 200,
          "{\"name\":\"한국 x\",\"q\":\"a b&c=\"}");
    gwt_check(f->port, "GET", "/files/caf%C3%A9/x%20y", NULL, 200, "{\"rest\":\"café/x y\"}");
    gwt_check(f->port, "GET", "/users/%34%32", NULL, 200,
          "{\"id\":42,\"full\":null,\"lang\":null,\"n\":null,\"j\":null,\"raw\":\"42\"}");
}

static void body_members(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "POST", "/members", "{\"a\":{\"b\":[1,\"x\"],\"c\":2},\"d\":3}", 200,
          "{\"a\":{\"b\":[1,\"x\"],\"c\":2},\"b\":[1,\"x\"],\"missing\":null}");
    gwt_check(f->port, "POST", "/members", "{\"a\":5}", 200, "{\"a\":5,\"b\":null,\"missing\":null}");
    gwt_check(f->port, "POST", "/members", "{}", 200, "{\"a\":null,\"b\":null,\"missing\":null}");
}

static void literal_template_parts(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "GET", "/literal/5?x=3", NULL, 200,
          "{\"s\":\"id $path.id\",\"arr\":[\"5\",1,null,true,3],\"obj\":{\"deep\":{\"v\":5}},"
          "\"dollar\":\"$notaref\",\"h\":null,\"q\":null}");
}

/* The gateway's render input: the whole query, a header, the client's
 * address, spreads, optional members, forms, every header, the bodyless
 * default (docs/CONFIG.md "Templates"). */
static void template_sources(void **state)
{
    fixture_t *f = *state;
    const char *tee[] = { "X-T: tee", NULL };
    struct http_response r = gwt_request(f->port, "GET", "/tpl/5?a=1&b=x+y&a=2&id=9", tee, NULL, 0);
    gwt_expect_body(&r, "GET /tpl/5 with X-T", 200,
                    "{\"id\":5,\"t\":\"tee\",\"ip\":\"127.0.0.1\",\"a\":\"1\",\"b\":\"x y\"}");
    http_response_free(&r);
    gwt_check(f->port, "GET", "/tpl/5", NULL, 200, "{\"id\":5,\"ip\":\"127.0.0.1\"}");
    gwt_check(f->port, "PATCH", "/tpl/2", "{\"rating\":5,\"id\":\"x\"}", 200, "{\"id\":2,\"rating\":5}");
    r = gwt_req(f->port, "PATCH", "/tpl/2", "[1]");
    expect_error_names(&r, "PATCH /tpl/2 [1]", "bad_request", "expected an object to spread");
    const char *form[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
    const char *fields = "title=A+b&rating=5&title=C";
    r = gwt_request(f->port, "PATCH", "/tpl/2", form, fields, strlen(fields));
    gwt_expect_body(&r, "PATCH /tpl/2 as a form", 200, "{\"id\":2,\"title\":\"C\",\"rating\":\"5\"}");
    http_response_free(&r);
    /* JSON with the form type, as curl -d sends it: read as JSON */
    r = gwt_request(f->port, "PATCH", "/tpl/2", form, "{\"rating\":5}", 12);
    gwt_expect_body(&r, "PATCH /tpl/2 JSON typed as a form", 200, "{\"id\":2,\"rating\":5}");
    http_response_free(&r);
    const char *text[] = { "Content-Type: text/plain", NULL };
    r = gwt_request(f->port, "PATCH", "/tpl/2", text, "title=x", 7);
    expect_error_names(&r, "PATCH /tpl/2 text/plain", "bad_request", "(Content-Type: text/plain)");
    const char *twice[] = { "X-A: 1", "x-a: 2", NULL };
    r = gwt_request(f->port, "POST", "/tpl-headers", twice, "", 0);
    if (r.status != 200 || !memmem(r.body, r.body_len, "\"x-a\":\"1, 2\"", 12) ||
        !memmem(r.body, r.body_len, "\"host\":\"127.0.0.1:", 18))
        gwt_fail_response(&r, "POST /tpl-headers", "expected every header, x-a joined");
    http_response_free(&r);
    /* a route without data: {} for a bodyless GET or DELETE, the body otherwise */
    gwt_check(f->port, "GET", "/default", NULL, 200, "{}");
    gwt_check(f->port, "DELETE", "/default", NULL, 200, "{}");
    gwt_check(f->port, "DELETE", "/default", "[7]", 200, "[7]");
}

static void any_method_route(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "GET", "/any", NULL, 200, "\"any\"");
    gwt_check(f->port, "DELETE", "/any", NULL, 200, "\"any\"");
    gwt_check(f->port, "PATCH", "/any", "{}", 200, "\"any\"");
    /* the template does not use the body: it is not parsed */
    gwt_check(f->port, "POST", "/any", "{not json", 200, "\"any\"");
}

static void created_and_nothing(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "POST", "/created", "{\"x\":1}", 201, "{\"x\":1}");
    gwt_check(f->port, "GET", "/nothing", NULL, 204, "");
}

/* ---- HTTP errors ------------------------------------------------------------- */

static void not_found(void **state)
{
    fixture_t *f = *state;
    gwt_check_error(f->port, "GET", "/nope", NULL, 404, "not_found");
    gwt_check_error(f->port, "GET", "/users", NULL, 404, "not_found");
    gwt_check_error(f->port, "GET", "/users/1/2", NULL, 404, "not_found");
    gwt_check_error(f->port, "POST", "/", "{}", 404, "not_found");
    gwt_check_error(f->port, "GET", "/sumx", NULL, 404, "not_found");
}

static void expect_allow(int port, const char *method, const char *path, const char *const *allow)
{
    char what[128];
    snprintf(what, sizeof what, "%s %s", method, path);
    struct http_response r = gwt_req(port, method, path, NULL);
    gwt_expect_error(&r, what, 405, "method_not_allowed");
    const char *value = http_header(&r, "Allow");
    if (!value)
        gwt_fail_response(&r, what, "no Allow header");
    for (size_t i = 0; allow[i]; i++) {
        const char *p = strstr(value, allow[i]);
        size_t n = strlen(allow[i]);
        if (!p || (p > value && p[-1] != ' ' && p[-1] != ',') || (p[n] && p[n] != ',' && p[n] != ' '))
            gwt_fail_response(&r, what, "Allow does not list %s", allow[i]);
    }
    http_response_free(&r);
}

static void method_not_allowed(void **state)
{
    fixture_t *f = *state;
    expect_allow(f->port, "GET", "/sum", (const char *[]){ "POST", NULL });
    expect_allow(f->port, "GET", "/echo", (const char *[]){ "POST", "PUT", NULL });
    expect_allow(f->port, "DELETE", "/users/5", (const char *[]){ "GET", NULL });
    expect_allow(f->port, "POST", "/users/me", (const char *[]){ "GET", NULL });
    expect_allow(f->port, "GET", "/v1/send/nest", (const char *[]){ "POST", NULL });
}

static void invalid_bodies_are_400(void **state)
{
    fixture_t *f = *state;
    gwt_check_error(f->port, "POST", "/sum", "{", 400, "bad_request");
    gwt_check_error(f->port, "POST", "/sum", "[1,2", 400, "bad_request");
    gwt_check_error(f->port, "POST", "/echo", "1 2", 400, "bad_request");
    gwt_check_error(f->port, "POST", "/echo", "{'a':1}", 400, "bad_request");
    gwt_check_error(f->port, "POST", "/members", "[1", 400, "bad_request");
    /* invalid UTF-8: a stray byte, an overlong '/', an encoded surrogate */
    static const char *bad_utf8[] = { "[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]",
                                      "[\"\xe2\x82\"]" };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        struct http_response r = gwt_req(f->port, "POST", "/echo", bad_utf8[i]);
        char what[64];
        snprintf(what, sizeof what, "POST /echo with invalid UTF-8 #%zu", i);
        gwt_expect_error(&r, what, 400, "bad_request");
        http_response_free(&r);
    }
}

static void request_ids(void **state)
{
    fixture_t *f = *state;
    const char *hdr[] = { "X-Request-Id: my-id-123", NULL };
    struct {
        const char *method, *path, *body;
        int status;
    } cases[] = {
        { "POST", "/sum", "[1]", 200 },       { "GET", "/nope", NULL, 404 },
        { "GET", "/sum", NULL, 405 },         { "POST", "/sum", "{", 400 },
        { "GET", "/nothing", NULL, 204 },     { "POST", "/events", "{}", 202 },
        { "GET", "/throw", NULL, 500 },       { "GET", "/no_handler", NULL, 501 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", cases[i].method, cases[i].path);
        const char *b = cases[i].body;
        struct http_response r = gwt_request(f->port, cases[i].method, cases[i].path, hdr, b,
                                         b ? strlen(b) : 0);
        if (r.status != cases[i].status)
            gwt_fail_response(&r, what, "status %d, expected %d", r.status, cases[i].status);
        const char *id = http_header(&r, "X-Request-Id");
        if (!id || strcmp(id, "my-id-123") != 0)
            gwt_fail_response(&r, what, "X-Request-Id is not echoed");
        http_response_free(&r);
        /* without one, a new non-empty id, different each time */
        struct http_response a = gwt_request(f->port, cases[i].method, cases[i].path, NULL, b,
                                         b ? strlen(b) : 0);
        struct http_response c = gwt_request(f->port, cases[i].method, cases[i].path, NULL, b,
                                         b ? strlen(b) : 0);
        gwt_expect_request_id(&a, what);
        gwt_expect_request_id(&c, what);
        if (strcmp(http_header(&a, "X-Request-Id"), http_header(&c, "X-Request-Id")) == 0)
            gwt_fail_response(&c, what, "two requests got the same generated X-Request-Id");
        http_response_free(&a);
        http_response_free(&c);
    }
}

/* ---- packet metadata --------------------------------------------------------- */

static void expect_json_equal(const struct http_response *r, const char *what, const char *json)
{
    json_error_t err;
    json_t *got = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &err);
    json_t *want = json_loads(json, JSON_DECODE_ANY, &err);
    assert_non_null(want);
    if (!got || !json_equal(got, want))
        gwt_fail_response(r, what, "expected a body equal to %s", json);
    json_decref(got);
    json_decref(want);
}

static void packet_metadata(void **state)
{
    fixture_t *f = *state;
    bool v12 = strcmp(nest_version(state), "v12") == 0;
    const char *hdr[] = { "X-Request-Id: req-meta-1",
                          "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "tracestate: congo=t61rcWkgMzE", NULL };
    struct http_response r = gwt_request(f->port, "GET", "/metadata", hdr, NULL, 0);
    if (r.status != 200)
        gwt_fail_response(&r, "GET /metadata", "status %d", r.status);
    expect_json_equal(&r, "GET /metadata with trace headers",
                      v12 ? "{\"requestId\":\"req-meta-1\",\"traceparent\":\"00-4bf92f3577b34da6a3ce92"
                            "9d0e0e4736-00f067aa0ba902b7-01\",\"tracestate\":\"congo=t61rcWkgMzE\"}"
                          : "null");
    http_response_free(&r);

    /* no headers: the generated request id travels */
    r = gwt_request(f->port, "GET", "/metadata", NULL, NULL, 0);
    gwt_expect_request_id(&r, "GET /metadata");
    char want[256];
    snprintf(want, sizeof want, "{\"requestId\":\"%s\"}", http_header(&r, "X-Request-Id"));
    expect_json_equal(&r, "GET /metadata without trace headers", v12 ? want : "null");
    http_response_free(&r);

    /* "metadata": false sends none */
    r = gwt_request(f->port, "GET", "/metadata-off", hdr, NULL, 0);
    gwt_expect_body(&r, "GET /metadata-off", 200, "null");
    http_response_free(&r);
}

/* ---- upstream errors ----------------------------------------------------------- */

/* An upstream error whose "details" must be exactly `details` (bytes). */
static void check_upstream_error(int port, const char *method, const char *path, const char *body,
                                 int status, const char *details)
{
    char what[256];
    snprintf(what, sizeof what, "%s %s %s", method, path, body ? body : "");
    struct http_response r = gwt_req(port, method, path, body);
    json_t *j = gwt_expect_error_json(&r, what, status, "upstream_error");
    char needle[512];
    snprintf(needle, sizeof needle, "\"details\":%s", details);
    if (!strstr(r.body, needle))
        gwt_fail_response(&r, what, "details are not exactly %s", details);
    json_decref(j);
    http_response_free(&r);
}

static void upstream_errors(void **state)
{
    fixture_t *f = *state;
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":403,\"message\":\"nope\"}", 403,
                         "{\"statusCode\":403,\"message\":\"nope\"}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"status\":418,\"message\":\"teapot\"}", 418,
                         "{\"status\":418,\"message\":\"teapot\"}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":599}", 599,
                         "{\"statusCode\":599}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":200,\"message\":\"ok?\"}", 500,
                         "{\"statusCode\":200,\"message\":\"ok?\"}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":600}", 500,
                         "{\"statusCode\":600}");
    check_upstream_error(f->port, "POST", "/rpc_object", "{\"statusCode\":\"404\"}", 500,
                         "{\"statusCode\":\"404\"}");
    check_upstream_error(f->port, "POST", "/rpc_string", "\"bad thing\"", 500,
                         "{\"status\":\"error\",\"message\":\"bad thing\"}");
    check_upstream_error(f->port, "GET", "/throw", NULL, 500,
                         "{\"status\":\"error\",\"message\":\"Internal server error\"}");
    gwt_check_error(f->port, "GET", "/no_handler", NULL, 501, "no_handler");
}

static void route_timeout_is_504(void **state)
{
    fixture_t *f = *state;
    int64_t start = deadline_now_ms();
    gwt_check_error(f->port, "POST", "/delay", "{\"ms\":5000,\"value\":1}", 504, "upstream_timeout");
    int64_t took = deadline_now_ms() - start;
    if (took < 900)
        fail_msg("the 1000 ms route timeout fired after %lld ms", (long long)took);
    if (took > 4500)
        fail_msg("the 1000 ms route timeout fired after %lld ms, as late as the reply", (long long)took);
    /* the late reply is dropped; the gateway goes on (on a route whose
     * timeout a loaded machine cannot hit) */
    gwt_check(f->port, "POST", "/slow", "{\"ms\":0,\"value\":\"quick\"}", 200, "\"quick\"");
}

/* ---- emit and streams ------------------------------------------------------------- */

static void emit_is_202_and_recorded(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "POST", "/recorded/clear", NULL, 200, "true");
    struct http_response r = gwt_req(f->port, "POST", "/events", "{\"who\":\"Zoë\",\"n\":1}");
    gwt_expect_body(&r, "POST /events", 202, "");
    http_response_free(&r);
    gwt_poll_body(f->port, "GET", "/recorded", NULL, 200, "[{\"who\":\"Zoë\",\"n\":1}]", GWT_POLL_TIMEOUT_MS);
}

static void stream_replies(void **state)
{
    fixture_t *f = *state;
    gwt_check(f->port, "POST", "/stream", "{\"count\":3,\"interval_ms\":20}", 200, "[1,2,3]");
    gwt_check(f->port, "POST", "/stream", "{\"count\":1,\"interval_ms\":20}", 200, "1");
    gwt_check(f->port, "POST", "/stream", "{\"count\":0}", 204, "");
    gwt_check(f->port, "POST", "/stream", "{\"values\":[\"a\",{\"b\":null},[]],\"interval_ms\":5}", 200,
          "[\"a\",{\"b\":null},[]]");
    gwt_check(f->port, "POST", "/stream", "{\"count\":2,\"interval_ms\":5,\"complete_after_ms\":100}", 200,
          "[1,2]");
    gwt_check(f->port, "POST", "/stream", "{\"count\":1,\"complete_after_ms\":50}", 200, "1");
    gwt_check(f->port, "POST", "/stream-array", "{\"count\":0}", 200, "[]");
    gwt_check(f->port, "POST", "/stream-array", "{\"count\":1}", 200, "[1]");
    gwt_check(f->port, "POST", "/stream-array", "{\"count\":3,\"interval_ms\":10}", 200, "[1,2,3]");
    gwt_check(f->port, "POST", "/stream-array", "{\"count\":0,\"complete_after_ms\":50}", 200, "[]");
}

/* ---- generic API ------------------------------------------------------------------ */

static void generic_api(void **state)
{
    fixture_t *f = *state;
    int p = f->port;
    gwt_check(p, "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2]}", 200, "3");
    gwt_check(p, "POST", "/v1/send/nest?reply=array", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2]}", 200,
          "[3]");
    gwt_check(p, "POST", "/v1/send/nest", "{\"pattern\":\"echo\",\"data\":\"s\"}", 200, "\"s\"");
    gwt_check(p, "POST", "/v1/send/nest", "{\"data\":[1],\"pattern\":{\"cmd\":\"sum\"}}", 200, "1");
    gwt_check(p, "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"echo\"}}", 200, "null");
    gwt_check(p, "POST", "/v1/send/nest",
          "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":3,\"interval_ms\":10}}", 200, "[1,2,3]");
    gwt_check(p, "POST", "/v1/send/nest", "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}", 204,
          "");
    gwt_check(p, "POST", "/v1/send/nest?reply=array",
          "{\"pattern\":{\"cmd\":\"stream\"},\"data\":{\"count\":0}}", 200, "[]");
    check_upstream_error(p, "POST", "/v1/send/nest",
                         "{\"pattern\":{\"cmd\":\"rpc_object\"},\"data\":{\"statusCode\":409}}", 409,
                         "{\"statusCode\":409}");
    gwt_check_error(p, "POST", "/v1/send/nest", "{\"pattern\":\"no_such\"}", 501, "no_handler");

    /* emit */
    gwt_check(p, "POST", "/recorded/clear", NULL, 200, "true");
    gwt_check(p, "POST", "/v1/emit/nest", "{\"pattern\":\"record\",\"data\":{\"via\":\"generic\"}}", 202, "");
    gwt_poll_body(p, "GET", "/recorded", NULL, 200, "[{\"via\":\"generic\"}]", GWT_POLL_TIMEOUT_MS);

    /* unknown and not-allowed services */
    gwt_check_error(p, "POST", "/v1/send/nosuch", "{\"pattern\":\"x\"}", 404, "not_found");
    gwt_check_error(p, "POST", "/v1/emit/nosuch", "{\"pattern\":\"x\"}", 404, "not_found");
    gwt_check_error(p, "POST", "/v1/send/hidden", "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1]}", 404,
                "not_found");
    gwt_check_error(p, "POST", "/v1/emit/hidden", "{\"pattern\":\"record\"}", 404, "not_found");

    /* malformed envelopes */
    gwt_check_error(p, "POST", "/v1/send/nest", "{\"pattern\":\"x\",\"data\":1,\"extra\":2}", 400,
                "bad_request");
    gwt_check_error(p, "POST", "/v1/send/nest", "{\"data\":[1,2]}", 400, "bad_request");
    gwt_check_error(p, "POST", "/v1/send/nest", "[1,2]", 400, "bad_request");
    gwt_check_error(p, "POST", "/v1/send/nest", "{\"pattern\":", 400, "bad_request");
    gwt_check_error(p, "POST", "/v1/send/nest", NULL, 400, "bad_request");
    gwt_check_error(p, "POST", "/v1/emit/nest", "{\"data\":1}", 400, "bad_request");
}

/* ---- values: unicode, size, byte-exactness ---------------------------------------- */

static void unicode_both_ways(void **state)
{
    fixture_t *f = *state;
    const char *body = "{\"s\":\"héllo Zoë — 한국어 😀🇫🇷\",\"k\":{\"ключ\":\"値\"}}";
    gwt_check(f->port, "POST", "/echo", body, 200, body);
    gwt_check(f->port, "GET", "/names/%F0%9F%98%80", NULL, 200, "{\"name\":\"😀\",\"q\":null}");
}

/* A body of about `size` bytes: {"s":"<unicode text>","n":size}. */
static void large_payload_both_ways(void **state)
{
    fixture_t *f = *state;
    char *body = big_body(3 * 1024 * 1024);
    struct http_response r = gwt_req(f->port, "POST", "/echo", body);
    if (r.status != 200)
        gwt_fail_response(&r, "POST /echo 3 MB", "status %d", r.status);
    if (r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0)
        gwt_fail_response(&r, "POST /echo 3 MB", "the body came back different (%zu bytes, sent %zu)",
                      r.body_len, strlen(body));
    http_response_free(&r);

    /* the same as a chunked upload */
    struct http_request req = { .method = "POST", .path = "/echo", .body = body,
                                .body_len = strlen(body), .chunk_size = 100000 };
    assert_int_equal(http_fetch(f->port, &req, &r, GWT_REQ_TIMEOUT_MS), 0);
    if (r.status != 200 || r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0)
        gwt_fail_response(&r, "POST /echo 3 MB chunked", "status %d, %zu bytes", r.status, r.body_len);
    http_response_free(&r);
    free(body);
}

static void hostile_values_through_nest(void **state)
{
    fixture_t *f = *state;
    /* what JSON.parse + JSON.stringify give back unchanged */
    const char *body = "{\"z\":\"\\u0000\",\"s\":\"\\ud800\",\"t\":\"a\\udc00b\",\"c\":\"\\u001f\\\"\\\\\","
                       "\"big\":\"12345678901234567890123\",\"neg\":-0.5,\"e\":1e+21}";
    gwt_check(f->port, "POST", "/echo", body, 200, body);
    gwt_check(f->port, "POST", "/members", "{\"a\":{\"b\":\"\\u0000\\ud800\"}}", 200,
          "{\"a\":{\"b\":\"\\u0000\\ud800\"},\"b\":\"\\u0000\\ud800\",\"missing\":null}");
}

static const char HOSTILE[] =
    "{\"big\":12345678901234567890123,\"neg\":-1.50e-400,\"huge\":1e400,\"z\":\"\\u0000\","
    "\"s\":\"\\ud800\",\"t\":\"\\uDC00\\u00e9\\/\",\"f\":1.0E+2,\"u\":\"é😀\",\"arr\":[0.10,-0]}";

static void raw_values_byte_exact(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_REPLY, HOSTILE);
    raw_round_trip(e, "/raw", HOSTILE, HOSTILE, NULL);
    raw_round_trip(e, "/raw-member", "{\"v\":12345678901234567890123}",
                   "{\"v\":12345678901234567890123,\"k\":\"kept\"}", NULL);
    raw_round_trip(e, "/raw-member", "{\"v\":\"\\u0000\\ud800\"}",
                   "{\"v\":\"\\u0000\\ud800\",\"k\":\"kept\"}", NULL);
    /* whitespace inside the body is part of what is "forwarded as written" */
    raw_round_trip(e, "/raw", "{\"a\": [1, 2],\n \"b\": 3e0}", "{\"a\": [1, 2],\n \"b\": 3e0}", NULL);
    /* the packet's pattern, and the request id in its metadata */
    const char *hdr[] = { "X-Request-Id: rid-raw-1", NULL };
    raw_round_trip(e, "/raw", "[1]", "[1]", hdr);
    char *frame = raw_frame_with(&e->script, "rid-raw-1");
    if (!frame || !strstr(frame, "\"pattern\":{\"cmd\":\"raw\"}") ||
        !strstr(frame, "\"requestId\":\"rid-raw-1\""))
        fail_msg("the packet lacks the pattern or the requestId metadata: %s", frame ? frame : "(none)");
    free(frame);
    /* an event's packet has no id */
    struct http_response r = gwt_req(e->port, "POST", "/raw-emit", HOSTILE);
    gwt_expect_body(&r, "POST /raw-emit", 202, "");
    http_response_free(&r);
    char needle[512];
    snprintf(needle, sizeof needle, "\"data\":%s", HOSTILE);
    int64_t deadline = deadline_after(GWT_POLL_TIMEOUT_MS);
    while (!(frame = raw_frame_with(&e->script, "\"pattern\":\"ev\"")) && deadline_remaining_ms(deadline) > 0)
        deadline_pause_ms(GWT_POLL_PAUSE_MS);
    if (!frame || !strstr(frame, needle) || strstr(frame, "\"id\":"))
        fail_msg("the event packet is wrong: %s", frame ? frame : "(none arrived)");
    free(frame);
    raw_close(e);
}

/* Conversions that Node could not show: int64 extremes, :json kept as
 * written, strings escaped as JSON. */
static void raw_template_conversions(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_REPLY, "true");
    raw_round_trip(e, "/raw-int/9223372036854775807", NULL,
                   "{\"id\":9223372036854775807,\"j\":null,\"s\":null}", NULL);
    raw_round_trip(e, "/raw-int/-9223372036854775808", NULL,
                   "{\"id\":-9223372036854775808,\"j\":null,\"s\":null}", NULL);
    raw_round_trip(e, "/raw-int/1?j=%7B%22big%22%3A12345678901234567890123%7D", NULL,
                   "{\"id\":1,\"j\":{\"big\":12345678901234567890123},\"s\":null}", NULL);
    raw_round_trip(e, "/raw-int/2?s=%22q%22%5C%01%C3%A9", NULL,
                   "{\"id\":2,\"j\":null,\"s\":\"\\\"q\\\"\\\\\\u0001é\"}", NULL);
    gwt_check_error(e->port, "GET", "/raw-int/9223372036854775808", NULL, 400, "bad_request");
    gwt_check_error(e->port, "GET", "/raw-int/-9223372036854775809", NULL, 400, "bad_request");
    raw_close(e);
}

static void raw_big_reply_values(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_REPLY, "12345678901234567890123");
    struct http_response r = gwt_req(e->port, "POST", "/raw", "null");
    gwt_expect_body(&r, "a 23-digit reply", 200, "12345678901234567890123");
    http_response_free(&r);
    raw_close(e);
    e = raw_open(RAW_REPLY, "\"\\u0000\\ud800\\uDFFF\"");
    r = gwt_req(e->port, "POST", "/raw", "null");
    gwt_expect_body(&r, "a reply of escapes", 200, "\"\\u0000\\ud800\\uDFFF\"");
    http_response_free(&r);
    raw_close(e);
}

static void raw_garbage_is_502(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_GARBAGE, NULL);
    gwt_check_error(e->port, "POST", "/raw", "1", 502, "bad_upstream_message");
    raw_close(e);
    e = raw_open(RAW_BAD_JSON, NULL);
    gwt_check_error(e->port, "POST", "/raw", "1", 502, "bad_upstream_message");
    raw_close(e);
}

static void raw_silence_is_504(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_SILENT, NULL);
    int64_t start = deadline_now_ms();
    gwt_check_error(e->port, "POST", "/raw-fast", "1", 504, "upstream_timeout");
    int64_t took = deadline_now_ms() - start;
    if (took < 400)
        fail_msg("the 500 ms timeout fired after %lld ms", (long long)took);
    raw_close(e);
}

static void raw_close_is_502(void **state)
{
    (void)state;
    raw_env_t *e = raw_open(RAW_CLOSE, NULL);
    int64_t start = deadline_now_ms();
    gwt_check_error(e->port, "POST", "/raw", "1", 502, "upstream_closed");
    int64_t took = deadline_now_ms() - start;
    if (took > 10000)
        fail_msg("502 upstream_closed took %lld ms (timeout 20000)", (long long)took);
    raw_close(e);
}


/* ---- main ---------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, own_teardown)
#define R(fn) cmocka_unit_test_teardown(fn, own_teardown)

int main(void)
{
    const char *filter = getenv("PG_TEST_FILTER"); /* e.g. "raw_*", for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest nest_tests[] = {
        T(sum_and_echo),
        T(path_query_header_conversions),
        T(failed_conversions_are_400),
        T(literal_beats_param_beats_rest),
        T(trailing_slash_and_query_ignored_for_matching),
        T(percent_decoded_params),
        T(body_members),
        T(literal_template_parts),
        T(template_sources),
        T(any_method_route),
        T(created_and_nothing),
        T(not_found),
        T(method_not_allowed),
        T(invalid_bodies_are_400),
        T(request_ids),
        T(packet_metadata),
        T(upstream_errors),
        T(route_timeout_is_504),
        T(emit_is_202_and_recorded),
        T(stream_replies),
        T(generic_api),
        T(unicode_both_ways),
        T(large_payload_both_ways),
        T(hostile_values_through_nest),
    };
    const struct CMUnitTest raw_tests[] = {
        R(raw_values_byte_exact),
        R(raw_template_conversions),
        R(raw_big_reply_values),
        R(raw_garbage_is_502),
        R(raw_silence_is_504),
        R(raw_close_is_502),
    };
    int failed = cmocka_run_group_tests_name("http_nest12", nest_tests, group_setup_v12, group_teardown);
    failed += cmocka_run_group_tests_name("http_nest10", nest_tests, group_setup_v10, group_teardown);
    failed += cmocka_run_group_tests_name("http_raw", raw_tests, NULL, NULL);
    return failed;
}
